"""What a conversion read, wrote and could not place: nothing is dropped silently."""
from collections import Counter
from dataclasses import dataclass, field
from typing import List


class ConversionError(ValueError):
    """Malformed input, named by file and line."""

    def __init__(self, path: str, line: int, reason: str):
        super().__init__(f"{path}, line {line}: {reason}")
        self.path, self.line, self.reason = path, line, reason


@dataclass
class ConversionReport:
    documents_read: int = 0
    sentences_read: int = 0
    documents_written: int = 0
    mentions_read: Counter = field(default_factory=Counter)
    mentions_written: Counter = field(default_factory=Counter)
    filtered: Counter = field(default_factory=Counter)
    unplaced: List[str] = field(default_factory=list)
    skipped_bad: List[str] = field(default_factory=list)
    repaired: List[str] = field(default_factory=list)
    invisible_stripped: int = 0

    def bad_input(self, error: ConversionError, skip_bad: bool) -> None:
        """Raise `error`, or count it when bad input is to be skipped."""
        if not skip_bad:
            raise error
        self.skipped_bad.append(str(error))

    def lines(self) -> List[str]:
        out = [
            f"documents read: {self.documents_read}, written: {self.documents_written}",
            f"sentences read: {self.sentences_read}",
            f"mentions read: {sum(self.mentions_read.values())}, "
            f"written: {sum(self.mentions_written.values())}",
        ]
        for label in sorted(set(self.mentions_read) | set(self.mentions_written)):
            out.append(
                f"  {label}: read {self.mentions_read[label]}, written {self.mentions_written[label]}"
            )
        for label, count in sorted(self.filtered.items()):
            out.append(f"  {label}: {count} left out by the label filter")
        if self.unplaced:
            out.append(f"mentions not placed: {len(self.unplaced)}")
            out.extend(f"  {reason}" for reason in self.unplaced)
        if self.repaired:
            out.append(f"tag sequences repaired (--repair): {len(self.repaired)}")
            out.extend(f"  {reason}" for reason in self.repaired)
        if self.invisible_stripped:
            out.append(f"lines with a BOM or zero-width character stripped at the start: {self.invisible_stripped}")
        if self.skipped_bad:
            out.append(f"bad input skipped (--skip-bad): {len(self.skipped_bad)}")
            out.extend(f"  {reason}" for reason in self.skipped_bad)
        return out
