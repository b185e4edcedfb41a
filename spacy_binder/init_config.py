"""A complete training config for binder_ner, from a few choices.

`init_config` fills the template `configs/binder.cfg` (training settings
validated on the real corpora) with a mode, an encoder, descriptions and labels,
and lets spaCy write every other default, so nobody edits a long config by hand
to start. The mode can be read from the training data: nested when any two gold
spans of a document overlap, and the number of steps from its size.
"""
import math
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from spacy import util
from spacy.tokens import Doc
from thinc.api import Config

from .contrastive import SIMILARITIES
from .defaults import BATCH_WORDS, ENCODER, MAX_STEPS
from .labels import MODES, read_type_descriptions

TEMPLATE = Path(__file__).parent / "configs" / "binder.cfg"
# The validated budget (MAX_STEPS), or fewer steps on a small corpus:
# MAX_PASSES over its words.
MAX_PASSES = 25
EVALS_PER_RUN = 4
WARMUP_SHARE = 8  # the first eighth of the steps warm up (50 of the validated 400)
# A source for zero- and few-shot transfer (docs/FEWSHOT.md): each step keeps
# half the labels, names a label instead of describing it 30% of the time and
# adds 8 gold mention texts as types (the type encoder stays as pretrained, as
# by default).
TRANSFER_SAMPLER = {"keep_prob": 0.5, "name_prob": 0.3, "n_mention_types": 8}
# The few-shot objectives' weights when they are on (not tuned).
OBJECTIVE_WEIGHT = 0.5


def detect_mode(docs: Iterable[Doc], spans_key: str = "sc") -> str:
    """"nested" if two gold spans of a doc overlap (doc.spans[spans_key], else
    doc.ents), else "flat"."""
    n_docs = n_gold = 0
    for doc in docs:
        n_docs += 1
        spans = doc.spans[spans_key] if spans_key in doc.spans else doc.ents
        n_gold += len(spans)
        ends = sorted((span.start, span.end) for span in spans)
        if any(start < previous_end for (_, previous_end), (start, _) in zip(ends, ends[1:])):
            return "nested"
    if not n_gold:
        raise ValueError(
            f"No gold spans in doc.spans['{spans_key}'] or doc.ents of {n_docs} docs: "
            "cannot tell the mode from the training data. Give the mode (flat or "
            "nested), or check spans_key."
        )
    return "flat"


def default_max_steps(n_words: int, batch_words: int = BATCH_WORDS) -> int:
    """MAX_STEPS, or MAX_PASSES over a corpus too small for that many."""
    return max(1, min(MAX_STEPS, math.ceil(MAX_PASSES * n_words / batch_words)))


def init_config(
    mode: str,
    *,
    max_steps: int = MAX_STEPS,
    encoder: str = ENCODER,
    descriptions: Optional[Union[str, Path]] = None,
    labels: Sequence[str] = (),
    spans_key: str = "sc",
    transfer: bool = False,
    prompt: bool = False,
    objectives: Optional[str] = None,
) -> Config:
    """The filled training config. Flat mode sets doc.ents and is scored by
    ents_f; nested by spans_{spans_key}_f. The dev set is scored EVALS_PER_RUN
    times a run, and the learning rate warms up over the first WARMUP_SHARE-th.

    transfer: train a source for zero- and few-shot use (TRANSFER_SAMPLER).
    prompt: label-aware suffix prompts. objectives: turn on the context-context
    and context-label objectives with this similarity ("cosine", "js", "kl";
    the last two add Gaussian embeddings); they need the prompt.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown binder_ner mode '{mode}': use one of {MODES}.")
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}.")
    if objectives is not None and objectives not in SIMILARITIES:
        raise ValueError(f"Unknown objectives similarity '{objectives}': use one of {SIMILARITIES}.")
    if objectives is not None and not prompt:
        raise ValueError("The few-shot objectives include context-label, which needs the label prompt: add the prompt.")
    if descriptions is not None:
        described = read_type_descriptions(descriptions)  # fail now, not after loading the encoder
        missing = sorted(set(labels) - set(described))
        if missing:
            raise ValueError(f"Labels {missing} have no description in {descriptions}.")
    config = util.load_config(TEMPLATE, interpolate=False)
    config["paths"]["encoder"] = encoder
    config["paths"]["descriptions"] = str(descriptions) if descriptions is not None else None
    component = config["components"]["binder_ner"]
    component["mode"] = mode
    component["spans_key"] = spans_key
    model = component["model"]
    if transfer:
        component["type_sampler"].update(TRANSFER_SAMPLER)
    if prompt:
        model["text_encoder"]["prompt"] = {"@misc": "spacy_binder.LabelPrompt.v1"}
    if objectives is not None:
        model["gaussian_embeddings"] = objectives != "cosine"
        component["loss"] = {
            "@misc": "spacy_binder.BinderLoss.v1",
            "context_weight": OBJECTIVE_WEIGHT,
            "label_weight": OBJECTIVE_WEIGHT,
            "similarity": objectives,
        }
    if labels:
        config["initialize"]["components"]["binder_ner"]["labels"] = list(labels)
    spans = {f"spans_{spans_key}_{x}": w for x, w in (("f", 1.0), ("p", 0.0), ("r", 0.0))}
    if mode == "flat":
        weights = {"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, **{key: None for key in spans}}
    else:
        weights = spans
    config["training"]["score_weights"] = weights
    config["training"]["max_steps"] = max_steps
    config["training"]["batcher"]["size"] = BATCH_WORDS
    config["training"]["eval_frequency"] = max(1, max_steps // EVALS_PER_RUN)
    config["training"]["optimizer"]["learn_rate"]["warmup_steps"] = max_steps // WARMUP_SHARE
    nlp = util.load_model_from_config(config, auto_fill=True, validate=True)
    return nlp.config
