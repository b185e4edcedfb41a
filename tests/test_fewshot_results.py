"""The few-shot benchmark's results file (benchmarks/fewshot.py `Results`): an
interrupted benchmark resumes from it, and a run under other settings is refused."""
import json
import sys
from pathlib import Path

import pytest
import typer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from fewshot import Results  # noqa: E402

SETTINGS = {"source": "source/model-best", "encoder": "tiny", "steps": 3, "learn_rate": 2e-4, "max_eval": 30}
RUN = {"precision": 0.5, "recall": 0.25, "f1": 1 / 3}


def test_results_are_written_after_every_run_and_resumed(tmp_path):
    path = tmp_path / "fewshot_ncbi.json"
    results = Results(path, {"target": "ncbi", "eval_docs": 30}, SETTINGS)
    assert results.get("zero-shot") is None
    results.put("zero-shot", RUN)
    assert json.loads(path.read_text()) == {
        "runs": {"zero-shot": RUN}, "settings": SETTINGS, "target": "ncbi", "eval_docs": 30,
    }
    # A new process under the same settings finds the run done, and its own meta wins.
    resumed = Results(path, {"target": "ncbi", "eval_docs": 30, "steps": 3}, dict(SETTINGS))
    assert resumed.get("zero-shot") == RUN and resumed.get("NNShot | k=5 | seed=1") is None
    resumed.put("NNShot | k=5 | seed=1", RUN)
    data = json.loads(path.read_text())
    assert set(data["runs"]) == {"zero-shot", "NNShot | k=5 | seed=1"} and data["steps"] == 3


def test_results_under_other_settings_are_refused(tmp_path):
    path = tmp_path / "fewshot_ncbi.json"
    Results(path, {}, SETTINGS).put("zero-shot", RUN)
    before = path.read_text()
    with pytest.raises(typer.BadParameter, match=r"other settings \(learn_rate, max_eval: \[0.0002, 30\] there, \[0.001, 20\] now\)"):
        Results(path, {}, {**SETTINGS, "max_eval": 20, "learn_rate": 1e-3})
    assert path.read_text() == before  # the runs made before are kept
