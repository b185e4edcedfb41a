"""Word tags to entities, as both released codes decode: no thresholds, no Viterbi.

Each word takes the tag of its nearest support word (O included), on the unit
encoder states, or without a support set the tag of its nearest prompt label
("none" for O) by the loss's distance; an entity is a maximal run of words
with one non-O tag (IO tagging: two adjacent mentions of one type merge).
"""
from typing import List, Sequence

import numpy
import torch
from spacy.tokens import Doc, Span

from .loss import OUTSIDE, distances
from .model import TokenVectors


def io_tags(doc: Doc, spans: Sequence[Span], index: dict) -> List[int]:
    """Each token's tag: the index of the label of the outermost span over it,
    else OUTSIDE (spans of labels missing from `index` count as O)."""
    tags = [OUTSIDE] * len(doc)
    for span in sorted(spans, key=len):
        for i in range(span.start, span.end):
            tags[i] = index.get(span.label_, OUTSIDE)
    return tags


def io_spans(doc: Doc, tags: Sequence[int], labels: Sequence[str]) -> List[Span]:
    """Maximal runs of one non-O tag, labelled labels[tag]."""
    spans, start = [], None
    for i, tag in enumerate([*tags, OUTSIDE]):
        if start is not None and tag != tags[start]:
            spans.append(Span(doc, start, i, label=labels[tags[start]]))
            start = None
        if start is None and tag != OUTSIDE:
            start = i
    return spans


def nearest_support(states: torch.Tensor, support_states: torch.Tensor, support_tags: torch.Tensor) -> torch.Tensor:
    """The tag of each word's nearest support word: the largest dot product of
    unit vectors, i.e. the least squared Euclidean distance."""
    if len(states) == 0 or len(support_states) == 0:
        return torch.full((len(states),), OUTSIDE, dtype=torch.long, device=states.device)
    return support_tags.to(states.device)[(states @ support_states.T).argmax(dim=1)]


def nearest_label(vectors: TokenVectors, similarity: str) -> torch.Tensor:
    """The tag of each word's nearest label of its window's prompt."""
    window = torch.from_numpy(vectors.window).to(vectors.mu.device)
    found = distances(
        similarity, vectors.mu[:, None], vectors.var[:, None], vectors.label_mu[window], vectors.label_var[window],
        pairwise=False,
    )
    return found.argmin(dim=1)


def doc_tags(vectors: TokenVectors, tags: torch.Tensor, docs: Sequence[Doc]) -> List[List[int]]:
    """Every token's tag per Doc; a token without sub-words (no vector) is O."""
    out = [numpy.full(len(doc), OUTSIDE, dtype="int64") for doc in docs]
    values = tags.cpu().numpy()
    for d in range(len(docs)):
        rows = numpy.flatnonzero(vectors.doc_index == d)
        out[d][vectors.token_index[rows]] = values[rows]
    return [row.tolist() for row in out]
