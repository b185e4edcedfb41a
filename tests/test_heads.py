import pytest
import torch
from torch.nn.functional import normalize

from spacy_binder.heads import BinderHeads, SpanParts, _support_margin


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
    assert torch.allclose(SpanParts(a, b, c, ends).cosines(types), expected, atol=1e-6)


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


def test_nearest_is_the_best_dense_cosine_per_label_across_chunks():
    torch.manual_seed(0)
    n_windows, n_tokens, width, max_width = 2, 7, 8, 3
    a, b = torch.randn(n_windows, n_tokens, width), torch.randn(n_windows, n_tokens, width)
    c = torch.randn(max_width, width)
    ends = (torch.arange(n_tokens)[:, None] + torch.arange(max_width)).clamp(max=n_tokens - 1)
    vectors = normalize(torch.randn(150, width), dim=-1)  # more than one chunk
    labels = torch.randint(0, 2, (150,))
    dense = dense_span_cosines(a, b, c, ends, vectors)
    nearest = SpanParts(a, b, c, ends).nearest(vectors, labels, 3)
    for label in (0, 1):
        assert torch.allclose(nearest[..., label], dense[..., labels == label].amax(-1), atol=1e-6)
    assert torch.isinf(nearest[..., 2]).all()  # no vector of label 2


def test_a_support_mention_is_its_own_nearest_neighbour():
    torch.manual_seed(0)
    heads = BinderHeads(16, 8, max_span_width=4, dropout=0.1, init_temperature=0.07)
    hidden, types = torch.randn(1, 12, 20), torch.randn(2, 20)
    first = torch.arange(10)[None]
    heads(hidden, types, first, first)  # materialise the lazy layers
    heads.eval()
    with torch.no_grad():
        spans = heads.span_vectors(hidden, first, first)  # (1, 10, 4, 16)
        mention = spans[0, 3, 1]  # tokens 3-4, type 1
        outside = torch.stack([spans[0, 0, 0], spans[0, 6, 2]])
        support = (mention[None], torch.tensor([1]), outside)
        margin = heads(hidden, types, first, first, support=support)[-1]
    scale = heads.log_inv_temperature.exp()[2]
    expected = (1 - torch.max(outside @ mention)) * scale
    assert torch.allclose(margin[0, 3, 1, 1], expected, atol=1e-4)
    assert torch.isinf(margin[..., 0]).all()  # type 0 has no support mention
    assert margin[0, 0, 0, 1] < 0  # a support outside span is closer to itself


@pytest.mark.parametrize(
    "n_windows,n_tokens,described_share",
    [(3, 9, 0.1), (8, 24, 0.1), (8, 24, 0.0)],  # fewer open spans than probes; more (a second round); support alone
)
def test_support_margin_is_exact_wherever_a_support_weight_could_predict(n_windows, n_tokens, described_share):
    """The pruned search for the nearest other span: wherever its margin
    differs from the brute-force one, both are <= 0 and the description is below
    its threshold, so no weight in [0, 1] predicts the span either way."""
    torch.manual_seed(1)
    width, max_width, n_types = 8, 4, 3
    a, b = torch.randn(n_windows, n_tokens, width), torch.randn(n_windows, n_tokens, width)
    c = torch.randn(max_width, width)
    ends = (torch.arange(n_tokens)[:, None] + torch.arange(max_width)).clamp(max=n_tokens - 1)
    parts = SpanParts(a, b, c, ends)
    mentions = normalize(torch.randn(6, width), dim=-1)
    mention_types = torch.tensor([0, 0, 1, 1, 1, 0])  # type 2 has none
    outside = normalize(torch.randn(700, width), dim=-1)
    described = torch.rand(n_windows, n_tokens, max_width, n_types) < described_share
    margin = _support_margin(parts, (mentions, mention_types, outside), described)
    dense = dense_span_cosines(a, b, c, ends, torch.cat([mentions, outside]))
    exact = torch.stack([dense[..., :6][..., mention_types == k].amax(-1) for k in (0, 1)], -1)
    exact = exact - dense[..., 6:].amax(-1, keepdim=True)
    differs = ~torch.isclose(margin[..., :2], exact, atol=1e-5)
    assert differs.any()  # the pruning did prune
    assert (margin[..., :2][differs] <= 0).all() and (exact[differs] <= 0).all()
    assert not described[..., :2][differs].any()
    assert torch.isinf(margin[..., 2]).all()
