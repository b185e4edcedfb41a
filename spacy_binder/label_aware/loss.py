"""`spacy_binder.LabelAwareLoss.v1`: the label-aware paper's two objectives, per word.

- context-context: every labelled word of the batch is an anchor against
  every other; words of the same label, O included, are its positives. The
  authors' form ("outside", supervised contrastive learning's L_out) is the
  mean over positives of -(l_p - log sum_others e^l); CONTaiNER's ("inside")
  is -log(sum_pos e^l / sum_others e^l). Either is averaged over anchors that
  have a positive (`outside_anchors` false: O words are candidates only, as
  CONTaiNER trains its source);
- context-label: each labelled word against every label of its window's
  prompt ("none" for O first): cross-entropy over the logits;

mixed as context_weight * cc + label_weight * cl (the authors: 0.1 / 0.9 on
the source, 0.3 / 0.7 when fine-tuning). The logit of a pair is minus a
distance between the two Gaussians: "kl", the mean of the two KLs,
(KL(P||Q) + KL(Q||P)) / 2, as both released codes compute it; "js", the
moment-matched Jensen-Shannon of
`spacy_binder.contrastive`; "euclidean", the squared Euclidean distance
between the unit means, which the authors use at 1-shot.
"""
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from spacy.util import registry

from ..contrastive import MASKED, anchor_terms, gaussian_js, symmetric_kl

if TYPE_CHECKING:  # the model module imports the encoders (transformers); the loss needs none of it
    from .model import TokenVectors

DISTANCES = ("kl", "js", "euclidean")
FORMS = ("outside", "inside")
# A word's tag: its label's place in the prompt, OUTSIDE for O; NO_TAG: not
# labelled (its gold token is misaligned), it takes no part.
OUTSIDE = 0
NO_TAG = -1


def pairwise_symmetric_kl(
    mu1: torch.Tensor, var1: torch.Tensor, mu2: torch.Tensor, var2: torch.Tensor
) -> torch.Tensor:
    """`symmetric_kl` of every row of (N, D) against every row of (M, D), as
    matrix products: (N, M) without the (N, M, D) tensor of the broadcast form,
    so a batch of a few thousand words fits in memory. In float64: the
    expansion subtracts large terms, which float32 would leave noisy for close
    pairs (the positives)."""
    dtype = mu1.dtype
    mu1, var1, mu2, var2 = (t.double() for t in (mu1, var1, mu2, var2))
    inv1, inv2 = 1.0 / var1, 1.0 / var2
    variances = var1 @ inv2.T + inv1 @ var2.T - 2.0 * mu1.shape[-1]
    # sum_d (mu1 - mu2)^2 (inv1 + inv2), expanded.
    squared1, squared2 = mu1**2, mu2**2
    means = (
        (squared1 * inv1).sum(-1, keepdim=True)
        + squared1 @ inv2.T
        + inv1 @ squared2.T
        + (squared2 * inv2).sum(-1)[None]
        - 2.0 * ((mu1 * inv1) @ mu2.T + mu1 @ (mu2 * inv2).T)
    )
    return (0.5 * (variances + means)).clamp(min=0.0).to(dtype)


def distances(
    similarity: str, mu1: torch.Tensor, var1: torch.Tensor, mu2: torch.Tensor, var2: torch.Tensor, pairwise: bool
) -> torch.Tensor:
    """The distance of every pair: rows of (N, D) against rows of (M, D) if
    pairwise ((N, M)), else broadcast over leading axes."""
    if similarity == "euclidean":
        unit1, unit2 = torch.nn.functional.normalize(mu1, dim=-1), torch.nn.functional.normalize(mu2, dim=-1)
        if pairwise:
            return (2.0 - 2.0 * unit1 @ unit2.T).clamp(min=0.0)
        return ((unit1 - unit2) ** 2).sum(-1)
    if similarity == "kl":
        both = pairwise_symmetric_kl(mu1, var1, mu2, var2) if pairwise else symmetric_kl(mu1, var1, mu2, var2)
        return 0.5 * both
    if pairwise:  # (N, M, D) at once: the "js" option needs memory for it
        mu1, var1, mu2, var2 = mu1[:, None], var1[:, None], mu2[None], var2[None]
    return gaussian_js(mu1, var1, mu2, var2)


@registry.misc("spacy_binder.LabelAwareLoss.v1")
@dataclass
class LabelAwareLoss:
    context_weight: float = 0.1
    label_weight: float = 0.9
    similarity: str = "kl"
    outside_anchors: bool = True
    form: str = "outside"

    def __post_init__(self) -> None:
        if self.similarity not in DISTANCES:
            raise ValueError(f"Unknown label_aware_ner similarity '{self.similarity}': use one of {DISTANCES}.")
        if self.form not in FORMS:
            raise ValueError(f"Unknown label_aware_ner context-context form '{self.form}': use one of {FORMS}.")
        if self.context_weight < 0 or self.label_weight < 0 or self.context_weight + self.label_weight <= 0:
            raise ValueError(
                f"label_aware_ner's loss weights must be >= 0 and not both 0, got context_weight="
                f"{self.context_weight}, label_weight={self.label_weight}."
            )

    def __call__(self, vectors: "TokenVectors", tags: torch.Tensor) -> torch.Tensor:
        """The weighted loss of a batch; tags (N,) per word of `vectors`."""
        total = vectors.mu.new_zeros(())
        if self.context_weight > 0:
            total = total + self.context_weight * self.context_context(vectors, tags)
        if self.label_weight > 0:
            total = total + self.label_weight * self.context_label(vectors, tags)
        return total

    def context_context(self, vectors: "TokenVectors", tags: torch.Tensor) -> torch.Tensor:
        labelled = torch.nonzero(tags != NO_TAG).flatten()
        if len(labelled) < 2:
            return vectors.mu.new_zeros(())
        mu, var, tag = vectors.mu[labelled], vectors.var[labelled], tags[labelled]
        logits = -distances(self.similarity, mu, var, mu, var, pairwise=True)
        positive = tag[:, None] == tag[None, :]
        candidate = ~torch.eye(len(tag), dtype=torch.bool, device=tag.device)
        positive &= candidate
        if not self.outside_anchors:
            positive &= (tag != OUTSIDE)[:, None]  # an O row has no positive, so it is no anchor
        if self.form == "inside":
            total, count = anchor_terms(logits, positive, candidate)
            return total / count.clamp(min=1)
        masked = logits.masked_fill(~candidate, logits.detach().min() + MASKED)
        log_probability = logits - torch.logsumexp(masked, dim=1, keepdim=True)
        n_positives = positive.sum(dim=1)
        anchors = n_positives > 0
        per_anchor = -(log_probability * positive).sum(dim=1)[anchors] / n_positives[anchors]
        return per_anchor.mean() if len(per_anchor) else logits.new_zeros(())

    def context_label(self, vectors: "TokenVectors", tags: torch.Tensor) -> torch.Tensor:
        n_labels = vectors.label_mu.shape[1]
        if n_labels == 0:
            raise ValueError(
                "label_aware_ner's loss has label_weight > 0, but its model has no label prompt "
                "(prompt = false, CONTaiNER's model): set the loss's label_weight to 0."
            )
        labelled = torch.nonzero(tags != NO_TAG).flatten()
        if len(labelled) == 0:
            return vectors.mu.new_zeros(())
        window = torch.from_numpy(vectors.window).to(labelled.device)[labelled]
        logits = -distances(
            self.similarity,
            vectors.mu[labelled][:, None],
            vectors.var[labelled][:, None],
            vectors.label_mu[window],
            vectors.label_var[window],
            pairwise=False,
        )
        return torch.nn.functional.cross_entropy(logits, tags[labelled])
