import json
import re
import subprocess
import sys

import pytest
import spacy
from spacy.tokens import DocBin

from util import DESCRIPTIONS, make_examples


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus")
    nlp = spacy.blank("en")
    docs = [eg.reference for eg in make_examples(nlp)]
    for doc in docs:
        doc.ents = [s for s in doc.spans["sc"] if s.label_ == "CELL"]
    DocBin(docs=docs).to_disk(path / "train.spacy")
    DocBin(docs=docs[:4]).to_disk(path / "dev.spacy")
    (path / "types.jsonl").write_text(
        "\n".join(json.dumps({"label": k, "description": v}) for k, v in DESCRIPTIONS.items())
    )
    return path


def run(*args: str, module: str = "spacy") -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.parametrize("mode,metric", [("auto", "spans_sc_f"), ("flat", "ents_f")])
def test_init_config_then_spacy_train_and_evaluate(corpus, tiny_bert, tmp_path, mode, metric):
    config = tmp_path / "config.cfg"
    written = run(
        "init-config", str(config), "--mode", mode,
        "--train", str(corpus / "train.spacy"), "--dev", str(corpus / "dev.spacy"),
        "--descriptions", str(corpus / "types.jsonl"), "--encoder", str(tiny_bert),
        module="spacy_binder",
    )
    if mode == "auto":
        assert "mode nested: gold spans overlap" in written.stdout
    # 10 docs of 7-9 words: 25 passes is fewer steps than the validated 400
    assert "max_steps 5 for the 79 words" in written.stdout
    output = tmp_path / "training"
    result = run(
        "train",
        str(config),
        "--training.max_steps", "40",
        "--training.eval_frequency", "20",
        "--training.optimizer.learn_rate.initial_rate", "0.001",
        "--training.optimizer.learn_rate.warmup_steps", "5",
        "--output", str(output),
    )
    assert metric.upper() in result.stdout
    # It learns: the training loss summed over steps 1-20 falls over steps 21-40 (spaCy's table:
    # epoch, step, loss, scores). 40 steps are too few for the dev scores to move.
    losses = {int(step): float(loss) for step, loss in re.findall(r"^\s*\d+\s+(\d+)\s+([\d.]+)\s", result.stdout, re.M)}
    assert sorted(losses) == [0, 20, 40] and losses[40] < 0.9 * losses[20], result.stdout
    nlp = spacy.load(output / "model-best")
    ner = nlp.get_pipe("binder_ner")
    assert ner.labels == ("CELL", "DNA", "PROTEIN", "RNA")
    assert ner.descriptions[0] == DESCRIPTIONS["CELL"]
    metrics = tmp_path / "metrics.json"
    run("evaluate", str(output / "model-best"), str(corpus / "dev.spacy"), "--output", str(metrics))
    scores = json.loads(metrics.read_text())
    assert metric in scores and "spans_sc_per_type" in scores
