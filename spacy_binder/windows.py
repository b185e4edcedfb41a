"""Docs to encoder windows: strided spans of spaCy tokens, tokenized to fit.

spacy-transformers' `get_strided_spans` cuts each Doc into windows of `window`
tokens, `stride` apart, and its `huggingface_tokenize` and offset alignment
turn them into sub-words. What spacy-transformers' own forward would then do
(drop the sub-words beyond the encoder's limit, merge the alignments of
overlapping windows) loses text, so this module keeps every token of every
window: a window over the limit first has its very long tokens shortened, and
is then halved until it fits. The label prompt, if any, is never cut: the text
gets the room it leaves. The result is aligned per window (`Windows`).
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy
from spacy.tokens import Doc, Span
from spacy_transformers.align import get_span2wp_from_offset_mapping
from spacy_transformers.span_getters import get_strided_spans

from .batch import Windows
from .errors import warn_once
from .prompt import LabelPrompt, prompt_cost, tokenize_with_prompt

Encoding = Dict[str, Any]
# A shortened token, (id of its Doc, index), to its number of sub-words.
Shortened = Dict[Tuple[int, int], int]


@dataclass(frozen=True)
class Windowing:
    """How a text encoder cuts and tokenizes docs (`spacy_binder.TextEncoder.v1`).

    limit: the most sub-words, special tokens included, the encoder accepts.
    encoder_name: named in errors.
    """

    tokenizer: Any
    limit: int
    window: int
    stride: int
    prompt: Optional[LabelPrompt]
    encoder_name: str

    def __call__(
        self, docs: List[Doc], descriptions: Sequence[Optional[str]]
    ) -> Tuple[List[Span], Optional[Encoding]]:
        """Every window of the docs, and their encoding (None if there is no text)."""
        windows = [
            window
            for doc_windows in get_strided_spans(docs, self.window, self.stride)
            for window in doc_windows
        ]
        if not windows:
            return [], None
        return self._tokenize_to_fit(windows, descriptions)

    def _tokenize_to_fit(
        self, windows: List[Span], descriptions: Sequence[Optional[str]]
    ) -> Tuple[List[Span], Encoding]:
        """Tokenize windows (and the prompt) so that each fits the encoder: a
        window over the limit has its very long tokens (a SMILES string, a URL)
        shortened (`shorten_long_tokens`), then is halved while still too long."""
        written = any(description is not None for description in descriptions)
        special = {"cls": self.tokenizer.cls_token or "", "sep": self.tokenizer.sep_token or ""}
        prompt = self.prompt.render(descriptions, **special) if self.prompt is not None and written else None
        cost = prompt_cost(self.tokenizer, prompt[0], self.limit, self.encoder_name) if prompt else 0
        budget = (self.limit - cost) // 4

        def encode(spans: List[Span]) -> Tuple[Encoding, Shortened]:
            one_segment = self.prompt is not None and self.prompt.one_segment
            encoding = tokenize_with_prompt(self.tokenizer, [span.text for span in spans], prompt, one_segment)
            return shorten_long_tokens(spans, encoding, self.limit, budget, self.tokenizer.pad_token_id)

        encoding, shortened = encode(windows)
        lengths = encoding["attention_mask"].sum(axis=1)
        if lengths.max() > self.limit:
            windows = [
                piece
                for window, length in zip(windows, lengths)
                for piece in ([window] if length <= self.limit else self._split_to_fit(window, encode))
            ]
            encoding, shortened = encode(windows)
        if shortened:
            warn_once(
                "long tokens",
                f"{len(shortened)} token(s) of more than {budget} sub-words (the "
                f"longest {max(shortened.values())}) were encoded by their first and last "
                f"{budget // 2} sub-words only.",
            )
        return windows, encoding

    def _split_to_fit(self, window: Span, encode: Callable) -> List[Span]:
        """Halve a window that is over the limit, and its halves while they are.

        The halves keep the configured overlap where they can, so spans stay wholly
        inside some window; in a window shorter than twice the overlap, at most a
        third of it, so that each halving shrinks it by a sixth or more (warning
        when the overlap is cut).
        """
        length = int(encode([window])[0]["attention_mask"].sum())
        if length <= self.limit:
            return [window]
        if len(window) == 1:  # cannot happen after shortening; never loop forever
            raise ValueError(
                f"The token '{window.text[:50]}' is still {length} sub-words after "
                f"shortening, more than encoder '{self.encoder_name}' accepts ({self.limit})."
            )
        overlap = self.window - self.stride
        half = len(window) // 2
        kept_overlap = min(overlap, len(window) - half - 1 if half > overlap else len(window) // 3)
        if kept_overlap < overlap:
            warn_once(
                "window overlap",
                f"Text at token {window.start} has so many sub-words per token (or the "
                f"label prompt leaves so little room) that its windows overlap by only "
                f"{kept_overlap} tokens instead of {overlap}. Set a smaller window in "
                "[components.<name>.model.text_encoder] (or shorten the label prompt) to keep "
                "the full overlap.",
            )
        return [
            piece
            for part in (window[: half + kept_overlap], window[half:])
            for piece in self._split_to_fit(part, encode)
        ]


def shorten_long_tokens(
    windows: List[Span], encoding: Encoding, limit: int, budget: int, pad_id: int
) -> Tuple[Encoding, Shortened]:
    """Encode a token of more than `budget` sub-words by its first and last
    budget // 2 only, in the windows that exceed `limit`: a span still starts
    and ends on that token, and no neighbour loses its window.

    Returns the encoding (re-padded) and the shortened tokens.
    """
    lengths = encoding["attention_mask"].sum(axis=1)
    keep = encoding["attention_mask"].astype(bool)
    shortened: Shortened = {}
    for w in numpy.flatnonzero(lengths > limit):
        window = windows[w]
        for t, wps in enumerate(get_span2wp_from_offset_mapping(window, encoding["offset_mapping"][w])):
            if len(wps) > budget:
                wps = sorted(wps)
                keep[w, wps[budget // 2 : len(wps) - budget // 2]] = False
                shortened[(id(window.doc), window.start + t)] = len(wps)
    if not shortened:
        return encoding, shortened
    width = int(keep.sum(axis=1).max())
    result = {"pad_token": encoding["pad_token"], "input_texts": []}
    keys = (("input_ids", pad_id), ("attention_mask", 0), ("offset_mapping", 0), ("token_type_ids", 0), ("prompt_label", -1))
    for key, pad in keys:
        if key in encoding:
            old = encoding[key]
            result[key] = numpy.full((len(windows), width) + old.shape[2:], pad, dtype=old.dtype)
            for w in range(len(windows)):
                result[key][w, : keep[w].sum()] = old[w][keep[w]]
    for w, texts in enumerate(encoding["input_texts"]):
        kept = [text for text, k in zip(texts, keep[w]) if k]
        result["input_texts"].append(kept + [encoding["pad_token"]] * (width - len(kept)))
    return result, shortened


def align(docs: List[Doc], windows: List[Span], offsets: numpy.ndarray) -> Windows:
    """First and last sub-word of every token of every window (-1: none)."""
    n_tokens = max(len(w) for w in windows)
    first = numpy.full((len(windows), n_tokens), -1, dtype="int64")
    last = numpy.full((len(windows), n_tokens), -1, dtype="int64")
    doc_ids = {id(doc): i for i, doc in enumerate(docs)}
    doc_index = []
    for w, window in enumerate(windows):
        doc_index.append(doc_ids[id(window.doc)])
        for t, wps in enumerate(get_span2wp_from_offset_mapping(window, offsets[w])):
            if wps:
                first[w, t] = min(wps)
                last[w, t] = max(wps)
    return Windows(
        doc_index=numpy.asarray(doc_index, dtype="int64"),
        start=numpy.asarray([w.start for w in windows], dtype="int64"),
        length=numpy.asarray([len(w) for w in windows], dtype="int64"),
        first_wp=first,
        last_wp=last,
    )
