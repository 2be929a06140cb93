"""Per-partition study state for the stream processor.

Recovery works by replay (no changelog topic): the committed offset of a partition is the first
offset of any study still held (open, or closed but still reopenable), so after a crash or a
rebalance the new owner consumes from there and the studies rebuild themselves. Deadlines come
from record timestamps, never from timers, so they survive the restart too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from streamer.errors import LateInstanceError
from streamer.messages import EndOfStudy, Instance


class CloseReason(StrEnum):
    MARKER = "marker"
    TIMEOUT = "timeout"


@dataclass(slots=True)
class Study:
    """One study's instances (slim orjson bytes by SOPInstanceUID) and its lifecycle."""

    uid: str
    first_offset: int
    last_activity_ms: int
    instances: dict[str, bytes] = field(default_factory=dict)
    marker_seen: bool = False
    expected_count: int | None = None
    closed_at_ms: int | None = None  # partition clock when it was closed; None while open
    times_closed: int = 0

    @property
    def is_open(self) -> bool:
        return self.closed_at_ms is None

    def marker_satisfied(self) -> bool:
        """The marker has come and, if it named a count, that many distinct instances are in."""
        if not self.marker_seen or not self.instances:
            return False
        return self.expected_count is None or len(self.instances) >= self.expected_count


@dataclass(frozen=True, slots=True)
class AddResult:
    """What an input record did to the state (for logs and metrics)."""

    study_uid: str
    reopened: bool = False
    duplicate: bool = False


@dataclass(slots=True)
class PartitionState:
    """All studies of one input partition, plus the offsets needed to commit safely."""

    partition: int
    timeout_ms: int
    reopen_window_ms: int
    # After the reopen window a closed study is forgotten but its uid remembered this long, so a
    # very late instance goes to the DLQ instead of silently overwriting the study with a fragment.
    tombstone_ms: int = 24 * 3600 * 1000
    studies: dict[str, Study] = field(default_factory=dict)
    tombstones: dict[str, int] = field(default_factory=dict)  # uid -> forget-at (partition clock)
    stream_time_ms: int = -1  # highest record timestamp seen on this partition
    next_offset: int | None = None  # last processed offset + 1

    def _seen(self, offset: int, timestamp_ms: int) -> None:
        self.stream_time_ms = max(self.stream_time_ms, timestamp_ms)
        self.next_offset = (
            offset + 1 if self.next_offset is None else max(self.next_offset, offset + 1)
        )

    def skip(self, offset: int, timestamp_ms: int) -> None:
        """A record that belongs to no study (dead-lettered) was handled."""
        self._seen(offset, timestamp_ms)

    def add_instance(self, instance: Instance, offset: int, timestamp_ms: int) -> AddResult:
        """Add an instance; a closed study reopens; raises LateInstanceError after the window."""
        uid = instance.study_uid
        study = self.studies.get(uid)
        if study is None and uid in self.tombstones:
            self._seen(offset, timestamp_ms)
            raise LateInstanceError(
                f"study {uid} was closed more than {self.reopen_window_ms / 1000:.0f} s ago; "
                "re-send the whole study to update it"
            )
        self._seen(offset, timestamp_ms)
        if study is None:
            study = Study(uid=uid, first_offset=offset, last_activity_ms=timestamp_ms)
            self.studies[uid] = study
        sop = instance.key.sop_uid
        if study.instances.get(sop) == instance.slim:
            return AddResult(uid, duplicate=True)  # redelivery: nothing new, do not reopen
        study.instances[sop] = instance.slim
        study.last_activity_ms = max(study.last_activity_ms, timestamp_ms)
        if study.is_open:
            return AddResult(uid)
        # Late instance: reopen; it closes again on a new marker or after the inactivity timeout.
        study.closed_at_ms = None
        study.marker_seen = False
        study.expected_count = None
        return AddResult(uid, reopened=True)

    def add_marker(self, marker: EndOfStudy, offset: int, timestamp_ms: int) -> AddResult:
        """Note the end-of-study marker; a marker for an already closed study changes nothing."""
        self._seen(offset, timestamp_ms)
        uid = marker.study_uid
        study = self.studies.get(uid)
        if study is None:
            if uid in self.tombstones:
                return AddResult(uid, duplicate=True)
            study = Study(uid=uid, first_offset=offset, last_activity_ms=timestamp_ms)
            self.studies[uid] = study
        if not study.is_open:
            return AddResult(uid, duplicate=True)
        study.marker_seen = True
        study.expected_count = marker.instance_count
        study.last_activity_ms = max(study.last_activity_ms, timestamp_ms)
        return AddResult(uid)

    def due(self, now_ms: int) -> Iterator[tuple[Study, CloseReason]]:
        """Open studies to close now: marker (and count) satisfied, or inactive for the timeout."""
        for study in list(self.studies.values()):
            if not study.is_open:
                continue
            if study.marker_satisfied():
                yield study, CloseReason.MARKER
            elif now_ms >= study.last_activity_ms + self.timeout_ms:
                yield study, CloseReason.TIMEOUT

    def close(self, study: Study, now_ms: int) -> None:
        """Mark a study closed (after its Bundle was handed to the producer)."""
        study.closed_at_ms = now_ms
        study.times_closed += 1

    def drop_empty(self, study: Study) -> None:
        """A study that timed out with a marker but no instances: nothing to publish."""
        del self.studies[study.uid]

    def expire(self, now_ms: int) -> list[str]:
        """Forget closed studies past the reopen window (they stop holding the commit back)."""
        expired = [
            s.uid
            for s in self.studies.values()
            if s.closed_at_ms is not None and now_ms >= s.closed_at_ms + self.reopen_window_ms
        ]
        for uid in expired:
            del self.studies[uid]
            self.tombstones[uid] = now_ms + self.tombstone_ms
        for uid, forget_at in list(self.tombstones.items()):
            if now_ms >= forget_at:
                del self.tombstones[uid]
        return expired

    def commit_offset(self) -> int | None:
        """The offset that is safe to commit: nothing before it is needed to rebuild any held study."""
        if self.next_offset is None:
            return None
        held = (s.first_offset for s in self.studies.values())
        return min(held, default=self.next_offset)

    @property
    def open_count(self) -> int:
        return sum(1 for s in self.studies.values() if s.is_open)
