"""Benchmark hooks for `spacy train --code`: a timing logger, a loss recorder and a batcher.

The logger prints spaCy's usual console table and, at the end, one line
`BENCHMARK_TIMING {json}` with the words seen and the seconds spent in update
steps. Evaluation steps also save the model, so their duration is replaced by
the median duration of a plain step: the figure is training speed alone.

The loss recorder (in-process runs, evaluating every step) keeps each step's
training loss of binder_ner in `STEP_LOSSES`: on a support set that is one
batch, that is the support loss CONTaiNER's stopping rule watches.

The batcher makes every system see the same batches. spaCy shuffles the
training set each epoch with the global `random`, which components also draw
from while they train, so from the second epoch on the order would depend on
the system; this batcher reorders each epoch from its own seed instead.
"""
import itertools
import json
import random
import statistics
import sys
import time
from typing import IO, Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from spacy.language import Language
from spacy.training import Example
from spacy.training.batchers import minibatch_by_words
from spacy.training.loggers import console_logger
from spacy.util import registry

MARKER = "BENCHMARK_TIMING"
STEP_LOSSES: List[float] = []


@registry.loggers("spacy_binder_benchmark.TimingLogger.v1")
def timing_logger(progress_bar: bool = False) -> Callable:
    console = console_logger(progress_bar=progress_bar)

    def setup(
        nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr
    ) -> Tuple[Callable[[Optional[Dict[str, Any]]], None], Callable[[], None]]:
        log_console, finalize_console = console(nlp, stdout, stderr)
        plain, evaluated, last = [], [], [time.perf_counter()]
        record: Dict[str, Any] = {"words": 0, "steps": 0, "evaluations": []}

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            now = time.perf_counter()
            (plain if info is None else evaluated).append(now - last[0])
            record["steps"] += 1
            if info is not None:
                record["words"] = info["words"]
                record["evaluations"].append(
                    {"step": info["step"], "words": info["words"], "score": info["score"]}
                )
            log_console(info)
            last[0] = time.perf_counter()

        def finalize() -> None:
            step_seconds = statistics.median(plain) if plain else statistics.median(evaluated)
            record["train_seconds"] = sum(plain) + step_seconds * len(evaluated)
            record["wall_seconds"] = sum(plain) + sum(evaluated)
            stdout.write(f"{MARKER} {json.dumps(record)}\n")
            stdout.flush()
            finalize_console()

        return log_step, finalize

    return setup


@registry.loggers("spacy_binder_benchmark.StepLosses.v1")
def step_losses_logger(progress_bar: bool = False) -> Callable:
    console = console_logger(progress_bar=progress_bar)

    def setup(nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr):
        log_console, finalize_console = console(nlp, stdout, stderr)
        STEP_LOSSES.clear()

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            if info is not None:  # every step, with training.eval_frequency = 1
                STEP_LOSSES.append(info["losses"].get("binder_ner", 0.0))
            log_console(info)

        return log_step, finalize_console

    return setup


@registry.batchers("spacy_binder_benchmark.same_batches.v1")
def same_batches(
    size: int, tolerance: float, discard_oversize: bool, get_length: Optional[Callable] = None, seed: int = 0
) -> Callable[[Iterable[Example]], Iterator[List[Example]]]:
    """`spacy.batch_by_words.v1` over an epoch order that depends on the seed alone."""
    epochs = itertools.count()

    def batch(examples: Iterable[Example]) -> Iterator[List[Example]]:
        ordered = sorted(examples, key=lambda eg: (eg.reference.text, len(eg)))
        random.Random(seed + next(epochs)).shuffle(ordered)
        yield from minibatch_by_words(
            ordered, size=size, tolerance=tolerance, discard_oversize=discard_oversize, get_length=get_length or len
        )

    return batch
