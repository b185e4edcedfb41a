"""Label-aware suffix prompts: layout, limits, training with the few-shot objectives."""
import warnings

import numpy
import pytest

from util import DESCRIPTIONS, NESTED_DATA, make_examples, make_nlp, overfit_nested, predicted
from spacy_binder.encoders import hf_objects, max_wordpieces, window_layout, windowing
from spacy_binder.errors import BinderWarning
from spacy_binder.loss import BinderLoss
from spacy_binder.prompt import LabelPrompt
from spacy_binder.transfer import TypeSampler

PROMPT = {"text_encoder.prompt": {"@misc": "spacy_binder.LabelPrompt.v1"}}
OBJECTIVES = {"@misc": "spacy_binder.BinderLoss.v1", "context_weight": 0.5, "label_weight": 0.5}


def prompted_nlp(tiny_bert, descriptions=DESCRIPTIONS, **model):
    nlp = make_nlp(tiny_bert, model={**PROMPT, **model})
    ner = nlp.get_pipe("binder_ner")
    for label, description in descriptions.items():
        ner.add_label(label, description=description)
    nlp.initialize()
    return nlp, ner


def test_render_marks_each_description():
    text, spans = LabelPrompt(template="type: {description}", separator=" | ").render(["a gene", "a cell"])
    assert text == "type: a gene | type: a cell"
    assert [text[s:e] for s, e in spans] == ["type: a gene", "type: a cell"]
    # A type that is not written (None) keeps its place in the list of spans.
    text, spans = LabelPrompt().render([None, "a gene", None, "a cell"])
    assert text == "a gene ; a cell" and spans[0] is None and spans[2] is None
    assert [text[s:e] for s, e in (spans[1], spans[3])] == ["a gene", "a cell"]
    for template in ("{label}", "no placeholder", "{description} {"):
        with pytest.raises(ValueError, match="template"):
            LabelPrompt(template=template)


def test_windows_read_text_then_the_whole_prompt(any_encoder):
    nlp, ner = prompted_nlp(any_encoder)
    tokenizer = hf_objects(ner.model.get_ref("text_encoder")).tokenizer
    doc = nlp.make_doc("the il-2 gene is expressed in human t cells")
    windows, encoding = windowing(ner.model.get_ref("text_encoder"))([doc], ner.descriptions)
    ids = list(encoding["input_ids"][0])
    labels = encoding["prompt_label"][0]
    text_ids = tokenizer(doc.text)["input_ids"]  # [CLS] text [SEP], or MPNet's <s> text </s>
    assert ids[: len(text_ids)] == text_ids
    assert ids[-1] == tokenizer.sep_token_id
    for k, description in enumerate(ner.descriptions):
        assert [ids[i] for i in numpy.flatnonzero(labels == k)] == tokenizer(description, add_special_tokens=False)["input_ids"]
    assert (labels[: len(text_ids)] == -1).all()
    if "token_type_ids" in encoding:  # BERT's; MPNet has none
        assert (encoding["token_type_ids"][0][len(text_ids) :] == 1).all()
    # Prompt sub-words are never span ends: every token aligns inside the text part.
    layout = window_layout(ner.model.get_ref("text_encoder"), ([doc], ner.descriptions))
    assert layout.first_wp.max() < len(text_ids) - 1 and (layout.first_wp[0, : len(doc)] > 0).all()


def test_long_prompt_and_long_document_lose_no_text(any_encoder):
    # With the tiny vocabulary most words are one sub-word per letter: 5 types of ~80 sub-words.
    long = {f"T{i}": "a long description of entity type number " + "xyz " * 20 for i in range(5)}
    nlp, ner = prompted_nlp(any_encoder, long)
    encoder = ner.model.get_ref("text_encoder")
    limit = max_wordpieces(encoder)
    doc = nlp.make_doc(" ".join(["protein kinase"] * 750))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=BinderWarning)
        windows, encoding = windowing(encoder)([doc], ner.descriptions)
    tokenizer = hf_objects(encoder).tokenizer
    prompt_sizes = [len(tokenizer(d, add_special_tokens=False)["input_ids"]) for d in ner.descriptions]
    assert sum(prompt_sizes) > limit // 2  # the prompt takes most of the encoder's room
    assert (encoding["attention_mask"].sum(axis=1) <= limit).all()
    for row in range(len(windows)):
        assert [int((encoding["prompt_label"][row] == k).sum()) for k in range(5)] == prompt_sizes
    layout = window_layout(encoder, ([doc], ner.descriptions))
    covered = numpy.zeros(len(doc), dtype=bool)
    for w in range(len(layout)):
        n, start = layout.length[w], layout.start[w]
        assert (layout.first_wp[w, :n] >= 0).all(), "a token lost its sub-words"
        covered[start : start + n] = True
    assert covered.all()
    # Prediction runs over all of it: one scored span group, every span inside the document.
    (predicted_doc,) = nlp.pipe([doc])
    group = predicted_doc.spans["sc"]
    assert len(group.attrs["scores"]) == len(group) and all(0 <= s.start < s.end <= len(doc) for s in group)


def test_prompt_too_long_for_the_encoder_is_refused(tiny_bert):
    nlp, ner = prompted_nlp(tiny_bert)
    ner.set_labels({f"T{i}": "xyz " * 100 for i in range(5)})
    with pytest.raises(ValueError, match=r"label prompt is \d+ sub-words long.*Shorten the type descriptions"):
        nlp("the il-2 gene")


def test_prompt_and_objectives_learn_and_round_trip(tiny_bert):
    model = {**PROMPT, "gaussian_embeddings": True}
    loss = {**OBJECTIVES, "similarity": "js"}
    nlp = overfit_nested(tiny_bert, model=model, loss=loss, steps=150)
    scores = nlp.evaluate(make_examples(nlp))
    assert scores["spans_sc_f"] >= 0.9
    assert predicted(nlp(NESTED_DATA[0][0])) == sorted((s, e, l) for s, e, l in NESTED_DATA[0][1])
    copy = make_nlp(tiny_bert, model=model, loss=loss)
    copy.get_pipe("binder_ner").from_bytes(nlp.get_pipe("binder_ner").to_bytes())
    for text, _ in NESTED_DATA:
        doc_a, doc_b = nlp(text), copy(text)
        a, b = doc_a.spans["sc"], doc_b.spans["sc"]
        assert [(s.start, s.end, s.label_) for s in a] == [(s.start, s.end, s.label_) for s in b]
        numpy.testing.assert_allclose(a.attrs["scores"], b.attrs["scores"], rtol=1e-5, atol=1e-6)


def test_objectives_change_training_only_where_asked(tiny_bert):
    nlp, ner = prompted_nlp(tiny_bert)
    examples = make_examples(nlp)
    docs = [eg.predicted for eg in examples]
    inputs = (docs, ner.descriptions, [True] * len(ner.labels))
    assert ner.model.attrs["embeddings"] is False
    scores, _ = ner.model.begin_update(inputs)
    assert scores.span_embedding is None and scores.label_embedding is None
    ner.loss = BinderLoss(context_weight=1.0, label_weight=1.0)
    scores, _ = ner.model.begin_update(inputs)
    assert scores.span_embedding.shape[:3] == scores.span.shape[:3]
    assert scores.label_embedding.shape[:2] == (len(scores.windows), len(ner.labels))
    assert ner.model.predict(inputs).span_embedding is None


def test_objective_settings_the_model_cannot_serve_are_refused(tiny_bert):
    with pytest.raises(ValueError, match="needs a label prompt"):
        make_nlp(tiny_bert, loss=OBJECTIVES)
    with pytest.raises(ValueError, match="gaussian_embeddings = true"):
        make_nlp(tiny_bert, model=PROMPT, loss={**OBJECTIVES, "similarity": "kl"})
    assert make_nlp(tiny_bert, model=PROMPT, loss=OBJECTIVES).get_pipe("binder_ner").loss.label_weight == 0.5


def test_mention_types_are_encoded_but_never_written_into_the_prompt(tiny_bert):
    nlp, ner = prompted_nlp(tiny_bert)
    ner.type_sampler = TypeSampler(n_mention_types=4, seed=0)
    examples = make_examples(nlp)
    step = ner._step_types(examples)
    docs, types, written = [eg.predicted for eg in examples], step.texts, step.prompted
    mentions = [k for k, text in enumerate(types) if text not in ner.descriptions]
    assert mentions and all(not written[k] for k in mentions) and all(written[k] for k in range(len(types)) if k not in mentions)
    encoder = ner.model.get_ref("text_encoder")
    prompt = [text if w else None for text, w in zip(types, written)]
    _, encoding = windowing(encoder)(docs, prompt)
    labels = encoding["prompt_label"]
    assert set(numpy.unique(labels)) == {-1} | {k for k in range(len(types)) if written[k]}
    # The prompt part of each window is exactly the written types, rendered.
    tokenizer = hf_objects(encoder).tokenizer
    expected = tokenizer(LabelPrompt().render(prompt)[0], add_special_tokens=False)["input_ids"]
    for row in range(len(encoding["input_ids"])):
        in_prompt = numpy.flatnonzero(encoding["token_type_ids"][row] * encoding["attention_mask"][row])
        assert list(encoding["input_ids"][row][in_prompt][:-1]) == expected  # the last is [SEP]
    # Training on them works and the label objective only sees written types.
    ner.loss = BinderLoss(context_weight=0.5, label_weight=0.5)
    scores, _ = ner.model.begin_update((docs, types, written))
    assert (scores.label_embedding[:, mentions].abs().sum() == 0) and (scores.label_embedding[:, [k for k in range(len(types)) if written[k]]].norm(dim=-1) > 0.99).all()
