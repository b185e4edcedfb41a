import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from conftest import DESCRIPTIONS, make_examples

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


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


def run(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "spacy", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.parametrize("config,metric", [("binder_nested.cfg", "spans_sc_f"), ("binder_flat.cfg", "ents_f")])
def test_spacy_train_and_evaluate_cli(corpus, tiny_bert, tmp_path, config, metric):
    output = tmp_path / "training"
    result = run(
        "train",
        str(CONFIGS / config),
        "--paths.train", str(corpus / "train.spacy"),
        "--paths.dev", str(corpus / "dev.spacy"),
        "--paths.descriptions", str(corpus / "types.jsonl"),
        "--paths.encoder", str(tiny_bert),
        "--training.max_steps", "40",
        "--training.eval_frequency", "20",
        "--training.optimizer.learn_rate.initial_rate", "0.001",
        "--training.optimizer.learn_rate.warmup_steps", "5",
        "--output", str(output),
    )
    assert metric.upper() in result.stdout
    nlp = spacy.load(output / "model-best")
    ner = nlp.get_pipe("binder_ner")
    assert ner.labels == ("CELL", "DNA", "PROTEIN", "RNA")
    assert ner.descriptions[0] == DESCRIPTIONS["CELL"]
    metrics = tmp_path / "metrics.json"
    run("evaluate", str(output / "model-best"), str(corpus / "dev.spacy"), "--output", str(metrics))
    scores = json.loads(metrics.read_text())
    assert metric in scores and "spans_sc_per_type" in scores
