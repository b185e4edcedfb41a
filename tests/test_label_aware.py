"""label_aware_ner: the label-aware paper's token-level method and CONTaiNER, on the tiny BERT."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import spacy
import torch
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from thinc.api import Config, fix_random_seed

from spacy_binder.contrastive import symmetric_kl
from spacy_binder.encoders import windowing
from spacy_binder.label_aware.component import DEFAULT_LABEL_AWARE_MODEL
from spacy_binder.label_aware.decode import io_spans, io_tags
from spacy_binder.label_aware.loss import DISTANCES, FORMS, NO_TAG, LabelAwareLoss, pairwise_symmetric_kl
from spacy_binder.label_aware.model import TokenVectors, label_positions, word_owners
from util import copy_pipeline, package_and_load

ROOT = Path(__file__).resolve().parents[1]
# Our own toy sentences: (text, [(start, end, label)]).
DATA = [
    ("alice lives in paris", [(0, 1, "PER"), (3, 4, "LOC")]),
    ("bob works at acme corp", [(0, 1, "PER"), (3, 5, "ORG")]),
    ("alice visited london", [(0, 1, "PER"), (2, 3, "LOC")]),
    ("the company acme corp is in london", [(2, 4, "ORG"), (6, 7, "LOC")]),
]
WORDS = {"PER": "person", "LOC": "location", "ORG": "organization"}
# CONTaiNER: no prompt, no context-label term, O words candidates only.
CONTAINER = {"prompt": False, "loss": {"context_weight": 1.0, "label_weight": 0.0, "outside_anchors": False, "form": "inside"}}


def make_nlp(encoder: Path, prompt: bool = True, loss=None) -> spacy.Language:
    fix_random_seed(0)
    model = Config().from_str(DEFAULT_LABEL_AWARE_MODEL)["model"]
    model["text_encoder"]["name"] = str(encoder)
    model["prompt"] = prompt
    nlp = spacy.blank("en")
    nlp.add_pipe("label_aware_ner", config={
        "model": model, "label_words": WORDS, "loss": {"@misc": "spacy_binder.LabelAwareLoss.v1", **(loss or {})},
    })
    return nlp


def examples(nlp, data=DATA):
    out = []
    for text, spans in data:
        reference = nlp.make_doc(text)
        reference.ents = [Span(reference, s, e, label) for s, e, label in spans]
        out.append(Example(nlp.make_doc(text), reference))
    return out


def entities(nlp, texts):
    return [[(e.start, e.end, e.label_) for e in doc.ents] for doc in nlp.pipe(texts)]


def leave_one_out(ner, docs) -> float:
    """How often a support word's nearest other support word has its tag."""
    ner.clear_support()
    ner.add_support(docs)
    states, tags = ner._support_vectors()
    similarity = states @ states.T
    similarity.fill_diagonal_(-2.0)
    ner.clear_support()
    return float((tags[similarity.argmax(dim=1)] == tags).float().mean())


def train(nlp, egs, steps=150, lr=1e-3):
    optimizer = nlp.initialize(lambda: egs)
    optimizer.learn_rate = lr
    losses = [nlp.update(egs, sgd=optimizer, drop=0.0)["label_aware_ner"] for _ in range(steps)]
    return losses


def test_prompt_layout_is_the_authors(tiny_bert):
    """[CLS] text [SEP] then one [CLS] word [SEP] block per label, "none" first;
    a label's vector is read at its [CLS]; the text is never cut for the prompt."""
    nlp = make_nlp(tiny_bert)
    ner = nlp.get_pipe("label_aware_ner")
    ner.initialize(lambda: examples(nlp))
    assert ner.words == ["none", "location", "organization", "person"]
    layout = windowing(ner.model.get_ref("text_encoder"))
    _, encoding = layout([nlp.make_doc("alice lives in paris")], ner.words)
    pieces = encoding["input_texts"][0]
    text = ["[CLS]", "alice", "lives", "in", "paris", "[SEP]"]
    assert pieces[:6] == text
    blocks = " ".join(pieces[6:]).split(" [SEP]")[:-1]
    assert [block.split()[0] for block in blocks] == ["[CLS]"] * 4
    assert ["".join(block.split()[1:]).replace("#", "") for block in blocks] == ner.words
    assert not encoding["token_type_ids"].any()  # one segment, as the authors feed it
    cls = [i for i, piece in enumerate(pieces) if piece == "[CLS]"][1:]
    assert label_positions(encoding["prompt_label"], 4, 1).tolist() == [cls]
    # A window of 128 words keeps all of them beside the prompt.
    long = nlp.make_doc(" ".join(["alice"] * 128))
    windows, encoding = layout([long], ner.words)
    assert [len(w) for w in windows] == [128] and encoding["input_texts"][0][:130].count("alice") == 128


def test_each_word_is_read_where_it_has_most_context(tiny_bert):
    nlp = make_nlp(tiny_bert)
    ner = nlp.get_pipe("label_aware_ner")
    ner.initialize(lambda: examples(nlp))
    text_encoder = ner.model.get_ref("text_encoder")
    doc = nlp.make_doc(" ".join(["alice"] * 200))
    windows = text_encoder.predict(([doc], ner.words)).windows  # windows at 0 and 96, of 128 and 104
    doc_index, token, window, _ = word_owners(windows)
    assert token.tolist() == list(range(200)) and set(doc_index.tolist()) == {0}
    # Token 111 lies 16 words from the first window's end and 15 from the second's
    # start: the first window; token 112 has more room in the second.
    assert window[111] == 0 and window[112] == 1 and window[:96].max() == 0 and window[128:].min() == 1


def random_vectors(n_words=6, n_labels=3, dim=4, n_windows=2, seed=0) -> TokenVectors:
    generator = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.randn(*shape, generator=generator, dtype=torch.float64)  # noqa: E731
    return TokenVectors(
        doc_index=numpy.zeros(n_words, dtype="int64"),
        token_index=numpy.arange(n_words),
        window=numpy.arange(n_words) % n_windows,
        states=rand(n_words, dim),
        mu=rand(n_words, dim),
        var=torch.exp(rand(n_words, dim) * 0.5),
        label_mu=rand(n_windows, n_labels, dim),
        label_var=torch.exp(rand(n_windows, n_labels, dim) * 0.5),
    )


def test_pairwise_symmetric_kl_is_the_broadcast_one():
    v = random_vectors(n_words=5)
    w = random_vectors(n_words=7, seed=1)
    expected = symmetric_kl(v.mu[:, None], v.var[:, None], w.mu[None], w.var[None])
    assert torch.allclose(pairwise_symmetric_kl(v.mu, v.var, w.mu, w.var), expected)


@pytest.mark.parametrize("similarity", DISTANCES)
@pytest.mark.parametrize("term, form", [("context_context", "outside"), ("context_context", "inside"), ("context_label", "outside")])
def test_loss_gradients_match_finite_differences(similarity, term, form):
    v = random_vectors()
    tags = torch.tensor([0, 1, 1, 2, 0, NO_TAG])
    loss = LabelAwareLoss(similarity=similarity, form=form)

    def value(mu, var, label_mu, label_var):
        return getattr(loss, term)(dataclasses.replace(v, mu=mu, var=var, label_mu=label_mu, label_var=label_var), tags)

    inputs = [t.clone().requires_grad_() for t in v.trained]
    assert torch.autograd.gradcheck(value, inputs, eps=1e-6, atol=1e-5)


def test_loss_values_by_hand():
    """The distance is the mean of the two KLs, as both released codes compute it.
    context-label is cross-entropy over minus the distances to the window's labels;
    context-context averages over anchors with a positive (O anchors only with
    outside_anchors) the authors' -mean_pos(l_p - log sum_others e^l) ("outside")
    or CONTaiNER's -log(sum_pos e^l / sum_others e^l) ("inside")."""
    v = random_vectors()
    tags = torch.tensor([0, 1, 1, 2, 0, NO_TAG])
    d = 0.5 * symmetric_kl(v.mu[:, None], v.var[:, None], v.label_mu[v.window], v.label_var[v.window])
    expected = torch.nn.functional.cross_entropy(-d[:5], tags[:5])
    assert torch.isclose(LabelAwareLoss().context_label(v, tags), expected)

    logits = -0.5 * symmetric_kl(v.mu[:5, None], v.var[:5, None], v.mu[None, :5], v.var[None, :5])

    def anchor(i, form):
        others = [j for j in range(5) if j != i]
        positives = [j for j in others if tags[j] == tags[i]]
        if form == "inside":
            return -(torch.logsumexp(logits[i, positives], 0) - torch.logsumexp(logits[i, others], 0))
        return -(logits[i, positives] - torch.logsumexp(logits[i, others], 0)).mean()

    for form in FORMS:
        with_outside = torch.stack([anchor(i, form) for i in (0, 1, 2, 4)]).mean()  # word 3 has no positive
        assert torch.isclose(LabelAwareLoss(form=form).context_context(v, tags), with_outside)
        entities_only = torch.stack([anchor(i, form) for i in (1, 2)]).mean()
        assert torch.isclose(LabelAwareLoss(outside_anchors=False, form=form).context_context(v, tags), entities_only)
    weighted = LabelAwareLoss(context_weight=0.3, label_weight=0.7)(v, tags)
    outside = torch.stack([anchor(i, "outside") for i in (0, 1, 2, 4)]).mean()
    assert torch.isclose(weighted, 0.3 * outside + 0.7 * expected)


def test_io_tags_and_spans():
    doc = Doc(spacy.blank("en").vocab, words="a b c d e f".split())
    spans = [Span(doc, 0, 3, "X"), Span(doc, 1, 2, "Y"), Span(doc, 4, 5, "Z")]
    tags = io_tags(doc, spans, {"X": 1, "Y": 2})
    assert tags == [1, 1, 1, 0, 0, 0]  # the outermost span wins; Z is not a label: O
    assert [(s.start, s.end, s.label_) for s in io_spans(doc, [1, 1, 2, 0, 2, 2], ["", "X", "Y"])] == [
        (0, 2, "X"), (2, 3, "Y"), (4, 6, "Y"),
    ]


@pytest.mark.parametrize("variant", ["label-aware", "CONTaiNER"])
def test_overfits_and_decodes_the_supports_mentions(tiny_bert, variant):
    settings = CONTAINER if variant == "CONTaiNER" else {}
    nlp = make_nlp(tiny_bert, **settings)
    egs = examples(nlp)
    ner = nlp.get_pipe("label_aware_ner")
    gold = [[(s, e, label) for s, e, label in spans] for _, spans in DATA]
    texts = [text for text, _ in DATA]
    ner.initialize(lambda: egs)
    before = leave_one_out(ner, [eg.reference for eg in egs])
    losses = train(nlp, egs)
    # The authors' form has a floor above 0 (log of the positives' count): a fifth.
    assert losses[-1] < 0.2 * losses[0]
    # The objectives shape the encoder: a word's nearest other word shares its tag.
    after = leave_one_out(ner, [eg.reference for eg in egs])
    assert after >= 0.8 and after > before + 0.25
    if variant == "label-aware":  # the context-label term learned: nearest label decodes the text
        assert entities(nlp, texts + [""]) == gold + [[]]
    ner.add_support([eg.reference for eg in egs])
    assert entities(nlp, texts) == gold


def test_support_round_trips_by_disk_bytes_and_package(tiny_bert, tmp_path):
    nlp = make_nlp(tiny_bert)
    egs = examples(nlp)
    train(nlp, egs, steps=20)
    nlp.get_pipe("label_aware_ner").add_support([eg.reference for eg in egs[:2]])
    texts = [text for text, _ in DATA] + ["", "paris " * 300]
    expected = entities(nlp, texts)
    assert any(expected)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert len(loaded.get_pipe("label_aware_ner").support) == 2
    assert entities(loaded, texts) == expected
    assert entities(copy_pipeline(nlp), texts) == expected
    assert entities(package_and_load(tmp_path / "pipeline", tmp_path, "label_aware_round_trip"), texts) == expected


def test_settings_that_cannot_work_are_refused(tiny_bert):
    with pytest.raises(ValueError, match="label_weight=0.9.*no label prompt"):
        make_nlp(tiny_bert, prompt=False)
    with pytest.raises(ValueError, match="Unknown label_aware_ner similarity 'cos'"):
        LabelAwareLoss(similarity="cos")
    with pytest.raises(ValueError, match="Unknown label_aware_ner context-context form 'mean'"):
        LabelAwareLoss(form="mean")
    nlp = make_nlp(tiny_bert)
    with pytest.raises(ValueError, match="found no entities"):
        nlp.initialize(lambda: [Example(nlp.make_doc("alice"), nlp.make_doc("alice"))])


def test_source_and_fewshot_configs_train_with_spacy_train(tiny_bert, tmp_path):
    """configs/label_aware.cfg trains a source; configs/label_aware_fewshot.cfg
    fine-tunes it on a support set with new labels, which it then decodes by."""
    nlp = spacy.blank("en")
    source = DocBin(docs=[eg.reference for eg in examples(nlp)])
    source.to_disk(tmp_path / "source.spacy")
    words = tmp_path / "words.jsonl"
    words.write_text("\n".join(json.dumps({"label": k, "description": v}) for k, v in WORDS.items()))
    support = nlp.make_doc("bob lives in acme corp")
    support.ents = [Span(support, 3, 5, "Company")]
    DocBin(docs=[support]).to_disk(tmp_path / "support.spacy")
    target_words = tmp_path / "target.jsonl"
    target_words.write_text(json.dumps({"label": "Company", "description": "company"}))

    def spacy_train(config: str, output: Path, *overrides: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "spacy", "train", str(ROOT / "configs" / config), "--output", str(output), *overrides],
            capture_output=True, text=True, timeout=600,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    spacy_train("label_aware.cfg", tmp_path / "source", "--paths.train", str(tmp_path / "source.spacy"),
                "--paths.dev", str(tmp_path / "source.spacy"), "--paths.words", str(words),
                "--paths.encoder", str(tiny_bert), "--training.max_epochs", "3", "--training.batcher.size", "2")
    spacy_train("label_aware_fewshot.cfg", tmp_path / "target", "--paths.source", str(tmp_path / "source" / "model-last"),
                "--paths.train", str(tmp_path / "support.spacy"), "--paths.words", str(target_words),
                "--training.max_steps", "3")
    target = spacy.load(tmp_path / "target" / "model-last")
    ner = target.get_pipe("label_aware_ner")
    assert ner.labels == ("Company",) and ner.words == ["none", "company"] and len(ner.support) == 1
    assert [(e.text, e.label_) for e in target("bob lives in acme corp").ents] == [("acme corp", "Company")]
