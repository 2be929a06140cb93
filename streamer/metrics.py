"""Named counters of the processing loop (shown in the status log line)."""

from __future__ import annotations

from collections import Counter
from enum import StrEnum


class Count(StrEnum):
    """Every counter the loop keeps; the value is the name shown in logs."""

    RECORDS = "records"
    DUPLICATES = "duplicates"
    UPDATED_INSTANCES = "updated_instances"
    INSTANCE_WARNINGS = "instance_warnings"
    EMPTY_STUDIES = "empty_studies"
    REOPENED_STUDIES = "reopened_studies"
    DEAD_LETTERS = "dead_letters"
    DEAD_LETTER_STUDIES = "dead_letter_studies"
    STUDIES_CLOSED_MARKER = "studies_closed_marker"
    STUDIES_CLOSED_TIMEOUT = "studies_closed_timeout"


class Metrics:
    """Counters keyed by ``Count``; a typo is a type error, not a new counter."""

    def __init__(self) -> None:
        self._counts: Counter[Count] = Counter()

    def inc(self, name: Count, amount: int = 1) -> None:
        self._counts[name] += amount

    def get(self, name: Count) -> int:
        return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        """Non-zero counters by name."""
        return {name.value: n for name, n in self._counts.items() if n}
