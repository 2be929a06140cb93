"""In-memory Kafka and a scripted FHIR server for the sink's unit tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from streamer.errors import RecordTooLargeError
from streamer.ports import Headers, InputRecord
from streamer.sink.client import Accepted, PostOutcome

TOPIC = "fhir.bundles"


def bundle(n: int) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "id": f"b{n}", "type": "transaction"})


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class FakeSource:
    clock: Clock
    batches: list[dict[int, list[InputRecord]]] = field(default_factory=list)
    partitions: set[int] = field(default_factory=lambda: {0, 1})
    commits: list[dict[int, int]] = field(default_factory=list)
    idled: list[float] = field(default_factory=list)
    topic: str = TOPIC
    on_idle: Callable[[], None] | None = None
    wakes: int = 0

    async def poll(self, timeout_s: float, max_records: int) -> dict[int, list[InputRecord]]:
        return self.batches.pop(0) if self.batches else {}

    def wake(self) -> None:
        self.wakes += 1  # poll() never waits here: nothing to end

    def assigned(self) -> set[int]:
        return set(self.partitions)

    async def idle(self, seconds: float) -> None:
        self.idled.append(seconds)
        self.clock.now += seconds
        if self.on_idle is not None:
            self.on_idle()

    async def commit(self, offsets: dict[int, int]) -> bool:
        self.commits.append(dict(offsets))
        return True

    @property
    def committed(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for c in self.commits:
            out.update(c)
        return out


@dataclass
class FakeServer:
    script: list[PostOutcome] = field(default_factory=list)
    posted: list[bytes] = field(default_factory=list)

    async def post_transaction(self, body: bytes) -> PostOutcome:
        self.posted.append(body)
        return self.script.pop(0) if self.script else Accepted(200, Counter(created=2))


@dataclass
class FakeDeadLetters:
    sent: list[tuple[bytes | None, bytes | None, dict[str, bytes]]] = field(default_factory=list)
    too_large_once: bool = False
    topic: str = "fhir.bundles.dlq"

    async def send(self, key: bytes | None, value: bytes | None, headers: Headers) -> int:
        if self.too_large_once:
            self.too_large_once = False
            raise RecordTooLargeError("too large")
        self.sent.append((key, value, dict(headers)))
        return len(self.sent) - 1


def record(partition: int, offset: int, value: bytes | None, key: bytes = b"1.2.3") -> InputRecord:
    return InputRecord(partition, offset, 0, key, value)
