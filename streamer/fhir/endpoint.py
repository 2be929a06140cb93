"""Endpoint (FHIR R4B) for a DICOMweb WADO-RS base URL (``MappingOptions.wado_base_url``).

connectionType ``dicom-wado-rs`` (terminology.hl7.org endpoint-connection-type), payloadType "DICOM WADO-RS",
payloadMimeType application/dicom, address = the base URL (the study URL is address + ``/studies/{uid}``), as in
the R4B ImagingStudy notes and Microsoft DICOMcast. Id: UUIDv5 of the URL, so every study shares one Endpoint.
"""

from __future__ import annotations

from typing import Any

from streamer.fhir import ids
from streamer.fhir.context import StudyContext


def build_endpoint(ctx: StudyContext) -> dict[str, Any] | None:
    """The Endpoint, or None when no WADO-RS base URL is configured."""
    url = (ctx.options.wado_base_url or "").strip().rstrip("/")
    if not url:
        return None
    rid = ids.resource_id("Endpoint", ctx.options, ctx.view, url, ("wado-rs", url))
    return {
        "resourceType": "Endpoint",
        "id": rid,
        "status": "active",
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": "dicom-wado-rs",
            "display": "DICOM WADO-RS",
        },
        "name": "DICOM WADO-RS endpoint",
        "payloadType": [{"text": "DICOM WADO-RS"}],
        "payloadMimeType": ["application/dicom"],
        "address": url,
    }
