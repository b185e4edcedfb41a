"""Helpers shared by the tests (data, pipeline builders, training): imported as
`from util import ...`. conftest.py keeps only fixtures and hooks."""
import subprocess
import sys
import warnings
from pathlib import Path
from typing import List, Optional, Tuple

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example
from thinc.api import Config, fix_random_seed

from spacy_binder.component import DEFAULT_BINDER_MODEL
from spacy_binder.errors import BinderWarning

# Our own nested toy sentences: (text, [(start, end, label), ...]) over spaCy tokens.
NESTED_DATA: List[Tuple[str, List[Tuple[int, int, str]]]] = [
    ("the il-2 gene is expressed in human t cells", [(1, 2, "PROTEIN"), (1, 3, "DNA"), (6, 9, "CELL")]),
    ("nf-kb binding site was found in jurkat cells", [(0, 1, "PROTEIN"), (0, 3, "DNA"), (6, 8, "CELL")]),
    ("we found il-2 receptor alpha in activated t cells", [(2, 5, "PROTEIN"), (2, 3, "PROTEIN"), (6, 9, "CELL")]),
    ("the kinase was induced in human monocytes", [(1, 2, "PROTEIN"), (5, 7, "CELL")]),
    ("il-2 mrna levels in b cells", [(0, 2, "RNA"), (0, 1, "PROTEIN"), (3, 5, "CELL")]),
    ("the nf-kb promoter region is activated by il-2", [(1, 4, "DNA"), (1, 2, "PROTEIN"), (7, 8, "PROTEIN")]),
    ("transcription factor binding in jurkat cells", [(0, 2, "PROTEIN"), (4, 6, "CELL")]),
    ("alpha receptor expression was found in lymphocytes", [(0, 2, "PROTEIN"), (6, 7, "CELL")]),
    ("the beta kinase gene is expressed in t cells", [(1, 3, "PROTEIN"), (1, 4, "DNA"), (7, 9, "CELL")]),
    ("human b cells showed il-2 mrna", [(0, 3, "CELL"), (4, 6, "RNA"), (4, 5, "PROTEIN")]),
]

DESCRIPTIONS = {
    "PROTEIN": "a protein, protein family, complex or subunit",
    "DNA": "a gene, promoter, binding site or other dna region",
    "RNA": "an rna or mrna molecule",
    "CELL": "a cell type, cell line or cell population",
}


def model_config(encoder: Path, **overrides) -> Config:
    model = Config().from_str(DEFAULT_BINDER_MODEL)["model"]
    model["text_encoder"]["name"] = model["type_encoder"]["name"] = str(encoder)
    for key, value in overrides.items():
        section = model
        *path, last = key.split(".")
        for part in path:
            section = section[part]
        section[last] = value
    return model


def make_nlp(encoder: Path, model: Optional[dict] = None, **component) -> Language:
    # The heads' eager layers (width embedding, temperatures) are initialised
    # here: seeded, so that a test's model does not depend on the tests before it.
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("binder_ner", config={"model": model_config(encoder, **(model or {})), **component})
    return nlp


def make_examples(nlp: Language, data=NESTED_DATA, key: str = "sc", ents: bool = False) -> List[Example]:
    examples = []
    for text, spans in data:
        reference = nlp.make_doc(text)
        reference.spans[key] = [Span(reference, s, e, label) for s, e, label in spans]
        if ents:
            reference.ents = list(reference.spans[key])
        examples.append(Example(nlp.make_doc(text), reference))
    return examples


def train(nlp: Language, examples: List[Example], steps: int = 80, lr: float = 1e-3) -> None:
    """Overfit `examples`, one full batch a step."""
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = lr
    for _ in range(steps):
        nlp.update(examples, sgd=optimizer, drop=0.0)


def repeated(example, times: int):
    """One example's text `times` over, as a single document."""
    text, spans = example
    n = len(text.split())
    return (" ".join([text] * times), [(s + r * n, e + r * n, l) for r in range(times) for s, e, l in spans])


def spans_with_scores(doc: Doc) -> List[Tuple[int, int, str, float]]:
    group = doc.spans["sc"]
    return [(s.start, s.end, s.label_, score) for s, score in zip(group, group.attrs["scores"])]


def predicted(doc: Doc, key: str = "sc") -> List[Tuple[int, int, str]]:
    return sorted((s.start, s.end, s.label_) for s in doc.spans[key])


def described_nlp(encoder: Path, model: Optional[dict] = None, **component) -> Language:
    """A binder_ner with DESCRIPTIONS' types, not yet initialized."""
    nlp = make_nlp(encoder, model, **component)
    ner = nlp.get_pipe("binder_ner")
    for label, description in DESCRIPTIONS.items():
        ner.add_label(label, description=description)
    return nlp


def overfit_nested(encoder: Path, model: Optional[dict] = None, steps: int = 250, **component) -> Language:
    """A binder_ner with DESCRIPTIONS' types, overfit on NESTED_DATA."""
    nlp = described_nlp(encoder, model, **component)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=BinderWarning)
        train(nlp, make_examples(nlp), steps=steps)
    return nlp


def copy_pipeline(nlp: Language) -> Language:
    """An independent copy (config and weights), for a test that changes a shared pipeline."""
    return spacy.blank(nlp.lang, config=nlp.config).from_bytes(nlp.to_bytes())


# Serialization round trips: the toy sentences, an empty and a two-window document.
ROUND_TRIP_TEXTS = [text for text, _ in NESTED_DATA] + ["", "the kinase gene " * 60]


def annotations(nlp: Language):
    """Spans and scores of ROUND_TRIP_TEXTS, to compare pipelines with."""
    return [
        (predicted(doc), doc.spans["sc"].attrs["scores"].tolist())
        for doc in nlp.pipe(ROUND_TRIP_TEXTS, batch_size=4)
    ]


def int8_encoder(nlp: Language):
    """The `Int8Transformer` of an int8 pipeline's binder_ner text encoder."""
    return nlp.get_pipe("binder_ner").model.get_ref("text_encoder").get_ref("transformer").shims[0]._model


def package_and_load(pipeline: Path, tmp_path: Path, name: str) -> Language:
    """`spacy package` a pipeline folder as a wheel, install it aside and load it by name."""
    out = tmp_path / "packages"
    out.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "package", str(pipeline), str(out), "--name", name,
         "--version", "0.0.1", "--build", "wheel", "--force"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    wheel = next(out.glob("**/*.whl"))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        timeout=600,
    )
    sys.path.insert(0, str(target))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=BinderWarning)
            return spacy.load(f"en_{name}")
    finally:
        sys.path.remove(str(target))
