"""Fine-tuning settings compared on a target's dev split minus the support set.

python benchmarks/finetune_dev.py CORPUS_DIR OUTPUT.json --source MODEL NAME=STEPS:LEARN_RATE:MENTION_WEIGHT[:SIMILARITY:WEIGHT] ...

The few-shot benchmark scores on test; the fine-tuning settings of
configs/binder_fewshot.cfg are chosen here: each support set is drawn from the
target's dev split (as in the benchmark) and scored on the rest of that split
(sentences equal to a support sentence left out too). SIMILARITY and WEIGHT turn
on the part-2 objectives (context-context and context-label, both at WEIGHT).
"""
import json
import shutil
import statistics
from pathlib import Path
from typing import List

import spacy
import typer
from spacy.tokens import DocBin

from fewshot import TARGETS, TYPES, _fine_tune, read_docs
from spacy_binder.sampler import sample_support


def main(
    corpus_dir: Path,
    output: Path,
    settings: List[str],
    source: Path = typer.Option(..., help="The source-trained binder_ner pipeline"),
    target: str = typer.Option("ncbi", help="Target corpus folder in CORPUS_DIR"),
    k: int = typer.Option(5, help="K of the K-shot support sets"),
    seeds: str = typer.Option("1,2,3,4,5", help="Comma-separated sampler seeds"),
    work_dir: Path = typer.Option(Path("training/fewshot_dev"), help="Support sets and scratch models"),
) -> None:
    results = json.loads(output.read_text()) if output.exists() else {}
    pool = read_docs(corpus_dir / target / "dev.spacy", spacy.blank("en"))
    types_path = TYPES / f"{target}.jsonl"
    mode = "nested" if TARGETS[target][2] else "flat"
    seed_list = [int(seed) for seed in seeds.split(",")]
    for item in settings:
        name, _, values = item.partition("=")
        steps, learn_rate, mention_weight, *objectives = values.split(":")
        tuning = (int(steps), float(learn_rate), float(mention_weight))
        terms = (objectives[0], float(objectives[1])) if objectives else None
        wanted = {"steps": tuning[0], "learn_rate": tuning[1], "mention_weight": tuning[2], "source": str(source)}
        if terms is not None:
            wanted.update(similarity=terms[0], objective_weight=terms[1])
        for seed in seed_list:
            key = f"{name} | {target} | k={k} | seed={seed}"
            found = {field: results.get(key, {}).get(field, wanted[field]) for field in wanted}
            if found != wanted:
                raise typer.BadParameter(f"{output} has '{key}' with other settings ({found}); give it another name.")
            if key not in results:
                support, _ = sample_support(pool, k, seed)
                texts = {doc.text for doc in support}
                rest = [doc for doc in pool if doc.text not in texts]  # duplicates of the support too
                run_dir = work_dir / f"{target}_k{k}_seed{seed}"
                run_dir.mkdir(parents=True, exist_ok=True)
                DocBin(docs=support).to_disk(run_dir / "support.spacy")
                result, _ = _fine_tune(
                    source, run_dir / "support.spacy", run_dir / "model", types_path, mode, tuning, rest, False, terms,
                )
                result.pop("per_type")
                results[key] = {**result, **wanted}
                output.write_text(json.dumps(results, indent=2))
                shutil.rmtree(run_dir / "model", ignore_errors=True)
            r = results[key]
            typer.echo(f"{key}: P {100 * r['precision']:.1f} R {100 * r['recall']:.1f} F1 {100 * r['f1']:.1f}")
        f1 = [100 * results[f"{name} | {target} | k={k} | seed={seed}"]["f1"] for seed in seed_list]
        typer.secho(f"{name}: F1 {statistics.mean(f1):.1f} ± {statistics.pstdev(f1):.1f} over seeds {seeds}", bold=True)


if __name__ == "__main__":
    typer.run(main)
