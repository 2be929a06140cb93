"""Pure per-study state: no I/O, no clock reads (time is passed in)."""

from streamer.aggregate.study import CloseReason, PartitionState, Study

__all__ = ["CloseReason", "PartitionState", "Study"]
