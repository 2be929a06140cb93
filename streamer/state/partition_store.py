"""One input partition's state: a `KVStore` plus the changes staged since the last checkpoint.

Reads see the staged changes first, so the lane always reads its own writes; the store only ever
holds what a checkpoint has made durable: the checkpoint (``streamer/partitions.py``) seals the
staged changes into a snapshot (new writes go to a fresh dirty map), sends the snapshot to the
changelog, commits the input offset, and only then writes it with `flush_sealed`. Reads look at
the dirty map, then the sealed snapshot, then the store; a delete (None) in either map hides
older values.
Values are opaque bytes, except that study records (`s|`) pass through a `StudyCodec` so that a
bounded LRU can keep recently used ones decoded. No Kafka here.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Generic, NamedTuple, Protocol, TypeVar

from streamer.state.errors import InvalidKeyError, StoreCorruptError, StoreError
from streamer.state.keys import (
    META_CHANGELOG_OFFSET,
    META_CHECKPOINT_MS,
    META_FAILED_RECORD,
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


@dataclass(frozen=True, slots=True)
class FailedRecord:
    """The input record whose handling last failed unexpectedly, and on how many starts in a row."""

    offset: int
    attempts: int
    error_type: str


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


_Staged = list[tuple[bytes, bytes | None]]


def _range(keys: Sequence[bytes], values: Mapping[bytes, bytes | None], prefix: bytes) -> _Staged:
    """The (sorted) entries of a staged map under `prefix`."""
    lo = bisect_left(keys, prefix)
    upper = prefix_upper_bound(prefix)
    hi = len(keys) if upper is None else bisect_left(keys, upper)
    return [(k, values[k]) for k in keys[lo:hi]]


def _overlay(older: _Staged, newer: _Staged) -> _Staged:
    """Merge two sorted staged ranges; on the same key the newer entry wins (tombstones too)."""
    if not older:
        return newer
    if not newer:
        return older
    out: _Staged = []
    i, j = 0, 0
    while i < len(older) and j < len(newer):
        if older[i][0] < newer[j][0]:
            out.append(older[i])
            i += 1
        else:
            if older[i][0] == newer[j][0]:
                i += 1
            out.append(newer[j])
            j += 1
    out.extend(older[i:])
    out.extend(newer[j:])
    return out


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
        # The snapshot a checkpoint has sealed and not yet written (at most one at a time).
        self._sealed: dict[bytes, bytes | None] | None = None
        self._sealed_keys: list[bytes] = []
        self._sealed_bytes = 0

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
        if self._sealed is not None and key in self._sealed:
            return self._sealed[key]
        return self._kv.get(key)

    def scan_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Stored and staged records under `prefix`, in key order; staged deletes hide stored keys."""
        staged = _range(self._dirty_keys, self._dirty, prefix)
        if self._sealed is not None:
            staged = _overlay(_range(self._sealed_keys, self._sealed, prefix), staged)
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
        """A read-only view of the changes staged since the last `seal` (or flush)."""
        return MappingProxyType(self._dirty)

    @property
    def dirty_count(self) -> int:
        """Keys staged, in the dirty map and the sealed snapshot."""
        return len(self._dirty) + (len(self._sealed) if self._sealed is not None else 0)

    @property
    def dirty_bytes(self) -> int:
        """Keys plus values staged and sealed: what the store holds in memory for checkpoints."""
        return self._dirty_bytes + self._sealed_bytes

    @property
    def unsealed_bytes(self) -> int:
        """Keys plus values staged since the last seal: what the next checkpoint would take."""
        return self._dirty_bytes

    @property
    def sealed(self) -> bool:
        """A sealed snapshot waits for `flush_sealed` (or `discard_dirty`)."""
        return self._sealed is not None

    def seal(self) -> Mapping[bytes, bytes | None]:
        """Freeze the staged changes into the snapshot the checkpoint sends; new writes start afresh.

        Returns a read-only view of the snapshot. Only one snapshot at a time: `flush_sealed` (or
        `discard_dirty`) the previous one first.
        """
        if self._sealed is not None:
            raise StoreError("seal with a sealed snapshot not yet written")
        self._sealed, self._sealed_keys, self._sealed_bytes = (
            self._dirty,
            self._dirty_keys,
            self._dirty_bytes,
        )
        self._clear_dirty()
        return MappingProxyType(self._sealed)

    def flush_sealed(self, changelog_offset: int | None, checkpoint_ms: int) -> None:
        """Write the sealed snapshot and the metadata in one atomic batch, then forget it.

        `changelog_offset` None (nothing was sent) keeps the stored offset. Changes staged since the
        seal stay staged. Without a sealed snapshot only the metadata is written.
        """
        batch = dict(self._sealed) if self._sealed is not None else {}
        if changelog_offset is not None:
            batch[META_CHANGELOG_OFFSET] = str(changelog_offset).encode()
        batch[META_CHECKPOINT_MS] = str(checkpoint_ms).encode()
        self._kv.write_batch(batch)
        self._clear_sealed()

    def flush(self, changelog_offset: int | None, checkpoint_ms: int) -> None:
        """`seal` and `flush_sealed` at once: write everything staged (nothing may be sealed)."""
        self.seal()
        self.flush_sealed(changelog_offset, checkpoint_ms)

    def discard_dirty(self) -> None:
        """Drop staged and sealed changes (the commit failed); studies they touched leave the LRU."""
        for key in (*self._dirty_keys, *self._sealed_keys):
            if key.startswith(STUDY_PREFIX):
                self._lru.pop(key, None)
        self._clear_dirty()
        self._clear_sealed()

    def _clear_dirty(self) -> None:
        self._dirty = {}
        self._dirty_keys = []
        self._dirty_bytes = 0

    def _clear_sealed(self) -> None:
        self._sealed = None
        self._sealed_keys = []
        self._sealed_bytes = 0

    # -- restore and metadata ---------------------------------------------------------------

    def apply_restored(
        self,
        records: Iterable[tuple[bytes, bytes | None]],
        changelog_offset: int,
        checkpoint_ms: int | None = None,
    ) -> int:
        """Write changelog records (in order; the last per key wins) with their offset, atomically."""
        if self._dirty or self._sealed is not None:
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

    def failed_record(self) -> FailedRecord | None:
        """The note of `note_failed_record`; a malformed one counts as none (raising here would
        stop every restore of the partition: the very crash loop the note is there to end)."""
        raw = self._kv.get(META_FAILED_RECORD)
        if raw is None:
            return None
        offset, sep, rest = raw.partition(b"|")
        attempts, sep2, error_type = rest.partition(b"|")
        if not (sep and sep2 and offset.isdigit() and attempts.isdigit()):
            return None
        return FailedRecord(int(offset), int(attempts), error_type.decode(errors="replace"))

    def note_failed_record(self, offset: int, error_type: str) -> FailedRecord:
        """Count one more failed start on the record at `offset` (written at once, not staged)."""
        last = self.failed_record()
        attempts = last.attempts + 1 if last is not None and last.offset == offset else 1
        note = FailedRecord(offset, attempts, error_type)
        self._kv.write_batch(
            {META_FAILED_RECORD: b"%d|%d|%s" % (offset, attempts, error_type.encode())}
        )
        return note

    def clear_failed_record(self) -> None:
        self._kv.write_batch({META_FAILED_RECORD: None})

    def wipe(self) -> None:
        """Delete everything, metadata included, for a rebuild from scratch.

        Only the failed-record note stays: it is about the input, not the state, and a process
        that fails before its first checkpoint rebuilds its store at every start.
        """
        try:
            note = self._kv.get(META_FAILED_RECORD)
        except StoreError:
            note = None  # a damaged store: the record gets its attempts again
        self._clear_dirty()
        self._clear_sealed()
        self._lru.clear()
        self._kv.wipe()
        if note is not None:
            self._kv.write_batch({META_FAILED_RECORD: note})

    def close(self) -> None:
        """Close the store; staged changes are dropped (flush first)."""
        self._clear_dirty()
        self._clear_sealed()
        self._lru.clear()
        self._kv.close()
