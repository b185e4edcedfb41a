"""Nearest-support decoding: binder_ner given a few annotated Docs."""
import pytest
import spacy
from spacy.tokens import DocBin, Span

from spacy_binder.errors import BinderWarning
from util import NESTED_DATA, ROUND_TRIP_TEXTS, copy_pipeline, make_examples, make_nlp, package_and_load

FLAT_SUPPORT = [
    ("aspirin eased the migraine of the patient", [(0, 1, "Chemical"), (3, 4, "Disease")]),
    ("ibuprofen did not help his asthma", [(0, 1, "Chemical"), (5, 6, "Disease")]),
    ("the weather was mild that week", []),
]


def support_docs(nlp, data, key="sc"):
    return [eg.reference for eg in make_examples(nlp, data, key=key)]


def predicted(nlp, texts, **controls):
    docs = [nlp.make_doc(text) for text in texts]
    ner = nlp.get_pipe("binder_ner")
    for doc in ner.pipe(docs, **controls):
        yield [(span.start, span.end, span.label_) for span in doc.spans[ner.key]]


def test_untrained_pipeline_decodes_the_supports_own_mentions(tiny_bert):
    """Support alone (weight 1): a support mention is its own nearest
    neighbour, so on the support text every mention is found, with no training."""
    nlp = make_nlp(tiny_bert)
    nlp.initialize(lambda: make_examples(nlp))
    ner = nlp.get_pipe("binder_ner")
    ner.add_support(support_docs(nlp, NESTED_DATA))
    found = list(predicted(nlp, [text for text, _ in NESTED_DATA], support_weight=1.0))
    for (text, gold), spans in zip(NESTED_DATA, found):
        assert {(s, e, label) for s, e, label in gold} <= set(spans), text


def test_trained_pipeline_decodes_support_mentions_combined_nested_and_flat(nested_copy):
    nlp = nested_copy
    ner = nlp.get_pipe("binder_ner")
    ner.add_support(support_docs(nlp, NESTED_DATA[:5]))
    texts = [text for text, _ in NESTED_DATA[:5]]
    combined = list(predicted(nlp, texts, support_weight=0.5))
    for (text, gold), spans in zip(NESTED_DATA[:5], combined):
        assert set(gold) <= set(spans), text
    ner.set_mode("flat")
    docs = list(nlp.pipe(texts))
    assert all(len(doc.ents) > 0 for doc in docs)
    for doc in docs:
        assert list(doc.ents) == list(doc.spans[ner.key])
        starts = sorted((span.start, span.end) for span in doc.ents)
        assert all(end <= next_start for (_, end), (next_start, _) in zip(starts, starts[1:]))


def test_weight_zero_is_plain_prediction_and_the_support_changes_scores(nested_copy):
    nlp = nested_copy
    ner = nlp.get_pipe("binder_ner")
    texts = [text for text, _ in NESTED_DATA]
    plain = [doc.spans[ner.key].attrs["scores"].tolist() for doc in nlp.pipe(texts)]
    ner.add_support(support_docs(nlp, NESTED_DATA[:3]))
    assert [doc.spans[ner.key].attrs["scores"].tolist() for doc in nlp.pipe(texts, component_cfg={"binder_ner": {"support_weight": 0.0}})] == plain
    mixed = [doc.spans[ner.key].attrs["scores"].tolist() for doc in nlp.pipe(texts)]
    assert mixed != plain


def test_scores_predicted_below_weight_one_decode_as_at_one(nested_copy):
    """At weight 1 the model skips the exact margins the descriptions would
    need; what it predicts is what a pass that computes them all predicts."""
    nlp = nested_copy
    ner = nlp.get_pipe("binder_ner")
    ner.add_support(support_docs(nlp, NESTED_DATA[:3]))
    docs = [nlp.make_doc(text) for text, _ in NESTED_DATA]
    alone = ner.predict(docs, support_weight=1.0)
    ner.set_annotations(docs, alone)
    expected = [[(s.start, s.end, s.label_) for s in doc.spans[ner.key]] for doc in docs]
    assert any(expected)
    ner.set_annotations(docs, ner.predict(docs, support_weight=0.5))
    assert [[(s.start, s.end, s.label_) for s in doc.spans[ner.key]] for doc in docs] == expected


def test_support_round_trips_by_disk_bytes_and_package(nested_copy, tmp_path):
    nlp = nested_copy
    ner = nlp.get_pipe("binder_ner")
    ner.add_support(support_docs(nlp, NESTED_DATA[:4]))
    expected = scored(nlp)
    assert any(spans for spans, _ in expected)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert len(loaded.get_pipe("binder_ner").support) == 4
    assert scored(loaded) == expected
    assert scored(copy_pipeline(nlp)) == expected
    assert scored(package_and_load(tmp_path / "pipeline", tmp_path, "support_round_trip")) == expected


def scored(nlp):
    """Spans and scores of ROUND_TRIP_TEXTS with the support counting."""
    ner = nlp.get_pipe("binder_ner")
    return [
        ([(s.start, s.end, s.label_) for s in doc.spans[ner.key]], doc.spans[ner.key].attrs["scores"].tolist())
        for doc in ner.pipe((nlp.make_doc(text) for text in ROUND_TRIP_TEXTS), batch_size=4, support_weight=0.7)
    ]


def test_support_from_the_initialize_config_path(tiny_bert, tmp_path):
    nlp = make_nlp(tiny_bert, mode="flat")
    path = tmp_path / "support.spacy"
    DocBin(docs=support_docs(nlp, FLAT_SUPPORT)).to_disk(path)
    nlp.config["initialize"]["components"]["binder_ner"] = {"support": str(path)}
    nlp.initialize(lambda: make_examples(nlp, FLAT_SUPPORT))
    ner = nlp.get_pipe("binder_ner")
    assert [doc.text for doc in ner.support] == [text for text, _ in FLAT_SUPPORT]
    found = list(predicted(nlp, [FLAT_SUPPORT[0][0]], support_weight=1.0))
    assert {(0, 1, "Chemical"), (3, 4, "Disease")} <= set(found[0])


def test_flat_support_from_ents_and_new_labels_are_added(tiny_bert):
    nlp = make_nlp(tiny_bert, mode="flat")
    nlp.initialize(lambda: make_examples(nlp, [(FLAT_SUPPORT[0][0], [(0, 1, "Chemical")])]))
    ner = nlp.get_pipe("binder_ner")
    docs = [nlp.make_doc(text) for text, _ in FLAT_SUPPORT]
    for doc, (_, spans) in zip(docs, FLAT_SUPPORT):
        doc.ents = [Span(doc, s, e, label) for s, e, label in spans]
    with pytest.warns(BinderWarning, match=r"\['Disease'\] were not labels"):
        ner.add_support(docs)
    assert {"Chemical", "Disease"} <= set(ner.labels)
    found = list(predicted(nlp, [FLAT_SUPPORT[1][0]], support_weight=1.0))
    assert {(0, 1, "Chemical"), (5, 6, "Disease")} <= set(found[0])


def test_support_without_gold_spans_is_refused(tiny_bert):
    nlp = make_nlp(tiny_bert)
    nlp.initialize(lambda: make_examples(nlp))
    with pytest.raises(ValueError, match=r"has no doc.spans\['sc'\].*doc.spans\['sc'\] = \[\]"):
        nlp.get_pipe("binder_ner").add_support([nlp.make_doc("no spans here")])


def test_bad_support_weight_is_refused(tiny_bert):
    nlp = make_nlp(tiny_bert)
    nlp.initialize(lambda: make_examples(nlp))
    with pytest.raises(ValueError, match="support_weight must be in \\[0, 1\\].*got 1.5"):
        list(nlp.get_pipe("binder_ner").pipe([nlp.make_doc("x")], support_weight=1.5))
    with pytest.raises(ValueError, match="got -0.1"):
        make_nlp(tiny_bert, support_weight=-0.1)


def test_a_threshold_below_one_half_is_refused_for_labels_with_support(nested_copy):
    """Support margins are exact only above 0: under 0.5 is for types described only."""
    nlp = nested_copy
    ner = nlp.get_pipe("binder_ner")
    ner.add_support(support_docs(nlp, NESTED_DATA[:3]))  # PROTEIN, DNA and CELL mentions, no RNA
    with pytest.raises(ValueError, match=r"threshold is below 0.5 for \['CELL'\].*support_weight 0"):
        list(predicted(nlp, ["x y"], threshold={"CELL": 0.3}))
    texts = [text for text, _ in NESTED_DATA]
    for low, weight in (({"CELL": 0.3}, 0.0), ({"RNA": 0.3}, 1.0)):  # described only, or no support mention
        at_half = list(predicted(nlp, texts, support_weight=weight))
        lowered = list(predicted(nlp, texts, threshold=low, support_weight=weight))
        assert all(set(half) <= set(now) for half, now in zip(at_half, lowered))


def test_a_too_wide_support_mention_is_reported(tiny_bert):
    nlp = make_nlp(tiny_bert, model={"max_span_width": 2})
    nlp.initialize(lambda: make_examples(nlp, [(NESTED_DATA[0][0], [(1, 2, "PROTEIN")])]))
    ner = nlp.get_pipe("binder_ner")
    ner.add_support(support_docs(nlp, [NESTED_DATA[0]]))  # CELL spans 3 tokens
    with pytest.warns(BinderWarning, match="1 support mention"):
        list(predicted(nlp, ["a t cell"], support_weight=1.0))
    ner.clear_support()
    ner.add_support(support_docs(nlp, [(NESTED_DATA[0][0], [(6, 9, "CELL")])]))  # no mention left
    with pytest.warns(BinderWarning, match="1 support mention"):
        alone = list(predicted(nlp, ["human t cells"], support_weight=1.0))
    assert alone == list(predicted(nlp, ["human t cells"], support_weight=0.0))  # no usable support: descriptions


def test_clearing_the_support_survives_a_save_over_an_old_folder(nested_copy, tmp_path):
    nlp = nested_copy
    ner = nlp.get_pipe("binder_ner")
    ner.add_support(support_docs(nlp, NESTED_DATA[:2]))
    nlp.to_disk(tmp_path / "pipeline")
    with_support = nlp.to_bytes()
    ner.clear_support()
    nlp.to_disk(tmp_path / "pipeline")
    assert spacy.load(tmp_path / "pipeline").get_pipe("binder_ner").support == []
    copy = copy_pipeline(nlp).from_bytes(with_support)
    assert len(copy.get_pipe("binder_ner").support) == 2
    assert copy.from_bytes(nlp.to_bytes()).get_pipe("binder_ner").support == []


def test_support_vectors_follow_the_weights(nested_copy):
    """Fine-tuning after add_support: the support is compared in the new weights' space."""
    nlp = nested_copy
    ner = nlp.get_pipe("binder_ner")
    ner.add_support(support_docs(nlp, NESTED_DATA[:3]))
    texts = [text for text, _ in NESTED_DATA[3:]]
    before = [doc.spans[ner.key].attrs["scores"].tolist() for doc in nlp.pipe(texts)]
    cached = ner.model.attrs["support_cache"][2]
    optimizer = nlp.resume_training()
    nlp.update(make_examples(nlp)[:3], sgd=optimizer)
    after = [doc.spans[ner.key].attrs["scores"].tolist() for doc in nlp.pipe(texts)]
    assert ner.model.attrs["support_cache"][2] is not cached
    assert after != before
