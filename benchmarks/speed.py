"""Training and inference speed of binder_ner next to the bare encoder, in one run.

python benchmarks/speed.py [--train-steps 20] [--long-words 10000]

Inference alternates binder_ner and the bare text encoder (the same Hugging Face
model, tokenizer and windows) over the same documents, so that the ratio holds
on a noisy machine. Peak memory of one long document is measured in a fresh
subprocess, as the growth of peak RSS over the loaded pipeline.
"""
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import typer
from thinc.api import Adam

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from corpora import SHARED_DATA, genia_pipeline, read_genia  # noqa: E402

app = typer.Typer()


def bare_encoder_pass(ner, docs):
    """The text encoder alone: same windows, tokenization and forward pass."""
    ner.model.layers[0].predict(docs)


@app.command()
def main(train_steps: int = 20, batch_size: int = 16, n_docs: int = 512, rounds: int = 3, long_words: int = 10000, out: Path = Path("benchmarks/results/speed.json")):
    nlp, train = genia_pipeline(400)
    ner = nlp.get_pipe("binder_ner")
    optimizer = Adam(learn_rate=1e-4)
    rng = random.Random(0)
    start, words = time.perf_counter(), 0
    for _ in range(train_steps):
        batch = rng.sample(train, batch_size)
        words += sum(len(eg.predicted) for eg in batch)
        nlp.update(batch, sgd=optimizer)
    train_wps = words / (time.perf_counter() - start)
    print(f"training: {train_wps:.0f} words/s ({train_steps} steps of {batch_size} sentences)")

    docs = [eg.predicted for eg in read_genia(SHARED_DATA / "genia" / "train.jsonl", nlp, n_docs)]
    n_words = sum(len(doc) for doc in docs)
    timings = {"binder_ner": [], "bare_encoder": []}
    for _ in range(rounds):
        start = time.perf_counter()
        list(ner.pipe(docs, batch_size=64))
        timings["binder_ner"].append(time.perf_counter() - start)
        start = time.perf_counter()
        for i in range(0, len(docs), 64):
            bare_encoder_pass(ner, docs[i : i + 64])
        timings["bare_encoder"].append(time.perf_counter() - start)
    binder_wps = n_words / min(timings["binder_ner"])
    bare_wps = n_words / min(timings["bare_encoder"])
    print(f"inference: binder_ner {binder_wps:.0f} words/s, bare encoder {bare_wps:.0f} words/s, ratio {binder_wps / bare_wps:.2f}")

    out.parent.mkdir(parents=True, exist_ok=True)
    pipeline = out.parent / "pipeline"
    nlp.to_disk(pipeline)
    memory = json.loads(subprocess.run(
        [sys.executable, __file__.replace("speed.py", "long_doc_memory.py"), str(pipeline), str(long_words)],
        capture_output=True, text=True, check=True,
    ).stdout)
    print(f"long document: {memory}")
    result = {
        "train_words_per_second": train_wps,
        "binder_words_per_second": binder_wps,
        "bare_encoder_words_per_second": bare_wps,
        "ratio": binder_wps / bare_wps,
        "long_document": memory,
    }
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    app()
