"""Moving a trained binder_ner to entity types it was not trained on.

- `TypeSampler` (`spacy_binder.TypeSampler.v1`) varies the types a training
  step contrasts, so that span and type vectors learn to match for any
  description instead of the few the source corpus has: a random subset of the
  labels, a label's name in place of its description now and then, mention
  types (the text of a gold mention of the batch as a type, whose positives are
  every occurrence of those words in the batch: thousands of types instead of four, so
  the threshold cannot just sit near what the few source descriptions share),
  negative types (descriptions of things the corpus never annotates), and
  phrase types: noun phrases of the text (doc.spans["phrases"], e.g. a parser's
  noun chunks written by `merge --phrases`), annotated or not, as types whose
  positives are their occurrences, so that spans of any kind, common nouns
  included, learn to lie near the text that names them.
- `retarget` gives a pipeline's binder_ner new types (and a mode); the
  `spacy_binder.set_labels.v1` `[initialize.before_init]` callback does it from
  a descriptions file before `spacy train` fine-tunes a sourced binder_ner on a
  few-shot support set (optionally keeping the source types).
- `spacy_binder.set_loss.v1`, an `[initialize.after_init]` callback, gives it
  the loss of the fine-tuning run (a sourced component keeps its own settings).
"""
import random
from dataclasses import dataclass, field
from typing import Callable, List, Mapping, Optional, Sequence, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import registry

from .batch import Scope, StepTypes, label_gold, scope_mask
from .label_aware.loss import LabelAwareLoss
from .decode import check_support_weight
from .labels import Threshold, check_threshold, read_type_descriptions
from .loss import BinderLoss
from .support import read_support

# What a type's gold mentions are: ("label", label), ("text", lower-cased mention
# text: every occurrence of its words), or None: a negative type, with none.
GoldKey = Optional[Tuple[str, str]]


@dataclass
class TypeSampler:
    """The types of one training step: (gold key, text given to the type encoder).

    keep_prob: chance that each label takes part (at least one always does).
    name_prob: chance that a label is described by its name instead.
    n_mention_types: distinct gold mention texts of the batch used as types.
    A mention type's positives are all occurrences of its words in the batch.
    negatives: descriptions of types absent from the corpus; `n_negatives`
        of them join each step with no gold mention.
    n_phrase_types: distinct noun phrases of the batch (PHRASES_KEY spans of
        the gold Docs) used as types like mention types.
    """

    keep_prob: float = 1.0
    name_prob: float = 0.0
    n_mention_types: int = 0
    negatives: List[str] = field(default_factory=list)
    n_negatives: int = 0
    seed: int = 0
    n_phrase_types: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.keep_prob <= 1.0:
            raise ValueError(f"TypeSampler keep_prob must lie in (0, 1], got {self.keep_prob}.")
        if not 0.0 <= self.name_prob <= 1.0:
            raise ValueError(f"TypeSampler name_prob must lie in [0, 1], got {self.name_prob}.")
        for name in ("n_mention_types", "n_phrase_types"):
            if getattr(self, name) < 0:
                raise ValueError(f"TypeSampler {name} must be >= 0, got {getattr(self, name)}.")
        if self.n_negatives < 0 or self.n_negatives > len(self.negatives):
            raise ValueError(
                f"TypeSampler n_negatives={self.n_negatives}, but {len(self.negatives)} "
                "negative descriptions were given: give a 'negatives' file with at least that many."
            )
        self._rng = random.Random(self.seed)

    def __call__(
        self,
        labels: Sequence[str],
        descriptions: Sequence[str],
        mentions: Sequence[str] = (),
        phrases: Sequence[str] = (),
    ) -> List[Tuple[GoldKey, str]]:
        """mentions, phrases: the batch's gold mentions and noun phrases, as
        lower-cased words joined by spaces."""
        rng = self._rng
        kept = [i for i in range(len(labels)) if rng.random() < self.keep_prob]
        if not kept:
            kept = [rng.randrange(len(labels))]
        types: List[Tuple[GoldKey, str]] = [
            (("label", labels[i]), labels[i] if rng.random() < self.name_prob else descriptions[i])
            for i in kept
        ]
        texts = sorted({text for text in mentions if text.strip()})
        chosen = rng.sample(texts, min(self.n_mention_types, len(texts)))
        others = sorted({text for text in phrases if text.strip()} - set(chosen))
        chosen += rng.sample(others, min(self.n_phrase_types, len(others)))
        types += [(("text", text), text) for text in chosen]
        types += [(None, text) for text in rng.sample(self.negatives, self.n_negatives)]
        return types

    def step(
        self,
        labels: Sequence[str],
        descriptions: Sequence[str],
        docs: Sequence[Doc],
        gold_spans: Sequence[Sequence[Span]],
        scopes: Sequence[Scope] = (),
        phrase_spans: Sequence[Sequence[Span]] = (),
    ) -> StepTypes:
        """The types of one update over `docs`, whose gold spans (on their own
        tokens) are `gold_spans`, with every type's gold spans. scopes: the
        labels each Doc is annotated for (None: all); a label type is left out
        of the loss on the others, mention and negative types count on all.
        phrase_spans: each Doc's noun phrases (phrase types)."""
        as_text = lambda groups: [
            " ".join(token.lower_ for token in span)
            for spans in groups
            for span in spans
            if not any(token.is_space for token in span)
        ]
        types = self(labels, descriptions, as_text(gold_spans), as_text(phrase_spans))
        keys = [key for key, _ in types]
        label_index = {key[1]: k for k, key in enumerate(keys) if key is not None and key[0] == "label"}
        phrases = [(key[1].split(" "), k) for k, key in enumerate(keys) if key is not None and key[0] == "text"]
        gold = label_gold(gold_spans, label_index)
        for doc, doc_gold in zip(docs, gold):
            words = [token.lower_ for token in doc] if phrases else []
            for phrase, k in phrases:
                n = len(phrase)
                doc_gold.extend(
                    (start, start + n, k) for start in range(len(words) - n + 1) if words[start : start + n] == phrase
                )
        type_labels = [key[1] if key is not None and key[0] == "label" else None for key in keys]
        return StepTypes(
            texts=[text for _, text in types],
            prompted=[key is None or key[0] != "text" for key in keys],
            gold=gold,
            known=scope_mask(scopes, type_labels) if scopes else None,
        )


@registry.misc("spacy_binder.TypeSampler.v1")
def configure_type_sampler(
    keep_prob: float = 1.0,
    name_prob: float = 0.0,
    n_mention_types: int = 0,
    negatives: Optional[str] = None,
    n_negatives: int = 0,
    seed: int = 0,
    n_phrase_types: int = 0,
) -> TypeSampler:
    """`negatives`: a JSONL file of `{"label", "description"}` types the corpus never annotates."""
    texts = list(read_type_descriptions(negatives).values()) if negatives else []
    return TypeSampler(keep_prob, name_prob, n_mention_types, texts, n_negatives, seed, n_phrase_types)


def retarget(
    nlp: Language,
    types: Mapping[str, Optional[str]],
    mode: Optional[str] = None,
    *,
    keep_existing: bool = False,
    keep_type_sampler: bool = False,
    component: str = "binder_ner",
) -> None:
    """Give the pipeline's binder_ner the types {label: description, or None
    to encode the name} and, if given, a mode ("nested" or "flat").

    keep_existing: keep its own types too (before the new ones).
    keep_type_sampler: train on with its type sampler; otherwise each update
    contrasts exactly these types (saved with the pipeline).
    """
    ner = nlp.get_pipe(component)
    merged = dict(zip(ner.labels, ner.descriptions)) if keep_existing else {}
    merged.update(types)
    ner.set_labels(merged)
    if mode is not None:
        ner.set_mode(mode)
    ner.cfg["sample_types"] = keep_type_sampler


@registry.callbacks("spacy_binder.set_labels.v1")
def make_set_labels(
    descriptions: str,
    keep_existing: bool = False,
    mode: Optional[str] = None,
    keep_type_sampler: bool = False,
    component: str = "binder_ner",
    support: Optional[str] = None,
    threshold: Optional[float] = None,
    support_weight: Optional[float] = None,
) -> Callable[[Language], Language]:
    """Give a (sourced) binder_ner the types of `descriptions` before training.

    keep_existing: keep the pipeline's own types too (train them on replayed
    source examples to keep what it knew). mode: "nested" or "flat" to change
    the decoding, e.g. for a nested target of a flat source.
    keep_type_sampler: fine-tune with the source's type sampler; by default
    each step contrasts exactly the target's types (saved with the pipeline, so
    further training of it does the same). support: a .spacy file (or folder)
    of annotated Docs that becomes the pipeline's support set, replacing any it
    had (nearest-support decoding; typically the Docs it is fine-tuned on).
    threshold and support_weight: the trained pipeline's prediction defaults,
    the threshold for the types of `descriptions` only (null: the source's);
    saved in its config, since a sourced component keeps the source's otherwise.
    """
    if threshold is not None:
        check_threshold(threshold)
    if support_weight is not None:
        check_support_weight(support_weight)

    def set_labels(nlp: Language) -> Language:
        retarget(
            nlp,
            read_type_descriptions(descriptions),
            mode,
            keep_existing=keep_existing,
            keep_type_sampler=keep_type_sampler,
            component=component,
        )
        ner = nlp.get_pipe(component)
        if support is not None:
            ner.clear_support()
            ner.add_support(read_support(support, nlp.vocab))
        defaults: dict = {}
        if threshold is not None:
            kept = {label: _threshold_of(ner.threshold, label) for label in ner.labels}
            defaults["threshold"] = {**kept, **{label: threshold for label in read_type_descriptions(descriptions)}}
        if support_weight is not None:
            defaults["support_weight"] = support_weight
        for key, value in defaults.items():
            setattr(ner, key, value)
        ner._controls(None, None, None)  # the component's own rules, now rather than at the first evaluation
        nlp.get_pipe_config(component).update(defaults)
        return nlp

    return set_labels


def _threshold_of(threshold: Threshold, label: str) -> float:
    """A label's threshold under a setting of one value or {label: value} (0.5 for the rest)."""
    return threshold.get(label, 0.5) if isinstance(threshold, Mapping) else threshold


@registry.callbacks("spacy_binder.set_loss.v1")
def make_set_loss(
    loss: Union[BinderLoss, LabelAwareLoss], component: str = "binder_ner"
) -> Callable[[Language], Language]:
    """Train a (sourced) binder_ner with `loss` (`spacy_binder.BinderLoss.v1`;
    a label_aware_ner's `spacy_binder.LabelAwareLoss.v1`).

    spaCy takes a sourced component's settings from its source, so this is how
    a fine-tuning run changes them, e.g. a larger mention weight: on a few
    support sentences the threshold term otherwise wins and recall collapses.
    The saved pipeline keeps the source's loss setting for later training.
    """

    def set_loss(nlp: Language) -> Language:
        nlp.get_pipe(component).loss = loss
        return nlp

    return set_loss
