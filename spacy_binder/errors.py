"""The one warning category of spacy-binder, and warnings said once per cause.

Filter them all with `warnings.filterwarnings("ignore", category=BinderWarning)`.
Warnings about the input seen at prediction time (long tokens, lone surrogates)
would otherwise repeat for every batch of a large corpus: those are said the
first time their cause occurs in a process, with the details of that time.
"""
import logging
import warnings
from contextlib import contextmanager
from typing import Iterator, Sequence, Set

# What importing torchao logs on a CPU-only torch, none of it ours to fix: its
# CUDA kernels failing to load, and a deprecation inside its pytree
# registrations. transformers imports torchao whenever it is installed (the
# int8 extra), so every pipeline load would print them.
TORCHAO_IMPORT_NOISE = ("torchao", "torch.utils._pytree")

_said: Set[str] = set()


class BinderWarning(UserWarning):
    """A spacy-binder warning."""


def warn(message: str) -> None:
    warnings.warn(f"[binder_ner] {message}", BinderWarning, stacklevel=3)


def warn_once(cause: str, message: str) -> None:
    """Warn the first time `cause` occurs in this process; later times are not reported."""
    if cause in _said:
        return
    _said.add(cause)
    warnings.warn(
        f"[binder_ner] {message} (Said once per process; later occurrences are not reported.)",
        BinderWarning,
        stacklevel=3,
    )


@contextmanager
def silenced(loggers: Sequence[str]) -> Iterator[None]:
    """Only errors from these loggers while the block runs (other libraries'
    noise that a user cannot act on)."""
    found = [logging.getLogger(name) for name in loggers]
    levels = [logger.level for logger in found]
    for logger in found:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(found, levels):
            logger.setLevel(level)
