"""`spacy_binder.scorer.v1`: spaCy's exact-match span scores for binder_ner.

Always reports `spans_{spans_key}_p/r/f` (and `_per_type`) over
`doc.spans[spans_key]`; in flat mode also spaCy's `ents_p/r/f`, so the scores
of `spacy train` and `spacy evaluate` match those of spaCy's own components.
"""
from typing import Any, Callable, Dict, Iterable

from spacy.scorer import Scorer, get_ner_prf
from spacy.training import Example
from spacy.util import registry


def binder_score(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Any]:
    examples = list(examples)
    key = kwargs["spans_key"]
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
