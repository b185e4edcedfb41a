"""Entity types: their descriptions, and the label settings binder_ner checks.

A type is a label and the text the type encoder reads for it: a description in
annotation-guideline style, or, for a keyword label, its name. Descriptions
come as JSON lines of `{"label": ..., "description": ...}`.
"""
from pathlib import Path
from typing import Dict, Mapping, Union

import srsly

# A minimum span score: one for every label, or per label (others keep 0.5).
Threshold = Union[float, Dict[str, float]]

MODES = ("nested", "flat")


def read_type_descriptions(path: Union[str, Path]) -> Dict[str, str]:
    """Read `{"label": ..., "description": ...}` JSON lines."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"Entity type description file not found: {path}")
    descriptions: Dict[str, str] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = srsly.json_loads(line)
            label, description = record["label"], record["description"]
        except (ValueError, TypeError, KeyError) as err:
            raise ValueError(
                f"{path}, line {line_no}: expected a JSON object with 'label' and "
                f"'description', got {line[:80]!r} ({err!r})."
            ) from None
        if not isinstance(label, str) or not isinstance(description, str) or not description.strip():
            raise ValueError(
                f"{path}, line {line_no}: 'label' and 'description' must be non-empty strings."
            )
        descriptions[label] = description
    return descriptions


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"Unknown binder_ner mode '{mode}': use one of {MODES}.")


def check_threshold(threshold: Threshold) -> None:
    values = threshold.values() if isinstance(threshold, Mapping) else [threshold]
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
            raise ValueError(
                f"binder_ner threshold must lie in (0, 1], got {value!r}: it is the "
                "minimum span score; 0.5 keeps every span above its dynamic threshold, "
                "lower also keeps spans below it (for new types, see docs/FEWSHOT.md)."
            )
