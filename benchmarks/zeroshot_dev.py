"""Zero-shot F1 of source pipelines on the targets' dev splits: how the source is chosen.

python benchmarks/zeroshot_dev.py CORPUS_DIR OUTPUT.json NAME=MODEL [NAME=MODEL ...]
    [--targets "ncbi,bc5cdr Disease,bc5cdr Chemical,genia"] [--thresholds 0.5,0.4,0.3]

The few-shot benchmark scores on test; the source's training settings (e.g.
the type sampler) and the threshold of new types are compared here, on dev, so
that nothing is chosen on test. A target is a corpus (all its types) or
"corpus Label" (that type alone, as zeroshot_sources.py scores it). Each
threshold is decoded from the same pass; the best is the one with the highest
mean F1 over every target, printed with each target's own best beside it.
"""
import json
from pathlib import Path
from typing import Dict, List

import spacy
import typer
from spacy.training import Corpus

from common import TARGETS, TYPES, evaluate_thresholds
from fewshot_report import chosen_threshold, held_out_f1, own_best
from spacy_binder.labels import read_type_descriptions
from spacy_binder.transfer import retarget


def main(
    corpus_dir: Path,
    output: Path,
    models: List[str],
    targets: str = typer.Option("ncbi,bc5cdr", help='Comma-separated corpora, or "corpus Label" for one type'),
    thresholds: str = typer.Option("0.5", help="Comma-separated thresholds of the new types, all from one pass"),
) -> None:
    results = json.loads(output.read_text()) if output.exists() else {}
    cut_offs = [float(t) for t in thresholds.split(",")]
    for item in models:
        name, _, model = item.partition("=")
        nlp = spacy.load(model)
        for target in targets.split(","):
            corpus, _, label = target.partition(" ")
            types = read_type_descriptions(TYPES / f"{corpus}.jsonl")
            retarget(nlp, {label: types[label]} if label else types, TARGETS[corpus].mode)
            scored = [label] if label else None  # the other types' gold mentions are not asked for
            result = evaluate_thresholds(nlp, Corpus(corpus_dir / corpus / "dev.spacy"), cut_offs, scored)
            results.setdefault(name, {})[target] = result
            for t, at_t in result["by_threshold"].items():
                per_type = ", ".join(f"{k} {100 * prf['f']:.1f}" for k, prf in sorted(at_t["per_type"].items()))
                typer.echo(f"{name} {target} dev @ {t}: P {100 * at_t['precision']:.1f} "
                           f"R {100 * at_t['recall']:.1f} F1 {100 * at_t['f1']:.1f} ({per_type})")
        output.write_text(json.dumps(results, indent=2))
        _summary(name, {target: results[name][target] for target in targets.split(",")})


def _summary(name: str, row: Dict[str, Dict]) -> None:
    """The threshold the report would choose from this source's targets alone, and each target's own best."""
    best, means = chosen_threshold({name: row})
    typer.secho(f"{name}: best threshold over all targets {best} (mean F1 {means[best]:.1f}; "
                f"0.5 gives {means.get('0.5', float('nan')):.1f})", bold=True)
    for target in row:
        own = own_best(row, target)
        typer.echo(f"  {target}: {100 * held_out_f1(row, target, best):.1f} at {best}, "
                   f"own best {100 * held_out_f1(row, target, own):.1f} at {own}")


if __name__ == "__main__":
    typer.run(main)
