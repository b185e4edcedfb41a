import numpy
import pytest
import torch

from spacy_binder.batch import BinderScores, Windows
from spacy_binder.decode import decode, remove_overlap

NEG = -5.0


def scores_with(spans, n_tokens=6, width=4, n_types=2, windows=None, n_docs=1, start_ok=None):
    """Span scores of NEG everywhere but `spans`: {(window, i, width, type): value}."""
    windows = windows or Windows(
        doc_index=numpy.zeros(1, dtype="int64"),
        start=numpy.zeros(1, dtype="int64"),
        length=numpy.array([n_tokens]),
        first_wp=numpy.arange(1, n_tokens + 1)[None],
        last_wp=numpy.arange(1, n_tokens + 1)[None],
    )
    n_windows = len(windows)
    span = torch.full((n_windows, n_tokens, width, n_types), NEG)
    for (w, i, k, t), value in spans.items():
        span[w, i, k, t] = value
    token = torch.ones((n_windows, n_tokens, n_types))
    zeros = torch.zeros((n_windows, n_types))
    return BinderScores(token, token.clone(), span, zeros, zeros, zeros, windows=windows, n_docs=n_docs)


def test_nested_keeps_all_spans_above_threshold():
    scores = scores_with({(0, 1, 2, 0): 2.0, (0, 1, 0, 1): 1.0, (0, 4, 1, 0): -0.5})
    (preds,) = decode(scores)
    assert [(s, e, k) for s, e, k, _ in preds] == [(1, 2, 1), (1, 4, 0)]
    assert all(score > 0.5 for *_, score in preds)
    assert preds[1][3] == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item())


def test_a_min_score_below_one_half_decodes_that_label_under_its_threshold():
    scores = scores_with({(0, 1, 2, 0): 2.0, (0, 4, 1, 0): -0.5, (0, 2, 0, 1): -0.5, (0, 0, 0, 1): -3.0})
    (preds,) = decode(scores, min_scores=[0.3, 0.5])
    # logit(0.3) = -0.85: label 0's -0.5 span joins; label 1's stays under 0.5
    assert [(s, e, k) for s, e, k, _ in preds] == [(1, 4, 0), (4, 6, 0)]
    assert preds[1][3] == pytest.approx(torch.sigmoid(torch.tensor(-0.5)).item())
    (low,) = decode(scores, min_scores=[0.3, 0.01])
    assert [(s, e, k) for s, e, k, _ in low] == [(0, 1, 1), (1, 4, 0), (2, 3, 1), (4, 6, 0)]
    assert decode(scores, min_scores=[0.5, float("inf")]) == decode(scores)


def test_flat_with_a_low_min_score_keeps_what_one_half_keeps():
    """Spans under 0.5 are taken after every span above it, so they never displace one."""
    scores = scores_with({(0, 1, 2, 0): 2.0, (0, 2, 2, 1): -0.2, (0, 5, 0, 1): -0.4, (0, 0, 0, 0): -2.0})
    (high,) = decode(scores, flat=True)
    (low,) = decode(scores, flat=True, min_scores=[0.2, 0.2])
    assert [(s, e, k) for s, e, k, _ in high] == [(1, 4, 0)]
    assert [(s, e, k) for s, e, k, _ in low] == [(1, 4, 0), (5, 6, 1)]


def test_same_span_two_types_in_nested_mode():
    scores = scores_with({(0, 2, 1, 0): 1.0, (0, 2, 1, 1): 0.5})
    (preds,) = decode(scores)
    assert [(s, e, k) for s, e, k, _ in preds] == [(2, 4, 0), (2, 4, 1)]


def test_flat_removes_overlaps_greedily():
    scores = scores_with({(0, 1, 2, 0): 2.0, (0, 1, 0, 1): 3.0, (0, 3, 1, 1): 1.0, (0, 5, 0, 0): 0.5})
    (preds,) = decode(scores, flat=True)
    # (1,2) scores 3 and wins over (1,4); (3,5) then fits; (5,6) fits.
    assert [(s, e, k) for s, e, k, _ in preds] == [(1, 2, 1), (3, 5, 1), (5, 6, 0)]


def test_flat_ties_prefer_earlier_start_then_earlier_end():
    preds = [(2, 4, 0, 0.9), (1, 3, 1, 0.9), (1, 2, 0, 0.9), (3, 5, 0, 0.7)]
    # equal scores: (1,2) first (earliest start, then earliest end), then (2,4); (1,3) and (3,5) overlap.
    assert remove_overlap(preds) == [(1, 2, 0, 0.9), (2, 4, 0, 0.9)]


def test_joint_strategy_also_needs_start_and_end_above_threshold():
    scores = scores_with({(0, 1, 2, 0): 2.0, (0, 4, 0, 0): 2.0})
    scores.start[0, 4, 0] = -1.0  # start of (4, 5) is below the [CLS] threshold
    scores.end[0, 3, 0] = 1.0
    (span_only,) = decode(scores, strategy="span")
    (joint,) = decode(scores, strategy="joint")
    assert [(s, e) for s, e, *_ in span_only] == [(1, 4), (4, 5)]
    assert [(s, e) for s, e, *_ in joint] == [(1, 4)]
    scores.end[0, 3, 0] = -1.0  # now the end of (1, 4) fails too
    assert decode(scores, strategy="joint") == [[]]


def test_overlapping_windows_merge_with_best_score_per_doc():
    windows = Windows(
        doc_index=numpy.array([0, 0, 1]),
        start=numpy.array([0, 4, 0]),
        length=numpy.array([6, 6, 3]),
        first_wp=numpy.vstack([numpy.arange(1, 7)] * 2 + [[1, 2, 3, -1, -1, -1]]),
        last_wp=numpy.vstack([numpy.arange(1, 7)] * 2 + [[1, 2, 3, -1, -1, -1]]),
    )
    # Doc 0 token 5 is token 5 of window 0 and token 1 of window 1.
    scores = scores_with(
        {(0, 5, 0, 0): 1.0, (1, 1, 0, 0): 2.0, (1, 3, 1, 1): 1.0, (2, 3, 0, 0): 3.0},
        windows=windows,
        n_docs=2,
    )
    doc0, doc1 = decode(scores)
    assert [(s, e, k) for s, e, k, _ in doc0] == [(5, 6, 0), (7, 9, 1)]
    assert doc0[0][3] == pytest.approx(torch.sigmoid(torch.tensor(2.0)).item())
    assert doc1 == []  # token 3 of window 2 is padding


def test_unknown_strategy():
    with pytest.raises(ValueError, match="'both'"):
        decode(scores_with({}), strategy="both")
