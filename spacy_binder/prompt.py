"""Label-aware suffix prompts (Zhang & Zhuang 2024, arXiv 2404.17178).

With a prompt, the text encoder reads `[CLS] window [SEP] prompt [SEP]`, where
the prompt renders every entity type of the call, so each token is encoded
knowing which types are asked for. Types made up in training from the text
itself (the type sampler's mention types) are not written: the prompt would
hand the text encoder the very strings it must find. The prompt's sub-words are never span
candidates (they align to no spaCy token) and the thresholds stay on [CLS].
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy
from spacy.util import registry
from spacy_transformers.layers.transformer_model import huggingface_tokenize

# A rendered prompt: its text, and the character span of each type's text in it.
Rendered = Tuple[str, List[Optional[Tuple[int, int]]]]
# The least room a prompt must leave for the text of a window, in sub-words.
MIN_TEXT_WORDPIECES = 32


@registry.misc("spacy_binder.LabelPrompt.v1")
@dataclass
class LabelPrompt:
    """How the types are written after each window.

    template: one type's text, with `{description}` where its description (or,
    for a keyword label, its name) goes. separator: between two types. Both may
    hold `{cls}` and `{sep}`, the encoder's own special tokens ([CLS] and [SEP]
    for BERT, <s> and </s> for RoBERTa-like encoders), e.g. the few-shot
    paper's layout of one `[CLS] label [SEP]` block per type. one_segment:
    the prompt has the text's segment (token type) id, as the few-shot paper's
    authors feed it, instead of the second sequence's.
    """

    template: str = "{description}"
    separator: str = " ; "
    one_segment: bool = False

    def __post_init__(self) -> None:
        if "{description}" not in self.template:
            raise ValueError(
                f"LabelPrompt template {self.template!r} has no '{{description}}' placeholder: "
                "each type's description must appear in the prompt."
            )
        try:
            self.template.format(description="", cls="", sep="")
            self.separator.format(cls="", sep="")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(
                f"LabelPrompt template {self.template!r} (or separator {self.separator!r}) is not a "
                f"format string with only '{{description}}', '{{cls}}' and '{{sep}}' in it ({err!r}); write literal braces as '{{{{' and '}}}}'."
            ) from None

    def render(self, descriptions: Sequence[Optional[str]], cls: str = "", sep: str = "") -> Rendered:
        """The prompt text and the character span of each type's own text in it
        (None for a type not written: a None description); cls and sep: the
        encoder's special tokens."""
        separator = self.separator.format(cls=cls, sep=sep)
        parts: List[str] = []
        spans: List[Optional[Tuple[int, int]]] = []
        position = 0
        for description in descriptions:
            if description is None:
                spans.append(None)
                continue
            if parts:
                parts.append(separator)
                position += len(separator)
            text = self.template.format(description=description, cls=cls, sep=sep)
            parts.append(text)
            spans.append((position, position + len(text)))
            position += len(text)
        return "".join(parts), spans


def tokenize_with_prompt(
    tokenizer, texts: List[str], prompt: Optional[Rendered], one_segment: bool = False
) -> Dict[str, Any]:
    """spacy-transformers' `huggingface_tokenize`, with the prompt as the
    second sequence of every pair when there is one.

    The prompt's sub-words get offsets (0, 0), like special tokens, so that no
    spaCy token aligns to them, and `prompt_label` (n_windows, n_wordpieces)
    names the type each belongs to (-1: none, e.g. a separator; a type that
    is not written has no sub-words). one_segment: every sub-word has segment 0.
    """
    if prompt is None:
        return huggingface_tokenize(tokenizer, texts)
    prompt_text, label_spans = prompt
    written = [(k, span) for k, span in enumerate(label_spans) if span is not None]
    encoding = tokenizer(
        texts,
        [prompt_text] * len(texts),
        add_special_tokens=True,
        return_attention_mask=True,
        return_offsets_mapping=True,
        return_tensors="np",
        return_token_type_ids=None,
        padding="longest",
    )
    types = numpy.asarray([k for k, _ in written], dtype="int64")
    starts = numpy.asarray([start for _, (start, _) in written], dtype="int64")
    ends = numpy.asarray([end for _, (_, end) in written], dtype="int64")
    offsets = encoding["offset_mapping"]
    prompt_label = numpy.full(encoding["input_ids"].shape, -1, dtype="int64")
    for row in range(len(texts)):
        in_prompt = numpy.asarray([sequence == 1 for sequence in encoding.sequence_ids(row)])
        nth = numpy.searchsorted(starts, offsets[row, :, 0], side="right") - 1
        inside = in_prompt & (nth >= 0) & (offsets[row, :, 0] < ends[nth.clip(min=0)])
        prompt_label[row, inside] = types[nth[inside]]
        offsets[row, in_prompt] = 0
    result = dict(encoding)
    if one_segment and "token_type_ids" in result:
        result["token_type_ids"] = numpy.zeros_like(result["token_type_ids"])
    result["prompt_label"] = prompt_label
    result["input_texts"] = [tokenizer.convert_ids_to_tokens(ids) for ids in encoding["input_ids"]]
    result["pad_token"] = tokenizer.pad_token
    return result


def prompt_cost(tokenizer, prompt_text: str, limit: int, encoder_name: str) -> int:
    """Sub-words the prompt adds to every window (its separators included);
    refuses a prompt that leaves less than MIN_TEXT_WORDPIECES for the text."""
    cost = len(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
    cost += tokenizer.num_special_tokens_to_add(pair=True) - tokenizer.num_special_tokens_to_add(pair=False)
    room = limit - tokenizer.num_special_tokens_to_add(pair=False) - cost
    if room < MIN_TEXT_WORDPIECES:
        raise ValueError(
            f"The label prompt is {cost} sub-words long, which leaves {room} of encoder "
            f"'{encoder_name}''s {limit} for the text; at least {MIN_TEXT_WORDPIECES} "
            "are needed. Shorten the type descriptions, predict fewer labels at a time, or "
            "set the text encoder's prompt to null."
        )
    return cost
