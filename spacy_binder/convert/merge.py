"""One training corpus from several, each Doc keeping the labels its corpus annotates.

NCBI-disease marks diseases and is silent on the person names in its text;
CoNLL-2003 marks names and never diseases. Trained on both as one corpus, a
model would learn that NCBI's names and CoNLL's diseases are not entities.
`merge_corpora` writes every Doc's gold spans to doc.spans[spans_key] and lists
there, in attrs["annotated_labels"], the labels its corpus annotates: binder_ner's
loss and scorer leave every other label out on that Doc. `add_silver` adds a
spaCy pipeline's entities of chosen labels (silver labels) and widens the scope;
`add_phrases` stores a parser's noun phrases for the type sampler's phrase types.
"""
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Sequence, Set, Tuple

from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.vocab import Vocab

from ..batch import PHRASES_KEY, SCOPE_ATTR, gold_of, scope_of
from ..labels import read_type_descriptions


@dataclass
class MergeReport:
    """Per input: Docs, mentions kept by label, the labels annotated, mentions excluded."""

    inputs: List[Tuple[str, int, Counter, List[str]]] = field(default_factory=list)
    excluded: Counter = field(default_factory=Counter)
    silver: Counter = field(default_factory=Counter)
    conflicts: List[str] = field(default_factory=list)

    def lines(self) -> List[str]:
        out = []
        for name, n_docs, mentions, scope in self.inputs:
            out.append(f"{name}: {n_docs} docs, annotated for {', '.join(scope) or 'no label'}")
            out.extend(f"  {label}: {count} mentions" for label, count in sorted(mentions.items()))
        out.extend(f"excluded {label}: {count} mentions left out" for label, count in sorted(self.excluded.items()))
        out.extend(f"silver {label}: {count} mentions added" for label, count in sorted(self.silver.items()))
        out.extend(self.conflicts)
        return out


def merge_corpora(
    paths: Sequence[Path], vocab: Vocab, *, spans_key: str = "sc", exclude: Iterable[str] = (), limit: int = 0
) -> Tuple[List[Doc], MergeReport]:
    """The Docs of these .spacy files (the first `limit` of each; 0: all),
    each with its gold spans in doc.spans[spans_key] and the labels of its file
    (or its own scope, if it has one) as its scope, less the `exclude` labels
    and their mentions."""
    exclude = set(exclude)
    report = MergeReport()
    merged: List[Doc] = []
    for path in paths:
        docs = list(islice(DocBin().from_disk(path).get_docs(vocab), limit or None))
        golds = []
        for doc in docs:
            spans = gold_of(doc, spans_key, flat=True)
            if spans is None:
                raise ValueError(
                    f"{path}: Doc '{doc.text[:60]}' has no doc.spans['{spans_key}'] and no doc.ents. "
                    "Give --spans-key the key the corpus uses."
                )
            golds.append(spans)
        file_labels = {span.label_ for spans in golds for span in spans}
        mentions: Counter = Counter()
        for doc, spans in zip(docs, golds):
            scope = (scope_of(doc, spans_key) or file_labels) - exclude
            kept = [span for span in spans if span.label_ not in exclude]
            report.excluded.update(span.label_ for span in spans if span.label_ in exclude)
            mentions.update(span.label_ for span in kept)
            doc.spans[spans_key] = kept
            doc.spans[spans_key].attrs[SCOPE_ATTR] = sorted(scope)
            merged.append(doc)
        report.inputs.append((str(path), len(docs), mentions, sorted(file_labels - exclude)))
    return merged, report


def _tagged(docs: Sequence[Doc], nlp: Language, batch_size: int) -> Iterator[Tuple[Doc, Doc]]:
    """Each Doc with the pipeline's analysis of its own tokens."""
    words = (
        Doc(nlp.vocab, words=[token.text for token in doc], spaces=[bool(token.whitespace_) for token in doc])
        for doc in docs
    )
    return zip(docs, nlp.pipe(words, batch_size=batch_size))


def add_silver(
    docs: Sequence[Doc], nlp: Language, labels: Iterable[str], *, spans_key: str = "sc", batch_size: int = 256
) -> Counter:
    """Add the entities of `labels` that `nlp` finds in each Doc (on its own
    tokens) to doc.spans[spans_key] and to its scope. Returns the counts added."""
    labels = set(labels)
    known = set().union(*nlp.pipe_labels.values())
    unknown = labels - known
    if unknown:
        raise ValueError(f"Silver labels {sorted(unknown)} are not labels of the pipeline (its labels: {sorted(known)}).")
    added: Counter = Counter()
    for doc, tagged in _tagged(docs, nlp, batch_size):
        gold = gold_of(doc, spans_key, flat=True) or []
        scope = scope_of(doc, spans_key)
        silver = [Span(doc, ent.start, ent.end, label=ent.label_) for ent in tagged.ents if ent.label_ in labels]
        added.update(span.label_ for span in silver)
        doc.spans[spans_key] = list(gold) + silver
        if scope is not None:
            doc.spans[spans_key].attrs[SCOPE_ATTR] = sorted(scope | labels)
    return added


def add_phrases(docs: Sequence[Doc], nlp: Language, *, batch_size: int = 256) -> int:
    """Put the noun phrases a parsing pipeline finds in each Doc (its noun
    chunks, leading determiners and pronouns dropped, pronoun chunks left out)
    in doc.spans[PHRASES_KEY], for the type sampler's phrase types. Returns
    how many."""
    if "parser" not in nlp.pipe_names:
        raise ValueError(f"Noun phrases need a pipeline with a parser; its components are {nlp.pipe_names}.")
    n_phrases = 0
    for doc, tagged in _tagged(docs, nlp, batch_size):
        phrases = []
        for chunk in tagged.noun_chunks:
            start = chunk.start
            while start < chunk.end and tagged[start].pos_ in ("DET", "PRON"):
                start += 1
            if start < chunk.end:
                phrases.append(Span(doc, start, chunk.end))
        doc.spans[PHRASES_KEY] = phrases
        n_phrases += len(phrases)
    return n_phrases


def merge_descriptions(paths: Sequence[Path], labels: Set[str], report: MergeReport) -> Dict[str, str]:
    """The descriptions of `labels` from these JSONL files (the first file
    naming a label wins; other texts are reported). Every label needs one."""
    merged: Dict[str, str] = {}
    for path in paths:
        for label, text in read_type_descriptions(path).items():
            if label not in labels:
                continue
            if label in merged and merged[label] != text:
                report.conflicts.append(f"{label}: kept the first description, not the one of {path}")
                continue
            merged.setdefault(label, text)
    missing = sorted(labels - set(merged))
    if missing:
        raise ValueError(f"No description for label(s) {missing} in {[str(p) for p in paths]}: add them to a --descriptions file.")
    return merged


def corpus_labels(docs: Iterable[Doc], spans_key: str) -> Set[str]:
    """Every label a merged corpus annotates or mentions."""
    labels: Set[str] = set()
    for doc in docs:
        labels.update(scope_of(doc, spans_key) or ())
        labels.update(span.label_ for span in doc.spans.get(spans_key, []))
    return labels
