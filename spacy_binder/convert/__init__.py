"""Corpus converters: from NER files to DocBins with gold spans in doc.spans[key]."""
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import spacy
from spacy.tokens import Doc

from .brat import read_brat
from .distant import build_matcher, label_docs, read_dictionary, read_raw_tokens
from .docs import Labels, Sentence, sentences_to_docs, text_to_doc
from .iob import SCHEMES, read_iob, tags_to_mentions
from .jsonl import read_text_jsonl, read_token_jsonl
from .report import ConversionError, ConversionReport

FORMATS = ("iob", "jsonl", "jsonl-chars", "brat")

__all__ = [
    "FORMATS",
    "SCHEMES",
    "ConversionError",
    "ConversionReport",
    "Labels",
    "Sentence",
    "convert_corpus",
    "distant_corpus",
    "read_dictionary",
    "tags_to_mentions",
]


def convert_corpus(
    format: str,
    path: Path,
    *,
    lang: str = "en",
    spans_key: str = "sc",
    n_sents: int = 1,
    by_document: bool = False,
    scheme: str = "iob2",
    tag_column: int = -1,
    separator: Optional[str] = None,
    label_map: Sequence[str] = (),
    labels: Sequence[str] = (),
    skip_bad: bool = False,
    repair: bool = False,
) -> Tuple[List[Doc], ConversionReport]:
    """Read one corpus file (a folder for BRAT) into Docs, with a report.

    repair (iob): read broken tag sequences the conlleval way, each repair reported.
    """
    if format not in FORMATS:
        raise ValueError(f"Unknown format '{format}': use one of {FORMATS}.")
    if n_sents < 1:
        raise ValueError(f"n_sents must be at least 1, got {n_sents}.")
    nlp = spacy.blank(lang)
    report = ConversionReport()
    relabel = Labels.parse(label_map, labels)
    if format in ("iob", "jsonl"):
        if format == "iob":
            sentences = read_iob(path, report, scheme=scheme, tag_column=tag_column, separator=separator, skip_bad=skip_bad, repair=repair)
        else:
            sentences = read_token_jsonl(path, report, skip_bad=skip_bad)
        docs = list(
            sentences_to_docs(
                sentences, nlp.vocab, report, n_sents=n_sents, by_document=by_document, spans_key=spans_key, labels=relabel
            )
        )
        return docs, report
    records = read_brat(path, report, skip_bad=skip_bad) if format == "brat" else read_text_jsonl(path, report, skip_bad=skip_bad)
    docs = [text_to_doc(nlp.make_doc, text, mentions, report, spans_key=spans_key, labels=relabel) for text, mentions, _ in records]
    return docs, report


def distant_corpus(
    dictionary: Path,
    raw: Path,
    *,
    lang: str = "en",
    spans_key: str = "sc",
    n_sents: int = 1,
    ignore_case: bool = False,
) -> Tuple[List[Doc], ConversionReport]:
    """Label raw token-per-line text with a TYPE<TAB>form dictionary."""
    nlp = spacy.blank(lang)
    report = ConversionReport()
    matcher = build_matcher(nlp.vocab, read_dictionary(dictionary), ignore_case)
    docs = sentences_to_docs(read_raw_tokens(raw, report), nlp.vocab, report, n_sents=n_sents, spans_key=spans_key)
    return list(label_docs(docs, matcher, spans_key, report)), report
