"""Input shards: a corpus cut into pieces of about `shard_docs` documents.

A shard is the unit of work, of output (one part file each) and of resuming.
Planning reads each JSONL file once as bytes and notes where every shard
starts, so that a worker seeks straight to its shard. A Parquet shard is one
or more whole row groups (a row group is read whole, so a shard never splits
one: a row group larger than `shard_docs` is a shard of its own). Reading a
shard yields every line or row: the documents, and, for what is not one (not
UTF-8, not JSON, no string text), an error record with its place and the
reason, so that nothing is dropped.
"""
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, List, Optional

from tqdm import tqdm

FORMATS = ("jsonl", "parquet")
SUFFIXES = {".jsonl": "jsonl", ".parquet": "parquet"}
# Ids a JSON line and a Parquet string column both keep as they are.
PLAIN_IDS = (str, int, float)


@dataclass(frozen=True)
class Shard:
    index: int
    path: str
    name: str  # the file's path relative to INPUT: default ids are NAME:LINE
    format: str
    start: int  # byte offset (jsonl) or row (parquet) of the first document
    first_line: int  # 1-based line (jsonl) or row (parquet) number of the first document
    count: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Record:
    """One input line or row: a document (text set) or an error (reason set)."""

    line: int
    id: object
    text: Optional[str] = None
    reason: Optional[str] = None


def pyarrow_parquet():
    try:
        import pyarrow.parquet
    except ImportError as err:
        raise ImportError("Parquet input or output needs pyarrow: pip install 'spacy-binder[parquet]'") from err
    return pyarrow.parquet


def input_files(input: Path) -> List[Path]:
    """The JSONL and Parquet files of INPUT (a file, or a folder searched
    recursively, hidden folders left out), sorted so that shard numbers never
    change between runs."""
    if input.is_file():
        if input.suffix.lower() not in SUFFIXES:
            raise ValueError(f"Cannot read {input}: the input must be .jsonl or .parquet files.")
        return [input]
    if not input.is_dir():
        raise ValueError(f"Input {input} does not exist.")
    files = sorted(
        path for path in input.rglob("*")
        if path.is_file() and path.suffix.lower() in SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(input).parts)
    )
    if not files:
        raise ValueError(f"No .jsonl or .parquet files in {input}.")
    return files


def plan_shards(input: Path, shard_docs: int, text_key: str, progress: bool = True) -> List[Shard]:
    if shard_docs < 1:
        raise ValueError(f"shard_docs must be at least 1, got {shard_docs}.")
    shards: List[Shard] = []
    root = input if input.is_dir() else input.parent
    for path in input_files(input):
        kind = SUFFIXES[path.suffix.lower()]
        if kind == "jsonl":
            pieces = _jsonl_pieces(path, shard_docs, progress)
        else:
            pieces = _parquet_pieces(path, shard_docs, text_key)
        name = str(path.relative_to(root))
        for start, first_line, count in pieces:
            shards.append(Shard(len(shards), str(path), name, kind, start, first_line, count))
    return shards


def _jsonl_pieces(path: Path, shard_docs: int, progress: bool) -> Iterator[tuple]:
    """(byte offset, first line, lines) of each run of shard_docs lines."""
    offset, start, first_line, count = 0, 0, 1, 0
    with path.open("rb") as file, tqdm(
        total=path.stat().st_size, unit="B", unit_scale=True, desc=f"planning {path.name}", leave=False,
        disable=not progress,
    ) as bar:
        for number, line in enumerate(file, start=1):
            if count == shard_docs:
                yield start, first_line, count
                start, first_line, count = offset, number, 0
            offset += len(line)
            count += 1
            bar.update(len(line))
    if count:
        yield start, first_line, count


def _parquet_pieces(path: Path, shard_docs: int, text_key: str) -> Iterator[tuple]:
    """(first row, its number, rows) of runs of whole row groups, about shard_docs rows each."""
    file = pyarrow_parquet().ParquetFile(path)
    if text_key not in file.schema_arrow.names:
        raise ValueError(f"{path} has no column '{text_key}' (columns: {file.schema_arrow.names}); set --text-key.")
    start = count = 0
    for group in range(file.num_row_groups):
        n_rows = file.metadata.row_group(group).num_rows
        if count and count + n_rows > shard_docs:
            yield start, start + 1, count
            start, count = start + count, 0
        count += n_rows
    if count:
        yield start, start + 1, count


def read_shard(shard: Shard, text_key: str, id_key: str) -> Iterator[Record]:
    rows = _jsonl_rows(shard) if shard.format == "jsonl" else _parquet_rows(shard, text_key, id_key)
    for line, row, reason in rows:
        default_id = f"{shard.name}:{line}"
        if reason is not None:
            yield Record(line, default_id, reason=reason)
            continue
        doc_id = row.get(id_key)
        if doc_id is None:
            doc_id = default_id
        elif not isinstance(doc_id, PLAIN_IDS):  # a date, a decimal, bytes, a list: written as text
            doc_id = str(doc_id)
        text = row.get(text_key)
        if not isinstance(text, str):
            found = "missing" if text_key not in row else "null" if text is None else f"a {type(text).__name__}"
            yield Record(line, doc_id, reason=f"'{text_key}' is {found}, not a string")
        else:
            yield Record(line, doc_id, text=text)


def _jsonl_rows(shard: Shard) -> Iterator[tuple]:
    with open(shard.path, "rb") as file:
        file.seek(shard.start)
        for line in range(shard.first_line, shard.first_line + shard.count):
            raw = file.readline()
            try:
                row = json.loads(raw.decode("utf-8-sig"))  # -sig: a byte-order mark is not text
            except UnicodeDecodeError as err:
                yield line, None, f"not UTF-8: {err}"
                continue
            except json.JSONDecodeError as err:
                yield line, None, f"not JSON: {err}" if raw.strip() else "empty line"
                continue
            if not isinstance(row, dict):
                yield line, None, f"a JSON {type(row).__name__}, not an object"
            else:
                yield line, row, None


def _parquet_rows(shard: Shard, text_key: str, id_key: str) -> Iterator[tuple]:
    file = pyarrow_parquet().ParquetFile(shard.path)
    columns = list(dict.fromkeys([text_key] + ([id_key] if id_key in file.schema_arrow.names else [])))
    groups, row = [], 0
    for group in range(file.num_row_groups):
        if shard.start <= row < shard.start + shard.count:
            groups.append(group)
        row += file.metadata.row_group(group).num_rows
    table = file.read_row_groups(groups, columns=columns)
    if table.num_rows != shard.count:
        raise ValueError(f"{shard.path} changed since it was planned: rows {shard.start}+ hold {table.num_rows}, not {shard.count}.")
    for offset, values in enumerate(table.to_pylist()):
        yield shard.first_line + offset, values, None
