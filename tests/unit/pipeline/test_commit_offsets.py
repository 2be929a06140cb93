"""commit_offsets: a rebalance is answered with False, any other failure propagates."""

from __future__ import annotations

from typing import cast

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError, RequestTimedOutError

from streamer.kafka.consumer import commit_offsets


class _Consumer:
    """Stands in for AIOKafkaConsumer.commit: records the call, then raises ``error`` if any."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.calls: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.calls.append(offsets)
        if self.error is not None:
            raise self.error


def _consumer(fake: _Consumer) -> AIOKafkaConsumer:
    return cast(AIOKafkaConsumer, fake)


async def test_commits_the_offsets_given() -> None:
    fake = _Consumer()
    assert await commit_offsets(_consumer(fake), "in", {0: 5, 2: 9})
    assert fake.calls == [{TopicPartition("in", 0): 5, TopicPartition("in", 2): 9}]


async def test_nothing_to_commit_asks_nothing() -> None:
    fake = _Consumer()
    assert await commit_offsets(_consumer(fake), "in", {})
    assert fake.calls == []


async def test_a_rebalance_is_answered_with_false() -> None:
    fake = _Consumer(CommitFailedError("the group rebalanced"))
    assert not await commit_offsets(_consumer(fake), "in", {0: 5})


async def test_a_retriable_error_propagates_instead_of_giving_up_the_partition() -> None:
    # aiokafka retries these itself; one that still gets out must not read as "rebalanced", which
    # makes the checkpoint drop the lane and pause a partition this process still owns.
    error = RequestTimedOutError()
    assert error.retriable
    fake = _Consumer(error)
    with pytest.raises(RequestTimedOutError):
        await commit_offsets(_consumer(fake), "in", {0: 5})


async def test_a_fatal_error_propagates() -> None:
    fake = _Consumer(KafkaError("broken"))
    with pytest.raises(KafkaError):
        await commit_offsets(_consumer(fake), "in", {0: 5})
