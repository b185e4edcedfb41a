import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy.tokens import Doc, DocBin, Span
from spacy.vocab import Vocab

from spacy_binder.sampler import sample_support

VOCAB = Vocab()


def make_doc(spans, n_words: int = 8, key: str = "sc") -> Doc:
    doc = Doc(VOCAB, words=[f"w{i}" for i in range(n_words)])
    doc.spans[key] = [Span(doc, s, e, label) for s, e, label in spans]
    return doc


def mentions(docs, key: str = "sc") -> Counter:
    return Counter(span.label_ for doc in docs for span in doc.spans[key])


# A pool: each doc holds 0-4 (possibly nested) spans of types A-D.
SPAN = st.tuples(st.integers(0, 6), st.integers(1, 2), st.sampled_from("ABCD"))
POOL = st.lists(st.lists(SPAN, max_size=4), max_size=30).map(
    lambda docs: [make_doc([(s, s + w, label) for s, w, label in spans]) for spans in docs]
)


@settings(max_examples=150, deadline=None)
@given(pool=POOL, k=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_sampler_invariants(pool, k, seed):
    if not mentions(pool):
        with pytest.raises(ValueError, match="No mentions"):
            sample_support(pool, k, seed)
        return
    support, report = sample_support(pool, k, seed)
    ids = [id(doc) for doc in support]
    assert len(set(ids)) == len(ids)
    pool_order = [id(doc) for doc in pool if id(doc) in set(ids)]
    assert ids == pool_order  # a subset of the pool, in pool order
    in_pool, in_support = mentions(pool), mentions(support)
    assert report.mentions == in_support
    for label, count in in_pool.items():
        if count >= k:
            assert in_support[label] >= k and label not in report.short
        else:  # every mention the pool has, and reported as short
            assert in_support[label] == count and report.short[label] == count
    assert all(len(doc.spans["sc"]) for doc in support)  # each was drawn for a type it holds
    again, _ = sample_support(pool, k, seed)
    assert [id(doc) for doc in again] == ids


def test_rarest_type_first_and_counts_shared():
    """B is rarest: both of its sentences are drawn, and their A mentions count for A."""
    pool = [make_doc([(0, 1, "A")]) for _ in range(20)]
    pool += [make_doc([(0, 1, "B"), (2, 3, "A"), (4, 5, "A")]), make_doc([(1, 2, "B"), (3, 4, "A")])]
    support, report = sample_support(pool, k=2, seed=0)
    assert support == pool[-2:]
    assert report.mentions == Counter({"A": 3, "B": 2}) and report.sentences == Counter({"A": 2, "B": 2})


def test_nested_mentions_count_each():
    pool = [make_doc([(0, 3, "DNA"), (0, 1, "protein")]), make_doc([(0, 1, "protein")])]
    support, report = sample_support(pool, k=1, seed=3)
    assert support == pool[:1]  # DNA (rarer) draws the first, whose nested protein reaches K
    assert report.mentions == Counter({"DNA": 1, "protein": 1})


def test_seeds_give_different_support_sets():
    pool = [make_doc([(0, 1, "A")]) for _ in range(50)]
    drawn = {tuple(id(d) for d in sample_support(pool, 1, seed)[0]) for seed in range(1, 6)}
    assert len(drawn) > 1


def test_bad_k_and_missing_key():
    with pytest.raises(ValueError, match="K must be at least 1, got 0"):
        sample_support([make_doc([])], 0, 1)
    with pytest.raises(ValueError, match="No mentions in doc.spans\\['sc'\\] of the 2 documents"):
        sample_support([make_doc([]), make_doc([])], 1, 1)
    with pytest.raises(ValueError, match=r"no doc.spans\['sc'\].*'ents_gold'"):
        sample_support([make_doc([(0, 1, "A")], key="ents_gold")], 1, 1)


def test_cli_reports_counts_and_short_types(tmp_path):
    pool = [make_doc([(0, 1, "A")]) for _ in range(6)] + [make_doc([(0, 2, "B")])]
    source, out = tmp_path / "dev.spacy", tmp_path / "support.spacy"
    DocBin(docs=pool).to_disk(source)
    cmd = [sys.executable, "-m", "spacy_binder", "fewshot-sample", str(source), str(out), "--k", "3", "--seed", "4"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "4 of 7 sentences drawn (3-shot, seed 4)" in result.stdout
    assert "A: 3 mentions in 3 sentences (pool: 6 mentions)" in result.stdout
    assert "SHORT: B has only 1 mentions in the whole pool, fewer than K=3" in result.stdout
    written = list(DocBin().from_disk(out).get_docs(Vocab()))
    assert mentions(written) == Counter({"A": 3, "B": 1})
    bad = subprocess.run(cmd[:-4] + ["--k", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "K must be at least 1" in bad.stderr
