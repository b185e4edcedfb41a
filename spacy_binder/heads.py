"""BINDER's projection heads: type, token and span vectors and their similarities.

The paper's span vector is Linear(h_i ⊕ h_j ⊕ D(j - i)). A linear layer over a
concatenation is a sum of per-part projections, A·h_i + B·h_j + C·D(j - i) + b,
so we project each token once and add, for spans up to `max_span_width` only:
memory grows with n_tokens × max_span_width, never n_tokens². Dropout comes after
each linear layer, before L2 normalisation, as in the reference code; for Linear^S
after each of its three blocks, so that neither training nor prediction builds
the span vectors (only the few-shot objectives, which need them, do).

With `thresholds="global"` (the paper's Table 6 ablation) the thresholds do
not read the text: each is a learned linear function of the type's projected
vector, zero at the start, i.e. one learned scalar per type that still works
for any label set.

With a label prompt, each type's prompt sub-words are mean-pooled per window
(mean pooling is what sentence encoders such as MiniLM are trained with, and a
description's meaning is spread over all its words, not its first) and
projected into the span space: what the context-label objective pulls each
gold span towards. With Gaussian embeddings a variance head gives every span
and prompt vector a diagonal variance, ELU(Linear(x)) + 1 as in CONTaiNER.

The layers that read encoder states are lazy, so their input widths come from
the first batch (or from the saved weights when a pipeline is loaded).
"""
import math
from functools import cached_property
from typing import Optional, Tuple

import torch
from torch import nn
from torch.nn.functional import elu, normalize

START, END, SPAN = 0, 1, 2
THRESHOLDS = ("dynamic", "global")
# Support vectors compared with a batch's spans at once (memory: W·T·max_span_width of each).
NEAREST_CHUNK = 64
# Other support spans that bound every span's nearest-neighbour cosine, and the
# spans compared with all of them at once.
N_PROBES = 128
EXACT_CHUNK = 4096
# A support set in the span space: its mentions' unit vectors (M, D), their type
# indices (M,), and the unit vectors of its other candidate spans (N, D).
Support = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class BinderHeads(nn.Module):
    def __init__(
        self,
        linear_size: int,
        width_embedding_size: int,
        max_span_width: int,
        dropout: float,
        init_temperature: float,
        thresholds: str = "dynamic",
        gaussian: bool = False,
        prompt: bool = False,
    ):
        super().__init__()
        if thresholds not in THRESHOLDS:
            raise ValueError(f"Unknown thresholds '{thresholds}': use one of {THRESHOLDS}.")
        self.max_span_width = max_span_width
        self.thresholds = thresholds
        if thresholds == "global":
            self.global_threshold = nn.Linear(linear_size, 3)
            nn.init.zeros_(self.global_threshold.weight)
            nn.init.zeros_(self.global_threshold.bias)
        self.type_start = nn.LazyLinear(linear_size)
        self.type_end = nn.LazyLinear(linear_size)
        self.type_span = nn.LazyLinear(linear_size)
        self.token_start = nn.LazyLinear(linear_size)
        self.token_end = nn.LazyLinear(linear_size)
        # Linear^S split into its blocks: span start (with the bias), end, width.
        self.span_start = nn.LazyLinear(linear_size)
        self.span_end = nn.LazyLinear(linear_size, bias=False)
        self.prompt_label = nn.LazyLinear(linear_size) if prompt else None
        self.variance = nn.Linear(linear_size, linear_size) if gaussian else None
        self.width_embedding = nn.Embedding(max_span_width, width_embedding_size)
        self.span_width = nn.Linear(width_embedding_size, linear_size, bias=False)
        self.dropout = nn.Dropout(dropout)
        # One learned temperature per head, stored as log(1 / tau).
        self.log_inv_temperature = nn.Parameter(
            torch.full((3,), math.log(1.0 / init_temperature))
        )

    def _project(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return normalize(self.dropout(layer(x)), dim=-1)

    def forward(
        self,
        hidden: torch.Tensor,
        types: torch.Tensor,
        first_wp: torch.Tensor,
        last_wp: torch.Tensor,
        prompt_label: Optional[torch.Tensor] = None,
        embeddings: bool = False,
        support: Optional[Support] = None,
        support_alone: bool = False,
    ) -> Tuple[Optional[torch.Tensor], ...]:
        """Score every window position and span against every type.

        hidden: (W, P, H) encoder states; types: (K, H') type [CLS] vectors;
        first_wp / last_wp: (W, T) sub-word of each token's start / end (any
        value where the token has none: those positions are masked later);
        prompt_label: (W, P) type of each prompt sub-word, -1 elsewhere (None
        without a prompt); embeddings: also return the vectors of the few-shot
        objectives (in training only); support: the span vectors of a support
        set's mentions, their type indices and its other spans (`span_vectors`);
        support_alone: the description scores will not count with the support's.
        Returns start (W,T,K), end (W,T,K), span (W,T,max_span_width,K), the
        start, end and span thresholds (W,K), the span embeddings, their
        variances, the prompt embeddings and their variances, and the support
        margins (W,T,max_span_width,K) (None when absent).
        """
        n_windows = hidden.shape[0]
        scale = self.log_inv_temperature.exp().clamp(max=100.0)
        h_first, h_last = _token_states(hidden, first_wp, last_wp)
        h_cls = hidden[:, 0]

        e_start = self._project(self.type_start, types)
        e_end = self._project(self.type_end, types)
        e_span = self._project(self.type_span, types)

        start = self._project(self.token_start, h_first) @ e_start.T * scale[START]
        end = self._project(self.token_end, h_last) @ e_end.T * scale[END]

        widths = self.span_width(self.width_embedding.weight)  # (max_span_width, D)
        parts = self._span_parts(h_first, h_last, widths)
        embeddings = embeddings and self.training
        span_embedding = span_variance = support_margin = None
        if embeddings:
            spans = parts.vectors()
            span_embedding = normalize(spans, dim=-1)
            span = span_embedding @ e_span.T
            span_variance = self._variance(spans)
        else:
            span = parts.cosines(e_span)
        span = span * scale[SPAN]
        if self.thresholds == "global":
            thresholds = self._global_thresholds((e_start, e_end, e_span), n_windows)
        else:
            thresholds = self._dynamic_thresholds(h_cls, (e_start, e_end, e_span), widths[0], scale)
        if support is not None:
            described = (span > thresholds[SPAN][:, None, None, :]) & (not support_alone)
            support_margin = _support_margin(parts, support, described) * scale[SPAN]
        label_embedding = label_variance = None
        # Prompt vectors only serve the objectives; computed once more at
        # initialization so that the lazy layer gets its width.
        if prompt_label is not None and (embeddings or isinstance(self.prompt_label, nn.LazyLinear)):
            pooled, written = _pool_prompt(hidden, prompt_label, types.shape[0])
            labels = self.dropout(self.prompt_label(pooled))
            label_embedding = normalize(labels, dim=-1) * written[..., None]
            label_variance = self._variance(labels) if embeddings else None
        if not embeddings:
            span_embedding = label_embedding = None
        return (
            start, end, span, *thresholds, span_embedding, span_variance, label_embedding, label_variance,
            support_margin,
        )

    def span_vectors(self, hidden: torch.Tensor, first_wp: torch.Tensor, last_wp: torch.Tensor) -> torch.Tensor:
        """(W, T, max_span_width, D): every candidate span's unit vector, the
        space the span head compares types in (a support set's spans)."""
        h_first, h_last = _token_states(hidden, first_wp, last_wp)
        widths = self.span_width(self.width_embedding.weight)
        return normalize(self._span_parts(h_first, h_last, widths).vectors(), dim=-1)

    def _span_parts(self, h_first: torch.Tensor, h_last: torch.Tensor, widths: torch.Tensor) -> "SpanParts":
        """Linear^S's three blocks for every span start, end and width.

        Each block gets its own dropout mask, so that training too scores spans
        without building them (a mask on their sum would need the
        (W, T, max_span_width, D) tensor, most of a training step's heads cost).
        """
        n_tokens = h_first.shape[1]
        span_ends = torch.arange(n_tokens, device=h_first.device)[:, None] + torch.arange(
            self.max_span_width, device=h_first.device
        )
        span_ends = span_ends.clamp(max=n_tokens - 1)
        from_start = self.dropout(self.span_start(h_first))  # (W, T, D)
        from_end = self.dropout(self.span_end(h_last))  # (W, T, D)
        return SpanParts(from_start, from_end, self.dropout(widths), span_ends)

    def _variance(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        """Diagonal variances of Gaussian embeddings, > 0 (None without them)."""
        if self.variance is None:
            return None
        return elu(self.variance(x)) + 1.0 + 1e-6

    def _dynamic_thresholds(
        self, h_cls: torch.Tensor, types: Tuple[torch.Tensor, ...], width: torch.Tensor, scale: torch.Tensor
    ) -> Tuple[torch.Tensor, ...]:
        """Similarity of each window's [CLS] (start, end) and (0, 0) span to each type."""
        e_start, e_end, e_span = types
        start = self._project(self.token_start, h_cls) @ e_start.T * scale[START]
        end = self._project(self.token_end, h_cls) @ e_end.T * scale[END]
        null_span = self.span_start(h_cls) + self.span_end(h_cls) + width
        span = normalize(self.dropout(null_span), dim=-1) @ e_span.T * scale[SPAN]
        return start, end, span

    def _global_thresholds(self, types: Tuple[torch.Tensor, ...], n_windows: int) -> Tuple[torch.Tensor, ...]:
        """One learned threshold per type and head, the same in every window."""
        return tuple(
            self.global_threshold(e)[:, head].expand(n_windows, -1)
            for head, e in zip((START, END, SPAN), types)
        )


class SpanParts:
    """The three parts of every candidate span vector a_i + b_j + c_w, and its
    squared norm, from which its cosine with any unit vectors follows without
    building the (W, T, max_span_width, D) span tensor.

    The span vector is a sum (dropout, in training, masks each part), so its dot
    product with a unit vector and its squared norm expand into per-token and
    per-width terms plus the pairwise products a_i·b_j (one batched matmul),
    a_i·c_w and b_j·c_w. This never holds the (W, T, max_span_width, D) tensor
    that dominated inference time and, before per-part dropout, a training step's
    heads. from_start / from_end: (W, T, D); widths: (max_span_width, D);
    span_ends: (T, max_span_width) end token of each span.
    """

    def __init__(
        self, from_start: torch.Tensor, from_end: torch.Tensor, widths: torch.Tensor, span_ends: torch.Tensor
    ):
        self.from_start, self.from_end, self.widths = from_start, from_end, widths
        self.ends = span_ends[None].expand(from_start.shape[0], -1, -1)  # (W, T, max_span_width)

    @cached_property
    def norm(self) -> torch.Tensor:
        """(W, T, max_span_width): each span vector's norm."""
        from_start, from_end, widths = self.from_start, self.from_end, self.widths
        start_sq = (from_start * from_start).sum(-1)  # (W, T)
        end_sq = (from_end * from_end).sum(-1)
        width_sq = (widths * widths).sum(-1)  # (max_span_width,)
        start_end = torch.gather(from_start @ from_end.transpose(1, 2), 2, self.ends)  # (W, T, max_span_width)
        start_width = from_start @ widths.T  # (W, T, max_span_width)
        end_width = torch.gather(from_end @ widths.T, 1, self.ends)  # b_j · c_w at j = end of (i, w)
        norm_sq = (
            start_sq[:, :, None]
            + torch.gather(end_sq, 1, self.ends.flatten(1)).view_as(self.ends)
            + width_sq
            + 2 * (start_end + start_width + end_width)
        )
        # normalize()'s eps, so both paths agree on degenerate vectors.
        return norm_sq.clamp(min=0).sqrt().clamp(min=1e-12)

    def vectors(self) -> torch.Tensor:
        """(W, T, max_span_width, D): the span vectors themselves, unnormalised."""
        return self.from_start[:, :, None] + self.from_end[:, self.ends[0]] + self.widths

    def unit_vectors_at(self, w: torch.Tensor, i: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
        """(N, D): the unit vectors of the spans (window, start token, width) given."""
        return normalize(self.from_start[w, i] + self.from_end[w, self.ends[w, i, width]] + self.widths[width], dim=-1)

    def cosines(self, vectors: torch.Tensor) -> torch.Tensor:
        """(W, T, max_span_width, K): each span's cosine with each unit vector (K, D)."""
        return self._dot(vectors) / self.norm[..., None]

    def _dot(self, vectors: torch.Tensor) -> torch.Tensor:
        """(W, T, max_span_width, K): each span vector's dot product with each
        vector (K, D), built in place (no autograd op here saves its output)."""
        dot = _gather_tokens(self.from_end @ vectors.T, self.ends)
        dot += (self.from_start @ vectors.T)[:, :, None]
        dot += self.widths @ vectors.T  # (max_span_width, K)
        return dot

    @torch.no_grad()
    def nearest(self, vectors: torch.Tensor, labels: torch.Tensor, n_labels: int) -> torch.Tensor:
        """(W, T, max_span_width, n_labels): each span's highest cosine with the
        vectors (N, D) of each label (labels: (N,) index per vector; -inf where a
        label has none). Taken in chunks of vectors, to bound memory; divided by
        the (positive) norm once, after the max: this pass dominates
        nearest-support time."""
        best = torch.full((*self.norm.shape, n_labels), -math.inf, device=self.norm.device)
        for first in range(0, len(vectors), NEAREST_CHUNK):
            dot = self._dot(vectors[first:first + NEAREST_CHUNK])
            chunk_labels = labels[first:first + NEAREST_CHUNK]
            for label in chunk_labels.unique().tolist():
                of_label = dot if n_labels == 1 else dot[..., chunk_labels == label]
                best[..., label] = torch.maximum(best[..., label], of_label.amax(-1))
        return best / self.norm[..., None]

    def max_cosine_at(self, w: torch.Tensor, i: torch.Tensor, width: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
        """(N,): the highest cosine of each span (window, start token, width)
        given with the unit vectors (K, D), in chunks of spans."""
        spans = zip(*(index.split(EXACT_CHUNK) for index in (w, i, width)))
        return torch.cat([(self.unit_vectors_at(*chunk) @ vectors.T).amax(-1) for chunk in spans])


def _token_states(
    hidden: torch.Tensor, first_wp: torch.Tensor, last_wp: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """(W, T, H) states of each token's first and last sub-word."""
    n_windows, n_wordpieces, width = hidden.shape
    flat = hidden.reshape(n_windows * n_wordpieces, width)
    offsets = torch.arange(n_windows, device=hidden.device)[:, None] * n_wordpieces
    return flat[first_wp.clamp(min=0) + offsets], flat[last_wp.clamp(min=0) + offsets]


def _support_margin(parts: SpanParts, support: Support, described: torch.Tensor) -> torch.Tensor:
    """(W, T, max_span_width, K): each span's cosine with its nearest support
    mention of each type minus that with its nearest other support span
    (-inf for a type with no support mention).

    The nearest other span is searched among all of them (thousands) only for
    the spans that some support weight could predict: those above a type's
    description threshold (`described`, (W, T, max_span_width, K)) or closer
    to a mention than to every probe span. Probes come in two rounds: a few
    spans near the mentions and spread over the rest, then the nearest other
    spans of a sample of the spans still open. For the rest, the probes give a
    lower bound of that cosine, so their margin is an upper bound that is
    already <= 0: they are not predicted at any weight, as with the exact value.
    """
    mentions, mention_types, outside = support
    n_types = described.shape[-1]
    nearest_mention = parts.nearest(mentions, mention_types, n_types)
    if len(mentions) == 0:  # none could be placed (too wide, unaligned): -inf throughout
        return nearest_mention
    if len(outside) == 0:  # every candidate span of the support is a mention
        return nearest_mention + 1.0
    probes = outside[_probe_rows(mentions, outside)]
    nearest_outside = parts.nearest(probes, torch.zeros(len(probes), dtype=torch.long), 1)[..., 0]
    w, i, width = _open(nearest_mention, nearest_outside, described).nonzero(as_tuple=True)
    if len(w) > N_PROBES:
        sample = torch.linspace(0, len(w) - 1, N_PROBES, device=w.device).long()
        nearest_of_sample = (parts.unit_vectors_at(w[sample], i[sample], width[sample]) @ outside.T).argmax(-1)
        bound = parts.max_cosine_at(w, i, width, outside[nearest_of_sample.unique()])
        nearest_outside[w, i, width] = torch.maximum(nearest_outside[w, i, width], bound)
        still = _open(nearest_mention[w, i, width], nearest_outside[w, i, width], described[w, i, width])
        w, i, width = w[still], i[still], width[still]
    if len(w):
        exact = parts.max_cosine_at(w, i, width, outside)
        nearest_outside[w, i, width] = torch.maximum(nearest_outside[w, i, width], exact)
    return nearest_mention - nearest_outside[..., None]


def _open(nearest_mention: torch.Tensor, nearest_outside: torch.Tensor, described: torch.Tensor) -> torch.Tensor:
    """The spans whose support margin must be exact: some type has support
    mentions, and the span is above its description threshold or nearer one of
    those mentions than the bound on its nearest other span."""
    could = (nearest_mention > nearest_outside[..., None]) | described
    return (could & torch.isfinite(nearest_mention)).any(-1)


def _probe_rows(mentions: torch.Tensor, outside: torch.Tensor) -> torch.Tensor:
    """The other spans that bound most spans' nearest-neighbour cosine: those
    nearest the mentions (where the decisions are close), and a spread of the rest."""
    n_hard = min(N_PROBES // 2, len(outside))
    hardest = (outside @ mentions.T).amax(-1).topk(n_hard).indices
    spread = torch.linspace(0, len(outside) - 1, N_PROBES - n_hard, device=outside.device).long()
    return torch.unique(torch.cat([hardest, spread]))


def _gather_tokens(values: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """values (W, T, K) at token ends[w, i, k]: (W, T, max_span_width, K)."""
    n_windows, n_tokens, n_types = values.shape
    index = ends.flatten(1)[..., None].expand(-1, -1, n_types)
    return torch.gather(values, 1, index).view(*ends.shape, n_types)


def _pool_prompt(
    hidden: torch.Tensor, prompt_label: torch.Tensor, n_types: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean of each type's prompt sub-words per window (W, K, H), and whether
    the type is written in the prompt at all (W, K)."""
    one_hot = (prompt_label[:, None, :] == torch.arange(n_types, device=hidden.device)[None, :, None])
    weights = one_hot.to(hidden.dtype)
    counts = weights.sum(-1, keepdim=True)
    return (weights / counts.clamp(min=1.0)) @ hidden, counts[..., 0] > 0
