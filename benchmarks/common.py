"""What the benchmark scripts share, written once: where things are, reading and
scoring a corpus, alternating timings, the systems run.py trains and times, and
fine-tuning a source pipeline as the few-shot benchmark does.

The scripts run as `python benchmarks/<script>.py`, so this folder is on
sys.path and they import this module as `common`.
"""
import re
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import spacy
import torch
import typer
from spacy.cli.train import train as spacy_train
from spacy.language import Language
from spacy.schemas import ConfigSchemaTraining
from spacy.scorer import Scorer
from spacy.tokens import Doc, Span
from spacy.training import Corpus, Example
from spacy.training.batchers import minibatch_by_words
from spacy.training.initialize import init_nlp
from spacy.util import load_config, minibatch, registry
from thinc.api import Optimizer, fix_random_seed

from spacy_binder.batch import EncodedWindows
from spacy_binder.component import BinderNER
from spacy_binder.defaults import BATCH_WORDS
from spacy_binder.encoders import hf_objects
from train_hooks import STEP_LOSSES  # and registers the loss recorder

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
TYPES = ROOT / "assets" / "entity_types"
FEWSHOT_CONFIG = ROOT / "configs" / "binder_fewshot.cfg"
SPANCAT_CONFIG = BENCHMARKS / "configs" / "spancat_trf.cfg"
NER_CONFIG = BENCHMARKS / "configs" / "ner_trf.cfg"
# nlp.pipe's batch size wherever a pipeline or an encoder is timed or scored.
PIPE_BATCH = 64


class FewShotTarget(NamedTuple):
    """Where a few-shot target's support sets come from and what is scored."""

    pool: str  # the split support sets are drawn from
    test: str  # the split scored (GENIA has no test here: its train split, never trained on)
    mode: str


TARGETS = {
    "ncbi": FewShotTarget("dev", "test", "flat"),
    "bc5cdr": FewShotTarget("dev", "test", "flat"),
    "genia": FewShotTarget("dev", "train", "nested"),
}


# A corpus to score: spaCy's `Corpus(path, limit=n)`, or a callable that, like it,
# gives a pipeline examples of its own (its tokenizer, and its vocab, into whose
# string store it writes the labels it predicts), their predicted docs unannotated.
Reader = Callable[[Language], Iterable[Example]]


def references(path: Union[str, Path], limit: int = 0) -> List[Doc]:
    """The gold docs of a .spacy file (the first `limit`; 0: all), as `spacy train` reads them."""
    return [eg.reference for eg in Corpus(path, limit=limit)(spacy.blank("en"))]


def score(examples: Iterable[Example], key: str = "sc", labels: Optional[Collection[str]] = None) -> Dict[str, Any]:
    """Micro P/R/F1 of exact labelled spans, and per type: doc.ents for key
    "ents", else doc.spans[key]; only spans of `labels` on both sides if given."""

    def getter(doc: Doc, attr: str) -> List:
        spans = doc.ents if key == "ents" else doc.spans.get(key, [])
        return [span for span in spans if labels is None or span.label_ in labels]

    scores = Scorer.score_spans(examples, "spans", getter=getter, allow_overlap=True)
    return {
        "precision": scores["spans_p"],
        "recall": scores["spans_r"],
        "f1": scores["spans_f"],
        "per_type": scores["spans_per_type"],
    }


def predict(nlp: Language, corpus: Reader) -> Tuple[List[Example], float]:
    """The corpus's examples with `nlp`'s predictions, and the seconds `nlp.pipe` took."""
    examples = list(corpus(nlp))
    start = time.perf_counter()
    deque(nlp.pipe((eg.predicted for eg in examples), batch_size=PIPE_BATCH), maxlen=0)  # annotates them
    return examples, time.perf_counter() - start


def evaluate(nlp: Language, corpus: Reader, labels: Optional[Collection[str]] = None) -> Dict[str, Any]:
    """P/R/F1 of doc.spans["sc"] (only `labels`' if given) and the prediction seconds."""
    examples, seconds = predict(nlp, corpus)
    return {**score(examples, labels=labels), "predict_seconds": seconds}


def encode(ner: BinderNER, docs: List[Doc]) -> Iterator[Tuple[List[Doc], EncodedWindows]]:
    """binder_ner's text encoder alone (its windows and forward pass), batch by batch."""
    text_encoder = ner.model.get_ref("text_encoder")
    for batch in minibatch(docs, PIPE_BATCH):
        yield batch, text_encoder.predict((batch, ner.descriptions))


def run_encoder(ner: BinderNER, docs: List[Doc]) -> None:
    """Encode `docs`, keeping nothing: what the text encoder alone costs."""
    deque(encode(ner, docs), maxlen=0)


def quantize(model: Path, output: Path, compile_ahead: bool = True) -> Path:
    """The int8 copy of a trained pipeline, made by the command users run."""
    ahead = "--compile" if compile_ahead else "--no-compile"
    run_command([sys.executable, "-m", "spacy_binder", "quantize", str(model), str(output), ahead])
    return output


def text_encoder_model(ner: BinderNER) -> torch.nn.Module:
    """The PyTorch model inside binder_ner's text encoder (spacy-transformers' shim)."""
    return ner.model.get_ref("text_encoder").get_ref("transformer").shims[0]._model


def swap_text_encoder(ner: BinderNER, model: torch.nn.Module) -> None:
    """Run `model` where binder_ner's text encoder runs its Hugging Face model."""
    encoder = ner.model.get_ref("text_encoder")
    encoder.get_ref("transformer").shims[0]._model = model
    hf_objects(encoder).transformer = model


def alternate(
    runs: Mapping[str, Callable[[Any], object]],
    rounds: int,
    prepare: Callable[[str], Any] = lambda name: None,
    words: int = 0,
) -> Dict[str, List[float]]:
    """Seconds of each run in each round. The runs take turns, round after round,
    so that a slow spell of a shared machine slows them alike; what `prepare(name)`
    returns, untimed, is the run's argument. Each time is echoed, as words/s if
    the runs process `words` words."""
    seconds: Dict[str, List[float]] = {name: [] for name in runs}
    for round_ in range(rounds):
        for name, run in runs.items():
            argument = prepare(name)
            start = time.perf_counter()
            run(argument)
            seconds[name].append(time.perf_counter() - start)
            took = f"{words / seconds[name][-1]:.0f} words/s" if words else f"{seconds[name][-1]:.1f} s"
            typer.echo(f"  round {round_ + 1}: {name} {took}")
    return seconds


def run_command(command: List[str], timeout: Optional[float] = None) -> str:
    """Run a command of this package in a process of its own; its stdout, or an
    error with its output if it fails."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def slug(name: str) -> str:
    """A system's name as a folder name."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def data_overrides(train: Path, dev: Path, encoder: str, descriptions: Optional[Path] = None) -> Dict[str, object]:
    """Config overrides that point a training run at its data, encoder and types."""
    overrides: Dict[str, object] = {"paths.train": str(train), "paths.dev": str(dev), "paths.encoder": encoder}
    if descriptions is not None:
        overrides["paths.descriptions"] = str(descriptions)
    return overrides


@dataclass
class System:
    """One system of run.py: its config, overrides and where its predictions go."""

    name: str
    config: Path
    key: str  # what `score` reads: "sc" (doc.spans["sc"]) or "ents" (doc.ents)
    overrides: Dict[str, object] = field(default_factory=dict)
    strategy: Optional[str] = None  # binder_ner inference strategy override
    trained_as: Optional[str] = None  # reuse another system's trained pipeline
    quantized: bool = False  # that pipeline made int8 by `python -m spacy_binder quantize`


# Systems timed and measured for memory; the others are accuracy variants.
TIMED = ("binder_ner", "binder_ner int8", "spancat", "ner")


def plan_systems(corpus: str, nested: bool, sizes: List[int], ablations: bool, binder_cfg: Path) -> List[System]:
    """binder_ner (and its int8 copy) against spancat, and ner on flat data;
    with `ablations`, binder_ner variants too. `sizes`: spancat's ngram sizes."""
    binder = {"paths.descriptions": str(TYPES / f"{corpus}.jsonl")}
    key = "sc" if nested else "ents"
    systems = [
        System("binder_ner", binder_cfg, key, binder),
        System("binder_ner int8", binder_cfg, key, trained_as="binder_ner", quantized=True),
        System("spancat", SPANCAT_CONFIG, "sc", {"components.spancat.suggester.sizes": sizes}),
    ]
    if not nested:
        systems.append(System("ner", NER_CONFIG, "ents"))
    if ablations:
        no_position = {
            **binder,
            "components.binder_ner.loss.start_weight": 0.0,
            "components.binder_ner.loss.end_weight": 0.0,
            "components.binder_ner.loss.span_weight": 1.0,
        }
        global_thresholds = {**binder, "components.binder_ner.model.thresholds": "global"}
        systems += [
            System("binder_ner no position objectives", binder_cfg, key, no_position),
            System("binder_ner learned global thresholds", binder_cfg, key, global_thresholds),
            System("binder_ner joint inference", binder_cfg, key, strategy="joint", trained_as="binder_ner"),
        ]
    return systems


@dataclass
class TrainingRun:
    """Untrained pipelines, their batches and their own config's optimizer."""

    nlps: Dict[str, Language]
    batches: Dict[str, List[List[Example]]]
    optimizers: Dict[str, Optimizer]

    def words(self, name: str) -> int:
        return sum(len(eg) for batch in self.batches[name] for eg in batch)

    def steps(self, name: str) -> None:
        """One update step of system `name` on each of its batches."""
        for batch in self.batches[name]:
            self.nlps[name].update(batch, sgd=self.optimizers[name])


def prepare_training(systems: List[System], shared: Dict[str, object], steps: int) -> TrainingRun:
    """The trainable timed systems on the same `steps` batches, warmed up by one update.

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
        run.batches[s.name] = list(minibatch_by_words(examples[: steps * 64], size=BATCH_WORDS))[:steps]
        training = registry.resolve(nlp.config.interpolate()["training"], schema=ConfigSchemaTraining)
        run.optimizers[s.name] = training["optimizer"]
    for name, nlp in run.nlps.items():  # warm-up: lazy layers, allocator
        nlp.update(run.batches[name][0], sgd=run.optimizers[name])
    return run


def train(config: Path, output: Path, overrides: Dict[str, object]) -> float:
    """`spacy train` in this process; returns its wall time in seconds."""
    start = time.perf_counter()
    spacy_train(config, output, use_gpu=-1, overrides=overrides)
    return time.perf_counter() - start


class Tuning(NamedTuple):
    """The settings of configs/binder_fewshot.cfg that the few-shot scripts vary."""

    steps: int
    learn_rate: float
    mention_weight: float
    # (similarity, weight of the context-context objective, weight of the
    # context-label objective), or None: off.
    objectives: Optional[Tuple[str, float, float]] = None
    # CONTaiNER's stopping rule: stop after the step whose support loss rose
    # above the step before's (`steps`: at most).
    stop_on_rise: bool = False


def fewshot_tuning(steps: int = 0, learn_rate: float = 0.0, mention_weight: Optional[float] = None) -> Tuning:
    """The fine-tuning settings: those given, else (0 or None) those of
    configs/binder_fewshot.cfg, where they are declared."""
    config = load_config(FEWSHOT_CONFIG, interpolate=False)
    return Tuning(
        steps or config["training"]["max_steps"],
        learn_rate or config["training"]["optimizer"]["learn_rate"],
        config["initialize"]["after_init"]["loss"]["mention_weight"] if mention_weight is None else mention_weight,
    )


def fine_tune(
    source: Path, train_path: Path, output: Path, types_path: Path, mode: str, tuning: Tuning, keep: bool = False,
) -> Tuple[Language, float]:
    """Fine-tune the `source` pipeline on `train_path` (a .spacy file or a folder
    of them) with configs/binder_fewshot.cfg, which also makes those Docs its
    support set; `keep`: keep the source's types too. Returns the pipeline and
    the training seconds."""
    similarity, context_weight, label_weight = tuning.objectives or ("cosine", 0.0, 0.0)
    overrides = {
        "initialize.after_init.loss.context_weight": context_weight,
        "initialize.after_init.loss.label_weight": label_weight,
        "initialize.after_init.loss.similarity": similarity,
        "paths.source": str(source),
        "paths.train": str(train_path),
        "paths.descriptions": str(types_path),
        "training.max_steps": tuning.steps,
        "training.eval_frequency": tuning.steps,
        "training.optimizer.learn_rate": tuning.learn_rate,
        "initialize.after_init.loss.mention_weight": tuning.mention_weight,
        "initialize.before_init.mode": mode,
        "initialize.before_init.keep_existing": keep,
    }
    seconds = 0.0
    if tuning.stop_on_rise:
        probe = {**overrides, "training.eval_frequency": 1, "training.logger.@loggers": "spacy_binder_benchmark.StepLosses.v1"}
        seconds += train(FEWSHOT_CONFIG, output / "probe", probe)
        overrides["training.max_steps"] = overrides["training.eval_frequency"] = stop_step(STEP_LOSSES)
    seconds += train(FEWSHOT_CONFIG, output, overrides)
    return spacy.load(output / "model-last"), seconds  # fixed steps, no dev set: the last model


def stop_step(losses: Sequence[float]) -> int:
    """CONTaiNER's rule on the support loss of each step (before its update), as
    spaCy's max_steps (which counts steps from 0): the first step whose loss rose,
    its update included; the last step if none rose."""
    for step in range(1, len(losses)):
        if losses[step] > losses[step - 1]:
            return step
    return len(losses) - 1


def evaluate_decodings(
    nlp: Language, corpus: Reader, decodings: Sequence[Mapping[str, Any]], labels: Optional[Collection[str]] = None
) -> List[Dict[str, Any]]:
    """`evaluate` under each decoding ({"support_weight": w, "threshold": t},
    either left out: the pipe's own), from one pass of the pipeline: its scores
    (with the support margins) are decoded once per decoding. The prediction
    seconds are the whole pass's, every decoding included (`_support_speed` in
    fewshot.py times prediction itself)."""
    ner = nlp.get_pipe("binder_ner")
    configured = {"support_weight": ner.support_weight, "threshold": ner.threshold}
    decodings = [{**configured, **decoding} for decoding in decodings]
    examples = list(corpus(nlp))
    found: List[List[List[Tuple[int, int, str]]]] = [[] for _ in decodings]
    # The margins are exact for every weight down to the one predicted with.
    predict_weight = min((d["support_weight"] for d in decodings if d["support_weight"] > 0), default=0.0)
    start = time.perf_counter()
    try:
        for batch in minibatch(examples, PIPE_BATCH):
            docs = [eg.predicted for eg in batch]
            scores = ner.predict(docs, support_weight=predict_weight)
            for decoding, spans in zip(decodings, found):
                ner.support_weight, ner.threshold = decoding["support_weight"], decoding["threshold"]
                ner.set_annotations(docs, scores)
                spans.extend([(span.start, span.end, span.label_) for span in doc.spans[ner.key]] for doc in docs)
    finally:
        ner.support_weight, ner.threshold = configured["support_weight"], configured["threshold"]
    seconds = time.perf_counter() - start
    results = []
    for spans in found:
        for eg, doc_spans in zip(examples, spans):
            eg.predicted.spans[ner.key] = [Span(eg.predicted, s, e, label) for s, e, label in doc_spans]
        results.append({**score(examples, ner.key, labels), "predict_seconds": seconds})
    return results


def evaluate_thresholds(
    nlp: Language, corpus: Reader, thresholds: Sequence[float], labels: Optional[Collection[str]] = None
) -> Dict[str, Any]:
    """`evaluate` at the first threshold, and under "by_threshold" at each
    (one for every label), all from one pass (`evaluate_decodings`)."""
    results = evaluate_decodings(nlp, corpus, [{"threshold": t} for t in thresholds], labels)
    return {**results[0], "by_threshold": {str(t): result for t, result in zip(thresholds, results)}}
