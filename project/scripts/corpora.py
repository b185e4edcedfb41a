"""Convert one of the project's corpora to train/dev/test .spacy files.

python scripts/corpora.py CORPUS DATA_DIR OUT_DIR
CORPUS: demo (bundled in ../assets/demo), genia, ncbi, conll, bc5cdr, bc5cdr_distant.
DATA_DIR holds the public corpora (here ../../shared/data); see project.yml's assets.
"""
from pathlib import Path

import typer
from spacy.tokens import DocBin

from spacy_binder.convert import convert_corpus, distant_corpus

ASSETS = Path(__file__).resolve().parents[2] / "assets"
# corpus: (folder, format, converter options, {split: file name})
CORPORA = {
    "demo": (ASSETS / "demo", "jsonl", {}, {"train": "train.jsonl", "dev": "dev.jsonl"}),
    "genia": ("genia", "jsonl", {}, {"train": "train.jsonl", "dev": "dev.jsonl"}),
    "ncbi": ("ncbi_disease", "iob", {"separator": "\t"}, {"train": "train.tsv", "dev": "devel.tsv", "test": "test.tsv"}),
    "bc5cdr": ("bc5cdr", "iob", {"separator": "\t"}, {"train": "train.tsv", "dev": "devel.tsv", "test": "test.tsv"}),
    "conll": ("conll2003", "iob", {}, {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"}),
}


def main(corpus: str, data_dir: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    if corpus == "bc5cdr_distant":
        docs, report = distant_corpus(
            data_dir / "bc5cdr_distant" / "dict_core.txt", data_dir / "bc5cdr_distant" / "raw_text.txt"
        )
        _write(docs, report, out_dir / "train.spacy")
        corpus, splits = "bc5cdr", ("dev", "test")
    elif corpus in CORPORA:
        splits = tuple(CORPORA[corpus][3])
    else:
        raise typer.BadParameter(f"Unknown corpus '{corpus}': use one of {[*CORPORA, 'bc5cdr_distant']}")
    folder, format, options, files = CORPORA[corpus]
    for split in splits:
        docs, report = convert_corpus(format, data_dir / folder / files[split], **options)
        _write(docs, report, out_dir / f"{split}.spacy")


def _write(docs, report, path: Path) -> None:
    DocBin(docs=docs).to_disk(path)
    typer.echo(f"{path}:")
    for line in report.lines():
        typer.echo(f"  {line}")


if __name__ == "__main__":
    typer.run(main)
