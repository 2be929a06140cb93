"""Input messages: decode a record's value into a DICOM instance or an end-of-study marker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from streamer.dicom.instance import InstanceKey, check_instance, slim_instance
from streamer.errors import InvalidInstanceError, InvalidMessageError

MARKER_KIND = "end-of-study"


@dataclass(frozen=True, slots=True)
class EndOfStudy:
    """The end-of-study marker: the producer says a study is complete."""

    study_uid: str
    instance_count: int | None


@dataclass(frozen=True, slots=True)
class Instance:
    """One DICOM instance, reduced to what the Bundle needs (orjson bytes keep open state small)."""

    key: InstanceKey
    slim: bytes

    @property
    def study_uid(self) -> str:
        return self.key.study_uid


Message = EndOfStudy | Instance


def decode(key: bytes | None, value: bytes | None) -> Message:
    """Decode one input record; InvalidMessageError says why it belongs in the dead-letter topic."""
    if value is None:
        raise InvalidMessageError("record has no value (tombstone)")
    try:
        doc: Any = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessageError(f"value is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidMessageError(f"value is JSON {type(doc).__name__}, not an object")
    message = _marker(doc) if "marker" in doc else _instance(doc)
    if key is not None:
        try:
            key_text = key.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidMessageError("key is not UTF-8") from exc
        if key_text != message.study_uid:
            # The key decides the partition; a mismatch would split a study across partitions.
            raise InvalidMessageError(
                f"key {key_text!r} does not match StudyInstanceUID {message.study_uid!r}"
            )
    return message


def _marker(doc: dict[str, Any]) -> EndOfStudy:
    if doc.get("marker") != MARKER_KIND:
        raise InvalidMessageError(f"unknown marker {doc.get('marker')!r}")
    extra = set(doc) - {"marker", "study_instance_uid", "instance_count"}
    if extra:
        raise InvalidMessageError(f"marker has unknown fields {sorted(extra)}")
    uid = doc.get("study_instance_uid")
    if not isinstance(uid, str) or not uid.strip():
        raise InvalidMessageError("marker has no study_instance_uid string")
    count = doc.get("instance_count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise InvalidMessageError(
            f"marker instance_count must be a positive integer, got {count!r}"
        )
    return EndOfStudy(study_uid=uid.strip(), instance_count=count)


def _instance(doc: dict[str, Any]) -> Instance:
    try:
        key = check_instance(doc)
    except InvalidInstanceError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        # check_instance is meant to raise InvalidInstanceError only; be safe at the boundary.
        raise InvalidInstanceError(f"not a DICOM JSON instance: {exc}") from exc
    return Instance(key=key, slim=orjson.dumps(slim_instance(doc)))


def encode_marker(study_uid: str, instance_count: int | None) -> bytes:
    """The marker as producers send it."""
    doc: dict[str, Any] = {"marker": MARKER_KIND, "study_instance_uid": study_uid}
    if instance_count is not None:
        doc["instance_count"] = instance_count
    return orjson.dumps(doc)
