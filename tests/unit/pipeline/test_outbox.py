"""The outbox: acks before commits, "too large" handed back, any other refusal sticky."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError, RecordTooLargeError

from streamer.errors import OutputError
from streamer.errors import RecordTooLargeError as TooLarge
from streamer.kafka.producer import translate_send_error
from streamer.outbox import Outbox
from tests.fakes import FakeSink


async def test_drain_waits_for_every_ack() -> None:
    sink = FakeSink()
    outbox = Outbox(sink)
    await outbox.send("t", b"k", b"v", [], source_partition=0)
    await outbox.send("t", b"k2", b"v2", [], source_partition=0)
    assert len(outbox) == 2
    await outbox.drain()
    assert len(outbox) == 0
    assert [k for _, k, _, _ in sink.sent] == [b"k", b"k2"]


async def test_too_large_goes_to_its_callback_and_the_outbox_stays_usable() -> None:
    sink = FakeSink(fail_with=TooLarge("too big"))
    outbox = Outbox(sink)
    refused: list[str] = []

    async def on_too_large(exc: TooLarge) -> None:
        refused.append(str(exc))
        sink.fail_with = None
        await outbox.send("dlq", b"k", b"small", [], source_partition=0)

    await outbox.send("out", b"k", b"huge", [], source_partition=0, on_too_large=on_too_large)
    await outbox.drain()
    assert refused == ["too big"]
    assert [t for t, _, _, _ in sink.sent] == ["out", "dlq"]
    assert outbox.failed is None


async def test_any_other_refusal_is_sticky() -> None:
    sink = FakeSink(fail_with=OutputError("gone"))
    outbox = Outbox(sink)
    await outbox.send("out", b"k", b"v", [], source_partition=0)
    with pytest.raises(OutputError, match="gone"):
        await outbox.drain()
    sink.fail_with = None
    with pytest.raises(OutputError, match="gone"):
        await outbox.send("out", b"k", b"v", [], source_partition=0)
    with pytest.raises(OutputError, match="gone"):
        await outbox.drain()


async def test_wait_covers_the_sends_taken_not_later_ones() -> None:
    """A checkpoint waits for what was sent before its snapshot; the loop's later sends are not its."""
    sink = FakeSink()
    outbox = Outbox(sink)
    loop = asyncio.get_running_loop()
    held: list[asyncio.Future[int]] = []

    async def send(*args: object, **kwargs: object) -> asyncio.Future[int]:
        future: asyncio.Future[int] = loop.create_future()
        held.append(future)
        return future

    sink.send = send  # type: ignore[method-assign]
    await outbox.send("out", b"a", b"v", [], source_partition=0)
    taken = outbox.take()
    await outbox.send("out", b"b", b"v", [], source_partition=0)  # after the snapshot
    assert len(taken) == 1 and len(outbox) == 1
    waiting = asyncio.create_task(outbox.wait(taken))
    await asyncio.sleep(0)
    assert not waiting.done()
    held[0].set_result(0)
    await waiting  # done although the later send is still unacked
    assert not held[1].done() and len(outbox) == 1
    held[1].set_exception(OutputError("lost"))
    with pytest.raises(OutputError, match="lost"):
        await outbox.drain()


async def test_wait_includes_what_a_too_large_callback_sends() -> None:
    sink = FakeSink(fail_with=TooLarge("too big"))
    outbox = Outbox(sink)

    async def on_too_large(exc: TooLarge) -> None:
        sink.fail_with = OutputError("dead letter lost")
        await outbox.send("dlq", b"k", b"small", [], source_partition=0)

    await outbox.send("out", b"k", b"huge", [], source_partition=0, on_too_large=on_too_large)
    with pytest.raises(OutputError, match="dead letter lost"):
        await outbox.wait(outbox.take())


async def test_too_large_without_a_callback_is_an_output_error() -> None:
    outbox = Outbox(FakeSink(fail_with=TooLarge("too big")))
    await outbox.send("dlq", b"k", b"v", [], source_partition=0)
    with pytest.raises(OutputError):
        await outbox.drain()


@pytest.mark.parametrize("error", [MessageSizeTooLargeError(), RecordTooLargeError()])
def test_kafka_size_errors_become_record_too_large(error: Exception) -> None:
    assert isinstance(translate_send_error(error), TooLarge)


def test_other_kafka_errors_become_output_errors() -> None:
    assert isinstance(translate_send_error(KafkaConnectionError()), OutputError)
