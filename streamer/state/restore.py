"""Bring a partition's local store up to date from the changelog before the partition is processed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from streamer.aggregate.record import FORMAT
from streamer.ports import ChangelogReader
from streamer.state.partition_store import PartitionStore

log = logging.getLogger(__name__)

# A store whose last checkpoint is older than this is rebuilt from scratch: the broker may have
# compacted away tombstones it never saw (Kafka's delete.retention.ms defaults to one day), and
# keys deleted meanwhile would come back.
STALE_AFTER_MS = 20 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class RestoreResult:
    applied: int  # changelog records written to the store
    skipped: int  # records of a checkpoint whose commit never happened
    rebuilt: bool  # the local store was wiped and rebuilt from the whole changelog


def _needs_rebuild(
    store: PartitionStore[Any], identity: str, begin: int, end: int, now_ms: int
) -> str | None:
    meta = store.metadata()
    if meta.format != FORMAT or meta.identity != identity:
        return "new, or of another format or partition"
    if meta.changelog_offset is None:
        return "no changelog offset stored"
    if meta.changelog_offset >= end:
        return "changelog is behind the store (recreated topic)"
    if meta.changelog_offset < begin - 1:
        return "changelog was truncated past the store"
    if meta.checkpoint_ms is None or now_ms - meta.checkpoint_ms > STALE_AFTER_MS:
        return "store is stale"
    return None


async def restore_partition(
    store: PartitionStore[Any],
    reader: ChangelogReader,
    partition: int,
    *,
    committed: int | None,
    identity: str,
    now_ms: int,
) -> RestoreResult:
    """Catch the store up with the changelog (or rebuild it), applying only committed checkpoints.

    A changelog record whose source offset is not below ``committed`` was written by a checkpoint
    that crashed before its commit: its input is read again, so it is skipped. So that a later
    rebuild cannot apply it once the commit has passed it, each skipped key is staged again with
    the value the store holds, and the first checkpoint overwrites the record.
    """
    begin, end = await reader.bounds(partition)
    reason = _needs_rebuild(store, identity, begin, end, now_ms)
    if reason is not None:
        log.info("rebuilding partition store", extra={"partition": partition, "reason": reason})
        store.wipe()
        store.set_identity(FORMAT, identity)
        start = begin
    else:
        start = (store.metadata().changelog_offset or 0) + 1
    applied = 0
    skipped: set[bytes] = set()
    if begin == end == 0:
        # A changelog partition that never had a record: nothing to read.
        return RestoreResult(applied=0, skipped=0, rebuilt=reason is not None)
    async for batch in reader.read(partition, start, end):
        if not batch:
            continue
        keep = []
        for record in batch:
            src = record.source_offset
            if committed is not None and (src is None or src < committed):
                keep.append((record.key, record.value))
            else:
                skipped.add(record.key)
        applied += store.apply_restored(
            keep, changelog_offset=batch[-1].offset, checkpoint_ms=now_ms
        )
    for key in sorted(skipped):
        store.put(key, store.get(key))
    return RestoreResult(applied=applied, skipped=len(skipped), rebuilt=reason is not None)
