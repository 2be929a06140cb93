"""One input partition's state: a `KVStore` plus the changes staged since the last checkpoint.

Reads see the staged changes first, so the lane always reads its own writes; the store only ever
holds what a checkpoint has made durable: the checkpoint (``streamer/partitions.py``) sends the
staged changes to the changelog, commits the input offset, and only then calls `flush`.
Values are opaque bytes, except that study records (`s|`) pass through a `StudyCodec` so that a
bounded LRU can keep recently used ones decoded. No Kafka here.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Generic, NamedTuple, Protocol, TypeVar

from streamer.state.errors import InvalidKeyError, StoreCorruptError, StoreError
from streamer.state.keys import (
    META_CHANGELOG_OFFSET,
    META_CHECKPOINT_MS,
    META_FORMAT,
    META_IDENTITY,
    STUDY_PREFIX,
    instance_prefix,
    is_local_key,
    parse_study_key,
    study_key,
)
from streamer.state.kv import KVStore, prefix_upper_bound

S = TypeVar("S")


class StudyCodec(Protocol[S]):
    """How study records become bytes and back; the store never looks inside them."""

    def encode(self, record: S) -> bytes: ...

    def decode(self, data: bytes) -> S: ...


class BytesCodec:
    """The identity codec: study records stay bytes."""

    def encode(self, record: bytes) -> bytes:
        return record

    def decode(self, data: bytes) -> bytes:
        return data


@dataclass(frozen=True, slots=True)
class StoreMetadata:
    """The local-only `m|` records; all None in a new or wiped store."""

    changelog_offset: int | None
    format: int | None
    identity: str | None
    checkpoint_ms: int | None


class CacheInfo(NamedTuple):
    hits: int
    misses: int
    size: int
    maxsize: int


def _int(raw: bytes | None, key: bytes) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        raise StoreCorruptError(f"metadata {key.decode()} is not an integer: {raw!r}") from None


class PartitionStore(Generic[S]):
    """Staged changes (the dirty map) over a `KVStore`, with an LRU of decoded study records.

    Records returned by `get_study` are shared with the LRU: treat them as immutable, and stage
    every change with `put_study`. Not thread-safe (one lane per partition).
    """

    def __init__(self, kv: KVStore, codec: StudyCodec[S], *, cache_size: int = 2048) -> None:
        if cache_size < 0:
            raise ValueError("cache_size must be >= 0")
        self._kv = kv
        self._codec = codec
        self._cache_size = cache_size
        self._lru: OrderedDict[bytes, S] = OrderedDict()
        self._hits = 0
        self._misses = 0
        self._dirty: dict[bytes, bytes | None] = {}
        self._dirty_keys: list[bytes] = []  # sorted, for prefix scans of the dirty map
        self._dirty_bytes = 0

    @property
    def kv(self) -> KVStore:
        return self._kv

    # -- staged reads and writes ------------------------------------------------------------

    def put(self, key: bytes, value: bytes | None) -> None:
        """Stage a value (None = delete) for the next checkpoint."""
        if is_local_key(key):
            raise InvalidKeyError(
                f"{key!r} is local metadata and cannot be staged for the changelog"
            )
        old = self._dirty.get(key)
        if key in self._dirty:
            self._dirty_bytes -= len(key) + (len(old) if old is not None else 0)
        else:
            insort(self._dirty_keys, key)
        self._dirty[key] = value
        self._dirty_bytes += len(key) + (len(value) if value is not None else 0)
        if key.startswith(STUDY_PREFIX):
            self._lru.pop(key, None)

    def get(self, key: bytes) -> bytes | None:
        if key in self._dirty:
            return self._dirty[key]
        return self._kv.get(key)

    def scan_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Stored and staged records under `prefix`, in key order; staged deletes hide stored keys."""
        lo = bisect_left(self._dirty_keys, prefix)
        upper = prefix_upper_bound(prefix)
        hi = len(self._dirty_keys) if upper is None else bisect_left(self._dirty_keys, upper)
        staged = [(k, self._dirty[k]) for k in self._dirty_keys[lo:hi]]
        if not staged:
            yield from self._kv.iter_prefix(prefix)
            return
        i, n = 0, len(staged)
        for key, value in self._kv.iter_prefix(prefix):
            while i < n and staged[i][0] < key:
                skey, svalue = staged[i]
                if svalue is not None:
                    yield skey, svalue
                i += 1
            if i < n and staged[i][0] == key:
                svalue = staged[i][1]
                if svalue is not None:
                    yield key, svalue
                i += 1
            else:
                yield key, value
        for skey, svalue in staged[i:]:
            if svalue is not None:
                yield skey, svalue

    def delete_prefix(self, prefix: bytes) -> int:
        """Stage tombstones for every record under `prefix` (metadata excepted); returns how many."""
        keys = [k for k, _ in self.scan_prefix(prefix) if not is_local_key(k)]
        for key in keys:
            self.put(key, None)
        return len(keys)

    # -- study records and instances --------------------------------------------------------

    def get_study(self, study_uid: str) -> S | None:
        key = study_key(study_uid)
        record = self._lru.get(key)
        if record is not None:
            self._lru.move_to_end(key)
            self._hits += 1
            return record
        self._misses += 1
        raw = self.get(key)
        if raw is None:
            return None
        record = self._codec.decode(raw)
        self._remember(key, record)
        return record

    def put_study(self, study_uid: str, record: S | None) -> None:
        """Stage a study record (None = delete) and keep it decoded in the LRU."""
        key = study_key(study_uid)
        if record is None:
            self.put(key, None)
            return
        self.put(key, self._codec.encode(record))
        self._remember(key, record)

    def _remember(self, key: bytes, record: S) -> None:
        if self._cache_size == 0:
            return
        self._lru[key] = record
        self._lru.move_to_end(key)
        while len(self._lru) > self._cache_size:
            self._lru.popitem(last=False)

    def iter_studies(self) -> Iterator[tuple[str, S]]:
        """Every study record, decoded, in key order (to re-arm timers); does not fill the LRU."""
        for key, raw in self.scan_prefix(STUDY_PREFIX):
            cached = self._lru.get(key)
            yield parse_study_key(key), cached if cached is not None else self._codec.decode(raw)

    def iter_instances(self, study_uid: str) -> Iterator[tuple[str, bytes]]:
        """(SOP instance UID, value) of one study's instances, in key order."""
        prefix = instance_prefix(study_uid)
        for key, value in self.scan_prefix(prefix):
            yield key[len(prefix) :].decode(), value

    def cache_info(self) -> CacheInfo:
        return CacheInfo(self._hits, self._misses, len(self._lru), self._cache_size)

    # -- checkpoint -------------------------------------------------------------------------

    def dirty(self) -> Mapping[bytes, bytes | None]:
        """A read-only view of the staged changes: what the next checkpoint sends to the changelog.

        Stage nothing between reading it and `flush`, or the store gets changes the changelog lacks.
        """
        return MappingProxyType(self._dirty)

    @property
    def dirty_count(self) -> int:
        return len(self._dirty)

    @property
    def dirty_bytes(self) -> int:
        """Keys plus values staged, to trigger a checkpoint before the dirty map grows large."""
        return self._dirty_bytes

    def flush(self, changelog_offset: int | None, checkpoint_ms: int) -> None:
        """Write the staged changes and the metadata in one atomic batch, then forget them.

        `changelog_offset` None (nothing was sent) keeps the stored offset.
        """
        batch = dict(self._dirty)
        if changelog_offset is not None:
            batch[META_CHANGELOG_OFFSET] = str(changelog_offset).encode()
        batch[META_CHECKPOINT_MS] = str(checkpoint_ms).encode()
        self._kv.write_batch(batch)
        self._clear_dirty()

    def discard_dirty(self) -> None:
        """Drop the staged changes (the commit failed); decoded studies they touched leave the LRU."""
        for key in self._dirty_keys:
            if key.startswith(STUDY_PREFIX):
                self._lru.pop(key, None)
        self._clear_dirty()

    def _clear_dirty(self) -> None:
        self._dirty = {}
        self._dirty_keys = []
        self._dirty_bytes = 0

    # -- restore and metadata ---------------------------------------------------------------

    def apply_restored(
        self,
        records: Iterable[tuple[bytes, bytes | None]],
        changelog_offset: int,
        checkpoint_ms: int | None = None,
    ) -> int:
        """Write changelog records (in order; the last per key wins) with their offset, atomically."""
        if self._dirty:
            raise StoreError("apply_restored with staged changes: restore before processing")
        batch: dict[bytes, bytes | None] = {}
        count = 0
        for key, value in records:
            if is_local_key(key):
                raise InvalidKeyError(f"changelog record with a local metadata key {key!r}")
            batch[key] = value
            count += 1
            if key.startswith(STUDY_PREFIX):
                self._lru.pop(key, None)
        batch[META_CHANGELOG_OFFSET] = str(changelog_offset).encode()
        if checkpoint_ms is not None:
            batch[META_CHECKPOINT_MS] = str(checkpoint_ms).encode()
        self._kv.write_batch(batch)
        return count

    def set_identity(self, format_version: int, identity: str) -> None:
        """Record the format version and identity (group, topic, partition, changelog) at once."""
        self._kv.write_batch(
            {META_FORMAT: str(format_version).encode(), META_IDENTITY: identity.encode()}
        )

    def metadata(self) -> StoreMetadata:
        identity = self._kv.get(META_IDENTITY)
        try:
            ident = None if identity is None else identity.decode()
        except UnicodeDecodeError:
            raise StoreCorruptError(f"metadata identity is not UTF-8: {identity!r}") from None
        return StoreMetadata(
            changelog_offset=_int(self._kv.get(META_CHANGELOG_OFFSET), META_CHANGELOG_OFFSET),
            format=_int(self._kv.get(META_FORMAT), META_FORMAT),
            identity=ident,
            checkpoint_ms=_int(self._kv.get(META_CHECKPOINT_MS), META_CHECKPOINT_MS),
        )

    def wipe(self) -> None:
        """Delete everything, metadata included, for a rebuild from scratch."""
        self._clear_dirty()
        self._lru.clear()
        self._kv.wipe()

    def close(self) -> None:
        """Close the store; staged changes are dropped (flush first)."""
        self._clear_dirty()
        self._lru.clear()
        self._kv.close()
