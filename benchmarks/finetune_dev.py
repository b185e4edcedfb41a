"""Few-shot settings compared on the targets' dev splits minus the support set.

python benchmarks/finetune_dev.py CORPUS_DIR OUTPUT.json --source MODEL \
    [--targets ncbi,bc5cdr,genia] [--support-weights 0,0.5,1] [--thresholds 0.3,0.1] \
    NAME=[stop]STEPS:LEARN_RATE:MENTION_WEIGHT[:SIMILARITY:CONTEXT_WEIGHT[:LABEL_WEIGHT]] ...

The few-shot benchmark scores on test; the settings of configs/binder_fewshot.cfg
and binder_ner's support_weight are chosen here, on every target's dev split
together: each support set is drawn from the target's dev split (as in the
benchmark) and scored on the rest of that split (sentences equal to a support
sentence left out too). STEPS 0 scores the source itself (no fine-tuning); stopSTEPS fine-tunes for at
most STEPS, stopping after the first step whose support loss rose (CONTaiNER's
rule; a probe run records the losses, then the pipeline is trained to that step).
SIMILARITY and the weights turn on the part-2 objectives: context-context at
CONTEXT_WEIGHT and context-label at LABEL_WEIGHT (default: CONTEXT_WEIGHT; 0
for a source without a label prompt). Each pipeline is run once with its support set
and decoded at every support weight (0: descriptions only, 1: support alone),
and by the descriptions alone at every threshold of --thresholds (a threshold
under 0.5 serves types known by their descriptions, `decode`).
"""
import json
import shutil
import statistics
from pathlib import Path
from typing import Dict, List, Set

import spacy
import typer
from spacy.tokens import DocBin
from spacy.training import Corpus

from common import TARGETS, TYPES, Reader, Tuning, evaluate_decodings, fine_tune, references, stop_step
from spacy_binder.labels import read_type_descriptions
from spacy_binder.sampler import sample_support
from spacy_binder.transfer import retarget
from train_hooks import STEP_LOSSES


def leaving_out(path: Path, texts: Set[str], limit: int = 0) -> Reader:
    """The examples of a .spacy file (the first `limit`; 0: all) but those with one of these texts."""
    return lambda nlp: (eg for eg in Corpus(path, limit=limit)(nlp) if eg.reference.text not in texts)


def parse_setting(item: str) -> "tuple[str, Tuning]":
    name, _, values = item.partition("=")
    steps, learn_rate, mention_weight, *objectives = values.split(":")
    objective = None
    if objectives:
        similarity, context_weight, *label_weight = objectives
        objective = (similarity, float(context_weight), float(label_weight[0]) if label_weight else float(context_weight))
    stop = steps.startswith("stop")
    return name, Tuning(int(steps.removeprefix("stop")), float(learn_rate), float(mention_weight), objective, stop)


def main(
    corpus_dir: Path,
    output: Path,
    settings: List[str],
    source: Path = typer.Option(..., help="The source-trained binder_ner pipeline"),
    targets: str = typer.Option("ncbi,bc5cdr,genia", help="Comma-separated targets, chosen on together"),
    k: int = typer.Option(5, help="K of the K-shot support sets"),
    seeds: str = typer.Option("1,2,3,4,5", help="Comma-separated sampler seeds"),
    support_weights: str = typer.Option("0,0.25,0.5,0.75,1", help="Comma-separated support weights to decode at"),
    thresholds: str = typer.Option("", help="Comma-separated thresholds to decode the descriptions alone at (support weight 0)"),
    max_dev: int = typer.Option(2000, help="Score on the first N dev docs of each target (0: all)"),
    work_dir: Path = typer.Option(Path("training/fewshot_dev"), help="Support sets and scratch models"),
) -> None:
    results = json.loads(output.read_text()) if output.exists() else {}
    seed_list = [int(seed) for seed in seeds.split(",")]
    weights = [float(w) for w in support_weights.split(",")]
    threshold_list = [float(t) for t in thresholds.split(",") if t.strip()]
    decodings = [{"support_weight": w, "threshold": 0.5} for w in weights] + [
        {"support_weight": 0.0, "threshold": t} for t in threshold_list
    ]
    target_list = [t.strip() for t in targets.split(",") if t.strip()]
    for item in settings:
        name, tuning = parse_setting(item)
        wanted = {"steps": tuning.steps, "stop_on_rise": tuning.stop_on_rise, "learn_rate": tuning.learn_rate, "mention_weight": tuning.mention_weight,
                  "source": str(source), "max_dev": max_dev}
        if tuning.objectives is not None:
            similarity, context_weight, label_weight = tuning.objectives
            wanted.update(similarity=similarity, objective_weight=context_weight)
            if label_weight != context_weight:
                wanted.update(label_weight=label_weight)
        for target in target_list:
            pool_path = corpus_dir / target / "dev.spacy"
            pool = references(pool_path)
            types_path = TYPES / f"{target}.jsonl"
            mode = TARGETS[target].mode
            for seed in seed_list:
                key = f"{name} | {target} | k={k} | seed={seed}"
                found = {field: results.get(key, {}).get(field, wanted[field]) for field in wanted}
                if found != wanted:
                    raise typer.BadParameter(f"{output} has '{key}' with other settings ({found}); give it another name.")
                done = results.get(key, {})
                if any(str(w) not in done.get("by_weight", {}) for w in weights) or any(
                    str(t) not in done.get("by_threshold", {}) for t in threshold_list
                ):
                    support, _ = sample_support(pool, k, seed)
                    rest = leaving_out(pool_path, {doc.text for doc in support}, max_dev)  # duplicates of the support too
                    run_dir = work_dir / f"{target}_k{k}_seed{seed}"
                    run_dir.mkdir(parents=True, exist_ok=True)
                    DocBin(docs=support).to_disk(run_dir / "support.spacy")
                    if tuning.steps:
                        nlp, _ = fine_tune(source, run_dir / "support.spacy", run_dir / "model", types_path, mode, tuning)
                    else:
                        nlp = spacy.load(source)
                        retarget(nlp, read_type_descriptions(types_path), mode)
                        nlp.get_pipe("binder_ner").add_support(support)
                    scored = evaluate_decodings(nlp, rest, decodings)
                    results[key] = {
                        **wanted,
                        "by_weight": {str(w): r for w, r in zip(weights, scored)},
                        "by_threshold": {str(t): r for t, r in zip(threshold_list, scored[len(weights):])},
                    }
                    if tuning.stop_on_rise:
                        results[key].update(support_losses=STEP_LOSSES[:], stopped_at=stop_step(STEP_LOSSES))
                    output.write_text(json.dumps(results, indent=2))
                    shutil.rmtree(run_dir / "model", ignore_errors=True)
                line = "  ".join(f"{label}: {100 * result['f1']:.1f}" for label, result in _decoded(results[key], weights, threshold_list))
                typer.echo(f"{key}: F1 {line}")
    summarise(results, settings, target_list, k, seed_list, weights, threshold_list)


def _decoded(run: Dict, weights: List[float], thresholds: List[float]) -> List["tuple[str, Dict]"]:
    """(label, result) of a run's decodings: each support weight, then each threshold at weight 0."""
    return [(f"w={w}", run["by_weight"][str(w)]) for w in weights] + [
        (f"w=0.0 t={t}", run["by_threshold"][str(t)]) for t in thresholds
    ]


def summarise(
    results: Dict[str, Dict], settings: List[str], targets: List[str], k: int, seeds: List[int], weights: List[float],
    thresholds: List[float],
) -> None:
    """Mean F1 over seeds per target, and their mean over targets with the spread."""
    typer.secho(f"\n{k}-shot dev F1 (mean over seeds {seeds}); the choice is the best mean over targets", bold=True)
    typer.echo("setting | decoding | " + " | ".join(targets) + " | mean | min-max")
    for item in settings:
        name, _ = parse_setting(item)
        for i, (label, _) in enumerate(_decoded(results[f"{name} | {targets[0]} | k={k} | seed={seeds[0]}"], weights, thresholds)):
            per_target = [
                statistics.mean(
                    100 * _decoded(results[f"{name} | {t} | k={k} | seed={s}"], weights, thresholds)[i][1]["f1"] for s in seeds
                )
                for t in targets
            ]
            cells = " | ".join(f"{f1:.1f}" for f1 in per_target)
            typer.echo(f"{name} | {label} | {cells} | {statistics.mean(per_target):.1f} | {min(per_target):.1f}-{max(per_target):.1f}")


if __name__ == "__main__":
    typer.run(main)
