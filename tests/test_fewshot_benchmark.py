"""A smoke run of `spacy project run fewshot-benchmark`: 5-shot, one seed, one target.

The real benchmark fine-tunes MiniLM pipelines for hours; this one trains the
tiny encoder for a few steps and scores 30 sentences, to keep the workflow, its
results and its report working. Resuming and refusing a results file:
tests/test_fewshot_results.py.
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from corpora import SHARED_DATA
from spacy_binder.labels import read_type_descriptions
from test_benchmark import assert_f1, assert_scored

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = (
    "support only", "nearest support", "fine-tuned", "fine-tuned + source kept", "NNShot", "spancat",
    "(e) prompts + objectives (JS)", "label-aware (paper)",
)
# What each run scores: a pipeline with a support set is decoded several ways.
DECODED = {
    "nearest support": ("nearest support", "nearest support + descriptions"),
    **{
        name: (
            name, f"{name}, nearest support", f"{name}, nearest support + descriptions",
            f"{name}, descriptions at the new-type threshold",
        )
        for name in ("fine-tuned", "(e) prompts + objectives (JS)")
    },
    "label-aware (paper)": ("label-aware (paper)", "label-aware (paper), nearest label"),
}


def test_fewshot_benchmark_workflow_quick_mode(tiny_bert, tmp_path):
    for folder in ("project", "configs", "assets", "benchmarks"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("results", "training", "corpus"))
    results, report = tmp_path / "results", tmp_path / "FEWSHOT.md"
    args = {
        "encoder": tiny_bert, "data_dir": SHARED_DATA, "fewshot_source_steps": 4,
        "fewshot_source_eval_frequency": 4, "fewshot_targets": "ncbi", "fewshot_shots": "5",
        "fewshot_seeds": "1", "fewshot_steps": 3, "fewshot_max_eval": 30,  # other seeds: tests/test_sampler.py
        "bench_results": results, "fewshot_report": report, "fewshot_systems": ",".join(SYSTEMS),
        "fewshot_supervised": "",
    }
    overrides = [item for key, value in args.items() for item in (f"--vars.{key}", str(value))]
    done = subprocess.run(
        [sys.executable, "-m", "spacy", "project", "run", "fewshot-benchmark", str(tmp_path / "project"), *overrides],
        cwd=tmp_path, capture_output=True, text=True, timeout=1500,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    result = json.loads((results / "fewshot_ncbi.json").read_text())
    assert result["eval_split"] == "test" and result["pool_split"] == "dev" and result["eval_docs"] == 30
    expected = {"zero-shot", "zero-shot, new-type threshold", "zero-shot | (e) prompts + objectives (JS)"}
    expected |= {f"{system} | k=5 | seed=1" for name in SYSTEMS for system in DECODED.get(name, (name,))}
    token_sources = {f"source before fine-tuning | label-aware (paper){decoding}"
                     for decoding in (", nearest label", ", 5-shot source support")}
    assert set(result["runs"]) == expected | {"source before fine-tuning"} | token_sources
    speed = result["prompt_speed"]["(e) prompts + objectives (JS)"]
    assert speed["docs"] == 30 and speed["words_per_second_prompt"] > 0 and speed["words_per_second_no_prompt"] > 0
    speed = result["support_speed"]
    assert speed["docs"] == 30 and speed["words_per_second_support"] > 0 and speed["words_per_second_no_support"] > 0
    # The first 30 test sentences of NCBI-disease hold Disease mentions, CoNLL-2003's
    # all four of its types: each is scored on its own types only, the source kept or not.
    conll = set(read_type_descriptions(ROOT / "assets" / "entity_types" / "conll.jsonl"))
    assert_scored(result["runs"].pop("source before fine-tuning"), conll, conll)
    for key in token_sources:
        assert_f1(result["runs"].pop(key))  # 30 CoNLL-2003 test sentences, the tiny source finding few
    for key, run in result["runs"].items():
        assert_scored(run, {"Disease"}, {"Disease"})
        if " | k=" in key:
            assert run["support_mentions"]["Disease"] >= 5  # the sampler reached K
    assert_f1(result["runs"]["fine-tuned + source kept | k=5 | seed=1"]["source_test"])
    assert result["runs"]["fine-tuned | k=5 | seed=1"]["train_seconds"] > 0
    token_level = result["runs"]["label-aware (paper) | k=5 | seed=1"]
    assert token_level["train_seconds"] > 0 and token_level["words_per_second"] > 0
    assert_f1(token_level["source_test"])  # forgetting: back on CoNLL-2003 after fine-tuning
    assert (tmp_path / "project" / "training" / "fewshot" / "ncbi" / "k5_seed1" / "support.spacy").exists()

    text = report.read_text()
    assert "## Targets" in text and "### ncbi (support from dev, scored on test: 30 docs)" in text
    for row in ("| (0) zero-shot from descriptions |", "| (b) source binder_ner fine-tuned on the support set |",
                "| NNShot (source-trained encoder) |", "| spancat on the support set alone |",
                "ncbi: (b) beats NNShot and spancat at 5-shot", "ncbi: zero-shot Disease F1 ≥ 30",
                "| (e) (d) with Jensen-Shannon |", "ncbi: best of (c)-(f) beats (b) and NNShot by 5 F1 at 5-shot",
                "ncbi: prompts cost ≤ 25% of inference speed ((e) prompts + objectives (JS) source",
                "## Nearest-support decoding", "| (g) nearest support, source as is (no training) |",
                "| (j) fine-tuned, nearest support + descriptions |", "| (e), nearest support |",
                "| (k) fine-tuned, descriptions alone at the new-type threshold (0.07) |",
                "| (0) zero-shot, at the new-type threshold (0.07) |",
                "ncbi: 5-shot, the best binder_ner row beats (b) and NNShot by ≥ 5 F1",
                "ncbi: 5-shot ≥ zero-shot + 10 F1", "ncbi: nearest-support prediction ≤ 1.5x the time of plain prediction",
                "## The few-shot paper's method as its authors built it", "| label-aware contrastive, as its authors released it |",
                "| the same, decoded by the nearest label of its prompt (support set not read) |",
                "ncbi: 5-shot, the paper's method beats NNShot"):
        assert row in text
    # The user-facing steps for one support set, on the source the benchmark trained.
    outputs = {}
    for command in ("fewshot-sample", "fewshot-finetune", "fewshot-evaluate",
                    "label-aware-source", "label-aware-finetune", "label-aware-evaluate"):
        step = subprocess.run(
            [sys.executable, "-m", "spacy", "project", "run", command, str(tmp_path / "project"), *overrides],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )
        assert step.returncode == 0, step.stdout[-4000:] + step.stderr[-4000:]
        outputs[command] = step.stdout
    assert "of 923 sentences drawn (5-shot, seed 1)" in outputs["fewshot-sample"]
    metrics = json.loads((tmp_path / "project" / "metrics" / "fewshot_ncbi_k5_seed1.json").read_text())
    assert set(metrics) == {"test"}  # not dev: the support is from dev
    assert_scored(metrics["test"], {"Disease"}, {"Disease"})
    metrics = json.loads((tmp_path / "project" / "metrics" / "label_aware_ncbi_k5_seed1.json").read_text())
    assert set(metrics) == {"test"} and metrics["test"]["words_per_second"] > 0
    assert_f1(metrics["test"])
