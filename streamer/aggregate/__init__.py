"""Pure per-study state: no I/O, no clock reads (time is passed in); the store is a Protocol."""

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
