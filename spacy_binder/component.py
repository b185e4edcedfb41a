"""The `binder_ner` pipeline component."""
import math
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import minibatch
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate

from .batch import PHRASES_KEY, BinderScores, Scope, StepTypes, gold_of, gold_targets, label_gold, scope_mask, scope_of
from .decode import STRATEGIES, check_support_weight, decode, min_scores, select
from .defaults import ENCODER, SUPPORT_WEIGHT
from .encoders import window_layout
from .errors import warn
from .labels import Threshold, check_mode, check_threshold, read_type_descriptions
from .loss import BinderLoss
from .model import BinderInput
from .scorer import binder_score
from .support import SUPPORT_KEY, StoresSupport, label_support, read_support, support_doc

INIT_SAMPLE_SIZE = 10
# initialize checks the gold spans of this many training examples for spans
# the model cannot learn (too wide, or on tokens without sub-words).
SCAN_SAMPLE_SIZE = 2000
SCAN_BATCH_SIZE = 256

DEFAULT_BINDER_MODEL = f"""
[model]
@architectures = "spacy_binder.BinderModel.v1"
linear_size = 128
width_embedding_size = 128
max_span_width = 30
dropout = 0.1
init_temperature = 0.07

[model.text_encoder]
@architectures = "spacy_binder.TextEncoder.v1"
name = "{ENCODER}"
window = 128
stride = 96
max_batch_items = 4096
mixed_precision = false

[model.type_encoder]
@architectures = "spacy_binder.TypeEncoder.v1"
name = "{ENCODER}"
mixed_precision = false
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_BINDER_MODEL)["model"]


@Language.factory(
    "binder_ner",
    assigns=["doc.spans", "doc.ents"],
    default_config={
        "model": DEFAULT_MODEL,
        "spans_key": "sc",
        "mode": "nested",
        "strategy": "span",
        "loss": {"@misc": "spacy_binder.BinderLoss.v1"},
        "scorer": {"@scorers": "spacy_binder.scorer.v1"},
        "type_sampler": None,
        "threshold": 0.5,
        "labels": None,
        "support_weight": SUPPORT_WEIGHT,
    },
    default_score_weights={"spans_sc_f": 1.0, "spans_sc_p": 0.0, "spans_sc_r": 0.0},
)
def make_binder_ner(
    nlp: Language,
    name: str,
    model: Model,
    spans_key: str,
    mode: str,
    strategy: str,
    loss: BinderLoss,
    scorer: Optional[Callable],
    type_sampler: Optional[Callable] = None,
    threshold: Threshold = 0.5,
    labels: Optional[List[str]] = None,
    support_weight: float = SUPPORT_WEIGHT,
) -> "BinderNER":
    """Nested or flat NER with BINDER's bi-encoder.

    mode: "nested" keeps every span above its threshold; "flat" also removes
    overlaps greedily and sets doc.ents. strategy: "span" (span score only) or
    "joint" (start and end must also beat their thresholds). type_sampler
    (`spacy_binder.TypeSampler.v1`): vary the types of each training step so
    that types never trained on are predicted too (zero-shot).
    threshold and labels are prediction-time controls, also given per call
    through `component_cfg`: the minimum span score in (0, 1] (0.5 keeps every
    span above its dynamic threshold, lower also spans under it, for new types
    described only; per label as {label: value}), and the
    labels to predict (null: all). support_weight, also a prediction-time
    control: with a support set (`add_support`), how much its nearest-support
    margin counts against the description's (0: descriptions only, 1: the
    support alone).
    """
    return BinderNER(
        nlp.vocab,
        model,
        name,
        spans_key=spans_key,
        mode=mode,
        strategy=strategy,
        loss=loss,
        scorer=scorer,
        type_sampler=type_sampler,
        threshold=threshold,
        labels=labels,
        support_weight=support_weight,
    )


class BinderNER(StoresSupport, TrainablePipe):
    """Predict entity spans by matching span vectors with type-description vectors."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "binder_ner",
        *,
        spans_key: str = "sc",
        mode: str = "nested",
        strategy: str = "span",
        loss: Optional[BinderLoss] = None,
        scorer: Optional[Callable] = binder_score,
        type_sampler: Optional[Callable] = None,
        threshold: Threshold = 0.5,
        labels: Optional[Sequence[str]] = None,
        support_weight: float = SUPPORT_WEIGHT,
    ) -> None:
        check_mode(mode)
        check_threshold(threshold)
        check_support_weight(support_weight)
        if strategy not in STRATEGIES:
            raise ValueError(
                f"Unknown binder_ner strategy '{strategy}': use one of {STRATEGIES}."
            )
        if not spans_key:
            raise ValueError("binder_ner needs a non-empty spans_key.")
        self.vocab = vocab
        self.model = model
        self.name = name
        self.loss = loss if loss is not None else BinderLoss()
        self.scorer = scorer
        self.type_sampler = type_sampler
        # Prediction-time defaults (config, not saved with the weights: a load
        # can override them).
        self.threshold = threshold
        self.predict_labels = list(labels) if labels is not None else None
        self.support_weight = support_weight
        # Docs whose spans (under SUPPORT_KEY) are examples of their types: see add_support.
        self.support: List[Doc] = []
        self._n_updates = 0  # named in the error when a loss is not finite
        self.cfg = {
            "spans_key": spans_key,
            "mode": mode,
            "strategy": strategy,
            "labels": [],
            "descriptions": {},
            "sample_types": True,
        }

    @property
    def loss(self) -> BinderLoss:
        return self._binder_loss

    @loss.setter
    def loss(self, loss: BinderLoss) -> None:
        """Set the training loss; the model outputs the vectors its objectives compare."""
        if loss.uses_embeddings and loss.similarity != "cosine" and not self.model.attrs["gaussian_embeddings"]:
            raise ValueError(
                f"binder_ner's loss compares spans by similarity '{loss.similarity}', which "
                "needs Gaussian embeddings: set gaussian_embeddings = true in "
                "[components.<name>.model], or use similarity 'cosine'."
            )
        if loss.label_weight > 0 and self.model.get_ref("text_encoder").attrs["prompt"] is None:
            raise ValueError(
                f"binder_ner's loss has label_weight={loss.label_weight}, but the context-label "
                "objective needs a label prompt: set [components.<name>.model.text_encoder.prompt] "
                "to spacy_binder.LabelPrompt.v1, or label_weight to 0."
            )
        self._binder_loss = loss
        self.model.attrs["embeddings"] = loss.uses_embeddings

    @property
    def key(self) -> str:
        return str(self.cfg["spans_key"])

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> Dict[str, Optional[str]]:
        """{label: description, or None for a keyword label}: what `spacy init
        labels` saves and `initialize(labels=...)` takes back."""
        return {label: self.cfg["descriptions"].get(label) for label in self.labels}

    @property
    def descriptions(self) -> List[str]:
        """The text given to the type encoder per label: its description, else its name."""
        described = self.cfg["descriptions"]
        return [described.get(label, label) for label in self.labels]

    def add_label(self, label: str, description: Optional[str] = None) -> int:
        """Add a label, or give an existing one a new description.

        A label without a description is encoded from its name, as a keyword.
        A label added after training is encoded by the type encoder, but is
        predicted well only by a pipeline trained to generalise to new types
        (`spacy_binder.TypeSampler.v1`), better still after few-shot fine-tuning.
        RETURNS (int): 1 if the label is new, else 0.
        """
        if not isinstance(label, str) or not label:
            raise ValueError(f"binder_ner labels must be non-empty strings, got {label!r}.")
        if description is not None:
            if not isinstance(description, str) or not description.strip():
                raise ValueError(
                    f"The description of label '{label}' must be a non-empty string."
                )
            self.cfg["descriptions"][label] = description
        if label in self.labels:
            return 0
        self.cfg["labels"].append(label)
        self.vocab.strings.add(label)
        return 1

    def set_labels(self, types: Mapping[str, Optional[str]]) -> None:
        """Replace the label set: {label: description, or None to encode the name}.

        No retraining is needed to predict them, but only a pipeline trained to
        generalise (see `spacy_binder.TypeSampler.v1` and the few-shot workflow)
        predicts types unlike its training types well.
        """
        if not types:
            raise ValueError("set_labels needs at least one label.")
        old = self.cfg["labels"], self.cfg["descriptions"]
        self.cfg["labels"], self.cfg["descriptions"] = [], {}
        try:
            for label, description in types.items():
                self.add_label(label, description)
        except ValueError:
            self.cfg["labels"], self.cfg["descriptions"] = old
            raise

    def set_mode(self, mode: str) -> None:
        """Switch between nested and flat decoding; training is the same for both."""
        check_mode(mode)
        self.cfg["mode"] = mode

    def _require_labels(self) -> None:
        if not self.labels:
            raise ValueError(
                f"The '{self.name}' component has no labels. Give training examples "
                f"with spans in doc.spans['{self.key}'], pass labels to initialize, "
                "or call add_label(label, description=...)."
            )

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Union[Sequence[str], Mapping[str, Optional[str]]]] = None,
        descriptions: Optional[Union[str, Path]] = None,
        support: Optional[Union[str, Path]] = None,
    ) -> None:
        """Set labels and descriptions and load the encoders.

        labels: the entity types, or {label: description or None} as
            `label_data` gives it (`spacy init labels`); inferred from the
            examples when not given.
        descriptions: a JSONL file of {"label", "description"}; types named
            there are added too.
        support: a .spacy file (or a folder of them) of annotated Docs for
            nearest-support decoding (`add_support`).
        """
        validate_get_examples(get_examples, "BinderNER.initialize")
        described = read_type_descriptions(descriptions) if descriptions else {}
        if isinstance(labels, Mapping):
            described.update({label: text for label, text in labels.items() if text is not None})
        inferred = set(described)
        n_examples = n_missing = 0
        first_missing: Optional[Example] = None
        for eg in get_examples():
            n_examples += 1
            if self._has_gold(eg.reference):
                inferred.update(span.label_ for span in self._reference_spans(eg))
            else:
                n_missing += 1
                first_missing = first_missing or eg
        if n_missing == n_examples and not (labels or described or self.labels):
            self._reference_spans(first_missing)  # raises: names the key and the keys found
        if 0 < n_missing < n_examples:
            warn(
                f"{n_missing} of {n_examples} training examples have no "
                f"doc.spans['{self.key}']; training on them will fail."
            )
        for label in labels if labels is not None else sorted(inferred):
            self.add_label(label, described.get(label))
        self._require_labels()
        keywords = [label for label in self.labels if label not in self.cfg["descriptions"]]
        if keywords:
            warn(
                f"No description for label(s) {keywords}: their names are "
                "used as keywords. Descriptions in annotation-guideline style work "
                "better; give them in a JSONL file ('descriptions' under "
                "[initialize.components.<name>]) or with add_label(label, description=...)."
            )
        sample = [eg.predicted for eg in islice(get_examples(), INIT_SAMPLE_SIZE)]
        self.model.initialize(X=(sample, self.descriptions, [True] * len(self.labels)))
        with_gold = (eg for eg in get_examples() if self._has_gold(eg.reference))
        self._warn_unlearnable(islice(with_gold, SCAN_SAMPLE_SIZE))
        if support is not None:
            self.clear_support()
            self.add_support(read_support(support, self.vocab))

    def add_support(self, docs: Iterable[Doc]) -> None:
        """Add annotated Docs as examples of their types: nearest-support decoding.

        Each candidate span is then also scored by how much closer it lies to
        the nearest support mention of a type than to the nearest other span
        of the support Docs, mixed with the description score by
        support_weight. No training is needed; after fine-tuning on the same
        Docs the comparison uses the fine-tuned weights. Gold spans are read
        from doc.spans[spans_key] (or doc.ents in flat mode); their labels are
        added to the component if new (described by their names). The support
        is saved with the pipeline.
        """
        flat = self.cfg["mode"] == "flat"
        added = []
        for doc in docs:
            spans = gold_of(doc, self.key, flat)
            if spans is None:
                raise ValueError(
                    f"Support Doc '{doc.text[:60]}' has no doc.spans['{self.key}'] (its span "
                    f"keys: {list(doc.spans.keys())})"
                    + (" and no doc.ents" if flat else "")
                    + f": put its gold spans there; a Doc with no entities needs doc.spans['{self.key}'] = []."
                )
            added.append(support_doc(doc, spans, self.vocab))
        new = sorted({span.label_ for doc in added for span in doc.spans[SUPPORT_KEY]} - set(self.labels))
        for label in new:
            self.add_label(label)
        if new:
            warn(
                f"Support label(s) {new} were not labels of '{self.name}': added, described by "
                "their names. Give descriptions with add_label(label, description=...)."
            )
        self.support.extend(added)

    def _has_gold(self, reference: Doc) -> bool:
        return gold_of(reference, self.key, self.cfg["mode"] == "flat") is not None

    def _reference_spans(self, example: Example) -> List[Span]:
        reference = example.reference
        spans = gold_of(reference, self.key, self.cfg["mode"] == "flat")
        if spans is not None:
            return spans
        raise ValueError(
            f"Training example '{reference.text[:60]}' has no doc.spans['{self.key}']"
            f" (its span keys: {list(reference.spans.keys())}). Set binder_ner's "
            "spans_key to the key your corpus uses, or convert the corpus with "
            "gold spans under that key"
            + (" or doc.ents." if self.cfg["mode"] == "flat" else ".")
        )

    def _gold_spans(self, examples: Iterable[Example]) -> List[List[Span]]:
        """Each example's gold spans, on its predicted tokens."""
        return [eg.get_aligned_spans_y2x(self._reference_spans(eg), allow_overlap=True) for eg in examples]

    def _scopes(self, examples: Iterable[Example]) -> List[Scope]:
        """The labels each example is annotated for (None: all of them)."""
        return [scope_of(eg.reference, self.key) for eg in examples]

    def _label_types(self, gold_spans: Sequence[Sequence[Span]], scopes: Sequence[Scope] = ()) -> StepTypes:
        """Every label, with its gold spans (and, given scopes, which Docs annotate it)."""
        gold = label_gold(gold_spans, {label: k for k, label in enumerate(self.labels)})
        known = scope_mask(scopes, self.labels) if scopes else None
        return StepTypes(list(self.descriptions), [True] * len(self.labels), gold, known)

    def _step_types(self, examples: Sequence[Example]) -> StepTypes:
        """What one update contrasts: every label, or the type sampler's draw."""
        gold_spans = self._gold_spans(examples)
        scopes = self._scopes(examples)
        if self.type_sampler is None or not self.cfg["sample_types"]:
            return self._label_types(gold_spans, scopes)
        docs = [eg.predicted for eg in examples]
        phrases = [self._phrases(eg) for eg in examples] if self.type_sampler.n_phrase_types else []
        return self.type_sampler.step(self.labels, self.descriptions, docs, gold_spans, scopes, phrases)

    @staticmethod
    def _phrases(example: Example) -> List[Span]:
        """The gold Doc's noun phrases (doc.spans["phrases"]), on the predicted tokens."""
        if PHRASES_KEY not in example.reference.spans:
            return []
        return example.get_aligned_spans_y2x(list(example.reference.spans[PHRASES_KEY]), allow_overlap=True)

    def _warn_unlearnable(self, examples: Iterable[Example]) -> None:
        """Count the gold spans of these examples (a sample of those with gold
        spans) that the model cannot learn to predict, and say so."""
        text_encoder = self.model.get_ref("text_encoder")
        max_width = self.model.attrs["max_span_width"]
        n_examples = n_spans = n_too_wide = n_unaligned = 0
        examples = iter(examples)
        while batch := list(islice(examples, SCAN_BATCH_SIZE)):
            step = self._label_types(self._gold_spans(batch))
            layout = window_layout(text_encoder, ([eg.predicted for eg in batch], step.texts))
            gold = gold_targets(layout, step.gold, len(self.labels), max_width, "cpu")
            n_examples += len(batch)
            n_spans += sum(len(spans) for spans in step.gold)
            n_too_wide += gold.n_too_wide
            n_unaligned += gold.n_unaligned
        where = f"gold spans (of the first {n_examples} training examples with gold spans)"
        if n_too_wide:
            warn(
                f"{n_too_wide} of {n_spans} {where} are wider than "
                f"max_span_width={max_width} tokens and cannot be predicted. Raise "
                "max_span_width in [components.<name>.model] to learn them."
            )
        if n_unaligned:
            warn(
                f"{n_unaligned} of {n_spans} {where} start or end on a "
                "token the encoder's tokenizer maps to no sub-word (or cross every "
                "window edge), and cannot be predicted."
            )

    def __call__(
        self,
        doc: Doc,
        *,
        threshold: Optional[Threshold] = None,
        labels: Optional[Sequence[str]] = None,
        support_weight: Optional[float] = None,
    ) -> Doc:
        """Annotate one Doc; threshold, labels and support_weight override the config for this call."""
        controls = self._controls(threshold, labels, support_weight)
        error_handler = self.get_error_handler()
        try:
            self._annotate([doc], self.predict([doc], support_weight=controls.support_weight), controls)
            return doc
        except Exception as e:
            error_handler(self.name, self, [doc], e)

    def pipe(
        self,
        stream: Iterable[Doc],
        *,
        batch_size: int = 128,
        threshold: Optional[Threshold] = None,
        labels: Optional[Sequence[str]] = None,
        support_weight: Optional[float] = None,
    ) -> Iterator[Doc]:
        """Annotate a stream of Docs; the controls as in `__call__`."""
        controls = self._controls(threshold, labels, support_weight)
        error_handler = self.get_error_handler()
        for docs in minibatch(stream, size=batch_size):
            try:
                self._annotate(docs, self.predict(docs, support_weight=controls.support_weight), controls)
                yield from docs
            except Exception as e:
                error_handler(self.name, self, docs, e)

    def _controls(
        self, threshold: Optional[Threshold], labels: Optional[Sequence[str]], support_weight: Optional[float]
    ) -> "Controls":
        """The call's prediction-time controls, else the configured ones."""
        self._require_labels()
        support_weight = self.support_weight if support_weight is None else support_weight
        check_support_weight(support_weight)
        scores = min_scores(
            self.labels,
            self.threshold if threshold is None else threshold,
            self.predict_labels if labels is None else labels,
        )
        if support_weight > 0 and min(scores) < 0.5:
            self._check_support_thresholds(scores)
        return Controls(scores, support_weight)

    def _check_support_thresholds(self, scores: Sequence[float]) -> None:
        """A threshold below 0.5 is for types known by their description alone:
        the support margin is exact only above 0 (`heads._support_margin`)."""
        supported = {span.label_ for doc in self.support for span in doc.spans[SUPPORT_KEY]}
        low = [label for label, score in zip(self.labels, scores) if score < 0.5 and label in supported]
        if low:
            raise ValueError(
                f"binder_ner threshold is below 0.5 for {low}, which have support mentions: "
                "below 0.5 is for types known by their description alone. Give them a "
                "threshold >= 0.5, or predict with support_weight 0."
            )

    def predict(self, docs: Iterable[Doc], *, support_weight: Optional[float] = None) -> BinderScores:
        """Scores of the docs, with the support margins when the support counts.
        At support weight 1 the margins are exact only where the support alone
        could predict, so decode those scores at weight 1 (or 0); predicted at
        a weight in (0, 1), they decode correctly at any weight."""
        self._require_labels()
        support_weight = self.support_weight if support_weight is None else support_weight
        support = label_support(self.support, self.labels) if support_weight > 0 else None
        prompted = [True] * len(self.labels)
        return self.model.predict(BinderInput(list(docs), self.descriptions, prompted, support, support_weight >= 1))

    def set_annotations(self, docs: Iterable[Doc], scores: BinderScores) -> None:
        self._annotate(list(docs), scores, self._controls(None, None, None))

    def _annotate(self, docs: List[Doc], scores: BinderScores, controls: "Controls") -> None:
        flat = self.cfg["mode"] == "flat"
        found = decode(
            scores,
            strategy=self.cfg["strategy"],
            flat=flat,
            support_weight=controls.support_weight,
            min_scores=controls.min_scores,
        )
        predictions = select(found, controls.min_scores)
        labels = self.labels
        for doc, doc_predictions in zip(docs, predictions):
            group = SpanGroup(
                doc,
                name=self.key,
                spans=[Span(doc, s, e, label=labels[k]) for s, e, k, _ in doc_predictions],
            )
            group.attrs["scores"] = numpy.asarray(
                [score for *_, score in doc_predictions], dtype="float32"
            )
            doc.spans[self.key] = group
            if flat:
                doc.ents = list(group)

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "BinderNER.update")
        self._require_labels()
        if not any(len(eg.predicted) for eg in examples):
            return losses
        set_dropout_rate(self.model, drop)
        step = self._step_types(examples)
        docs = [eg.predicted for eg in examples]
        scores, backprop = self.model.begin_update(BinderInput(docs, step.texts, step.prompted))
        loss, d_scores = self._loss(scores, step)
        self._n_updates += 1
        if not math.isfinite(loss):
            raise ValueError(
                f"[binder_ner] The loss of update {self._n_updates} is {loss}: training "
                "diverged, and this update was not applied. Lower the learning rate "
                "([training.optimizer] learn_rate) or keep grad_clip on."
            )
        backprop(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(self, examples: Iterable[Example], scores: BinderScores) -> Tuple[float, BinderScores]:
        examples = list(examples)
        return self._loss(scores, self._label_types(self._gold_spans(examples), self._scopes(examples)))

    def _loss(self, scores: BinderScores, step: StepTypes) -> Tuple[float, BinderScores]:
        gold = gold_targets(
            scores.windows, step.gold, len(step.texts), scores.max_span_width, scores.span.device, step.known
        )
        return self.loss.get_grad(scores, gold)

    def finish_update(self, sgd: Optimizer) -> None:
        """Step the text encoder at the optimizer's rate, the type encoder and
        the fresh heads at their own scales of it."""
        self.model.get_ref("text_encoder").finish_update(sgd)
        type_scale = self.model.attrs["type_encoder_learn_rate_scale"]
        if type_scale > 0:
            self.model.get_ref("type_encoder").finish_update(partial(sgd, lr_scale=type_scale))
        self.model.get_ref("heads").finish_update(partial(sgd, lr_scale=self.model.attrs["heads_learn_rate_scale"]))


class Controls(NamedTuple):
    """Prediction-time controls: each label's minimum score (`decode.select`)
    and the weight of the support margin."""

    min_scores: List[float]
    support_weight: float
