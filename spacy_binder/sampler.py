"""K-shot support sets: the greedy sampler of Yang & Katiyar (2020).

Types are visited rarest first (fewest mentions in the pool, ties by name).
For each type, while the support set holds fewer than K of its mentions, a
not yet drawn sentence (Doc) that contains it is drawn at random; every drawn
sentence adds its mentions to the counts of all the types it contains, so
frequent types overshoot K. There is no upper bound. A type with fewer than K
mentions in the whole pool keeps all it has and is reported as short. Nested
spans count like any others: a mention is a span of `doc.spans[spans_key]`.
"""
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

from spacy.tokens import Doc


@dataclass
class SupportReport:
    """What a support set holds, per type, and which types could not reach K."""

    k: int
    seed: int
    pool_size: int
    sentences: Counter = field(default_factory=Counter)  # support sentences holding the type
    mentions: Counter = field(default_factory=Counter)  # its mentions in the support set
    pool_mentions: Counter = field(default_factory=Counter)
    short: Dict[str, int] = field(default_factory=dict)  # type -> mentions reached (< k)

    def lines(self, n_sentences: int) -> List[str]:
        out = [f"{n_sentences} of {self.pool_size} sentences drawn ({self.k}-shot, seed {self.seed})"]
        for label in sorted(self.pool_mentions, key=lambda label: (self.pool_mentions[label], label)):
            out.append(
                f"  {label}: {self.mentions[label]} mentions in {self.sentences[label]} sentences"
                f" (pool: {self.pool_mentions[label]} mentions)"
            )
        for label, reached in sorted(self.short.items()):
            out.append(
                f"  SHORT: {label} has only {reached} mentions in the whole pool, fewer than K={self.k}"
            )
        return out


def span_labels(doc: Doc, spans_key: str) -> Counter:
    """Mentions per type of one Doc; the key must exist (an empty group is fine)."""
    if spans_key not in doc.spans:
        raise ValueError(
            f"Document '{doc.text[:60]}' has no doc.spans['{spans_key}'] (its span keys: "
            f"{list(doc.spans.keys())}): the sampler counts the mentions of that span group. "
            "Pass the key your corpus uses (--spans-key for `fewshot-sample`, spans_key for "
            "sample_support), or convert the corpus with its gold spans under that key."
        )
    return Counter(span.label_ for span in doc.spans[spans_key])


def sample_support(
    docs: Sequence[Doc], k: int, seed: int, spans_key: str = "sc"
) -> Tuple[List[Doc], SupportReport]:
    """Draw a K-shot support set from `docs`; returns it in pool order, with its report."""
    if k < 1:
        raise ValueError(f"K must be at least 1, got {k}.")
    counts = [span_labels(doc, spans_key) for doc in docs]
    report = SupportReport(k=k, seed=seed, pool_size=len(docs))
    for doc_counts in counts:
        report.pool_mentions.update(doc_counts)
    if not report.pool_mentions:
        raise ValueError(
            f"No mentions in doc.spans['{spans_key}'] of the {len(docs)} documents to sample "
            "from: nothing to draw a support set for."
        )
    rng = random.Random(seed)
    drawn: List[int] = []
    taken = set()
    for label in sorted(report.pool_mentions, key=lambda label: (report.pool_mentions[label], label)):
        candidates = [i for i, doc_counts in enumerate(counts) if doc_counts[label] and i not in taken]
        rng.shuffle(candidates)
        while report.mentions[label] < k and candidates:
            i = candidates.pop()
            taken.add(i)
            drawn.append(i)
            report.mentions.update(counts[i])
            report.sentences.update(counts[i].keys())
        if report.mentions[label] < k:
            report.short[label] = report.mentions[label]
    return [docs[i] for i in sorted(drawn)], report
