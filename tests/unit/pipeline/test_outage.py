"""BrokerWatch: the client's connection errors become one WARNING and one INFO per outage."""

from __future__ import annotations

import logging

import pytest

from streamer.kafka.outage import BrokerWatch
from tests.fakes import FakeClock


def client_record(name: str, level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_an_outage_is_one_warning_and_one_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="streamer.kafka.outage")
    clock = FakeClock(100.0)
    watch = BrokerWatch(clock)
    noise = [
        client_record("aiokafka.client", logging.ERROR, "Unable connect to %s: %s", "b:9092", "x"),
        client_record("aiokafka.consumer.fetcher", logging.ERROR, "Failed fetch messages from 1"),
        client_record("aiokafka.conn", logging.ERROR, "Unable connect to node with id 1: err"),
    ] * 300
    assert not any(watch.filter(r) for r in noise)
    clock.advance(13.2)
    watch.back()
    watch.back()  # nothing more: the outage is over
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in lines] == ["WARNING", "INFO"]
    assert lines[0][1].startswith("broker unreachable")
    info = caplog.records[1]
    assert info.__dict__["outage_seconds"] == 13.2
    assert info.__dict__["suppressed_client_messages"] == 900


def test_other_records_pass() -> None:
    watch = BrokerWatch(FakeClock())
    assert watch.filter(client_record("streamer.app", logging.ERROR, "connection of ours"))
    assert watch.filter(client_record("aiokafka.consumer", logging.INFO, "Unable connect"))
    assert watch.filter(
        client_record(
            "aiokafka.consumer.group_coordinator",
            logging.WARNING,
            "Heartbeat failed for group g because it is rebalancing",
        )
    )
    assert watch.filter(client_record("aiokafka.cluster", logging.WARNING, "No partition for x"))
    assert not watch.down
