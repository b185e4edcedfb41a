"""A smoke run of `spacy project run benchmark` on a few sentences of each corpus.

The real benchmark trains for many minutes per system; this one trains the tiny
encoder for a few steps, to keep the command, its results and its report working.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from corpora import SHARED_DATA

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_command_on_a_few_sentences(tiny_bert, tmp_path):
    for folder in ("project", "configs", "assets", "benchmarks"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("results", "training", "corpus"))
    results, report = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    args = {
        "encoder": tiny_bert, "data_dir": SHARED_DATA, "bench_steps": 4, "bench_eval_frequency": 2, "bench_warmup_steps": 1,
        "bench_max_sentences": 24, "bench_scaling": "300,600", "bench_results": results, "bench_report": report,
    }
    overrides = [item for key, value in args.items() for item in (f"--vars.{key}", str(value))]
    done = subprocess.run(
        [sys.executable, "-m", "spacy", "project", "run", "benchmark", str(tmp_path / "project"), *overrides],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    expected = {
        "genia": {"binder_ner", "binder_ner int8", "spancat", "binder_ner no position objectives",
                  "binder_ner learned global thresholds", "binder_ner joint inference"},
        "ncbi": {"binder_ner", "binder_ner int8", "spancat", "ner"},
        "conll": {"binder_ner", "binder_ner int8", "spancat", "ner"},
    }
    for corpus, systems in expected.items():
        result = json.loads((results / f"{corpus}.json").read_text())
        assert set(result["systems"]) == systems
        assert result["nested"] == (corpus == "genia")
        assert result["eval_split"] == ("dev" if corpus == "genia" else "test")
        trained = {name: s["training"] for name, s in result["systems"].items()}
        # The same batches for every system: the same words seen.
        assert len({t["words"] for t in trained.values()}) == 1 and trained["binder_ner"]["words"] > 0
        for name, s in result["systems"].items():
            assert 0.0 <= s["f1"] <= 1.0 and s["per_type"] is not None
        for name in systems & {"binder_ner", "binder_ner int8", "spancat", "ner"}:
            s = result["systems"][name]
            assert s["inference_words_per_second"] > 0 and s["inference_memory"]["peak_rss_mb"] > 0
            trains = name != "binder_ner int8"
            assert (s["training_words_per_second_alternating"] is not None) == trains
        assert result["bare_encoder"]["inference_words_per_second"] > 0
        assert 0.0 < result["spancat_suggester"]["gold_reachable"] <= 1.0
    scaling = json.loads((results / "ncbi.json").read_text())["systems"]["ner"]["scaling"]
    assert {n: m["words"] for n, m in scaling.items()} == {"300": 300, "600": 600}
    assert json.loads((results / "ncbi.json").read_text())["systems"]["binder_ner int8"]["scaling"] is None

    text = report.read_text()
    assert "## Targets" in text and "## Ablations (genia, dev)" in text
    for row in ("| genia | dev | 4 | spancat |", "| ncbi | test | 4 | ner |", "| conll | test | 4 | binder_ner |",
                "binder_ner learned global thresholds", "| ncbi | bare encoder forward |",
                "| conll | test | 4 | binder_ner int8 |", "ncbi: int8 F1 within 0.5 of fp32", "conll: training ≥ 1.0 × ner"):
        assert row in text
