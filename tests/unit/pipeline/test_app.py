"""The processing loop against in-memory fakes of the Source/Sink ports (no broker)."""

from __future__ import annotations

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle

from streamer.app import Processor
from streamer.config import load_settings
from streamer.messages import encode_marker
from tests.dicom_factory import make_instance, series_uid, sop_uid, study_uid
from tests.fakes import FakeClock, FakeSink, FakeSource

TIMEOUT_S = 30.0


def make(
    source: FakeSource, clock: FakeClock, sink: FakeSink | None = None
) -> tuple[Processor, FakeSink]:
    settings = load_settings(
        study_timeout_seconds=TIMEOUT_S,
        reopen_window_seconds=120,
        dicom_timezone="Europe/Berlin",
        add_instances=True,
        commit_interval_seconds=1,
    )
    sink = sink or FakeSink()
    return Processor(settings, source, sink, clock=clock), sink


def ts(clock: FakeClock) -> int:
    return int(clock.now * 1000)


def put_study(
    source: FakeSource,
    clock: FakeClock,
    n: int,
    count: int,
    *,
    partition: int = 0,
    marker: bool = True,
    marker_count: int | None = None,
) -> None:
    uid = study_uid(n)
    for i in range(count):
        doc = make_instance(uid, series_uid(n), sop_uid(n, i), number=i + 1, patient_id=f"P{n}")
        source.append(partition, uid.encode(), orjson.dumps(doc), ts(clock))
    if marker:
        source.append(partition, uid.encode(), encode_marker(uid, marker_count), ts(clock))


def bundles(sink: FakeSink) -> dict[str, list[dict[str, object]]]:
    out: dict[str, list[dict[str, object]]] = {}
    for key, value, headers in sink.on("fhir.bundles"):
        assert headers["content-type"] == b"application/fhir+json"
        assert key is not None and value is not None
        doc = orjson.loads(value)
        Bundle.model_validate(doc)
        out.setdefault(key.decode(), []).append(doc)
    return out


def imaging_study(bundle: dict[str, object]) -> dict[str, object]:
    entries = bundle["entry"]
    assert isinstance(entries, list)
    [study] = [e["resource"] for e in entries if e["resource"]["resourceType"] == "ImagingStudy"]
    return study


def instance_uids(bundle: dict[str, object]) -> set[str]:
    study = imaging_study(bundle)
    return {i["uid"] for s in study["series"] for i in s.get("instance", [])}  # type: ignore[index, union-attr]


async def test_interleaved_studies_one_bundle_each() -> None:
    clock = FakeClock()
    source = FakeSource(partitions=(0, 1))
    # Interleave instances of three studies over two partitions.
    for i in range(3):
        for n, p in ((1, 0), (2, 1), (3, 0)):
            uid = study_uid(n)
            doc = make_instance(uid, series_uid(n), sop_uid(n, i), number=i + 1)
            source.append(p, uid.encode(), orjson.dumps(doc), ts(clock))
    for n, p in ((1, 0), (2, 1), (3, 0)):
        source.append(p, study_uid(n).encode(), encode_marker(study_uid(n), 3), ts(clock))
    proc, sink = make(source, clock)
    await proc.start()
    await proc.step()
    got = bundles(sink)
    assert set(got) == {study_uid(1), study_uid(2), study_uid(3)}
    for n in (1, 2, 3):
        [bundle] = got[study_uid(n)]
        assert instance_uids(bundle) == {sop_uid(n, i) for i in range(3)}
        assert imaging_study(bundle)["numberOfInstances"] == 3
    # Closed studies stay reopenable for the window, so they hold the commit ...
    assert source.committed == {0: 0, 1: 0}
    clock.advance(120)
    await proc.step()
    # ... and after it the commit moves past the markers.
    assert source.committed == {0: 8, 1: 4}
    assert len(bundles(sink)[study_uid(1)]) == 1


async def test_study_without_marker_closes_after_timeout() -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2, marker=False)
    proc, sink = make(source, clock)
    await proc.start()
    await proc.step()
    assert bundles(sink) == {}
    clock.advance(TIMEOUT_S - 1)
    await proc.step()
    assert bundles(sink) == {}
    assert source.committed.get(0) in (None, 0)  # the open study holds the commit back
    clock.advance(1)
    await proc.step()
    assert list(bundles(sink)) == [study_uid(1)]
    assert source.committed[0] == 0  # reopenable for the window
    clock.advance(120)
    await proc.step()
    assert source.committed[0] == 2


async def test_marker_count_waits_for_missing_instance() -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2, marker_count=3)
    proc, sink = make(source, clock)
    await proc.start()
    await proc.step()
    assert bundles(sink) == {}
    uid = study_uid(1)
    doc = make_instance(uid, series_uid(1), sop_uid(1, 2), number=3)
    source.append(0, uid.encode(), orjson.dumps(doc), ts(clock))
    await proc.step()
    [bundle] = bundles(sink)[uid]
    assert instance_uids(bundle) == {sop_uid(1, i) for i in range(3)}


async def test_bad_messages_go_to_dlq_and_good_studies_still_come_out() -> None:
    clock = FakeClock()
    source = FakeSource()
    uid = study_uid(1)
    source.append(
        0, uid.encode(), orjson.dumps(make_instance(uid, series_uid(1), sop_uid(1, 0))), ts(clock)
    )
    source.append(0, b"k1", b"{not json", ts(clock))
    source.append(0, b"k2", b"[1,2,3]", ts(clock))
    no_uid = make_instance(uid, series_uid(1), sop_uid(1, 9))
    del no_uid["0020000D"]
    source.append(0, None, orjson.dumps(no_uid), ts(clock))
    source.append(
        0,
        uid.encode(),
        orjson.dumps(make_instance(uid, series_uid(1), sop_uid(1, 1), number=2)),
        ts(clock),
    )
    source.append(0, uid.encode(), encode_marker(uid, 2), ts(clock))
    proc, sink = make(source, clock)
    await proc.start()
    await proc.step()
    dlq = sink.on("dicom.instances.dlq")
    assert [(k, v) for k, v, _ in dlq] == [
        (b"k1", b"{not json"),
        (b"k2", b"[1,2,3]"),
        (None, orjson.dumps(no_uid)),
    ]
    assert [h["source-offset"] for _, _, h in dlq] == [b"1", b"2", b"3"]
    assert {h["source-topic"] for _, _, h in dlq} == {b"dicom.instances"}
    assert {h["source-partition"] for _, _, h in dlq} == {b"0"}
    assert dlq[0][2]["error-type"] == b"InvalidMessageError"
    assert dlq[2][2]["error-type"] == b"InvalidInstanceError"
    assert all(h["error-message"] for _, _, h in dlq)
    [bundle] = bundles(sink)[uid]
    assert instance_uids(bundle) == {sop_uid(1, 0), sop_uid(1, 1)}


async def test_restart_rebuilds_unpublished_studies_from_committed_offset() -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2)  # complete: published and committed past
    put_study(source, clock, 2, 2, marker=False)  # open when the process dies
    proc, sink = make(source, clock)
    await proc.start()
    await proc.step()
    assert list(bundles(sink)) == [study_uid(1)]
    clock.advance(2)
    await proc.step()  # commit interval passed
    assert source.committed[0] == 0  # study 1 is still reopenable, so held
    # "kill -9": the processor is dropped without shutdown; a new one starts on the same log.
    source2 = FakeSource(log=source.log, committed=dict(source.committed))
    put_study(source2, clock, 2, 0, marker=True)  # the marker arrives while we were down
    proc2, sink2 = make(source2, clock)
    await proc2.start()
    await proc2.step()
    got = bundles(sink2)
    assert instance_uids(got[study_uid(2)][0]) == {sop_uid(2, 0), sop_uid(2, 1)}
    # Re-published study 1 is byte-identical: same ids, same content.
    assert got[study_uid(1)] == bundles(sink)[study_uid(1)]


async def test_backlog_replay_uses_stream_time_not_wall_clock() -> None:
    clock = FakeClock()
    source = FakeSource()
    uid = study_uid(1)
    source.append(
        0, uid.encode(), orjson.dumps(make_instance(uid, series_uid(1), sop_uid(1, 0))), ts(clock)
    )
    # The second instance arrived 10 s later; the processor starts an hour after both.
    source.append(
        0,
        uid.encode(),
        orjson.dumps(make_instance(uid, series_uid(1), sop_uid(1, 1), number=2)),
        ts(clock) + 10_000,
    )
    clock.advance(3600)
    proc, sink = make(source, clock)
    await proc.start()
    # Poll one record at a time: after the first, the partition is behind, so no timeout may fire.
    proc._settings = proc._settings.model_copy(update={"max_poll_records": 1})
    await proc.step()
    assert bundles(sink) == {}
    await proc.step()  # caught up now: wall clock says the study timed out long ago
    [bundle] = bundles(sink)[uid]
    assert instance_uids(bundle) == {sop_uid(1, 0), sop_uid(1, 1)}


async def test_late_instance_republishes_same_ids_with_full_set() -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2)
    proc, sink = make(source, clock)
    await proc.start()
    await proc.step()
    clock.advance(5)
    uid = study_uid(1)
    source.append(
        0,
        uid.encode(),
        orjson.dumps(make_instance(uid, series_uid(1), sop_uid(1, 7), number=8)),
        ts(clock),
    )
    await proc.step()
    assert len(bundles(sink)[uid]) == 1  # reopened, waits for marker or timeout
    source.append(0, uid.encode(), encode_marker(uid, None), ts(clock))
    await proc.step()
    first, second = bundles(sink)[uid]
    assert first["id"] == second["id"]
    ids = lambda b: {(e["resource"]["resourceType"], e["resource"]["id"]) for e in b["entry"]}  # noqa: E731
    assert ids(first) == ids(second)
    assert instance_uids(second) == {sop_uid(1, 0), sop_uid(1, 1), sop_uid(1, 7)}


async def test_rebalance_commits_held_offsets_and_new_owner_rebuilds() -> None:
    clock = FakeClock()
    source = FakeSource(partitions=(0, 1))
    put_study(source, clock, 1, 2, partition=0, marker=False)
    put_study(source, clock, 2, 2, partition=1)
    proc, sink = make(source, clock)
    await proc.start()
    await proc.step()
    assert list(bundles(sink)) == [study_uid(2)]
    await source.assign({1})  # partition 0 goes to another member
    assert source.committed[0] == 0  # open study 1 still needs offset 0
    assert proc.open_studies() == {1: []}
    # The other member (a second processor on the same log) publishes study 1 after the timeout.
    other = FakeSource(partitions=(0,), log=source.log, committed=dict(source.committed))
    proc2, sink2 = make(other, clock)
    await proc2.start()
    await proc2.step()
    clock.advance(TIMEOUT_S)
    await proc2.step()
    assert instance_uids(bundles(sink2)[study_uid(1)][0]) == {sop_uid(1, 0), sop_uid(1, 1)}


async def test_commit_waits_for_acks_and_failed_output_stops_without_commit() -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 1)
    proc, _ = make(source, clock, FakeSink(fail_with=RuntimeError("broker down")))
    await proc.start()
    with pytest.raises(RuntimeError, match="broker down"):
        await proc.step()
    assert source.committed == {}


async def test_stop_publishes_what_is_due_and_commits() -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 1)
    put_study(source, clock, 2, 1, marker=False)
    proc, sink = make(source, clock)
    proc.stop()
    await proc.run()  # stopped before the first poll: nothing consumed, nothing lost
    assert sink.sent == []
    assert source.stopped
    proc2, sink2 = make(FakeSource(log=source.log), clock)
    await proc2.start()
    await proc2.step()
    proc2.stop()
    await proc2._shutdown()
    assert list(bundles(sink2)) == [study_uid(1)]
    assert proc2.open_studies() == {0: [study_uid(2)]}


async def test_big_study_build_does_not_starve_the_event_loop() -> None:
    """Bundle building runs off the loop, so group heartbeats keep flowing during a large study."""
    import asyncio
    import time

    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 4000)
    proc, sink = make(source, clock)
    await proc.start()
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    for _ in range(20):  # 500 records per poll
        await proc.step()
    done.set()
    await ticker
    [bundle] = bundles(sink)[study_uid(1)]
    assert imaging_study(bundle)["numberOfInstances"] == 4000
    # aiokafka's heartbeat task needs the loop; the default heartbeat interval is 3 s.
    assert max(gaps) < 1.0, f"event loop blocked for {max(gaps):.2f} s"


async def test_logs_and_dead_letter_reasons_hold_no_patient_data(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from streamer.log import JsonFormatter
    from tests.dicom_factory import element

    caplog.set_level(logging.DEBUG)
    clock = FakeClock()
    source = FakeSource()
    uid = study_uid(1)
    secret = {
        "00100010": element("PN", {"Alphabetic": "Zyxwort^Quintessa"}),
        "00100020": element("LO", "MRN-98765"),
        "00100030": element("DA", "19451231"),
    }
    odd = {  # odd values make the mapper warn; the warning must name the tag, not the value
        "00100040": element("CS", "Quintessa-sex"),
        "00101030": element("DS", "Zyxwort-kg"),
    }
    for i in range(2):
        doc = make_instance(uid, series_uid(1), sop_uid(1, i), **secret, **odd)
        source.append(0, uid.encode(), orjson.dumps(doc), ts(clock))
    bad = make_instance(uid, series_uid(1), "not-a-uid", **secret)
    del bad["0020000E"]
    source.append(0, uid.encode(), orjson.dumps(bad), ts(clock))
    source.append(0, uid.encode(), encode_marker(uid, 2), ts(clock))
    proc, sink = make(source, clock)
    await proc.start()
    await proc.step()
    proc.stop()
    await proc._shutdown()
    assert bundles(sink)[uid]
    formatter = JsonFormatter()
    text = "\n".join(formatter.format(r) for r in caplog.records)
    text += "\n".join(h["error-message"].decode() for _, _, h in sink.on("dicom.instances.dlq"))
    assert "study published" in text
    for needle in ("Zyxwort", "Quintessa", "MRN-98765", "19451231", "1945-12-31"):
        assert needle not in text


async def test_periodic_status_line_counts_open_studies(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from streamer.log import JsonFormatter

    caplog.set_level(logging.INFO, logger="streamer.app")
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2, marker=False)
    proc, _ = make(source, clock)
    await proc.start()
    await proc.step()
    assert not [r for r in caplog.records if r.getMessage() == "status"]
    clock.advance(61)
    await proc.step()
    [status] = [r for r in caplog.records if r.getMessage() == "status"]
    line = orjson.loads(JsonFormatter().format(status))
    # The study timed out in the same round (30 s < 61 s): closed, still held for reopening, committed at 0.
    assert line["partitions"] == {"0": {"open": 0, "held": 1, "committed": 0}}
    assert line["stats"]["studies_closed_timeout"] == 1
    assert line["stats"]["records"] == 2


async def test_output_failure_during_revoke_stops_the_loop_without_commit() -> None:
    """aiokafka swallows errors raised in rebalance callbacks; the loop must still stop."""
    clock = FakeClock()
    source = FakeSource(partitions=(0, 1))
    put_study(source, clock, 1, 1, partition=0)
    sink = FakeSink()
    proc, _ = make(source, clock, sink)
    proc._settings = proc._settings.model_copy(update={"reopen_window_seconds": 0})
    await proc.start()
    sink.fail_with = RuntimeError("broker refuses output")
    with pytest.raises(RuntimeError):
        await proc.step()  # the Bundle is sent, its ack fails at the commit
    with pytest.raises(RuntimeError):
        await source.assign({1})  # the revoke callback meets the same failure
    with pytest.raises(RuntimeError, match="refuses"):
        await proc.step()
    assert source.committed == {}
