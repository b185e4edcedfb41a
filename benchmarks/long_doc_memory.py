"""Peak RSS of binder_ner on one long document: python long_doc_memory.py PIPELINE N_WORDS"""
import json
import resource
import sys
import time

import spacy

sys.path.insert(0, __file__.rsplit("/", 2)[0] + "/tests")
from corpora import SHARED_DATA, read_genia  # noqa: E402

nlp = spacy.load(sys.argv[1])
n_words = int(sys.argv[2])
sentences = [eg.predicted.text for eg in read_genia(SHARED_DATA / "genia" / "dev.jsonl", nlp)]
text, i = [], 0
while sum(len(s.split()) for s in text) < n_words:
    text.append(sentences[i % len(sentences)])
    i += 1
doc = nlp.make_doc(" ".join(text))
nlp("warm up")
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
doc = nlp.get_pipe("binder_ner")(doc)
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({
    "words": len(doc),
    "entities": len(doc.spans["sc"]),
    "seconds": round(elapsed, 2),
    "peak_rss_mb": round(peak / 1024),
    "growth_mb": round((peak - before) / 1024),
}))
