"""srsly's msgpack codec lists, kept between calls (spacy_binder.msgpack_codecs):
the same bytes and Docs as srsly's own lookup, and a codec registered later is used."""
import numpy
import spacy
import srsly
from spacy.tokens import DocBin, Span
from srsly.msgpack import msgpack_decoders

import spacy_binder  # noqa: F401  (keeps the codec lists)


def test_docs_with_span_groups_round_trip_through_a_docbin():
    nlp = spacy.blank("en")
    docs = []
    for text in ("IL-2 gene expression in T cells", "Alice met Bob in Paris"):
        doc = nlp(text)
        doc.spans["sc"] = [Span(doc, 0, 1, "A"), Span(doc, 0, 2, "B")]
        doc.spans["sc"].attrs["scores"] = [0.5, 0.25]
        doc.ents = [Span(doc, 0, 1, "A")]
        docs.append(doc)
    data = DocBin(docs=docs, store_user_data=True).to_bytes()
    read = list(DocBin(store_user_data=True).from_bytes(data).get_docs(nlp.vocab))
    assert [doc.to_bytes() for doc in read] == [doc.to_bytes() for doc in docs]
    assert [(s.start, s.end, s.label_) for s in read[0].spans["sc"]] == [(0, 1, "A"), (0, 2, "B")]
    assert read[0].spans["sc"].attrs["scores"] == [0.5, 0.25]
    array = numpy.arange(6, dtype="float32").reshape(2, 3)  # srsly's own numpy codec
    assert numpy.array_equal(srsly.msgpack_loads(srsly.msgpack_dumps({"a": array}))["a"], array)


def test_a_decoder_registered_later_is_used():
    assert getattr(msgpack_decoders.get_all, "kept", False)
    srsly.msgpack_loads(srsly.msgpack_dumps({"x": 1}))  # the lists are built
    seen = []

    def decode_marked(obj, chain=None):
        if isinstance(obj, dict) and "__marked__" in obj:
            seen.append(obj["__marked__"])
            return "decoded"
        return obj if chain is None else chain(obj)

    msgpack_decoders.register("spacy_binder_test_marked", func=decode_marked)
    assert srsly.msgpack_loads(srsly.msgpack_dumps({"__marked__": 7})) == "decoded" and seen == [7]
