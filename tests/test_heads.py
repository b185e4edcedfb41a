import torch
from torch.nn.functional import normalize

from spacy_binder.heads import BinderHeads, _span_cosines


def dense_span_cosines(a, b, c, ends, types):
    """The paper's formula: normalise each span vector, then compare with the types."""
    return normalize(a[:, :, None] + b[:, ends] + c, dim=-1) @ types.T


def test_span_cosines_match_the_dense_span_vectors():
    torch.manual_seed(0)
    n_windows, n_tokens, width, max_width, n_types = 3, 11, 16, 5, 4
    a, b = torch.randn(n_windows, n_tokens, width), torch.randn(n_windows, n_tokens, width)
    c = torch.randn(max_width, width)
    types = normalize(torch.randn(n_types, width), dim=-1)
    ends = (torch.arange(n_tokens)[:, None] + torch.arange(max_width)).clamp(max=n_tokens - 1)
    expected = dense_span_cosines(a, b, c, ends, types)
    assert torch.allclose(_span_cosines(a, b, c, ends, types), expected, atol=1e-6)


def test_prediction_mode_scores_equal_the_training_formula_without_dropout():
    torch.manual_seed(0)
    heads = BinderHeads(16, 8, max_span_width=5, dropout=0.3, init_temperature=0.07)
    hidden, types = torch.randn(2, 12, 20), torch.randn(3, 20)
    first = torch.arange(10).repeat(2, 1)
    heads(hidden, types, first, first)  # materialise the lazy layers
    heads.eval()
    span = heads(hidden, types, first, first)[2]
    with torch.no_grad():
        ends = (torch.arange(10)[:, None] + torch.arange(5)).clamp(max=9)
        h = hidden[torch.arange(2)[:, None], first]
        expected = dense_span_cosines(
            heads.span_start(h), heads.span_end(h), heads.span_width(heads.width_embedding.weight),
            ends, normalize(heads.type_span(types), dim=-1),
        ) * heads.log_inv_temperature.exp()[2]
    assert torch.allclose(span, expected, atol=1e-5)
