"""Nearest-support decoding: a few annotated Docs as examples of each type.

A support set is a handful of Docs with their gold spans. Its candidate spans
go through the same text encoder and span head as the text being annotated; a
candidate span of that text then scores for type k by how much closer it lies
to its nearest support mention of k than to its nearest other support span
(`BinderHeads` computes this margin, `decode` weighs it against the description
score). It needs no training, so five examples give predictions at once, and it
reads the span space that fine-tuning and the few-shot objectives shape.

The support is stored as Docs (their words and spans) and its vectors are
computed from the current weights when first needed, so a fine-tuned or
reloaded pipeline never compares with vectors of older weights.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, TypeVar, Union

import numpy
import srsly
import torch
from spacy.tokens import Doc, DocBin, Span
from spacy.training.corpus import walk_corpus
from spacy.util import ensure_path
from spacy.vocab import Vocab

from .batch import Windows

# Where a stored support Doc keeps its gold spans.
SUPPORT_KEY = "support"
# The support set's file in a saved pipe's folder.
SUPPORT_FILE = "support.spacy"


@dataclass(frozen=True)
class SupportSpans:
    """The model's input: the support Docs and each Doc's gold spans as
    (start, end_exclusive, type index) for the types being predicted."""

    docs: Tuple[Doc, ...]
    gold: Tuple[Tuple[Tuple[int, int, int], ...], ...]

    @property
    def key(self) -> Tuple:
        """What the support's vectors depend on besides the weights."""
        return tuple(tuple(token.orth for token in doc) for doc in self.docs), self.gold


def support_doc(doc: Doc, spans: Iterable[Span], vocab: Vocab) -> Doc:
    """A copy of a Doc's words, in this vocab, holding these spans under SUPPORT_KEY."""
    copy = Doc(vocab, words=[token.text for token in doc], spaces=[bool(token.whitespace_) for token in doc])
    copy.spans[SUPPORT_KEY] = [Span(copy, span.start, span.end, label=span.label_) for span in spans]
    return copy


def label_support(docs: Sequence[Doc], labels: Sequence[str]) -> Optional[SupportSpans]:
    """The support's spans of these labels, by type index; None without mentions of any."""
    index = {label: k for k, label in enumerate(labels)}
    gold = tuple(
        tuple((span.start, span.end, index[span.label_]) for span in doc.spans[SUPPORT_KEY] if span.label_ in index)
        for doc in docs
    )
    if not any(gold):
        return None
    return SupportSpans(tuple(docs), gold)


def support_to_bytes(docs: Sequence[Doc]) -> bytes:
    return DocBin(docs=docs, store_user_data=False).to_bytes()


def support_from_bytes(data: bytes, vocab: Vocab) -> List[Doc]:
    return list(DocBin().from_bytes(data).get_docs(vocab))


def read_support(path: Union[str, Path], vocab: Vocab) -> List[Doc]:
    """The Docs of a .spacy file, or of every .spacy file under a folder."""
    files = walk_corpus(path, ".spacy")
    if not files:
        raise ValueError(f"No .spacy support files at {path}: give a .spacy file or a folder holding some.")
    return [doc for file in files for doc in DocBin().from_disk(file).get_docs(vocab)]


Pipe = TypeVar("Pipe", bound="StoresSupport")


class StoresSupport:
    """A trainable pipe's support set (`self.support`, Docs holding their gold
    spans under SUPPORT_KEY), saved with the pipe: SUPPORT_FILE in its folder,
    beside its weights in its bytes. Mixed in before spaCy's `TrainablePipe`."""

    support: List[Doc]

    def clear_support(self) -> None:
        """Forget the support set."""
        self.support = []

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        pipe = super().to_bytes(exclude=exclude)
        support = support_to_bytes(self.support) if "support" not in exclude else None
        return srsly.msgpack_dumps({"pipe": pipe, "support": support})

    def from_bytes(self: Pipe, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> Pipe:
        data = srsly.msgpack_loads(bytes_data)
        super().from_bytes(data["pipe"], exclude=exclude)
        if "support" not in exclude:
            self.support = [] if data["support"] is None else support_from_bytes(data["support"], self.vocab)
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        super().to_disk(path, exclude=exclude)
        if "support" in exclude:
            return
        support = ensure_path(path) / SUPPORT_FILE
        if self.support:
            support.write_bytes(support_to_bytes(self.support))
        else:
            support.unlink(missing_ok=True)  # an older save's support must not come back

    def from_disk(self: Pipe, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> Pipe:
        super().from_disk(path, exclude=exclude)
        support = ensure_path(path) / SUPPORT_FILE
        if "support" not in exclude:
            self.support = support_from_bytes(support.read_bytes(), self.vocab) if support.exists() else []
        return self


@dataclass
class SupportVectors:
    """A support set in the span space, and its mentions that have no vector."""

    mentions: torch.Tensor  # (M, D) unit vectors
    mention_types: torch.Tensor  # (M,) type index
    outside: torch.Tensor  # (N, D) unit vectors of the other candidate spans
    n_missing: int  # gold mentions no window holds as a candidate span (too wide, unaligned)

    @property
    def tensors(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.mentions, self.mention_types, self.outside


def select_spans(
    span_vectors: torch.Tensor, windows: Windows, gold: Sequence[Sequence[Tuple[int, int, int]]]
) -> SupportVectors:
    """Split the candidate spans' vectors (W, T, max_span_width, D) into gold
    mentions and the rest, each span once (from the first window holding it)."""
    max_width = span_vectors.shape[2]
    w, i, width = numpy.nonzero(windows.span_mask(max_width))
    doc = windows.doc_index[w]
    start = windows.start[w] + i
    end = start + width + 1
    _, first = numpy.unique(numpy.stack([doc, start, end], axis=1), axis=0, return_index=True)
    first.sort()
    found: Dict[Tuple[int, int, int], int] = {
        (int(doc[j]), int(start[j]), int(end[j])): j for j in first
    }
    mention_rows, mention_types = [], []
    is_mention = numpy.zeros(len(w), dtype=bool)
    n_missing = 0
    for d, spans in enumerate(gold):
        for s, e, k in spans:
            j = found.get((d, s, e))
            if j is None:
                n_missing += 1
                continue
            mention_rows.append(j)
            mention_types.append(k)
            is_mention[j] = True
    outside_rows = [j for j in first if not is_mention[j]]
    flat = span_vectors[torch.from_numpy(w), torch.from_numpy(i), torch.from_numpy(width)]
    return SupportVectors(
        flat[mention_rows],
        torch.tensor(mention_types, dtype=torch.long),
        flat[outside_rows],
        n_missing,
    )
