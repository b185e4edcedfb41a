"""Readers for the shared real corpora used by the slow tests (not shipped data)."""
from pathlib import Path
from typing import List, Optional

import srsly
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

GENIA_DESCRIPTIONS = {
    "protein": "a protein, protein family or complex, or one of its subunits or domains",
    "DNA": "a gene, dna sequence, promoter, enhancer, binding site or other dna region",
    "RNA": "an rna molecule such as a messenger rna transcript",
    "cell_type": "a kind of cell in the body, such as t cells, monocytes or lymphocytes",
    "cell_line": "an immortalised cell line grown in culture, such as jurkat or hela cells",
}


def read_genia(path: Path, nlp: Language, limit: Optional[int] = None, key: str = "sc") -> List[Example]:
    examples = []
    for record in srsly.read_jsonl(path):
        if limit is not None and len(examples) >= limit:
            break
        reference = Doc(nlp.vocab, words=record["tokens"])
        reference.spans[key] = [
            Span(reference, m["start"], m["end"], m["entity_type"]) for m in record["entity_mentions"]
        ]
        examples.append(Example(Doc(nlp.vocab, words=record["tokens"]), reference))
    return examples
