"""An MPNet-shaped encoder (all-mpnet-base-v2's layout: <s>/</s> pairs, no
token_type_ids, positions after the padding index) through training, decoding,
round trips and int8. The window and prompt layout tests of
test_component.py and test_prompt.py run on it too (fixture any_encoder)."""
import warnings

import pytest
import spacy
from typer.testing import CliRunner

from util import annotations, int8_encoder, make_examples, overfit_nested
from spacy_binder import BinderWarning
from spacy_binder.cli import app
from spacy_binder.encoders import hf_objects, max_wordpieces


@pytest.fixture(scope="module")
def trained_mpnet(tiny_mpnet):
    return overfit_nested(tiny_mpnet)


def test_mpnet_learns_and_decodes_nested_spans(trained_mpnet):
    examples = make_examples(trained_mpnet)
    assert trained_mpnet.evaluate(examples)["spans_sc_f"] >= 0.95
    encoding = hf_objects(trained_mpnet.get_pipe("binder_ner").model.get_ref("text_encoder")).tokenizer("il-2")
    assert "token_type_ids" not in encoding


def test_mpnet_round_trips_identically(trained_mpnet, tmp_path):
    """Padded windows included: the loaded encoder must not turn its padding rows into NaN."""
    expected = annotations(trained_mpnet)
    assert any(spans for spans, _ in expected)
    trained_mpnet.to_disk(tmp_path / "pipe")
    assert annotations(spacy.load(tmp_path / "pipe")) == expected
    copy = spacy.blank("en", config=trained_mpnet.config).from_bytes(trained_mpnet.to_bytes())
    assert annotations(copy) == expected


def test_mpnet_int8_is_compiled_ahead_and_round_trips(trained_mpnet, tmp_path):
    trained_mpnet.to_disk(tmp_path / "fp32")
    result = CliRunner().invoke(app, ["quantize", str(tmp_path / "fp32"), str(tmp_path / "int8")])
    assert result.exit_code == 0, result.output
    with warnings.catch_warnings():
        warnings.simplefilter("error", BinderWarning)  # a fallback to compiling here would warn
        int8 = spacy.load(tmp_path / "int8")
        expected = annotations(int8)
    encoder = int8_encoder(int8)
    assert encoder.ahead is not None
    assert type(encoder.transformer.encoder.layer[0].attention.attn.q.weight).__name__ == "Int8Tensor"
    fp32 = {(i, span) for i, (spans, _) in enumerate(annotations(trained_mpnet)) for span in spans}
    found = {(i, span) for i, (spans, _) in enumerate(expected) for span in spans}
    assert fp32 and len(fp32 & found) >= 0.8 * len(fp32 | found)
    int8.to_disk(tmp_path / "again")  # `spacy package` ships the same files: tests/test_quantize.py
    assert annotations(spacy.load(tmp_path / "again")) == expected


def test_encoder_limit_counts_positions_after_the_padding_index(trained_mpnet):
    """An MPNet with 514 positions reads at most 512 sub-words (positions start at pad + 1)."""
    encoder = trained_mpnet.get_pipe("binder_ner").model.get_ref("text_encoder")
    tokenizer = hf_objects(encoder).tokenizer
    known = tokenizer.model_max_length
    try:
        tokenizer.model_max_length = int(1e30)  # a tokenizer that does not know
        assert max_wordpieces(encoder) == 512
    finally:
        tokenizer.model_max_length = known
