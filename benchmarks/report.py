"""Turn benchmarks/run.py's results into a Markdown report with the targets checked.

python benchmarks/report.py RESULTS_DIR OUTPUT.md
RESULTS_DIR/encoders/<name>/, if present, holds run.py's results of other encoders
or budgets (one machine): the Encoders section. Few-shot results there
(benchmarks/fewshot.py, from a source trained with another encoder) are shown
beside the same target's runs in RESULTS_DIR/support/ (the default encoder's source).
RESULTS_DIR/int8_routes.json (benchmarks/int8_routes.py), if present, gives the
int8 routes section. RESULTS_DIR/NOTES.md, if present, is appended: what was run where, and anything that disturbed the measurements.
"""
import json
from pathlib import Path
from typing import Dict, List, Optional

import typer

from fewshot_report import f1s, mean_std, runs_of
from int8_routes import routes_table
from spacy_binder.defaults import ENCODER
from spacy_binder.encoders import resolve_encoder_name

INT8 = "binder_ner int8"
MAIN = ("binder_ner", INT8, "spancat", "ner")
FLAT_COST_TOLERANCE = 1.25  # largest / smallest seconds per 1k words still called flat


def pct(value: Optional[float]) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def num(value: Optional[float], digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or not b else a / b


def table(header: List[str], rows: List[List[str]]) -> List[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]


def accuracy_section(results: List[Dict]) -> List[str]:
    lines = ["## Accuracy", ""]
    rows = []
    for r in results:
        for name in MAIN:
            s = r["systems"].get(name)
            if s:
                delta = 100 * (r["systems"]["binder_ner"]["f1"] - s["f1"])
                rows.append([r["corpus"], r["eval_split"], str(r["budget"]["max_steps"]), name,
                             pct(s["precision"]), pct(s["recall"]), pct(s["f1"]),
                             "" if name == "binder_ner" else f"{delta:+.1f}"])
    lines += table(["corpus", "split", "steps", "system", "P", "R", "F1", "binder F1 −"], rows)
    for r in results:
        sizes, reach = r["spancat_suggester"]["sizes"], r["spancat_suggester"]["gold_reachable"]
        lines.append(
            f"- {r['corpus']}: spancat's ngram suggester proposes spans of {sizes[0]}–{sizes[1]} tokens "
            f"(the longest training mention, at most 30), reaching {pct(reach)}% of the "
            f"{r['spancat_suggester']['eval_mentions']} {r['eval_split']} mentions."
        )
    lines.append("")
    for r in results:
        labels = sorted({label for s in r["systems"].values() for label in s.get("per_type", {})})
        names = [n for n in MAIN if n in r["systems"]]
        rows = [[label] + [pct(r["systems"][n]["per_type"].get(label, {}).get("f")) for n in names] for label in labels]
        lines += [f"Per-type F1, {r['corpus']} {r['eval_split']}:", ""] + table(["type", *names], rows)
    return lines


def speed_section(results: List[Dict]) -> List[str]:
    lines = ["## Speed and memory", ""]
    rows = []
    for r in results:
        bare = r["bare_encoder"]["inference_words_per_second"]
        binder = r["systems"]["binder_ner"]
        for name in MAIN:
            s = r["systems"].get(name)
            if not s:
                continue
            memory = s["inference_memory"]["peak_rss_mb"]
            trains = name != INT8  # an int8 pipeline is binder_ner's, made after training
            rows.append([
                r["corpus"], name,
                num(s["training"]["words"] if trains else None),
                num(s["training"]["words_per_second"] if trains else None),
                num(s["training_words_per_second_alternating"]),
                num(s["inference_words_per_second"]),
                num(ratio(binder["inference_words_per_second"], s["inference_words_per_second"]), 2),
                num(ratio(s["inference_words_per_second"], bare), 2),
                num(memory),
                num(ratio(binder["inference_memory"]["peak_rss_mb"], memory), 2),
            ])
        rows.append([r["corpus"], "bare encoder forward", "", "", "", num(bare), "", "1.00", "", ""])
    lines += table(
        ["corpus", "system", "words seen", "train w/s (run)", "train w/s (alternating)", "infer w/s",
         "binder ÷ this (speed)", "÷ bare encoder", "peak RSS MB", "binder ÷ this (RSS)"],
        rows,
    )
    lines += [
        "Train w/s (run): words seen ÷ seconds in update steps during the `spacy train` run "
        "(evaluation and checkpoint saving left out). Train w/s (alternating): the untrained "
        "pipelines take turns on the same batches in one process. Inference: `nlp.pipe` with "
        "batch 64 over the evaluation split, pre-tokenized, best of the alternating rounds; the "
        "bare encoder row is binder_ner's text encoder alone (same tokenizer, windows and "
        "forward pass, fp32). binder_ner int8: the trained binder_ner pipeline after `python -m "
        "spacy_binder quantize` (int8 text encoder, compiled by torch.compile on its first "
        "batches: the accuracy pass before the timed rounds). Peak RSS: a fresh process that "
        "loads the pipeline and runs the split (for int8, compiling included).",
        "",
    ]
    for r in results:
        scaled = {n: s["scaling"] for n, s in r["systems"].items() if s.get("scaling")}
        if not scaled:
            continue
        rows = []
        for name, sizes in scaled.items():
            for n_words, m in sizes.items():
                rows.append([name, n_words, num(m["seconds"], 2), num(m["seconds_per_1k_words"], 3),
                             num(m["peak_rss_mb"]), num(m["growth_mb"])])
        lines += [
            f"One long document ({r['corpus']} {r['eval_split']} text, concatenated), "
            "fresh process each, best of the rounds:",
            "",
        ]
        lines += table(["system", "words", "seconds", "s per 1k words", "peak RSS MB", "growth over loaded MB"], rows)
    return lines


def ablation_section(results: List[Dict]) -> List[str]:
    lines = []
    for r in results:
        variants = [n for n in r["systems"] if n.startswith("binder_ner") and n != INT8]
        if len(variants) < 2:
            continue
        lines += [f"## Ablations ({r['corpus']}, {r['eval_split']})", ""]
        rows = [[n, pct(r["systems"][n]["precision"]), pct(r["systems"][n]["recall"]), pct(r["systems"][n]["f1"])]
                for n in variants]
        lines += table(["variant", "P", "R", "F1"], rows)
        lines += [
            "No position objectives: start and end loss weights 0, span weight 1. Learned global "
            "thresholds: one learned threshold per type and head instead of the [CLS] ones "
            "(`thresholds = \"global\"`). Joint inference: the binder_ner model above, decoded "
            "with `strategy = \"joint\"`.",
            "",
        ]
    return lines


def targets(results: List[Dict]) -> List[List[str]]:
    """One row per target (issues 4 and 13): what was measured and whether it is met."""
    rows = []

    def check(what: str, measured: Optional[float], met: bool, shown: str) -> None:
        rows.append([what, shown, "–" if measured is None else ("yes" if met else "**no**")])

    for r in results:
        systems, binder, c = r["systems"], r["systems"]["binder_ner"], r["corpus"]
        speed = binder["inference_words_per_second"]
        if r["nested"] and "spancat" in systems:
            d = binder["f1"] - systems["spancat"]["f1"]
            check(f"{c}: binder F1 ≥ spancat F1 + 2", d, d >= 0.02, f"{100 * d:+.1f} points")
        if "ner" in systems:
            d = binder["f1"] - systems["ner"]["f1"]
            check(f"{c}: binder F1 ≥ ner F1", d, d >= 0.0, f"{100 * d:+.1f} points")
        bare = r["bare_encoder"]["inference_words_per_second"]
        v = ratio(speed, bare)
        check(f"{c}: inference ≥ 0.9 × bare encoder", v, v is not None and v >= 0.9, num(v, 2))
        int8 = systems.get(INT8)
        if int8:
            v = ratio(int8["inference_words_per_second"], bare)
            check(f"{c}: int8 inference ≥ 1.6 × bare (fp32) encoder", v, v is not None and v >= 1.6, num(v, 2))
            d = int8["f1"] - binder["f1"]
            check(f"{c}: int8 F1 within 0.5 of fp32", d, abs(d) <= 0.005, f"{100 * d:+.1f} points")
            v = ratio(int8["inference_memory"]["peak_rss_mb"], binder["inference_memory"]["peak_rss_mb"])
            check(f"{c}: int8 peak RSS ≤ fp32", v, v is not None and v <= 1.0, num(v, 2))
        if "ner" in systems:
            v = ratio(speed, systems["ner"]["inference_words_per_second"])
            check(f"{c}: inference ≥ 1.0 × ner", v, v is not None and v >= 1.0, num(v, 2))
            v = ratio(binder["inference_memory"]["peak_rss_mb"], systems["ner"]["inference_memory"]["peak_rss_mb"])
            check(f"{c}: inference peak RSS ≤ 1.2 × ner", v, v is not None and v <= 1.2, num(v, 2))
            v = ratio(binder["training_words_per_second_alternating"], systems["ner"]["training_words_per_second_alternating"])
            check(f"{c}: training ≥ 1.0 × ner (alternating)", v, v is not None and v >= 1.0, num(v, 2))
        if "spancat" in systems:
            v = ratio(binder["training_words_per_second_alternating"], systems["spancat"]["training_words_per_second_alternating"])
            check(f"{c}: training ≥ 1.0 × spancat (alternating)", v, v is not None and v >= 1.0, num(v, 2))
        if binder.get("scaling"):
            costs = [m["seconds_per_1k_words"] for m in binder["scaling"].values()]
            spread = max(costs) / min(costs)
            check(f"{c}: flat cost per word over {', '.join(binder['scaling'])} words", spread,
                  spread <= FLAT_COST_TOLERANCE, f"max ÷ min s per 1k words {spread:.2f}")
    return rows


def encoders_section(results: List[Dict]) -> List[str]:
    """binder_ner and its int8 copy per encoder, corpus and budget: what a larger encoder buys and costs."""
    rows = []
    for r in sorted(results, key=lambda r: (Path(r["budget"]["encoder"]).name, r["corpus"], r["budget"]["max_steps"])):
        fp32, int8 = r["systems"]["binder_ner"], r["systems"].get(INT8)
        training = fp32["training"]
        rows.append([
            Path(r["budget"]["encoder"]).name, f"{r['corpus']} ({r['eval_split']})", str(r["budget"]["max_steps"]),
            f"{r['budget']['learn_rate']:g}", pct(fp32["f1"]), pct(int8 and int8["f1"]),
            num(training["wall_seconds"] / 60, 1), num(fp32["inference_words_per_second"]),
            num(int8 and int8["inference_words_per_second"]),
            num(ratio(int8 and int8["inference_words_per_second"], fp32["inference_words_per_second"]), 2),
            num(fp32["inference_memory"]["peak_rss_mb"]), num(int8 and int8["inference_memory"]["peak_rss_mb"]),
        ])
    header = ["encoder", "corpus (split)", "steps", "learn rate", "F1", "F1 int8", "training min",
              "infer w/s", "int8 w/s", "int8 ÷ fp32", "peak RSS MB", "int8 RSS MB"]
    return [
        "## Encoders", "",
        "binder_ner with each encoder (`spacy project run get-mpnet project` fetches all-mpnet-base-v2), "
        "trained by `benchmarks/run.py --systems 'binder_ner,binder_ner int8' --encoder ...` on the "
        "same batches, one machine; training minutes: the whole `spacy train` run, dev evaluations included.", "",
        *table(header, rows),
    ]


# 5-shot decodings of one source, given its support set: as is, and fine-tuned (benchmarks/fewshot.py).
FEWSHOT_SYSTEMS = ("nearest support", "fine-tuned", "fine-tuned, nearest support",
                   "fine-tuned, nearest support + descriptions")


def encoder_name(path: str) -> str:
    """An encoder folder's name; the default encoder's folder is its package's `model`."""
    default = Path(resolve_encoder_name(ENCODER))
    return Path(ENCODER).name if Path(path).parent.name == default.parent.name else Path(path).name


def encoder_fewshot_section(paths: List[Path]) -> List[str]:
    """Zero-shot and 5-shot F1 (mean ± std over seeds) of each encoder's CoNLL-2003 source.
    A run is named by fewshot.py's --encoder (its systems trained from scratch), given as its source's."""
    rows = []
    for path in paths:
        data = json.loads(path.read_text())
        runs = data["runs"]
        cells = []
        for system in FEWSHOT_SYSTEMS:
            values = f1s(data, system, 5)
            cells.append(f"{mean_std(values)} (n={len(values)})" if values else "–")
        seconds = [run["train_seconds"] for run in runs_of(data, "fine-tuned", 5)]
        rows.append([encoder_name(data["settings"]["encoder"]), f"{data['target']} ({data['eval_split']})",
                     pct(runs["zero-shot"]["f1"]), *cells, num(max(seconds, default=None))])
    header = ["source's encoder", "target (split)", "zero-shot", "5-shot: nearest support, no training",
              "(b) fine-tuned", "fine-tuned, nearest support", "fine-tuned, nearest support + descriptions",
              "max fine-tuning s"]
    return [
        "Few-shot and zero-shot from a CoNLL-2003 source of each encoder (`spacy project run fewshot-source` "
        "with `--vars.encoder`, then `benchmarks/fewshot.py --shots 5 --systems 'fine-tuned,nearest support'`): "
        "the same support sets, seeds and fine-tuning settings (docs/FEWSHOT.md); F1 mean ± std over the seeds.", "",
        *table(header, rows),
    ]


def int8_routes_section(result: Dict) -> List[str]:
    """benchmarks/int8_routes.py's comparison: each int8 route in fresh processes, beside fp32."""
    rounds = len(result["runs"]["fp32"])
    return [
        "## int8 routes, from a fresh process",
        "",
        f"`python benchmarks/int8_routes.py compare {result['fp32']} {result['eval']} {result['texts']} ...`: "
        f"each route in a fresh process, {rounds} alternating rounds: the best of them, and in brackets "
        f"the ratio to fp32 in each round (lowest-highest). F1 on {result['eval']}; "
        f"words/s of `nlp.pipe` on texts of {result['texts']}, first the next {result['short_words']:,} words "
        f"after the first document, then the next {result['long_words']:,}; break-even: the input size above "
        "which the route's fresh process finishes before fp32's; `spacy evaluate` timed from outside. "
        "onnxruntime runs in the fp32 pipeline in place of its text encoder (its peak RSS holds both).",
        "",
        routes_table(result),
        "",
    ]


def read_results(folder: Path) -> List[Dict]:
    # The folder also holds the few-shot benchmark's results: only run.py's have a bare encoder row.
    return [r for r in (json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))) if "bare_encoder" in r]


def main(results_dir: Path, output: Path) -> None:
    results = read_results(results_dir)
    if not results:
        raise typer.BadParameter(f"No results in {results_dir}: run benchmarks/run.py first.")
    budget = results[0]["budget"]
    lines = [
        "# Benchmarks: binder_ner, spancat and ner on the same encoder",
        "",
        "Generated by `benchmarks/report.py` from `benchmarks/results/*.json`, written by "
        "`spacy project run benchmark project` (`benchmarks/run.py`). All systems use the same "
        f"encoder ({budget['encoder']}) through spacy-transformers' Hugging Face wrapper, the same "
        f"batches (`batch_by_words` of {budget['batch_words']} words, seed 0) for the same number of "
        f"steps per corpus (the accuracy table's `steps`), Adam at {budget['learn_rate']:g} with {budget['warmup_steps']} warm-up steps and "
        f"linear decay (binder_ner's randomly initialised heads at {budget['binder_heads_learn_rate_scale']:g}× "
        "that rate); the best dev checkpoint is evaluated. Scores are exact-match span P/R/F1 (%).",
        "",
        "## Targets",
        "",
    ]
    lines += table(["target", "measured", "met"], targets(results))
    lines += accuracy_section(results) + ablation_section(results) + speed_section(results)
    encoders = results_dir / "encoders"
    if encoders.exists():
        folders = [folder for folder in sorted(encoders.iterdir()) if folder.is_dir()]
        lines += encoders_section([r for folder in folders for r in read_results(folder)])
        fewshot = [path for folder in folders for path in sorted(folder.glob("fewshot_*.json"))]
        default = sorted({results_dir / "support" / path.name for path in fewshot})
        if fewshot:
            lines += encoder_fewshot_section([path for path in default if path.exists()] + fewshot)
    routes = results_dir / "int8_routes.json"
    if routes.exists():
        lines += int8_routes_section(json.loads(routes.read_text()))
    notes = results_dir / "NOTES.md"
    if notes.exists():
        lines += ["## Notes on these results", "", notes.read_text().strip(), ""]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines))
    typer.echo(f"Wrote {output}")


if __name__ == "__main__":
    typer.run(main)
