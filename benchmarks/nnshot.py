"""NNShot (Yang & Katiyar 2020) on binder_ner's source-trained text encoder.

Each token is represented by its first sub-word's hidden state (L2-normalised),
read from the window where it has most context (label_aware_ner's `word_owners`). Support tokens carry IO tags (the
label of the outermost gold span over them, else O); every test token takes
the tag of its nearest support token, and each run of equal non-O tags is one
predicted mention (label_aware_ner's decoding, `spacy_binder.label_aware.decode`).
Nested gold cannot be expressed in IO tags, so a nested target's inner mentions
are missed by design.
"""
from typing import List, Tuple

import numpy
import torch
from spacy.language import Language
from spacy.tokens import Doc

from common import encode
from spacy_binder.label_aware.decode import OUTSIDE, io_spans, io_tags, nearest_support
from spacy_binder.label_aware.model import word_owners


def token_vectors(nlp: Language, docs: List[Doc]) -> List[torch.Tensor]:
    """(n_tokens, width) unit vectors per Doc, each token read where label_aware_ner
    reads it (`word_owners`); tokens without sub-words get zero vectors."""
    out: List[torch.Tensor] = []
    for batch, encoded in encode(nlp.get_pipe("binder_ner"), docs):
        doc_index, token, window, wordpiece = word_owners(encoded.windows)
        states = torch.nn.functional.normalize(encoded.hidden[window, wordpiece].float(), dim=-1)
        for d, doc in enumerate(batch):
            vectors = states.new_zeros((len(doc), states.shape[-1]))
            rows = numpy.flatnonzero(doc_index == d)
            vectors[token[rows]] = states[rows]
            out.append(vectors)
    return out


def nnshot_predict(
    nlp: Language, support: List[Doc], docs: List[Doc], spans_key: str = "sc"
) -> Tuple[List[Doc], int]:
    """Set doc.spans[spans_key] on `docs` by nearest support token; returns docs, support tokens."""
    labels = ["", *sorted({span.label_ for doc in support for span in doc.spans[spans_key]})]
    index = {label: k for k, label in enumerate(labels) if k}
    support_vectors = torch.cat(token_vectors(nlp, support))
    support_tags = torch.tensor([tag for doc in support for tag in io_tags(doc, doc.spans[spans_key], index)])
    for doc, vectors in zip(docs, token_vectors(nlp, docs)):
        found = nearest_support(vectors, support_vectors, support_tags)
        tags = torch.where(vectors.abs().sum(dim=1) > 0, found, OUTSIDE)  # no sub-words: O
        doc.spans[spans_key] = io_spans(doc, tags.tolist(), labels)
    return docs, len(support_tags)
