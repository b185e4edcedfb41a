"""BINDER's contrastive losses with dynamic thresholds (paper Eq. 5-10).

Each head (start, end, span) and each type is contrasted separately within each
window. For a gold position or span of type k the softmax runs over itself, the
threshold ([CLS] or the (0, 0) span) and every candidate that is not gold for k
(other gold mentions of k are left out). The threshold term is a softmax over
the threshold and those same negatives, with the threshold as the positive, so
the threshold learns to beat every non-entity candidate of its window.
"""
from dataclasses import dataclass
from typing import Tuple

import torch
from spacy.util import registry

from .batch import BinderScores, GoldTargets

# Masked logits are pushed far down rather than set to -inf, which keeps the
# gradient finite when a window has no candidate of some kind.
MASKED = -1e4


def contrastive_terms(
    logits: torch.Tensor, threshold: torch.Tensor, valid: torch.Tensor, gold: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Summed mention and threshold losses of one head.

    logits: (W, ..., K); threshold: (W, K); valid: (W, ...) candidates;
    gold: (W, ..., K). Returns (mention loss sum, number of gold candidates,
    threshold loss sum, number of (window, type) pairs).
    """
    n_windows, n_types = threshold.shape
    logits = logits.reshape(n_windows, -1, n_types)
    valid = valid.reshape(n_windows, -1, 1)
    gold = gold.reshape(n_windows, -1, n_types)
    negative = valid & ~gold
    positive = valid & gold
    lse_negative = torch.logsumexp(logits.masked_fill(~negative, MASKED), dim=1)
    threshold_loss = torch.logaddexp(threshold, lse_negative) - threshold
    others = torch.logaddexp(lse_negative, threshold)[:, None, :]
    mention_loss = (torch.logaddexp(logits, others) - logits)[positive]
    return mention_loss.sum(), positive.sum(), threshold_loss.sum(), threshold.numel()


@registry.misc("spacy_binder.BinderLoss.v1")
@dataclass
class BinderLoss:
    """L = β Σ_h w_h ℓ_h + (1 - β) Σ_h w_h ℓ_h^threshold over h in start, end, span.

    `spacy_binder.BinderLoss.v1`: the head weights α (start), γ (end), λ (span)
    and the mention/threshold balance β (mention_weight). Mention terms are
    averaged over gold mentions, threshold terms over (window, type) pairs.
    """

    start_weight: float = 0.2
    end_weight: float = 0.2
    span_weight: float = 0.6
    mention_weight: float = 0.5

    def __post_init__(self) -> None:
        for name in ("start_weight", "end_weight", "span_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"Loss weight {name} must be >= 0, got {getattr(self, name)}.")
        if not 0.0 <= self.mention_weight <= 1.0:
            raise ValueError(f"mention_weight must lie in [0, 1], got {self.mention_weight}.")

    def __call__(self, scores: BinderScores, gold: GoldTargets) -> torch.Tensor:
        device = scores.span.device
        windows = scores.windows
        token_valid = torch.from_numpy(windows.boundary).to(device)
        span_valid = torch.from_numpy(windows.span_mask(scores.max_span_width)).to(device)
        heads = (
            (self.start_weight, scores.start, scores.start_threshold, token_valid, gold.start),
            (self.end_weight, scores.end, scores.end_threshold, token_valid, gold.end),
            (self.span_weight, scores.span, scores.span_threshold, span_valid, gold.span),
        )
        mention = threshold = scores.span.new_zeros(())
        for weight, logits, null, valid, positive in heads:
            m_sum, n_mentions, t_sum, n_pairs = contrastive_terms(logits, null, valid, positive)
            mention = mention + weight * m_sum / n_mentions.clamp(min=1)
            threshold = threshold + weight * t_sum / max(n_pairs, 1)
        return self.mention_weight * mention + (1.0 - self.mention_weight) * threshold

    def get_grad(self, scores: BinderScores, gold: GoldTargets) -> Tuple[float, BinderScores]:
        """The loss value and its gradient with respect to every score tensor."""
        leaves = [t.detach().float().requires_grad_() for t in scores.tensors]
        loss = self(scores.with_tensors(leaves), gold)
        loss.backward()
        grads = [leaf.grad.to(t.dtype) for leaf, t in zip(leaves, scores.tensors)]
        return float(loss.detach()), scores.with_tensors(grads)

