"""Where a binder_ner training step spends its time, beside spaCy's ner.

python benchmarks/profile_training.py CORPUS_DIR/CORPUS [--steps 6] [--rounds 2] [--top 25] [--encoder NAME]

Builds the untrained systems of `benchmarks/run.py` for the corpus (binder_ner,
spancat, and ner on flat data), gives them the same batches (400
words), alternates their update steps over `rounds` and prints seconds per
step and words/s of each, then the cProfile of binder_ner's steps (functions
by cumulative time), so that each change to the training path can be measured
against the same baseline.
"""
import cProfile
import pstats
import time
from pathlib import Path

import spacy
import typer
from spacy.tokens import DocBin
from spacy.training import Corpus
from spacy.training.batchers import minibatch_by_words
from spacy.training.initialize import init_nlp
from spacy.util import load_config
from thinc.api import Adam, fix_random_seed

from run import plan_systems
from spacy_binder.encoders import resolve_encoder_name
from spacy_binder.init_config import detect_mode, init_config


def main(
    corpus: Path,
    steps: int = 6,
    rounds: int = 2,
    top: int = 25,
    encoder: str = typer.Option("sentence-transformers/all-MiniLM-L6-v2", help="HF name or folder"),
    work_dir: Path = typer.Option(Path("/tmp/profile_training"), help="Where the binder_ner config is written"),
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
    systems = [s for s in plan_systems(corpus.name, mode == "nested", [1, 2, 3], False, binder_cfg) if s.trained_as is None]
    nlps, batches = {}, {}
    for s in systems:
        fix_random_seed(0)
        nlp = init_nlp(load_config(s.config, overrides={**shared, **s.overrides}, interpolate=False))
        examples = list(Corpus(shared["paths.train"])(nlp))
        nlps[s.name] = nlp
        batches[s.name] = list(minibatch_by_words(examples[: steps * 64], size=400))[:steps]
    optimizers = {name: Adam(learn_rate=1e-5, grad_clip=1.0) for name in nlps}
    for name, nlp in nlps.items():  # warm-up: lazy layers, allocator
        nlp.update(batches[name][0], sgd=optimizers[name])
    seconds = {name: 0.0 for name in nlps}
    profile = cProfile.Profile()
    for _ in range(rounds):
        for name, nlp in nlps.items():
            if name == "binder_ner":
                profile.enable()
            start = time.perf_counter()
            for batch in batches[name]:
                nlp.update(batch, sgd=optimizers[name])
            seconds[name] += time.perf_counter() - start
            profile.disable()
    for name in nlps:
        words = rounds * sum(len(eg) for batch in batches[name] for eg in batch)
        typer.echo(f"{name}: {seconds[name] / (rounds * steps):.3f} s/step, {words / seconds[name]:.0f} words/s")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(top)


if __name__ == "__main__":
    typer.run(main)
