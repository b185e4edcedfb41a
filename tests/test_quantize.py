"""int8 text encoder: made by the command (compiled ahead of time) or at load
time, round trips, falls back where the compiled encoder does not fit, refuses
training; and the benchmark that compares the int8 routes in fresh processes."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import spacy
import torch
from spacy.tokens import DocBin
from typer.testing import CliRunner

from util import ROUND_TRIP_TEXTS as TEXTS
from util import annotations, int8_encoder, make_examples, make_nlp, package_and_load, predicted
from spacy_binder import BinderWarning
from spacy_binder import quantize
from spacy_binder.cli import app
from spacy_binder.quantize import AheadOfTime, Int8Transformer, build_target

ROUTES_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "int8_routes.py"
sys.path.insert(0, str(ROUTES_SCRIPT.parent))
from int8_routes import break_even_words  # noqa: E402

OVERRIDE = {"components.binder_ner.model.text_encoder.quantize": "int8"}


def assert_identical(expected, got):
    for (spans_a, scores_a), (spans_b, scores_b) in zip(expected, got):
        assert spans_a == spans_b
        assert numpy.array_equal(scores_a, scores_b)


@pytest.fixture(scope="module")
def pipelines(trained_nested, tmp_path_factory):
    """The fp32 pipeline on disk and its int8 copy written by the command."""
    folder = tmp_path_factory.mktemp("quantize")
    trained_nested.to_disk(folder / "fp32")
    result = CliRunner().invoke(app, ["quantize", str(folder / "fp32"), str(folder / "int8")])
    assert result.exit_code == 0, result.output
    return folder / "fp32", folder / "int8"


def test_command_writes_an_int8_pipeline_close_to_fp32(pipelines, trained_nested):
    int8 = spacy.load(pipelines[1])
    encoder = int8_encoder(int8)
    assert isinstance(encoder, Int8Transformer)
    weight = encoder.transformer.encoder.layer[0].attention.self.query.weight
    assert type(weight).__name__ == "Int8Tensor" and weight.qdata.dtype.is_signed
    fp32_spans = {(i, span) for i, doc in enumerate(trained_nested.pipe(TEXTS)) for span in predicted(doc)}
    int8_spans = {(i, span) for i, doc in enumerate(int8.pipe(TEXTS)) for span in predicted(doc)}
    assert fp32_spans
    assert len(fp32_spans & int8_spans) >= 0.8 * len(fp32_spans | int8_spans)


def test_loading_the_commands_pipeline_compiles_nothing(pipelines, monkeypatch):
    """The encoder compiled by the command is stored with the pipeline: a process
    that loads it predicts without torch.compile, and without compiling inductor's
    CPU probes (seconds in each process)."""
    expected = annotations(spacy.load(pipelines[0], config=OVERRIDE))  # compiled in this process

    def no_compile(*args, **kwargs):
        raise AssertionError("torch.compile or a CPU probe was called")

    monkeypatch.setattr(torch, "compile", no_compile)
    monkeypatch.setattr("torch._inductor.cpu_vec_isa.pick_vec_isa", no_compile)
    int8 = spacy.load(pipelines[1])
    assert int8_encoder(int8).ahead is not None
    assert_identical(expected, annotations(int8))


def test_a_compiled_encoder_for_another_cpu_falls_back_with_a_warning(pipelines, monkeypatch):
    expected = annotations(spacy.load(pipelines[1]))
    monkeypatch.setattr(quantize, "cpu_flags", lambda: frozenset({"fpu", "sse2"}))
    int8 = spacy.load(pipelines[1])
    with pytest.warns(BinderWarning, match=r"does not fit this process: this CPU lacks \d+ of the compiling CPU's features"):
        assert_identical(expected, annotations(int8))


def test_a_package_from_another_torch_is_not_run():
    target = {**build_target(["input_ids"]), "torch": "1.0.0"}
    assert AheadOfTime(b"", target).misfit() == f"it was compiled by torch 1.0.0, this is torch {torch.__version__}"
    assert AheadOfTime(b"", build_target(["input_ids"])).misfit() is None


def test_no_compile_writes_an_int8_pipeline_that_compiles_when_it_predicts(pipelines, tmp_path):
    result = CliRunner().invoke(app, ["quantize", str(pipelines[0]), str(tmp_path / "int8"), "--no-compile"])
    assert result.exit_code == 0, result.output
    int8 = spacy.load(tmp_path / "int8")
    assert int8_encoder(int8).ahead is None
    assert_identical(annotations(spacy.load(pipelines[1])), annotations(int8))


def test_int8_round_trips_identically_by_disk_and_package(pipelines, tmp_path):
    int8 = spacy.load(pipelines[1])
    expected = annotations(int8)
    assert any(spans for spans, _ in expected)
    int8.to_disk(tmp_path / "again")
    assert_identical(expected, annotations(spacy.load(tmp_path / "again")))
    assert_identical(expected, annotations(package_and_load(pipelines[1], tmp_path, "binder_int8")))


def test_config_at_load_time_equals_the_command(pipelines):
    at_load = spacy.load(pipelines[0], config=OVERRIDE)
    assert_identical(annotations(spacy.load(pipelines[1])), annotations(at_load))


def test_int8_pipeline_refuses_to_train(pipelines):
    nlp = spacy.load(pipelines[1])
    with pytest.raises(ValueError, match=r"quantized \(int8\) for inference and cannot be trained"):
        nlp.update(make_examples(nlp)[:2])


def test_unknown_quantize_setting_is_named(tiny_bert):
    with pytest.raises(ValueError, match="'int4'"):
        make_nlp(tiny_bert, {"text_encoder.quantize": "int4"})


def test_command_refuses_a_pipeline_without_binder_ner(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.to_disk(tmp_path / "plain")
    result = CliRunner().invoke(app, ["quantize", str(tmp_path / "plain"), str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "no binder_ner component" in result.output
    assert not (tmp_path / "out").exists()


def test_int8_pipeline_decodes_with_a_support_set(pipelines):
    """The support's vectors come from the int8 encoder (its packed weights are
    left out of the cache key: they never change)."""
    int8 = spacy.load(pipelines[1])
    ner = int8.get_pipe("binder_ner")
    ner.add_support([eg.reference for eg in make_examples(int8)[:3]])
    docs = list(ner.pipe((int8.make_doc(text) for text in TEXTS[:3]), support_weight=1.0))
    for doc, eg in zip(docs, make_examples(int8)[:3]):
        assert set(predicted(eg.reference)) <= set(predicted(doc))


def routes(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROUTES_SCRIPT), "compare", *args], capture_output=True, text=True, timeout=600)


def test_int8_routes_benchmark_times_fresh_processes(pipelines, tmp_path):
    nlp = spacy.load(pipelines[0])
    DocBin(docs=[eg.reference for eg in make_examples(nlp)]).to_disk(tmp_path / "eval.spacy")
    shutil.copytree(pipelines[1], tmp_path / "work" / "int8_ahead")  # reused: not compiled again
    done = routes(
        str(pipelines[0]), str(tmp_path / "eval.spacy"), str(tmp_path / "eval.spacy"), str(tmp_path / "routes.json"),
        "--routes", "fp32,int8 ahead,int8 in process", "--rounds", "1", "--short-words", "20",
        "--long-words", "60", "--evaluate-words", "30", "--work-dir", str(tmp_path / "work"),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    best = json.loads((tmp_path / "routes.json").read_text())["best"]
    rows = [line.strip("| ").split(" | ") for line in done.stdout.splitlines() if line.startswith("| ") and not line.startswith("| route")]
    assert [row[0] for row in rows] == ["fp32", "int8 ahead", "int8 in process"]
    # Overfit on these sentences: every route finds (nearly) every mention.
    assert best["fp32"]["f1"] == 100.0 and min(row["f1"] for row in best.values()) >= 90.0
    # A fresh process imports spaCy and loads the pipeline (seconds); only the
    # route without a stored compiled encoder compiles before its first document.
    assert all(row["first_doc_s"] >= 1.0 and row["evaluate_s"] >= 1.0 for row in best.values())
    assert best["int8 in process"]["first_doc_s"] > best["int8 ahead"]["first_doc_s"] + 2.0
    assert best["fp32"]["break_even_words"] == 0.0


@pytest.mark.parametrize("first_doc_s,short_words_per_s,words_per_s,expected", [
    (13.0, 2000, 2000, 6000.0),  # 3 s more to start, 1/1000 - 1/2000 s less per word
    (11.0, 250, 2000, 2700.0),  # 1 s more to the first document, then 100 words at 250/s: 0.35 s beyond its pace
    (9.0, 2000, 2000, 0.0),  # starts sooner and runs faster: pays from the first document
    (13.0, 500, 500, None),  # starts later and runs slower: never
    (13.0, 1000, 1000, None),
])
def test_break_even_is_where_a_slower_start_is_paid_back(first_doc_s, short_words_per_s, words_per_s, expected):
    fp32 = {"first_doc_s": 10.0, "short_words_per_s": 1000, "long_words_per_s": 1000}
    route = {"first_doc_s": first_doc_s, "short_words_per_s": short_words_per_s, "long_words_per_s": words_per_s}
    assert break_even_words(route, fp32, 100) == (expected if expected is None else pytest.approx(expected))


def test_int8_routes_benchmark_names_a_bad_route(tmp_path):
    done = routes(str(tmp_path), str(tmp_path), str(tmp_path), str(tmp_path / "out.json"), "--routes", "fp32,int4")
    assert done.returncode != 0 and "['int4']" in done.stderr
    done = routes(str(tmp_path), str(tmp_path), str(tmp_path), str(tmp_path / "out.json"), "--routes", "int8 ahead")
    assert done.returncode != 0 and "fp32 among them" in done.stderr
