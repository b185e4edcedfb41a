"""`spacy_binder.BinderModel.v1`: text encoder + type encoder + BINDER heads.

Input: `BinderInput` (docs, type descriptions, and optionally a support set).
Output: `BinderScores`, the similarities of every window position and
candidate span to every type, with the dynamic thresholds, and with a support
set the support margins. Backprop takes a `BinderScores` holding the gradients.
"""
from typing import Callable, Iterable, List, NamedTuple, Optional, Tuple

import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Model, PyTorchWrapper_v2

from .batch import BinderScores, EncodedWindows, Windows
from .encoders import TextInput, hf_objects
from .errors import warn
from .heads import BinderHeads, Support
from .support import SupportSpans, SupportVectors, select_spans


class BinderInput(NamedTuple):
    """The docs, the text of each type for the type encoder, whether the text
    encoder's label prompt (if any) writes it, and a support set whose
    mentions the spans are compared with (prediction only). support_alone: the
    support decides without the descriptions (support weight 1), so no span
    needs its exact support margin for being above its description threshold."""

    docs: List[Doc]
    descriptions: List[str]
    prompted: List[bool]
    support: Optional[SupportSpans] = None
    support_alone: bool = False


InT = BinderInput


@registry.architectures("spacy_binder.BinderModel.v1")
def build_binder_model(
    text_encoder: Model[TextInput, EncodedWindows],
    type_encoder: Model[List[str], torch.Tensor],
    linear_size: int = 128,
    width_embedding_size: int = 128,
    max_span_width: int = 30,
    dropout: float = 0.1,
    init_temperature: float = 0.07,
    heads_learn_rate_scale: float = 10.0,
    thresholds: str = "dynamic",
    type_encoder_learn_rate_scale: float = 0.0,
    gaussian_embeddings: bool = False,
) -> Model[InT, BinderScores]:
    """BINDER's bi-encoder. `max_span_width` counts spaCy tokens.

    heads_learn_rate_scale multiplies the optimizer's learning rate for the
    randomly initialised heads, which can learn faster than the pretrained encoders.
    type_encoder_learn_rate_scale does the same for the type encoder. The default,
    0, freezes it: descriptions stay in the pretrained encoder's semantic space
    (so a type added after training is described in the space the heads learned
    on), and training skips its backward pass and optimizer step, about a fifth
    of a step, at no measured cost in F1 (docs/BENCHMARKS.md).
    thresholds: "dynamic" (the paper's [CLS]-based thresholds) or "global"
    (one learned threshold per type, the paper's ablation).
    gaussian_embeddings: give span and prompt vectors variances, for the
    few-shot objectives' "js" and "kl" similarities (`spacy_binder.contrastive`).
    """
    if max_span_width < 1:
        raise ValueError(f"max_span_width must be at least 1, got {max_span_width}.")
    if type_encoder_learn_rate_scale < 0:
        raise ValueError(
            f"type_encoder_learn_rate_scale must be >= 0 (0 freezes the type encoder), "
            f"got {type_encoder_learn_rate_scale}."
        )
    overlap = text_encoder.attrs["window"] - text_encoder.attrs["stride"]
    if overlap < max_span_width:
        warn(
            f"The text encoder's windows overlap by {overlap} tokens, fewer than "
            f"max_span_width={max_span_width}: an entity longer than {overlap} tokens "
            "that crosses a window edge cannot be found. Set window - stride >= "
            f"{max_span_width} in the text encoder's config."
        )
    heads = PyTorchWrapper_v2(
        BinderHeads(
            linear_size,
            width_embedding_size,
            max_span_width,
            dropout,
            init_temperature,
            thresholds,
            gaussian=gaussian_embeddings,
            prompt=text_encoder.attrs["prompt"] is not None,
        ),
        convert_inputs=_heads_inputs,
        convert_outputs=_heads_outputs,
    )
    return Model(
        "binder",
        forward,
        init=init,
        layers=[text_encoder, type_encoder, heads],
        refs={"text_encoder": text_encoder, "type_encoder": type_encoder, "heads": heads},
        attrs={
            "max_span_width": max_span_width,
            "heads_learn_rate_scale": heads_learn_rate_scale,
            "type_encoder_learn_rate_scale": type_encoder_learn_rate_scale,
            "gaussian_embeddings": gaussian_embeddings,
            # Set by binder_ner from its loss: output the few-shot objectives' vectors in training.
            "embeddings": False,
            # (descriptions, weights fingerprint, type vectors): see _type_vectors.
            "type_cache": None,
            # (support and prompt, weights fingerprint, SupportVectors): see support_vectors.
            "support_cache": None,
        },
    )


def init(model: Model, X: Optional[InT] = None, Y=None) -> None:
    model.get_ref("text_encoder").initialize()
    model.get_ref("type_encoder").initialize()
    if X is not None and X[1]:
        # One pass to give the lazy head layers their input widths.
        model.predict(X)


def forward(model: Model, inputs: InT, is_train: bool) -> Tuple[BinderScores, Callable]:
    docs, descriptions, prompted, support, support_alone = BinderInput(*inputs)
    if support is not None and is_train:
        raise ValueError("binder_ner's support set serves prediction only; train on its Docs instead.")
    prompt = [text if written else None for text, written in zip(descriptions, prompted)]
    encoded, backprop_text = model.get_ref("text_encoder")((docs, prompt), is_train)
    types, backprop_types = _type_vectors(model, descriptions, is_train)
    if len(encoded.windows) == 0:
        empty = _empty_scores(encoded.windows, len(docs), len(descriptions), model)
        return empty, lambda d_scores: inputs
    vectors = None if support is None else support_vectors(model, support, prompt).tensors
    outputs, backprop_heads = model.get_ref("heads")(
        (encoded, types, model.attrs["embeddings"], vectors, support_alone), is_train
    )
    scores = BinderScores(*outputs, windows=encoded.windows, n_docs=len(docs))

    def backprop(d_scores: BinderScores) -> InT:
        d_hidden, d_types = backprop_heads(d_scores.tensors)
        backprop_text(d_hidden)
        backprop_types(d_types)
        return inputs

    return scores, backprop


def weights_fingerprint(modules: Iterable[torch.nn.Module]) -> torch.Tensor:
    """A sample of every weight of these modules: it differs whenever they
    were changed (an optimizer step, averaged parameters, a load), so a cache
    keyed on it never serves vectors of older weights, whichever path changed
    them. About 16 values a tensor: microseconds, against a forward pass."""
    # Plain floating-point tensors only: an int8 encoder's packed weights (tensor
    # subclasses without reshape) never change, as it cannot be trained.
    parameters = [
        p.detach() for module in modules for p in module.parameters()
        if type(p.data) is torch.Tensor and p.is_floating_point()
    ]
    return torch.cat([p.reshape(-1)[:: max(1, p.numel() // 16)].float() for p in parameters]).cpu()


def _heads_module(model: Model) -> BinderHeads:
    return model.get_ref("heads").shims[0]._model


def support_vectors(model: Model, support: SupportSpans, prompt: List[Optional[str]]) -> SupportVectors:
    """The support's mentions and other candidate spans in the span space,
    cached per support, prompt and weights of the text encoder and heads."""
    key = (support.key, tuple(prompt))
    text_encoder = model.get_ref("text_encoder")
    heads = _heads_module(model)
    fingerprint = weights_fingerprint([hf_objects(text_encoder).transformer, heads])
    cache = model.attrs["support_cache"]
    if cache is None or cache[0] != key or not torch.equal(cache[1], fingerprint):
        encoded = text_encoder.predict((list(support.docs), prompt))
        device = encoded.hidden.device
        windows = encoded.windows
        training = heads.training
        heads.eval()
        try:
            with torch.no_grad():
                spans = heads.span_vectors(
                    encoded.hidden.float(),
                    torch.from_numpy(windows.first_wp).to(device),
                    torch.from_numpy(windows.last_wp).to(device),
                )
        finally:
            heads.train(training)
        vectors = select_spans(spans, windows, support.gold)
        if vectors.n_missing:
            warn(
                f"{vectors.n_missing} support mention(s) are wider than max_span_width="
                f"{model.attrs['max_span_width']} tokens, start or end on a token without "
                "sub-words, or cross every window edge: they cannot be compared with and are "
                "left out of the support."
            )
        cache = (key, fingerprint, vectors)
        model.attrs["support_cache"] = cache
    return cache[2]


def _type_vectors(
    model: Model, descriptions: List[str], is_train: bool
) -> Tuple[torch.Tensor, Callable]:
    """Type [CLS] vectors: recomputed in training a trainable type encoder,
    else cached per description list and type encoder weights."""
    type_encoder = model.get_ref("type_encoder")
    if is_train and model.attrs["type_encoder_learn_rate_scale"] > 0:
        return type_encoder(descriptions, is_train)
    key = tuple(descriptions)
    fingerprint = weights_fingerprint([hf_objects(type_encoder).transformer])
    cache = model.attrs["type_cache"]
    if cache is None or cache[0] != key or not torch.equal(cache[1], fingerprint):
        cache = (key, fingerprint, type_encoder.predict(list(descriptions)))
        model.attrs["type_cache"] = cache
    return cache[2], lambda d_types: descriptions


def _empty_scores(windows: Windows, n_docs: int, n_types: int, model: Model) -> BinderScores:
    width = model.attrs["max_span_width"]
    by_token = torch.zeros((0, 0, n_types))
    by_window = torch.zeros((0, n_types))
    return BinderScores(
        by_token,
        by_token,
        torch.zeros((0, 0, width, n_types)),
        by_window,
        by_window,
        by_window,
        windows=windows,
        n_docs=n_docs,
    )


def _heads_inputs(
    model: Model, inputs: Tuple[EncodedWindows, torch.Tensor, bool, Optional[Support], bool], is_train: bool
) -> Tuple[ArgsKwargs, Callable]:
    encoded, types, embeddings, support, support_alone = inputs
    # Detached leaves: the heads' backward stops here and hands the gradients to
    # the encoders' own backprop callbacks.
    hidden = encoded.hidden.detach().requires_grad_(is_train)
    types = types.detach().requires_grad_(is_train)
    device = hidden.device
    first_wp = torch.from_numpy(encoded.windows.first_wp).to(device)
    last_wp = torch.from_numpy(encoded.windows.last_wp).to(device)
    prompt_label = None if encoded.prompt_label is None else torch.from_numpy(encoded.prompt_label).to(device)

    def backprop(d_inputs: ArgsKwargs) -> Tuple[torch.Tensor, torch.Tensor]:
        return d_inputs.args[0], d_inputs.args[1]

    args = (hidden, types, first_wp, last_wp, prompt_label, embeddings, support, support_alone)
    return ArgsKwargs(args=args, kwargs={}), backprop


def _heads_outputs(
    model: Model, inputs_outputs: Tuple, is_train: bool
) -> Tuple[Tuple[torch.Tensor, ...], Callable]:
    """The heads' outputs, None where absent; gradients come back for the present ones."""
    _, outputs = inputs_outputs
    present = [output for output in outputs if output is not None]

    def backprop(d_outputs: Tuple[torch.Tensor, ...]) -> ArgsKwargs:
        return ArgsKwargs(args=(present,), kwargs={"grad_tensors": list(d_outputs)})

    return outputs, backprop
