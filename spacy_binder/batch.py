"""Explicit batch types shared by the model, the loss and the decoder.

Everything is laid out per window, padded to the longest window of the batch:
token arrays are (n_windows, n_tokens), span arrays (n_windows, n_tokens,
max_span_width) where span (w, i, k) runs from token i to token i + k of window
w, and each score array ends in a type axis.
"""
from dataclasses import dataclass
from typing import AbstractSet, List, Mapping, Optional, Sequence, Tuple

import numpy
import torch
from spacy.tokens import Doc, Span


@dataclass
class Windows:
    """Where each encoder window sits in its Doc, and its token to sub-word map."""

    doc_index: numpy.ndarray  # (W,) Doc of each window
    start: numpy.ndarray  # (W,) first spaCy token of the window in its Doc
    length: numpy.ndarray  # (W,) number of spaCy tokens in the window
    first_wp: numpy.ndarray  # (W, T) first sub-word of each token, -1 if none
    last_wp: numpy.ndarray  # (W, T) last sub-word of each token, -1 if none

    def __len__(self) -> int:
        return len(self.doc_index)

    @property
    def n_tokens(self) -> int:
        return self.first_wp.shape[1]

    @property
    def boundary(self) -> numpy.ndarray:
        """(W, T): tokens that can start or end a span (they have sub-words)."""
        return self.first_wp >= 0

    def span_mask(self, max_span_width: int) -> numpy.ndarray:
        """(W, T, max_span_width): candidate spans, both ends on real sub-words."""
        boundary = self.boundary
        n_windows, n_tokens = boundary.shape
        ends = numpy.arange(n_tokens)[:, None] + numpy.arange(max_span_width)[None, :]
        inside = ends < n_tokens
        end_ok = numpy.zeros((n_windows, n_tokens, max_span_width), dtype=bool)
        end_ok[:, inside] = boundary[:, ends[inside]]
        return boundary[:, :, None] & end_ok

    def windows_of(self, doc_index: int) -> numpy.ndarray:
        return numpy.flatnonzero(self.doc_index == doc_index)


@dataclass
class EncodedWindows:
    """Text encoder output: hidden states (W, n_wordpieces, width) and layout.

    prompt_label (W, n_wordpieces): with a label prompt, the type each prompt
    sub-word renders (-1 for every other sub-word); None without one.
    """

    hidden: torch.Tensor
    windows: Windows
    n_docs: int
    prompt_label: Optional[numpy.ndarray] = None

    @classmethod
    def empty(cls, n_docs: int, width: int) -> "EncodedWindows":
        none = numpy.zeros((0,), dtype="int64")
        no_tokens = numpy.zeros((0, 0), dtype="int64")
        windows = Windows(none, none, none, no_tokens, no_tokens)
        return cls(torch.zeros((0, 1, width)), windows, n_docs)


@dataclass
class BinderScores:
    """Similarities (cosine / temperature) of text positions to entity types.

    The `*_threshold` arrays (W, K) hold the similarity of the window's [CLS]
    (start, end) and of its (0, 0) span (span): the dynamic thresholds.
    The `*_embedding` and `*_variance` arrays are the vectors the few-shot
    objectives compare (`spacy_binder.contrastive`), output in training only
    when the loss asks for them: unit span vectors (W, T, max_span_width, D),
    the unit vector of each type's prompt (W, K, D; with a prompt only) and,
    for Gaussian embeddings, their variances.
    With a support set, `support_margin` holds how much closer each span lies to
    its nearest support mention of each type than to its nearest other support
    span, in the same units (cosine / temperature; -inf for a type with no
    support mention). For spans no support weight could predict it may be an
    upper bound, already <= 0, rather than the exact margin (see
    `heads._support_margin`).
    """

    start: torch.Tensor  # (W, T, K)
    end: torch.Tensor  # (W, T, K)
    span: torch.Tensor  # (W, T, max_span_width, K)
    start_threshold: torch.Tensor  # (W, K)
    end_threshold: torch.Tensor  # (W, K)
    span_threshold: torch.Tensor  # (W, K)
    span_embedding: Optional[torch.Tensor] = None
    span_variance: Optional[torch.Tensor] = None
    label_embedding: Optional[torch.Tensor] = None
    label_variance: Optional[torch.Tensor] = None
    support_margin: Optional[torch.Tensor] = None  # (W, T, max_span_width, K)
    windows: Optional[Windows] = None
    n_docs: int = 0

    FIELDS = (
        "start",
        "end",
        "span",
        "start_threshold",
        "end_threshold",
        "span_threshold",
        "span_embedding",
        "span_variance",
        "label_embedding",
        "label_variance",
        "support_margin",
    )

    @property
    def tensors(self) -> Tuple[torch.Tensor, ...]:
        """Every tensor present, in FIELDS order (the heads' outputs)."""
        return tuple(t for t in (getattr(self, name) for name in self.FIELDS) if t is not None)

    @property
    def max_span_width(self) -> int:
        return self.span.shape[2]

    def with_tensors(self, tensors: Sequence[torch.Tensor]) -> "BinderScores":
        """The same layout holding other tensors, e.g. gradients."""
        present = [name for name in self.FIELDS if getattr(self, name) is not None]
        return BinderScores(**dict(zip(present, tensors)), windows=self.windows, n_docs=self.n_docs)


# Gold spans of one Doc: (start, end_exclusive, type index) on its tokens.
GoldSpans = List[Tuple[int, int, int]]
# The labels a Doc's gold spans are complete for; None: every label.
Scope = Optional[AbstractSet[str]]
# Where a corpus annotates only some labels (`python -m spacy_binder merge`):
# doc.spans[spans_key].attrs[SCOPE_ATTR] lists them.
SCOPE_ATTR = "annotated_labels"
# Noun phrases of a training Doc, for the type sampler's phrase types.
PHRASES_KEY = "phrases"


def gold_of(doc: Doc, spans_key: str, flat: bool) -> Optional[List[Span]]:
    """A Doc's gold spans as binder_ner reads them: doc.spans[spans_key], else
    doc.ents in flat mode when the Doc has entity annotation; None if neither."""
    if spans_key in doc.spans:
        return list(doc.spans[spans_key])
    if flat and doc.has_annotation("ENT_IOB"):
        return list(doc.ents)
    return None


def scope_of(doc: Doc, spans_key: str) -> Scope:
    """The labels a Doc is annotated for: its span group's SCOPE_ATTR, else every label."""
    if spans_key in doc.spans and SCOPE_ATTR in doc.spans[spans_key].attrs:
        return frozenset(doc.spans[spans_key].attrs[SCOPE_ATTR])
    return None


def scope_mask(scopes: Sequence[Scope], type_labels: Sequence[Optional[str]]) -> Optional[numpy.ndarray]:
    """(n_docs, n_types): whether each Doc's annotation covers each type, or
    None when all do. type_labels: the label each type stands for; None for
    types every Doc covers (mention texts, negative types)."""
    if all(scope is None for scope in scopes):
        return None
    return numpy.array(
        [[scope is None or label is None or label in scope for label in type_labels] for scope in scopes],
        dtype=bool,
    ).reshape(len(scopes), len(type_labels))


def label_gold(spans_per_doc: Sequence[Sequence[Span]], index: Mapping[str, int]) -> List[GoldSpans]:
    """Each Doc's spans of the labels in `index`, as (start, end, its type index)."""
    return [[(span.start, span.end, index[span.label_]) for span in spans if span.label_ in index] for spans in spans_per_doc]


@dataclass
class StepTypes:
    """The types one update contrasts, and their gold spans per Doc.

    texts: what the type encoder reads for each type. prompted: whether the
    label prompt (if any) writes it; the type sampler's mention types are not
    written, as that would hand the text encoder the very strings it must find.
    known: (n_docs, n_types), whether each Doc is annotated for each type
    (`scope_mask`); None when every Doc is. Other pairs are left out of the
    loss: an unannotated label's mentions are neither positives nor negatives.
    """

    texts: List[str]
    prompted: List[bool]
    gold: List[GoldSpans]
    known: Optional[numpy.ndarray] = None


@dataclass
class GoldTargets:
    """Boolean gold masks in the layout of `BinderScores`."""

    start: torch.Tensor  # (W, T, K)
    end: torch.Tensor  # (W, T, K)
    span: torch.Tensor  # (W, T, max_span_width, K)
    n_too_wide: int  # gold spans wider than max_span_width (cannot be learned)
    n_unaligned: int  # gold spans starting or ending on a token with no sub-word
    known: Optional[torch.Tensor] = None  # (W, K): the window's Doc is annotated for the type


def gold_targets(
    windows: Windows,
    doc_spans: Sequence[GoldSpans],
    n_labels: int,
    max_span_width: int,
    device: torch.device,
    known: Optional[numpy.ndarray] = None,
) -> GoldTargets:
    """Place gold (start, end_exclusive, label) spans of each Doc in the windows.

    A span belongs to every window that wholly contains it, as in the paper.
    known: (n_docs, n_labels) from `StepTypes.known`, spread over the windows.
    """
    shape = (len(windows), windows.n_tokens, n_labels)
    start = numpy.zeros(shape, dtype=bool)
    end = numpy.zeros(shape, dtype=bool)
    span = numpy.zeros(shape[:2] + (max_span_width, n_labels), dtype=bool)
    boundary = windows.boundary
    n_too_wide = n_unaligned = 0
    for doc_i, spans in enumerate(doc_spans):
        doc_windows = windows.windows_of(doc_i)
        for first, stop, label in spans:
            width = stop - 1 - first
            if width >= max_span_width:
                n_too_wide += 1
            placed = False
            for w in doc_windows:
                i = first - windows.start[w]
                j = stop - 1 - windows.start[w]
                if i < 0 or j >= windows.length[w]:
                    continue
                if not (boundary[w, i] and boundary[w, j]):
                    continue
                placed = True
                start[w, i, label] = True
                end[w, j, label] = True
                if width < max_span_width:
                    span[w, i, width, label] = True
            if not placed and width < max_span_width and len(doc_windows):
                n_unaligned += 1
    as_tensor = lambda a: torch.from_numpy(a).to(device)
    window_known = None if known is None else as_tensor(numpy.ascontiguousarray(known[windows.doc_index]))
    return GoldTargets(
        as_tensor(start), as_tensor(end), as_tensor(span), n_too_wide, n_unaligned, window_known
    )
