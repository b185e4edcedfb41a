"""The benchmarks' shared scorer and timer (benchmarks/common.py), and a smoke
run of `spacy project run benchmark` on a few sentences of each corpus.

The real benchmark trains for many minutes per system; the smoke run trains the
tiny encoder for a few steps, to keep the command, its results and its report working.
"""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Set

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example

from corpora import SHARED_DATA
from spacy_binder.defaults import ENCODER
from spacy_binder.encoders import resolve_encoder_name
from spacy_binder.labels import read_type_descriptions
from util import DESCRIPTIONS, make_examples

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import alternate, evaluate, score  # noqa: E402


def example(gold, predicted, ents: bool = False) -> Example:
    """Six words with gold and predicted (start, end, label) spans."""
    vocab = spacy.blank("en").vocab
    docs = []
    for spans in (predicted, gold):
        doc = Doc(vocab, words=list("abcdef"))
        doc.spans["sc"] = [Span(doc, start, end, label) for start, end, label in spans]
        if ents:
            doc.ents = list(doc.spans["sc"])
        docs.append(doc)
    return Example(*docs)


def test_score_counts_exact_labelled_spans():
    gold = [(0, 2, "X"), (0, 1, "Y"), (2, 3, "Y"), (4, 6, "X")]
    # Right, right (nested in the first), wrong label, wrong end, not in gold.
    predicted = [(0, 2, "X"), (0, 1, "Y"), (2, 3, "X"), (4, 5, "X"), (5, 6, "Y")]
    scores = score([example(gold, predicted)])
    assert (scores["precision"], scores["recall"]) == pytest.approx((2 / 5, 2 / 4))
    assert scores["f1"] == pytest.approx(2 * (2 / 5) * (2 / 4) / (2 / 5 + 2 / 4))
    per_type = {f"{label} {key}": prf[key] for label, prf in scores["per_type"].items() for key in ("p", "r")}
    assert per_type == pytest.approx({"X p": 1 / 3, "X r": 1 / 2, "Y p": 1 / 2, "Y r": 1 / 2})
    # Only X's spans, on both sides.
    only_x = score([example(gold, predicted)], labels=["X"])
    assert (only_x["precision"], only_x["recall"], set(only_x["per_type"])) == (pytest.approx(1 / 3), 0.5, {"X"})


def test_score_reads_doc_ents_for_key_ents():
    gold, predicted = [(0, 2, "X"), (3, 4, "Y")], [(0, 2, "X"), (4, 6, "Y")]
    scores = score([example(gold, predicted, ents=True)], key="ents")
    assert (scores["precision"], scores["recall"]) == (0.5, 0.5)
    assert score([example(gold, predicted)], key="ents")["f1"] is None  # no doc.ents: nothing to score


def test_evaluate_scores_the_pipelines_own_predictions(trained_nested):
    """The overfit pipeline finds every mention of its training sentences: what
    the predicted docs held before is replaced, not scored."""

    def reader(nlp: Language) -> List[Example]:
        examples = make_examples(nlp)
        for eg in examples:
            eg.predicted.spans["sc"] = [Span(eg.predicted, 0, 1, "RNA")]
        return examples

    result = evaluate(trained_nested, reader)
    assert result["f1"] == pytest.approx(1.0) and set(result["per_type"]) == set(DESCRIPTIONS)
    assert result["predict_seconds"] > 0
    assert set(evaluate(trained_nested, make_examples, labels=["CELL"])["per_type"]) == {"CELL"}


def test_alternate_takes_turns_and_times_the_runs_alone(capsys):
    calls = []

    def prepare(name: str) -> str:
        time.sleep(0.2)  # untimed
        return name.upper()

    runs = {name: (lambda argument, name=name: calls.append((name, argument))) for name in ("a", "b")}
    seconds = alternate(runs, 3, prepare=prepare, words=1000)
    assert calls == [("a", "A"), ("b", "B")] * 3
    assert {name: len(times) for name, times in seconds.items()} == {"a": 3, "b": 3}
    assert max(max(times) for times in seconds.values()) < 0.1
    assert capsys.readouterr().out.splitlines()[:2] == [
        f"  round 1: a {1000 / seconds['a'][0]:.0f} words/s", f"  round 1: b {1000 / seconds['b'][0]:.0f} words/s",
    ]


def gold_labels(path: Path) -> Set[str]:
    return {span.label_ for doc in DocBin().from_disk(path).get_docs(spacy.blank("en").vocab) for span in doc.spans["sc"]}


def assert_f1(scores: Dict) -> None:
    """F1 is the harmonic mean of P and R (0 without either)."""
    p, r = scores["precision"], scores["recall"]
    assert scores["f1"] == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)


def assert_scored(scores: Dict, gold: Set[str], types: Set[str]) -> None:
    """Every gold type is scored and no type the pipeline was not given (or was
    not scored on); F1 is P and R's."""
    assert gold <= set(scores["per_type"]) <= types
    assert_f1(scores)


@pytest.mark.slow
def test_benchmark_command_on_a_few_sentences(tiny_bert, tmp_path):
    for folder in ("project", "configs", "assets", "benchmarks"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("results", "training", "corpus"))
    results, report = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    args = {
        "encoder": tiny_bert, "data_dir": SHARED_DATA, "bench_steps": 4, "bench_eval_frequency": 2, "bench_warmup_steps": 1,
        "bench_max_sentences": 24, "bench_scaling": "300", "bench_results": results, "bench_report": report,
        "bench_int8": "in-process",  # the compiled path is tests/test_quantize.py's
        # One nested and one flat corpus: CoNLL-2003 takes ncbi's path (flat, with ner).
        "bench_corpora": "genia,ncbi",
    }
    overrides = [item for key, value in args.items() for item in (f"--vars.{key}", str(value))]
    done = subprocess.run(
        [sys.executable, "-m", "spacy", "project", "run", "benchmark", str(tmp_path / "project"), *overrides],
        cwd=tmp_path, capture_output=True, text=True, timeout=3000,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]

    expected = {
        "genia": {"binder_ner", "binder_ner int8", "spancat", "binder_ner no position objectives",
                  "binder_ner learned global thresholds", "binder_ner joint inference"},
        "ncbi": {"binder_ner", "binder_ner int8", "spancat", "ner"},
    }
    for corpus, systems in expected.items():
        result = json.loads((results / f"{corpus}.json").read_text())
        assert set(result["systems"]) == systems
        assert result["nested"] == (corpus == "genia")
        assert result["eval_split"] == ("dev" if corpus == "genia" else "test")
        trained = {name: s["training"] for name, s in result["systems"].items()}
        # The same batches for every system: the same words seen.
        assert len({t["words"] for t in trained.values()}) == 1 and trained["binder_ner"]["words"] > 0
        gold = gold_labels(tmp_path / "project" / "training" / "benchmark" / corpus / "corpus" / f"{result['eval_split']}.spacy")
        types = set(read_type_descriptions(ROOT / "assets" / "entity_types" / f"{corpus}.jsonl"))
        for name, s in result["systems"].items():
            assert_scored(s, gold, types)
        for name in systems & {"binder_ner", "binder_ner int8", "spancat", "ner"}:
            s = result["systems"][name]
            assert s["inference_words_per_second"] > 0 and s["inference_memory"]["peak_rss_mb"] > 0
            trains = name != "binder_ner int8"
            assert (s["training_words_per_second_alternating"] is not None) == trains
        assert result["bare_encoder"]["inference_words_per_second"] > 0
        assert 0.0 < result["spancat_suggester"]["gold_reachable"] <= 1.0
    scaling = json.loads((results / "ncbi.json").read_text())["systems"]["ner"]["scaling"]
    assert {n: m["words"] for n, m in scaling.items()} == {"300": 300}
    assert json.loads((results / "ncbi.json").read_text())["systems"]["binder_ner int8"]["scaling"] is None

    text = report.read_text()
    assert "## Targets" in text and "## Ablations (genia, dev)" in text
    for row in ("| genia | dev | 4 | spancat |", "| ncbi | test | 4 | ner |", "| ncbi | test | 4 | binder_ner |",
                "binder_ner learned global thresholds", "| ncbi | bare encoder forward |",
                "| ncbi | test | 4 | binder_ner int8 |", "ncbi: int8 F1 within 0.5 of fp32", "ncbi: training ≥ 1.0 × ner"):
        assert row in text

    # The encoder ladder: one run.py results folder per encoder, in results/encoders.
    ncbi = json.loads((results / "ncbi.json").read_text())
    ncbi["systems"] = {name: ncbi["systems"][name] for name in ("binder_ner", "binder_ner int8")}
    for folder, encoder, rate in (("mpnet", "assets/encoders/all-mpnet-base-v2", 5e-5), ("small", str(tiny_bert), 1e-4)):
        (results / "encoders" / folder).mkdir(parents=True)
        ncbi["budget"].update(encoder=encoder, learn_rate=rate)
        (results / "encoders" / folder / "ncbi.json").write_text(json.dumps(ncbi))
    # Few-shot from each encoder's source: the default encoder's runs are in results/support.
    for folder, encoder, f1 in (("support", resolve_encoder_name(ENCODER), 0.2), ("encoders/mpnet", "assets/encoders/all-mpnet-base-v2", 0.4)):
        runs = {"zero-shot": {"f1": f1 / 2}}
        runs.update({f"fine-tuned | k=5 | seed={seed}": {"f1": f1 + seed / 100, "train_seconds": 10.0 * seed} for seed in (1, 2)})
        runs.update({f"nearest support | k=5 | seed={seed}": {"f1": f1} for seed in (1, 2)})
        fewshot = {"runs": runs, "settings": {"encoder": encoder}, "target": "ncbi", "eval_split": "test"}
        (results / folder).mkdir(parents=True, exist_ok=True)
        (results / folder / "fewshot_ncbi.json").write_text(json.dumps(fewshot))
    # The int8 routes (benchmarks/int8_routes.py, tested in test_quantize.py): a fake result.
    row = {"first_doc_s": 6.0, "short_words_per_s": 3000, "long_words_per_s": 3000, "f1": 86.0, "peak_rss_mb": 1300,
           "evaluate_s": 10.0, "break_even_words": 0.0}
    fast = {**row, "first_doc_s": 7.0, "long_words_per_s": 6000, "evaluate_s": 8.0, "break_even_words": 6000.0}
    (results / "int8_routes.json").write_text(json.dumps({
        "fp32": "fp32", "eval": "test.spacy", "texts": "train.spacy", "short_words": 1000, "long_words": 100000,
        "evaluate_words": 20000, "runs": {"fp32": [row], "int8 ahead": [fast]}, "best": {"fp32": row, "int8 ahead": fast},
    }))
    ladder = tmp_path / "LADDER.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "report.py"), str(results), str(ladder)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "## Encoders" not in text and "## int8 routes" not in text
    section, fewshot = ladder.read_text().split("## Encoders", 1)[1].split("Few-shot and zero-shot from", 1)
    fewshot, routes = fewshot.split("## int8 routes", 1)
    assert "| int8 ahead | 86.00 | 7.0 | 3,000 | 6,000 (2.00) | 6,000 | 1,300 | 8.0 (0.80) |" in routes
    assert "F1 on test.spacy; words/s of `nlp.pipe` on texts of train.spacy" in routes
    rows = [line for line in section.splitlines() if line.startswith("| ") and "corpus (split)" not in line]
    assert [row.split(" | ")[:4] for row in rows] == [
        ["| all-mpnet-base-v2", "ncbi (test)", "4", "5e-05"],
        [f"| {Path(str(tiny_bert)).name}", "ncbi (test)", "4", "0.0001"],
    ]
    rows = [line for line in fewshot.splitlines() if line.startswith("| ") and "target (split)" not in line]
    assert [row.split(" | ")[:5] for row in rows] == [
        ["| all-MiniLM-L6-v2", "ncbi (test)", "10.0", "20.0 ± 0.0 (n=2)", "21.5 ± 0.7 (n=2)"],
        ["| all-mpnet-base-v2", "ncbi (test)", "20.0", "40.0 ± 0.0 (n=2)", "41.5 ± 0.7 (n=2)"],
    ]
    assert rows[0].endswith("| – | – | 20 |")
