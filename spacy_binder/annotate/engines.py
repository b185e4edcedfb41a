"""Engines map shards over workers and yield each finished shard's counts.

`local`: this process or a pool of `workers` processes, each loading the
pipeline once. `ray`: a Ray Data actor pool over
the shards (one shard per task), each actor loading the pipeline once in its
constructor; it joins a running cluster (`address` or RAY_ADDRESS) or starts
one on this machine. Either way a worker runs `ShardAnnotator`, so both give
the same spans, and reports every batch through a queue for the progress bar.
"""
import concurrent.futures
import multiprocessing
import os
import threading
from typing import Callable, Dict, Iterator, List, Optional, Tuple, Union

from ..errors import warn
from .shards import Shard
from .worker import Settings, ShardAnnotator, ShardResult

ENGINES = ("local", "ray")
Progress = Callable[[int, int], None]

_annotator: Union[ShardAnnotator, Exception, None] = None
_batches_queue = None


class _ShardProgress:
    """Workers' per-batch counts, reconciled with each shard's result: a batch
    message may arrive after its shard's result (another channel), so a
    finished shard is topped up to its full counts once and later messages
    for it are dropped. Totals are exact either way."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.credited: Dict[int, Tuple[int, int]] = {}
        self.finished_shards = set()
        self.lock = threading.Lock()

    def batch(self, index: int, docs: int, words: int) -> None:
        with self.lock:
            if index in self.finished_shards:
                return
            done_docs, done_words = self.credited.get(index, (0, 0))
            self.credited[index] = (done_docs + docs, done_words + words)
            self.progress(docs, words)

    def finished(self, result: ShardResult) -> None:
        with self.lock:
            done_docs, done_words = self.credited.pop(result.index, (0, 0))
            self.finished_shards.add(result.index)
            self.progress(result.docs - done_docs, result.words - done_words)


def _relay(queue, tracker: _ShardProgress) -> threading.Thread:
    """A thread that passes (shard, docs, words) messages on until it gets None."""
    def drain() -> None:
        for message in iter(queue.get, None):
            tracker.batch(*message)

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    return thread


def run_local(shards: List[Shard], settings: Settings, workers: int, progress: Progress) -> Iterator[ShardResult]:
    if workers == 1:
        annotator = ShardAnnotator(settings)
        for shard in shards:
            yield annotator(shard, on_batch=progress)
        return
    # spawn, not fork: a forked child inherits torch's thread pool and this
    # process's threads (the progress bar's) in whatever state they are in.
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    tracker = _ShardProgress(progress)
    relay = _relay(queue, tracker)
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_process, initargs=(settings, queue)
    ) as pool:
        futures = [pool.submit(_annotate_in_process, shard) for shard in shards]
        try:
            for future in concurrent.futures.as_completed(futures):
                result = future.result()
                tracker.finished(result)
                yield result
        except concurrent.futures.process.BrokenProcessPool as err:
            raise RuntimeError(
                "A worker process died (killed, out of memory or crashed) before all shards "
                "were annotated. The finished shards are kept: run the same command again to "
                "annotate the rest."
            ) from err
        finally:  # on an error, do not annotate the queued shards first
            pool.shutdown(cancel_futures=True)
            queue.put(None)
            relay.join()


def _init_process(settings: Settings, queue) -> None:
    global _annotator, _batches_queue
    _batches_queue = queue
    try:
        _annotator = ShardAnnotator(settings)
    except Exception as err:  # raised with the first shard, in the parent, not lost in a log
        _annotator = _load_error(err)


def _load_error(err: Exception) -> RuntimeError:
    """A picklable error (spaCy's own do not all pickle) that keeps the reason."""
    return RuntimeError(
        f"A worker could not load the pipeline: {type(err).__name__}: {err}. MODEL must be a "
        "pipeline folder or an installed package name that every worker can load: a path "
        "every worker can read (on Ray, on every node), or, for Ray, the package's wheel "
        "given with --wheel (build it with `spacy package`)."
    )


def _annotate_in_process(shard: Shard) -> ShardResult:
    if isinstance(_annotator, Exception):
        raise _annotator
    return _annotator(shard, on_batch=lambda docs, words: _batches_queue.put((shard.index, docs, words)))


class _RayShardAnnotator:
    """A Ray Data actor: the pipeline is loaded once, in the constructor (in the
    actor's runtime_env, where a pipeline wheel is installed)."""

    def __init__(self, settings: Settings, batches_queue):
        self.batches_queue = batches_queue
        # A constructor that raises leaves Ray Data waiting for the actor for
        # ever; a task that raises fails the dataset at once, with the reason.
        try:
            self.annotator: Union[ShardAnnotator, Exception] = ShardAnnotator(settings)
        except Exception as err:
            self.annotator = _load_error(err)

    def __call__(self, batch: Dict[str, list]) -> Dict[str, list]:
        if isinstance(self.annotator, Exception):
            raise self.annotator
        results = []
        for values in zip(*(batch[name] for name in Shard.__dataclass_fields__)):
            shard = Shard(*map(_plain, values))
            on_batch = lambda docs, words, index=shard.index: self.batches_queue.put((index, docs, words))
            results.append(self.annotator(shard, on_batch=on_batch).to_dict())
        return {name: [result[name] for result in results] for name in ShardResult.__dataclass_fields__}


def run_ray(
    shards: List[Shard],
    settings: Settings,
    workers: int,
    progress: Progress,
    *,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    address: Optional[str] = None,
    runtime_env: Optional[dict] = None,
) -> Iterator[ShardResult]:
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise ImportError("--engine ray needs Ray Data: pip install 'spacy-binder[ray]'") from err
    if not ray.is_initialized():
        if address is None and not os.environ.get("RAY_ADDRESS"):  # a cluster for this run alone
            ray.init(log_to_driver=False, include_dashboard=False)  # no dashboard: a second faster
        else:
            ray.init(address=address, log_to_driver=False)
    elif address is not None:
        warn(
            f"Ray is already initialized in this process: its cluster is used, not address "
            f"'{address}'. Call ray.shutdown() first to use that cluster."
        )
    # Ray Data hangs when actors hold every CPU and a read task needs one
    # (ray-project/ray#44687). The shards come from this process's memory
    # (from_items: no read tasks), so the actors may take all CPUs; more actors
    # than fit would wait for ever, so they are refused.
    resources = ray.cluster_resources()
    for name, each in (("CPU", cpus_per_worker), ("GPU", gpus_per_worker)):
        if workers * each > resources.get(name, 0.0):
            raise ValueError(
                f"{workers} workers x {each:g} {name}s need {workers * each:g} {name}s; the Ray cluster "
                f"has {resources.get(name, 0.0):g}. Use fewer workers or fewer {name}s per worker."
            )
    from ray.util.queue import Queue

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    queue = Queue(actor_options={"num_cpus": 0})  # takes none of the actors' CPUs
    tracker = _ShardProgress(progress)
    relay = _relay(queue, tracker)
    dataset = ray.data.from_items([shard.to_dict() for shard in shards], override_num_blocks=max(1, len(shards)))
    annotated = dataset.map_batches(
        _RayShardAnnotator,
        fn_constructor_kwargs={"settings": settings, "batches_queue": queue},
        batch_size=1,
        concurrency=workers,
        num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker,
        **({"runtime_env": runtime_env} if runtime_env else {}),
    )
    try:
        for row in annotated.iter_rows():
            result = ShardResult(**{name: _plain(row[name]) for name in ShardResult.__dataclass_fields__})
            tracker.finished(result)
            yield result
    finally:
        queue.put(None)
        relay.join()
        queue.shutdown()


def _plain(value):
    """A Python scalar from the numpy one Ray Data's batches hold."""
    return value.item() if hasattr(value, "item") else value
