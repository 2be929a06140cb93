"""What a library conversion did: :class:`ConversionReport` (counts, skip reasons, results) and :class:`SkippedFile`."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from streamer.fhir import BundleResult

__all__ = ["ConversionReport", "SkippedFile"]


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """One file left out of a conversion, and why."""

    path: str
    reason: str


@dataclass(slots=True)
class ConversionReport:
    """What a conversion did. Pass one in as ``report=`` or get one from ``convert_*``.

    ``results`` holds one :class:`BundleResult` per converted study (only filled by ``convert_instances`` /
    ``convert_directory``; the Bundle-returning functions do not keep the dicts).
    """

    studies: int = 0
    series: int = 0
    instances: int = 0
    files_read: int = 0  # files that gave a DICOM JSON instance
    skipped_files: Counter[str] = field(default_factory=Counter)  # reason -> count
    skipped_instances: Counter[str] = field(default_factory=Counter)  # reason -> count
    failed_studies: Counter[str] = field(default_factory=Counter)  # reason -> count
    warnings: list[str] = field(default_factory=list)
    duplicates: int = 0  # identical repeats of an instance, ignored
    updated_instances: int = (
        0  # repeats of a SOPInstanceUID with other content (the later one kept)
    )
    patient_conflicts: int = 0  # instances refused: another patient than their study's first one
    skipped: list[SkippedFile] = field(default_factory=list)
    results: list[BundleResult] = field(default_factory=list)

    @property
    def skipped_file_count(self) -> int:
        """How many files were skipped (all reasons)."""
        return sum(self.skipped_files.values())

    @property
    def failed_study_count(self) -> int:
        """How many studies could not be mapped."""
        return sum(self.failed_studies.values())

    def summary_line(self) -> str:
        """One line, ``key=value`` pairs: studies, instances, skipped_files, warnings, failed_studies."""
        return (
            f"studies={self.studies} instances={self.instances} "
            f"skipped_files={self.skipped_file_count} warnings={len(self.warnings)} "
            f"failed_studies={self.failed_study_count}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The counts as a JSON-friendly dict (no Bundles, no file paths)."""
        return {
            "studies": self.studies,
            "series": self.series,
            "instances": self.instances,
            "files_read": self.files_read,
            "skipped_files": dict(self.skipped_files),
            "skipped_instances": dict(self.skipped_instances),
            "failed_studies": dict(self.failed_studies),
            "warnings": len(self.warnings),
            "duplicates": self.duplicates,
            "updated_instances": self.updated_instances,
            "patient_conflicts": self.patient_conflicts,
        }


_log = logging.getLogger("streamer.library")


def warn(rep: ConversionReport, warning: str) -> None:
    """Note a warning in the report and on the ``streamer`` logger (callers without a report see it).

    Warnings name tags and UIDs, never values.
    """
    rep.warnings.append(warning)
    _log.warning("%s", warning)
