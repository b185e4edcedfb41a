"""The few-shot settings script (benchmarks/finetune_dev.py) on a tiny source, with
CONTaiNER's stopping rule on the support loss."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from spacy.tokens import DocBin

from corpora import SHARED_DATA
from spacy_binder.convert import convert_corpus

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from common import stop_step  # noqa: E402


@pytest.mark.parametrize("losses,expected", [
    ([5.0, 4.0, 3.0, 3.5, 2.0], 3),  # step 3 rose: steps 0-3 are kept, as CONTaiNER keeps that update
    ([5.0, 4.0, 4.0, 1.0], 3),  # equal is no rise: all steps
    ([5.0, 6.0], 1),
])
def test_stop_step_is_the_first_step_whose_support_loss_rose(losses, expected):
    assert stop_step(losses) == expected


def test_finetune_dev_stops_when_the_support_loss_rises(trained_nested, tmp_path):
    trained_nested.to_disk(tmp_path / "source")
    docs, _ = convert_corpus("jsonl", SHARED_DATA / "genia" / "dev.jsonl")
    (tmp_path / "corpus" / "genia").mkdir(parents=True)
    DocBin(docs=docs[:80]).to_disk(tmp_path / "corpus" / "genia" / "dev.spacy")
    output = tmp_path / "dev.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "finetune_dev.py"), str(tmp_path / "corpus"), str(output),
         "--source", str(tmp_path / "source"), "--targets", "genia", "--k", "1", "--seeds", "1",
         "--support-weights", "0,1", "--thresholds", "0.1", "--max-dev", "30", "--work-dir", str(tmp_path / "work"),
         "stop=stop6:0.001:0.8", "fixed=2:0.001:0.8"],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(output.read_text())
    stopped = results["stop | genia | k=1 | seed=1"]
    # The probe ran its 7 steps (0-6), each with a support loss.
    assert len(stopped["support_losses"]) == 7 and all(loss > 0 for loss in stopped["support_losses"])
    assert stopped["stopped_at"] == stop_step(stopped["support_losses"]) and stopped["stop_on_rise"]
    assert "support_losses" not in results["fixed | genia | k=1 | seed=1"]
    for run in results.values():
        assert set(run["by_weight"]) == {"0.0", "1.0"} and set(run["by_threshold"]) == {"0.1"}
        # A lower threshold only adds spans to the descriptions' own (weight 0, threshold 0.5).
        assert run["by_threshold"]["0.1"]["recall"] >= run["by_weight"]["0.0"]["recall"]
    assert "stop | w=1.0 |" in done.stdout and "fixed | w=0.0 t=0.1 |" in done.stdout
