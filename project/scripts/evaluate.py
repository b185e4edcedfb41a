"""Score a trained pipeline (binder_ner or label_aware_ner) on dev (and test) and time it.

python scripts/evaluate.py MODEL CORPUS_DIR OUTPUT.json
Writes overall and per-type precision, recall and F1 and words per second
(nlp.pipe, batch 64) for each split.
"""
import json
import time
from pathlib import Path

import spacy
import typer
from spacy.training import Corpus, Example

NER_PIPES = ("binder_ner", "label_aware_ner")


def main(
    model: Path,
    corpus_dir: Path,
    output: Path,
    batch_size: int = 64,
    splits: str = typer.Option("dev,test", help="Comma-separated splits to score, where present"),
) -> None:
    nlp = spacy.load(model)
    name = next((name for name in NER_PIPES if name in nlp.pipe_names), None)
    if name is None:
        raise typer.BadParameter(f"{model} has none of {NER_PIPES} (its pipes: {nlp.pipe_names}).")
    ner = nlp.get_pipe(name)
    # binder_ner's spans (nested or flat), or label_aware_ner's doc.ents
    prefix = f"spans_{ner.cfg['spans_key']}" if name == "binder_ner" else "ents"
    results = {}
    for split in splits.split(","):
        path = corpus_dir / f"{split}.spacy"
        if not path.exists():
            continue
        examples = list(Corpus(path)(nlp))
        start = time.perf_counter()
        docs = list(nlp.pipe((eg.predicted for eg in examples), batch_size=batch_size))
        seconds = time.perf_counter() - start
        # Score the timed predictions: one prediction pass per split.
        scores = ner.score([Example(doc, eg.reference) for doc, eg in zip(docs, examples)])
        results[split] = {
            "precision": scores[f"{prefix}_p"],
            "recall": scores[f"{prefix}_r"],
            "f1": scores[f"{prefix}_f"],
            "per_type": scores[f"{prefix}_per_type"],
            "words": sum(len(doc) for doc in docs),
            "words_per_second": sum(len(doc) for doc in docs) / seconds,
        }
        typer.echo(
            f"{split}: P {results[split]['precision']:.3f} R {results[split]['recall']:.3f} "
            f"F1 {results[split]['f1']:.3f} ({results[split]['words_per_second']:.0f} words/s)"
        )
        for label, prf in sorted(results[split]["per_type"].items()):
            typer.echo(f"  {label}: P {prf['p']:.3f} R {prf['r']:.3f} F1 {prf['f']:.3f}")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    typer.run(main)
