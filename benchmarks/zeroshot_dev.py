"""Zero-shot F1 of source pipelines on the targets' dev splits: how the source is chosen.

python benchmarks/zeroshot_dev.py CORPUS_DIR OUTPUT.json NAME=MODEL [NAME=MODEL ...]

The few-shot benchmark scores on test; the source's training settings (e.g.
the type sampler) are compared here, on dev, so that nothing is chosen on test.
"""
import json
from pathlib import Path
from typing import List

import spacy
import typer
from spacy.training import Corpus

from common import TARGETS, TYPES, evaluate
from spacy_binder.labels import read_type_descriptions
from spacy_binder.transfer import retarget


def main(corpus_dir: Path, output: Path, models: List[str], targets: str = "ncbi,bc5cdr") -> None:
    results = json.loads(output.read_text()) if output.exists() else {}
    for item in models:
        name, _, model = item.partition("=")
        nlp = spacy.load(model)
        for target in targets.split(","):
            retarget(nlp, read_type_descriptions(TYPES / f"{target}.jsonl"), TARGETS[target].mode)
            result = evaluate(nlp, Corpus(corpus_dir / target / "dev.spacy"))
            results.setdefault(name, {})[target] = result
            per_type = ", ".join(f"{label} {100 * prf['f']:.1f}" for label, prf in sorted(result["per_type"].items()))
            typer.echo(f"{name} {target} dev: P {100 * result['precision']:.1f} R {100 * result['recall']:.1f} "
                       f"F1 {100 * result['f1']:.1f} ({per_type})")
    output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    typer.run(main)
