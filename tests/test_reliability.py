"""Any text in, nothing lost: long tokens, nasty strings, multiprocessing, diverging training."""
import json
import re
import subprocess
import sys
import warnings

import pytest
import spacy
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.tokens import DocBin

from util import NESTED_DATA, described_nlp, make_examples, spans_with_scores
from spacy_binder.encoders import max_wordpieces, window_layout
from spacy_binder.errors import BinderWarning
from spacy_binder.tokenizer import SurrogateSafeTokenizer

LONG_TOKENS = [
    "CC(C)" * 300,  # a SMILES string
    "https://example.com/" + "/".join(["ab"] * 400),
    ",".join(str(i) for i in range(3000)),
]
NASTY = [
    "",
    "   ",
    "\n\n\t \n",
    "\u200b\u200b\u200b",
    "\ufeffthe il-2 gene",
    "bell\x07 null\x00 escape\x1b[31m red\x7f",
    "il-2 \U0001F9EC\U0001F52C\U0001F469\u200d\U0001F52C cells \U0001F600",
    "人类T细胞中表达的IL-2基因",
    "\u05d4\u05d2\u05df il-2 \u0645\u0648\u062c\u0648\u062f \u200f\u202e cells",
    "il\u0301\u0302\u0303-2 ge\u0308\u0308ne c\u0327ells " + "a" + "\u0300" * 500,
    "a" * 100_000,
    "CC(C)" * 20_000,
    "the il-2 gene is expressed in human t cells . " * 440,  # ~20k characters, 4,400 tokens: dozens of windows
    "\t\n".join("the il-2 gene is expressed in jurkat cells".split()),
    "the il-2 [PAD] gene [CLS] in [SEP] t cells [PAD]",
    *LONG_TOKENS,
]


def same_predictions(doc, expected) -> bool:
    """The same spans, with scores equal up to float rounding (padding changes the last bits)."""
    found = spans_with_scores(doc)
    return [s[:3] for s in found] == [s[:3] for s in expected] and all(
        s[3] == pytest.approx(e[3], abs=1e-5) for s, e in zip(found, expected)
    )


def check_doc(doc) -> None:
    group = doc.spans["sc"]
    assert group.doc is doc and len(group.attrs["scores"]) == len(group)
    for span, score in zip(group, group.attrs["scores"]):
        assert 0 <= span.start < span.end <= len(doc)
        assert 0.5 < score <= 1.0


def test_a_long_token_is_encoded_by_its_ends_and_loses_nothing_else(trained_nested):
    nlp = trained_nested
    ner = nlp.get_pipe("binder_ner")
    texts = [text for text, _ in NESTED_DATA[:3]]
    alone = [spans_with_scores(doc) for doc in nlp.pipe(texts)]
    assert any(alone)
    for i, long_token in enumerate(LONG_TOKENS):
        batch = [texts[0], f"{texts[1]} {long_token} {texts[1]}", texts[2]]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            docs = list(nlp.pipe(batch))
        said = [str(w.message) for w in caught if w.category is BinderWarning]
        if i == 0:
            assert len(said) == 1 and re.search(r"1 token\(s\) of more than 128 sub-words .* first and last 64", said[0])
        else:  # the same cause again: said once per process
            assert said == []
        assert same_predictions(docs[0], alone[0]) and same_predictions(docs[2], alone[2])
        check_doc(docs[1])
        # the long token keeps a first and a last sub-word: spans may start and end on it
        long_index = len(nlp.make_doc(texts[1]))
        layout = window_layout(ner.model.get_ref("text_encoder"), ([nlp.make_doc(batch[1])], ner.descriptions))
        first, last = layout.first_wp[0, long_index], layout.last_wp[0, long_index]
        assert first >= 0 and last - first + 1 == max_wordpieces(ner.model.get_ref("text_encoder")) // 4


def test_nasty_strings_alone_and_batched(trained_nested):
    nlp = trained_nested
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=BinderWarning)
        batched = list(nlp.pipe(NASTY, batch_size=len(NASTY)))
        alone = [nlp(text) for text in NASTY]
    assert len(batched) == len(NASTY)
    for text, doc, single in zip(NASTY, batched, alone):
        assert doc.text == text
        check_doc(doc)
        assert same_predictions(doc, spans_with_scores(single)), repr(text[:40])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
        | st.sampled_from([text for text, _ in NESTED_DATA]),
        min_size=1,
        max_size=6,
    ),
    batch_size=st.integers(1, 4),
)
def test_random_text_and_batches(trained_nested, texts, batch_size):
    """spaCy cannot hold lone surrogates (category Cs): its tokenizer rejects them."""
    nlp = trained_nested
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=BinderWarning)
        docs = list(nlp.pipe(texts, batch_size=batch_size))
        alone = [spans_with_scores(nlp(text)) for text in texts]
    assert len(docs) == len(texts)
    for doc, single in zip(docs, alone):
        check_doc(doc)
        assert same_predictions(doc, single)


PIPE_SCRIPT = """
import json, sys, spacy, torch
torch.set_num_threads(2)
nlp = spacy.load(sys.argv[1])
texts = json.loads(sys.argv[2])
nlp(texts[0])  # torch's thread pool is up in the parent before the fork
docs = nlp.pipe(texts, n_process=2, batch_size=2)
print(json.dumps([[(s.start, s.end, s.label_) for s in doc.spans["sc"]] for doc in docs]))
"""


def test_pipe_with_two_processes_does_not_hang(trained_nested, tmp_path):
    nlp = trained_nested
    nlp.to_disk(tmp_path / "model")
    texts = [text for text, _ in NESTED_DATA] * 2
    expected = [[(s.start, s.end, s.label_) for s in doc.spans["sc"]] for doc in nlp.pipe(texts)]
    result = subprocess.run(
        [sys.executable, "-c", PIPE_SCRIPT, str(tmp_path / "model"), json.dumps(texts)],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert [[tuple(s) for s in doc] for doc in json.loads(result.stdout)] == expected


def test_a_diverging_update_stops_with_an_error_naming_it(tiny_bert):
    nlp = described_nlp(tiny_bert)
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    nlp.update(examples, sgd=optimizer)
    heads = nlp.get_pipe("binder_ner").model.get_ref("heads")
    with torch.no_grad():
        next(heads.shims[0]._model.parameters()).fill_(float("nan"))
    with pytest.raises(ValueError, match=r"loss of update 2 is nan: training diverged, and this update was not applied. Lower the learning rate"):
        nlp.update(examples, sgd=optimizer)


def test_whitespace_gold_spans_are_counted_at_initialize(tiny_bert):
    nlp = described_nlp(tiny_bert)
    examples = make_examples(nlp, [("il-2  in t cells", [(0, 1, "PROTEIN"), (1, 2, "PROTEIN"), (3, 5, "CELL")])])
    assert examples[0].reference[1].is_space
    with pytest.warns(BinderWarning, match=r"1 of 3 gold spans \(of the first 1 training examples with gold spans\) start or end on a token"):
        nlp.initialize(lambda: examples)


@pytest.mark.parametrize("suffix", [".jsonl", ".spacy"])
def test_spacy_apply(trained_nested, tmp_path, suffix):
    nlp = trained_nested
    nlp.to_disk(tmp_path / "model")
    texts = [text for text, _ in NESTED_DATA[:4]]
    source = tmp_path / f"input{suffix}"
    if suffix == ".jsonl":
        source.write_text("\n".join(json.dumps({"text": text}) for text in texts), encoding="utf8")
    else:
        DocBin(docs=[nlp.make_doc(text) for text in texts]).to_disk(source)
    output = tmp_path / "output.spacy"
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "apply", str(tmp_path / "model"), str(source), str(output)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    docs = list(DocBin().from_disk(output).get_docs(nlp.vocab))
    expected = [spans_with_scores(doc) for doc in nlp.pipe(texts)]
    assert [doc.text for doc in docs] == texts
    assert [[(s.start, s.end, s.label_) for s in doc.spans["sc"]] for doc in docs] == [
        [span[:3] for span in doc] for doc in expected
    ]
    assert all(doc.spans["sc"] for doc in docs)


def test_lone_surrogates_are_read_as_replacement_characters(trained_nested, tmp_path):
    text = "\udcff the il-2 gene is expressed in human t cells \udcfe"
    with pytest.raises(UnicodeEncodeError):
        spacy.blank("en")(text)  # spaCy's own tokenizer, before any component
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "spacy_binder.Tokenizer.v1"}}})
    nlp.add_pipe("binder_ner", source=trained_nested)
    with pytest.warns(BinderWarning, match=rf"2 lone surrogate character\(s\) .* at character 0, {len(text) - 1} of a {len(text)}-character text"):
        doc = nlp(text)
    clean = text.replace("\udcff", "\ufffd").replace("\udcfe", "\ufffd")
    assert doc.text == clean and doc.spans["sc"]
    assert same_predictions(doc, spans_with_scores(trained_nested(clean)))
    nlp.tokenizer.add_special_case("il-2", [{"ORTH": "il-2"}])  # still spaCy's tokenizer inside
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    assert isinstance(loaded.tokenizer, SurrogateSafeTokenizer) and "il-2" in loaded.tokenizer.rules
    with warnings.catch_warnings():
        warnings.simplefilter("error", BinderWarning)  # said once per process: not again
        assert same_predictions(loaded(text), spans_with_scores(doc))
