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
from typing import List, Set

import typer
from spacy.tokens import DocBin
from spacy.training import Corpus

from common import TARGETS, TYPES, Reader, Tuning, fine_tune, references
from spacy_binder.sampler import sample_support


def leaving_out(path: Path, texts: Set[str]) -> Reader:
    """The examples of a .spacy file but those with one of these texts."""
    return lambda nlp: (eg for eg in Corpus(path)(nlp) if eg.reference.text not in texts)


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
    pool_path = corpus_dir / target / "dev.spacy"
    pool = references(pool_path)
    types_path = TYPES / f"{target}.jsonl"
    seed_list = [int(seed) for seed in seeds.split(",")]
    for item in settings:
        name, _, values = item.partition("=")
        steps, learn_rate, mention_weight, *objectives = values.split(":")
        tuning = Tuning(
            int(steps), float(learn_rate), float(mention_weight), (objectives[0], float(objectives[1])) if objectives else None
        )
        wanted = {"steps": tuning.steps, "learn_rate": tuning.learn_rate, "mention_weight": tuning.mention_weight,
                  "source": str(source)}
        if tuning.objectives is not None:
            wanted.update(similarity=tuning.objectives[0], objective_weight=tuning.objectives[1])
        for seed in seed_list:
            key = f"{name} | {target} | k={k} | seed={seed}"
            found = {field: results.get(key, {}).get(field, wanted[field]) for field in wanted}
            if found != wanted:
                raise typer.BadParameter(f"{output} has '{key}' with other settings ({found}); give it another name.")
            if key not in results:
                support, _ = sample_support(pool, k, seed)
                rest = leaving_out(pool_path, {doc.text for doc in support})  # duplicates of the support too
                run_dir = work_dir / f"{target}_k{k}_seed{seed}"
                run_dir.mkdir(parents=True, exist_ok=True)
                DocBin(docs=support).to_disk(run_dir / "support.spacy")
                result, _ = fine_tune(
                    source, run_dir / "support.spacy", run_dir / "model", types_path, TARGETS[target].mode, tuning, rest,
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
