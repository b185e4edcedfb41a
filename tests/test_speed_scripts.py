"""Smoke runs of the speed scripts: the int8 library comparison, the training profile
and corpus annotation's scaling."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from spacy.tokens import DocBin

from corpora import SHARED_DATA
from spacy_binder.convert import convert_corpus
from util import make_examples

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_quantize_libraries_compares_f1_and_speed(trained_nested, tmp_path):
    trained_nested.to_disk(tmp_path / "pipeline")
    refs = [eg.reference for eg in make_examples(trained_nested)]
    DocBin(docs=refs).to_disk(tmp_path / "eval.spacy")
    out = run(
        "quantize_libraries.py", str(tmp_path / "pipeline"), str(tmp_path / "eval.spacy"),
        "--rounds", "1", "--only", "torch.ao int8,torchao int8 compiled (spacy-binder)",
    )
    rows = [line.strip("| ").split(" | ") for line in out.splitlines() if line.startswith("| ") and not line.startswith("| encoder")]
    assert [row[0] for row in rows] == ["fp32", "torch.ao int8", "torchao int8 compiled (spacy-binder)"]
    f1 = {name: float(value) for name, value, *_ in rows}
    # The pipeline was overfit on these sentences: fp32 finds every mention and
    # int8 keeps (nearly) all of them. A scorer reading other spans than the
    # pipeline writes, or a swap that breaks the encoder, would fall short.
    assert f1["fp32"] == 100.0
    speed = {name: float(words_per_second.replace(",", "")) for name, _, _, words_per_second, _ in rows}
    for name, _, delta, _, ratio in rows[1:]:
        assert f1[name] >= 90.0 and float(delta) == round(f1[name] - 100.0, 1)
        assert float(ratio) == pytest.approx(speed[name] / speed["fp32"], abs=0.01)


def test_profile_training_times_binder_beside_spancat(tiny_bert, tmp_path):
    docs, _ = convert_corpus("jsonl", SHARED_DATA / "genia" / "train.jsonl")
    corpus = tmp_path / "genia"
    corpus.mkdir()
    for split, part in (("train", docs[:40]), ("dev", docs[40:48])):
        DocBin(docs=part).to_disk(corpus / f"{split}.spacy")
    out = run("profile_training.py", str(corpus), "--steps", "2", "--rounds", "1", "--encoder", str(tiny_bert),
              "--work-dir", str(tmp_path / "work"))
    assert [line.split(":")[0] for line in out.splitlines() if "s/step" in line] == ["binder_ner", "spancat"]
    assert "cumulative" in out and "text_encoder_forward" in out


def test_annotate_scaling_times_local_and_ray_and_estimates_pubmed(trained_nested, tmp_path):
    trained_nested.to_disk(tmp_path / "pipeline")
    DocBin(docs=[eg.reference for eg in make_examples(trained_nested)]).to_disk(tmp_path / "docs.spacy")
    results, report = tmp_path / "scaling.json", tmp_path / "SCALING.md"
    run(
        "annotate_scaling.py", str(tmp_path / "pipeline"), str(tmp_path / "docs.spacy"), str(results), str(report),
        "--docs", "8", "--runs", "1", "--configs", "local:1:1,ray:1:1", "--shard-docs", "4",
        "--busy-seconds", "1", "--work-dir", str(tmp_path / "work"),
    )
    data = json.loads(results.read_text())
    assert set(data["configs"]) == {"local:1:1", "ray:1:1"} and data["input"]["docs"] == 8
    for row in data["configs"].values():
        # A fresh process that imports spaCy and loads the pipeline takes seconds; a
        # command that failed at once, or a timer that missed it, would not.
        assert 1.0 <= row["startup_s"] and len(row["timings"]["all"]) == 1
        assert row["timings"]["all"][0] >= 1.0  # the whole run is such a process too
    text = report.read_text()
    assert "| local:1:1 |" in text and "| ray:1:1 |" in text and "Two busy processes did" in text
