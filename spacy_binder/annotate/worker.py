"""What every engine's worker does: load the pipeline once, then annotate whole
shards, each written to temporary names and renamed when complete.

A shard's files are committed in order errors, part, status: a part file
whose status file exists is finished, anything else is redone on a rerun.
A document the pipeline fails on is retried alone and, if it fails again,
written to the shard's errors file with the reason; so documents in =
annotated + errors, always. When every document of a batch fails alone too,
the fault is the worker's (out of memory, a lost GPU), not theirs: the shard
fails, uncommitted, and a rerun redoes it.
"""
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from .atomic import replace
from .shards import Record, Shard, pyarrow_parquet, read_shard

STATUS_DIR = "_shards"


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs, picklable for processes and Ray actors."""

    model: str
    output_dir: str
    text_key: str = "text"
    id_key: str = "id"
    batch_size: int = 64
    output_format: str = "jsonl"
    write_text: bool = False
    threads: int = 1
    use_gpu: bool = False


@dataclass
class ShardResult:
    index: int
    docs: int = 0
    annotated: int = 0
    errors: int = 0
    words: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def part_path(output_dir: Path, index: int, output_format: str) -> Path:
    return output_dir / f"part-{index:05d}.{output_format}"


def errors_path(output_dir: Path, index: int) -> Path:
    return output_dir / f"errors-{index:05d}.jsonl"


def status_path(output_dir: Path, index: int) -> Path:
    return output_dir / STATUS_DIR / f"{index:05d}.json"


def finished(output_dir: Path, index: int, output_format: str) -> Optional[ShardResult]:
    """The counts of a finished shard, None if it must be (re)done."""
    status = status_path(output_dir, index)
    if not (status.exists() and part_path(output_dir, index, output_format).exists()):
        return None
    return ShardResult(**json.loads(status.read_text(encoding="utf8")))


def load_pipeline(settings: Settings) -> Language:
    """torch's threads are set before the pipeline exists, as they must be."""
    import torch

    torch.set_num_threads(settings.threads)
    if settings.use_gpu:
        spacy.require_gpu()
    return spacy.load(settings.model)


def binder_keys(nlp: Language) -> List[str]:
    return [nlp.get_pipe(name).key for name in nlp.pipe_names if nlp.get_pipe_meta(name).factory == "binder_ner"]


def doc_spans(doc: Doc, keys: List[str]) -> List[dict]:
    """The spans of these binder_ner keys with their scores; doc.ents (no
    scores) for a pipeline without binder_ner (no keys)."""
    if not keys:
        return [_span(span, None) for span in doc.ents]
    spans = []
    for key in keys:
        group = doc.spans[key]
        scores = group.attrs.get("scores", [None] * len(group))
        spans.extend(_span(span, score) for span, score in zip(group, scores))
    return spans


def _span(span, score) -> dict:
    return {
        "start_char": span.start_char,
        "end_char": span.end_char,
        "label": span.label_,
        "score": None if score is None else float(score),
        "text": span.text,
    }


class ShardAnnotator:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.nlp = load_pipeline(settings)
        self.keys = binder_keys(self.nlp)
        self.output_dir = Path(settings.output_dir)

    def __call__(self, shard: Shard, on_batch: Callable[[int, int], None] = lambda docs, words: None) -> ShardResult:
        """Annotate one shard and commit its files; on_batch(docs, words) after each batch."""
        start = time.perf_counter()
        result = ShardResult(shard.index)
        rows: List[dict] = []
        errors: List[dict] = []
        for batch in _batches(read_shard(shard, self.settings.text_key, self.settings.id_key), self.settings.batch_size):
            words_before = result.words
            errors.extend(self._error(shard, record, record.reason) for record in batch if record.reason is not None)
            documents = [record for record in batch if record.reason is None]
            for record, spans in zip(documents, self._annotate(documents)):
                if isinstance(spans, str):
                    errors.append(self._error(shard, record, spans))
                    continue
                row = {"id": record.id, **({"text": record.text} if self.settings.write_text else {}), "spans": spans}
                rows.append(row)
                result.words += len(record.text.split())
            result.docs += len(batch)
            on_batch(len(batch), result.words - words_before)
        result.annotated, result.errors = len(rows), len(errors)
        if not result.docs == shard.count == result.annotated + result.errors:
            raise RuntimeError(
                f"Shard {shard.index} ({shard.path}, from line {shard.first_line}): {shard.count} documents "
                f"planned, {result.docs} read, {result.annotated} annotated + {result.errors} errors. "
                "Was the input changed while annotating?"
            )
        result.seconds = time.perf_counter() - start
        self._commit(shard.index, rows, errors, result)
        return result

    def _annotate(self, records: List[Record]) -> List[object]:
        """Spans per document, or the reason it failed (a str)."""
        nlp = self.nlp
        try:
            with nlp.memory_zone():
                docs = nlp.pipe([record.text for record in records], batch_size=len(records))
                return [doc_spans(doc, self.keys) for doc in docs]
        except Exception as err:
            # One bad document fails its whole batch: find it by annotating each alone.
            results = [self._one(record) for record in records]
            if len(records) > 1 and all(isinstance(r, str) for r in results):
                # Not the documents but the worker (out of memory, a lost GPU): fail the
                # shard, which a rerun redoes, rather than write every document off.
                raise RuntimeError(f"The pipeline failed on every document of a batch: {results[0]}") from err
            return results

    def _one(self, record: Record) -> object:
        try:
            with self.nlp.memory_zone():
                return doc_spans(self.nlp(record.text), self.keys)
        except Exception as err:
            return f"{type(err).__name__}: {err}"

    def _error(self, shard: Shard, record: Record, reason: str) -> dict:
        return {"id": record.id, "file": shard.path, "line": record.line, "reason": reason}

    def _commit(self, index: int, rows: List[dict], errors: List[dict], result: ShardResult) -> None:
        out = self.output_dir
        (out / STATUS_DIR).mkdir(parents=True, exist_ok=True)
        replace(errors_path(out, index), lambda tmp: _write_jsonl(tmp, errors))
        part = part_path(out, index, self.settings.output_format)
        if self.settings.output_format == "parquet":
            replace(part, lambda tmp: _write_parquet(tmp, rows, self.settings.write_text))
        else:
            replace(part, lambda tmp: _write_jsonl(tmp, rows))
        replace(status_path(out, index), lambda tmp: tmp.write_text(json.dumps(result.to_dict()), encoding="utf8"))


def _batches(records: Iterator[Record], size: int) -> Iterator[List[Record]]:
    batch: List[Record] = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _write_jsonl(path: Path, rows: List[dict]) -> None:
    with path.open("w", encoding="utf8") as file:
        file.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _write_parquet(path: Path, rows: List[dict], write_text: bool) -> None:
    """Ids are strings in Parquet (one column type for all)."""
    import pyarrow as pa

    span = pa.struct([
        ("start_char", pa.int64()), ("end_char", pa.int64()), ("label", pa.string()),
        ("score", pa.float32()), ("text", pa.string()),
    ])
    fields = [("id", pa.string())] + ([("text", pa.string())] if write_text else []) + [("spans", pa.list_(span))]
    table = pa.Table.from_pylist([{**row, "id": str(row["id"])} for row in rows], schema=pa.schema(fields))
    pyarrow_parquet().write_table(table, path)
