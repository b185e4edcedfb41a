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
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import spacy
import typer
from spacy.language import Language
from spacy.scorer import Scorer
from spacy.tokens import Doc, DocBin
from spacy.training import Corpus, Example
from spacy.training.batchers import minibatch_by_words
from spacy.training.initialize import init_nlp
from spacy.util import load_config, minibatch, registry
from spacy.schemas import ConfigSchemaTraining
from thinc.api import Optimizer, fix_random_seed

from spacy_binder.encoders import resolve_encoder_name
from spacy_binder.init_config import detect_mode, init_config

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
TIMING_MARKER = "BENCHMARK_TIMING"


@dataclass
class System:
    """One trained pipeline: its config, overrides and where its predictions go."""

    name: str
    config: Path
    output: str  # "spans" (doc.spans["sc"]) or "ents" (doc.ents)
    overrides: Dict[str, object] = field(default_factory=dict)
    strategy: Optional[str] = None  # binder_ner inference strategy override
    trained_as: Optional[str] = None  # reuse another system's trained pipeline
    quantized: bool = False  # that pipeline made int8 by `python -m spacy_binder quantize`


# Systems timed and measured for memory; the others are accuracy variants.
TIMED = ("binder_ner", "binder_ner int8", "spancat", "ner")


def plan_systems(corpus: str, nested: bool, sizes: List[int], ablations: bool, binder_cfg: Path) -> List[System]:
    binder = {"paths.descriptions": str(ROOT / "assets" / "entity_types" / f"{corpus}.jsonl")}
    systems = [
        System("binder_ner", binder_cfg, "spans" if nested else "ents", binder),
        System("binder_ner int8", binder_cfg, "spans" if nested else "ents", trained_as="binder_ner", quantized=True),
        System(
            "spancat",
            BENCHMARKS / "configs" / "spancat_trf.cfg",
            "spans",
            {"components.spancat.suggester.sizes": sizes},
        ),
    ]
    if not nested:
        systems.append(System("ner", BENCHMARKS / "configs" / "ner_trf.cfg", "ents"))
    if ablations:
        output = systems[0].output
        no_position = {
            **binder,
            "components.binder_ner.loss.start_weight": 0.0,
            "components.binder_ner.loss.end_weight": 0.0,
            "components.binder_ner.loss.span_weight": 1.0,
        }
        global_thresholds = {**binder, "components.binder_ner.model.thresholds": "global"}
        systems += [
            System("binder_ner no position objectives", binder_cfg, output, no_position),
            System("binder_ner learned global thresholds", binder_cfg, output, global_thresholds),
            System("binder_ner joint inference", binder_cfg, output, strategy="joint", trained_as="binder_ner"),
        ]
    return systems


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


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
        if line.startswith(TIMING_MARKER):
            timing = json.loads(line[len(TIMING_MARKER):])
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


def fresh_docs(nlp: Language, refs: List[Doc]) -> List[Doc]:
    return [Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]) for d in refs]


def score(system: System, predicted: List[Doc], refs: List[Doc]) -> Dict[str, object]:
    examples = [Example(pred, ref) for pred, ref in zip(predicted, refs)]
    if system.output == "ents":
        scores = Scorer.score_spans(examples, "ents")
        prefix = "ents"
    else:
        scores = Scorer.score_spans(
            examples, "spans_sc", getter=lambda doc, attr: doc.spans.get("sc", []), allow_overlap=True
        )
        prefix = "spans_sc"
    return {
        "precision": scores[f"{prefix}_p"],
        "recall": scores[f"{prefix}_r"],
        "f1": scores[f"{prefix}_f"],
        "per_type": scores[f"{prefix}_per_type"],
    }


def measure_inference(
    systems: List[System], models: Dict[str, Path], eval_path: Path, rounds: int
) -> Dict[str, Dict[str, object]]:
    """Accuracy of every system and alternating inference timings of the main ones."""
    nlps = {s.name: spacy.load(models[s.name]) for s in systems}
    for s in systems:
        if s.strategy:
            nlps[s.name].get_pipe("binder_ner").cfg["strategy"] = s.strategy
    refs = {name: list(DocBin().from_disk(eval_path).get_docs(nlp.vocab)) for name, nlp in nlps.items()}
    words = sum(len(doc) for doc in next(iter(refs.values())))
    binder = nlps["binder_ner"]
    binder_ner = binder.get_pipe("binder_ner")
    text_encoder = binder_ner.model.get_ref("text_encoder")

    def bare_encoder(docs: List[Doc]) -> None:
        for batch in minibatch(docs, 64):
            text_encoder.predict((batch, binder_ner.descriptions))

    timed: Dict[str, Callable[[List[Doc]], object]] = {
        s.name: (lambda docs, nlp=nlps[s.name]: list(nlp.pipe(docs, batch_size=64)))
        for s in systems
        if s.name in TIMED
    }
    timed["bare encoder"] = bare_encoder
    results: Dict[str, Dict[str, object]] = {}
    for s in systems:
        predicted = list(nlps[s.name].pipe(fresh_docs(nlps[s.name], refs[s.name]), batch_size=64))
        results[s.name] = score(s, predicted, refs[s.name])
    seconds: Dict[str, List[float]] = {name: [] for name in timed}
    for round_ in range(rounds):
        for name, run in timed.items():
            docs = fresh_docs(nlps.get(name, binder), refs.get(name, refs["binder_ner"]))
            start = time.perf_counter()
            run(docs)
            seconds[name].append(time.perf_counter() - start)
            typer.echo(f"  round {round_ + 1}: {name} {words / seconds[name][-1]:.0f} words/s")
    for name, times in seconds.items():
        results.setdefault(name, {})["inference_words_per_second"] = words / min(times)
        results[name]["inference_seconds"] = times
    return results


@dataclass
class TrainingRun:
    """Untrained pipelines, their batches and their own config's optimizer."""

    nlps: Dict[str, Language]
    batches: Dict[str, List[List[Example]]]
    optimizers: Dict[str, Optimizer]

    def words(self, name: str) -> int:
        return sum(len(eg) for batch in self.batches[name] for eg in batch)


def prepare_training(systems: List[System], shared: Dict[str, object], steps: int) -> TrainingRun:
    """The trainable systems on the same `steps` batches, warmed up by one update.

    Each gets the optimizer `spacy train` would build from its config (no
    parameter averages in these configs), so a step costs what it costs there.
    """
    run = TrainingRun({}, {}, {})
    for s in systems:
        if s.trained_as is not None or s.name not in TIMED:
            continue
        fix_random_seed(0)
        config = load_config(s.config, overrides={**shared, **s.overrides}, interpolate=False)
        nlp = init_nlp(config)
        examples = list(Corpus(shared["paths.train"])(nlp))
        run.nlps[s.name] = nlp
        run.batches[s.name] = list(minibatch_by_words(examples[: steps * 64], size=400))[:steps]
        training = registry.resolve(nlp.config.interpolate()["training"], schema=ConfigSchemaTraining)
        run.optimizers[s.name] = training["optimizer"]
    for name, nlp in run.nlps.items():  # warm-up: lazy layers, allocator
        nlp.update(run.batches[name][0], sgd=run.optimizers[name])
    return run


def measure_training_speed(
    systems: List[System], shared: Dict[str, object], steps: int, rounds: int
) -> Dict[str, float]:
    """Alternate update steps of the untrained systems over the same batches."""
    run = prepare_training(systems, shared, steps)
    seconds: Dict[str, float] = {name: 0.0 for name in run.nlps}
    for _ in range(rounds):
        for name, nlp in run.nlps.items():
            start = time.perf_counter()
            for batch in run.batches[name]:
                nlp.update(batch, sgd=run.optimizers[name])
            seconds[name] += time.perf_counter() - start
    return {name: rounds * run.words(name) / seconds[name] for name in run.nlps}


def quantize(model: Path, output: Path) -> Path:
    """The int8 copy of a trained pipeline, made by the command users run."""
    cmd = [sys.executable, "-m", "spacy_binder", "quantize", str(model), str(output)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return output


def measure_memory(model: Path, docs: Path, n_words: int = 0, repeats: int = 1) -> Dict[str, float]:
    cmd = [
        sys.executable, str(BENCHMARKS / "infer_memory.py"), str(model), str(docs),
        "--n-words", str(n_words), "--repeats", str(repeats),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare_corpus(source: Path, target: Path, max_sentences: int) -> Dict[str, Path]:
    """The corpus's splits, cut to the first `max_sentences` docs if asked (smoke runs)."""
    splits = {split: source / f"{split}.spacy" for split in ("train", "dev", "test")}
    splits = {split: path for split, path in splits.items() if path.exists()}
    if "train" not in splits or "dev" not in splits:
        raise typer.BadParameter(f"{source} needs train.spacy and dev.spacy: run the project's convert first.")
    if not max_sentences:
        return splits
    target.mkdir(parents=True, exist_ok=True)
    nlp = spacy.blank("en")
    for split, path in splits.items():
        docs = list(DocBin().from_disk(path).get_docs(nlp.vocab))[:max_sentences]
        DocBin(docs=docs, store_user_data=True).to_disk(target / f"{split}.spacy")
        splits[split] = target / f"{split}.spacy"
    return splits


def span_widths(path: Path) -> List[int]:
    nlp = spacy.blank("en")
    return [len(span) for doc in DocBin().from_disk(path).get_docs(nlp.vocab) for span in doc.spans.get("sc", [])]


def main(
    corpus_dir: Path,
    results_dir: Path,
    corpora: str = typer.Option("genia,ncbi,conll", help="Comma-separated corpus names"),
    work_dir: Path = typer.Option(BENCHMARKS / "training", help="Where trained pipelines go"),
    encoder: str = typer.Option("sentence-transformers/all-MiniLM-L6-v2", help="HF name or folder"),
    max_steps: int = 300,
    eval_frequency: int = 100,
    learn_rate: float = 1e-4,
    warmup_steps: int = 50,
    ablations: str = typer.Option("genia", help="Corpora that also get the ablations"),
    scaling_corpus: str = "ncbi",
    scaling: str = typer.Option("1000,5000,20000", help="Document sizes in words"),
    rounds: int = 2,
    train_speed_steps: int = 4,
    max_sentences: int = typer.Option(0, help="Cut every split to this many docs (smoke runs)"),
    reuse_trained: bool = typer.Option(False, help="Keep pipelines already trained in --work-dir; measure again"),
) -> None:
    encoder_path = resolve_encoder_name(encoder)
    results_dir.mkdir(parents=True, exist_ok=True)
    for corpus in [c.strip() for c in corpora.split(",") if c.strip()]:
        splits = prepare_corpus(corpus_dir / corpus, work_dir / corpus / "corpus", max_sentences)
        eval_split = "test" if "test" in splits else "dev"
        mode = detect_mode(DocBin().from_disk(splits["train"]).get_docs(spacy.blank("en").vocab))
        nested = mode == "nested"
        binder_cfg = work_dir / corpus / "binder.cfg"
        binder_cfg.parent.mkdir(parents=True, exist_ok=True)
        binder_config = init_config(mode)
        binder_config.to_disk(binder_cfg)
        train_widths = span_widths(splits["train"])
        eval_widths = span_widths(splits[eval_split])
        max_width = min(max(train_widths, default=1), 30)
        sizes = list(range(1, max_width + 1))
        systems = plan_systems(corpus, nested, sizes, corpus in ablations.split(","), binder_cfg)
        shared = {
            "paths.train": str(splits["train"]),
            "paths.dev": str(splits["dev"]),
            "paths.encoder": encoder_path,
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
                models[s.name] = quantize(models[s.trained_as], work_dir / corpus / slug(s.name))
            elif s.trained_as is not None:
                models[s.name] = models[s.trained_as]
        typer.secho(f"\n=== {corpus}: accuracy and inference speed on {eval_split}", bold=True)
        inference = measure_inference(systems, models, splits[eval_split], rounds)
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
            "eval_words": _words(splits[eval_split]),
            "budget": {
                "max_steps": max_steps,
                "batch_words": 400,
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


def _words(path: Path) -> int:
    nlp = spacy.blank("en")
    return sum(len(doc) for doc in DocBin().from_disk(path).get_docs(nlp.vocab))


if __name__ == "__main__":
    typer.run(main)
