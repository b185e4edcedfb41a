"""Few-shot and zero-shot NER benchmark: source-trained binder_ner against baselines.

python benchmarks/fewshot.py CORPUS_DIR RESULTS_DIR --source MODEL [--targets ncbi,bc5cdr,genia]

MODEL is a binder_ner pipeline trained on the source corpus (CoNLL-2003 in the
project). For each target, K and seed, a support set is drawn from the target's
dev split with the greedy sampler (spacy_binder.sampler) and these systems are
scored on the target's evaluation split (test; GENIA has none here, so its
train split, which this setting never trains on):

- zero-shot: the source pipeline given the target's descriptions, no training,
  at the default threshold and at the threshold of new types;
- support only: binder_ner trained from the encoder on the support set alone;
- nearest support: the source pipeline given the support set, no training,
  decoded by the support alone (binder_ner's default support_weight, 1) and by
  support + descriptions (0.75);
- fine-tuned: the source pipeline fine-tuned on the support set (configs/binder_fewshot.cfg),
  decoded by the descriptions alone, by the support alone and by both;
- fine-tuned + source kept: the same with the source types kept and a K-shot
  sample of the source training set replayed; also scored on the source test
  set (forgetting);
- NNShot: nearest support token on the source-trained encoder (benchmarks/nnshot.py);
- spancat: spaCy's spancat on the same encoder trained on the support set alone;
- (c)-(f), the label-aware contrastive paper's options: each fine-tunes its own
  source, trained like MODEL (init-config --transfer, --source-steps) but with
  suffix prompts, and for (d)-(f) the context-context and context-label
  objectives (cosine, JS, symmetric KL) in both stages, each decoded the three
  ways too; also zero-shot per source.

--supervised ncbi,genia trains binder_ner on those corpora with the default
config and with prompts and the cosine objectives, side by side, to show what
the options cost when data is plentiful.

Every fine-tuning run uses fixed steps: nothing is chosen on an evaluation
split. Results go to RESULTS_DIR/fewshot_<target>.json after every run, so an
interrupted benchmark resumes where it stopped; benchmarks/fewshot_report.py
writes the Markdown table.
"""
import json
import shutil
import time
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import spacy
import typer
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Corpus
from spacy.util import filter_spans

from common import (
    PIPE_BATCH, ROOT, SPANCAT_CONFIG, TARGETS, TYPES, Reader, Tuning, alternate, data_overrides, evaluate,
    evaluate_decodings, fewshot_tuning, fine_tune, predict, references, score, slug, train,
)
from nnshot import nnshot_predict
from spacy_binder.defaults import ENCODER, MAX_STEPS, NEW_TYPE_THRESHOLD, SUPPORT_WEIGHT
from spacy_binder.encoders import resolve_encoder_name
from spacy_binder.init_config import detect_mode, init_config
from spacy_binder.labels import read_type_descriptions
from spacy_binder.sampler import sample_support
from spacy_binder.transfer import retarget

# Part 2: (prompt, objectives similarity) of each system's source and fine-tuning.
PROMPT_SYSTEMS = {
    "(c) prompts": (True, None),
    "(d) prompts + objectives": (True, "cosine"),
    "(e) prompts + objectives (JS)": (True, "js"),
    "(f) prompts + objectives (KL)": (True, "kl"),
}
# Part 3: label_aware_ner's source overrides of configs/label_aware.cfg, and fine-tuning
# overrides of configs/label_aware_fewshot.cfg (CONTaiNER: outside words anchors when
# fine-tuning, as its code does on the support set).
TOKEN_SYSTEMS = {
    "label-aware (paper)": ({}, {}),
    "CONTaiNER": (
        {"model.prompt": False, "loss.label_weight": 0.0, "loss.context_weight": 1.0, "loss.outside_anchors": False,
         "loss.form": "inside"},
        {"label_weight": 0.0, "context_weight": 1.0, "form": "inside"},
    ),
}
SYSTEMS = (
    "support only", "nearest support", "fine-tuned", "fine-tuned + source kept", "NNShot", "spancat", *PROMPT_SYSTEMS,
    *TOKEN_SYSTEMS,
)
# A pipeline with a support set, decoded four ways: by the descriptions (support
# weight 0), by the support alone (1, binder_ner's default), both (0.75, the
# best mix after fine-tuning on the targets' dev splits: docs/FEWSHOT.md), and
# the descriptions at the threshold of new types (the best on the dev splits,
# configs/binder_fewshot.cfg's default).
DECODINGS = {
    "": {"support_weight": 0.0, "threshold": 0.5},
    ", nearest support": {"support_weight": 1.0, "threshold": 0.5},
    ", nearest support + descriptions": {"support_weight": 0.75, "threshold": 0.5},
    ", descriptions at the new-type threshold": {"support_weight": 0.0, "threshold": NEW_TYPE_THRESHOLD},
}
# The systems each run scores.
RUN_SYSTEMS = {
    "nearest support": ("nearest support", "nearest support + descriptions"),
    **{name: tuple(f"{name}{suffix}" for suffix in DECODINGS) for name in ("fine-tuned", *PROMPT_SYSTEMS)},
    "label-aware (paper)": ("label-aware (paper)", "label-aware (paper), nearest label"),
}
SUPERVISED = {"binder_ner": (False, None), "binder_ner + prompts + objectives": (True, "cosine")}
# The prompt's inference cost: best of SPEED_ROUNDS alternating rounds over the
# first SPEED_DOCS evaluation docs.
SPEED_DOCS = 300
SPEED_ROUNDS = 3
LABEL_AWARE_CONFIG = ROOT / "configs" / "label_aware.cfg"
LABEL_AWARE_FEWSHOT_CONFIG = ROOT / "configs" / "label_aware_fewshot.cfg"
# Each label's prompt word for label_aware_ner, per corpus (our choice of words).
LABEL_WORDS = ROOT / "assets" / "label_words"
# spancat's ngram suggester: our own fixed choice, no target data looked at.
SPANCAT_SIZES = list(range(1, 11))


class Results:
    """RESULTS_DIR/fewshot_<target>.json, written after every run.

    Runs are resumed only under the same settings: a file written with other
    settings (source, encoder, steps, learning rate, evaluation docs) is refused.
    """

    def __init__(self, path: Path, meta: Dict[str, object], settings: Dict[str, object]):
        self.path = path
        self.data = json.loads(path.read_text()) if path.exists() else {"runs": {}}
        found = self.data.setdefault("settings", settings)
        if found != settings:
            changed = sorted(key for key in settings if found.get(key) != settings[key])
            raise typer.BadParameter(
                f"{path} holds runs made with other settings ({', '.join(changed)}: "
                f"{[found.get(key) for key in changed]} there, {[settings[key] for key in changed]} now). "
                "Write to another results folder or delete that file to start again."
            )
        self.data.update(meta)

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=2))

    def get(self, key: str) -> Optional[Dict[str, object]]:
        return self.data["runs"].get(key)

    def put(self, key: str, value: Dict[str, object]) -> None:
        self.data["runs"][key] = value
        self.save()
        typer.secho(f"  {key}: F1 {value['f1']:.3f} (P {value['precision']:.3f} R {value['recall']:.3f})", fg="green")


def main(
    corpus_dir: Path,
    results_dir: Path,
    source: Path = typer.Option(..., help="The source-trained binder_ner pipeline"),
    source_corpus: str = typer.Option("conll", help="Source corpus folder in CORPUS_DIR (replay, forgetting)"),
    targets: str = typer.Option("ncbi,bc5cdr,genia", help="Comma-separated targets"),
    shots: str = typer.Option("1,5", help="Comma-separated K"),
    seeds: str = typer.Option("1,2,3,4,5", help="Comma-separated sampler seeds"),
    systems: str = typer.Option(",".join(SYSTEMS), help="Comma-separated systems besides zero-shot"),
    steps: int = typer.Option(0, help="Fine-tuning steps (the whole support set a step); 0: configs/binder_fewshot.cfg's"),
    learn_rate: float = typer.Option(0.0, help="Fine-tuning learning rate (constant); 0: configs/binder_fewshot.cfg's"),
    mention_weight: Optional[float] = typer.Option(None, help="Fine-tuning loss: weight of the mention terms against the threshold terms (default: configs/binder_fewshot.cfg's)"),
    objective_weight: float = typer.Option(0.1, help="Fine-tuning loss of (d)-(f): weight of each part-2 objective (their sources: 0.5)"),
    encoder: str = typer.Option(ENCODER, help="Encoder for systems trained from scratch"),
    work_dir: Path = typer.Option(ROOT / "project" / "training" / "fewshot", help="Support sets and scratch models"),
    max_eval: int = typer.Option(0, help="Score on the first N evaluation docs only (smoke runs)"),
    source_steps: int = typer.Option(MAX_STEPS, help="Training steps of the (c)-(f) sources"),
    source_eval_frequency: int = typer.Option(200, help="Steps between dev evaluations of the (c)-(f) sources"),
    supervised: str = typer.Option("", help="Comma-separated corpora to train fully with and without the options"),
) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    wanted = [s.strip() for s in systems.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SYSTEMS))
    if unknown:
        raise typer.BadParameter(f"Unknown systems {unknown}: use {list(SYSTEMS)}")
    encoder_path = resolve_encoder_name(encoder)
    source_dir = corpus_dir / source_corpus
    source_types = TYPES / f"{source_corpus}.jsonl"
    source_test = Corpus(source_dir / "test.spacy", limit=max_eval)
    source_labels = list(read_type_descriptions(source_types))
    tuning = fewshot_tuning(steps, learn_rate, mention_weight)
    steps, learn_rate, mention_weight = tuning.steps, tuning.learn_rate, tuning.mention_weight
    for target in [t.strip() for t in targets.split(",") if t.strip()]:
        if target not in TARGETS:
            raise typer.BadParameter(f"Unknown target '{target}': use {list(TARGETS)}")
        pool_split, eval_split, mode = TARGETS[target]
        types_path = TYPES / f"{target}.jsonl"
        types = read_type_descriptions(types_path)
        pool = references(corpus_dir / target / f"{pool_split}.spacy")
        test_path = corpus_dir / target / f"{eval_split}.spacy"
        test = Corpus(test_path, limit=max_eval)
        results = Results(
            results_dir / f"fewshot_{target}.json",
            {
                "target": target, "source": source_corpus, "pool_split": pool_split,
                "eval_split": eval_split, "eval_docs": len(references(test_path, max_eval)), "nested": mode == "nested",
                "steps": steps, "learn_rate": learn_rate, "mention_weight": mention_weight, "spancat_sizes": [1, SPANCAT_SIZES[-1]],
                "objective_weight": objective_weight,
                "prompt_source_steps": source_steps,
            },
            {"source": str(source), "encoder": encoder_path, "steps": steps,
             "learn_rate": learn_rate, "mention_weight": mention_weight, "max_eval": max_eval,
             "objective_weight": objective_weight},
        )
        if results.get("source before fine-tuning") is None and "fine-tuned + source kept" in wanted:
            typer.secho(f"\n=== the source pipeline on {source_corpus} test", bold=True)
            results.put("source before fine-tuning", evaluate(spacy.load(source), source_test, source_labels))
        typer.secho(f"\n=== {target}: zero-shot from descriptions", bold=True)
        if results.get("zero-shot") is None:
            results.put("zero-shot", evaluate(_retargeted(source, types, mode), test))
        if results.get("zero-shot, new-type threshold") is None:
            results.put("zero-shot, new-type threshold", evaluate_decodings(
                _retargeted(source, types, mode), test, [{"threshold": NEW_TYPE_THRESHOLD}],
            )[0])
        sources = {
            name: _prompt_source(name, work_dir, source_dir, source_types, encoder_path, source_steps, source_eval_frequency)
            for name in wanted if name in PROMPT_SYSTEMS
        }
        token_sources = {
            name: _token_source(name, work_dir, source_dir, source_corpus, encoder_path, source_steps, source_eval_frequency)
            for name in wanted if name in TOKEN_SYSTEMS
        }
        for name, token_source in token_sources.items():
            for decoding, result in _token_source_test(token_source, source_dir, source_corpus, source_test).items():
                if results.get(f"source before fine-tuning | {name}{decoding}") is None:
                    results.put(f"source before fine-tuning | {name}{decoding}", result)
        for name, prompt_source in sources.items():
            if results.get(f"zero-shot | {name}") is None:
                results.put(f"zero-shot | {name}", evaluate(_retargeted(prompt_source, types, mode), test))
            if name not in results.data.setdefault("prompt_speed", {}):
                results.data["prompt_speed"][name] = _prompt_speed(_retargeted(prompt_source, types, mode), test)
                results.save()
        labels = list(types)
        shot_list = [int(x) for x in shots.split(",")]
        for k in shot_list:
            for seed in [int(x) for x in seeds.split(",")]:
                run_dir = work_dir / target / f"k{k}_seed{seed}"
                support, report = sample_support(pool, k, seed)
                run_dir.mkdir(parents=True, exist_ok=True)
                DocBin(docs=support).to_disk(run_dir / "support.spacy")
                typer.secho(f"\n=== {target} {k}-shot seed {seed}", bold=True)
                for line in report.lines(len(support)):
                    typer.echo(line)
                # Each run gives one or more systems' results (one pipeline decoded several ways).
                runs: Dict[str, Callable[[Path], Dict[str, Dict[str, object]]]] = {
                    "support only": lambda out: {
                        "support only": _support_only(run_dir, out, types_path, mode, steps, encoder_path, test)
                    },
                    "nearest support": lambda out: _decodings(
                        _with_support(_retargeted(source, types, mode), support), 0.0, test, labels, "", least=0.0,
                    ),
                    "fine-tuned": lambda out: _decodings(
                        *fine_tune(source, run_dir / "support.spacy", out, types_path, mode, tuning), test, labels, "fine-tuned",
                    ),
                    "fine-tuned + source kept": lambda out: {"fine-tuned + source kept": _keep_source(
                        source, run_dir, out, types_path, mode, tuning, test, source_dir, k, seed, source_test, source_labels,
                    )},
                    "NNShot": lambda out: {"NNShot": _nnshot(source, support, test, mode == "nested")},
                    "spancat": lambda out: {"spancat": _spancat(run_dir, out, encoder_path, steps, test)},
                    **{
                        name: lambda out, name=name: _decodings(
                            *fine_tune(
                                sources[name], run_dir / "support.spacy", out, types_path, mode,
                                tuning._replace(objectives=_objectives(name, objective_weight)),
                            ),
                            test, labels, name,
                        )
                        for name in sources
                    },
                    **{
                        name: lambda out, name=name: _token_fine_tuned(
                            name, token_sources[name], run_dir, out, target, k, test, mode == "nested",
                            source_dir, source_corpus, source_test,
                        )
                        for name in token_sources
                    },
                }
                for name in wanted:
                    if all(results.get(f"{system} | k={k} | seed={seed}") is not None for system in RUN_SYSTEMS.get(name, (name,))):
                        continue
                    typer.secho(f"--- {name}", bold=True)
                    out = run_dir / slug(name)
                    for system, result in runs[name](out).items():
                        result.update(support_sentences=len(support), support_mentions=dict(report.mentions))
                        results.put(f"{system} | k={k} | seed={seed}", result)
                    shutil.rmtree(out, ignore_errors=True)
                if "nearest support" in wanted and k == max(shot_list) and "support_speed" not in results.data:
                    results.data["support_speed"] = _support_speed(_retargeted(source, types, mode), support, test)
                    results.save()

    for corpus in [c.strip() for c in supervised.split(",") if c.strip()]:
        _supervised(corpus_dir / corpus, results_dir / f"supervised_{corpus}.json", encoder_path, max_eval, work_dir)


def _retargeted(model: Path, types: Mapping[str, str], mode: str) -> Language:
    """A pipeline loaded with the target's types and mode: it predicts them zero-shot."""
    nlp = spacy.load(model)
    retarget(nlp, types, mode)
    return nlp


def _with_support(nlp: Language, support: List[Doc]) -> Language:
    nlp.get_pipe("binder_ner").add_support(support)
    return nlp


def _decodings(
    nlp: Language, train_seconds: float, test: Reader, labels: List[str], name: str, least: float = -1.0,
) -> Dict[str, Dict[str, object]]:
    """A pipeline with its support set scored as each of DECODINGS (those with
    a support weight above `least`), from one pass over `test`."""
    decodings = {f"{name}{suffix}".lstrip(", "): d for suffix, d in DECODINGS.items() if d["support_weight"] > least}
    scored = evaluate_decodings(nlp, test, list(decodings.values()), labels)
    return {system: {**result, "train_seconds": train_seconds} for system, result in zip(decodings, scored)}


def _support_speed(nlp: Language, support: List[Doc], test: Reader) -> Dict[str, float]:
    """Words/s of one pipeline decoding with and without its support set
    (binder_ner's default support weight, and 0), in alternating rounds in this process."""
    ner = _with_support(nlp, support).get_pipe("binder_ner")
    weights = {"support": SUPPORT_WEIGHT, "no support": 0.0}
    docs = [eg.predicted for eg in islice(test(nlp), SPEED_DOCS)]
    words = sum(len(doc) for doc in docs)

    def prepare(name: str) -> List[Doc]:
        ner.support_weight = weights[name]
        return [nlp.make_doc(doc.text) for doc in docs]

    seconds = alternate(
        {name: lambda fresh: list(nlp.pipe(fresh, batch_size=PIPE_BATCH)) for name in weights},
        SPEED_ROUNDS, prepare=prepare, words=words,
    )
    speed = {f"words_per_second_{name.replace(' ', '_')}": words / min(s) for name, s in seconds.items()}
    typer.secho(f"  support speed: {speed}", fg="green")
    return {**speed, "docs": len(docs), "rounds": SPEED_ROUNDS, "support_docs": len(support)}


def _objectives(name: str, weight: float) -> Optional[Tuple[str, float, float]]:
    similarity = PROMPT_SYSTEMS[name][1]
    return None if similarity is None else (similarity, weight, weight)


def _prompt_source(
    name: str, work_dir: Path, source_dir: Path, source_types: Path, encoder: str, steps: int, eval_frequency: int
) -> Path:
    """The source of a (c)-(f) system, trained once (init-config --transfer with its
    options), as the project's fewshot-source trains MODEL."""
    out = work_dir / "sources" / slug(name)
    if (out / "train_seconds.json").exists():  # written at the end (model-best is at every better evaluation)
        return out / "model-best"
    prompt, objectives = PROMPT_SYSTEMS[name]
    typer.secho(f"\n=== training the source of {name}", bold=True)
    config = work_dir / "sources" / f"{slug(name)}.cfg"
    config.parent.mkdir(parents=True, exist_ok=True)
    init_config("flat", max_steps=steps, transfer=True, prompt=prompt, objectives=objectives).to_disk(config)
    overrides = {
        **data_overrides(source_dir / "train.spacy", source_dir / "dev.spacy", encoder, source_types),
        "training.eval_frequency": eval_frequency,
    }
    seconds = train(config, out, overrides)
    (out / "train_seconds.json").write_text(json.dumps({"train_seconds": seconds}))
    return out / "model-best"


def _prompt_speed(nlp: Language, test: Reader) -> Dict[str, float]:
    """Words/s of one pipeline with and without its label prompt, in alternating
    rounds in this process: what the prompt costs at inference, weights equal."""
    encoder = nlp.get_pipe("binder_ner").model.get_ref("text_encoder")
    prompts = {"prompt": encoder.attrs["prompt"], "no prompt": None}

    def prepare(name: str) -> List[Doc]:
        """The prompt on or off, and the first SPEED_DOCS docs unannotated."""
        encoder.attrs["prompt"] = prompts[name]
        return [eg.predicted for eg in islice(test(nlp), SPEED_DOCS)]

    docs = prepare("prompt")
    words = sum(len(doc) for doc in docs)
    try:
        seconds = alternate(
            {name: lambda fresh: list(nlp.pipe(fresh, batch_size=PIPE_BATCH)) for name in prompts},
            SPEED_ROUNDS, prepare=prepare, words=words,
        )
    finally:
        encoder.attrs["prompt"] = prompts["prompt"]
    speed = {f"words_per_second_{name.replace(' ', '_')}": words / min(s) for name, s in seconds.items()}
    typer.secho(f"  prompt speed: {speed}", fg="green")
    return {**speed, "docs": len(docs), "rounds": SPEED_ROUNDS}


def _supervised(corpus: Path, path: Path, encoder: str, max_eval: int, work_dir: Path) -> None:
    """Full training on a corpus with and without the options; scored on test (dev if none)."""
    data = json.loads(path.read_text()) if path.exists() else {"corpus": corpus.name, "runs": {}}
    split = "test" if (corpus / "test.spacy").exists() else "dev"
    test = Corpus(corpus / f"{split}.spacy", limit=max_eval)
    words = sum(len(doc) for doc in references(corpus / f"{split}.spacy", max_eval))
    mode = detect_mode(references(corpus / "train.spacy"))
    for name, (prompt, objectives) in SUPERVISED.items():
        if name in data["runs"]:
            continue
        typer.secho(f"\n=== supervised {corpus.name}: {name}", bold=True)
        run_dir = work_dir / "supervised" / corpus.name / slug(name)
        config = run_dir.with_suffix(".cfg")
        config.parent.mkdir(parents=True, exist_ok=True)
        init_config(mode, prompt=prompt, objectives=objectives).to_disk(config)
        overrides = data_overrides(corpus / "train.spacy", corpus / "dev.spacy", encoder, TYPES / f"{corpus.name}.jsonl")
        seconds = train(config, run_dir, overrides)
        result = evaluate(spacy.load(run_dir / "model-best"), test)
        data["runs"][name] = {
            **result, "split": split, "train_seconds": seconds,
            "words_per_second": words / result["predict_seconds"],
        }
        path.write_text(json.dumps(data, indent=2))
        typer.secho(f"  {name}: F1 {result['f1']:.3f}", fg="green")


def _from_scratch(
    config: Path, run_dir: Path, out: Path, encoder: str, steps: int, test: Reader, overrides: Dict[str, object]
) -> Dict[str, object]:
    """Trained from the encoder on the support set alone, for fixed steps."""
    support = run_dir / "support.spacy"
    seconds = train(config, out, {
        **data_overrides(support, support, encoder),
        "training.max_steps": steps,
        "training.eval_frequency": steps,
        "training.batcher.size": 100000,
        "training.optimizer.learn_rate.initial_rate": 1e-4,
        "training.optimizer.learn_rate.warmup_steps": 0,
        **overrides,
    })
    return {**evaluate(spacy.load(out / "model-last"), test), "train_seconds": seconds}


def _support_only(
    run_dir: Path, out: Path, types_path: Path, mode: str, steps: int, encoder: str, test: Reader
) -> Dict[str, object]:
    config = run_dir / f"binder_{mode}.cfg"
    init_config(mode).to_disk(config)
    return _from_scratch(config, run_dir, out, encoder, steps, test, {"paths.descriptions": str(types_path)})


def _keep_source(
    source: Path, run_dir: Path, out: Path, types_path: Path, mode: str, tuning: Tuning, test: Reader,
    source_dir: Path, k: int, seed: int, source_test: Reader, source_labels: List[str],
) -> Dict[str, object]:
    """Fine-tune with the source types kept, replaying a K-shot sample of the source training set."""
    train_dir = run_dir / "support_and_replay"
    train_dir.mkdir(exist_ok=True)
    shutil.copy(run_dir / "support.spacy", train_dir / "support.spacy")
    replay, _ = sample_support(references(source_dir / "train.spacy"), k, seed)
    DocBin(docs=replay).to_disk(train_dir / "replay.spacy")
    nlp, seconds = fine_tune(source, train_dir, out, types_path, mode, tuning, keep=True)
    ner = nlp.get_pipe("binder_ner")
    ner.clear_support()  # the replay is no support
    ner.threshold = 0.5  # (b)'s decoding, descriptions alone at 0.5
    result = {**evaluate(nlp, test, labels=list(read_type_descriptions(types_path))), "train_seconds": seconds}
    result["source_test"] = _prf(evaluate(nlp, source_test, source_labels))
    return result


def _token_source(
    name: str, work_dir: Path, source_dir: Path, source_corpus: str, encoder: str, steps: int, eval_frequency: int
) -> Path:
    """The label_aware_ner source of a part-3 system, trained once for `steps`
    (the authors train one epoch; the project's 400 steps of 32 sentences are 0.9
    of CoNLL-2003's); the last step's model: no step is chosen."""
    out = work_dir / "sources" / slug(name)
    done = out / "train_seconds.json"  # model-last is written at every evaluation: not a sign of the end
    if done.exists():
        return out / "model-last"
    typer.secho(f"\n=== training the source of {name}", bold=True)
    overrides = {f"components.label_aware_ner.{key}": value for key, value in TOKEN_SYSTEMS[name][0].items()}
    seconds = train(LABEL_AWARE_CONFIG, out, {
        "paths.train": str(source_dir / "train.spacy"),
        "paths.dev": str(source_dir / "dev.spacy"),
        "paths.words": str(LABEL_WORDS / f"{source_corpus}.jsonl"),
        "paths.encoder": encoder,
        "training.max_steps": steps,
        "training.eval_frequency": eval_frequency,
        "training.logger.progress_bar": False,
        **overrides,
    })
    (out / "train_seconds.json").write_text(json.dumps({"train_seconds": seconds}))
    return out / "model-last"


def _outermost(doc: Doc) -> Doc:
    """doc.ents set to the outermost mentions of doc.spans["sc"] (the longest
    first, as spaCy's filter_spans keeps them): all a flat tagger can learn or give."""
    doc.ents = filter_spans(doc.spans["sc"])
    return doc


def _token_source_test(
    source: Path, source_dir: Path, source_corpus: str, test: Reader
) -> Dict[str, Dict[str, object]]:
    """A part-3 source on the source's test set, computed once (a JSON file beside
    it): decoded by a 5-shot support set of the source's training set (seed 1),
    and, with a prompt, by the nearest label of the prompt alone."""
    cached = source.parent / "source_test.json"
    if cached.exists():
        return json.loads(cached.read_text())
    nlp = spacy.load(source)
    found = {}
    if nlp.get_pipe("label_aware_ner").model.attrs["prompt"]:
        examples, _ = predict(nlp, test)
        found[", nearest label"] = score(examples, key="ents")
    found[", 5-shot source support"] = _token_on_source(nlp, source_dir, source_corpus, test)
    cached.write_text(json.dumps(found))
    return found


def _token_on_source(nlp: Language, source_dir: Path, source_corpus: str, test: Reader) -> Dict[str, object]:
    """A label_aware_ner pipeline given the source's labels and a 5-shot support
    set of the source's training set (seed 1), scored on the source's test set:
    what a source knows, before fine-tuning and after (forgetting)."""
    ner = nlp.get_pipe("label_aware_ner")
    ner.set_labels(read_type_descriptions(LABEL_WORDS / f"{source_corpus}.jsonl"))
    ner.clear_support()
    ner.add_support(_source_support(source_dir))
    examples, _ = predict(nlp, test)
    return score(examples, key="ents")


@lru_cache(maxsize=1)
def _source_support(source_dir: Path) -> List[Doc]:
    """A 5-shot support set of the source's training set (seed 1), drawn once."""
    return sample_support(references(source_dir / "train.spacy"), 5, 1)[0]


def _token_fine_tuned(
    name: str, source: Path, run_dir: Path, out: Path, target: str, k: int, test: Reader, nested: bool,
    source_dir: Path, source_corpus: str, source_test: Reader,
) -> Dict[str, Dict[str, object]]:
    """A part-3 source fine-tuned on the support set (configs/label_aware_fewshot.cfg,
    its fixed steps), which it then decodes by; 1-shot compares unit means by
    squared Euclidean distance, as the authors do (the paper's method only).
    With a prompt, also decoded by the nearest label alone (support set cleared).
    Then scored on the source's test set (forgetting, `_token_on_source`).
    A nested target's support and gold are its outermost mentions (doc.ents)."""
    support = run_dir / "support.spacy"
    if nested:
        vocab = spacy.blank("en").vocab
        support = run_dir / "support_outermost.spacy"
        DocBin(docs=[_outermost(doc) for doc in DocBin().from_disk(run_dir / "support.spacy").get_docs(vocab)]).to_disk(support)
    loss = dict(TOKEN_SYSTEMS[name][1])
    if k == 1 and name == "label-aware (paper)":
        loss["similarity"] = "euclidean"
    seconds = train(LABEL_AWARE_FEWSHOT_CONFIG, out, {
        "paths.source": str(source),
        "paths.train": str(support),
        "paths.words": str(LABEL_WORDS / f"{target}.jsonl"),
        **{f"initialize.after_init.loss.{key}": value for key, value in loss.items()},
    })
    nlp = spacy.load(out / "model-last")
    found = {name: _token_scores(nlp, test, nested, seconds)}
    ner = nlp.get_pipe("label_aware_ner")
    # The nearest label of the prompt alone; by the loss's distance, which the saved pipeline
    # keeps from its source (spacy_binder.set_loss.v1): only where fine-tuning used it too.
    if ner.model.attrs["prompt"] and "similarity" not in loss:
        ner.clear_support()
        found[f"{name}, nearest label"] = _token_scores(nlp, test, nested, seconds)
    found[name]["source_test"] = _prf(_token_on_source(nlp, source_dir, source_corpus, source_test))
    return found


def _token_scores(nlp: Language, test: Reader, nested: bool, train_seconds: float) -> Dict[str, object]:
    """A label_aware_ner pipeline scored on doc.ents (a nested target's outermost mentions)."""
    examples, predict_seconds = predict(nlp, test)
    if nested:
        for eg in examples:
            _outermost(eg.reference)
    words = sum(len(eg.predicted) for eg in examples)
    return {
        **score(examples, key="ents"), "predict_seconds": predict_seconds, "train_seconds": train_seconds,
        "words_per_second": words / predict_seconds,
    }


def _nnshot(source: Path, support: List[Doc], test: Reader, nested: bool) -> Dict[str, object]:
    """NNShot scored on every gold mention, and on a nested target's outermost
    ones too, as the token-level rows are (its predictions never overlap)."""
    nlp = spacy.load(source)
    examples = list(test(nlp))
    start = time.perf_counter()
    _, n_tokens = nnshot_predict(nlp, support, [eg.predicted for eg in examples])  # annotates them
    seconds = time.perf_counter() - start
    result = {**score(examples), "predict_seconds": seconds, "support_tokens": n_tokens}
    if nested:
        for eg in examples:
            _outermost(eg.reference)
            eg.predicted.ents = list(eg.predicted.spans["sc"])
        result["outermost"] = _prf(score(examples, key="ents"))
    return result


def _prf(scores: Dict[str, object]) -> Dict[str, object]:
    """Precision, recall and F1 of a score, kept beside a run's main score."""
    return {key: scores[key] for key in ("precision", "recall", "f1")}


def _spancat(run_dir: Path, out: Path, encoder: str, steps: int, test: Reader) -> Dict[str, object]:
    sizes = {"components.spancat.suggester.sizes": SPANCAT_SIZES}
    return _from_scratch(SPANCAT_CONFIG, run_dir, out, encoder, steps, test, sizes)


if __name__ == "__main__":
    typer.run(main)
