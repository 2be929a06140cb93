"""Per-study lifecycle (gather, close, expire): pure, no I/O, no clock; the store is a Protocol."""

from streamer.aggregate.record import CloseReason, StudyRecord, StudyStatus
from streamer.aggregate.store import InMemoryStudyStore, StudyStore
from streamer.aggregate.study import AddResult, PartitionState

__all__ = [
    "AddResult",
    "CloseReason",
    "InMemoryStudyStore",
    "PartitionState",
    "StudyRecord",
    "StudyStatus",
    "StudyStore",
]
