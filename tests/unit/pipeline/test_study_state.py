import orjson
import pytest

from streamer.aggregate import CloseReason, PartitionState
from streamer.errors import LateInstanceError
from streamer.fhir import InstanceKey
from streamer.messages import EndOfStudy, Instance

TIMEOUT = 10_000
WINDOW = 60_000


def inst(study: str, sop: str, payload: str = "x") -> Instance:
    return Instance(InstanceKey(study, study + ".1", sop), orjson.dumps({"p": payload}))


def state() -> PartitionState:
    return PartitionState(partition=0, timeout_ms=TIMEOUT, reopen_window_ms=WINDOW)


def due(st: PartitionState, now: int) -> list[tuple[str, CloseReason]]:
    return [(s.uid, r) for s, r in st.due(now)]


def test_marker_without_count_closes_at_once() -> None:
    st = state()
    st.add_instance(inst("A", "a1"), 0, 1000)
    st.add_instance(inst("A", "a2"), 1, 1001)
    assert due(st, 1002) == []
    st.add_marker(EndOfStudy("A", None), 2, 1003)
    assert due(st, 1003) == [("A", CloseReason.MARKER)]


def test_marker_count_waits_for_missing_instance() -> None:
    st = state()
    st.add_instance(inst("A", "a1"), 0, 1000)
    st.add_marker(EndOfStudy("A", 2), 1, 1001)
    assert due(st, 1002) == []
    st.add_instance(inst("A", "a1"), 2, 1003)  # redelivery is not a second instance
    assert due(st, 1004) == []
    st.add_instance(inst("A", "a2"), 3, 1005)
    assert due(st, 1005) == [("A", CloseReason.MARKER)]


def test_marker_count_not_reached_times_out() -> None:
    st = state()
    st.add_instance(inst("A", "a1"), 0, 1000)
    st.add_marker(EndOfStudy("A", 5), 1, 2000)
    assert due(st, 2000 + TIMEOUT - 1) == []
    assert due(st, 2000 + TIMEOUT) == [("A", CloseReason.TIMEOUT)]


def test_inactivity_deadline_follows_last_record_time() -> None:
    st = state()
    st.add_instance(inst("A", "a1"), 0, 1000)
    st.add_instance(inst("A", "a2"), 1, 5000)
    assert due(st, 1000 + TIMEOUT) == []
    assert due(st, 5000 + TIMEOUT) == [("A", CloseReason.TIMEOUT)]


def test_studies_never_mix() -> None:
    st = state()
    st.add_instance(inst("A", "s1"), 0, 1)
    st.add_instance(inst("B", "s1"), 1, 2)  # same SOP UID in another study stays separate
    st.add_marker(EndOfStudy("A", None), 2, 3)
    assert due(st, 3) == [("A", CloseReason.MARKER)]
    assert set(st.studies["A"].instances) == {"s1"}
    assert set(st.studies["B"].instances) == {"s1"}


def test_late_instance_reopens_closed_study_with_all_instances() -> None:
    st = state()
    st.add_instance(inst("A", "a1"), 0, 1000)
    st.add_marker(EndOfStudy("A", None), 1, 1001)
    ((study, _),) = list(st.due(1001))
    st.close(study, 1001)
    assert due(st, 1002) == []
    result = st.add_instance(inst("A", "a2"), 2, 3000)
    assert result.reopened
    assert set(study.instances) == {"a1", "a2"}
    assert due(st, 3000 + TIMEOUT) == [("A", CloseReason.TIMEOUT)]


def test_identical_redelivery_does_not_reopen() -> None:
    st = state()
    st.add_instance(inst("A", "a1"), 0, 1000)
    st.add_marker(EndOfStudy("A", None), 1, 1001)
    ((study, _),) = list(st.due(1001))
    st.close(study, 1001)
    assert st.add_instance(inst("A", "a1"), 2, 1500).duplicate
    assert not study.is_open
    assert st.add_marker(EndOfStudy("A", None), 3, 1600).duplicate


def test_changed_instance_reopens() -> None:
    st = state()
    st.add_instance(inst("A", "a1", "v1"), 0, 1000)
    st.add_marker(EndOfStudy("A", None), 1, 1001)
    ((study, _),) = list(st.due(1001))
    st.close(study, 1001)
    assert st.add_instance(inst("A", "a1", "v2"), 2, 1500).reopened
    assert orjson.loads(study.instances["a1"]) == {"p": "v2"}


def test_after_reopen_window_late_instance_is_refused() -> None:
    st = state()
    st.add_instance(inst("A", "a1"), 0, 1000)
    st.add_marker(EndOfStudy("A", None), 1, 1001)
    ((study, _),) = list(st.due(1001))
    st.close(study, 1001)
    assert st.expire(1001 + WINDOW - 1) == []
    assert st.expire(1001 + WINDOW) == ["A"]
    with pytest.raises(LateInstanceError, match="closed more than"):
        st.add_instance(inst("A", "a2"), 2, 1001 + WINDOW + 5)
    assert st.next_offset == 3


def test_commit_offset_is_first_offset_of_any_held_study() -> None:
    st = state()
    assert st.commit_offset() is None
    st.add_instance(inst("A", "a1"), 10, 1000)
    st.add_instance(inst("B", "b1"), 11, 1000)
    st.skip(12, 1000)
    assert st.commit_offset() == 10
    st.add_marker(EndOfStudy("A", None), 13, 1001)
    ((study, _),) = list(st.due(1001))
    st.close(study, 1001)
    assert st.commit_offset() == 10  # closed A is still reopenable, so still held
    st.expire(1001 + WINDOW)
    # B timed out meanwhile and was never closed by the caller: still held
    assert st.commit_offset() == 11
    b = st.studies["B"]
    st.close(b, 1001 + WINDOW)
    st.expire(1001 + 2 * WINDOW)
    assert st.commit_offset() == 14


def test_marker_alone_is_not_published_and_can_be_dropped() -> None:
    st = state()
    st.add_marker(EndOfStudy("A", None), 0, 1000)
    assert due(st, 1000) == []  # nothing to publish yet
    [(study, reason)] = list(st.due(1000 + TIMEOUT))
    assert reason is CloseReason.TIMEOUT
    st.drop_empty(study)
    assert st.commit_offset() == 1
