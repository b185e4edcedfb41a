"""Readers for the shared real corpora used by the slow tests (not shipped data)."""
from pathlib import Path
from typing import List, Optional

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example

from spacy_binder import read_type_descriptions
from spacy_binder.convert import convert_corpus

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

ENTITY_TYPES = Path(__file__).resolve().parents[1] / "assets" / "entity_types"
GENIA_DESCRIPTIONS = read_type_descriptions(ENTITY_TYPES / "genia.jsonl")


def read_genia(path: Path, nlp: Language, limit: Optional[int] = None) -> List[Example]:
    """GENIA sentences as Examples with gold spans in doc.spans["sc"]."""
    docs, _ = convert_corpus("jsonl", path)
    return [
        Example(Doc(nlp.vocab, words=[t.text for t in doc], spaces=[bool(t.whitespace_) for t in doc]), doc)
        for doc in docs[:limit]
    ]
