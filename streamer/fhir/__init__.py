"""DICOM JSON -> FHIR R4B mapping: the contract used by the stream processor and the library API."""

from __future__ import annotations

# Identity and slimming live in streamer.dicom.instance; re-exported because some callers import them
# from here (the publish CLI, the study-state tests, bench/README.md). New code imports from dicom.
from streamer.dicom.instance import InstanceKey, check_instance, slim_instance
from streamer.fhir.bundle import (
    BundleResult,
    build_bundle,
    build_study_bundle,
    bundle_json,
    group_by_study,
    iter_study_bundles,
)
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
