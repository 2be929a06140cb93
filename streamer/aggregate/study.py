"""Per-partition study lifecycle: add instances and markers, find due studies, close, expire.

Pure: every study and instance lives in a ``StudyStore`` (a durable one in the stream processor), and
time is passed in. What stays in memory is a small index per open study (its deadline), rebuilt from
the store's study records by ``rearm`` after a restore. Closed studies are indexed by close time in
the store itself: they are kept for the whole retention (30 days by default), and memory must not
grow with them.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import orjson

from streamer.aggregate.record import CloseReason, StudyRecord, StudyStatus
from streamer.aggregate.store import StudyStore
from streamer.errors import LateInstanceError, PatientConflictError, StudyTooLargeError
from streamer.messages import EndOfStudy, Instance, PatientRef

_DAY_MS = 24 * 3600 * 1000


def changed_tags(old: bytes, new: bytes) -> tuple[str, ...]:
    """Top-level tags whose elements differ between two slim instances (names only)."""
    a, b = orjson.loads(old), orjson.loads(new)
    if not isinstance(a, dict) or not isinstance(b, dict):
        return ()
    return tuple(sorted(tag for tag in a.keys() | b.keys() if a.get(tag) != b.get(tag)))


@dataclass(frozen=True, slots=True)
class AddResult:
    """What an input record did to the state (for logs and metrics)."""

    study_uid: str
    reopened: bool = False
    duplicate: bool = False  # an identical redelivery: nothing changed
    # The SOPInstanceUID was held with other content: the new one replaced it (an update);
    # these are the tags whose values differ (never the values).
    changed_tags: tuple[str, ...] = ()


@dataclass(slots=True)
class PartitionState:
    """All studies of one input partition."""

    partition: int
    store: StudyStore
    timeout_ms: int
    retention_ms: int
    max_instances: int = 50_000  # per study; more are refused (StudyTooLargeError)
    stream_time_ms: int = -1  # highest record timestamp seen on this partition
    next_offset: int | None = None  # last processed offset + 1: what to commit
    _open: dict[str, int] = field(default_factory=dict)  # uid -> last activity
    _ready: set[str] = field(default_factory=set)  # open studies whose marker is satisfied
    # (last activity, uid) of open studies, oldest first, so that finding due studies and the
    # longest-idle one costs nothing per open study each round. Entries whose study has moved on
    # (closed, or active again) are skipped when met and dropped when they pile up.
    _by_activity: list[tuple[int, str]] = field(default_factory=list)
    _closed_count: int = 0  # closed studies kept (indexed in the store, by close time)

    # ---- restore --------------------------------------------------------------------------

    def rearm(self, records: Iterable[StudyRecord]) -> None:
        """Rebuild the in-memory index from stored study records (deadlines are not reset)."""
        self._open.clear()
        self._ready.clear()
        self._by_activity.clear()
        self._closed_count = 0
        closed: list[tuple[int, str]] = []
        for record in records:
            if record.status is StudyStatus.CLOSED and record.closed_at_ms is not None:
                self._closed_count += 1
                closed.append((record.closed_at_ms, record.uid))
            else:
                self._index(record)
        # A store written before the closing-order index existed (or a changelog without it):
        # index what is missing. Transient memory, at restore only.
        if closed:
            indexed = set(self.store.closed_in_order())
            for closed_at, uid in closed:
                if (max(0, closed_at), uid) not in indexed:
                    self.store.index_closed(uid, closed_at)

    def _index(self, record: StudyRecord) -> None:
        uid = record.uid
        if record.status is StudyStatus.OPEN:
            last = record.last_activity_ms
            if self._open.get(uid) != last:
                self._open[uid] = last
                heapq.heappush(self._by_activity, (last, uid))
                if len(self._by_activity) > 2 * len(self._open) + 1024:
                    self._compact()
            if record.marker_satisfied():
                self._ready.add(uid)
            else:
                self._ready.discard(uid)
        else:
            self._open.pop(uid, None)
            self._ready.discard(uid)

    def _save(self, record: StudyRecord) -> None:
        self.store.put_study(record)
        self._index(record)

    # ---- records --------------------------------------------------------------------------

    def _seen(self, offset: int, timestamp_ms: int) -> None:
        self.stream_time_ms = max(self.stream_time_ms, timestamp_ms)
        if self.next_offset is None or offset + 1 > self.next_offset:
            self.next_offset = offset + 1

    def skip(self, offset: int, timestamp_ms: int) -> None:
        """A record that belongs to no study (dead-lettered) was handled."""
        self._seen(offset, timestamp_ms)

    def add_instance(self, instance: Instance, offset: int, timestamp_ms: int) -> AddResult:
        """Add an instance; a closed study reopens; an expired one raises LateInstanceError."""
        self._seen(offset, timestamp_ms)
        uid = instance.study_uid
        record = self.store.get_study(uid)
        if record is not None and record.status is StudyStatus.EXPIRED:
            days = self.retention_ms / _DAY_MS
            raise LateInstanceError(
                f"study {uid} was closed more than {days:g} days ago and its state was removed "
                "(STREAMER_STATE_RETENTION_DAYS); re-send the whole study to a new StudyInstanceUID "
                "or restore it downstream"
            )
        sop = instance.key.sop_uid
        held = self.store.get_instance(uid, sop) if record is not None else None
        if held == instance.slim:
            return AddResult(uid, duplicate=True)  # redelivery: nothing new, do not reopen
        patient = instance.patient
        if record is None:
            record = StudyRecord(
                uid,
                StudyStatus.OPEN,
                first_offset=offset,
                last_activity_ms=timestamp_ms,
            )
        # The first instance naming a patient defines the study's patient (replays see the same
        # order, so the decision is the same after a restart).
        if patient.conflicts_with(
            PatientRef(record.patient_id_digest, record.patient_issuer_digest)
        ):
            raise PatientConflictError(
                f"instance {sop} names another patient (PatientID (0010,0020) or "
                f"IssuerOfPatientID (0010,0021)) than the first instance of study {uid}; "
                "a study is never merged across patients"
            )
        if held is None and record.instance_count >= self.max_instances:
            raise StudyTooLargeError(
                f"study {uid} already holds {record.instance_count:,} instances "
                f"(STREAMER_MAX_INSTANCES_PER_STUDY); instance {sop} is not added"
            )
        if record.patient_id_digest is None and patient.id_digest is not None:
            record.patient_id_digest = patient.id_digest
        if record.patient_issuer_digest is None and patient.issuer_digest is not None:
            record.patient_issuer_digest = patient.issuer_digest
        self.store.put_instance(uid, sop, instance.slim)
        changed = changed_tags(held, instance.slim) if held is not None else ()
        if held is None:
            record.instance_count += 1
        record.last_activity_ms = max(record.last_activity_ms, timestamp_ms)
        reopened = record.status is StudyStatus.CLOSED
        if reopened:
            # Late instance: it closes again on a new marker or after the inactivity timeout,
            # and is then published whole (all its instances, same ids).
            if record.closed_at_ms is not None:
                self.store.unindex_closed(uid, record.closed_at_ms)
                self._closed_count -= 1
            record.status = StudyStatus.OPEN
            record.marker_seen = False
            record.expected_count = None
            record.closed_at_ms = None
        self._save(record)
        return AddResult(uid, reopened=reopened, changed_tags=changed)

    def add_marker(self, marker: EndOfStudy, offset: int, timestamp_ms: int) -> AddResult:
        """Note the end-of-study marker; a marker for a closed or expired study changes nothing."""
        self._seen(offset, timestamp_ms)
        uid = marker.study_uid
        record = self.store.get_study(uid)
        if record is None:
            record = StudyRecord(
                uid, StudyStatus.OPEN, first_offset=offset, last_activity_ms=timestamp_ms
            )
        elif not record.is_open:
            return AddResult(uid, duplicate=True)
        record.marker_seen = True
        record.expected_count = marker.instance_count
        record.last_activity_ms = max(record.last_activity_ms, timestamp_ms)
        self._save(record)
        return AddResult(uid)

    # ---- closing --------------------------------------------------------------------------

    def due(self, now_ms: int) -> list[tuple[str, CloseReason]]:
        """Open studies to close now: marker (and count) satisfied, or inactive for the timeout."""
        out = [(uid, CloseReason.MARKER) for uid in sorted(self._ready)]
        heap = self._by_activity
        taken: list[tuple[int, str]] = []
        seen: set[str] = set()
        while heap and now_ms >= heap[0][0] + self.timeout_ms:
            last, uid = heapq.heappop(heap)
            if self._open.get(uid) != last or uid in seen:
                # closed, or active again since (a newer entry stands for it); or a second entry
                # of the same activity (a study reopened by an instance no newer than its last)
                continue
            seen.add(uid)
            taken.append((last, uid))
            if uid not in self._ready:
                out.append((uid, CloseReason.TIMEOUT))
        for entry in taken:  # still open until the caller closes them
            heapq.heappush(heap, entry)
        return out

    def _compact(self) -> None:
        self._by_activity = [(last, uid) for uid, last in self._open.items()]
        heapq.heapify(self._by_activity)

    def study(self, uid: str) -> StudyRecord | None:
        return self.store.get_study(uid)

    def instances(self, uid: str) -> Iterator[bytes]:
        return self.store.instances(uid)

    def close(self, uid: str, now_ms: int, reason: CloseReason) -> StudyRecord:
        """Mark a study closed (its Bundle was handed to the producer)."""
        record = self.store.get_study(uid)
        if record is None:
            raise KeyError(uid)
        if record.closed_at_ms is not None:  # closed again without a reopen: move it
            self.store.unindex_closed(uid, record.closed_at_ms)
        if record.status is not StudyStatus.CLOSED:
            self._closed_count += 1
        record.status = StudyStatus.CLOSED
        record.closed_at_ms = now_ms
        self.store.index_closed(uid, now_ms)
        record.close_reason = reason
        record.times_closed += 1
        self._save(record)
        return record

    def drop_empty(self, uid: str) -> None:
        """A study that timed out with a marker but no instances: nothing to publish or keep."""
        self.store.delete_study(uid)
        self._open.pop(uid, None)
        self._ready.discard(uid)

    def expire(self, now_ms: int, limit: int) -> list[str]:
        """Remove the instances of up to ``limit`` studies closed longer than the retention.

        A small expired record stays, so a later instance of the study is dead-lettered instead of
        starting a new, smaller study that would replace the complete one downstream.
        """
        # The store's index is in closing order (a study closed again moves to the end), so only
        # the expired ones are looked at: the sweep costs nothing however many closed studies are
        # kept. A clock that went back can only keep a study a little longer, never shorter.
        due: list[tuple[int, str]] = []
        for closed_at, uid in self.store.closed_in_order():
            if len(due) >= limit or now_ms < closed_at + self.retention_ms:
                break
            due.append((closed_at, uid))
        expired: list[str] = []
        for closed_at, uid in due:
            self.store.unindex_closed(uid, closed_at)
            record = self.store.get_study(uid)
            if (
                record is None
                or record.status is not StudyStatus.CLOSED
                or record.closed_at_ms is None
                or max(0, record.closed_at_ms) != closed_at
            ):
                continue  # an entry left behind (cannot happen; harmless): dropped
            self.store.delete_instances(uid)
            record.status = StudyStatus.EXPIRED
            self._save(record)
            self._closed_count -= 1
            expired.append(uid)
        return expired

    # ---- sizes ----------------------------------------------------------------------------

    @property
    def open_count(self) -> int:
        return len(self._open)

    @property
    def closed_count(self) -> int:
        """Closed studies still kept for late instances."""
        return self._closed_count

    def open_uids(self) -> list[str]:
        return sorted(self._open)

    def oldest_activity_ms(self) -> int | None:
        """Last activity of the longest-idle open study."""
        heap = self._by_activity
        while heap and self._open.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None
