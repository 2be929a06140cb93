"""What the sink needs of Kafka and of the FHIR server; ``kafka/sink_io.py`` and ``sink/client.py``
implement them for real, the unit tests in memory."""

from __future__ import annotations

from typing import Protocol

from streamer.ports import Headers, InputRecord
from streamer.sink.client import PostOutcome


class BundleSource(Protocol):
    """The Bundles topic, read in the sink's consumer group with manual commits."""

    topic: str

    async def poll(self, timeout_s: float, max_records: int) -> dict[int, list[InputRecord]]: ...

    def wake(self) -> None:
        """End a poll that is waiting for records now (it returns what it has, maybe nothing)."""
        ...

    def assigned(self) -> set[int]:
        """The partitions this process owns right now."""
        ...

    async def idle(self, seconds: float) -> None:
        """Wait without taking records, staying in the group."""
        ...

    async def commit(self, offsets: dict[int, int]) -> bool:
        """Commit ``partition -> next offset``; False when a rebalance took them."""
        ...


class DeadLetters(Protocol):
    """The sink's dead-letter topic."""

    topic: str

    async def send(self, key: bytes | None, value: bytes | None, headers: Headers) -> int:
        """Send one record and wait for the ack (raises RecordTooLargeError or OutputError)."""
        ...


class FhirServer(Protocol):
    """Posts one transaction Bundle and says what became of it."""

    async def post_transaction(self, body: bytes) -> PostOutcome: ...
