"""binder_ner against spaCy's spancat and ner: same encoder, data and budget, one run.

python benchmarks/run.py CORPUS_DIR RESULTS_DIR [--corpora genia,ncbi,conll] [--max-steps 300]

CORPUS_DIR/<corpus>/{train,dev[,test]}.spacy come from the project's `convert`
command. For each corpus every system is trained by `spacy train` with the same
optimizer, batcher, seed and number of steps (so the same words are seen), the
best dev checkpoint is kept, and then, in this one process:
- accuracy on test (dev where there is no test), overall and per type;
- inference words/s with nlp.pipe (batch 64), alternating the systems and the
  bare text encoder over rounds so that ratios hold on a noisy machine;
- training words/s, alternating update steps of the untrained systems on the
  same batches;
and, each in a fresh process, peak RSS of inference over the evaluation split
and, for --scaling-corpus, over single documents of --scaling words.
Writes RESULTS_DIR/<corpus>.json; benchmarks/report.py turns them into Markdown.
"""
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List

import spacy
import typer
from spacy.tokens import Doc, DocBin
from spacy.training import Corpus

from common import (
    BENCHMARKS, PIPE_BATCH, TIMED, System, alternate, data_overrides, plan_systems, predict, prepare_training,
    quantize, references, run_command, run_encoder, score, slug,
)
from spacy_binder.defaults import BATCH_WORDS, ENCODER, MAX_STEPS
from spacy_binder.encoders import resolve_encoder_name
from spacy_binder.init_config import detect_mode, init_config
from train_hooks import MARKER  # what the hooks print with the timing of a `spacy train` run


def override_args(overrides: Dict[str, object]) -> List[str]:
    args = []
    for key, value in overrides.items():
        args += [f"--{key}", json.dumps(value) if not isinstance(value, str) else value]
    return args


def train_system(system: System, output: Path, shared: Dict[str, object], reuse: bool) -> Dict[str, object]:
    """`spacy train` in a subprocess; echoes its table, returns the logger's timing.

    With `reuse`, a pipeline already trained in `output` (with its timing) is kept.
    """
    timing_path = output / "benchmark_timing.json"
    if reuse and timing_path.exists() and (output / "model-best").exists():
        typer.secho(f"\n=== reusing {system.name} from {output}", bold=True)
        return json.loads(timing_path.read_text())
    cmd = [
        sys.executable, "-m", "spacy", "train", str(system.config),
        "--output", str(output),
        "--code", str(BENCHMARKS / "train_hooks.py"),
        "--training.logger.@loggers", "spacy_binder_benchmark.TimingLogger.v1",
        "--training.batcher.@batchers", "spacy_binder_benchmark.same_batches.v1",
        *override_args({**shared, **system.overrides}),
    ]
    typer.secho(f"\n=== training {system.name} -> {output}", bold=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    timing = None
    for line in process.stdout:
        if line.startswith(MARKER):
            timing = json.loads(line[len(MARKER):])
        else:
            sys.stdout.write(line)
            sys.stdout.flush()
    if process.wait() != 0 or timing is None:
        raise RuntimeError(f"Training {system.name} failed (exit {process.returncode}): {' '.join(cmd)}")
    evaluations = timing.pop("evaluations")
    best = max(evaluations, key=lambda e: (e["score"], -e["step"]))
    result = {
        **timing,
        "words_per_second": timing["words"] / timing["train_seconds"],
        "best_step": best["step"],
        "best_dev_score": best["score"],
        "dev_curve": evaluations,
    }
    timing_path.write_text(json.dumps(result, indent=2))
    return result


def measure_inference(
    systems: List[System], models: Dict[str, Path], test: Corpus, words: int, rounds: int
) -> Dict[str, Dict[str, object]]:
    """Accuracy of every system and alternating inference timings of the main ones
    over the `words` words of `test`."""
    nlps = {s.name: spacy.load(models[s.name]) for s in systems}
    for s in systems:
        if s.strategy:
            nlps[s.name].get_pipe("binder_ner").cfg["strategy"] = s.strategy
    # The accuracy pass is also the timed systems' warm-up (int8: compiling).
    results = {s.name: score(predict(nlps[s.name], test)[0], s.key) for s in systems}
    binder = nlps["binder_ner"]
    timed: Dict[str, Callable] = {
        s.name: (lambda docs, nlp=nlps[s.name]: list(nlp.pipe(docs, batch_size=PIPE_BATCH)))
        for s in systems
        if s.name in TIMED
    }
    timed["bare encoder"] = lambda docs: run_encoder(binder.get_pipe("binder_ner"), docs)
    seconds = alternate(
        timed,
        rounds,
        prepare=lambda name: [eg.predicted for eg in test(nlps.get(name, binder))],
        words=words,
    )
    for name, times in seconds.items():
        results.setdefault(name, {})["inference_words_per_second"] = words / min(times)
        results[name]["inference_seconds"] = times
    return results


def measure_training_speed(
    systems: List[System], shared: Dict[str, object], steps: int, rounds: int
) -> Dict[str, float]:
    """Alternate update steps of the untrained systems over the same batches."""
    run = prepare_training(systems, shared, steps)
    seconds = alternate({name: lambda _, name=name: run.steps(name) for name in run.nlps}, rounds)
    return {name: rounds * run.words(name) / sum(seconds[name]) for name in run.nlps}


def measure_memory(model: Path, docs: Path, n_words: int = 0, repeats: int = 1) -> Dict[str, float]:
    out = run_command([
        sys.executable, str(BENCHMARKS / "infer_memory.py"), str(model), str(docs),
        "--n-words", str(n_words), "--repeats", str(repeats),
    ])
    return json.loads(out.strip().splitlines()[-1])


def prepare_corpus(source: Path, target: Path, max_sentences: int) -> Dict[str, Path]:
    """The corpus's splits, cut to the first `max_sentences` docs if asked (smoke runs)."""
    splits = {split: source / f"{split}.spacy" for split in ("train", "dev", "test")}
    splits = {split: path for split, path in splits.items() if path.exists()}
    if "train" not in splits or "dev" not in splits:
        raise typer.BadParameter(f"{source} needs train.spacy and dev.spacy: run the project's convert first.")
    if not max_sentences:
        return splits
    target.mkdir(parents=True, exist_ok=True)
    for split, path in splits.items():
        DocBin(docs=references(path, max_sentences), store_user_data=True).to_disk(target / f"{split}.spacy")
        splits[split] = target / f"{split}.spacy"
    return splits


def span_widths(docs: List[Doc]) -> List[int]:
    return [len(span) for doc in docs for span in doc.spans.get("sc", [])]


def main(
    corpus_dir: Path,
    results_dir: Path,
    corpora: str = typer.Option("genia,ncbi,conll", help="Comma-separated corpus names"),
    work_dir: Path = typer.Option(BENCHMARKS / "training", help="Where trained pipelines go"),
    encoder: str = typer.Option(ENCODER, help="HF name or folder"),
    max_steps: int = MAX_STEPS,
    eval_frequency: int = MAX_STEPS // 2,
    learn_rate: float = 1e-4,
    warmup_steps: int = 50,
    ablations: str = typer.Option("genia", help="Corpora that also get the ablations"),
    systems_only: str = typer.Option("", "--systems", help="Comma-separated systems to run (default: all), e.g. 'binder_ner,binder_ner int8' for an encoder's row"),
    scaling_corpus: str = "ncbi",
    scaling: str = typer.Option("1000,5000,20000", help="Document sizes in words"),
    rounds: int = 2,
    train_speed_steps: int = 4,
    max_sentences: int = typer.Option(0, help="Cut every split to this many docs (smoke runs)"),
    int8_compile: str = typer.Option("ahead", help="'ahead': quantize compiles the int8 encoder ahead of time, as users get it; 'in-process': each process compiles it (smoke runs)"),
    reuse_trained: bool = typer.Option(False, help="Keep pipelines already trained in --work-dir; measure again"),
) -> None:
    if int8_compile not in ("ahead", "in-process"):
        raise typer.BadParameter(f"--int8-compile {int8_compile!r}: use 'ahead' or 'in-process'")
    encoder_path = resolve_encoder_name(encoder)
    results_dir.mkdir(parents=True, exist_ok=True)
    for corpus in [c.strip() for c in corpora.split(",") if c.strip()]:
        splits = prepare_corpus(corpus_dir / corpus, work_dir / corpus / "corpus", max_sentences)
        eval_split = "test" if "test" in splits else "dev"
        train, test = references(splits["train"]), references(splits[eval_split])
        mode = detect_mode(train)
        nested = mode == "nested"
        binder_cfg = work_dir / corpus / "binder.cfg"
        binder_cfg.parent.mkdir(parents=True, exist_ok=True)
        binder_config = init_config(mode)
        binder_config.to_disk(binder_cfg)
        eval_widths, eval_words = span_widths(test), sum(len(doc) for doc in test)
        max_width = min(max(span_widths(train), default=1), 30)
        sizes = list(range(1, max_width + 1))
        systems = plan_systems(corpus, nested, sizes, corpus in ablations.split(","), binder_cfg)
        if systems_only:
            wanted = [name.strip() for name in systems_only.split(",") if name.strip()]
            unknown = sorted(set(wanted) - {s.name for s in systems})
            if unknown or "binder_ner" not in wanted:
                raise typer.BadParameter(f"--systems {wanted}: give binder_ner (the others are measured against it) and any of {[s.name for s in systems]}")
            systems = [s for s in systems if s.name in wanted]
        shared = {
            **data_overrides(splits["train"], splits["dev"], encoder_path),
            "training.max_steps": max_steps,
            "training.eval_frequency": eval_frequency,
            "training.optimizer.learn_rate.initial_rate": learn_rate,
            "training.optimizer.learn_rate.warmup_steps": warmup_steps,
        }
        models, training = {}, {}
        for s in systems:
            if s.trained_as is None:
                out = work_dir / corpus / slug(s.name)
                training[s.name] = train_system(s, out, shared, reuse_trained)
                models[s.name] = out / "model-best"
        for s in systems:
            if s.quantized:
                models[s.name] = quantize(models[s.trained_as], work_dir / corpus / slug(s.name), int8_compile == "ahead")
            elif s.trained_as is not None:
                models[s.name] = models[s.trained_as]
        typer.secho(f"\n=== {corpus}: accuracy and inference speed on {eval_split}", bold=True)
        inference = measure_inference(systems, models, Corpus(splits[eval_split]), eval_words, rounds)
        typer.secho(f"=== {corpus}: training speed, alternating", bold=True)
        train_speed = measure_training_speed(systems, shared, train_speed_steps, rounds)
        typer.secho(f"=== {corpus}: inference memory", bold=True)
        memory = {
            s.name: measure_memory(models[s.name], splits[eval_split])
            for s in systems
            if s.name in TIMED
        }
        scaling_results = {}
        if corpus == scaling_corpus:
            typer.secho(f"=== {corpus}: long documents", bold=True)
            for name in (s.name for s in systems if s.name in memory and not s.quantized):
                scaling_results[name] = {
                    n: measure_memory(models[name], splits[eval_split], int(n), rounds) for n in scaling.split(",")
                }
        result = {
            "corpus": corpus,
            "nested": nested,
            "eval_split": eval_split,
            "eval_words": eval_words,
            "budget": {
                "max_steps": max_steps,
                "batch_words": BATCH_WORDS,
                "learn_rate": learn_rate,
                "warmup_steps": warmup_steps,
                "binder_heads_learn_rate_scale": binder_config["components"]["binder_ner"]["model"]["heads_learn_rate_scale"],
                "encoder": encoder,
            },
            "spancat_suggester": {
                "sizes": [1, max_width],
                "gold_reachable": sum(w <= max_width for w in eval_widths) / max(len(eval_widths), 1),
                "eval_mentions": len(eval_widths),
            },
            "systems": {
                s.name: {
                    **inference[s.name],
                    "training": training.get(s.trained_as or s.name),
                    "training_words_per_second_alternating": train_speed.get(s.name),
                    "inference_memory": memory.get(s.name),
                    "scaling": scaling_results.get(s.name),
                }
                for s in systems
            },
            "bare_encoder": inference["bare encoder"],
        }
        path = results_dir / f"{corpus}.json"
        path.write_text(json.dumps(result, indent=2))
        typer.secho(f"Wrote {path}", fg="green")
        for s in systems:
            r = result["systems"][s.name]
            typer.echo(f"  {s.name}: P {r['precision']:.3f} R {r['recall']:.3f} F1 {r['f1']:.3f}")


if __name__ == "__main__":
    typer.run(main)
