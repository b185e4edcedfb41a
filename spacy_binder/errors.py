"""The one warning category of spacy-binder, and warnings said once per cause.

Filter them all with `warnings.filterwarnings("ignore", category=BinderWarning)`.
Warnings about the input seen at prediction time (long tokens, lone surrogates)
would otherwise repeat for every batch of a large corpus: those are said the
first time their cause occurs in a process, with the details of that time.
"""
import warnings
from typing import Set

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
