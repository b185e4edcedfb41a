"""`spacy_binder.LabelAwareModel.v1`: binder_ner's text encoder and Gaussian heads, per word.

Each word is represented by its first sub-word, read from the window where it
lies farthest from an edge (the most context on both sides). With the label
prompt, every window is followed by one `[CLS] word [SEP]` block per label,
"none" (the O label) first, and a label's vector is the state of the `[CLS]`
in front of its word, as in the authors' code. Words and labels go through the
same Gaussian heads (CONTaiNER's: mean `Linear(ReLU(h))`, variance
`ELU(Linear(ReLU(h))) + 1`); nearest-neighbour decoding reads the unit
encoder states instead, as both released codes do.
"""
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import ArgsKwargs, Model, PyTorchWrapper_v2

from ..batch import EncodedWindows, Windows
from ..encoders import TextInput, hf_objects
from ..prompt import LabelPrompt

# The authors' layout: `[CLS] text [SEP] [CLS] none [SEP] [CLS] person [SEP] ...`.
# All of it in the text's segment (token type 0), as the authors feed it.
LABEL_PROMPT = LabelPrompt(template="{cls} {description}", separator=" {sep} ", one_segment=True)
# The O label's word, first in the prompt.
OUTSIDE_WORD = "none"
# Small enough not to move a variance of 1, large enough to keep 1/var finite.
MIN_VARIANCE = 1e-6

# The docs, and the words of the prompt ("none" first; empty without a prompt).
InT = Tuple[List[Doc], Sequence[str]]


@dataclass
class TokenVectors:
    """One row per word that has a sub-word: where it is, and its vectors.

    states: unit encoder states (N, H), for nearest-neighbour decoding;
    mu / var: its Gaussian (N, D); label_mu / label_var: the Gaussian of each
    prompt label in each window (W, L, D; L = 0 without a prompt).
    """

    doc_index: numpy.ndarray  # (N,)
    token_index: numpy.ndarray  # (N,) token of its Doc
    window: numpy.ndarray  # (N,) window read
    states: torch.Tensor
    mu: torch.Tensor
    var: torch.Tensor
    label_mu: torch.Tensor
    label_var: torch.Tensor

    def __len__(self) -> int:
        return len(self.doc_index)

    @property
    def trained(self) -> Tuple[torch.Tensor, ...]:
        """The outputs the losses read (and send gradients to), in GaussianHeads'
        output order after the states."""
        return self.mu, self.var, self.label_mu, self.label_var


class GaussianHeads(torch.nn.Module):
    """Word and label Gaussians from encoder states (CONTaiNER's heads)."""

    def __init__(self, size: int, dropout: float):
        super().__init__()
        self.dropout = torch.nn.Dropout(dropout)
        # Lazy: the encoder's width is known once it is loaded (init's first pass).
        self.mean = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.LazyLinear(size))
        self.variance = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.LazyLinear(size))

    def gaussians(self, hidden: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        hidden = self.dropout(hidden)
        return self.mean(hidden), torch.nn.functional.elu(self.variance(hidden)) + 1.0 + MIN_VARIANCE

    def forward(
        self, hidden: torch.Tensor, window: torch.Tensor, wordpiece: torch.Tensor, label_position: torch.Tensor
    ) -> Tuple[torch.Tensor, ...]:
        words = hidden[window, wordpiece]
        mu, var = self.gaussians(words)
        labels = torch.gather(hidden, 1, label_position[..., None].expand(-1, -1, hidden.shape[-1]))
        label_mu, label_var = self.gaussians(labels)
        states = torch.nn.functional.normalize(words.detach(), dim=-1)
        return states, mu, var, label_mu, label_var


@registry.architectures("spacy_binder.LabelAwareModel.v1")
def build_label_aware_model(
    text_encoder: Model[TextInput, EncodedWindows],
    embedding_size: int = 128,
    dropout: float = 0.1,
    prompt: bool = True,
) -> Model[InT, TokenVectors]:
    """Word vectors for the label-aware objectives and nearest-neighbour decoding.

    prompt: write each window's `[CLS] label [SEP]` blocks (the paper's suffix
    prompt); false gives CONTaiNER's model, the text alone. The text encoder is
    binder_ner's `spacy_binder.TextEncoder.v1`, with no prompt of its own.
    """
    if text_encoder.attrs["prompt"] is not None:
        raise ValueError(
            "spacy_binder.LabelAwareModel.v1 writes its own label prompt: set the text encoder's "
            "prompt to null and use the model's `prompt = true` instead."
        )
    if prompt:
        text_encoder.attrs["prompt"] = LABEL_PROMPT
    heads = PyTorchWrapper_v2(
        GaussianHeads(embedding_size, dropout),
        convert_inputs=_heads_inputs,
        convert_outputs=_heads_outputs,
    )
    return Model(
        "label_aware",
        forward,
        init=init,
        layers=[text_encoder, heads],
        refs={"text_encoder": text_encoder, "heads": heads},
        attrs={"prompt": prompt},
    )


def init(model: Model, X: Optional[InT] = None, Y=None) -> None:
    text_encoder = model.get_ref("text_encoder")
    text_encoder.initialize()
    heads: GaussianHeads = model.get_ref("heads").shims[0]._model
    transformer = hf_objects(text_encoder).transformer
    with torch.no_grad():  # gives the lazy layers the encoder's width, on its device
        heads.gaussians(torch.zeros((1, transformer.config.hidden_size), device=transformer.device))


def word_owners(windows: Windows) -> Tuple[numpy.ndarray, ...]:
    """For every (Doc, token) some window gives a sub-word: the window where the
    token lies farthest from an edge (the first such window on a tie), and the
    token's first sub-word there. Returns doc, token, window, sub-word arrays
    sorted by Doc and token."""
    w, t = numpy.nonzero(windows.first_wp >= 0)  # -1 past each window's length too
    doc = windows.doc_index[w]
    token = windows.start[w] + t
    centrality = numpy.minimum(t, windows.length[w] - 1 - t)
    # Sorted by doc, token, then most central first, earliest window first.
    order = numpy.lexsort((w, -centrality, token, doc))
    doc, token, w, t = doc[order], token[order], w[order], t[order]
    first = numpy.ones(len(doc), dtype=bool)
    first[1:] = (doc[1:] != doc[:-1]) | (token[1:] != token[:-1])
    return doc[first], token[first], w[first], windows.first_wp[w[first], t[first]]


def label_positions(prompt_label: Optional[numpy.ndarray], n_labels: int, n_windows: int) -> numpy.ndarray:
    """(W, L): the first prompt sub-word of each label in each window (its `[CLS]`)."""
    if n_labels == 0:
        return numpy.zeros((n_windows, 0), dtype="int64")
    found = prompt_label[:, :, None] == numpy.arange(n_labels)[None, None, :]
    if not found.any(axis=1).all():
        raise ValueError("A label of the prompt has no sub-word in some window: the prompt was cut.")
    return found.argmax(axis=1)


def forward(model: Model, inputs: InT, is_train: bool) -> Tuple[TokenVectors, Callable]:
    docs, words = inputs
    words = list(words) if model.attrs["prompt"] else []
    encoded, backprop_text = model.get_ref("text_encoder")((docs, words), is_train)
    windows = encoded.windows
    if len(windows) == 0:  # no text at all
        none = numpy.zeros((0,), dtype="int64")
        empty = torch.zeros((0, 0))
        return TokenVectors(none, none, none, empty, empty, empty, empty, empty), lambda d: inputs
    doc, token, window, wordpiece = word_owners(windows)
    labels = label_positions(encoded.prompt_label, len(words), len(windows))
    outputs, backprop_heads = model.get_ref("heads")((encoded.hidden, window, wordpiece, labels), is_train)
    vectors = TokenVectors(doc, token, window, *outputs)

    def backprop(d_trained: Tuple[torch.Tensor, ...]) -> InT:
        backprop_text(backprop_heads(d_trained))
        return inputs

    return vectors, backprop


def _heads_inputs(model: Model, inputs: Tuple, is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    hidden, window, wordpiece, labels = inputs
    # A detached leaf: the heads' backward stops here and hands the gradient to
    # the text encoder's own backprop.
    hidden = hidden.detach().float().requires_grad_(is_train)
    device = hidden.device
    args = (
        hidden,
        torch.from_numpy(window).to(device),
        torch.from_numpy(wordpiece).to(device),
        torch.from_numpy(labels).to(device),
    )
    return ArgsKwargs(args=args, kwargs={}), lambda d_inputs: d_inputs.args[0]


def _heads_outputs(model: Model, inputs_outputs: Tuple, is_train: bool) -> Tuple[Tuple[torch.Tensor, ...], Callable]:
    """The heads' outputs; gradients come back for the Gaussians (not the unit states)."""
    _, outputs = inputs_outputs

    def backprop(d_trained: Tuple[torch.Tensor, ...]) -> ArgsKwargs:
        return ArgsKwargs(args=(list(outputs[1:]),), kwargs={"grad_tensors": list(d_trained)})

    return outputs, backprop
