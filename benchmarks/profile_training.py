"""Where a binder_ner training step spends its time, beside spaCy's ner.

python benchmarks/profile_training.py CORPUS_DIR/CORPUS [--steps 6] [--rounds 2] [--top 25] [--encoder NAME]
    [--override components.binder_ner.model.type_encoder_learn_rate_scale=0]

Builds the untrained systems of `benchmarks/run.py` for the corpus (binder_ner,
spancat, and ner on flat data), gives them the same batches (400
words) and the optimizer of their own config, alternates their update steps over `rounds` and prints seconds per
step and words/s of each, then the cProfile of binder_ner's steps (functions
by cumulative time), so that each change to the training path can be measured
against the same baseline.
"""
import cProfile
import json
import pstats
import time
from pathlib import Path
from typing import List

import spacy
import typer
from spacy.tokens import DocBin

from run import plan_systems, prepare_training
from spacy_binder.encoders import resolve_encoder_name
from spacy_binder.init_config import detect_mode, init_config


def main(
    corpus: Path,
    steps: int = 6,
    rounds: int = 2,
    top: int = 25,
    encoder: str = typer.Option("sentence-transformers/all-MiniLM-L6-v2", help="HF name or folder"),
    work_dir: Path = typer.Option(Path("/tmp/profile_training"), help="Where the binder_ner config is written"),
    override: List[str] = typer.Option([], help="binder_ner config override KEY=VALUE (JSON value), repeatable"),
) -> None:
    mode = detect_mode(DocBin().from_disk(corpus / "train.spacy").get_docs(spacy.blank("en").vocab))
    work_dir.mkdir(parents=True, exist_ok=True)
    binder_cfg = work_dir / "binder.cfg"
    init_config(mode).to_disk(binder_cfg)
    shared = {
        "paths.train": str(corpus / "train.spacy"),
        "paths.dev": str(corpus / "dev.spacy"),
        "paths.encoder": resolve_encoder_name(encoder),
    }
    systems = plan_systems(corpus.name, mode == "nested", [1, 2, 3], False, binder_cfg)
    for item in override:
        key, _, value = item.partition("=")
        systems[0].overrides[key] = json.loads(value)
    run = prepare_training(systems, shared, steps)
    seconds = {name: 0.0 for name in run.nlps}
    profile = cProfile.Profile()
    for _ in range(rounds):
        for name, nlp in run.nlps.items():
            if name == "binder_ner":
                profile.enable()
            start = time.perf_counter()
            for batch in run.batches[name]:
                nlp.update(batch, sgd=run.optimizers[name])
            seconds[name] += time.perf_counter() - start
            profile.disable()
    for name in run.nlps:
        typer.echo(f"{name}: {seconds[name] / (rounds * steps):.3f} s/step, {rounds * run.words(name) / seconds[name]:.0f} words/s")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(top)


if __name__ == "__main__":
    typer.run(main)
