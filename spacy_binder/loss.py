"""BINDER's contrastive losses with dynamic thresholds (paper Eq. 5-10).

Each head (start, end, span) and each type is contrasted separately within each
window. For a gold position or span of type k the softmax runs over itself, the
threshold ([CLS] or the (0, 0) span) and every candidate that is not gold for k
(other gold mentions of k are left out). The threshold term is a softmax over
the threshold and those same negatives, with the threshold as the positive, so
the threshold learns to beat every non-entity candidate of its window.
A (window, type) pair whose Doc is not annotated for the type (a corpus that
annotates other labels, `GoldTargets.known`) adds no term at all.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from spacy.util import registry

from .batch import BinderScores, GoldTargets
from .contrastive import MASKED, SIMILARITIES, context_context, context_label


def contrastive_terms(
    logits: torch.Tensor,
    threshold: torch.Tensor,
    valid: torch.Tensor,
    gold: torch.Tensor,
    known: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Summed mention and threshold losses of one head.

    logits: (W, ..., K); threshold: (W, K); valid: (W, ...) candidates;
    gold: (W, ..., K); known: (W, K) pairs that count, None for all. Returns
    (mention loss sum, number of gold candidates, threshold loss sum, number
    of (window, type) pairs).
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
    if known is not None:
        positive = positive & known[:, None, :]
        threshold_loss = threshold_loss[known]
    mention_loss = (torch.logaddexp(logits, others) - logits)[positive]
    return mention_loss.sum(), positive.sum(), threshold_loss.sum(), threshold_loss.numel()


@registry.misc("spacy_binder.BinderLoss.v1")
@dataclass
class BinderLoss:
    """L = β Σ_h w_h ℓ_h + (1 - β) Σ_h w_h ℓ_h^threshold over h in start, end, span,
    plus the few-shot paper's objectives: + context_weight ℓ_cc + label_weight ℓ_cl.

    `spacy_binder.BinderLoss.v1`: the head weights α (start), γ (end), λ (span)
    and the mention/threshold balance β (mention_weight). Mention terms are
    averaged over gold mentions, threshold terms over (window, type) pairs.
    The context-context and context-label objectives (`spacy_binder.contrastive`,
    off at weight 0) compare span vectors by `similarity`: "cosine" (divided by
    `temperature`), "js" or "kl" (these need gaussian_embeddings in the model);
    context-context draws `n_negatives` non-entity spans per batch, and
    context-label needs a label prompt in the text encoder.
    """

    start_weight: float = 0.2
    end_weight: float = 0.2
    span_weight: float = 0.6
    mention_weight: float = 0.5
    context_weight: float = 0.0
    label_weight: float = 0.0
    similarity: str = "cosine"
    temperature: float = 0.1
    n_negatives: int = 256

    def __post_init__(self) -> None:
        for name in ("start_weight", "end_weight", "span_weight", "context_weight", "label_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"Loss weight {name} must be >= 0, got {getattr(self, name)}.")
        if not 0.0 <= self.mention_weight <= 1.0:
            raise ValueError(f"mention_weight must lie in [0, 1], got {self.mention_weight}.")
        if self.similarity not in SIMILARITIES:
            raise ValueError(f"Unknown similarity '{self.similarity}': use one of {SIMILARITIES}.")
        if self.temperature <= 0:
            raise ValueError(f"Loss temperature must be > 0, got {self.temperature}.")
        if self.n_negatives < 0:
            raise ValueError(f"Loss n_negatives must be >= 0, got {self.n_negatives}.")

    @property
    def uses_embeddings(self) -> bool:
        """Whether the model must output span (and prompt) vectors in training."""
        return self.context_weight > 0 or self.label_weight > 0

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
            m_sum, n_mentions, t_sum, n_pairs = contrastive_terms(logits, null, valid, positive, gold.known)
            mention = mention + weight * m_sum / n_mentions.clamp(min=1)
            threshold = threshold + weight * t_sum / max(n_pairs, 1)
        loss = self.mention_weight * mention + (1.0 - self.mention_weight) * threshold
        if self.uses_embeddings:
            loss = loss + self._fewshot_objectives(scores, gold, span_valid)
        return loss

    def _fewshot_objectives(self, scores: BinderScores, gold: GoldTargets, valid: torch.Tensor) -> torch.Tensor:
        if scores.span_embedding is None:
            raise ValueError(
                "The loss has context or label objectives, but the scores hold no span "
                "embeddings: the model outputs them in training when its "
                "attrs['embeddings'] is set (binder_ner sets it from its loss)."
            )
        loss = scores.span.new_zeros(())
        if self.context_weight > 0:
            loss = loss + self.context_weight * context_context(
                scores.span_embedding, scores.span_variance, gold.span, valid,
                self.similarity, self.temperature, self.n_negatives,
            )
        if self.label_weight > 0:
            if scores.label_embedding is None:
                raise ValueError(
                    "The context-label objective (label_weight > 0) needs a label prompt: set "
                    "[components.<name>.model.text_encoder.prompt] to spacy_binder.LabelPrompt.v1."
                )
            loss = loss + self.label_weight * context_label(
                scores.span_embedding, scores.span_variance, scores.label_embedding,
                scores.label_variance, gold.span, valid, self.similarity, self.temperature,
            )
        return loss

    def get_grad(self, scores: BinderScores, gold: GoldTargets) -> Tuple[float, BinderScores]:
        """The loss value and its gradient with respect to every score tensor."""
        leaves = [t.detach().float().requires_grad_() for t in scores.tensors]
        loss = self(scores.with_tensors(leaves), gold)
        loss.backward()
        grads = [leaf.grad.to(t.dtype) for leaf, t in zip(leaves, scores.tensors)]
        return float(loss.detach()), scores.with_tensors(grads)

