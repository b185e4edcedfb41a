"""Merge converted corpora into one source corpus: train.spacy, dev.spacy, types.jsonl.

python scripts/general_corpus.py CORPUS_DIR OUT_DIR --corpora conll,ncbi,bc5cdr,genia

Runs `python -m spacy_binder merge` on each split: each Doc keeps the labels its
corpus annotates, so that binder_ner learns every corpus's types without taking
another corpus's silence for a negative. --exclude leaves labels out everywhere
(a leave-one-out source); the types are the corpora's descriptions in
../assets/entity_types. --silver adds a spaCy pipeline's entities of
--silver-labels to every Doc (their descriptions: ontonotes.jsonl); --phrases
stores a parsing pipeline's noun phrases, for the type sampler's phrase types.
"""
from pathlib import Path

import typer

from spacy_binder.cli import merge

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
    as_list = lambda text: [item.strip() for item in text.split(",") if item.strip()]
    descriptions = [TYPES / f"{name}.jsonl" for name in names] + ([TYPES / "ontonotes.jsonl"] if silver else [])
    for split, split_limit in (("train", limit), ("dev", dev_limit)):
        typer.echo(f"{out_dir / split}.spacy:")
        merge(
            output=out_dir / f"{split}.spacy",
            inputs=[corpus_dir / name / f"{split}.spacy" for name in names],
            descriptions=descriptions,
            types_output=out_dir / "types.jsonl" if split == "train" else None,
            exclude_label=as_list(exclude),
            silver=silver or None,
            silver_label=as_list(silver_labels),
            phrases=phrases or None,
            limit=split_limit,
            spans_key="sc",
            lang="en",
        )


if __name__ == "__main__":
    typer.run(main)
