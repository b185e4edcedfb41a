"""Render predictions on dev documents with displaCy into an HTML page.

python scripts/visualize.py MODEL DEV.spacy OUTPUT.html [--n-docs 25]
Nested pipelines use style="span", flat ones style="ent". The rendered spans
are also listed as [text, label] pairs in OUTPUT.spans.json, for checking.
"""
import json
from pathlib import Path

import spacy
import typer
from spacy import displacy
from spacy.tokens import Doc, DocBin


def main(model: Path, corpus: Path, output: Path, n_docs: int = 25) -> None:
    nlp = spacy.load(model)
    ner = nlp.get_pipe("binder_ner")
    gold = list(DocBin().from_disk(corpus).get_docs(nlp.vocab))[:n_docs]
    docs = [Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc]) for doc in gold]
    docs = list(nlp.pipe(docs))
    style = "span" if ner.cfg["mode"] == "nested" else "ent"
    html = displacy.render(docs, style=style, page=True, options={"spans_key": ner.cfg["spans_key"]})
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(html, encoding="utf8")
    spans = [[span.text, span.label_] for doc in docs for span in doc.spans[ner.cfg["spans_key"]]]
    output.with_suffix(".spans.json").write_text(json.dumps(spans))
    typer.echo(f"{output}: {len(docs)} documents, {len(spans)} predicted spans ({style} style)")


if __name__ == "__main__":
    typer.run(main)
