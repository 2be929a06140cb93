"""PartitionStore: the dirty map over a KVStore, checkpoints, restore batches, metadata, the LRU."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streamer.state import (
    BytesCodec,
    InvalidKeyError,
    KVStore,
    PartitionStore,
    StoreCorruptError,
    StoreError,
    StoreMetadata,
    instance_key,
    instance_prefix,
    parse_instance_key,
    parse_study_key,
    study_key,
)
from tests.unit.state.conftest import open_disk

EMPTY = StoreMetadata(changelog_offset=None, format=None, identity=None, checkpoint_ms=None)


class CountingCodec:
    """dict <-> JSON, counting decodes to see what the LRU saved."""

    def __init__(self) -> None:
        self.decodes = 0

    def encode(self, record: dict[str, int]) -> bytes:
        return orjson.dumps(record)

    def decode(self, data: bytes) -> dict[str, int]:
        self.decodes += 1
        result: dict[str, int] = orjson.loads(data)
        return result


def raw(kv: KVStore) -> PartitionStore[bytes]:
    return PartitionStore(kv, BytesCodec())


def test_reads_see_staged_changes_before_flush(kv: KVStore) -> None:
    ps = raw(kv)
    key = instance_key("1.2", "3")
    ps.put(key, b"v1")
    assert ps.get(key) == b"v1"
    assert kv.get(key) is None  # nothing reaches the store before a checkpoint
    ps.flush(10, 1_000)
    ps.put(key, None)
    assert ps.get(key) is None
    assert kv.get(key) == b"v1"


def test_scan_merges_dirty_map_in_key_order(kv: KVStore) -> None:
    ps = raw(kv)
    p = instance_prefix("1.2")
    for sop in ("a", "b", "c", "e"):
        ps.put(p + sop.encode(), b"stored-" + sop.encode())
    ps.put(instance_key("1.3", "a"), b"other study")
    ps.flush(0, 1)
    ps.put(p + b"b", None)  # staged delete hides the stored key
    ps.put(p + b"c", b"updated")
    ps.put(p + b"0", b"new-first")
    ps.put(p + b"d", b"new-middle")
    ps.put(p + b"f", b"new-last")
    ps.put(p + b"g", None)  # a delete of a key never stored
    assert list(ps.scan_prefix(p)) == [
        (p + b"0", b"new-first"),
        (p + b"a", b"stored-a"),
        (p + b"c", b"updated"),
        (p + b"d", b"new-middle"),
        (p + b"e", b"stored-e"),
        (p + b"f", b"new-last"),
    ]
    assert next(ps.iter_instances("1.2")) == ("0", b"new-first")
    ps.flush(1, 2)
    assert [k for k, _ in kv.iter_prefix(p)] == [
        p + s for s in (b"0", b"a", b"c", b"d", b"e", b"f")
    ]


def test_dirty_map_and_its_size(kv: KVStore) -> None:
    ps = raw(kv)
    ps.put(b"i|1|a", b"12345")
    ps.put(b"i|1|a", b"12")
    ps.put(b"i|1|b", None)
    assert dict(ps.dirty()) == {b"i|1|a": b"12", b"i|1|b": None}
    assert ps.dirty_count == 2
    assert ps.dirty_bytes == len(b"i|1|a") + 2 + len(b"i|1|b")
    with pytest.raises(TypeError):
        ps.dirty()[b"x"] = b"y"  # type: ignore[index]
    ps.flush(None, 5)
    assert ps.dirty_count == 0
    assert ps.dirty_bytes == 0


def test_flush_writes_data_and_metadata_together(kv: KVStore) -> None:
    ps = raw(kv)
    assert ps.metadata() == EMPTY
    ps.put(b"s|1", b"study")
    ps.flush(41, 1_700_000_000_000)
    assert kv.get(b"s|1") == b"study"
    assert ps.metadata().changelog_offset == 41
    assert ps.metadata().checkpoint_ms == 1_700_000_000_000
    ps.flush(None, 1_700_000_000_500)  # nothing sent: the offset stays
    assert ps.metadata() == StoreMetadata(41, None, None, 1_700_000_000_500)
    ps.set_identity(1, "g|dicom.instances|3|g.study-state")
    assert ps.metadata() == StoreMetadata(
        41, 1, "g|dicom.instances|3|g.study-state", 1_700_000_000_500
    )


def test_metadata_cannot_be_staged(kv: KVStore) -> None:
    ps = raw(kv)
    with pytest.raises(InvalidKeyError):
        ps.put(b"m|changelog_offset", b"1")
    with pytest.raises(InvalidKeyError):
        ps.apply_restored([(b"m|format", b"9")], changelog_offset=0)
    ps.flush(3, 4)
    ps.put(b"i|1|a", b"x")
    assert ps.delete_prefix(b"") == 1  # metadata is skipped, not deleted
    assert ps.metadata().changelog_offset == 3


def test_garbled_metadata_is_corruption(kv: KVStore) -> None:
    kv.write_batch({b"m|changelog_offset": b"twelve"})
    with pytest.raises(StoreCorruptError, match="changelog_offset"):
        raw(kv).metadata()


def test_discard_dirty_keeps_the_store(kv: KVStore) -> None:
    codec = CountingCodec()
    ps = PartitionStore(kv, codec)
    ps.put_study("1.2", {"version": 1})
    ps.flush(0, 0)
    ps.put_study("1.2", {"version": 2})
    ps.put(instance_key("1.2", "9"), b"x")
    assert ps.get_study("1.2") == {"version": 2}
    ps.discard_dirty()
    assert ps.dirty_count == 0
    assert ps.get_study("1.2") == {"version": 1}  # not the discarded record from the LRU
    assert ps.get(instance_key("1.2", "9")) is None


def test_apply_restored_last_record_wins(kv: KVStore) -> None:
    ps = raw(kv)
    n = ps.apply_restored(
        [(b"s|1", b"a"), (b"i|1|x", b"1"), (b"s|1", b"b"), (b"i|1|x", None), (b"s|2", b"c")],
        changelog_offset=99,
        checkpoint_ms=5,
    )
    assert n == 5
    assert list(ps.scan_prefix(b"")) == [
        (b"m|changelog_offset", b"99"),
        (b"m|checkpoint_ms", b"5"),
        (b"s|1", b"b"),
        (b"s|2", b"c"),
    ]
    ps.apply_restored([], changelog_offset=100)
    assert ps.metadata().changelog_offset == 100
    ps.put(b"s|3", b"staged")
    with pytest.raises(StoreError, match="staged"):
        ps.apply_restored([(b"s|4", b"x")], changelog_offset=101)


def test_apply_restored_refreshes_cached_studies(kv: KVStore) -> None:
    ps = PartitionStore(kv, CountingCodec())
    ps.put_study("1", {"v": 1})
    ps.flush(0, 0)
    assert ps.get_study("1") == {"v": 1}
    ps.apply_restored([(study_key("1"), orjson.dumps({"v": 2}))], changelog_offset=1)
    assert ps.get_study("1") == {"v": 2}


def test_wipe_clears_data_metadata_and_staging(kv: KVStore) -> None:
    ps = PartitionStore(kv, CountingCodec())
    ps.put_study("1", {"v": 1})
    ps.flush(7, 8)
    ps.set_identity(1, "id")
    ps.put_study("2", {"v": 1})
    ps.wipe()
    assert ps.metadata() == EMPTY
    assert ps.dirty_count == 0
    assert ps.get_study("1") is None
    assert ps.get_study("2") is None
    assert list(ps.scan_prefix(b"")) == []


def test_lru_is_bounded_and_saves_decodes(kv: KVStore) -> None:
    codec = CountingCodec()
    writer = PartitionStore(kv, codec, cache_size=0)
    for n in range(5):
        writer.put_study(f"1.{n}", {"n": n})
    writer.flush(0, 0)

    codec.decodes = 0
    ps = PartitionStore(kv, codec, cache_size=3)
    for n in range(5):
        assert ps.get_study(f"1.{n}") == {"n": n}
    assert codec.decodes == 5
    assert ps.cache_info().size == 3
    assert ps.cache_info().maxsize == 3
    assert ps.get_study("1.4") == {"n": 4}  # recent: from the LRU
    assert codec.decodes == 5
    assert ps.get_study("1.0") == {"n": 0}  # evicted: decoded again
    assert codec.decodes == 6
    info = ps.cache_info()
    assert (info.hits, info.misses, info.size) == (1, 6, 3)
    assert ps.get_study("9.9") is None  # misses are not cached
    assert ps.cache_info().size == 3


def test_put_study_caches_without_decoding(kv: KVStore) -> None:
    codec = CountingCodec()
    ps = PartitionStore(kv, codec)
    ps.put_study("1.2", {"v": 1})
    assert ps.get_study("1.2") == {"v": 1}
    assert codec.decodes == 0
    ps.put(study_key("1.2"), orjson.dumps({"v": 2}))  # a raw put invalidates the cached record
    assert ps.get_study("1.2") == {"v": 2}
    ps.put_study("1.2", None)
    assert ps.get_study("1.2") is None


def test_iter_studies_and_delete_prefix(kv: KVStore) -> None:
    ps = PartitionStore(kv, CountingCodec())
    for study in ("1.1", "1.2", "1.3"):
        ps.put_study(study, {"open": 1})
        for sop in ("a", "b"):
            ps.put(instance_key(study, sop), b"x")
    ps.flush(0, 0)
    ps.put_study("1.0", {"open": 0})
    assert [uid for uid, _ in ps.iter_studies()] == ["1.0", "1.1", "1.2", "1.3"]
    assert ps.delete_prefix(instance_prefix("1.2")) == 2
    assert list(ps.iter_instances("1.2")) == []
    assert [sop for sop, _ in ps.iter_instances("1.1")] == ["a", "b"]
    ps.flush(1, 1)
    assert list(kv.iter_prefix(instance_prefix("1.2"))) == []


def test_reopened_store_has_flushed_state_only(disk_engine: str, tmp_path: Path) -> None:
    ps = raw(open_disk(disk_engine, tmp_path))
    ps.set_identity(1, "g|t|0")
    ps.put(instance_key("1", "a"), b"a")
    ps.flush(12, 34)
    ps.put(instance_key("1", "b"), b"never flushed")
    ps.close()
    ps = raw(open_disk(disk_engine, tmp_path))
    try:
        assert ps.metadata() == StoreMetadata(12, 1, "g|t|0", 34)
        assert list(ps.iter_instances("1")) == [("a", b"a")]
    finally:
        ps.close()


def test_key_helpers_round_trip() -> None:
    assert study_key("1.2.840") == b"s|1.2.840"
    assert instance_prefix("1.2") == b"i|1.2|"
    assert instance_key("1.2", "3.4") == b"i|1.2|3.4"
    assert parse_study_key(b"s|1.2.840") == "1.2.840"
    assert parse_instance_key(b"i|1.2|3.4") == ("1.2", "3.4")
    for bad in ("", "1|2"):
        with pytest.raises(InvalidKeyError):
            study_key(bad)
        with pytest.raises(InvalidKeyError):
            instance_key("1.2", bad)
    with pytest.raises(InvalidKeyError):
        parse_instance_key(b"s|1.2")
    with pytest.raises(InvalidKeyError):
        parse_instance_key(b"i|1.2")
    with pytest.raises(InvalidKeyError):
        parse_study_key(b"i|1.2|3")
