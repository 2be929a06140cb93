"""PartitionStore.seal / flush_sealed: the snapshot a checkpoint writes while new changes go on."""

from __future__ import annotations

import random

import orjson
import pytest

from streamer.state import BytesCodec, KVStore, PartitionStore, StoreError, instance_prefix


def raw(kv: KVStore) -> PartitionStore[bytes]:
    return PartitionStore(kv, BytesCodec())


class JsonCodec:
    def encode(self, record: dict[str, int]) -> bytes:
        return orjson.dumps(record)

    def decode(self, data: bytes) -> dict[str, int]:
        result: dict[str, int] = orjson.loads(data)
        return result


def test_reads_see_dirty_then_sealed_then_store(kv: KVStore) -> None:
    ps = raw(kv)
    ps.put(b"i|1|a", b"stored")
    ps.put(b"i|1|b", b"stored")
    ps.put(b"i|1|c", b"stored")
    ps.flush(0, 1)
    ps.put(b"i|1|a", b"sealed")
    ps.put(b"i|1|b", None)  # a sealed delete hides the stored value
    ps.put(b"i|1|d", b"sealed")
    sealed = ps.seal()
    assert dict(sealed) == {b"i|1|a": b"sealed", b"i|1|b": None, b"i|1|d": b"sealed"}
    assert ps.dirty() == {}
    ps.put(b"i|1|d", None)  # a new delete hides the sealed value
    ps.put(b"i|1|b", b"again")  # a new write over a sealed delete
    ps.put(b"i|1|c", b"new")
    assert [ps.get(b"i|1|" + k) for k in (b"a", b"b", b"c", b"d")] == [
        b"sealed",
        b"again",
        b"new",
        None,
    ]
    assert dict(sealed) == {b"i|1|a": b"sealed", b"i|1|b": None, b"i|1|d": b"sealed"}
    assert kv.get(b"i|1|a") == b"stored"  # nothing reaches the store before flush_sealed
    ps.flush_sealed(7, 2)
    assert (kv.get(b"i|1|a"), kv.get(b"i|1|b"), kv.get(b"i|1|d")) == (b"sealed", None, b"sealed")
    assert kv.get(b"i|1|c") == b"stored"  # staged after the seal: not written
    assert ps.metadata().changelog_offset == 7
    assert [ps.get(b"i|1|" + k) for k in (b"a", b"b", b"c", b"d")] == [
        b"sealed",
        b"again",
        b"new",
        None,
    ]
    assert dict(ps.dirty()) == {b"i|1|d": None, b"i|1|b": b"again", b"i|1|c": b"new"}


def test_scan_merges_dirty_sealed_and_store(kv: KVStore) -> None:
    """Against a plain dict model, over random writes and deletes in three layers."""
    rng = random.Random(7)
    ps = raw(kv)
    p = instance_prefix("1.2")
    other = instance_prefix("1.3")
    model: dict[bytes, bytes] = {}

    def write_some(n: int) -> None:
        for _ in range(n):
            key = rng.choice((p, other)) + bytes([rng.randrange(97, 107)])
            if rng.random() < 0.3:
                ps.put(key, None)
                model.pop(key, None)
            else:
                value = str(rng.random()).encode()
                ps.put(key, value)
                model[key] = value

    def expected(prefix: bytes) -> list[tuple[bytes, bytes]]:
        return sorted((k, v) for k, v in model.items() if k.startswith(prefix))

    for _ in range(30):
        write_some(8)
        ps.flush(None, 1)  # the store layer
        write_some(8)
        ps.seal()  # the sealed layer
        write_some(8)  # the dirty layer
        assert list(ps.scan_prefix(p)) == expected(p)
        assert list(ps.scan_prefix(other)) == expected(other)
        assert list(ps.scan_prefix(b"i|")) == expected(b"i|")
        assert all(ps.get(k) == v for k, v in model.items())
        ps.flush_sealed(None, 2)
        assert list(ps.scan_prefix(b"i|")) == expected(b"i|")
    ps.flush(None, 3)
    assert list(kv.iter_prefix(b"i|")) == expected(b"i|")


def test_size_counts_both_maps_and_one_seal_at_a_time(kv: KVStore) -> None:
    ps = raw(kv)
    ps.put(b"i|1|a", b"123")
    ps.seal()
    ps.put(b"i|1|b", b"45")
    assert ps.dirty_bytes == len(b"i|1|a") + 3 + len(b"i|1|b") + 2
    assert ps.dirty_count == 2
    assert ps.sealed
    with pytest.raises(StoreError):
        ps.seal()
    with pytest.raises(StoreError):
        ps.flush(None, 1)
    with pytest.raises(StoreError, match="staged"):
        ps.apply_restored([], changelog_offset=0)
    ps.flush_sealed(None, 1)
    assert not ps.sealed
    assert ps.dirty_bytes == len(b"i|1|b") + 2
    ps.seal()  # the next snapshot can be sealed now


def test_discard_drops_both_maps_and_their_cached_studies(kv: KVStore) -> None:
    ps = PartitionStore(kv, JsonCodec())
    ps.put_study("1.1", {"v": 1})
    ps.flush(0, 1)
    ps.put_study("1.1", {"v": 2})
    ps.seal()
    ps.put_study("1.2", {"v": 3})
    assert ps.get_study("1.1") == {"v": 2}
    ps.discard_dirty()
    assert ps.dirty_bytes == 0 and not ps.sealed
    assert ps.get_study("1.1") == {"v": 1}  # the decoded v2 left the LRU with its change
    assert ps.get_study("1.2") is None
    ps.seal()


def test_iter_studies_sees_the_sealed_snapshot(kv: KVStore) -> None:
    ps = PartitionStore(kv, JsonCodec())
    ps.put_study("1.1", {"v": 1})
    ps.put_study("1.2", {"v": 1})
    ps.flush(0, 1)
    ps.put_study("1.2", None)
    ps.put_study("1.3", {"v": 3})
    ps.seal()
    ps.put_study("1.4", {"v": 4})
    assert list(ps.iter_studies()) == [("1.1", {"v": 1}), ("1.3", {"v": 3}), ("1.4", {"v": 4})]
