"""int8 routes for short and long jobs: each measured in fresh processes.

python benchmarks/int8_routes.py compare FP32_PIPELINE EVAL.spacy TEXTS.spacy OUTPUT.json
    [--routes "fp32,int8 ahead,int8 in process,onnxruntime int8"] [--rounds 2]
    [--short-words 1000] [--long-words 100000] [--evaluate-words 20000] [--work-dir DIR]

Makes the int8 copies of FP32_PIPELINE first (untimed): `python -m spacy_binder
quantize` (compiled ahead of time, what binder_ner ships), `quantize --no-compile`
(torch.compile in the predicting process, as before) and, for comparison, the
text encoder exported to ONNX and quantized by onnxruntime (per channel; run in
the fp32 pipeline in place of its encoder; needs `pip install onnxruntime onnx`).
Then, round after round, route after route, a fresh process (`measure`) takes
the time from its start to its first document's entities, words/s of `nlp.pipe`
on the next `--short-words` words of TEXTS and then on the next `--long-words`
(repeating TEXTS if it is shorter), span F1 on EVAL, and its peak RSS; and
`spacy evaluate` runs on the first `--evaluate-words` words of EVAL, timed from
outside (the pipelines on disk only). The table takes the best of the rounds;
the break-even is the input size above which a route beats fp32 in a fresh
process: its extra start-up time (to the first document, and the short input's
time beyond the long input's pace) over what it saves per word at that pace.
"""
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import spacy
import typer
from spacy.tokens import DocBin

from common import predict, quantize, run_command, score, swap_text_encoder, text_encoder_model
from infer_memory import high_water_mark_mb

ROUTES = ("fp32", "int8 ahead", "int8 in process", "onnxruntime int8")
ONNX_VARIANT = "onnxruntime int8 per-channel"
app = typer.Typer(add_completion=False)


def write_inputs(path: Path, short_words: int, long_words: int, output: Path) -> Path:
    """The texts a measuring process predicts, as JSON (read in milliseconds, so that
    reading them does not count in the time to the first document): the first doc's,
    then the next docs until they hold `short_words` words, then `long_words` more
    (starting over from the first doc where the file runs out)."""
    docs = list(DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))
    inputs, i = {"first": [docs[0].text]}, 1
    for name, n_words in (("short", short_words), ("long", long_words)):
        texts, words = [], 0
        while words < n_words:
            texts.append(docs[i % len(docs)].text)
            words += len(docs[i % len(docs)])
            i += 1
        inputs[name] = texts
    output.write_text(json.dumps(inputs))
    return output


@app.command()
def measure(pipeline: Path, eval_path: Path, inputs_path: Path, started: float, onnx: Optional[Path] = None) -> None:
    """One route in this process: prints one JSON line (see the module docstring)."""
    from spacy.training import Corpus

    inputs = json.loads(inputs_path.read_text())
    nlp = spacy.load(pipeline)
    binder = nlp.get_pipe("binder_ner")
    if onnx is not None:
        from quantize_libraries import OrtEncoder

        swap_text_encoder(binder, OrtEncoder(onnx, text_encoder_model(binder).config))
    nlp(inputs["first"][0])
    to_first_doc = time.time() - started
    speed = {}
    for name in ("short", "long"):
        start = time.perf_counter()
        docs = list(nlp.pipe(inputs[name]))
        speed[name] = sum(len(doc) for doc in docs) / (time.perf_counter() - start)
    f1 = score(predict(nlp, Corpus(eval_path))[0], binder.cfg["spans_key"])["f1"]
    print(json.dumps({
        "first_doc_s": round(to_first_doc, 3), "short_words_per_s": round(speed["short"]),
        "long_words_per_s": round(speed["long"]), "f1": round(100 * f1, 2), "peak_rss_mb": round(high_water_mark_mb()),
    }))


def make_routes(fp32: Path, routes: List[str], work_dir: Path) -> Dict[str, Dict[str, Optional[Path]]]:
    """Each route's pipeline (an int8 one already in work_dir is reused) and ONNX file."""
    made: Dict[str, Dict[str, Optional[Path]]] = {}
    for route in routes:
        pipeline, onnx = fp32, None
        if route.startswith("int8"):
            pipeline = work_dir / route.replace(" ", "_")
            if not pipeline.exists():
                typer.echo(f"quantize {fp32} -> {pipeline}", err=True)
                quantize(fp32, pipeline, compile_ahead=route == "int8 ahead")
        elif route == "onnxruntime int8":
            from quantize_libraries import export_onnx

            folder = work_dir / "onnx"
            folder.mkdir(parents=True, exist_ok=True)
            onnx = export_onnx(text_encoder_model(spacy.load(fp32).get_pipe("binder_ner")).eval(), folder)[ONNX_VARIANT]
        made[route] = {"pipeline": pipeline, "onnx": onnx}
    return made


def first_words(path: Path, n_words: int, output: Path) -> Path:
    """The first docs of a .spacy file that hold `n_words` words."""
    docs, words = [], 0
    for doc in DocBin().from_disk(path).get_docs(spacy.blank("en").vocab):
        if words >= n_words:
            break
        docs.append(doc)
        words += len(doc)
    DocBin(docs=docs, store_user_data=True).to_disk(output)
    return output


def start_up_s(row: Dict[str, float], short_words: int) -> float:
    """What a fresh process spends before it predicts at its long-input pace: the
    time to its first document, and the short input's time beyond that pace (a
    route that compiles in the process keeps compiling there, for new shapes)."""
    return row["first_doc_s"] + short_words / row["short_words_per_s"] - short_words / row["long_words_per_s"]


def break_even_words(route: Dict[str, float], fp32: Dict[str, float], short_words: int) -> Optional[float]:
    """Words above which the route's fresh process finishes first (None: never; 0: always)."""
    extra = start_up_s(route, short_words) - start_up_s(fp32, short_words)
    saved = 1 / fp32["long_words_per_s"] - 1 / route["long_words_per_s"]
    if extra <= 0:
        return 0.0 if saved >= 0 else None
    return extra / saved if saved > 0 else None


@app.command()
def compare(
    fp32: Path, eval_path: Path, texts_path: Path, output: Path,
    routes: str = typer.Option(",".join(ROUTES), help=f"Comma-separated, from {list(ROUTES)}"),
    rounds: int = 2, short_words: int = 1000, long_words: int = 100000, evaluate_words: int = 20000,
    work_dir: Optional[Path] = None,
) -> None:
    wanted = [route.strip() for route in routes.split(",") if route.strip()]
    unknown = sorted(set(wanted) - set(ROUTES))
    if unknown or "fp32" not in wanted:
        raise typer.BadParameter(f"Routes {unknown or wanted} not usable: choose from {list(ROUTES)}, fp32 among them.")
    with tempfile.TemporaryDirectory() as tmp:
        work = work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        made = make_routes(fp32, wanted, work)
        short_eval = first_words(eval_path, evaluate_words, work / "evaluate.spacy")
        inputs = write_inputs(texts_path, short_words, long_words, work / "inputs.json")
        runs: Dict[str, List[Dict[str, float]]] = {route: [] for route in wanted}
        for round_ in range(rounds):
            for route in wanted:
                command = [
                    sys.executable, __file__, "measure", str(made[route]["pipeline"]), str(eval_path), str(inputs),
                    str(time.time()),
                ]
                if made[route]["onnx"] is not None:
                    command += ["--onnx", str(made[route]["onnx"])]
                run = json.loads(run_command(command).strip().splitlines()[-1])
                if made[route]["onnx"] is None:
                    start = time.perf_counter()
                    run_command([sys.executable, "-m", "spacy", "evaluate", str(made[route]["pipeline"]), str(short_eval)])
                    run["evaluate_s"] = round(time.perf_counter() - start, 2)
                runs[route].append(run)
                typer.echo(f"round {round_ + 1}: {route} {run}", err=True)
    best = {route: best_of(route_runs) for route, route_runs in runs.items()}
    for route in wanted:
        best[route]["break_even_words"] = break_even_words(best[route], best["fp32"], short_words)
    result = {
        "fp32": str(fp32), "eval": str(eval_path), "texts": str(texts_path), "short_words": short_words,
        "long_words": long_words, "evaluate_words": evaluate_words, "runs": runs, "best": best,
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(routes_table(result))


def best_of(runs: List[Dict[str, float]]) -> Dict[str, float]:
    """Fastest figures of the rounds (lowest seconds and RSS, highest words/s)."""
    lowest = ("first_doc_s", "peak_rss_mb", "evaluate_s")
    return {key: (min if key in lowest else max)(run[key] for run in runs) for key in runs[0]}


def per_round(result: Dict, route: str, key: str) -> str:
    """The route's `key` over fp32's, round by round: the lowest and highest ratio."""
    ratios = [run[key] / fp32[key] for run, fp32 in zip(result["runs"][route], result["runs"]["fp32"])]
    low, high = f"{min(ratios):.2f}", f"{max(ratios):.2f}"
    return low if low == high else f"{low}-{high}"


def routes_table(result: Dict) -> str:
    """The Markdown table of a `compare` result (also written into docs/BENCHMARKS.md):
    best of the rounds, and the ratios to fp32 round by round."""
    lines = [
        f"| route | F1 | start to first document (s) | words/s, next {result['short_words']:,} words "
        f"| words/s, next {result['long_words']:,} words (÷ fp32 per round) | break-even (words) | peak RSS MB "
        f"| `spacy evaluate`, {result['evaluate_words']:,} words: s (÷ fp32 per round) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for route, row in result["best"].items():
        even = row["break_even_words"]
        even_text = "never" if even is None else f"{even:,.0f}"
        evaluate = f"{row['evaluate_s']:.1f} ({per_round(result, route, 'evaluate_s')})" if "evaluate_s" in row else "–"
        lines.append(
            f"| {route} | {row['f1']:.2f} | {row['first_doc_s']:.1f} | {row['short_words_per_s']:,} "
            f"| {row['long_words_per_s']:,} ({per_round(result, route, 'long_words_per_s')}) "
            f"| {'–' if route == 'fp32' else even_text} | {row['peak_rss_mb']:,} | {evaluate} |"
        )
    return "\n".join(lines)

if __name__ == "__main__":
    app()
