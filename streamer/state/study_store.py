"""The aggregate's StudyStore on a partition store: study records and instances as keyed records."""

from __future__ import annotations

from collections.abc import Iterator

from streamer.aggregate.record import StudyRecord, decode_record, encode_record
from streamer.state.directory import Engine, StateDirectory
from streamer.state.keys import (
    CLOSED_PREFIX,
    closed_key,
    instance_key,
    instance_prefix,
    parse_closed_key,
)
from streamer.state.partition_store import PartitionStore


class StudyRecordCodec:
    """Study records as the orjson bytes kept in the store and the changelog."""

    def encode(self, record: StudyRecord) -> bytes:
        return encode_record(record)

    def decode(self, data: bytes) -> StudyRecord:
        return decode_record(data)


class KVStudyStore:
    """One key per study (``s|``) and one per instance (``i|``): no record grows with a study.
    Closed studies are also indexed by close time (``c|``), so the retention sweep needs no
    in-memory index of the (up to 30 days of) closed studies."""

    def __init__(self, store: PartitionStore[StudyRecord]) -> None:
        self._store = store

    def get_study(self, uid: str) -> StudyRecord | None:
        return self._store.get_study(uid)

    def put_study(self, record: StudyRecord) -> None:
        self._store.put_study(record.uid, record)

    def delete_study(self, uid: str) -> None:
        self._store.put_study(uid, None)

    def get_instance(self, uid: str, sop_uid: str) -> bytes | None:
        return self._store.get(instance_key(uid, sop_uid))

    def put_instance(self, uid: str, sop_uid: str, slim: bytes) -> None:
        self._store.put(instance_key(uid, sop_uid), slim)

    def instances(self, uid: str) -> Iterator[bytes]:
        return (value for _, value in self._store.iter_instances(uid))

    def delete_instances(self, uid: str) -> None:
        self._store.delete_prefix(instance_prefix(uid))

    def studies(self) -> Iterator[StudyRecord]:
        return (record for _, record in self._store.iter_studies())

    def index_closed(self, uid: str, closed_at_ms: int) -> None:
        self._store.put(closed_key(closed_at_ms, uid), b"")

    def unindex_closed(self, uid: str, closed_at_ms: int) -> None:
        self._store.put(closed_key(closed_at_ms, uid), None)

    def closed_in_order(self) -> Iterator[tuple[int, str]]:
        return (parse_closed_key(key) for key, _ in self._store.scan_prefix(CLOSED_PREFIX))


class StudyStores:
    """This process's state directory (locked while open): one study store per input partition."""

    def __init__(self, directory: StateDirectory, topic: str, engine: Engine) -> None:
        self._directory = directory
        self._topic = topic
        self._engine: Engine = engine

    def open(self, partition: int) -> PartitionStore[StudyRecord]:
        """Open a partition's store; a corrupt one is deleted and rebuilt from the changelog."""
        kv = self._directory.open_store(
            self._topic, partition, self._engine, recreate_if_corrupt=True
        )
        return PartitionStore(kv, StudyRecordCodec())

    def close(self) -> None:
        self._directory.close()
