"""BINDER bi-encoder NER (Zhang et al., ICLR 2023) as a spaCy pipeline component.

The package face is lazy: `import spacy_binder` imports neither torch nor
transformers; the names below load their module on first use. spaCy finds the
factory and every registered function through the package's entry points.
"""
import importlib
import os
import sys
from typing import Any

from .errors import BinderWarning
from .msgpack_codecs import keep_msgpack_codecs

_EXPORTS = {
    "BinderNER": "component",
    "make_binder_ner": "component",
    "BinderLoss": "loss",
    "decode": "decode",
    "remove_overlap": "decode",
    "read_type_descriptions": "labels",
    "NEW_TYPE_THRESHOLD": "defaults",
}

__all__ = ["BinderWarning", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'spacy_binder' has no attribute '{name}'")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def _one_torch_thread() -> None:
    """A forked worker (`nlp.pipe(texts, n_process=2)`) inherits torch's thread
    pool in a state that deadlocks on first use; one intra-op thread per
    worker avoids it (and the workers share the cores anyway). This holds for
    every process forked after spacy_binder is imported: call
    torch.set_num_threads in a worker that should use more."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_torch_thread)
keep_msgpack_codecs()  # reading a DocBin of Docs with span groups ~8x faster
