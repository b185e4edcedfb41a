"""Algorithm 1 of the paper: from similarity scores to entity spans.

A span is predicted for type k when its span similarity beats the window's
(0, 0) span similarity for k (span-only), and with the joint strategy also when
its start and end similarities beat the [CLS] thresholds. Predictions of
overlapping windows are merged keeping each span's best score. Scores are
sigmoid(similarity - threshold): above 0.5 means above the dynamic threshold.
With a support set, a type's margin mixes in the support margin (nearest
support mention against nearest other support span, `spacy_binder.support`):
(1 - w) * description margin + w * support margin, for the types that have
support mentions; w = 1 decodes by the support alone.
`select` applies the prediction-time controls afterwards, so a higher cut-off or
fewer labels only ever remove spans. A label whose minimum score is below 0.5
(a new type whose margins run low, docs/FEWSHOT.md) is decoded down to it.
"""
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy
import torch

from .batch import BinderScores
from .labels import Threshold, check_threshold

Prediction = Tuple[int, int, int, float]  # start, end (exclusive), label index, score
STRATEGIES = ("span", "joint")


def decode(
    scores: BinderScores,
    strategy: str = "span",
    flat: bool = False,
    support_weight: float = 0.0,
    min_scores: Optional[Sequence[float]] = None,
) -> List[List[Prediction]]:
    """Predicted spans per Doc, ordered by start, end and label. min_scores:
    each label's minimum score; one below 0.5 also decodes that label's spans
    under the dynamic threshold (None: every label stops at it)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown inference strategy '{strategy}': use one of {STRATEGIES}.")
    check_support_weight(support_weight)
    found: List[Dict[Tuple[int, int, int], float]] = [{} for _ in range(scores.n_docs)]
    windows = scores.windows
    if len(windows):
        margin = scores.span.float() - scores.span_threshold.float()[:, None, None, :]
        if scores.support_margin is not None and support_weight > 0:
            support = scores.support_margin.float()
            mixed = margin + support_weight * (support - margin)
            margin = torch.where(torch.isfinite(support), mixed, margin)
        valid = torch.from_numpy(windows.span_mask(scores.max_span_width)).to(margin.device)
        keep = (margin > _floors(min_scores, margin.shape[-1]).to(margin.device)) & valid[..., None]
        if strategy == "joint":
            keep &= _position_agreement(scores)
        w, i, width, k = (idx.tolist() for idx in keep.nonzero(as_tuple=True))
        values = torch.sigmoid(margin[keep]).tolist()
        for w_, i_, width_, k_, value in zip(w, i, width, k, values):
            start = int(windows.start[w_]) + i_
            key = (start, start + width_ + 1, k_)
            doc_found = found[windows.doc_index[w_]]
            doc_found[key] = max(value, doc_found.get(key, 0.0))
    predictions = [
        sorted((s, e, k, score) for (s, e, k), score in doc_found.items())
        for doc_found in found
    ]
    if flat:
        predictions = [remove_overlap(doc_predictions) for doc_predictions in predictions]
    return predictions


def _floors(min_scores: Optional[Sequence[float]], n_labels: int) -> torch.Tensor:
    """(K,) lowest margin decoded per label: 0 (the dynamic threshold), or
    logit(min score) for a label whose minimum score is below 0.5."""
    if min_scores is None:
        return torch.zeros(n_labels)
    return torch.tensor([math.log(s / (1 - s)) if s < 0.5 else 0.0 for s in min_scores])


def check_support_weight(support_weight: float) -> None:
    if not 0.0 <= support_weight <= 1.0:
        raise ValueError(
            f"binder_ner support_weight must be in [0, 1] (0: descriptions only, 1: the "
            f"support set only), got {support_weight}."
        )


def _position_agreement(scores: BinderScores) -> torch.Tensor:
    """(W, T, max_span_width, K): start and end both beat their thresholds."""
    start_ok = scores.start > scores.start_threshold[:, None, :]
    end_ok = scores.end > scores.end_threshold[:, None, :]
    n_tokens = start_ok.shape[1]
    ends = torch.arange(n_tokens)[:, None] + torch.arange(scores.max_span_width)
    ends = ends.clamp(max=n_tokens - 1).to(end_ok.device)
    return start_ok[:, :, None, :] & end_ok[:, ends, :]


def remove_overlap(predictions: List[Prediction]) -> List[Prediction]:
    """Greedy flat decoding: best score first, ties to the earlier start, then end."""
    ranked = sorted(predictions, key=lambda p: (-p[3], p[0], p[1], p[2]))
    taken = numpy.zeros(max((p[1] for p in predictions), default=0), dtype=bool)
    kept = []
    for prediction in ranked:
        start, end = prediction[0], prediction[1]
        if not taken[start:end].any():
            taken[start:end] = True
            kept.append(prediction)
    return sorted(kept)


def select(predictions: List[List[Prediction]], min_scores: Sequence[float]) -> List[List[Prediction]]:
    """Keep the spans whose score reaches their label's minimum (inf drops the label)."""
    return [[p for p in doc_predictions if p[3] >= min_scores[p[2]]] for doc_predictions in predictions]


def min_scores(
    labels: Sequence[str], threshold: Threshold, wanted: Optional[Sequence[str]]
) -> List[float]:
    """The minimum score of each label's spans for `select`: the threshold
    (one, or per label with 0.5 for the rest); inf for a label not wanted
    (None: all are)."""
    check_threshold(threshold)
    if isinstance(wanted, str):
        raise ValueError(f"binder_ner labels must be a list of labels, got the string {wanted!r}.")
    per_label = threshold if isinstance(threshold, Mapping) else {}
    wanted = set(labels) if wanted is None else set(wanted)
    for what, names in (("threshold", per_label), ("labels", wanted)):
        unknown = sorted(set(names) - set(labels))
        if unknown:
            raise ValueError(
                f"binder_ner {what} names unknown label(s) {unknown}: its labels are {list(labels)}."
            )
    default = 0.5 if isinstance(threshold, Mapping) else threshold
    return [per_label.get(label, default) if label in wanted else math.inf for label in labels]
