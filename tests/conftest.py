import os
import sys
from pathlib import Path
from typing import List

# Under pytest-xdist the machine's cores are shared out among the workers, and
# among the processes they start: oversubscribed torch threads spin-wait, and
# two workers with every core each run several times slower than one alone.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ["OMP_NUM_THREADS"] = str(max(1, _cores // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))

import pytest
from spacy.language import Language

sys.path.insert(0, str(Path(__file__).parent))
from tiny_bert import build_tiny_bert, build_tiny_mpnet  # noqa: E402
from util import copy_pipeline, overfit_nested  # noqa: E402

from spacy_binder import errors  # noqa: E402


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


@pytest.fixture(scope="session")
def tiny_mpnet(tmp_path_factory) -> Path:
    return build_tiny_mpnet(tmp_path_factory.mktemp("encoders") / "tiny-mpnet")


@pytest.fixture(params=["tiny_bert", "tiny_mpnet"])
def any_encoder(request) -> Path:
    """Each encoder shape spacy-binder supports: BERT's [CLS]/[SEP] with token
    types, and MPNet's RoBERTa-like <s>/</s> pairs without them."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def trained_nested(tiny_bert, tmp_path_factory) -> Language:
    """A tiny-BERT binder_ner overfit on NESTED_DATA (shared, do not mutate)."""
    return overfit_nested(tiny_bert)


@pytest.fixture
def nested_copy(trained_nested) -> Language:
    """A copy of trained_nested of a test's own, for a test that trains or changes it."""
    return copy_pipeline(trained_nested)
