"""NNShot (Yang & Katiyar 2020) on binder_ner's source-trained text encoder.

Each token is represented by its first sub-word's hidden state (L2-normalised),
read from the window that holds it first. Support tokens carry IO tags (the
label of the outermost gold span over them, else O); every test token takes
the tag of its nearest support token, and each run of equal non-O tags is one
predicted mention. Nested gold cannot be expressed in IO tags, so a nested
target's inner mentions are missed by design.
"""
from typing import List, Tuple

import torch
from spacy.language import Language
from spacy.tokens import Doc, Span

from common import encode

OUTSIDE = ""


def token_vectors(nlp: Language, docs: List[Doc]) -> List[torch.Tensor]:
    """(n_tokens, width) per Doc; tokens without sub-words get zero vectors."""
    out: List[torch.Tensor] = []
    for batch, encoded in encode(nlp.get_pipe("binder_ner"), docs):
        width = encoded.hidden.shape[-1]
        vectors = [torch.zeros((len(doc), width)) for doc in batch]
        seen = [torch.zeros(len(doc), dtype=torch.bool) for doc in batch]
        windows = encoded.windows
        for w in range(len(windows)):
            d, start, length = int(windows.doc_index[w]), int(windows.start[w]), int(windows.length[w])
            first_wp = torch.from_numpy(windows.first_wp[w, :length])
            fresh = (first_wp >= 0) & ~seen[d][start : start + length]
            positions = torch.nonzero(fresh).flatten()
            vectors[d][start + positions] = encoded.hidden[w, first_wp[positions]].float()
            seen[d][start + positions] = True
        out.extend(torch.nn.functional.normalize(v, dim=-1) for v in vectors)
    return out


def io_tags(doc: Doc, spans_key: str) -> List[str]:
    """The label of the outermost gold span over each token, else OUTSIDE."""
    tags = [OUTSIDE] * len(doc)
    for span in sorted(doc.spans[spans_key], key=lambda s: len(s)):
        for i in range(span.start, span.end):
            tags[i] = span.label_
    return tags


def tags_to_spans(doc: Doc, tags: List[str]) -> List[Span]:
    spans, start = [], None
    for i, tag in enumerate(tags + [OUTSIDE]):
        if start is not None and tag != tags[start]:
            spans.append(Span(doc, start, i, label=tags[start]))
            start = None
        if start is None and tag != OUTSIDE:
            start = i
    return spans


def nnshot_predict(
    nlp: Language, support: List[Doc], docs: List[Doc], spans_key: str = "sc"
) -> Tuple[List[Doc], int]:
    """Set doc.spans[spans_key] on `docs` by nearest support token; returns docs, support tokens."""
    support_vectors = torch.cat(token_vectors(nlp, support))
    support_tags = [tag for doc in support for tag in io_tags(doc, spans_key)]
    for doc, vectors in zip(docs, token_vectors(nlp, docs)):
        if len(doc) == 0:
            doc.spans[spans_key] = []
            continue
        nearest = (vectors @ support_vectors.T).argmax(dim=1).tolist()
        has_vector = (vectors.abs().sum(dim=1) > 0).tolist()
        tags = [support_tags[j] if ok else OUTSIDE for j, ok in zip(nearest, has_vector)]
        doc.spans[spans_key] = tags_to_spans(doc, tags)
    return docs, len(support_tags)
