"""The few-shot objectives: the Gaussian divergences and the two contrastive losses."""
import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spacy_binder.contrastive import (
    anchor_terms,
    context_context,
    context_label,
    gaussian_js,
    symmetric_kl,
)
from spacy_binder.loss import BinderLoss
from test_loss import tiny_gold, tiny_scores

DIM = 3
value = st.floats(-3.0, 3.0, allow_nan=False)
variance = st.floats(0.01, 5.0, allow_nan=False)
gaussian = st.tuples(st.lists(value, min_size=DIM, max_size=DIM), st.lists(variance, min_size=DIM, max_size=DIM))


def tensors(g):
    mu, var = g
    return torch.tensor(mu, dtype=torch.float64), torch.tensor(var, dtype=torch.float64)


def kl(mu1, var1, mu2, var2):
    """KL(N(mu1, var1) || N(mu2, var2)) for diagonal Gaussians, written out independently."""
    return 0.5 * (var1 / var2 + (mu2 - mu1) ** 2 / var2 - 1 + torch.log(var2 / var1)).sum(-1)


@settings(max_examples=200, deadline=None)
@given(gaussian, gaussian)
def test_divergences_are_symmetric_nonnegative_and_js_at_most_a_quarter_of_kl(p, q):
    (mu1, var1), (mu2, var2) = tensors(p), tensors(q)
    js, js_back = gaussian_js(mu1, var1, mu2, var2), gaussian_js(mu2, var2, mu1, var1)
    skl, skl_back = symmetric_kl(mu1, var1, mu2, var2), symmetric_kl(mu2, var2, mu1, var1)
    assert float(js) == pytest.approx(float(js_back), abs=1e-12)
    assert float(skl) == pytest.approx(float(skl_back), abs=1e-12)
    assert float(js) >= -1e-12 and float(skl) >= -1e-12
    assert float(js) <= float(skl) / 4 + 1e-9  # Lin (1991)'s bound of the true JS holds too


@settings(max_examples=100, deadline=None)
@given(gaussian, gaussian)
def test_divergences_match_their_definitions(p, q):
    (mu1, var1), (mu2, var2) = tensors(p), tensors(q)
    assert float(symmetric_kl(mu1, var1, mu2, var2)) == pytest.approx(
        float(kl(mu1, var1, mu2, var2) + kl(mu2, var2, mu1, var1)), rel=1e-9, abs=1e-12
    )
    # JS against the moment-matched Gaussian of the mixture, computed the long way.
    mean = (mu1 + mu2) / 2
    spread = (var1 + mu1**2 + var2 + mu2**2) / 2 - mean**2
    expected = 0.5 * kl(mu1, var1, mean, spread) + 0.5 * kl(mu2, var2, mean, spread)
    assert float(gaussian_js(mu1, var1, mu2, var2)) == pytest.approx(float(expected), rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(gaussian, gaussian)
def test_divergences_are_zero_only_for_equal_gaussians(p, q):
    (mu1, var1), (mu2, var2) = tensors(p), tensors(q)
    assert float(gaussian_js(mu1, var1, mu1, var1)) == pytest.approx(0.0, abs=1e-12)
    assert float(symmetric_kl(mu1, var1, mu1, var1)) == pytest.approx(0.0, abs=1e-12)
    if not (torch.allclose(mu1, mu2, atol=1e-3) and torch.allclose(var1, var2, atol=1e-3)):
        assert float(gaussian_js(mu1, var1, mu2, var2)) > 0
        assert float(symmetric_kl(mu1, var1, mu2, var2)) > 0


def test_js_grows_with_the_log_of_the_distance_where_kl_grows_with_its_square():
    var = torch.ones(1, dtype=torch.float64)
    at = lambda d, f: float(f(torch.zeros(1, dtype=torch.float64), var, torch.full((1,), d, dtype=torch.float64), var))
    assert at(1000.0, symmetric_kl) / at(100.0, symmetric_kl) == pytest.approx(100.0)
    # equal variances: JS = 1/2 ln(1 + d^2 / 4)
    assert at(1000.0, gaussian_js) == pytest.approx(0.5 * math.log(1 + 1000.0**2 / 4))
    assert at(1000.0, gaussian_js) - at(100.0, gaussian_js) == pytest.approx(math.log(10.0), rel=1e-3)


@pytest.mark.parametrize("divergence", [gaussian_js, symmetric_kl])
def test_divergence_gradients_are_exact_and_finite_near_zero_variance(divergence):
    generator = torch.Generator().manual_seed(0)
    mu1, mu2 = (torch.randn(4, DIM, generator=generator, dtype=torch.float64) for _ in range(2))
    var1 = torch.rand(4, DIM, generator=generator, dtype=torch.float64) + 0.1
    var2 = torch.rand(4, DIM, generator=generator, dtype=torch.float64) + 0.1
    inputs = tuple(t.clone().requires_grad_() for t in (mu1, var1, mu2, var2))
    assert torch.autograd.gradcheck(divergence, inputs)
    # The heads' variances are at least 1e-6 (ELU + 1 + 1e-6).
    tiny = tuple(t.clone().requires_grad_() for t in (mu1, torch.full_like(var1, 1e-6), mu2, var2))
    divergence(*tiny).sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in tiny)


def test_anchor_terms_match_the_supervised_contrastive_formula():
    logits = torch.tensor([[2.0, 0.5, -1.0, 3.0]])
    positive = torch.tensor([[True, False, True, True]])
    candidate = torch.tensor([[True, True, True, False]])  # the last is not a candidate
    total, count = anchor_terms(logits, positive, candidate)
    expected = -math.log((math.exp(2.0) + math.exp(-1.0)) / (math.exp(2.0) + math.exp(0.5) + math.exp(-1.0)))
    assert int(count) == 1 and float(total) == pytest.approx(expected, rel=1e-6)
    # An anchor without a positive adds nothing, even with logits far below the mask.
    total, count = anchor_terms(torch.tensor([[-1e9, -2e9]]), torch.tensor([[False, False]]), torch.ones(1, 2, dtype=torch.bool))
    assert int(count) == 0 and float(total) == 0.0


def test_far_divergence_logits_never_give_a_negative_loss():
    logits = torch.tensor([[-5e8, -1e8, -3e8]])
    total, count = anchor_terms(logits, torch.tensor([[True, False, False]]), torch.ones(1, 3, dtype=torch.bool))
    assert int(count) == 1 and float(total) >= 0


def spans_layout(vectors, labels, n_types=2):
    """One window, spans (0, w) for w in range(len(vectors)), the given unit vectors and types."""
    n = len(vectors)
    embedding = torch.nn.functional.normalize(torch.tensor(vectors, dtype=torch.float64), dim=-1).view(1, 1, n, -1)
    gold = torch.zeros((1, 1, n, n_types), dtype=torch.bool)
    for w, label in enumerate(labels):
        if label is not None:
            gold[0, 0, w, label] = True
    return embedding, gold, torch.ones((1, 1, n), dtype=torch.bool)


def test_context_context_prefers_same_type_spans_together():
    labels = [0, 0, 1, 1, None]
    together, gold, valid = spans_layout([[1, 0], [1, 0.1], [0, 1], [0.1, 1], [-1, -1]], labels)
    mixed, _, _ = spans_layout([[1, 0], [0, 1], [1, 0.1], [0.1, 1], [-1, -1]], labels)
    loss = lambda e: float(context_context(e, None, gold, valid, "cosine", 0.1, 10))
    assert loss(together) < 0.01 < 1.0 < loss(mixed)
    # Fewer than two gold spans: nothing to contrast.
    single = gold.clone()
    single[0, 0, 1:] = False
    assert float(context_context(together, None, single, valid, "cosine", 0.1, 10)) == 0.0


def test_context_label_pulls_each_span_to_its_own_label():
    embedding, gold, valid = spans_layout([[1, 0], [0, 1]], [0, 1])
    right = embedding[0, 0].view(1, 2, 2)  # label k's prompt vector = span k's
    wrong = right.flip(1)
    loss = lambda labels: float(context_label(embedding, None, labels, None, gold, valid, "cosine", 0.1))
    assert loss(right) < 1e-3 and loss(wrong) > 10
    with pytest.raises(ValueError, match="gaussian_embeddings = true"):
        context_label(embedding, None, right, None, gold, valid, "kl", 0.1)


def with_embeddings(scores, dim=4, gaussian=False, seed=1):
    generator = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.randn(*shape, generator=generator, dtype=torch.float64)
    n_windows, n_tokens, width, n_types = scores.span.shape
    fields = {
        "span_embedding": torch.nn.functional.normalize(rand(n_windows, n_tokens, width, dim), dim=-1),
        "label_embedding": torch.nn.functional.normalize(rand(n_windows, n_types, dim), dim=-1),
    }
    if gaussian:
        fields["span_variance"] = rand(n_windows, n_tokens, width, dim).exp()
        fields["label_variance"] = rand(n_windows, n_types, dim).exp()
    return dataclasses.replace(scores, **fields)


@pytest.mark.parametrize("similarity", ["cosine", "js", "kl"])
def test_binder_loss_with_objectives_has_exact_gradients(similarity):
    scores = with_embeddings(tiny_scores(), gaussian=similarity != "cosine")
    gold = tiny_gold(scores)
    loss_fn = BinderLoss(context_weight=0.5, label_weight=0.5, similarity=similarity, n_negatives=0)

    def loss_of(*tensors):
        return loss_fn(scores.with_tensors(tensors), gold)

    inputs = tuple(t.clone().requires_grad_() for t in scores.tensors)
    assert torch.autograd.gradcheck(loss_of, inputs, eps=1e-6, atol=1e-5)
    _, d_scores = loss_fn.get_grad(scores, gold)
    assert d_scores.span_embedding.abs().sum() > 0 and d_scores.label_embedding.abs().sum() > 0
    assert float(loss_fn(scores, gold)) > float(BinderLoss()(scores, gold))


def test_binder_loss_refuses_bad_objective_settings():
    for bad, match in (
        ({"similarity": "euclid"}, "euclid"),
        ({"context_weight": -1.0}, "context_weight"),
        ({"temperature": 0.0}, "temperature"),
        ({"n_negatives": -1}, "n_negatives"),
    ):
        with pytest.raises(ValueError, match=match):
            BinderLoss(**bad)
    scores = tiny_scores()
    with pytest.raises(ValueError, match="no span embeddings"):
        BinderLoss(context_weight=1.0)(scores, tiny_gold(scores))
