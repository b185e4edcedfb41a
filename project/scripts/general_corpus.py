"""Merge converted corpora into one source corpus: train.spacy, dev.spacy, types.jsonl.

python scripts/general_corpus.py CORPUS_DIR OUT_DIR --corpora conll,ncbi,bc5cdr,genia

Each Doc keeps the labels its corpus annotates (`python -m spacy_binder merge`),
so that binder_ner learns every corpus's types without taking another corpus's
silence for a negative. --exclude leaves labels out everywhere (a leave-one-out
source); the types are the corpora's descriptions in ../assets/entity_types.
--silver adds a spaCy pipeline's entities of --silver-labels to every Doc (silver
labels; their descriptions: ontonotes.jsonl); --phrases stores a parsing
pipeline's noun phrases in every Doc, for the type sampler's phrase types.
"""
from pathlib import Path

import spacy
import srsly
import typer
from spacy.tokens import DocBin

from spacy_binder.convert.merge import MergeReport, add_phrases, add_silver, corpus_labels, merge_corpora, merge_descriptions

TYPES = Path(__file__).resolve().parents[2] / "assets" / "entity_types"


def main(
    corpus_dir: Path,
    out_dir: Path,
    corpora: str = typer.Option("conll,ncbi,bc5cdr,genia", help="Comma-separated corpus folders of CORPUS_DIR"),
    exclude: str = typer.Option("", help="Comma-separated labels to leave out everywhere"),
    limit: int = typer.Option(0, help="Training docs per corpus (0: all)"),
    dev_limit: int = typer.Option(500, help="Dev docs per corpus (0: all): the dev set spacy train scores"),
    silver: str = typer.Option("", help="A spaCy pipeline (package name or folder) whose entities of --silver-labels join every Doc"),
    silver_labels: str = typer.Option("", help="Comma-separated labels of --silver's entities to add"),
    phrases: str = typer.Option("", help="A spaCy pipeline with a parser whose noun chunks go to doc.spans['phrases']"),
) -> None:
    names = [name.strip() for name in corpora.split(",") if name.strip()]
    excluded = [label.strip() for label in exclude.split(",") if label.strip()]
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = spacy.blank("en").vocab
    silvered = [label.strip() for label in silver_labels.split(",") if label.strip()]
    if bool(silver) != bool(silvered):
        raise typer.BadParameter("Silver labels need both --silver and --silver-labels.")
    silver_nlp = spacy.load(silver) if silver else None
    phrase_nlp = spacy.load(phrases) if phrases else None
    report, labels = MergeReport(), set()
    for split, split_limit in (("train", limit), ("dev", dev_limit)):
        docs, report = merge_corpora(
            [corpus_dir / name / f"{split}.spacy" for name in names], vocab, exclude=excluded, limit=split_limit
        )
        if silver_nlp is not None:
            typer.echo(f"silver {', '.join(silvered)} from {silver} over {len(docs)} {split} docs...")
            report.silver = add_silver(docs, silver_nlp, silvered)
        if phrase_nlp is not None:
            typer.echo(f"noun phrases from {phrases} over {len(docs)} {split} docs: {add_phrases(docs, phrase_nlp)}")
        labels |= corpus_labels(docs, "sc")
        DocBin(docs=docs).to_disk(out_dir / f"{split}.spacy")
        typer.echo(f"{out_dir / split}.spacy: {len(docs)} docs")
        for line in report.lines():
            typer.echo(f"  {line}")
    files = [TYPES / f"{name}.jsonl" for name in names] + ([TYPES / "ontonotes.jsonl"] if silver else [])
    types = merge_descriptions(files, labels, report)
    srsly.write_jsonl(out_dir / "types.jsonl", [{"label": k, "description": v} for k, v in sorted(types.items())])
    typer.echo(f"{out_dir / 'types.jsonl'}: {', '.join(sorted(types))}")
    for line in report.conflicts:
        typer.echo(f"  {line}")


if __name__ == "__main__":
    typer.run(main)
