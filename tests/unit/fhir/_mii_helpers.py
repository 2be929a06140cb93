"""Helpers for the MII profile mode tests: DICOM JSON datasets by keyword, extension lookups, validation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fhir.resources.R4B.imagingstudy import ImagingStudy
from pydicom.datadict import dictionary_VR, tag_for_keyword

from streamer.fhir import mii

SCT = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
BASE = "https://www.medizininformatik-initiative.de/fhir/ext/modul-bildgebung/StructureDefinition/"


# --- helpers --------------------------------------------------------------------------------------


def tag_number(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return tag


def key(keyword: str) -> str:
    return f"{tag_number(keyword):08X}"


def ds(**elements: Any) -> dict[str, Any]:
    """DICOM JSON dataset by keyword; a list value gives several values, a dict list a sequence."""
    out: dict[str, Any] = {}
    for keyword, value in elements.items():
        vr = dictionary_VR(tag_number(keyword))
        values = value if isinstance(value, list) else [value]
        out[key(keyword)] = {"vr": vr, "Value": values} if value is not None else {"vr": vr}
    return out


def code_item(value: str, scheme: str, meaning: str) -> dict[str, Any]:
    return ds(CodeValue=value, CodingSchemeDesignator=scheme, CodeMeaning=meaning)


def ext(extensions: Sequence[Mapping[str, Any]], suffix: str) -> Mapping[str, Any]:
    hits = [e for e in extensions if e["url"] == BASE + suffix]
    assert len(hits) == 1, [e["url"] for e in extensions]
    return hits[0]


def subs(extension: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    return [s for s in extension.get("extension", []) if s["url"] == name]


def sub(extension: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    found = subs(extension, name)
    assert len(found) == 1, (name, extension)
    return found[0]


def qty(extension: Mapping[str, Any], name: str) -> tuple[Any, str, str, str]:
    q = sub(extension, name)["valueQuantity"]
    return q["value"], q["unit"], q["system"], q["code"]


def validate(
    series_ext: list[dict[str, Any]],
    instance_ext: list[dict[str, Any]] | None = None,
    study_ext: list[dict[str, Any]] | None = None,
    modality: str = "CT",
) -> ImagingStudy:
    """A minimal ImagingStudy carrying the extensions, validated with fhir.resources R4B."""
    resource = {
        "resourceType": "ImagingStudy",
        "meta": {"profile": [mii.profile_url("ImagingStudy")]},
        "status": "available",
        "subject": {"reference": "Patient/p"},
        "series": [
            {
                "uid": "1.2.3",
                "modality": {
                    "system": "http://dicom.nema.org/resources/ontology/DCM",
                    "code": modality,
                },
                "instance": [
                    {
                        "uid": "1.2.3.4",
                        "sopClass": {
                            "system": "urn:ietf:rfc:3986",
                            "code": "urn:oid:1.2.840.10008.5.1.4.1.1.2",
                        },
                    }
                ],
            }
        ],
    }
    if series_ext:
        resource["series"][0]["extension"] = series_ext  # type: ignore[index]
    if instance_ext:
        resource["series"][0]["instance"][0]["extension"] = instance_ext  # type: ignore[index]
    if study_ext:
        resource["extension"] = study_ext
    return ImagingStudy.model_validate(resource)
