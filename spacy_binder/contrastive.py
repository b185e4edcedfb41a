"""The few-shot paper's two contrastive objectives (Zhang & Zhuang 2024), on spans.

Our model is span-based, so its "context representations" are the unit span
vectors of the span head (the ones decoding compares with the type vectors):

- context-context: each gold span (anchor) is contrasted with the other gold
  spans of the batch and a sample of non-entity candidate spans; gold spans
  sharing a type with it are its positives.
- context-label: each gold span is contrasted with the prompt vector of every
  type written in its window's prompt (`spacy_binder.prompt`); its own types
  are positives. Types not written (mention types) have zero vectors and
  take no part.

Per anchor the loss is -log(sum_pos e^l / sum_candidates e^l), averaged over
anchors that have a positive, as in supervised contrastive learning and
CONTaiNER. The logit l of a pair is its similarity:

- "cosine": cos(u, v) / temperature;
- "kl": minus CONTaiNER's symmetric KL between diagonal Gaussians (the unit
  vectors as means, the heads' variances), temperature 1 as in CONTaiNER;
- "js": minus a Jensen-Shannon divergence between the two Gaussians
  (`gaussian_js`), temperature 1.
"""
from typing import Optional, Tuple

import torch

SIMILARITIES = ("cosine", "js", "kl")
# Masked logits are pushed far down rather than set to -inf (finite gradients).
MASKED = -1e4


def symmetric_kl(mu1: torch.Tensor, var1: torch.Tensor, mu2: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
    """KL(P||Q) + KL(Q||P) between diagonal Gaussians P = N(mu1, var1), Q = N(mu2, var2),
    summed over the last axis (the others broadcast):
    1/2 sum_d [var1/var2 + var2/var1 - 2 + (mu1 - mu2)^2 (1/var1 + 1/var2)]."""
    squared = (mu1 - mu2) ** 2
    terms = var1 / var2 + var2 / var1 - 2.0 + squared * (1.0 / var1 + 1.0 / var2)
    return 0.5 * terms.sum(-1)


def gaussian_js(mu1: torch.Tensor, var1: torch.Tensor, mu2: torch.Tensor, var2: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence between diagonal Gaussians P and Q, with the
    mixture (P + Q) / 2 replaced by its moment-matched Gaussian M (mean
    (mu1 + mu2) / 2, variance S = (var1 + var2) / 2 + ((mu1 - mu2) / 2)^2):
    JS = 1/2 KL(P||M) + 1/2 KL(Q||M), which simplifies to
    1/2 sum_d ln(S / sqrt(var1 var2)).

    It is symmetric, zero if and only if P = Q (S >= (var1 + var2) / 2 >=
    sqrt(var1 var2), with equality only for equal means and variances), and,
    like the true JS, at most a quarter of the symmetric KL (Lin 1991's bound;
    tests/test_contrastive.py). Unlike the true JS it is not bounded by ln 2:
    the moment-matched M is wider than the mixture, so it grows with the log of
    the squared distance between the means where the symmetric KL grows with
    the square, and a far negative cannot dominate the loss.
    """
    spread = 0.5 * (var1 + var2) + (0.5 * (mu1 - mu2)) ** 2
    return 0.5 * (torch.log(spread) - 0.5 * (torch.log(var1) + torch.log(var2))).sum(-1)


def similarity_logits(
    similarity: str,
    temperature: float,
    mu1: torch.Tensor,
    var1: Optional[torch.Tensor],
    mu2: torch.Tensor,
    var2: Optional[torch.Tensor],
) -> torch.Tensor:
    """The contrastive logit of every pair (leading axes broadcast)."""
    if similarity == "cosine":
        return (mu1 * mu2).sum(-1) / temperature
    if var1 is None or var2 is None:
        raise ValueError(
            f"Similarity '{similarity}' compares Gaussian embeddings, but the model has no "
            "variances: set gaussian_embeddings = true in [components.<name>.model]."
        )
    divergence = gaussian_js if similarity == "js" else symmetric_kl
    return -divergence(mu1, var1, mu2, var2)


def anchor_terms(
    logits: torch.Tensor, positive: torch.Tensor, candidate: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Summed -log(sum_pos e^l / sum_candidates e^l) over anchors (rows) that
    have a positive candidate, and their number."""
    positive = positive & candidate
    # Divergence logits are unbounded below, so the fill sits below the lowest one.
    masked = logits.detach().min() + MASKED if logits.numel() else MASKED
    lse_all = torch.logsumexp(logits.masked_fill(~candidate, masked), dim=1)
    lse_positive = torch.logsumexp(logits.masked_fill(~positive, masked), dim=1)
    has_positive = positive.any(dim=1)
    return (lse_all - lse_positive)[has_positive].sum(), has_positive.sum()


def _anchors(gold_span: torch.Tensor, valid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Flat indices of the gold spans (W * T * max_span_width) and their types (G, K)."""
    types = gold_span.flatten(0, 2)
    is_gold = types.any(dim=1) & valid.flatten()
    index = torch.nonzero(is_gold).flatten()
    return index, types[index]


def context_context(
    span_embedding: torch.Tensor,
    span_variance: Optional[torch.Tensor],
    gold_span: torch.Tensor,
    valid: torch.Tensor,
    similarity: str,
    temperature: float,
    n_negatives: int,
) -> torch.Tensor:
    """Mean contrastive loss of gold spans against the batch's other gold spans
    and `n_negatives` non-entity candidate spans drawn at random.

    span_embedding / span_variance: (W, T, max_span_width, D); gold_span:
    (W, T, max_span_width, K); valid: (W, T, max_span_width) candidates.
    """
    index, types = _anchors(gold_span, valid)
    zero = span_embedding.new_zeros(())
    if len(index) < 2:
        return zero
    outside = torch.nonzero(valid.flatten() & ~gold_span.flatten(0, 2).any(dim=1)).flatten()
    drawn = torch.randperm(len(outside), device=outside.device)[:n_negatives]
    candidates = torch.cat([index, outside[drawn]])
    mu = span_embedding.flatten(0, 2)
    var = None if span_variance is None else span_variance.flatten(0, 2)
    logits = similarity_logits(
        similarity,
        temperature,
        mu[index][:, None],
        None if var is None else var[index][:, None],
        mu[candidates][None],
        None if var is None else var[candidates][None],
    )
    n_anchors = len(index)
    shares_type = (types.float() @ types.float().T) > 0
    positive = torch.zeros_like(logits, dtype=torch.bool)
    positive[:, :n_anchors] = shares_type
    candidate = torch.ones_like(positive)
    candidate[:, :n_anchors] &= ~torch.eye(n_anchors, dtype=torch.bool, device=logits.device)
    total, count = anchor_terms(logits, positive, candidate)
    return total / count.clamp(min=1)


def context_label(
    span_embedding: torch.Tensor,
    span_variance: Optional[torch.Tensor],
    label_embedding: torch.Tensor,
    label_variance: Optional[torch.Tensor],
    gold_span: torch.Tensor,
    valid: torch.Tensor,
    similarity: str,
    temperature: float,
) -> torch.Tensor:
    """Mean contrastive loss of gold spans against the prompt vectors of their
    window's types: their own types are positives, the others negatives.

    label_embedding / label_variance: (W, K, D); a type not written in the
    prompt has a zero label vector and is no candidate.
    """
    index, types = _anchors(gold_span, valid)
    if len(index) == 0:
        return span_embedding.new_zeros(())
    window = index // (gold_span.shape[1] * gold_span.shape[2])
    mu = span_embedding.flatten(0, 2)[index][:, None]  # (G, 1, D)
    var = None if span_variance is None else span_variance.flatten(0, 2)[index][:, None]
    label_var = None if label_variance is None else label_variance[window]
    logits = similarity_logits(similarity, temperature, mu, var, label_embedding[window], label_var)
    written = label_embedding.detach().abs().sum(-1)[window] > 0  # (G, K)
    total, count = anchor_terms(logits, types, written)
    return total / count.clamp(min=1)
