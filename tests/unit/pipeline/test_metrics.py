"""The Prometheus metrics move as records flow through the loop (in-memory fakes, no broker)."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamer.messages import encode_marker
from streamer.metrics import Metrics, metrics_table
from streamer.state import shared_resources, shared_usage
from tests.dicom_factory import make_instance, series_uid, sop_uid, study_uid
from tests.fakes import FakeClock, FakeSink, FakeSource
from tests.unit.pipeline.test_app import TIMEOUT_S, Disk, make, put_study, started, ts

README = Path(__file__).parents[3] / "README.md"


@pytest.fixture
def disk(tmp_path: Path) -> Disk:
    return Disk(tmp_path)


def value(metrics: Metrics, name: str, **labels: str) -> float:
    """A sample's value; 0 when the series does not exist (yet)."""
    got = metrics.registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


def bundle_sizes(sink: FakeSink) -> list[int]:
    return [len(v or b"") for _, v, _ in sink.on("fhir.bundles")]


# ---- the registry and the README ----------------------------------------------------------------


def test_readme_metrics_table_is_the_registry() -> None:
    table = metrics_table()
    assert table in README.read_text(), "README metrics table is stale: paste metrics_table()"
    metrics = Metrics()
    families = [family.name for family in metrics.registry.collect()]
    assert sorted(families) == sorted(metrics.info), "every metric is declared once"
    for info in metrics.info.values():
        assert f"| `{info.name}` | {info.type} |" in table


def test_metric_names_follow_prometheus_conventions() -> None:
    for info in Metrics().info.values():
        assert re.fullmatch(r"streamer_[a-z][a-z0-9_]*", info.name), info.name
        assert info.name.endswith("_total") == (info.type == "counter"), info.name
        if info.type == "histogram":
            assert info.name.endswith(("_seconds", "_bytes")), "histograms name their base unit"
        assert info.help.endswith("."), info.name
        for label in info.labels:
            assert re.fullmatch(r"[a-z_]+", label)


def test_each_processor_has_a_registry_of_its_own() -> None:
    one, two = Metrics(), Metrics()
    one.records_consumed.inc(3)
    assert value(one, "streamer_records_consumed_total") == 3
    assert value(two, "streamer_records_consumed_total") == 0
    # The exposition parses as Prometheus text and holds every declared metric.
    names = {f.name for f in text_string_to_metric_families(one.exposition().decode())}
    assert names == {info.name.removesuffix("_total") for info in one.info.values()}


# ---- the loop moves them -------------------------------------------------------------------------


async def test_records_studies_dead_letters_and_bundles_are_counted(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2)  # marker without count
    put_study(source, clock, 2, 3, marker_count=3)  # marker whose count is reached
    put_study(source, clock, 3, 1, marker=False)  # times out
    source.append(0, study_uid(4).encode(), b"not json", ts(clock))
    doc = make_instance(study_uid(1), series_uid(1), sop_uid(1, 0), number=1)
    source.append(0, None, orjson.dumps(doc), ts(clock))  # no key
    source.append(0, study_uid(1).encode(), orjson.dumps(doc), ts(clock))  # identical repeat
    proc, sink = make(source, clock, disk=disk)
    m = proc.metrics
    await started(proc)
    assert value(m, "streamer_rebalances_total") == 1
    await proc.step()
    await proc.wait_checkpoint()  # acks and commit come in the background
    assert value(m, "streamer_records_consumed_total") == 2 + 1 + 3 + 1 + 1 + 2 + 1
    assert value(m, "streamer_instances_accepted_total") == 6
    assert value(m, "streamer_duplicate_records_total") == 1
    assert value(m, "streamer_studies_closed_total", reason="marker") == 1
    assert value(m, "streamer_studies_closed_total", reason="count") == 1
    assert value(m, "streamer_studies_closed_total", reason="timeout") == 0
    assert (
        value(m, "streamer_dead_letters_total", error_type="InvalidMessageError", kind="record")
        == 1
    )
    assert value(m, "streamer_dead_letters_total", error_type="MessageKeyError", kind="record") == 1
    assert value(m, "streamer_bundles_published_total") == 2
    assert value(m, "streamer_bundle_bytes_count") == 2
    assert value(m, "streamer_bundle_bytes_sum") == sum(bundle_sizes(sink))
    assert value(m, "streamer_bundle_build_seconds_count") == 2
    assert value(m, "streamer_checkpoint_seconds_count") >= 1
    assert value(m, "streamer_commit_seconds_count") >= 1

    clock.advance(TIMEOUT_S)
    await proc.step()
    await proc.wait_checkpoint()
    assert value(m, "streamer_studies_closed_total", reason="timeout") == 1
    assert value(m, "streamer_bundles_published_total") == 3
    assert value(m, "streamer_bundle_bytes_sum") == sum(bundle_sizes(sink))
    assert m.snapshot() == {
        "records": 11,
        "instances_accepted": 6,
        "duplicates": 1,
        "dead_letters": 2,
        "studies_closed_marker": 1,
        "studies_closed_count": 1,
        "studies_closed_timeout": 1,
        "bundles_published": 3,
    }


async def test_an_empty_study_is_a_study_dead_letter(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 0)
    proc, _ = make(source, clock, disk=disk)
    await started(proc)
    await proc.step()
    clock.advance(TIMEOUT_S)
    await proc.step()
    m = proc.metrics
    assert value(m, "streamer_empty_studies_total") == 1
    assert value(m, "streamer_dead_letters_total", error_type="EmptyStudyError", kind="study") == 1
    assert m.snapshot()["dead_letter_studies"] == 1


async def test_late_instances_reopen_and_after_retention_are_dead_lettered(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 1)
    # A retention of ~0.9 s: the study expires as soon as the clock moves past it.
    proc, _ = make(source, clock, state_retention_days=0.00001, disk=disk)
    m = proc.metrics
    await started(proc)
    await proc.step()
    uid = study_uid(1)
    late = make_instance(uid, series_uid(1), sop_uid(1, 7), number=8)
    source.append(0, uid.encode(), orjson.dumps(late), ts(clock))
    source.append(0, uid.encode(), encode_marker(uid, None), ts(clock))
    await proc.step()
    assert value(m, "streamer_late_instances_total") == 1
    assert value(m, "streamer_reopened_studies_total") == 1
    assert value(m, "streamer_studies_closed_total", reason="marker") == 2
    clock.advance(5)
    await proc.step()  # past the retention: the closed study expires
    later = make_instance(uid, series_uid(1), sop_uid(1, 9), number=10)
    source.append(0, uid.encode(), orjson.dumps(later), ts(clock))
    await proc.step()
    assert value(m, "streamer_late_instances_total") == 2
    assert value(m, "streamer_reopened_studies_total") == 1
    assert (
        value(m, "streamer_dead_letters_total", error_type="LateInstanceError", kind="record") == 1
    )


async def test_marker_to_publish_latency_runs_from_the_record_time_to_the_ack(
    disk: Disk,
) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2)
    put_study(source, clock, 2, 1, marker=False)
    proc, _ = make(source, clock, disk=disk)
    m = proc.metrics
    await started(proc)
    clock.advance(2.5)  # the marker was written 2.5 s before the loop reads it
    await proc.step()
    await proc.wait_checkpoint()  # the ack comes in the background
    assert value(m, "streamer_marker_to_publish_seconds_count") == 1
    assert value(m, "streamer_marker_to_publish_seconds_sum") == pytest.approx(2.5)
    clock.advance(TIMEOUT_S)
    await proc.step()  # study 2 times out: published, but not a marker's latency
    await proc.wait_checkpoint()
    assert value(m, "streamer_bundles_published_total") == 2
    assert value(m, "streamer_marker_to_publish_seconds_count") == 1


async def test_gauges_are_sampled_per_partition_when_scraped(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource(partitions=(0, 1))
    put_study(source, clock, 1, 2, partition=0, marker=False)
    clock.advance(10)
    put_study(source, clock, 2, 1, partition=1, marker=False)
    put_study(source, clock, 3, 1, partition=1, marker=False)
    proc, _ = make(source, clock, disk=disk, max_poll_records=4)
    m = proc.metrics
    await started(proc)
    assert value(m, "streamer_consumer_lag_records", partition="0") == 2
    assert value(m, "streamer_consumer_lag_records", partition="1") == 2
    await proc.step()  # 4 records: partition 0 whole, partition 1 half
    assert value(m, "streamer_consumer_lag_records", partition="0") == 0
    assert value(m, "streamer_consumer_lag_records", partition="1") == 0
    assert value(m, "streamer_open_studies", partition="0") == 1
    assert value(m, "streamer_open_studies", partition="1") == 2
    clock.advance(5)
    # Study 1's last record is 15 s old: the longest-idle open study.
    assert value(m, "streamer_oldest_open_study_age_seconds") == pytest.approx(15)
    await source.assign({1})  # partition 0 goes to another member
    await proc.wait_ready()
    assert m.registry.get_sample_value("streamer_open_studies", {"partition": "0"}) is None
    assert m.registry.get_sample_value("streamer_consumer_lag_records", {"partition": "0"}) is None
    assert value(m, "streamer_oldest_open_study_age_seconds") == pytest.approx(5)
    assert value(m, "streamer_rebalances_total") == 2
    clock.advance(TIMEOUT_S)
    await proc.step()
    assert value(m, "streamer_open_studies", partition="1") == 0
    assert value(m, "streamer_oldest_open_study_age_seconds") == 0


async def test_state_memory_reports_the_rocksdb_budget_in_use(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2, marker=False)
    proc, _ = make(source, clock, disk=disk)
    await started(proc)
    await proc.step()
    m = proc.metrics
    usage = shared_usage()
    assert set(usage) == {"block_cache", "memtables"}
    for part in usage:
        sampled = value(m, "streamer_state_memory_bytes", part=part)
        assert 0 <= sampled <= shared_resources().config.block_cache_bytes * 4
    assert value(m, "streamer_state_memory_bytes", part="memtables") > 0  # the store is open
    await proc.close()


async def test_restore_time_and_records_are_measured(disk: Disk) -> None:
    clock = FakeClock()
    source = FakeSource()
    put_study(source, clock, 1, 2, marker=False)
    proc, sink = make(source, clock, disk=disk)
    await started(proc)
    assert value(proc.metrics, "streamer_restore_seconds_count") == 1
    assert value(proc.metrics, "streamer_restore_records_total") == 0
    await proc.step()
    clock.advance(2)
    await proc.step()  # checkpoint: the study's records go to the changelog
    await proc.close()
    changelog = sink.logs[("streamer.study-state", 0)]
    # A new machine (lost disk): the whole changelog is read back.
    source2 = FakeSource(log=source.log, committed=dict(source.committed))
    proc2, _ = make(source2, clock, sink, disk=Disk(disk.root.parent, "other"))
    await started(proc2)
    assert value(proc2.metrics, "streamer_restore_seconds_count") == 1
    assert value(proc2.metrics, "streamer_restore_records_total") == len(changelog)
    assert proc2.open_studies() == {0: [study_uid(1)]}
