"""Input messages: decode a record into a DICOM instance or an end-of-study marker, or say why not.

Every way a record can be unusable raises a subclass of InvalidMessageError, whose class name is the
dead letter's ``error-type`` and whose message is the reason. Reasons name attributes and keys, never
the values of a DICOM element (they may be patient data).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from streamer.dicom import json_model as jm
from streamer.dicom import tags as t
from streamer.dicom.instance import InstanceKey, check_instance, slim_instance
from streamer.errors import (
    InvalidInstanceError,
    InvalidMarkerError,
    InvalidMessageError,
    MessageKeyError,
    OversizedRecordError,
)

MARKER_KIND = "end-of-study"
_MARKER_FIELDS = frozenset({"marker", "study_instance_uid", "instance_count"})


@dataclass(frozen=True, slots=True)
class EndOfStudy:
    """The end-of-study marker: the producer says a study is complete."""

    study_uid: str
    instance_count: int | None


@dataclass(frozen=True, slots=True)
class PatientRef:
    """Who an instance is about, as digests: enough to tell two patients apart, nothing to read."""

    id_digest: str | None  # of PatientID (0010,0020)
    issuer_digest: str | None  # of IssuerOfPatientID (0010,0021)

    def conflicts_with(self, other: PatientRef) -> bool:
        """Two different patients: both name a PatientID and they differ, or the same one from
        two different issuers. A missing ID or issuer on one side is no evidence either way."""
        if self.id_digest is None or other.id_digest is None:
            return False
        if self.id_digest != other.id_digest:
            return True
        return (
            self.issuer_digest is not None
            and other.issuer_digest is not None
            and self.issuer_digest != other.issuer_digest
        )


NO_PATIENT = PatientRef(None, None)


@dataclass(frozen=True, slots=True)
class Instance:
    """One DICOM instance, reduced to what the Bundle needs (orjson bytes keep open state small)."""

    key: InstanceKey
    slim: bytes
    patient: PatientRef = NO_PATIENT
    warnings: tuple[str, ...] = ()

    @property
    def study_uid(self) -> str:
        return self.key.study_uid


Message = EndOfStudy | Instance


def decode(key: bytes | None, value: bytes | None, *, max_bytes: int | None = None) -> Message:
    """Decode one input record; InvalidMessageError says why it belongs in the dead-letter topic."""
    if value is None:
        raise InvalidMessageError("record has no value (tombstone)")
    if max_bytes is not None and len(value) > max_bytes:
        raise OversizedRecordError(
            f"record value is {len(value):,} bytes, above STREAMER_MAX_RECORD_BYTES ({max_bytes:,})"
        )
    try:
        doc: Any = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessageError(_json_reason(value, exc)) from exc
    if not isinstance(doc, dict):
        raise InvalidMessageError(f"value is JSON {_json_type(doc)}, not an object")
    message = _marker(doc) if "marker" in doc else _instance(doc)
    if key is None:
        # The key chooses the partition: without it a study's instances scatter over partitions
        # and would be published as several partial studies.
        raise MessageKeyError("record has no key (producers must key records by StudyInstanceUID)")
    try:
        key_text = key.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageKeyError("key is not valid UTF-8") from exc
    if key_text != message.study_uid:
        # The key decides the partition; a mismatch would split a study across partitions.
        raise MessageKeyError(
            f"key {key_text[:80]!r} does not match StudyInstanceUID {message.study_uid!r}"
        )
    return message


def _json_reason(value: bytes, exc: orjson.JSONDecodeError) -> str:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as err:
        return f"value is not valid UTF-8 (invalid byte at position {err.start})"
    if "depth limit" in str(exc) or "recursion" in str(exc):
        return "value is JSON nested deeper than 1024 levels"
    return f"value is not JSON: {exc}"


def _json_type(doc: object) -> str:
    if doc is None:
        return "null"
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(doc), type(doc).__name__
    )


def _marker(doc: dict[str, Any]) -> EndOfStudy:
    if doc.get("marker") != MARKER_KIND:
        raise InvalidMarkerError(f'"marker" must be "{MARKER_KIND}"')
    extra = set(doc) - _MARKER_FIELDS
    if extra:
        raise InvalidMarkerError(f"marker has unknown fields {sorted(extra)[:10]}")
    uid = doc.get("study_instance_uid")
    if not isinstance(uid, str) or not uid.strip():
        raise InvalidMarkerError("marker has no study_instance_uid string")
    count = doc.get("instance_count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise InvalidMarkerError(
            f"marker instance_count must be a positive integer, got JSON {_json_type(count)}"
            + (f" {count}" if isinstance(count, int) and not isinstance(count, bool) else "")
        )
    return EndOfStudy(study_uid=uid.strip(), instance_count=count)


def _digest(text: str | None) -> str | None:
    if text is None or not text.strip():
        return None
    return hashlib.blake2b(text.strip().encode(), digest_size=8).hexdigest()


def patient_ref(doc: Mapping[str, Any]) -> PatientRef:
    """The instance's patient as digests of PatientID and IssuerOfPatientID."""
    return PatientRef(
        _digest(jm.first(doc, t.PatientID)), _digest(jm.first(doc, t.IssuerOfPatientID))
    )


def _instance(doc: dict[str, Any]) -> Instance:
    warnings: list[str] = []
    try:
        key = check_instance(doc)
        slim = slim_instance(doc, warnings)
        patient = patient_ref(doc)
    except InvalidInstanceError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, RecursionError) as exc:
        # These are meant to raise InvalidInstanceError only; be safe at the boundary (the compiled
        # build also raises TypeError where a value's type is not the declared one).
        raise InvalidInstanceError(f"not a DICOM JSON instance ({type(exc).__name__})") from exc
    return Instance(key=key, slim=orjson.dumps(slim), patient=patient, warnings=tuple(warnings))


def encode_marker(study_uid: str, instance_count: int | None) -> bytes:
    """The marker as producers send it."""
    doc: dict[str, Any] = {"marker": MARKER_KIND, "study_instance_uid": study_uid}
    if instance_count is not None:
        doc["instance_count"] = instance_count
    return orjson.dumps(doc)
