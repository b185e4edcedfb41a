"""BRAT standoff: `NAME.txt` with `NAME.ann`; text-bound (T) annotations become mentions."""
from pathlib import Path
from typing import Iterator

from .jsonl import TextRecord
from .report import ConversionError, ConversionReport


def read_brat(folder: Path, report: ConversionReport, *, skip_bad: bool = False) -> Iterator[TextRecord]:
    texts = sorted(Path(folder).glob("*.txt"))
    if not texts:
        raise ValueError(f"No BRAT .txt files in {folder}.")
    for txt in texts:
        ann = txt.with_suffix(".ann")
        if not ann.exists():
            raise ValueError(f"{txt} has no annotation file {ann.name}.")
        text = txt.read_text(encoding="utf8")
        report.documents_read += 1
        mentions = []
        for line_no, line in enumerate(ann.read_text(encoding="utf8").splitlines(), 1):
            if not line.startswith("T"):
                continue  # relations, events, attributes and notes are not mentions
            where = f"{ann}, line {line_no}"
            try:
                _, type_offsets, surface = line.split("\t", 2)
                label, offsets = type_offsets.split(" ", 1)
            except ValueError:
                report.bad_input(ConversionError(str(ann), line_no, f"malformed text-bound annotation {line!r}"), skip_bad)
                continue
            report.mentions_read[label] += 1
            if ";" in offsets:
                report.unplaced.append(f"{where}: discontinuous mention {surface!r} ({offsets}) skipped")
                continue
            try:
                start, end = (int(x) for x in offsets.split())
            except ValueError:
                report.bad_input(ConversionError(str(ann), line_no, f"bad offsets {offsets!r}"), skip_bad)
                continue
            if text[start:end] != surface:
                report.unplaced.append(f"{where}: offsets {start}-{end} give {text[start:end]!r}, not {surface!r}")
                continue
            mentions.append((start, end, label, where))
        yield text, mentions, txt.stem
