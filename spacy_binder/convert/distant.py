"""Distant supervision: label raw tokenized text by dictionary matching.

Uses spaCy's PhraseMatcher over whole tokens; the longest match wins and
matches never overlap (ties: the earlier one).
"""
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, Iterator, List

from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc
from spacy.util import filter_spans
from spacy.vocab import Vocab

from .docs import Sentence
from .report import ConversionError, ConversionReport


def read_dictionary(path: Path) -> Dict[str, List[str]]:
    """`TYPE<TAB>surface form` lines; the form's tokens are separated by spaces."""
    entries: Dict[str, List[str]] = defaultdict(list)
    for line_no, line in enumerate(Path(path).read_text(encoding="utf8").splitlines(), 1):
        if not line.strip():
            continue
        label, sep, form = line.partition("\t")
        if not sep or not label.strip() or not form.strip():
            raise ConversionError(str(path), line_no, f"expected TYPE<TAB>surface form, got {line!r}")
        entries[label.strip()].append(form.strip())
    if not entries:
        raise ValueError(f"Dictionary {path} has no entries.")
    return dict(entries)


def read_raw_tokens(path: Path, report: ConversionReport) -> Iterator[Sentence]:
    """One token a line (the first column if there are several), blank lines between sentences."""
    words: List[str] = []
    report.documents_read += 1
    with Path(path).open(encoding="utf8") as file:
        for line in file:
            if line.strip():
                words.append(line.split()[0])
                continue
            if words:
                report.sentences_read += 1
                yield Sentence(words, [])
            words = []
    if words:
        report.sentences_read += 1
        yield Sentence(words, [])


def build_matcher(vocab: Vocab, dictionary: Dict[str, List[str]], ignore_case: bool) -> PhraseMatcher:
    matcher = PhraseMatcher(vocab, attr="LOWER" if ignore_case else "ORTH")
    for label, forms in dictionary.items():
        matcher.add(label, [Doc(vocab, words=form.split()) for form in forms])
    return matcher


def label_docs(docs: Iterable[Doc], matcher: PhraseMatcher, spans_key: str, report: ConversionReport) -> Iterator[Doc]:
    """Set each Doc's gold spans to its dictionary matches, longest first, without overlaps.

    The report counts all matches as read and the kept ones as written.
    """
    for doc in docs:
        matches = matcher(doc, as_spans=True)
        spans = filter_spans(matches)
        report.mentions_read.update(span.label_ for span in matches)
        report.mentions_written.update(span.label_ for span in spans)
        doc.spans[spans_key] = spans
        doc.ents = spans
        yield doc
