"""DICOM JSON -> FHIR R4B mapping: the contract used by the stream processor and the library API."""

from __future__ import annotations

from streamer.fhir.bundle import (
    BundleResult,
    build_bundle,
    build_study_bundle,
    bundle_json,
    group_by_study,
    iter_study_bundles,
)
from streamer.fhir.instance import InstanceKey, check_instance, slim_instance
from streamer.fhir.options import MappingOptions

__all__ = [
    "BundleResult",
    "InstanceKey",
    "MappingOptions",
    "build_bundle",
    "build_study_bundle",
    "bundle_json",
    "check_instance",
    "group_by_study",
    "iter_study_bundles",
    "slim_instance",
]
