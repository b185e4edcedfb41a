import warnings

import numpy
import pytest
import spacy
import srsly
import torch
from spacy.tokens import Span
from spacy.training import Example

from util import DESCRIPTIONS, NESTED_DATA, make_examples, make_nlp, overfit_nested, predicted, repeated, spans_with_scores, train
from spacy_binder import NEW_TYPE_THRESHOLD
from spacy_binder.batch import gold_targets
from spacy_binder.encoders import hf_objects, max_wordpieces, window_layout
from spacy_binder.errors import BinderWarning

FLAT_DATA = [
    ("alice works at acme corp .", [(0, 1, "PER"), (3, 5, "ORG")]),
    ("bob visited paris .", [(0, 1, "PER"), (2, 3, "LOC")]),
    ("alice lives in london .", [(0, 1, "PER"), (3, 4, "LOC")]),
    ("bob works at acme corp in paris .", [(0, 1, "PER"), (3, 5, "ORG"), (6, 7, "LOC")]),
]


def test_overfits_nested_examples(trained_nested):
    nlp = trained_nested
    examples = make_examples(nlp)
    scores = nlp.evaluate(examples)
    assert scores["spans_sc_f"] >= 0.95
    doc = nlp(NESTED_DATA[0][0])
    assert predicted(doc) == sorted((s, e, l) for s, e, l in NESTED_DATA[0][1])
    assert len(doc.spans["sc"].attrs["scores"]) == len(doc.spans["sc"])
    assert all(0.5 < s <= 1.0 for s in doc.spans["sc"].attrs["scores"])
    assert set(scores["spans_sc_per_type"]) == set(DESCRIPTIONS)


def test_flat_mode_sets_ents_and_keeps_scores(tiny_bert):
    nlp = make_nlp(tiny_bert, mode="flat")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=BinderWarning)
        train(nlp, make_examples(nlp, FLAT_DATA, ents=True), steps=120)
    doc = nlp("bob works at acme corp in paris .")
    assert [(e.start, e.end, e.label_) for e in doc.ents] == [(0, 1, "PER"), (3, 5, "ORG"), (6, 7, "LOC")]
    assert list(doc.spans["sc"]) == list(doc.ents)
    assert len(doc.spans["sc"].attrs["scores"]) == 3
    scores = nlp.evaluate(make_examples(nlp, FLAT_DATA, ents=True))
    assert scores["ents_f"] >= 0.95 and scores["spans_sc_f"] >= 0.95


def test_flat_mode_reads_gold_from_ents_when_spans_key_missing(tiny_bert):
    nlp = make_nlp(tiny_bert, mode="flat", model={"text_encoder.window": 64, "text_encoder.stride": 32})
    examples = []
    for text, spans in FLAT_DATA:
        reference = nlp.make_doc(text)
        reference.ents = [Span(reference, s, e, label) for s, e, label in spans]
        examples.append(Example(nlp.make_doc(text), reference))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=BinderWarning)
        nlp.initialize(lambda: examples)
    assert nlp.get_pipe("binder_ner").labels == ("LOC", "ORG", "PER")


def test_entity_deep_in_a_long_document_is_found(tiny_bert):
    """Train on one sentence, alone and over two windows; predict on 6,006 tokens."""
    sentence = FLAT_DATA[0]
    nlp = make_nlp(tiny_bert)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=BinderWarning)
        train(nlp, make_examples(nlp, [sentence, repeated(sentence, 30)]), steps=150)
    text, gold = repeated(sentence, 1001)
    doc = nlp.make_doc(text)
    assert len(doc) == 6006
    ner = nlp.get_pipe("binder_ner")
    layout = window_layout(ner.model.get_ref("text_encoder"), ([doc], ner.descriptions))
    assert len(layout) == 63 and layout.start[-1] + layout.length[-1] == len(doc)
    found = predicted(ner(doc))
    assert (5004, 5005, "PER") in found and (5007, 5009, "ORG") in found
    assert set(found) == set(gold)
    # Merging: the document's spans are the union of each window's own spans.
    union = set()
    for start, length in zip(layout.start, layout.length):
        window = ner(nlp.make_doc(doc[start : start + length].text))
        union.update((start + s, start + e, label) for s, e, label in predicted(window))
    assert union == set(found)


def test_windows_over_encoder_limit_are_split_not_truncated(any_encoder):
    nlp = make_nlp(any_encoder, model={"text_encoder.window": 128, "text_encoder.stride": 96})
    ner = nlp.get_pipe("binder_ner")
    ner.add_label("X")
    nlp.initialize()
    # Each "zzzzzz" is 6 sub-words with the tiny vocabulary: 128 of them exceed 512.
    doc = nlp.make_doc(" ".join(["zzzzzz"] * 300))
    encoder = ner.model.get_ref("text_encoder")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layout = window_layout(encoder, ([doc], ner.descriptions))
    assert len(layout) > 300 // 96 + 1
    assert (layout.first_wp[layout.first_wp >= 0] > 0).all()
    for w in range(len(layout)):
        n = layout.length[w]
        assert (layout.first_wp[w, :n] >= 0).all(), "a token lost its sub-words"
        assert layout.last_wp[w, :n].max() < max_wordpieces(encoder)
    covered = numpy.zeros(len(doc), dtype=bool)
    for start, length in zip(layout.start, layout.length):
        covered[start : start + length] = True
    assert covered.all()
    # Consecutive windows still overlap by window - stride = 32 tokens.
    ends = layout.start + layout.length
    assert ((ends[:-1] - layout.start[1:]) >= 32).all()
    nlp(doc.text)


@pytest.mark.parametrize("type_scale", [1.0, 0.0])
def test_type_vectors_cached_across_predict_batches_until_an_update(tiny_bert, type_scale):
    """A trained type encoder encodes the types in each update and after it; a
    frozen one (the default) keeps its cached vectors through updates."""
    nlp = make_nlp(tiny_bert, {"type_encoder_learn_rate_scale": type_scale})
    examples = make_examples(nlp)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=BinderWarning)
        optimizer = nlp.initialize(lambda: examples)
    ner = nlp.get_pipe("binder_ner")
    model = ner.model
    calls = []
    type_encoder = model.get_ref("type_encoder")
    original = type_encoder._func

    def counting(model_, X, is_train):
        calls.append(len(X))
        return original(model_, X, is_train)

    type_encoder._func = counting
    list(nlp.pipe([t for t, _ in NESTED_DATA], batch_size=3))
    assert calls == []  # four batches reuse the vectors of initialize's pass
    nlp.update(examples, sgd=optimizer)
    list(nlp.pipe([t for t, _ in NESTED_DATA], batch_size=5))
    if type_scale > 0:
        assert calls == [4, 4]  # one in training, one for the two new batches
    else:
        assert calls == []  # the frozen encoder's vectors serve training and prediction
    ner.add_label("GENE", description="a gene")
    nlp("the il-2 gene")
    assert calls[-1] == 5


def test_type_vectors_follow_the_weights_whatever_changed_them(tiny_bert):
    """The model keys its cache on the type encoder's weights: an in-place
    edit, swapped parameters (use_params) and a load are each seen, and no
    caller has to clear anything."""
    nlp = make_nlp(tiny_bert)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=BinderWarning)
        nlp.initialize(lambda: make_examples(nlp))
    model = nlp.get_pipe("binder_ner").model
    saved = nlp.to_bytes()
    vectors = lambda: (nlp("the il-2 gene"), model.attrs["type_cache"][2].clone())[1]
    original = vectors()
    transformer = hf_objects(model.get_ref("type_encoder")).transformer
    with torch.no_grad():
        for parameter in transformer.parameters():
            parameter.mul_(0.5)
    halved = vectors()
    assert not torch.allclose(halved, original)
    params = {
        f"pytorch_{shim.id}_{name}": value.detach().numpy() * 2.0
        for shim in model.get_ref("type_encoder").get_ref("transformer").shims
        for name, value in shim._model.state_dict().items()
    }
    with model.use_params(params):
        torch.testing.assert_close(vectors(), original)
    torch.testing.assert_close(vectors(), halved)
    nlp.from_bytes(saved)
    torch.testing.assert_close(vectors(), original)


def test_labels_and_descriptions_from_initialize(tiny_bert, tmp_path):
    path = tmp_path / "types.jsonl"
    path.write_text(
        '{"label": "PROTEIN", "description": "a protein"}\n\n'
        '{"label": "GENE_FAMILY", "description": "a family of genes"}\n'
    )
    nlp = make_nlp(tiny_bert)
    examples = make_examples(nlp)
    ner = nlp.get_pipe("binder_ner")
    with pytest.warns(BinderWarning, match=r"\['CELL', 'DNA', 'RNA'\]"):
        ner.initialize(lambda: examples, nlp=nlp, descriptions=path)
    assert ner.labels == ("CELL", "DNA", "GENE_FAMILY", "PROTEIN", "RNA")
    assert ner.descriptions[ner.labels.index("PROTEIN")] == "a protein"
    assert ner.descriptions[ner.labels.index("CELL")] == "CELL"
    # label_data keeps the descriptions, so `spacy init labels` round-trips them
    assert ner.label_data["PROTEIN"] == "a protein" and ner.label_data["CELL"] is None
    again = make_nlp(tiny_bert).get_pipe("binder_ner")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=BinderWarning)
        again.initialize(lambda: examples, nlp=nlp, labels=srsly.json_loads(srsly.json_dumps(ner.label_data)))
    assert again.labels == ner.labels and again.descriptions == ner.descriptions


def test_bad_description_file_names_file_and_line(tiny_bert, tmp_path):
    path = tmp_path / "types.jsonl"
    path.write_text('{"label": "PROTEIN", "description": "a protein"}\n{"label": "DNA"\n')
    nlp = make_nlp(tiny_bert)
    with pytest.raises(ValueError, match="types.jsonl, line 2"):
        nlp.get_pipe("binder_ner").initialize(lambda: make_examples(nlp), descriptions=path)


def test_no_labels_at_initialize(tiny_bert):
    nlp = make_nlp(tiny_bert)
    examples = make_examples(nlp, [("nothing here", [])])
    with pytest.raises(ValueError, match="has no labels"):
        nlp.initialize(lambda: examples)


def test_missing_spans_key_in_training_data(tiny_bert):
    nlp = make_nlp(tiny_bert, spans_key="entities")
    examples = make_examples(nlp, key="sc")
    with pytest.raises(ValueError, match=r"no doc.spans\['entities'\].*\['sc'\]"):
        nlp.initialize(lambda: examples)


def test_gold_spans_wider_than_max_width_are_counted(tiny_bert):
    nlp = make_nlp(tiny_bert, model={"max_span_width": 2}, **{})
    examples = make_examples(nlp)
    n_wide = sum(e - s > 2 for _, spans in NESTED_DATA for s, e, _ in spans)
    assert n_wide > 0
    n_gold = sum(len(spans) for _, spans in NESTED_DATA)
    with pytest.warns(BinderWarning, match=rf"{n_wide} of {n_gold} gold spans \(of the first {len(NESTED_DATA)} training examples with gold spans\) are wider than max_span_width=2"):
        nlp.initialize(lambda: examples)


def test_gold_span_on_token_without_subwords_is_counted(tiny_bert):
    nlp = make_nlp(tiny_bert)
    examples = make_examples(nlp, [("the \u200b il-2 gene", [(1, 3, "DNA"), (2, 3, "PROTEIN")])])
    with pytest.warns(BinderWarning, match=r"1 of 2 gold spans \(of the first 1 training examples with gold spans\) start or end on a token"):
        nlp.initialize(lambda: examples)


def test_empty_whitespace_and_unmappable_docs(nested_copy):
    nlp = nested_copy  # updated below: a copy, not the shared session pipeline
    texts = ["", "   ", "\n\n", "\u200b \x00", NESTED_DATA[0][0]]
    docs = list(nlp.pipe(texts))
    for doc in docs[:4]:
        assert len(doc.spans["sc"]) == 0 and len(doc.spans["sc"].attrs["scores"]) == 0
    assert len(docs[4].spans["sc"]) > 0
    # A batch with only empty docs, and training on empty and whitespace docs.
    assert len(list(nlp.pipe(["", ""]))) == 2
    ner = nlp.get_pipe("binder_ner")
    examples = make_examples(nlp, [("", []), ("  ", []), ("\u200b", [])])
    losses = ner.update(examples)
    assert numpy.isfinite(losses["binder_ner"])


def test_predict_without_labels_is_a_clear_error(tiny_bert):
    nlp = make_nlp(tiny_bert)
    with pytest.raises(ValueError, match="has no labels"):
        nlp("some text")


def test_gold_targets_place_spans_in_every_containing_window():
    from spacy_binder.batch import Windows

    windows = Windows(
        doc_index=numpy.array([0, 0]),
        start=numpy.array([0, 3]),
        length=numpy.array([5, 4]),
        first_wp=numpy.tile(numpy.arange(1, 6), (2, 1)),
        last_wp=numpy.tile(numpy.arange(1, 6), (2, 1)),
    )
    gold = gold_targets(windows, [[(3, 5, 0), (1, 2, 1), (0, 7, 0)]], 2, 4, "cpu")
    assert gold.span[0, 3, 1, 0] and gold.span[1, 0, 1, 0]
    assert gold.span[0, 1, 0, 1] and not gold.span[1].any(dim=(0, 1))[1]
    assert gold.n_too_wide == 1 and gold.n_unaligned == 0


def test_learned_global_thresholds_overfit_and_ignore_the_text(tiny_bert):
    """The Table 6 ablation: one learned threshold per type, whatever the window."""
    nlp = overfit_nested(tiny_bert, model={"thresholds": "global"}, steps=150)  # F 0.98-1.0 over seeds 0-4
    ner = nlp.get_pipe("binder_ner")
    assert nlp.evaluate(make_examples(nlp))["spans_sc_f"] >= 0.9
    scores = ner.predict([nlp.make_doc(text) for text, _ in NESTED_DATA[:3]])
    for thresholds in (scores.start_threshold, scores.end_threshold, scores.span_threshold):
        assert thresholds.shape == (3, len(DESCRIPTIONS))
        assert (thresholds == thresholds[0]).all()
        assert thresholds.abs().sum() > 0  # learned away from their zero start


def test_unknown_thresholds_is_a_clear_error(tiny_bert):
    with pytest.raises(ValueError, match="Unknown thresholds 'fixed'.*dynamic"):
        make_nlp(tiny_bert, model={"thresholds": "fixed"})


def test_grouping_windows_by_length_changes_padding_not_states(nested_copy):
    """max_batch_items only decides which windows share a padded transformer call."""
    encoder = nested_copy.get_pipe("binder_ner").model.get_ref("text_encoder")  # its settings change
    texts = [text for text, _ in NESTED_DATA] + ["alice " * 40 + "works ."]
    docs = [nested_copy.make_doc(text) for text in texts]
    encoder.attrs["max_batch_items"] = 10**9
    together = encoder.predict((docs, []))
    encoder.attrs["max_batch_items"] = 1
    alone = encoder.predict((docs, []))
    windows = together.windows
    for w, n_tokens in enumerate(windows.length):
        n_wordpieces = windows.last_wp[w, n_tokens - 1] + 2  # through [SEP]
        numpy.testing.assert_allclose(
            alone.hidden[w, :n_wordpieces].numpy(), together.hidden[w, :n_wordpieces].numpy(), atol=1e-5
        )
    assert alone.hidden.shape == together.hidden.shape


def test_learns_when_windows_are_split_over_transformer_calls(tiny_bert):
    """Each gradient goes back through the call its window ran in (1 to 3 short windows a call)."""
    nlp = overfit_nested(tiny_bert, {"text_encoder.max_batch_items": 32}, steps=150)  # F 1.0 over seeds 0-4
    assert nlp.evaluate(make_examples(nlp))["spans_sc_f"] >= 0.95


def test_bad_max_batch_items_is_named(tiny_bert):
    with pytest.raises(ValueError, match="max_batch_items >= 1, got 0"):
        make_nlp(tiny_bert, model={"text_encoder.max_batch_items": 0})


def test_threshold_and_labels_at_prediction_time(trained_nested):
    """Raising the threshold only removes spans; a label subset keeps the others' spans."""
    nlp = trained_nested
    texts = [text for text, _ in NESTED_DATA]
    base = [spans_with_scores(doc) for doc in nlp.pipe(texts)]
    assert sum(map(len, base)) > 20
    previous = base
    for threshold in (0.6, 0.8, 0.95, 0.99, 1.0):
        cut = [spans_with_scores(doc) for doc in nlp.pipe(texts, component_cfg={"binder_ner": {"threshold": threshold}})]
        assert cut == [[s for s in spans if s[3] >= threshold] for spans in base]
        assert all(set(now) <= set(before) for now, before in zip(cut, previous))
        previous = cut
    assert sum(map(len, previous)) < sum(map(len, base))
    per_label = {"CELL": 0.99, "DNA": 1.0}
    one = spans_with_scores(nlp(texts[0], component_cfg={"binder_ner": {"threshold": per_label}}))
    assert one == [s for s in base[0] if s[3] >= per_label.get(s[2], 0.5)]
    only = [spans_with_scores(doc) for doc in nlp.pipe(texts, component_cfg={"binder_ner": {"labels": ["CELL", "RNA"]}})]
    assert only == [[s for s in spans if s[2] in ("CELL", "RNA")] for spans in base]
    assert [spans_with_scores(doc) for doc in nlp.pipe(texts)] == base  # nothing stays changed
    with pytest.raises(ValueError, match=r"labels names unknown label\(s\) \['GENE'\]: its labels are"):
        nlp(texts[0], component_cfg={"binder_ner": {"labels": ["GENE"]}})
    with pytest.raises(ValueError, match=r"threshold names unknown label\(s\) \['GENE'\]"):
        list(nlp.pipe(texts, component_cfg={"binder_ner": {"threshold": {"GENE": 0.7}}}))
    with pytest.raises(ValueError, match="a list of labels, got the string 'CELL'"):
        nlp(texts[0], component_cfg={"binder_ner": {"labels": "CELL"}})


def test_a_threshold_below_one_half_adds_spans_under_the_dynamic_threshold(trained_nested):
    """For new types whose scores run low: lowering the threshold keeps every
    span of 0.5 and adds spans scored under it, lower ones the lower it goes."""
    nlp = trained_nested
    texts = [text for text, _ in NESTED_DATA]
    base = [spans_with_scores(doc) for doc in nlp.pipe(texts)]
    previous = base
    for threshold in sorted({0.4, 0.2, NEW_TYPE_THRESHOLD, 0.01}, reverse=True):
        low = [spans_with_scores(doc) for doc in nlp.pipe(texts, component_cfg={"binder_ner": {"threshold": threshold}})]
        assert all(set(before) <= set(now) for before, now in zip(previous, low))
        assert all(s[3] >= threshold for spans in low for s in spans)
        previous = low
    assert sum(map(len, previous)) > sum(map(len, base))
    assert min(s[3] for spans in previous for s in spans) < 0.2
    one = spans_with_scores(nlp(texts[0], component_cfg={"binder_ner": {"threshold": {"CELL": 0.01}}}))
    assert one == [s for s in previous[0] if s[2] == "CELL" or s[3] >= 0.5]


def test_flat_label_subset_and_config_defaults(trained_nested):
    """Flat: removing labels never lets an overlapping span of a kept label in."""
    flat = spacy.blank("en", config=trained_nested.config).from_bytes(trained_nested.to_bytes())
    flat.get_pipe("binder_ner").set_mode("flat")
    texts = [text for text, _ in NESTED_DATA]
    base = [spans_with_scores(doc) for doc in flat.pipe(texts)]
    for kept in (["CELL"], ["PROTEIN", "RNA"], ["DNA"]):
        only = [spans_with_scores(doc) for doc in flat.pipe(texts, component_cfg={"binder_ner": {"labels": kept}})]
        assert only == [[s for s in spans if s[2] in kept] for spans in base]
    config = flat.config.copy()
    config["components"]["binder_ner"].update(threshold=0.9, labels=["CELL"])
    tuned = spacy.blank("en", config=config).from_bytes(flat.to_bytes())
    assert [spans_with_scores(doc) for doc in tuned.pipe(texts)] == [
        [s for s in spans if s[2] == "CELL" and s[3] >= 0.9] for spans in base
    ]
    doc = tuned(texts[0], component_cfg={"binder_ner": {"labels": ["PROTEIN", "CELL", "DNA", "RNA"], "threshold": 0.5}})
    assert spans_with_scores(doc) == base[0] and list(doc.ents) == list(doc.spans["sc"])
