import math

import numpy
import pytest
import torch

from spacy_binder.batch import BinderScores, GoldTargets, Windows
from spacy_binder.loss import BinderLoss, contrastive_terms


def tiny_scores(n_windows=2, n_tokens=4, width=2, n_types=2, seed=0) -> BinderScores:
    generator = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.randn(*shape, generator=generator, dtype=torch.float64)
    first = numpy.tile(numpy.arange(1, n_tokens + 1), (n_windows, 1))
    first[1, -1] = -1  # window 1 is one token shorter
    windows = Windows(
        doc_index=numpy.zeros(n_windows, dtype="int64"),
        start=numpy.arange(n_windows) * 2,
        length=numpy.array([n_tokens, n_tokens - 1]),
        first_wp=first,
        last_wp=first.copy(),
    )
    return BinderScores(
        rand(n_windows, n_tokens, n_types),
        rand(n_windows, n_tokens, n_types),
        rand(n_windows, n_tokens, width, n_types),
        rand(n_windows, n_types),
        rand(n_windows, n_types),
        rand(n_windows, n_types),
        windows=windows,
        n_docs=1,
    )


def tiny_gold(scores: BinderScores) -> GoldTargets:
    start = torch.zeros(scores.start.shape, dtype=torch.bool)
    end = torch.zeros(scores.end.shape, dtype=torch.bool)
    span = torch.zeros(scores.span.shape, dtype=torch.bool)
    # type 0: span (1, 2) in window 0 and a nested span (1, 1).
    span[0, 1, 1, 0] = span[0, 1, 0, 0] = True
    start[0, 1, 0] = end[0, 2, 0] = end[0, 1, 0] = True
    return GoldTargets(start, end, span, 0, 0)


def test_loss_gradient_matches_finite_differences():
    scores = tiny_scores()
    gold = tiny_gold(scores)
    loss_fn = BinderLoss()

    def loss_of(*tensors):
        return loss_fn(scores.with_tensors(tensors), gold)

    inputs = tuple(t.clone().requires_grad_() for t in scores.tensors)
    assert torch.autograd.gradcheck(loss_of, inputs, eps=1e-6, atol=1e-5)


def test_get_grad_returns_autograd_gradient_in_score_layout():
    scores = tiny_scores()
    gold = tiny_gold(scores)
    loss, d_scores = BinderLoss().get_grad(scores, gold)
    inputs = [t.clone().requires_grad_() for t in scores.tensors]
    expected = BinderLoss()(scores.with_tensors(inputs), gold)
    expected.backward()
    assert loss == pytest.approx(float(expected))
    for got, leaf in zip(d_scores.tensors, inputs):
        assert torch.allclose(got, leaf.grad)
    # Masked candidates (padding of window 1) receive no gradient.
    assert torch.all(d_scores.start[1, -1] == 0)
    assert torch.all(d_scores.span[1, -1] == 0)


def test_contrastive_terms_match_the_paper_formula():
    # One window, one type, four candidates; candidates 1 and 2 are gold.
    logits = torch.tensor([[[0.5], [2.0], [1.0], [-1.0]]])
    threshold = torch.tensor([[0.3]])
    valid = torch.tensor([[True, True, True, True]])
    gold = torch.tensor([[[False], [True], [True], [False]]])
    mention, n_mentions, thresh, n_pairs = contrastive_terms(logits, threshold, valid, gold)
    negatives = [0.5, -1.0]
    expected = 0.0
    for positive in (2.0, 1.0):
        # other gold mentions of the type are not in the denominator
        denominator = sum(math.exp(x) for x in negatives + [0.3, positive])
        expected += -math.log(math.exp(positive) / denominator)
    expected_threshold = -math.log(math.exp(0.3) / sum(math.exp(x) for x in negatives + [0.3]))
    assert int(n_mentions) == 2 and n_pairs == 1
    assert float(mention) == pytest.approx(expected, rel=1e-5)
    assert float(thresh) == pytest.approx(expected_threshold, rel=1e-5)


def test_loss_weights_combine_as_configured():
    scores = tiny_scores()
    gold = tiny_gold(scores)
    only_span = BinderLoss(start_weight=0, end_weight=0, span_weight=1, mention_weight=1)(scores, gold)
    windows = scores.windows
    valid = torch.from_numpy(windows.span_mask(scores.max_span_width))
    m, n, _, _ = contrastive_terms(scores.span, scores.span_threshold, valid, gold.span)
    assert float(only_span) == pytest.approx(float(m / n))
    only_threshold = BinderLoss(mention_weight=0.0)(scores, gold)
    assert float(only_threshold) > 0


def test_window_with_no_negatives_stays_finite():
    logits = torch.zeros((1, 1, 1), requires_grad=True)
    threshold = torch.zeros((1, 1), requires_grad=True)
    valid = torch.tensor([[True]])
    gold = torch.tensor([[[True]]])
    mention, _, thresh, _ = contrastive_terms(logits, threshold, valid, gold)
    (mention + thresh).backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(threshold.grad).all()
