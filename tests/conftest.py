import os
import sys
from pathlib import Path
from typing import List, Tuple

# Under pytest-xdist the machine's cores are shared out among the workers, and
# among the processes they start: oversubscribed torch threads spin-wait, and
# two workers with every core each run several times slower than one alone.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ["OMP_NUM_THREADS"] = str(max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example
from thinc.api import Config, fix_random_seed

sys.path.insert(0, str(Path(__file__).parent))
from tiny_bert import build_tiny_bert  # noqa: E402

from spacy_binder import errors  # noqa: E402
from spacy_binder.component import DEFAULT_BINDER_MODEL  # noqa: E402

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


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    """Slow tests first: pytest-xdist (--dist loadfile --no-loadscope-reorder)
    then starts each on its own worker instead of leaving them for last."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def fresh_warnings():
    """Each test sees the warnings said once per process afresh."""
    errors._said.clear()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("encoders") / "tiny-bert")


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


def make_nlp(encoder: Path, model: dict = {}, **component) -> Language:
    # The heads' eager layers (width embedding, temperatures) are initialised
    # here: seeded, so that a test's model does not depend on the tests before it.
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("binder_ner", config={"model": model_config(encoder, **model), **component})
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


@pytest.fixture(scope="session")
def trained_nested(tiny_bert, tmp_path_factory) -> Language:
    """A tiny-BERT binder_ner overfit on NESTED_DATA (shared, do not mutate)."""
    return overfit_nested(tiny_bert)


def described_nlp(encoder: Path, model: dict = {}, **component) -> Language:
    """A binder_ner with DESCRIPTIONS' types, not yet initialized."""
    nlp = make_nlp(encoder, model, **component)
    ner = nlp.get_pipe("binder_ner")
    for label, description in DESCRIPTIONS.items():
        ner.add_label(label, description=description)
    return nlp


def overfit_nested(encoder: Path, model: dict = {}, steps: int = 250, **component) -> Language:
    """A binder_ner with DESCRIPTIONS' types, overfit on NESTED_DATA."""
    import warnings

    nlp = described_nlp(encoder, model, **component)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(nlp, make_examples(nlp), steps=steps)
    return nlp
