"""The `label_aware_ner` pipeline component: words tagged by their nearest support word."""
from dataclasses import replace
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import registry
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate

from ..defaults import ENCODER
from ..encoders import hf_objects
from ..errors import warn, warn_once
from ..labels import read_type_descriptions
from ..model import weights_fingerprint
from ..support import SUPPORT_KEY, StoresSupport, read_support, support_doc
from .decode import doc_tags, io_spans, io_tags, nearest_label, nearest_support
from .loss import NO_TAG, OUTSIDE, LabelAwareLoss
from .model import OUTSIDE_WORD, TokenVectors

DEFAULT_LABEL_AWARE_MODEL = f"""
[model]
@architectures = "spacy_binder.LabelAwareModel.v1"
embedding_size = 128
dropout = 0.1
prompt = true

[model.text_encoder]
@architectures = "spacy_binder.TextEncoder.v1"
name = "{ENCODER}"
window = 128
stride = 96
max_batch_items = 4096
mixed_precision = false
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_LABEL_AWARE_MODEL)["model"]


@Language.factory(
    "label_aware_ner",
    assigns=["doc.ents"],
    default_config={
        "model": DEFAULT_MODEL,
        "label_words": None,
        "loss": {"@misc": "spacy_binder.LabelAwareLoss.v1"},
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_label_aware_ner(
    nlp: Language,
    name: str,
    model: Model,
    label_words: Optional[Dict[str, str]],
    loss: LabelAwareLoss,
    scorer: Optional[Callable],
) -> "LabelAwareNER":
    """Flat NER by nearest support word (the label-aware paper, and CONTaiNER
    with `prompt = false` in the model and the loss's label_weight 0).

    label_words: the word the prompt writes for each label (default: its
    name), e.g. {"PER": "person"}.
    """
    return LabelAwareNER(nlp.vocab, model, name, label_words=label_words, loss=loss, scorer=scorer)


class LabelAwareNER(StoresSupport, TrainablePipe):
    """Tag each word with the label of its nearest support word (O included)."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "label_aware_ner",
        *,
        label_words: Optional[Mapping[str, str]] = None,
        loss: Optional[LabelAwareLoss] = None,
        scorer: Optional[Callable] = None,
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self.label_words = dict(label_words or {})
        self.loss = loss if loss is not None else LabelAwareLoss()
        self.scorer = scorer
        # Docs whose spans (under SUPPORT_KEY) are examples of their labels: see add_support.
        self.support: List[Doc] = []
        # (support and prompt, weights fingerprint, states, tags): see _support_vectors.
        self._support_cache: Optional[Tuple] = None
        self.cfg: Dict = {"labels": [], "words": {}}

    @property
    def loss(self) -> LabelAwareLoss:
        return self._loss

    @loss.setter
    def loss(self, loss: LabelAwareLoss) -> None:
        if loss.label_weight > 0 and not self.model.attrs["prompt"]:
            raise ValueError(
                f"label_aware_ner's loss has label_weight={loss.label_weight}, but its model has no "
                "label prompt (prompt = false, CONTaiNER's model): set the loss's label_weight to 0."
            )
        self._loss = loss

    @property
    def labels(self) -> Tuple[str, ...]:
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> Dict[str, str]:
        return dict(self.cfg["words"])

    @property
    def tag_index(self) -> Dict[str, int]:
        """Each label's tag: its place in the prompt, after "none" (OUTSIDE)."""
        return {label: k for k, label in enumerate(self.labels, OUTSIDE + 1)}

    @property
    def words(self) -> List[str]:
        """The prompt's words: "none" (O), then each label's."""
        return [OUTSIDE_WORD, *(self.cfg["words"][label] for label in self.labels)]

    def add_label(self, label: str, word: Optional[str] = None) -> int:
        """Add a label, written `word` in the prompt (default: the label itself)."""
        word = word if word is not None else self.label_words.get(label, label)
        if not isinstance(label, str) or not label or not isinstance(word, str) or not word.strip():
            raise ValueError(f"label_aware_ner labels and their words must be non-empty strings, got {label!r}: {word!r}.")
        if label in self.labels and self.cfg["words"][label] == word:
            return 0
        if label not in self.labels:
            self.cfg["labels"].append(label)
        self.cfg["words"][label] = word
        return 1

    def set_labels(self, words: Mapping[str, Optional[str]]) -> None:
        """Replace the labels with these, {label: word or None for the default}."""
        self.cfg["labels"], self.cfg["words"] = [], {}
        for label, word in words.items():
            self.add_label(label, word)

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
        labels: Optional[Union[Sequence[str], Mapping[str, str]]] = None,
        words: Optional[str] = None,
        support: Optional[str] = None,
    ) -> None:
        """Set the labels (from the examples' doc.ents unless given) and load the encoder.

        labels: the labels, or {label: word} as `label_data` gives it (`spacy
        init labels`). words: a JSONL file of {"label": ..., "description": word}, each
        label's prompt word (over the factory's label_words).
        support: a .spacy file (or a folder of them) of annotated Docs to
        decode by (`add_support`).
        """
        validate_get_examples(get_examples, "LabelAwareNER.initialize")
        if labels is None:
            labels = sorted({ent.label_ for eg in get_examples() for ent in eg.reference.ents})
        if not labels:
            raise ValueError(
                f"The '{self.name}' component found no entities in the training examples' doc.ents: "
                "give examples with doc.ents, or pass labels to initialize."
            )
        given = dict(labels) if isinstance(labels, Mapping) else {}
        given.update(read_type_descriptions(words) if words is not None else {})
        self.set_labels({label: given.get(label) for label in labels})
        self.model.initialize()  # the heads take the encoder's width: no sample needed
        if support is not None:
            self.clear_support()
            self.add_support(read_support(support, self.vocab))

    def add_support(self, docs: Iterable[Doc]) -> None:
        """Add annotated Docs (their doc.ents): every word of them, O included,
        becomes an example of its tag. Labels not known are added, written by
        their names. Saved with the pipeline."""
        added = [support_doc(doc, doc.ents, self.vocab) for doc in docs]
        new = sorted({span.label_ for doc in added for span in doc.spans[SUPPORT_KEY]} - set(self.labels))
        for label in new:
            self.add_label(label)
        if new:
            warn(f"Support label(s) {new} were not labels of '{self.name}': added, written by their names.")
        self.support.extend(added)

    def predict(self, docs: Iterable[Doc]) -> List[List[int]]:
        """Each token's tag: 0 for O, k for the k-th label."""
        docs = list(docs)
        vectors: TokenVectors = self.model.predict((docs, self.words))
        if len(vectors) == 0:  # no text
            found = torch.zeros((0,), dtype=torch.long)
        elif self.support:
            states, tags = self._support_vectors()
            found = nearest_support(vectors.states, states, tags)
        elif self.model.attrs["prompt"]:
            found = nearest_label(vectors, self.loss.similarity)
        else:
            warn_once(
                "no support",
                f"'{self.name}' has no label prompt and no support set, so it finds nothing: "
                "give it examples with add_support(docs).",
            )
            found = torch.full((len(vectors),), OUTSIDE, dtype=torch.long, device=vectors.states.device)
        return doc_tags(vectors, found, docs)

    def set_annotations(self, docs: Iterable[Doc], tags: List[List[int]]) -> None:
        labels = ["", *self.labels]
        for doc, row in zip(docs, tags):
            doc.ents = io_spans(doc, row, labels)

    def _support_vectors(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """The support words' unit states and tags, cached per support, prompt
        and encoder weights (a fine-tuned or reloaded encoder recomputes them)."""
        key = (
            tuple((doc.text, tuple(t.idx for t in doc)) for doc in self.support),  # the encoder reads the text
            tuple(tuple((s.start, s.end, s.label_) for s in doc.spans[SUPPORT_KEY]) for doc in self.support),
            self.labels,
            tuple(self.words),
        )
        fingerprint = weights_fingerprint([hf_objects(self.model.get_ref("text_encoder")).transformer])
        cache = self._support_cache
        if cache is None or cache[0] != key or not torch.equal(cache[1], fingerprint):
            vectors: TokenVectors = self.model.predict((self.support, self.words))
            tags = [io_tags(doc, doc.spans[SUPPORT_KEY], self.tag_index) for doc in self.support]
            cache = (key, fingerprint, vectors.states, _word_tags(vectors, tags))
            self._support_cache = cache
        return cache[2], cache[3]

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
        validate_examples(examples, "LabelAwareNER.update")
        docs = [eg.predicted for eg in examples]
        if not any(len(doc) for doc in docs):
            return losses
        set_dropout_rate(self.model, drop)
        vectors, backprop = self.model.begin_update((docs, self.words))
        loss, d_trained = self.get_loss(examples, vectors)
        backprop(d_trained)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(self, examples: Iterable[Example], vectors: TokenVectors) -> Tuple[float, Tuple[torch.Tensor, ...]]:
        """The loss of a batch and its gradients for the model's trained outputs."""
        index = self.tag_index
        word_tags = _word_tags(vectors, [self._gold_tags(eg, index) for eg in examples])
        leaves = [tensor.detach().requires_grad_() for tensor in vectors.trained]
        mu, var, label_mu, label_var = leaves
        value = self.loss(replace(vectors, mu=mu, var=var, label_mu=label_mu, label_var=label_var), word_tags)
        if not torch.isfinite(value):
            raise ValueError(f"label_aware_ner's loss is not finite ({float(value)}): lower the learning rate.")
        if value.requires_grad:
            value.backward()
        grads = tuple(leaf.grad if leaf.grad is not None else torch.zeros_like(leaf) for leaf in leaves)
        return float(value.detach()), grads

    @staticmethod
    def _gold_tags(example: Example, index: Mapping[str, int]) -> List[int]:
        """The tag of each predicted token from the reference's doc.ents (BILUO
        aligned by spaCy); NO_TAG where the reference says nothing ('-' or
        misaligned). Entities of labels not in `index` (not this component's) count as O."""
        tags = []
        for tag in example.get_aligned_ner():
            if tag is None or tag == "-":
                tags.append(NO_TAG)
            elif tag == "O":
                tags.append(OUTSIDE)
            else:
                tags.append(index.get(tag.split("-", 1)[1], OUTSIDE))
        return tags


def _word_tags(vectors: TokenVectors, tags: Sequence[Sequence[int]]) -> torch.Tensor:
    """The tag of each word of `vectors` from its Doc's token tags."""
    found = [tags[d][t] for d, t in zip(vectors.doc_index, vectors.token_index)]
    return torch.tensor(found, dtype=torch.long, device=vectors.mu.device)


@registry.callbacks("spacy_binder.set_label_words.v1")
def make_set_label_words(
    words: str, component: str = "label_aware_ner", support: Optional[str] = None
) -> Callable[[Language], Language]:
    """Give a (sourced) label_aware_ner new labels before fine-tuning.

    words: a JSONL file of {"label": ..., "description": word} (the format of
    type descriptions, the description being the label's prompt word).
    support: a .spacy file (or folder) of annotated Docs that becomes its
    support set (typically the Docs it is fine-tuned on).
    """

    def set_label_words(nlp: Language) -> Language:
        ner = nlp.get_pipe(component)
        ner.set_labels(read_type_descriptions(words))
        if support is not None:
            ner.clear_support()
            ner.add_support(read_support(support, nlp.vocab))
        return nlp

    return set_label_words
