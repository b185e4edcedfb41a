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
from pathlib import Path
from typing import List

import typer

from common import alternate, data_overrides, plan_systems, prepare_training, references
from spacy_binder.defaults import ENCODER
from spacy_binder.encoders import resolve_encoder_name
from spacy_binder.init_config import detect_mode, init_config


def main(
    corpus: Path,
    steps: int = 6,
    rounds: int = 2,
    top: int = 25,
    encoder: str = typer.Option(ENCODER, help="HF name or folder"),
    work_dir: Path = typer.Option(Path("/tmp/profile_training"), help="Where the binder_ner config is written"),
    override: List[str] = typer.Option([], help="binder_ner config override KEY=VALUE (JSON value), repeatable"),
) -> None:
    mode = detect_mode(references(corpus / "train.spacy"))
    work_dir.mkdir(parents=True, exist_ok=True)
    binder_cfg = work_dir / "binder.cfg"
    init_config(mode).to_disk(binder_cfg)
    shared = data_overrides(corpus / "train.spacy", corpus / "dev.spacy", resolve_encoder_name(encoder))
    systems = plan_systems(corpus.name, mode == "nested", [1, 2, 3], False, binder_cfg)
    for item in override:
        key, _, value = item.partition("=")
        systems[0].overrides[key] = json.loads(value)
    run = prepare_training(systems, shared, steps)
    profile = cProfile.Profile()
    steps_of = {name: lambda _, name=name: run.steps(name) for name in run.nlps}
    steps_of["binder_ner"] = lambda _: profile.runcall(run.steps, "binder_ner")
    seconds = alternate(steps_of, rounds)
    for name, times in seconds.items():
        typer.echo(f"{name}: {sum(times) / (rounds * steps):.3f} s/step, {rounds * run.words(name) / sum(times):.0f} words/s")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(top)


if __name__ == "__main__":
    typer.run(main)
