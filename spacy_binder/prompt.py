"""Label-aware suffix prompts (Zhang & Zhuang 2024, arXiv 2404.17178).

With a prompt, the text encoder reads `[CLS] window [SEP] prompt [SEP]`, where
the prompt renders every entity type of the call, so each token is encoded
knowing which types are asked for. Types made up in training from the text
itself (the type sampler's mention types) are not written: the prompt would
hand the text encoder the very strings it must find. The prompt's sub-words are never span
candidates (they align to no spaCy token) and the thresholds stay on [CLS].
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from spacy.util import registry


@registry.misc("spacy_binder.LabelPrompt.v1")
@dataclass
class LabelPrompt:
    """How the types are written after each window.

    template: one type's text, with `{description}` where its description (or,
    for a keyword label, its name) goes. separator: between two types.
    """

    template: str = "{description}"
    separator: str = " ; "

    def __post_init__(self) -> None:
        if "{description}" not in self.template:
            raise ValueError(
                f"LabelPrompt template {self.template!r} has no '{{description}}' placeholder: "
                "each type's description must appear in the prompt."
            )
        try:
            self.template.format(description="")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(
                f"LabelPrompt template {self.template!r} is not a format string with only "
                f"'{{description}}' in it ({err!r}); write literal braces as '{{{{' and '}}}}'."
            ) from None

    def render(
        self, descriptions: Sequence[Optional[str]]
    ) -> Tuple[str, List[Optional[Tuple[int, int]]]]:
        """The prompt text and the character span of each type's own text in it
        (None for a type not written: a None description)."""
        parts: List[str] = []
        spans: List[Optional[Tuple[int, int]]] = []
        position = 0
        for description in descriptions:
            if description is None:
                spans.append(None)
                continue
            if parts:
                parts.append(self.separator)
                position += len(self.separator)
            text = self.template.format(description=description)
            parts.append(text)
            spans.append((position, position + len(text)))
            position += len(text)
        return "".join(parts), spans
