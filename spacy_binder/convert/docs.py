"""From sentences or texts with mentions to spaCy Docs with gold spans."""
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from spacy.tokens import Doc, Span
from spacy.util import filter_spans
from spacy.vocab import Vocab

from .report import ConversionReport

Mention = Tuple[int, int, str]  # start token, end token (exclusive), label


@dataclass
class Sentence:
    words: List[str]
    mentions: List[Mention]
    doc_id: Optional[str] = None


@dataclass
class Labels:
    """Label renaming (`old=new`) and filtering (keep only these, after renaming)."""

    mapping: Dict[str, str] = field(default_factory=dict)
    keep: Optional[Set[str]] = None

    @classmethod
    def parse(cls, mapping: Sequence[str] = (), keep: Sequence[str] = ()) -> "Labels":
        pairs = {}
        for item in mapping:
            old, sep, new = item.partition("=")
            if not sep or not old or not new:
                raise ValueError(f"Label mapping '{item}' is not of the form OLD=NEW.")
            pairs[old] = new
        return cls(pairs, set(keep) or None)

    def __call__(self, label: str, report: ConversionReport) -> Optional[str]:
        label = self.mapping.get(label, label)
        if self.keep is not None and label not in self.keep:
            report.filtered[label] += 1
            return None
        return label


def set_gold(doc: Doc, spans: List[Span], spans_key: str, report: ConversionReport) -> Doc:
    """All mentions in doc.spans[spans_key]; doc.ents too where none overlap."""
    spans = sorted(spans, key=lambda s: (s.start, s.end, s.label_))
    doc.spans[spans_key] = spans
    if len(filter_spans(spans)) == len(spans):
        doc.ents = spans
    report.documents_written += 1
    report.mentions_written.update(span.label_ for span in spans)
    return doc


def sentences_to_docs(
    sentences: Iterable[Sentence],
    vocab: Vocab,
    report: ConversionReport,
    *,
    n_sents: int = 1,
    by_document: bool = False,
    spans_key: str = "sc",
    labels: Labels = Labels(),
) -> Iterator[Doc]:
    """Group sentences `n_sents` at a time, or by document id, into Docs."""
    group: List[Sentence] = []
    for sentence in sentences:
        if group and (
            (by_document and sentence.doc_id != group[-1].doc_id)
            or (not by_document and len(group) == n_sents)
        ):
            yield _group_to_doc(group, vocab, report, spans_key, labels)
            group = []
        group.append(sentence)
    if group:
        yield _group_to_doc(group, vocab, report, spans_key, labels)


def _group_to_doc(
    group: List[Sentence], vocab: Vocab, report: ConversionReport, spans_key: str, labels: Labels
) -> Doc:
    words = [word for sentence in group for word in sentence.words]
    sent_starts = [i == 0 for sentence in group for i in range(len(sentence.words))]
    doc = Doc(vocab, words=words, sent_starts=sent_starts)
    spans, offset = [], 0
    for sentence in group:
        for start, end, label in sentence.mentions:
            label = labels(label, report)
            if label is not None:
                spans.append(Span(doc, offset + start, offset + end, label=label))
        offset += len(sentence.words)
    return set_gold(doc, spans, spans_key, report)


def text_to_doc(
    make_doc,
    text: str,
    mentions: Iterable[Tuple[int, int, str, str]],
    report: ConversionReport,
    *,
    spans_key: str = "sc",
    labels: Labels = Labels(),
) -> Doc:
    """Tokenize `text` and place (start_char, end_char, label, where) mentions on it.

    A mention whose offsets fall inside a token, or outside the text, is listed
    in the report with its place and reason, not written.
    """
    doc = make_doc(text)
    spans = []
    for start, end, label, where in mentions:
        label = labels(label, report)
        if label is None:
            continue
        if not 0 <= start < end <= len(text):
            report.unplaced.append(f"{where}: offsets {start}-{end} lie outside the text ({len(text)} characters)")
            continue
        span = doc.char_span(start, end, label=label, alignment_mode="strict")
        if span is None:
            report.unplaced.append(
                f"{where}: offsets {start}-{end} ({text[start:end]!r}) do not fall on token boundaries"
            )
            continue
        spans.append(span)
    return set_gold(doc, spans, spans_key, report)
