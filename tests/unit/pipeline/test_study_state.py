"""Per-partition study lifecycle on both study stores (in memory, and keyed records over a KV store)."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from streamer.aggregate import (
    CloseReason,
    InMemoryStudyStore,
    PartitionState,
    StudyStatus,
    StudyStore,
)
from streamer.dicom.instance import InstanceKey
from streamer.errors import LateInstanceError, PatientConflictError, StudyTooLargeError
from streamer.messages import EndOfStudy, Instance, PatientRef
from streamer.state.kv import MemoryStore
from streamer.state.partition_store import PartitionStore
from streamer.state.study_store import KVStudyStore, StudyRecordCodec

TIMEOUT = 10_000
RETENTION = 60_000


def inst(study: str, sop: str, payload: str = "x") -> Instance:
    return Instance(InstanceKey(study, study + ".1", sop), orjson.dumps({"p": payload}))


def _kv_store() -> StudyStore:
    return KVStudyStore(PartitionStore(MemoryStore(), StudyRecordCodec()))


@pytest.fixture(params=[InMemoryStudyStore, _kv_store], ids=["memory", "kv"])
def st(request: pytest.FixtureRequest) -> PartitionState:
    make_store: Callable[[], StudyStore] = request.param
    return PartitionState(
        partition=0, store=make_store(), timeout_ms=TIMEOUT, retention_ms=RETENTION
    )


def due(st: PartitionState, now: int) -> list[tuple[str, CloseReason]]:
    return st.due(now)


def held(st: PartitionState, uid: str) -> list[dict[str, str]]:
    return [orjson.loads(raw) for raw in st.instances(uid)]


def close_marker(st: PartitionState, uid: str, now: int) -> None:
    assert due(st, now) == [(uid, CloseReason.MARKER)]
    st.close(uid, now, CloseReason.MARKER)


def test_marker_without_count_closes_at_once(st: PartitionState) -> None:
    st.add_instance(inst("A", "a1"), 0, 1000)
    st.add_instance(inst("A", "a2"), 1, 1001)
    assert due(st, 1002) == []
    st.add_marker(EndOfStudy("A", None), 2, 1003)
    assert due(st, 1003) == [("A", CloseReason.MARKER)]


def test_marker_count_waits_for_missing_instance(st: PartitionState) -> None:
    st.add_instance(inst("A", "a1"), 0, 1000)
    st.add_marker(EndOfStudy("A", 2), 1, 1001)
    assert due(st, 1002) == []
    assert st.add_instance(inst("A", "a1"), 2, 1003).duplicate  # not a second instance
    assert due(st, 1004) == []
    st.add_instance(inst("A", "a2"), 3, 1005)
    assert due(st, 1005) == [("A", CloseReason.MARKER)]


def test_marker_count_not_reached_times_out(st: PartitionState) -> None:
    st.add_instance(inst("A", "a1"), 0, 1000)
    st.add_marker(EndOfStudy("A", 5), 1, 2000)
    assert due(st, 2000 + TIMEOUT - 1) == []
    assert due(st, 2000 + TIMEOUT) == [("A", CloseReason.TIMEOUT)]


def test_inactivity_deadline_follows_last_record_time(st: PartitionState) -> None:
    st.add_instance(inst("A", "a1"), 0, 1000)
    st.add_instance(inst("A", "a2"), 1, 5000)
    assert due(st, 1000 + TIMEOUT) == []
    assert due(st, 5000 + TIMEOUT) == [("A", CloseReason.TIMEOUT)]


def test_studies_never_mix(st: PartitionState) -> None:
    st.add_instance(inst("A", "s1", "a"), 0, 1)
    st.add_instance(inst("B", "s1", "b"), 1, 2)  # same SOP UID in another study stays separate
    st.add_marker(EndOfStudy("A", None), 2, 3)
    assert due(st, 3) == [("A", CloseReason.MARKER)]
    assert held(st, "A") == [{"p": "a"}]
    assert held(st, "B") == [{"p": "b"}]


def test_late_instance_reopens_closed_study_with_all_instances(st: PartitionState) -> None:
    st.add_instance(inst("A", "a1", "1"), 0, 1000)
    st.add_marker(EndOfStudy("A", None), 1, 1001)
    close_marker(st, "A", 1001)
    assert due(st, 1002) == []
    result = st.add_instance(inst("A", "a2", "2"), 2, 3000)
    assert result.reopened
    assert held(st, "A") == [{"p": "1"}, {"p": "2"}]
    assert due(st, 3000 + TIMEOUT) == [("A", CloseReason.TIMEOUT)]


def test_identical_redelivery_does_not_reopen(st: PartitionState) -> None:
    st.add_instance(inst("A", "a1"), 0, 1000)
    st.add_marker(EndOfStudy("A", None), 1, 1001)
    close_marker(st, "A", 1001)
    assert st.add_instance(inst("A", "a1"), 2, 1500).duplicate
    record = st.study("A")
    assert record is not None and record.status is StudyStatus.CLOSED
    assert st.add_marker(EndOfStudy("A", None), 3, 1600).duplicate


def test_changed_instance_reopens(st: PartitionState) -> None:
    st.add_instance(inst("A", "a1", "v1"), 0, 1000)
    st.add_marker(EndOfStudy("A", None), 1, 1001)
    close_marker(st, "A", 1001)
    assert st.add_instance(inst("A", "a1", "v2"), 2, 1500).reopened
    assert held(st, "A") == [{"p": "v2"}]
    record = st.study("A")
    assert record is not None and record.instance_count == 1


def test_after_retention_the_study_is_removed_and_late_instances_refused(
    st: PartitionState,
) -> None:
    st.add_instance(inst("A", "a1"), 0, 1000)
    st.add_marker(EndOfStudy("A", None), 1, 1001)
    close_marker(st, "A", 1001)
    assert st.expire(1001 + RETENTION - 1, limit=10) == []
    assert st.expire(1001 + RETENTION, limit=10) == ["A"]
    assert held(st, "A") == []
    with pytest.raises(LateInstanceError, match="closed more than"):
        st.add_instance(inst("A", "a2"), 2, 1001 + RETENTION + 5)
    assert st.next_offset == 3
    assert st.add_marker(EndOfStudy("A", None), 3, 1001 + RETENTION + 6).duplicate


def test_expire_is_bounded_per_call(st: PartitionState) -> None:
    for n, uid in enumerate(("A", "B", "C")):
        st.add_instance(inst(uid, "x"), 2 * n, 1000)
        st.add_marker(EndOfStudy(uid, None), 2 * n + 1, 1000)
    for uid, reason in due(st, 1000):
        st.close(uid, 1000, reason)
    assert len(st.expire(1000 + RETENTION, limit=2)) == 2
    assert len(st.expire(1000 + RETENTION, limit=2)) == 1
    assert st.closed_count == 0


def test_expire_goes_in_closing_order_also_after_a_rearm(st: PartitionState) -> None:
    # B closes first, then C, then A, then D; A is reopened by a late instance and closed again last.
    for n, uid in enumerate(("A", "B", "C", "D")):
        st.add_instance(inst(uid, "x"), 2 * n, 1000)
    st.close("B", 1000, CloseReason.TIMEOUT)
    st.close("C", 2000, CloseReason.TIMEOUT)
    st.close("A", 3000, CloseReason.TIMEOUT)
    st.close("D", 3000, CloseReason.TIMEOUT)
    st.add_instance(inst("A", "late"), 10, 3500)
    st.close("A", 4000, CloseReason.TIMEOUT)
    assert st.expire(2000 + RETENTION, limit=10) == ["B", "C"]
    st.rearm(list(st.store.studies()))  # as after a restart: A comes before D in UID order
    assert st.expire(3000 + RETENTION, limit=10) == ["D"]
    assert st.expire(3999 + RETENTION, limit=10) == []
    assert st.expire(4000 + RETENTION, limit=10) == ["A"]


def test_closed_studies_are_indexed_in_the_store_by_close_time(st: PartitionState) -> None:
    for n, uid in enumerate(("A", "B", "C")):
        st.add_instance(inst(uid, "x"), n, 1000)
    st.close("C", 1000, CloseReason.TIMEOUT)
    st.close("A", 2000, CloseReason.TIMEOUT)
    st.close("B", 2000, CloseReason.TIMEOUT)
    assert list(st.store.closed_in_order()) == [(1000, "C"), (2000, "A"), (2000, "B")]
    assert (st.open_count, st.closed_count) == (0, 3)
    st.add_instance(inst("A", "late"), 5, 2500)  # reopened: out of the index
    assert list(st.store.closed_in_order()) == [(1000, "C"), (2000, "B")]
    assert (st.open_count, st.closed_count) == (1, 2)
    st.close("A", 3000, CloseReason.TIMEOUT)
    assert st.expire(1000 + RETENTION, limit=10) == ["C"]
    assert list(st.store.closed_in_order()) == [(2000, "B"), (3000, "A")]
    assert st.closed_count == 2


def test_rearm_indexes_closed_studies_of_a_store_without_the_index(st: PartitionState) -> None:
    # A store (or changelog) written before the closing-order index existed.
    for n, uid in enumerate(("A", "B")):
        st.add_instance(inst(uid, "x"), n, 1000)
    st.close("B", 1000, CloseReason.TIMEOUT)
    st.close("A", 2000, CloseReason.TIMEOUT)
    for closed_at, uid in list(st.store.closed_in_order()):
        st.store.unindex_closed(uid, closed_at)
    restored = PartitionState(
        partition=0, store=st.store, timeout_ms=TIMEOUT, retention_ms=RETENTION
    )
    restored.rearm(st.store.studies())
    assert restored.closed_count == 2
    assert restored.expire(1000 + RETENTION, limit=10) == ["B"]
    assert restored.expire(2000 + RETENTION, limit=10) == ["A"]
    assert restored.closed_count == 0
    assert list(st.store.closed_in_order()) == []


def test_timeouts_follow_last_activity_whatever_the_arrival_order(st: PartitionState) -> None:
    # Record timestamps need not grow (CreateTime topics): B's older activity arrives last.
    st.add_instance(inst("A", "a1"), 0, 5000)
    st.add_instance(inst("C", "c1"), 1, 3000)
    st.add_instance(inst("B", "b1"), 2, 1000)
    st.add_instance(inst("C", "c2"), 3, 2000)  # an older timestamp does not move C's deadline back
    assert st.oldest_activity_ms() == 1000
    assert due(st, 1000 + TIMEOUT) == [("B", CloseReason.TIMEOUT)]
    assert due(st, 1000 + TIMEOUT) == [("B", CloseReason.TIMEOUT)]  # due until closed
    st.close("B", 1000 + TIMEOUT, CloseReason.TIMEOUT)
    assert st.oldest_activity_ms() == 3000
    assert due(st, 5000 + TIMEOUT) == [("C", CloseReason.TIMEOUT), ("A", CloseReason.TIMEOUT)]
    st.add_instance(inst("C", "c3"), 4, 9000)  # active again: no longer due
    assert due(st, 5000 + TIMEOUT) == [("A", CloseReason.TIMEOUT)]
    st.drop_empty("A")
    assert st.oldest_activity_ms() == 9000


def test_a_study_reopened_without_newer_activity_is_due_once(st: PartitionState) -> None:
    st.add_instance(inst("A", "a1"), 0, 5000)
    st.close("A", 5000 + TIMEOUT, CloseReason.TIMEOUT)
    st.add_instance(inst("A", "a2"), 1, 4000)  # late, with an older timestamp: activity stays 5000
    assert due(st, 5000 + TIMEOUT) == [("A", CloseReason.TIMEOUT)]
    st.close("A", 5000 + TIMEOUT, CloseReason.TIMEOUT)
    assert due(st, 5000 + TIMEOUT) == []
    assert st.oldest_activity_ms() is None


def test_a_long_study_keeps_the_activity_index_small(st: PartitionState) -> None:
    for n in range(5000):
        st.add_instance(inst("A", f"a{n}"), n, 1000 + n)
    st.add_instance(inst("B", "b1"), 5000, 1500)
    assert len(st._by_activity) <= 2 * st.open_count + 1024
    assert st.oldest_activity_ms() == 1500
    assert due(st, 1500 + TIMEOUT) == [("B", CloseReason.TIMEOUT)]
    assert due(st, 5999 + TIMEOUT) == [("B", CloseReason.TIMEOUT), ("A", CloseReason.TIMEOUT)]


def test_next_offset_is_last_processed_plus_one(st: PartitionState) -> None:
    assert st.next_offset is None
    st.add_instance(inst("A", "a1"), 10, 1000)
    st.skip(11, 1000)
    assert st.next_offset == 12  # open studies do not hold it back


def test_marker_alone_is_not_published_and_can_be_dropped(st: PartitionState) -> None:
    st.add_marker(EndOfStudy("A", None), 0, 1000)
    assert due(st, 1000) == []  # nothing to publish yet
    assert due(st, 1000 + TIMEOUT) == [("A", CloseReason.TIMEOUT)]
    st.drop_empty("A")
    assert st.study("A") is None
    assert st.open_count == 0


def test_rearm_rebuilds_deadlines_from_stored_records(st: PartitionState) -> None:
    st.add_instance(inst("A", "a1"), 0, 1000)
    st.add_instance(inst("B", "b1"), 1, 2000)
    st.add_marker(EndOfStudy("B", None), 2, 2000)
    st.add_instance(inst("C", "c1"), 3, 2000)
    st.add_marker(EndOfStudy("C", None), 4, 2000)
    st.close("C", 2000, CloseReason.MARKER)
    restored = PartitionState(
        partition=0, store=st.store, timeout_ms=TIMEOUT, retention_ms=RETENTION
    )
    restored.rearm(st.store.studies())
    assert restored.open_count == 2
    assert restored.closed_count == 1
    # B's marker is satisfied: due at once; A keeps its deadline (not reset by the restore).
    assert due(restored, 2001) == [("B", CloseReason.MARKER)]
    assert ("A", CloseReason.TIMEOUT) in due(restored, 1000 + TIMEOUT)


def pat(study: str, sop: str, patient: str | None, issuer: str | None = None) -> Instance:
    return Instance(
        InstanceKey(study, study + ".1", sop),
        orjson.dumps({"p": sop}),
        PatientRef(patient, issuer),
    )


def test_an_instance_of_another_patient_is_refused(st: PartitionState) -> None:
    st.add_instance(pat("A", "a1", "P1"), 0, 1000)
    st.add_instance(pat("A", "a2", None), 1, 1000)  # no PatientID: no evidence either way
    st.add_instance(pat("A", "a3", "P1", "HOSP-A"), 2, 1000)  # the issuer is learnt
    with pytest.raises(PatientConflictError, match="another patient"):
        st.add_instance(pat("A", "a4", "P2"), 3, 1000)
    with pytest.raises(PatientConflictError):
        st.add_instance(pat("A", "a5", "P1", "HOSP-B"), 4, 1000)
    assert [i["p"] for i in held(st, "A")] == ["a1", "a2", "a3"]
    record = st.study("A")
    assert record is not None and record.instance_count == 3
    assert st.next_offset == 5


def test_the_first_patient_seen_defines_the_study_even_without_an_early_id(
    st: PartitionState,
) -> None:
    st.add_instance(pat("A", "a1", None), 0, 1000)
    st.add_instance(pat("A", "a2", "P2"), 1, 1000)
    with pytest.raises(PatientConflictError):
        st.add_instance(pat("A", "a3", "P1"), 2, 1000)


def test_instances_beyond_the_study_limit_are_refused(st: PartitionState) -> None:
    st.max_instances = 2
    st.add_instance(inst("A", "a1"), 0, 1000)
    st.add_instance(inst("A", "a2"), 1, 1000)
    with pytest.raises(StudyTooLargeError, match="STREAMER_MAX_INSTANCES_PER_STUDY"):
        st.add_instance(inst("A", "a3"), 2, 1000)
    # An update of a held instance is still taken.
    assert st.add_instance(inst("A", "a2", "v2"), 3, 1000).changed_tags == ("p",)


def test_same_sop_with_other_content_replaces_it_and_names_the_changed_tags(
    st: PartitionState,
) -> None:
    a = Instance(InstanceKey("A", "A.1", "a1"), orjson.dumps({"00100010": 1, "00080060": "CT"}))
    b = Instance(InstanceKey("A", "A.1", "a1"), orjson.dumps({"00100010": 2, "00080060": "CT"}))
    st.add_instance(a, 0, 1000)
    result = st.add_instance(b, 1, 1000)
    assert result.changed_tags == ("00100010",)
    assert not result.duplicate
    assert held(st, "A") == [{"00100010": 2, "00080060": "CT"}]
    record = st.study("A")
    assert record is not None and record.instance_count == 1
