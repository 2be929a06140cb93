"""DICOM files on disk -> DICOM JSON dicts (PS3.18 F), as pydicom's to_json_dict() gives them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR's SOP class
_BULK_THRESHOLD = 1024  # larger binary values are dropped: no mapper reads them


def walk_paths(paths: Iterable[Path]) -> Iterator[Path]:
    """Files given, and every file below folders given, in a stable (sorted) order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file())
        else:
            yield path


def _drop_bulk(_element: Any) -> str:
    return ""


def read_dicom_json(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(DICOM JSON, None) for an instance file, or (None, reason) when the file is skipped."""
    if path.name.upper() == "DICOMDIR":
        return None, "DICOMDIR"
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, KeyError) as exc:
        return None, f"not DICOM ({type(exc).__name__})"
    if str(ds.file_meta.get("MediaStorageSOPClassUID", "")) == MEDIA_STORAGE_DIRECTORY:
        return None, "DICOMDIR"
    try:
        doc = ds.to_json_dict(
            bulk_data_threshold=_BULK_THRESHOLD, bulk_data_element_handler=_drop_bulk
        )
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on odd values; skip the file
        return None, f"cannot convert to DICOM JSON ({type(exc).__name__})"
    return doc, None
