"""`spacy_binder.scorer.v1`: spaCy's exact-match span scores for binder_ner.

Always reports `spans_{spans_key}_p/r/f` (and `_per_type`) over
`doc.spans[spans_key]`; in flat mode also spaCy's `ents_p/r/f`, so the scores
of `spacy train` and `spacy evaluate` match those of spaCy's own components.
A gold Doc annotated for some labels only (its span group's
"annotated_labels", `python -m spacy_binder merge`) is scored on those labels.
"""
from typing import Any, Callable, Dict, Iterable, List

from spacy.scorer import Scorer, get_ner_prf
from spacy.training import Example
from spacy.util import registry

from .batch import scope_of


def in_scope(examples: Iterable[Example], spans_key: str) -> List[Example]:
    """The examples, with predictions of labels their gold Doc does not annotate left out."""
    scoped = []
    for eg in examples:
        scope = scope_of(eg.reference, spans_key)
        if scope is None:
            scoped.append(eg)
            continue
        predicted = eg.predicted.copy()
        if spans_key in predicted.spans:
            predicted.spans[spans_key] = [span for span in predicted.spans[spans_key] if span.label_ in scope]
        predicted.ents = [span for span in predicted.ents if span.label_ in scope]
        scoped.append(Example(predicted, eg.reference))
    return scoped


def binder_score(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    key = kwargs["spans_key"]
    examples = in_scope(examples, key)
    scores = Scorer.score_spans(
        examples,
        f"spans_{key}",
        getter=lambda doc, attr: doc.spans.get(key, []),
        has_annotation=lambda doc: key in doc.spans,
        allow_overlap=True,
    )
    if kwargs.get("mode") == "flat":
        scores.update(get_ner_prf(examples))
    return scores


@registry.scorers("spacy_binder.scorer.v1")
def make_binder_scorer() -> Callable:
    return binder_score
