"""Inference time and peak memory of one pipeline, in a process of its own.

python benchmarks/infer_memory.py MODEL DOCS.spacy [--n-words N]
Prints one JSON line. Without --n-words it runs nlp.pipe (batch 64) over every
document; with it, over one document made of the first N words of the
documents (repeated if needed). Peak RSS is the process's high-water mark,
`growth_mb` its rise over the loaded, warmed-up pipeline.
"""
import json
import resource
import time
from pathlib import Path
from typing import List

import spacy
import typer
from spacy.tokens import Doc, DocBin


def long_doc(nlp, docs: List[Doc], n_words: int) -> Doc:
    words, spaces = [], []
    while len(words) < n_words:
        for doc in docs:
            words.extend(t.text for t in doc)
            spaces.extend(True for _ in doc)
    return Doc(nlp.vocab, words=words[:n_words], spaces=spaces[:n_words])


def main(model: Path, docs_path: Path, n_words: int = 0, batch_size: int = 64) -> None:
    nlp = spacy.load(model)
    refs = list(DocBin().from_disk(docs_path).get_docs(nlp.vocab))
    if n_words:
        docs = [long_doc(nlp, refs, n_words)]
    else:
        docs = [Doc(nlp.vocab, words=[t.text for t in d], spaces=[bool(t.whitespace_) for t in d]) for d in refs]
    list(nlp.pipe(["warm up"]))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    list(nlp.pipe(docs, batch_size=batch_size))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    words = sum(len(doc) for doc in docs)
    print(json.dumps({
        "words": words,
        "seconds": round(seconds, 3),
        "seconds_per_1k_words": round(1000 * seconds / max(words, 1), 4),
        "peak_rss_mb": round(peak / 1024),
        "growth_mb": round((peak - before) / 1024),
    }))


if __name__ == "__main__":
    typer.run(main)
