"""Transaction Bundles (FHIR R4B) for one or many studies.

Every entry has a unique ``fullUrl`` (``urn:uuid:``, see ``ids.full_url``) and ``request: PUT Type/id``; all
references inside the Bundle use those fullUrls (R4B bundle.html#references, http.html#trules). Ids are
deterministic and the output holds no clock value: re-publishing the same input gives byte-identical JSON.
The finished Bundle is validated with ``fhir.resources.R4B.bundle.Bundle.model_validate`` (see validation.py)
and checked for consistency (fullUrls, request urls, references: consistency.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from streamer.dicom import json_model as jm
from streamer.dicom import tags as t
from streamer.dicom.instance import check_instance, slim_instance
from streamer.errors import MappingError
from streamer.fhir import ids
from streamer.fhir.common import Warnings
from streamer.fhir.consistency import check_bundle
from streamer.fhir.context import StudyContext, canonical_key
from streamer.fhir.device import build_device
from streamer.fhir.endpoint import build_endpoint
from streamer.fhir.imaging_study import build_imaging_study, series_modality, series_order
from streamer.fhir.instance import DatasetView, readable_instance
from streamer.fhir.observation import build_observations
from streamer.fhir.options import MappingOptions
from streamer.fhir.patient import build_patient, patient_id
from streamer.fhir.profiles import apply_profile
from streamer.fhir.validation import validate_bundle


@dataclass(frozen=True, slots=True)
class BundleResult:
    """A validated, JSON-ready transaction Bundle and what went into it."""

    bundle: dict[str, Any]
    study_uid: str
    warnings: tuple[str, ...] = ()
    series_count: int = 0
    instance_count: int = 0
    study_uids: tuple[str, ...] = field(default=())


@dataclass(slots=True)
class _StudyParts:
    study_uid: str
    resources: list[dict[str, Any]]
    warnings: Warnings
    series_count: int
    instance_count: int


def _context(
    instances: Sequence[Mapping[str, Any]], options: MappingOptions, *, cleaned: bool = False
) -> StudyContext:
    if not instances:
        raise ValueError("build_study_bundle needs at least one instance")
    warnings = Warnings()
    # SOPInstanceUID -> (the caller's instance, its readable form)
    by_sop: dict[str, tuple[Mapping[str, Any], dict[str, Any]]] = {}
    study_uid: str | None = None
    found: list[str] = []  # what check_instance and the cleaning of readable_instance report
    for ds in instances:
        key = check_instance(ds, found)
        if study_uid is None:
            study_uid = key.study_uid
        elif key.study_uid != study_uid:
            raise ValueError(
                f"instances of several studies given ({study_uid} and {key.study_uid}); "
                "use build_bundle or iter_study_bundles"
            )
        if key.sop_uid in by_sop:
            warnings.add(f"duplicate SOPInstanceUID {key.sop_uid}: the last one is used")
            del by_sop[key.sop_uid]
        # Instances the stream processor slimmed itself are clean already; a copy is enough.
        readable = dict(ds) if cleaned else readable_instance(ds, found)
        if found:
            warnings.extend(found)
            found.clear()
        # the UIDs are stored stripped so every mapper sees the checked values
        readable[t.StudyInstanceUID] = {"vr": "UI", "Value": [key.study_uid]}
        readable[t.SeriesInstanceUID] = {"vr": "UI", "Value": [key.series_uid]}
        readable[t.SOPInstanceUID] = {"vr": "UI", "Value": [key.sop_uid]}
        by_sop[key.sop_uid] = (ds, readable)
    assert study_uid is not None
    pairs = sorted(by_sop.values(), key=lambda pair: canonical_key(pair[1]))
    ordered = [readable for _, readable in pairs]
    ctx = StudyContext(study_uid, ordered, options, warnings)
    if options.id_function is not None:
        ctx.view = DatasetView(_slim_first(*pairs[0]))
    for ds in ordered:
        ctx.series.setdefault(jm.first(ds, t.SeriesInstanceUID) or "", []).append(ds)
    return ctx


def _slim_first(ds: Mapping[str, Any], readable: dict[str, Any]) -> dict[str, Any]:
    """The first instance as ``id_function`` sees it: slim, with the checked UIDs of its readable form
    (``readable_instance`` keeps tags no mapper reads, but an ``id_function`` may ask for any keyword)."""
    slim = slim_instance(ds)
    for tag in (t.StudyInstanceUID, t.SeriesInstanceUID, t.SOPInstanceUID):
        slim[tag] = readable[tag]
    return slim


def _study_parts(
    instances: Sequence[Mapping[str, Any]], options: MappingOptions, *, cleaned: bool = False
) -> _StudyParts:
    ctx = _context(instances, options, cleaned=cleaned)
    pid, pkey = patient_id(ctx)
    patient = build_patient(ctx, pid, pkey)
    subject = ids.reference(patient)

    devices: dict[str, dict[str, Any]] = {}
    device_refs: dict[str, dict[str, Any]] = {}
    for uid in series_order(ctx):
        insts = ctx.series[uid]
        device = build_device(ctx, insts, series_modality(ctx, insts))
        if device is not None:
            devices.setdefault(device["id"], device)
            device_refs[uid] = ids.reference(device)
    endpoint = build_endpoint(ctx)
    endpoint_ref = ids.reference(endpoint) if endpoint is not None else None

    study_id = ids.resource_id("ImagingStudy", ctx.options, ctx.view, "", ("uid", ctx.study_uid))
    study = build_imaging_study(ctx, study_id, subject, device_refs, endpoint_ref)
    # effective time of the vital signs: the study's start, else the earliest series start
    series_starts = sorted(str(se["started"]) for se in study["series"] if "started" in se)
    effective = study.get("started") or (series_starts[0] if series_starts else None)
    observations = build_observations(ctx, subject, ids.reference(study), effective)

    resources: list[dict[str, Any]] = [study, patient, *devices.values()]
    if endpoint is not None:
        resources.append(endpoint)
    resources.extend(observations)
    if options.profile == "mii":
        apply_profile(ctx, resources)
    return _StudyParts(
        ctx.study_uid,
        resources,
        ctx.warnings,
        study["numberOfSeries"],
        study["numberOfInstances"],
    )


def _entry(resource: dict[str, Any]) -> dict[str, Any]:
    rtype, rid = resource["resourceType"], resource["id"]
    return {
        "fullUrl": ids.full_url(rtype, rid),
        "resource": resource,
        "request": {"method": "PUT", "url": f"{rtype}/{rid}"},
    }


def _finish(parts: list[_StudyParts]) -> BundleResult:
    warnings = Warnings()
    entries: dict[str, dict[str, Any]] = {}
    owner: dict[str, str] = {}
    for p in parts:
        prefix = f"study {p.study_uid}: " if len(parts) > 1 else ""
        warnings.extend(prefix + w for w in p.warnings.as_tuple())
        for resource in p.resources:
            entry = _entry(resource)
            url = entry["fullUrl"]
            if url in entries:
                if entries[url]["resource"] != resource:
                    if owner[url] == p.study_uid:
                        # Default ids never collide within a study; an id_function that ignores its
                        # ``extra`` argument does (weight and height Observation): keeping one would
                        # silently drop the other.
                        raise MappingError(
                            f"study {p.study_uid}: two different {resource['resourceType']} "
                            "resources have the same id (id_function)"
                        )
                    warnings.add(
                        f"{resource['resourceType']} shared by studies {owner[url]} and {p.study_uid} "
                        "differs; the first study's version is kept"
                    )
                continue
            entries[url] = entry
            owner[url] = p.study_uid
    study_uids = tuple(p.study_uid for p in parts)
    # Bundle.id: UUIDv5 of the study UIDs, so every publication of a study (a re-publication with late
    # instances included) carries the same Bundle id; the content identifies the version.
    bundle = {
        "resourceType": "Bundle",
        "id": ids.uuid5("Bundle", *study_uids),
        "type": "transaction",
        "entry": list(entries.values()),
    }
    what = f"study {study_uids[0]}" if len(parts) == 1 else f"{len(parts)} studies"
    validate_bundle(bundle, what)
    check_bundle(bundle, what)  # what validation cannot see: fullUrls, request urls, references
    return BundleResult(
        bundle=bundle,
        study_uid=study_uids[0],
        warnings=warnings.as_tuple(),
        series_count=sum(p.series_count for p in parts),
        instance_count=sum(p.instance_count for p in parts),
        study_uids=study_uids,
    )


def build_study_bundle(
    instances: Sequence[Mapping[str, Any]], options: MappingOptions, *, cleaned: bool = False
) -> BundleResult:
    """One study's instances (full or slim DICOM JSON) -> a validated transaction Bundle.

    Each instance is checked and cleaned as ``check_instance`` and ``slim_instance`` do, with the same warnings
    in ``BundleResult.warnings`` (an instance slimmed before has nothing left to warn about: its warnings are
    those ``slim_instance`` gave then). Raises ValueError for no instances or instances of several studies,
    InvalidInstanceError for an instance without usable UIDs, MappingError when no valid Bundle can be made,
    ConfigError for a bad time zone.

    ``cleaned=True`` says every instance is already what ``slim_instance`` made of it (the stream
    processor's held instances): they are not cleaned a second time.
    """
    return _finish([_study_parts(instances, options, cleaned=cleaned)])


def group_by_study(instances: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Instances grouped by StudyInstanceUID in first-seen order (InvalidInstanceError for a bad instance)."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for ds in instances:
        groups.setdefault(check_instance(ds).study_uid, []).append(ds)
    return groups


def iter_study_bundles(
    instances: Iterable[Mapping[str, Any]], options: MappingOptions
) -> Iterator[BundleResult]:
    """One BundleResult per study, studies in first-seen order; nothing is merged across studies."""
    for group in group_by_study(instances).values():
        yield build_study_bundle(group, options)


def build_bundle(
    instances: Iterable[Mapping[str, Any]], options: MappingOptions, *, cleaned: bool = False
) -> BundleResult:
    """Many studies -> ONE transaction Bundle: each study its own ImagingStudy; a Patient, Device or Endpoint
    shared by studies (same id) appears once (the first study's version; a differing later one is warned).
    ``study_uid`` is the first study's UID, ``study_uids`` all of them. ``cleaned`` as in
    :func:`build_study_bundle`."""
    groups = group_by_study(instances)
    if not groups:
        raise ValueError("build_bundle needs at least one instance")
    return _finish([_study_parts(g, options, cleaned=cleaned) for g in groups.values()])


def bundle_json(result: BundleResult | Mapping[str, Any]) -> bytes:
    """The Bundle as compact JSON bytes (orjson; deterministic key order as built)."""
    bundle = result.bundle if isinstance(result, BundleResult) else result
    return orjson.dumps(bundle)
