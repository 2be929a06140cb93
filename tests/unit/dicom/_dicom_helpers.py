"""Helpers for tests that need DICOM JSON: instances built by keyword, pydicom's test files as DICOM JSON."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR, tag_for_keyword

STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.1.1"


def tag_number(keyword: str) -> int:
    """The tag of a dictionary keyword, as an int."""
    t = tag_for_keyword(keyword)
    assert t is not None, keyword
    return t


def tag(keyword: str) -> str:
    """Upper-case DICOM JSON key of a keyword."""
    return f"{tag_number(keyword):08X}"


def el(keyword: str, *values: Any) -> dict[str, Any]:
    """A DICOM JSON element for ``keyword`` (VR from the dictionary); no values -> element without Value."""
    vr = dictionary_VR(tag_number(keyword))
    elem: dict[str, Any] = {"vr": vr}
    if values:
        if vr == "PN":
            elem["Value"] = [{"Alphabetic": v} if isinstance(v, str) else v for v in values]
        else:
            elem["Value"] = list(values)
    return elem


def item(**attrs: Any) -> dict[str, Any]:
    """A sequence item from keyword=value (a tuple value -> several values; a list -> SQ items)."""
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if isinstance(v, list):
            out[tag(k)] = {"vr": "SQ", "Value": v}
        elif isinstance(v, tuple):
            out[tag(k)] = el(k, *v)
        elif v is None:
            out[tag(k)] = el(k)
        else:
            out[tag(k)] = el(k, v)
    return out


def inst(n: int = 1, series: str = SERIES, study: str = STUDY, **attrs: Any) -> dict[str, Any]:
    """A CT instance number ``n`` with the UIDs set, plus ``attrs`` (see ``item``)."""
    base: dict[str, Any] = {
        "StudyInstanceUID": study,
        "SeriesInstanceUID": series,
        "SOPInstanceUID": f"{series}.{n}",
        "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
        "Modality": "CT",
        "InstanceNumber": n,
        "SeriesNumber": 1,
    }
    base.update(attrs)
    return item(**{k: v for k, v in base.items() if v is not ...})


def pydicom_json(name: str) -> dict[str, Any]:
    """A pydicom test file (by name or relative path) as DICOM JSON."""
    path = get_testdata_file(name)
    assert path is not None, name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(path, stop_before_pixels=True, force=True)
        return ds.to_json_dict(suppress_invalid_tags=True)


def pydicom_dir(rel: str) -> Path:
    """A folder inside pydicom's test data."""
    return Path(str(get_testdata_file("CT_small.dcm"))).parent / rel
