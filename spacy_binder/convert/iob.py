"""Token-per-line files with BIO-style tags: CoNLL-2003 columns, `word<TAB>tag`."""
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from .docs import Mention, Sentence
from .report import ConversionError, ConversionReport

SCHEMES = ("iob1", "iob2", "iobes", "bilou")
DOCSTART = "-DOCSTART-"
# BILOU's letters as IOBES ones.
_PREFIXES = {"B": "B", "I": "I", "E": "E", "S": "S", "L": "E", "U": "S"}
# Invisible characters that editors and web exports leave at line starts.
INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060"
Repair = Tuple[int, str]  # tag index, what was done


def tags_to_mentions(tags: List[str], scheme: str, repairs: Optional[List[Repair]] = None) -> List[Mention]:
    """Spans of a tag sequence.

    An invalid sequence raises ValueError((index, reason)), or, when a
    `repairs` list is given, is read the conlleval way and each repair
    appended to it: a tag that continues nothing starts a new mention, an
    entity that is not ended (IOBES/BILOU) ends before the next tag.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown tag scheme '{scheme}': use one of {SCHEMES}.")
    strict_ends = scheme in ("iobes", "bilou")
    allowed = {"B", "I"} if scheme in ("iob1", "iob2") else {"B", "I", "E", "S", "L", "U"}
    mentions: List[Mention] = []
    open_start, open_label = None, None

    def invalid(index: int, reason: str, repair: str) -> None:
        if repairs is None:
            raise ValueError((index, reason))
        repairs.append((index, f"{reason}: {repair}"))

    def close(end: int) -> None:
        nonlocal open_start, open_label
        if open_start is not None:
            mentions.append((open_start, end, open_label))
        open_start, open_label = None, None

    for i, tag in enumerate(tags):
        if tag == "O":
            if strict_ends and open_start is not None:
                invalid(i, f"'O' inside an entity of {scheme} (it needs an E- or L- tag first)", "the entity ends before it")
            close(i)
            continue
        prefix, sep, label = tag.partition("-")
        if not sep or not label or prefix not in allowed:
            raise ValueError((i, f"tag '{tag}' is not 'O' or one of {sorted(allowed)} + '-TYPE' ({scheme})"))
        kind = _PREFIXES[prefix]
        continues = open_start is not None and open_label == label
        if kind in ("I", "E") and not continues and scheme != "iob1":
            invalid(i, f"'{tag}' does not continue an entity of type {label}", "it starts a new one")
            kind = "B" if kind == "I" else "S"
        if kind == "B" or (kind == "I" and not continues):
            if strict_ends and open_start is not None:
                invalid(i, f"'{tag}' starts an entity before the previous one ended", "the previous one ends before it")
            close(i)
            open_start, open_label = i, label
        elif kind == "I" or kind == "E":
            if kind == "E":
                close(i + 1)
        elif kind == "S":
            if strict_ends and open_start is not None:
                invalid(i, f"'{tag}' starts an entity before the previous one ended", "the previous one ends before it")
            close(i)
            mentions.append((i, i + 1, label))
    if strict_ends and open_start is not None:
        invalid(len(tags) - 1, "the sentence ends inside an entity", "the entity ends with the sentence")
    close(len(tags))
    return mentions


def read_iob(
    path: Path,
    report: ConversionReport,
    *,
    scheme: str = "iob2",
    tag_column: int = -1,
    separator: Optional[str] = None,
    skip_bad: bool = False,
    repair: bool = False,
) -> Iterator[Sentence]:
    """Sentences of a file: blank lines between sentences, `-DOCSTART-` between documents.

    separator: column separator; None splits on any whitespace. repair: read
    broken tag sequences the conlleval way (see `tags_to_mentions`), each
    repair listed in the report. A BOM or zero-width character at a line start
    is stripped and counted.
    """
    path = Path(path)
    doc_number, doc_has_sentences = 0, False
    rows: List[Tuple[int, str, str]] = []  # line number, word, tag
    n_columns: Optional[int] = None
    report.documents_read += 1

    def flush() -> Iterator[Sentence]:
        if not rows:
            return
        report.sentences_read += 1
        repairs: Optional[List[Repair]] = [] if repair else None
        try:
            mentions = tags_to_mentions([tag for _, _, tag in rows], scheme, repairs)
        except ValueError as err:
            index, reason = err.args[0]
            report.bad_input(ConversionError(str(path), rows[index][0], reason), skip_bad)
            return
        report.repaired.extend(f"{path}, line {rows[index][0]}: {reason}" for index, reason in repairs or ())
        report.mentions_read.update(label for _, _, label in mentions)
        yield Sentence([word for _, word, _ in rows], mentions, f"{path.name}#{doc_number}")

    with Path(path).open(encoding="utf8") as file:
        for line_no, line in enumerate(file, 1):
            visible = line.lstrip(INVISIBLE)
            # stripped unless the invisible character is the line's word itself
            if visible != line and (not visible.strip() or not visible[0].isspace()):
                report.invisible_stripped += 1
                line = visible
            columns = line.rstrip("\n").split(separator)
            docstart = bool(line.strip()) and columns[0] == DOCSTART
            if not line.strip() or docstart:
                doc_has_sentences = doc_has_sentences or bool(rows)
                yield from flush()
                rows = []
                if docstart and doc_has_sentences:
                    doc_number, doc_has_sentences = doc_number + 1, False
                    report.documents_read += 1
                continue
            if n_columns is None:
                n_columns = len(columns)
            if len(columns) != n_columns or len(columns) < 2:
                error = ConversionError(
                    str(path), line_no, f"expected {max(n_columns, 2)} columns, got {len(columns)}: {line.strip()!r}"
                )
                report.bad_input(error, skip_bad)
                continue
            rows.append((line_no, columns[0], columns[tag_column]))
    yield from flush()
