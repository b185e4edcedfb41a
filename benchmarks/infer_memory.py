"""Inference time and peak memory of one pipeline, in a process of its own.

python benchmarks/infer_memory.py MODEL DOCS.spacy [--n-words N] [--repeats R]
Prints the time of each run, then one JSON line. Without --n-words it runs
nlp.pipe (batch 64) over every document; with it, over one document made of the
first N words of the documents (repeated if needed). The time is the best of R runs. Peak RSS is
the process's high-water mark (VmHWM: getrusage's ru_maxrss would carry over
the parent's peak through fork and exec), `growth_mb` its rise over the
loaded, warmed-up pipeline.
"""
import json
from pathlib import Path
from typing import List

import spacy
import typer
from spacy.tokens import Doc
from spacy.training import Corpus

from common import PIPE_BATCH, alternate


def long_doc(nlp, docs: List[Doc], n_words: int) -> Doc:
    words, spaces = [], []
    while len(words) < n_words:
        for doc in docs:
            words.extend(t.text for t in doc)
            spaces.extend(True for _ in doc)
    return Doc(nlp.vocab, words=words[:n_words], spaces=spaces[:n_words])


def high_water_mark_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("No VmHWM in /proc/self/status: peak memory needs Linux.")


def main(model: Path, docs_path: Path, n_words: int = 0, batch_size: int = PIPE_BATCH, repeats: int = 1) -> None:
    nlp = spacy.load(model)
    corpus = Corpus(docs_path)

    def docs() -> List[Doc]:
        """Unannotated docs, made afresh for each run."""
        texts = [eg.predicted for eg in corpus(nlp)]
        return [long_doc(nlp, texts, n_words)] if n_words else texts

    words = sum(len(doc) for doc in docs())
    list(nlp.pipe(["warm up"]))
    before = high_water_mark_mb()
    runs = {"nlp.pipe": lambda fresh: list(nlp.pipe(fresh, batch_size=batch_size))}
    seconds = min(alternate(runs, repeats, prepare=lambda name: docs())["nlp.pipe"])
    peak = high_water_mark_mb()
    print(json.dumps({
        "words": words,
        "seconds": round(seconds, 3),
        "seconds_per_1k_words": round(1000 * seconds / max(words, 1), 4),
        "peak_rss_mb": round(peak),
        "growth_mb": round(peak - before),
    }))


if __name__ == "__main__":
    typer.run(main)
