"""BINDER bi-encoder NER (Zhang et al., ICLR 2023) as a spaCy pipeline component."""
from . import encoders, loss, model, schedules, scorer, tokenizer, transfer  # noqa: F401  (registers functions)
from .component import BinderNER, make_binder_ner, read_type_descriptions
from .decode import decode, remove_overlap
from .errors import BinderWarning
from .loss import BinderLoss

__all__ = [
    "BinderNER",
    "BinderLoss",
    "BinderWarning",
    "decode",
    "make_binder_ner",
    "read_type_descriptions",
    "remove_overlap",
]
