"""The store the aggregate works on: a Protocol, and a dict-backed one for tests and the library."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from streamer.aggregate.record import StudyRecord


class StudyStore(Protocol):
    """Study records and their instances' slim bytes, by study UID and SOPInstanceUID."""

    def get_study(self, uid: str) -> StudyRecord | None: ...

    def put_study(self, record: StudyRecord) -> None: ...

    def delete_study(self, uid: str) -> None: ...

    def get_instance(self, uid: str, sop_uid: str) -> bytes | None: ...

    def put_instance(self, uid: str, sop_uid: str, slim: bytes) -> None: ...

    def instances(self, uid: str) -> Iterator[bytes]:
        """The study's instances in SOPInstanceUID order."""
        ...

    def delete_instances(self, uid: str) -> None: ...

    def studies(self) -> Iterator[StudyRecord]:
        """Every study record (to re-arm timers after a restore)."""
        ...

    def index_closed(self, uid: str, closed_at_ms: int) -> None:
        """Note a study closed at ``closed_at_ms`` in the closing-order index."""
        ...

    def unindex_closed(self, uid: str, closed_at_ms: int) -> None:
        """Remove that note (absent: nothing happens)."""
        ...

    def closed_in_order(self) -> Iterator[tuple[int, str]]:
        """(close time, study UID) of the index, oldest first; read it whole before changing it."""
        ...


class InMemoryStudyStore:
    """A StudyStore in dicts; nothing survives the process."""

    def __init__(self) -> None:
        self._studies: dict[str, StudyRecord] = {}
        self._instances: dict[str, dict[str, bytes]] = {}
        self._closed: set[tuple[int, str]] = set()

    def get_study(self, uid: str) -> StudyRecord | None:
        return self._studies.get(uid)

    def put_study(self, record: StudyRecord) -> None:
        self._studies[record.uid] = record

    def delete_study(self, uid: str) -> None:
        self._studies.pop(uid, None)

    def get_instance(self, uid: str, sop_uid: str) -> bytes | None:
        return self._instances.get(uid, {}).get(sop_uid)

    def put_instance(self, uid: str, sop_uid: str, slim: bytes) -> None:
        self._instances.setdefault(uid, {})[sop_uid] = slim

    def instances(self, uid: str) -> Iterator[bytes]:
        held = self._instances.get(uid, {})
        return iter([held[sop] for sop in sorted(held)])

    def delete_instances(self, uid: str) -> None:
        self._instances.pop(uid, None)

    def studies(self) -> Iterator[StudyRecord]:
        return iter(list(self._studies.values()))

    def index_closed(self, uid: str, closed_at_ms: int) -> None:
        self._closed.add((closed_at_ms, uid))

    def unindex_closed(self, uid: str, closed_at_ms: int) -> None:
        self._closed.discard((closed_at_ms, uid))

    def closed_in_order(self) -> Iterator[tuple[int, str]]:
        return iter(sorted(self._closed))
