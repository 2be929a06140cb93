"""DICOM files on disk -> DICOM JSON dicts (PS3.18 F), as pydicom's to_json_dict() gives them.

Shared by the library API (`from_directory`, `convert`) and `python -m streamer publish`, so both skip the
same files (DICOMDIR, non-DICOM, unreadable) for the same stated reasons.

``read_file`` reads only the top-level elements the mapping keeps (``instance.KEEP_TAGS``) plus the few it
needs to tell a DICOMDIR or a raw dataset (pydicom adds SpecificCharacterSet itself); nested sequence items
are read whole. Every slim instance, and so every Bundle and every cleaning warning, is the one a full read
gives (``tests/unit/dicom/test_dicom_files_specific_tags.py`` checks the corpus), at a fraction of the cost
(most of it was ``to_json_dict`` of tags slimming drops). What changes: the DICOM JSON holds only those tags
(``publish`` sends the smaller instance; the processor slims to the same tags on receipt), and a malformed
element outside them no longer gives "some DICOM elements could not be converted" -- slimming would have
dropped it anyway, so that warning now only concerns elements that reach the mapping.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

import pydicom
from pydicom.dataset import Dataset

from streamer.dicom.instance import KEEP_TAGS

_DICOMDIR_SOP_CLASS: Final = "1.2.840.10008.1.3.10"
_DIRECTORY_RECORD_SEQUENCE: Final = 0x00041220
# A raw dataset (no preamble) starts with a group 0002 or 0008 tag, little or big endian.
_RAW_DATASET_STARTS: Final = frozenset({b"\x02\x00", b"\x08\x00", b"\x00\x02", b"\x00\x08"})
# Instance-level tags whose presence tells a raw (preamble-less) dataset from a file pydicom forced into shape.
_INSTANCE_TAGS: Final = (0x00080016, 0x00080018, 0x0020000D, 0x0020000E)
# The top-level tags ``read_file`` reads (see the module docstring); None would read every tag.
_READ_TAGS: list[int] | None = sorted(
    {int(tag, 16) for tag in KEEP_TAGS} | {_DIRECTORY_RECORD_SEQUENCE, *_INSTANCE_TAGS}
)

# Reasons a file is skipped (stable strings; the keys of ConversionReport.skipped_files).
SKIP_DICOMDIR: Final = "DICOMDIR (a media directory index, not an instance)"
SKIP_NOT_DICOM: Final = "not a DICOM file"
SKIP_EMPTY: Final = "empty file"
SKIP_UNREADABLE_FILE: Final = "file cannot be opened"
SKIP_UNREADABLE_DICOM: Final = "DICOM file pydicom cannot parse"
SKIP_NO_JSON: Final = "DICOM file pydicom cannot convert to DICOM JSON"


def list_files(roots: list[Path]) -> list[Path]:
    """All regular files under ``roots`` in a stable order; symlinked directories are not followed."""
    out: list[Path] = []
    seen: set[Path] = set()
    for root in roots:
        if not root.exists():
            raise FileNotFoundError(f"no such file or directory: {root}")
        if root.is_file():
            candidates = [root]
        else:
            candidates = []
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                candidates.extend(Path(dirpath, name) for name in sorted(filenames))
        for path in candidates:
            key = path.resolve()
            if key not in seen and path.is_file():
                seen.add(key)
                out.append(path)
    return out


def read_file(path: Path) -> tuple[dict[str, Any], bool] | str:
    """One file -> (DICOM JSON dict, elements were dropped) or the reason to skip it. Never raises."""
    if path.name.upper() == "DICOMDIR":
        return SKIP_DICOMDIR
    try:
        with path.open("rb") as fh:
            head = fh.read(132)
    except OSError:
        return SKIP_UNREADABLE_FILE
    if not head:
        return SKIP_EMPTY
    has_preamble = len(head) == 132 and head[128:] == b"DICM"
    if not has_preamble and head[:2] not in _RAW_DATASET_STARTS:
        return SKIP_NOT_DICOM
    try:
        ds = pydicom.dcmread(
            path,
            stop_before_pixels=True,
            force=not has_preamble,
            specific_tags=_READ_TAGS,
        )
    except Exception:  # noqa: BLE001 - pydicom raises many types on broken input; the file is skipped
        return SKIP_UNREADABLE_DICOM if has_preamble else SKIP_NOT_DICOM
    try:
        if _is_dicomdir(ds):
            return SKIP_DICOMDIR
        if not has_preamble and not any(tag in ds for tag in _INSTANCE_TAGS):
            return SKIP_NOT_DICOM
    except Exception:  # noqa: BLE001 - a forced read of a non-DICOM file can fail anywhere
        return SKIP_UNREADABLE_DICOM if has_preamble else SKIP_NOT_DICOM
    converted = dataset_to_json(ds)
    return converted


def _is_dicomdir(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    sop_class = meta.get("MediaStorageSOPClassUID") if meta is not None else None
    return str(sop_class or "") == _DICOMDIR_SOP_CLASS or _DIRECTORY_RECORD_SEQUENCE in ds


def dataset_to_json(ds: Dataset) -> tuple[dict[str, Any], bool] | str:
    """pydicom Dataset -> (DICOM JSON without bulk data, some elements were dropped) or a skip reason."""
    try:
        return _strip_bulk(ds.to_json_dict(0, _bulk_data_marker)), False
    except Exception:  # noqa: BLE001 - retry element by element below
        pass
    try:
        out = ds.to_json_dict(0, _bulk_data_marker, suppress_invalid_tags=True)
    except Exception:  # noqa: BLE001 - nothing usable in this dataset
        return SKIP_NO_JSON
    return _strip_bulk(out), True


def _bulk_data_marker(_element: Any) -> str:
    return _BULK_MARKER


_BULK_MARKER: Final = "urn:streamer:bulk-data-omitted"


def _strip_bulk(ds: dict[str, Any]) -> dict[str, Any]:
    """Drop the bulk-data elements (pixel data, overlays, private blobs) in place, at every nesting level."""
    for key in [k for k, v in ds.items() if isinstance(v, dict) and "BulkDataURI" in v]:
        del ds[key]
    for elem in ds.values():
        if isinstance(elem, dict) and elem.get("vr") == "SQ":
            for item in elem.get("Value") or ():
                if isinstance(item, dict):
                    _strip_bulk(item)
    return ds


def quiet_pydicom() -> None:
    """Stop pydicom printing invalid element values (they can be patient data); CLI entry points only.

    Odd values are still handled by our mapper, which warns by tag name, never by value.
    """
    import logging
    import warnings

    from pydicom import config

    config.settings.reading_validation_mode = config.IGNORE
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\..*)?")
    logging.getLogger("pydicom").setLevel(logging.ERROR)
