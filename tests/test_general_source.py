"""A smoke run of the `general` workflow (`spacy project run general`) and of the leave-one-out benchmark
(benchmarks/zeroshot_sources.py): a few Docs per corpus, the tiny encoder, a few steps."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import srsly
from spacy.tokens import DocBin

from corpora import SHARED_DATA
from spacy_binder.batch import SCOPE_ATTR

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ALL_TYPES = {"PER", "ORG", "LOC", "MISC", "Disease", "Chemical", "protein", "DNA", "RNA", "cell_type", "cell_line"}


# The corpora's files (project/scripts/corpora.py), cut to their first sentences in the test's data_dir.
FILES = [
    *(f"conll2003/{split}.txt" for split in ("train", "dev", "test")),
    *(f"{name}/{split}.tsv" for name in ("ncbi_disease", "bc5cdr") for split in ("train", "devel", "test")),
    *(f"genia/{split}.jsonl" for split in ("train", "dev")),
]


def first_sentences(data_dir: Path, n: int = 40) -> Path:
    for name in FILES:
        lines = (SHARED_DATA / name).read_text(encoding="utf8").splitlines()
        if name.endswith(".jsonl"):
            kept = lines[:n]
        else:
            ends = [i for i, line in enumerate(lines) if not line.strip()]
            kept = lines[: ends[n - 1] + 1]
        (data_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (data_dir / name).write_text("\n".join(kept) + "\n", encoding="utf8")
    return data_dir


def run(args, cwd):
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout


def test_general_source_workflow_and_leave_one_out_benchmark(tiny_bert, tmp_path):
    for folder in ("project", "configs", "assets", "benchmarks"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("corpus", "training", "results"))
    project = tmp_path / "project"
    data_dir = first_sentences(tmp_path / "data")
    silver = spacy.blank("en")
    silver.add_pipe("entity_ruler").add_patterns([{"label": "DATE", "pattern": [{"IS_DIGIT": True}]}])
    silver.to_disk(tmp_path / "silver")
    overrides = {
        "encoder": tiny_bert, "data_dir": data_dir, "general_limit": 20, "general_dev_limit": 10, "general_steps": 2,
        "general_silver": tmp_path / "silver", "general_silver_labels": "DATE", "general_phrases": "",
    }
    args = [f"--vars.{name}={value}" for name, value in overrides.items()]
    # the `general` workflow after get-phrase-parser (a pip install): phrase types are off here
    workflow = srsly.read_yaml(project / "project.yml")["workflows"]["general"]
    assert workflow[0] == "get-phrase-parser"
    out = "".join(
        run([sys.executable, "-m", "spacy", "project", "run", command, str(project), *args], cwd=tmp_path)
        for command in workflow[1:]
    )
    assert "excluded" not in out and "annotated for Chemical, Disease" in out
    docs = list(DocBin().from_disk(project / "corpus" / "general" / "train.spacy").get_docs(spacy.blank("en").vocab))
    assert len(docs) == 80
    scopes = [tuple(doc.spans["sc"].attrs[SCOPE_ATTR]) for doc in docs]
    assert scopes[0] == ("DATE", "LOC", "MISC", "ORG", "PER")
    assert scopes[-1] == ("DATE", "DNA", "RNA", "cell_line", "cell_type", "protein")
    assert "silver DATE:" in out and any(span.label_ == "DATE" for doc in docs for span in doc.spans["sc"])
    types = [json.loads(line)["label"] for line in (project / "corpus" / "general" / "types.jsonl").read_text().splitlines()]
    assert set(types) == ALL_TYPES | {"DATE"}
    nlp = spacy.load(project / "training" / "general" / "source" / "model-last")
    ner = nlp.get_pipe("binder_ner")
    assert set(ner.labels) == ALL_TYPES | {"DATE"} and ner.cfg["mode"] == "nested"

    results = tmp_path / "zeroshot.json"
    run([
        sys.executable, str(tmp_path / "benchmarks" / "zeroshot_sources.py"), str(project / "corpus"), str(results),
        "--baseline", str(project / "training" / "general" / "source" / "model-last"),
        "--work-dir", str(tmp_path / "sources"), "--sources", "without NCBI and Disease",
        "--encoder", str(tiny_bert), "--steps", "2", "--limit", "20", "--max-eval", "10", "--thresholds", "0.5,0.05",
    ], cwd=tmp_path)
    scored = json.loads(results.read_text())
    held_out = scored["without NCBI and Disease"]
    assert set(held_out) == {"ncbi Disease", "bc5cdr Disease", "conll test", "train_seconds"}
    assert set(scored["CoNLL-2003 only"]) >= {"ncbi Disease", "bc5cdr Disease", "bc5cdr Chemical", "genia", "conll test"}
    for row in (held_out, scored["CoNLL-2003 only"]):  # each cell was scored by a prediction run
        assert all(row[key]["predict_seconds"] > 0 and "per_type" in row[key] for key in row if key != "train_seconds")
    for target in ("ncbi Disease", "bc5cdr Disease"):  # held-out types at each threshold, from one pass
        cell = held_out[target]
        assert set(cell["by_threshold"]) == {"0.5", "0.05"} and cell["by_threshold"]["0.5"]["f1"] == cell["f1"]
        assert cell["by_threshold"]["0.05"]["recall"] >= cell["recall"]
    assert set(held_out["conll test"]["by_threshold"]) == {"0.5"}  # the source's own types keep 0.5

    dev = tmp_path / "zeroshot_dev.json"
    out = run([
        sys.executable, str(tmp_path / "benchmarks" / "zeroshot_dev.py"), str(project / "corpus"), str(dev),
        f"general={project / 'training' / 'general' / 'source' / 'model-last'}",
        "--targets", "ncbi,bc5cdr Chemical,genia", "--thresholds", "0.5,0.2,0.05",
    ], cwd=tmp_path)
    chosen = json.loads(dev.read_text())["general"]
    assert set(chosen) == {"ncbi", "bc5cdr Chemical", "genia"}
    assert set(chosen["bc5cdr Chemical"]["per_type"]) == {"Chemical"}
    assert all(set(cell["by_threshold"]) == {"0.5", "0.2", "0.05"} for cell in chosen.values())
    assert "best threshold over all targets" in out and "own best" in out

    source = spacy.load(tmp_path / "sources" / "without_ncbi_and_disease" / "model-last")
    assert "Disease" not in source.get_pipe("binder_ner").labels
