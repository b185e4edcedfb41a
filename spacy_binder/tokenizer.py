"""`spacy_binder.Tokenizer.v1`: spaCy's tokenizer, made safe for lone surrogates.

Text decoded with `errors="surrogateescape"` keeps each undecodable byte as a
lone surrogate (U+DC80-U+DCFF), which is not valid Unicode: spaCy's string store
cannot hash it and `nlp(text)` raises UnicodeEncodeError before any component
runs. This tokenizer reads each lone surrogate as U+FFFD, one character for
one so that character offsets still match the input, and warns with their
positions; everything else is spaCy's own tokenizer (settings, special cases,
serialization).
"""
import re
from typing import Callable, Iterable, Iterator

from spacy.language import Language, create_tokenizer
from spacy.tokenizer import Tokenizer
from spacy.tokens import Doc
from spacy.util import registry

from .errors import warn_once

_SURROGATE = re.compile("[\ud800-\udfff]")
SHOWN_POSITIONS = 10


class SurrogateSafeTokenizer:
    """Wraps a spaCy `Tokenizer`; attributes and methods are the wrapped one's."""

    def __init__(self, tokenizer: Tokenizer):
        object.__setattr__(self, "tokenizer", tokenizer)

    def __call__(self, text: str) -> Doc:
        positions = [match.start() for match in _SURROGATE.finditer(text)]
        if positions:
            shown = ", ".join(map(str, positions[:SHOWN_POSITIONS]))
            more = f" and {len(positions) - SHOWN_POSITIONS} more" if len(positions) > SHOWN_POSITIONS else ""
            warn_once(
                "surrogates",
                f"{len(positions)} lone surrogate character(s) (not valid Unicode, "
                f"as surrogateescape decoding leaves them) at character {shown}{more} of a "
                f"{len(text)}-character text were read as U+FFFD."
            )
            text = _SURROGATE.sub("\ufffd", text)
        return self.tokenizer(text)

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterator[Doc]:
        for text in texts:
            yield self(text)

    def __getattr__(self, name: str):
        if name == "tokenizer":  # not set yet (unpickling)
            raise AttributeError(name)
        return getattr(self.tokenizer, name)

    def __setattr__(self, name: str, value) -> None:
        setattr(self.tokenizer, name, value)

    def __reduce__(self):
        return (SurrogateSafeTokenizer, (self.tokenizer,))


@registry.tokenizers("spacy_binder.Tokenizer.v1")
def create_surrogate_safe_tokenizer() -> Callable[[Language], SurrogateSafeTokenizer]:
    """spaCy's `spacy.Tokenizer.v1`, reading lone surrogates as U+FFFD."""
    make_tokenizer = create_tokenizer()

    def tokenizer_factory(nlp: Language) -> SurrogateSafeTokenizer:
        return SurrogateSafeTokenizer(make_tokenizer(nlp))

    return tokenizer_factory
