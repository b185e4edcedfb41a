"""Corpus annotation: local processes against Ray actors, and what PubMed would cost.

python benchmarks/annotate_scaling.py MODEL CORPUS.spacy [CORPUS.spacy ...] RESULTS_JSON REPORT_MD
    [--docs 2000] [--runs 3] [--configs local:1:2,local:2:1,ray:1:2,ray:2:1] [--shard-docs 100]

Each config is ENGINE:WORKERS:THREADS. The documents are the texts of the
.spacy files (never copied into the repository: written to --work-dir). Each
run times `python -m spacy_binder annotate` in a fresh process, once over all
documents and once over one document (the fixed start-up: interpreter, Ray,
loading the pipeline in every worker); the per-document cost is the
difference over the documents. Configs alternate within each run and the
median of the runs is kept. First, the check that this machine gives about 2x
for two busy processes (a torch matmul loop, one thread each).
"""
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List

import typer

from common import alternate, references, run_command

PUBMED_DOCS = 36e6
PUBMED_WORDS = 5.5e9
BUSY_LOOP = (
    "import time, torch; torch.set_num_threads(1); a = torch.randn(256, 256); n = 0; end = time.time() + {s}\n"
    "while time.time() < end: a @ a; n += 1\n"
    "print(n)"
)


def busy_ratio(seconds: float) -> float:
    """Work done by two concurrent busy processes over one alone (2.0: two real cores)."""
    def launch(count: int) -> int:
        procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(s=seconds)], stdout=subprocess.PIPE, text=True)
                 for _ in range(count)]
        return sum(int(p.communicate(timeout=seconds + 120)[0]) for p in procs)

    return launch(2) / launch(1)


def write_input(corpora: List[Path], n_docs: int, folder: Path) -> dict:
    texts = [doc.text for path in corpora for doc in references(path) if doc.text.strip()]
    if len(texts) < n_docs:
        raise typer.BadParameter(f"the corpora hold {len(texts)} non-empty documents, fewer than --docs {n_docs}")
    texts = texts[:n_docs]
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("all", texts), ("one", texts[:1])):
        with (folder / f"{name}.jsonl").open("w", encoding="utf8") as file:
            file.writelines(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(part))
    return {"docs": len(texts), "words": sum(len(t.split()) for t in texts)}


def annotate(model: str, input: Path, output: Path, config: str, shard_docs: int) -> None:
    engine, workers, threads = config.split(":")
    run_command([sys.executable, "-m", "spacy_binder", "annotate", model, str(input), str(output), "--engine", engine,
                 "--workers", workers, "--threads-per-worker", threads, "--shard-docs", str(shard_docs)], timeout=3600)


def main(
    model: str,
    paths: List[Path] = typer.Argument(..., help="CORPUS.spacy files, then RESULTS_JSON and REPORT_MD"),
    docs: int = typer.Option(2000, help="Documents to annotate"),
    runs: int = typer.Option(3, help="Runs per config (the median is kept)"),
    configs: str = typer.Option("local:1:2,local:2:1,ray:1:2,ray:2:1", help="ENGINE:WORKERS:THREADS, comma-separated"),
    shard_docs: int = typer.Option(100, help="Documents per shard"),
    busy_seconds: float = typer.Option(10.0, help="Length of the two-busy-processes check"),
    price_per_hour: float = typer.Option(0.10, help="Assumed price of one 2-core machine-hour (USD), for the estimate"),
    gpu_speedup: float = typer.Option(0.0, help="Bare-encoder words/s on a GPU over this CPU's, if measured (0: none)"),
    work_dir: Path = typer.Option(Path(tempfile.gettempdir()) / "annotate_scaling", help="Inputs and outputs go here"),
) -> None:
    *corpora, results_path, report_path = paths
    if not corpora:
        raise typer.BadParameter("give at least one CORPUS.spacy before RESULTS_JSON and REPORT_MD")
    ratio = busy_ratio(busy_seconds)
    typer.echo(f"two busy processes do {ratio:.2f}x the work of one")
    size = write_input(corpora, docs, work_dir / "input")
    names = [c.strip() for c in configs.split(",") if c.strip()]
    parts = {f"{name} {part}": (name, part) for name in names for part in ("one", "all")}

    def fresh_output(key: str) -> Path:
        name, part = parts[key]
        output = work_dir / "output" / f"{name.replace(':', '_')}_{part}"
        shutil.rmtree(output, ignore_errors=True)  # a fresh run, nothing to resume
        return output

    seconds = alternate(
        {
            key: lambda output, name=name, part=part: annotate(
                model, work_dir / "input" / f"{part}.jsonl", output, name, shard_docs
            )
            for key, (name, part) in parts.items()
        },
        runs,
        prepare=fresh_output,
    )
    timings = {name: {part: seconds[f"{name} {part}"] for part in ("all", "one")} for name in names}
    rows = {}
    for name in names:
        _, workers, threads = name.split(":")
        startup = statistics.median(timings[name]["one"])
        per_doc = (statistics.median(timings[name]["all"]) - startup) / size["docs"]
        measured = per_doc > 0  # not on a smoke run's few documents, within the start-up's noise
        rows[name] = {
            "startup_s": startup,
            "docs_per_s": 1.0 / per_doc if measured else None,
            "words_per_s": size["words"] / size["docs"] / per_doc if measured else None,
            "cpu_s_per_doc": per_doc * int(workers) * int(threads) if measured else None,
            "timings": timings[name],
        }
    results = {"busy_ratio": ratio, "input": size, "shard_docs": shard_docs, "configs": rows,
               "price_per_hour": price_per_hour, "gpu_speedup": gpu_speedup, "model": model}
    Path(results_path).write_text(json.dumps(results, indent=2), encoding="utf8")
    Path(report_path).write_text(report(results), encoding="utf8")
    typer.echo(f"wrote {results_path} and {report_path}")


def report(results: dict) -> str:
    rows, size = results["configs"], results["input"]
    lines = [
        "# Annotating a corpus: local processes and Ray",
        "",
        "Written by `python benchmarks/annotate_scaling.py` (see its docstring for the method). "
        f"{size['docs']} documents ({size['words']} words), shards of {results['shard_docs']}; "
        f"median of {len(next(iter(rows.values()))['timings']['all'])} runs. Two busy processes did "
        f"{results['busy_ratio']:.2f}x the work of one on this machine"
        + (" (two real cores)." if results["busy_ratio"] >= 1.8 else ": NOT two real cores, so the 2-worker rows are not 2x."),
        "",
        "Start-up is the whole command over one document: the interpreter and imports (the same for both "
        "engines), loading the pipeline in every worker and, for Ray, starting a local cluster (joining a running "
        "one is cheaper) and its actor processes, which import the package again. Documents are sentences of the "
        "corpora, so words/s, not docs/s, carries over to abstracts.",
        "",
        "| engine:workers:threads | start-up s | docs/s | words/s | CPU-s per doc (wall x workers x threads) |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        if row["docs_per_s"] is None:
            lines.append(f"| {name} | {row['startup_s']:.1f} | n/a | n/a | n/a (all took no longer than one) |")
        else:
            lines.append(f"| {name} | {row['startup_s']:.1f} | {row['docs_per_s']:.1f} | {row['words_per_s']:,.0f} | "
                         f"{row['cpu_s_per_doc']:.4f} |")
    lines.append("")
    measured = {name: row for name, row in rows.items() if row["docs_per_s"] is not None}
    for engines in (("local:2:1", "ray:2:1"), ("local:1:2", "ray:1:2")):
        if all(e in measured for e in engines):
            cost = rows[engines[1]]["cpu_s_per_doc"] / rows[engines[0]]["cpu_s_per_doc"]
            lines.append(f"- Ray's per-document cost over local's, {engines[1]} / {engines[0]}: {cost:.2f} "
                         f"(target <= 1.10); Ray start-up {rows[engines[1]]['startup_s']:.1f} s (target < 15).")
    if not measured:
        return "\n".join(lines) + "\n"
    best = max(measured.values(), key=lambda row: row["words_per_s"])
    hours = PUBMED_WORDS / best["words_per_s"] / 3600
    per_million = 1e6 * PUBMED_WORDS / PUBMED_DOCS / best["words_per_s"] / 3600
    lines += [
        "",
        "## A paper estimate for PubMed",
        "",
        f"About {PUBMED_DOCS / 1e6:.0f} million abstracts, {PUBMED_WORDS / 1e9:.1f} billion words. At the best "
        f"2-core rate measured here, {best['words_per_s']:,.0f} words/s per machine: **{hours:,.0f} machine-hours** "
        f"on CPU, {per_million:,.1f} machine-hours per million abstracts, about "
        f"${per_million * results['price_per_hour']:,.2f} per million at an assumed ${results['price_per_hour']:.2f} "
        "per 2-core machine-hour. Start-up is paid once per worker, not per shard.",
    ]
    if results["gpu_speedup"] > 0:
        gpu = per_million / results["gpu_speedup"]
        lines.append(f"On GPU, scaling by the bare encoder's GPU/CPU speed ratio ({results['gpu_speedup']:g}x): "
                     f"{gpu:,.2f} GPU-hours per million abstracts.")
    else:
        lines.append("On GPU: not estimated, no bare-encoder GPU speed was measured (--gpu-speedup).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    typer.run(main)
