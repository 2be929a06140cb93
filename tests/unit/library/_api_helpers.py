"""Shared helpers for the library API tests: synthetic DICOM JSON instances and pydicom test data paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom.data


def make_instance(
    study: str = "1.2.3.1",
    series: str = "1.2.3.1.1",
    sop: str = "1.2.3.1.1.1",
    *,
    patient_id: str = "PID-1",
    modality: str = "CT",
    name: str = "Doe^John",
    number: int = 1,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A small but complete DICOM JSON instance (PS3.18 Annex F)."""
    ds: dict[str, Any] = {
        "00080016": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
        "00080018": {"vr": "UI", "Value": [sop]},
        "00080020": {"vr": "DA", "Value": ["20240315"]},
        "00080030": {"vr": "TM", "Value": ["101500"]},
        "00080060": {"vr": "CS", "Value": [modality]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": name}]},
        "00100020": {"vr": "LO", "Value": [patient_id]},
        "00100040": {"vr": "CS", "Value": ["M"]},
        "0020000D": {"vr": "UI", "Value": [study]},
        "0020000E": {"vr": "UI", "Value": [series]},
        "00200013": {"vr": "IS", "Value": [number]},
    }
    if extra:
        ds.update(extra)
    return ds


def resources(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    """The resources of one type in a Bundle dict."""
    return [
        e["resource"]
        for e in bundle.get("entry", [])
        if e["resource"]["resourceType"] == resource_type
    ]


def study_uid_of(imaging_study: dict[str, Any]) -> str:
    """The StudyInstanceUID from an ImagingStudy's urn:dicom:uid identifier."""
    for ident in imaging_study.get("identifier", []):
        if ident.get("system") == "urn:dicom:uid":
            value: str = ident["value"]
            return value.removeprefix("urn:oid:")
    raise AssertionError("ImagingStudy without a urn:dicom:uid identifier")


def pydicom_test_dir() -> Path:
    """pydicom's bundled test_files directory."""
    return Path(str(pydicom.data.get_testdata_file("CT_small.dcm"))).parent
