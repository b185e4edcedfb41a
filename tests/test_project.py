"""The project workflow end to end on the bundled demo corpus, with a tiny encoder."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(args, cwd, env=None, timeout=300):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


def test_project_run_all_on_demo_corpus(tiny_bert, tmp_path):
    for folder in ("project", "configs", "assets"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    project = tmp_path / "project"
    out = run(
        [
            sys.executable, "-m", "spacy", "project", "run", "all", str(project),
            "--vars.encoder", str(tiny_bert), "--vars.max_steps", "200",
        ],
        cwd=tmp_path,
        # spaCy's own route for settings the project has no variable for
        env={
            **os.environ,
            "SPACY_CONFIG_OVERRIDES": "--training.optimizer.learn_rate.initial_rate 0.001"
            " --training.optimizer.learn_rate.warmup_steps 10 --components.binder_ner.model.heads_learn_rate_scale 3",
        },
        timeout=1200,
    )
    assert "organization: read" in out and "dish: read" in out  # the converter's report
    assert "mode nested: gold spans overlap" in out  # init-config read the demo corpus
    config = (project / "training" / "demo" / "config.cfg").read_text()
    assert "max_steps = 200" in config and "initial_rate = 0.0001" in config  # overridden at spacy train
    metrics = json.loads((project / "metrics" / "demo.json").read_text())
    assert set(metrics["dev"]["per_type"]) <= {"person", "organization", "location", "dish"}
    assert metrics["dev"]["words_per_second"] > 0
    assert metrics["dev"]["f1"] > 0.5, metrics["dev"]  # 0.77-0.79 over system seeds 0-2
    page = project / "visualize" / "demo.html"
    assert list((project / "packages").glob("en_binder_demo-*"))
    spans = json.loads(page.with_suffix(".spans.json").read_text())
    assert spans, "the trained demo model predicted no spans to show"
    # displaCy's span style (nested mode), one label tag for each predicted span
    html = page.read_text()
    assert '<div class="spans"' in html
    shown = re.findall(r'<span style="[^"]*font-weight: bold[^"]*">\s*([^<\s]+)\s*</span>', html)
    assert sorted(shown) == sorted(label for _, label in spans)
    screenshot = project / "training" / "demo" / "predictions.png"
    out = run([sys.executable, "-m", "spacy", "project", "run", "screenshot", str(project)], cwd=tmp_path)
    assert "visible with their labels" in out
    assert screenshot.stat().st_size > 10_000
