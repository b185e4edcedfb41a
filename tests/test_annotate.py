"""`annotate`: shards, both engines, resuming, the manifest check and errors."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from util import NESTED_DATA
from spacy_binder.annotate import ManifestMismatch, annotate
from spacy_binder.annotate.worker import binder_keys, doc_spans
from spacy_binder.cli import app
from spacy_binder.component import BinderNER
from tiny_bert import WORDS

# Every test has a deadline (processes, Ray); the slow ones set their own.
pytestmark = pytest.mark.timeout(300)

TEXTS = [text for text, _ in NESTED_DATA]
# Some 3,000 words: dozens of windows of the text encoder (128 tokens), one document.
LONG_TEXT = " ".join(WORDS[i % len(WORDS)] for i in range(3_000))
# Lines that are not documents, each counted as an error with its reason.
BAD_LINES = [b"{not json\n", b'{"id": "latin1", "text": "caf\xe9"}\n', b'{"id": "no-text"}\n', b"[1, 2]\n", b"\n"]


@pytest.fixture(scope="module")
def pipeline(trained_nested, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("annotate") / "pipeline"
    trained_nested.to_disk(path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two JSONL files: the toy sentences, an empty and a 3,000-word document, and bad lines."""
    folder = tmp_path_factory.mktemp("corpus")
    lines = [json.dumps({"id": f"a{i}", "text": text}).encode() + b"\n" for i, text in enumerate(TEXTS)]
    lines.insert(3, json.dumps({"id": "empty", "text": ""}).encode() + b"\n")
    lines.insert(6, json.dumps({"id": "long", "text": LONG_TEXT}).encode() + b"\n")
    (folder / "a.jsonl").write_bytes(b"".join(lines[:8] + BAD_LINES + lines[8:]))
    (folder / "nested" / "b.jsonl").parent.mkdir()
    (folder / "nested" / "b.jsonl").write_text(
        "".join(json.dumps({"text": text}) + "\n" for text in reversed(TEXTS)), encoding="utf8"
    )
    return folder


@pytest.fixture(scope="module")
def ray_cluster():
    import ray  # a test dependency: missing, the Ray tests fail rather than skip

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def read_output(output_dir: Path, name: str = "part"):
    rows = {}
    for path in sorted(output_dir.glob(f"{name}-*.jsonl")):
        for line in path.read_text(encoding="utf8").splitlines():
            row = json.loads(line)
            rows[row["id"] if name == "part" else (row["file"], row["line"])] = row
    return rows


def assert_same_spans(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        spans_a, spans_b = a[key]["spans"], b[key]["spans"]
        assert [(s["start_char"], s["end_char"], s["label"], s["text"]) for s in spans_a] == [
            (s["start_char"], s["end_char"], s["label"], s["text"]) for s in spans_b
        ], key
        assert [s["score"] for s in spans_a] == pytest.approx([s["score"] for s in spans_b], abs=1e-5)


class RecordingBar:
    """Stands in for tqdm: keeps every update."""

    updates: list = []

    def __init__(self, total: int, **kwargs):
        self.total = total
        RecordingBar.updates = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, docs: int) -> None:
        RecordingBar.updates.append(docs)

    def set_postfix(self, **kwargs) -> None:
        pass


def assert_progress_per_batch(manifest: dict) -> None:
    """The bar reached every document, moving more often than once a shard."""
    assert sum(RecordingBar.updates) == manifest["counts"]["docs"]
    assert len([n for n in RecordingBar.updates if n]) > len(manifest["input"]["shards"])


@pytest.fixture(scope="module")
def local_run(pipeline, corpus, trained_nested, tmp_path_factory):
    output = tmp_path_factory.mktemp("out") / "local"
    manifest = annotate(str(pipeline), corpus, output, shard_docs=4, batch_size=3, progress=False)
    return output, manifest


def test_local_annotation_counts_every_line_and_matches_the_pipeline(local_run, trained_nested, corpus):
    output, manifest = local_run
    n_lines = len(TEXTS) + 2 + len(BAD_LINES) + len(TEXTS)
    assert manifest["counts"]["docs"] == n_lines
    assert manifest["counts"]["annotated"] == 2 * len(TEXTS) + 2
    assert manifest["counts"]["errors"] == len(BAD_LINES)
    assert len(manifest["input"]["shards"]) == 5 + 3  # 17 lines, then 10, by 4
    assert (output / "_SUCCESS").exists() and json.loads((output / "manifest.json").read_text()) == manifest
    assert len(list(output.glob("part-*.jsonl"))) == 8
    rows = read_output(output)
    assert rows["empty"]["spans"] == [] and "text" not in rows["empty"]
    assert rows["nested/b.jsonl:1"]["id"] == "nested/b.jsonl:1"  # no id field: FILE:LINE, FILE relative to INPUT
    expected = {f"a{i}": {"spans": doc_spans(trained_nested(text), ["sc"])} for i, text in enumerate(TEXTS)}
    assert_same_spans({k: rows[k] for k in expected}, expected)
    assert any(rows[k]["spans"] for k in expected)
    # The long document is annotated whole, window by window: the spans the pipeline finds, up to its end.
    long_doc = trained_nested(LONG_TEXT)
    assert len(long_doc) > 20 * 128
    assert_same_spans({"long": rows["long"]}, {"long": {"spans": doc_spans(long_doc, binder_keys(trained_nested))}})
    assert max(span["end_char"] for span in rows["long"]["spans"]) > 0.95 * len(LONG_TEXT)
    errors = read_output(output, "errors")
    reasons = {line: row["reason"] for (_, line), row in errors.items()}
    assert sorted(reasons) == list(range(9, 9 + len(BAD_LINES)))
    assert reasons[9].startswith("not JSON") and reasons[10].startswith("not UTF-8")
    assert reasons[11] == "'text' is missing, not a string" and "not an object" in reasons[12]
    assert reasons[13] == "empty line"
    assert errors[(str(corpus / "a.jsonl"), 10)]["id"] == "a.jsonl:10"


def test_resume_redoes_exactly_the_deleted_shards(local_run, pipeline, corpus, tmp_path):
    output = tmp_path / "resumed"
    shutil.copytree(local_run[0], output)
    before = {p.name: p.stat().st_mtime_ns for p in output.glob("part-*.jsonl")}
    (output / "part-00001.jsonl").unlink()
    (output / "part-00004.jsonl").unlink()
    manifest = annotate(str(pipeline), corpus, output, shard_docs=4, batch_size=3, progress=False)
    assert manifest["shards_skipped"] == 6 and manifest["counts"] == local_run[1]["counts"]
    after = {p.name: p.stat().st_mtime_ns for p in output.glob("part-*.jsonl")}
    assert [name for name in sorted(after) if after[name] != before[name]] == ["part-00001.jsonl", "part-00004.jsonl"]
    assert read_output(output) == read_output(local_run[0])


def test_mismatched_manifest_is_refused(local_run, pipeline, corpus, tmp_path):
    output = tmp_path / "out"
    shutil.copytree(local_run[0], output)
    with pytest.raises(ManifestMismatch, match="different settings.*text_key: was 'text', now 'body'"):
        annotate(str(pipeline), corpus, output, shard_docs=4, text_key="body", progress=False)
    retrained = tmp_path / "retrained"
    shutil.copytree(pipeline, retrained)
    weights = retrained / "binder_ner" / "model"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(ManifestMismatch, match="different model"):
        annotate(str(retrained), corpus, output, shard_docs=4, progress=False)
    small = tmp_path / "small.jsonl"
    small.write_text('{"text": "il-2 mrna"}\n', encoding="utf8")
    annotate(str(pipeline), small, tmp_path / "small", progress=False)
    with small.open("a", encoding="utf8") as file:
        file.write('{"text": "b cells"}\n')
    with pytest.raises(ManifestMismatch, match="different input"):
        annotate(str(pipeline), small, tmp_path / "small", progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(ManifestMismatch, match="not empty"):
        annotate(str(pipeline), corpus, tmp_path / "full", progress=False)


def test_a_document_the_pipeline_fails_on_is_an_error_not_a_crash(pipeline, corpus, tmp_path, monkeypatch):
    predict = BinderNER.predict

    def failing(self, docs, **controls):
        docs = list(docs)
        if any("jurkat" in doc.text for doc in docs):
            raise RuntimeError("jurkat is not allowed")
        return predict(self, docs, **controls)

    monkeypatch.setattr(BinderNER, "predict", failing)
    manifest = annotate(str(pipeline), corpus, tmp_path / "out", shard_docs=4, batch_size=3, progress=False)
    failed = [text for text in TEXTS + ["", LONG_TEXT] + TEXTS if "jurkat" in text]
    assert manifest["counts"]["errors"] == len(BAD_LINES) + len(failed)
    reasons = [row["reason"] for row in read_output(tmp_path / "out", "errors").values()]
    assert reasons.count("RuntimeError: jurkat is not allowed") == len(failed) > 2
    assert "a0" in read_output(tmp_path / "out")  # its batch mates are annotated
    assert manifest["counts"]["annotated"] + manifest["counts"]["errors"] == manifest["counts"]["docs"]


def test_a_pipeline_that_fails_on_everything_fails_the_shard_not_the_documents(pipeline, corpus, tmp_path, monkeypatch):
    def out_of_memory(self, docs, **controls):
        raise MemoryError("no memory left")

    monkeypatch.setattr(BinderNER, "predict", out_of_memory)
    with pytest.raises(RuntimeError, match="failed on every document of a batch: MemoryError: no memory left"):
        annotate(str(pipeline), corpus, tmp_path / "out", shard_docs=4, batch_size=3, progress=False)
    assert not list((tmp_path / "out").glob("part-*")) and not (tmp_path / "out" / "_SUCCESS").exists()


def test_a_crash_mid_shard_is_redone_and_its_leftovers_removed(local_run, pipeline, corpus, tmp_path):
    output = tmp_path / "crashed"
    shutil.copytree(local_run[0], output)
    (output / "_shards" / "00002.json").unlink()  # its part was renamed, its status not yet
    (output / "part-00005.jsonl.tmp-host.123").write_text("half a shard")
    (output / "_SUCCESS").unlink()
    manifest = annotate(str(pipeline), corpus, output, shard_docs=4, batch_size=3, progress=False)
    assert manifest["shards_skipped"] == 7 and manifest["counts"] == local_run[1]["counts"]
    assert not list(output.glob("*.tmp-*")) and read_output(output) == read_output(local_run[0])


def test_output_inside_the_input_is_refused(pipeline, corpus):
    with pytest.raises(ValueError, match="inside the input"):
        annotate(str(pipeline), corpus, corpus / "out", progress=False)


@pytest.mark.timeout(600)
def test_local_processes_give_the_same_spans(local_run, pipeline, corpus, tmp_path, monkeypatch):
    monkeypatch.setattr("spacy_binder.annotate.tqdm", RecordingBar)
    manifest = annotate(str(pipeline), corpus, tmp_path / "out", shard_docs=4, batch_size=3, workers=2)
    assert_progress_per_batch(manifest)
    assert manifest["counts"] == local_run[1]["counts"]
    assert_same_spans(read_output(tmp_path / "out"), read_output(local_run[0]))
    assert read_output(tmp_path / "out", "errors") == read_output(local_run[0], "errors")


@pytest.mark.timeout(600)
def test_ray_engine_gives_the_same_spans(ray_cluster, local_run, pipeline, corpus, tmp_path, monkeypatch):
    monkeypatch.setattr("spacy_binder.annotate.tqdm", RecordingBar)
    with pytest.warns(UserWarning, match="already initialized.*not address 'auto'"):
        manifest = annotate(
            str(pipeline), corpus, tmp_path / "out", engine="ray", workers=2, shard_docs=4, batch_size=3,
            address="auto",
        )
    assert_progress_per_batch(manifest)
    assert manifest["counts"] == local_run[1]["counts"]
    assert_same_spans(read_output(tmp_path / "out"), read_output(local_run[0]))
    assert read_output(tmp_path / "out", "errors") == read_output(local_run[0], "errors")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("engine,workers", [("local", 2), ("ray", 1)])
def test_a_worker_that_cannot_load_the_pipeline_is_an_error_not_a_hang(engine, workers, pipeline, corpus, tmp_path, request):
    if engine == "ray":
        request.getfixturevalue("ray_cluster")
    broken = tmp_path / "broken"
    shutil.copytree(pipeline, broken)
    (broken / "config.cfg").write_text("[nlp]\nlang = \"en\"\npipeline = [\"nothing\"]\n")
    with pytest.raises(Exception, match="nothing"):
        annotate(str(broken), corpus, tmp_path / "out", engine=engine, workers=workers, progress=False)
    assert not (tmp_path / "out" / "_SUCCESS").exists()


@pytest.mark.timeout(900)
def test_ray_workers_install_the_pipeline_from_its_wheel(ray_cluster, local_run, pipeline, corpus, tmp_path):
    out = tmp_path / "packages"
    out.mkdir()
    subprocess.run(
        [sys.executable, "-m", "spacy", "package", str(pipeline), str(out), "--name", "binder_ray",
         "--version", "0.0.1", "--build", "wheel", "--force"],
        check=True, capture_output=True, timeout=600,
    )
    wheel = next(out.glob("**/*.whl"))
    manifest = annotate(
        "en_binder_ray", corpus, tmp_path / "out", engine="ray", wheel=wheel, shard_docs=4, batch_size=3,
        progress=False,
    )
    assert manifest["model"]["name"] == "en_binder_ray" and manifest["model"]["version"] == "0.0.1"
    assert_same_spans(read_output(tmp_path / "out"), read_output(local_run[0]))


def test_cli_annotates_and_reports_counts(pipeline, corpus, tmp_path):
    result = CliRunner().invoke(app, ["annotate", str(pipeline), str(corpus / "a.jsonl"), str(tmp_path / "out"),
                                      "--format", "parquet", "--write-text", "--shard-docs", "100"])
    assert result.exit_code == 0, result.output
    assert f"{len(TEXTS) + 2 + len(BAD_LINES)} documents: {len(TEXTS) + 2} annotated, {len(BAD_LINES)} errors" in result.output
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "out" / "part-00000.parquet").to_pylist()
    assert [row["text"] for row in table if row["id"] == "a0"] == [TEXTS[0]]
    assert all(isinstance(span["score"], float) for row in table for span in row["spans"])
    bad = CliRunner().invoke(app, ["annotate", str(pipeline), str(corpus), str(tmp_path / "x"), "--engine", "spark"])
    assert bad.exit_code == 1 and "Unknown engine 'spark'" in bad.output


def test_parquet_input_gives_the_jsonl_spans(local_run, pipeline, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"doc": f"a{i}", "body": text} for i, text in enumerate(TEXTS)] + [{"doc": "null", "body": None}]
    rows[-2]["doc"] = None  # a null id: ROW's place instead
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet", row_group_size=3)
    manifest = annotate(str(pipeline), tmp_path / "in.parquet", tmp_path / "out", text_key="body", id_key="doc",
                        shard_docs=4, batch_size=3, progress=False)
    assert manifest["counts"] == {"docs": 11, "annotated": 10, "errors": 1, "words": sum(len(t.split()) for t in TEXTS)}
    assert len(manifest["input"]["shards"]) == 4  # whole row groups of 3, 3, 3 and 2 rows
    expected = {key: row for key, row in read_output(local_run[0]).items() if key in {f"a{i}" for i in range(10)}}
    expected["in.parquet:10"] = expected.pop("a9")
    assert_same_spans(read_output(tmp_path / "out"), expected)
    assert [row["reason"] for row in read_output(tmp_path / "out", "errors").values()] == ["'body' is null, not a string"]
