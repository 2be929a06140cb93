"""Small DICOM JSON instances (as pydicom's to_json_dict() writes them) for tests."""

from __future__ import annotations

from typing import Any

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def element(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)} if values else {"vr": vr}


def make_instance(
    study: str,
    series: str = "1.2.3.4.1",
    sop: str = "1.2.3.4.1.1",
    *,
    number: int = 1,
    modality: str = "CT",
    patient_id: str = "PAT-1",
    **extra: dict[str, Any],
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "00080016": element("UI", CT_IMAGE_STORAGE),
        "00080018": element("UI", sop),
        "00080020": element("DA", "20240315"),
        "00080030": element("TM", "101500"),
        "00080050": element("SH", "ACC-1"),
        "00080060": element("CS", modality),
        "00080070": element("LO", "ACME"),
        "00081030": element("LO", "Study description"),
        "0008103E": element("LO", "Series description"),
        "00100010": element("PN", {"Alphabetic": "Doe^Jane"}),
        "00100020": element("LO", patient_id),
        "00100030": element("DA", "19700102"),
        "00100040": element("CS", "F"),
        "0020000D": element("UI", study),
        "0020000E": element("UI", series),
        "00200011": element("IS", 1),
        "00200013": element("IS", number),
    }
    doc.update(extra)
    return doc


def study_uid(n: int) -> str:
    return f"1.2.826.0.1.3680043.10.1.{n}"


def sop_uid(study_n: int, i: int) -> str:
    return f"1.2.826.0.1.3680043.10.1.{study_n}.1.{i}"


def series_uid(study_n: int) -> str:
    return f"1.2.826.0.1.3680043.10.1.{study_n}.1"
