"""JSON lines with mentions over tokens (`tokens`) or characters (`text`).

{"tokens": [...], "doc_id": ..., "entity_mentions": [{"start": i, "end": j, "entity_type": T}]}
{"text": "...", "doc_id": ..., "entity_mentions": [{"start": c0, "end": c1, "entity_type": T}]}
`end` is exclusive in both.
"""
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import srsly

from .docs import Sentence
from .report import ConversionError, ConversionReport

TextRecord = Tuple[str, List[Tuple[int, int, str, str]], str]


def _records(path: Path, report: ConversionReport, skip_bad: bool, field: str) -> Iterator[Tuple[int, Dict[str, Any]]]:
    with Path(path).open(encoding="utf8") as file:
        for line_no, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                record = srsly.json_loads(line)
                if not isinstance(record, dict) or field not in record:
                    raise ValueError(f"a JSON object with '{field}' is expected")
                mentions = record.get("entity_mentions", [])
                for m in mentions:
                    if not (
                        isinstance(m, dict)
                        and isinstance(m.get("start"), int)
                        and isinstance(m.get("end"), int)
                        and isinstance(m.get("entity_type"), str)
                        and m["entity_type"]
                    ):
                        raise ValueError(
                            f"bad mention {m!r}: each of 'entity_mentions' must be an object with "
                            f"integer 'start' and 'end' ({'token' if field == 'tokens' else 'character'} "
                            "offsets, end exclusive) and a non-empty 'entity_type'; fix the line, or "
                            "pass --skip-bad to skip and count such lines"
                        )
            except (ValueError, TypeError, KeyError) as err:
                report.bad_input(ConversionError(str(path), line_no, f"{err}: {line.strip()[:80]!r}"), skip_bad)
                continue
            yield line_no, record


def read_token_jsonl(path: Path, report: ConversionReport, *, skip_bad: bool = False) -> Iterator[Sentence]:
    last_doc_id = object()
    for line_no, record in _records(path, report, skip_bad, "tokens"):
        words = record["tokens"]
        report.sentences_read += 1
        doc_id = record.get("doc_id")
        if doc_id is None or doc_id != last_doc_id:
            report.documents_read += 1
        last_doc_id = doc_id
        mentions = []
        for m in record.get("entity_mentions", []):
            report.mentions_read[m["entity_type"]] += 1
            if not 0 <= m["start"] < m["end"] <= len(words):
                report.unplaced.append(
                    f"{path}, line {line_no}: token offsets {m['start']}-{m['end']} outside the "
                    f"sentence ({len(words)} tokens)"
                )
                continue
            mentions.append((m["start"], m["end"], m["entity_type"]))
        yield Sentence(words, mentions, record.get("doc_id"))


def read_text_jsonl(path: Path, report: ConversionReport, *, skip_bad: bool = False) -> Iterator[TextRecord]:
    for line_no, record in _records(path, report, skip_bad, "text"):
        report.documents_read += 1
        mentions = []
        for m in record.get("entity_mentions", []):
            report.mentions_read[m["entity_type"]] += 1
            mentions.append((m["start"], m["end"], m["entity_type"], f"{path}, line {line_no}"))
        yield record["text"], mentions, str(record.get("doc_id", line_no))
