"""Readers for the shared real corpora used by the slow tests (not shipped data)."""
from pathlib import Path
from typing import List, Optional, Tuple

import spacy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import fix_random_seed

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


def genia_pipeline(n_train: int) -> Tuple[Language, List[Example]]:
    """A default binder_ner with GENIA's types, initialized on `n_train` sentences."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    ner = nlp.add_pipe("binder_ner")
    for label, description in GENIA_DESCRIPTIONS.items():
        ner.add_label(label, description=description)
    train = read_genia(SHARED_DATA / "genia" / "train.jsonl", nlp, n_train)
    nlp.initialize(lambda: train)
    return nlp, train
