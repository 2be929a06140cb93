"""A study's lifecycle record: what the store keeps per study besides its instances."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

FORMAT = 1  # bump when the encoded shape changes; a store of another format is rebuilt


class CloseReason(StrEnum):
    MARKER = "marker"
    TIMEOUT = "timeout"


class StudyStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # published; a late instance reopens it
    EXPIRED = "expired"  # kept past the retention: instances removed, later instances dead-lettered


@dataclass(slots=True)
class StudyRecord:
    """Everything about a study except its instances; small and of fixed size."""

    uid: str
    status: StudyStatus
    first_offset: int  # input offset of its first record (dead-letter headers point there)
    last_activity_ms: int  # highest record timestamp of the study: the inactivity deadline base
    instance_count: int = 0  # distinct SOPInstanceUIDs held
    marker_seen: bool = False
    expected_count: int | None = None  # instance_count named by the marker, if any
    closed_at_ms: int | None = None
    close_reason: CloseReason | None = None
    times_closed: int = 0
    # The first instance's patient (digests): later instances naming another one are refused.
    patient_id_digest: str | None = None
    patient_issuer_digest: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status is StudyStatus.OPEN

    def marker_satisfied(self) -> bool:
        """The marker has come and, if it named a count, that many distinct instances are in."""
        if not self.marker_seen or self.instance_count == 0:
            return False
        return self.expected_count is None or self.instance_count >= self.expected_count


def encode_record(record: StudyRecord) -> bytes:
    doc: dict[str, Any] = {
        "v": FORMAT,
        "uid": record.uid,
        "status": record.status.value,
        "first_offset": record.first_offset,
        "last_activity_ms": record.last_activity_ms,
        "instance_count": record.instance_count,
        "marker_seen": record.marker_seen,
        "expected_count": record.expected_count,
        "closed_at_ms": record.closed_at_ms,
        "close_reason": record.close_reason.value if record.close_reason else None,
        "times_closed": record.times_closed,
        "patient_id": record.patient_id_digest,
        "patient_issuer": record.patient_issuer_digest,
    }
    return orjson.dumps(doc)


def decode_record(raw: bytes) -> StudyRecord:
    doc = orjson.loads(raw)
    if doc.get("v") != FORMAT:
        raise ValueError(f"study record of format {doc.get('v')!r}, expected {FORMAT}")
    reason = doc["close_reason"]
    return StudyRecord(
        uid=doc["uid"],
        status=StudyStatus(doc["status"]),
        first_offset=doc["first_offset"],
        last_activity_ms=doc["last_activity_ms"],
        instance_count=doc["instance_count"],
        marker_seen=doc["marker_seen"],
        expected_count=doc["expected_count"],
        closed_at_ms=doc["closed_at_ms"],
        close_reason=CloseReason(reason) if reason else None,
        times_closed=doc["times_closed"],
        patient_id_digest=doc.get("patient_id"),
        patient_issuer_digest=doc.get("patient_issuer"),
    )
