"""BINDER's projection heads: type, token and span vectors and their similarities.

The paper's span vector is Linear(h_i ⊕ h_j ⊕ D(j - i)). A linear layer over a
concatenation is a sum of per-part projections, A·h_i + B·h_j + C·D(j - i) + b,
so we project each token once and add, for spans up to `max_span_width` only:
memory grows with n_tokens × max_span_width, never n_tokens². Dropout comes after
each linear layer, before L2 normalisation, as in the reference code.

With `thresholds="global"` (the paper's Table 6 ablation) the thresholds do
not read the text: each is a learned linear function of the type's projected
vector, zero at the start, i.e. one learned scalar per type that still works
for any label set.

The layers that read encoder states are lazy, so their input widths come from
the first batch (or from the saved weights when a pipeline is loaded).
"""
import math
from typing import Tuple

import torch
from torch import nn
from torch.nn.functional import normalize

START, END, SPAN = 0, 1, 2
THRESHOLDS = ("dynamic", "global")


class BinderHeads(nn.Module):
    def __init__(
        self,
        linear_size: int,
        width_embedding_size: int,
        max_span_width: int,
        dropout: float,
        init_temperature: float,
        thresholds: str = "dynamic",
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
    ) -> Tuple[torch.Tensor, ...]:
        """Score every window position and span against every type.

        hidden: (W, P, H) encoder states; types: (K, H') type [CLS] vectors;
        first_wp / last_wp: (W, T) sub-word of each token's start / end (any
        value where the token has none: those positions are masked later).
        Returns start (W,T,K), end (W,T,K), span (W,T,max_span_width,K) and the
        start, end and span thresholds (W,K).
        """
        n_windows, n_wordpieces, width = hidden.shape
        n_tokens = first_wp.shape[1]
        scale = self.log_inv_temperature.exp().clamp(max=100.0)
        flat = hidden.reshape(n_windows * n_wordpieces, width)
        offsets = torch.arange(n_windows, device=hidden.device)[:, None] * n_wordpieces
        h_first = flat[first_wp.clamp(min=0) + offsets]
        h_last = flat[last_wp.clamp(min=0) + offsets]
        h_cls = hidden[:, 0]

        e_start = self._project(self.type_start, types)
        e_end = self._project(self.type_end, types)
        e_span = self._project(self.type_span, types)

        start = self._project(self.token_start, h_first) @ e_start.T * scale[START]
        end = self._project(self.token_end, h_last) @ e_end.T * scale[END]

        widths = self.span_width(self.width_embedding.weight)  # (max_span_width, D)
        span_ends = torch.arange(n_tokens, device=hidden.device)[:, None] + torch.arange(
            self.max_span_width, device=hidden.device
        )
        span_ends = span_ends.clamp(max=n_tokens - 1)
        from_start = self.span_start(h_first)  # (W, T, D)
        from_end = self.span_end(h_last)  # (W, T, D)
        spans = from_start[:, :, None] + from_end[:, span_ends] + widths
        spans = normalize(self.dropout(spans), dim=-1)
        span = spans @ e_span.T * scale[SPAN]
        if self.thresholds == "global":
            thresholds = self._global_thresholds((e_start, e_end, e_span), n_windows)
        else:
            thresholds = self._dynamic_thresholds(h_cls, (e_start, e_end, e_span), widths[0], scale)
        return (start, end, span, *thresholds)

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
