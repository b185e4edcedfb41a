"""Annotate a corpus with a pipeline: local processes or a Ray cluster, resumable.

    annotate("model-best", "corpus/", "out/", engine="ray", workers=8)

INPUT (a JSONL or Parquet file, or a folder of them) is cut into shards of
about `shard_docs` documents; each shard becomes `part-NNNNN.jsonl` (or
.parquet), one line per annotated document, and `errors-NNNNN.jsonl`, one line
per document that could not be annotated. `manifest.json` names the model, the
input and the settings; with all shards done it gets the counts and then
`_SUCCESS` is written. A rerun skips the finished shards. Local workers are
spawned processes: a script that calls this with workers > 1 needs the
`if __name__ == "__main__":` guard.
"""
import os
import time
from pathlib import Path
from typing import Iterable, List, Optional, Union

from tqdm import tqdm

from . import manifest as manifest_file
from .engines import ENGINES, run_local, run_ray
from .manifest import SUCCESS, ManifestMismatch, model_identity
from .shards import FORMATS, Shard, plan_shards, pyarrow_parquet
from .atomic import remove_temporary_files
from .worker import STATUS_DIR, Settings, ShardResult, finished

__all__ = ["annotate", "ManifestMismatch", "ENGINES", "FORMATS"]


def annotate(
    model: str,
    input: Union[str, Path],
    output_dir: Union[str, Path],
    *,
    engine: str = "local",
    workers: int = 1,
    batch_size: int = 64,
    text_key: str = "text",
    id_key: str = "id",
    shard_docs: int = 1000,
    output_format: str = "jsonl",
    write_text: bool = False,
    threads_per_worker: Optional[int] = None,
    gpus_per_worker: float = 0.0,
    address: Optional[str] = None,
    wheel: Optional[Union[str, Path]] = None,
    progress: bool = True,
) -> dict:
    """Annotate INPUT into OUTPUT_DIR and return the manifest (with counts).

    model: a pipeline folder or an installed package name; with `wheel` (the
    package's wheel from `spacy package`) Ray installs it on its workers
    through runtime_env. threads_per_worker: torch threads per worker (default:
    the CPUs divided among local workers; 1 per Ray actor, which reserves as
    many CPUs).
    """
    if engine not in ENGINES:
        raise ValueError(f"Unknown engine '{engine}': use one of {ENGINES}.")
    if output_format not in FORMATS:
        raise ValueError(f"Unknown output format '{output_format}': use one of {FORMATS}.")
    if workers < 1 or batch_size < 1 or (threads_per_worker is not None and threads_per_worker < 1):
        raise ValueError(
            f"workers, batch_size and threads_per_worker must be at least 1, got {workers}, {batch_size} "
            f"and {threads_per_worker}."
        )
    if gpus_per_worker < 0:
        raise ValueError(f"gpus_per_worker must be >= 0, got {gpus_per_worker}.")
    if wheel is not None and engine != "ray":
        raise ValueError("A wheel is installed on Ray workers: for the local engine, pip install it.")
    input, output_dir = Path(input).resolve(), Path(output_dir).resolve()
    if output_dir == input or input in output_dir.parents:
        raise ValueError(f"The output folder {output_dir} is inside the input {input}: its parts would be read as input.")
    wheel_path = Path(wheel).resolve() if wheel is not None else None
    identity = model_identity(model, wheel_path)
    shards = plan_shards(input, shard_docs, text_key, progress)
    if output_format == "parquet":
        pyarrow_parquet()  # fail now, not after the first shard
    threads = threads_per_worker or _default_threads(engine, workers)
    settings = Settings(
        model=str(Path(model).resolve()) if Path(model).is_dir() else model,
        output_dir=str(output_dir),
        text_key=text_key,
        id_key=id_key,
        batch_size=batch_size,
        output_format=output_format,
        write_text=write_text,
        threads=threads,
        use_gpu=gpus_per_worker > 0,
    )
    manifest = {
        "model": identity,
        "input": {"path": str(input), "files": _files(shards), "shards": [shard.to_dict() for shard in shards]},
        "settings": {"text_key": text_key, "id_key": id_key, "shard_docs": shard_docs,
                     "output_format": output_format, "write_text": write_text},
        "complete": False,
    }
    if (output_dir / SUCCESS).exists():  # before the manifest says "incomplete"
        (output_dir / SUCCESS).unlink()
    manifest_file.check_or_write(output_dir, manifest)
    for folder in (output_dir, output_dir / STATUS_DIR):  # what a crashed run left half-written
        remove_temporary_files(folder)
    results = {}
    for shard in shards:
        done = finished(output_dir, shard.index, output_format)
        if done is not None:
            results[shard.index] = done
    todo = [shard for shard in shards if shard.index not in results]
    start = time.perf_counter()
    with tqdm(total=sum(s.count for s in todo), unit="doc", desc="annotating", disable=not progress) as bar:
        words = 0

        def advance(docs: int, new_words: int) -> None:
            nonlocal words
            words += new_words
            bar.update(docs)
            bar.set_postfix(words_per_s=f"{words / max(time.perf_counter() - start, 1e-9):,.0f}", refresh=False)

        for result in _run(engine, todo, settings, min(workers, len(todo)), advance, gpus_per_worker, address, wheel_path):
            results[result.index] = result
    manifest.update(
        complete=True,
        counts=_counts([results[shard.index] for shard in shards]),
        shards_skipped=len(shards) - len(todo),
        seconds=round(time.perf_counter() - start, 3),
    )
    manifest_file.write(output_dir, manifest)
    (output_dir / SUCCESS).write_text("", encoding="utf8")
    return manifest


def _run(engine: str, todo: List[Shard], settings: Settings, workers: int, advance, gpus_per_worker: float,
         address: Optional[str], wheel: Optional[Path]) -> Iterable[ShardResult]:
    if not todo:
        return []
    if engine == "local":
        return run_local(todo, settings, workers, advance)
    return run_ray(
        todo, settings, workers, advance, cpus_per_worker=settings.threads, gpus_per_worker=gpus_per_worker,
        address=address, runtime_env={"pip": [str(wheel)]} if wheel is not None else None,
    )


def _default_threads(engine: str, workers: int) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 1 if engine == "ray" else max(1, cpus // workers)


def _files(shards: List[Shard]) -> List[dict]:
    stats = {path: Path(path).stat() for path in sorted({shard.path for shard in shards})}
    return [{"path": path, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns} for path, stat in stats.items()]


def _counts(results: List[ShardResult]) -> dict:
    counts = {key: sum(getattr(r, key) for r in results) for key in ("docs", "annotated", "errors", "words")}
    if counts["docs"] != counts["annotated"] + counts["errors"]:
        raise RuntimeError(f"Counts do not add up (a bug): {counts}.")
    return counts
