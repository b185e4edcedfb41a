"""What a fresh process pays and prints before the first document."""
import subprocess
import sys

import pytest

from util import make_nlp

TIMEOUT = 300


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)


@pytest.mark.parametrize("module", ["spacy_binder", "spacy_binder.cli", "spacy_binder.annotate"])
def test_the_package_face_and_the_drivers_do_not_import_transformers(module):
    """The names of the package load on first use; the CLI and the annotate
    driver (which only hands work to worker processes) need no model code."""
    probe = run_python(
        f"import sys, {module}\n"
        "print(sorted(m for m in ('torch', 'transformers', 'spacy_transformers') if m in sys.modules))"
    )
    assert probe.returncode == 0, probe.stderr
    imported = set(eval(probe.stdout.strip().splitlines()[-1]))
    assert not imported & {"transformers", "spacy_transformers"}
    if module == "spacy_binder":
        assert "torch" not in imported
    lazy = run_python("import spacy_binder, sys; spacy_binder.BinderNER; print('transformers' in sys.modules)")
    assert lazy.returncode == 0 and lazy.stdout.strip() == "True", lazy.stderr  # loaded on first use


def test_loading_and_quantizing_print_nothing_from_torchao(tiny_bert, tmp_path):
    """torchao is imported by transformers' model code whenever it is installed;
    its log lines on a CPU-only torch are not the user's to act on."""
    nlp = make_nlp(tiny_bert)
    nlp.get_pipe("binder_ner").add_label("GENE", description="a gene")
    nlp.initialize()
    nlp.to_disk(tmp_path / "fp32")
    loaded = run_python(
        "import spacy\n"
        f"nlp = spacy.load({str(tmp_path / 'fp32')!r})\n"
        "import spacy_binder.quantize as q; q._torchao()\n"
        "nlp('the il-2 gene')\n"
        "import logging; print(logging.getLogger('torchao').level, logging.getLogger('torch.utils._pytree').level)"
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "Failed to load" not in loaded.stderr and "register_constant" not in loaded.stderr, loaded.stderr
    assert loaded.stdout.split() == ["0", "0"]  # the loggers are as they were: only the import is quiet
