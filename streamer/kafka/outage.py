"""Quiet logs while the broker is away: one WARNING when it goes, one INFO when it is back.

The Kafka client retries on its own and logs every failed attempt (hundreds of ERROR lines for a
few seconds of outage). ``BrokerWatch`` is a logging filter for the handlers: the client's
connection complaints are counted instead of printed, the first one becomes "broker unreachable",
and ``back()`` (called by the consumer once a request succeeds again) logs the outage's length.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# What the client says while it cannot reach a broker (connects, metadata, fetches, produce
# requests). Group coordinator complaints alone are not an outage: a new group's coordinator is
# briefly "not available" on every first start.
_CONNECTION_TROUBLE = re.compile(
    r"connect|metadata|failed fetch|cannot send|could not send|produce response|nodenotready"
    r"|timed ?out|timeout",
    re.IGNORECASE,
)


class BrokerWatch(logging.Filter):
    """A handler filter that turns the client's connection errors into two lines per outage."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self.down_since: float | None = None
        self.suppressed = 0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiokafka") or record.levelno < logging.WARNING:
            return True
        message = record.getMessage()
        if "rebalanc" in message or not _CONNECTION_TROUBLE.search(message):
            return True  # group rebalances and other client warnings are worth seeing
        self.suppressed += 1
        if self.down_since is None:
            self.down_since = self._clock()
            log.warning(
                "broker unreachable; the Kafka client keeps retrying (its messages are counted, "
                "not printed, until the broker answers again)",
                extra={"first_error": message[:300]},
            )
        return False

    def back(self) -> None:
        """A request succeeded: end the outage, if there was one."""
        if self.down_since is None:
            return
        seconds = self._clock() - self.down_since
        log.info(
            "broker reachable again",
            extra={
                "outage_seconds": round(seconds, 1),
                "suppressed_client_messages": self.suppressed,
            },
        )
        self.down_since = None
        self.suppressed = 0

    def install(self) -> None:
        """Filter every handler of the root logger (configure_logging installed them)."""
        for handler in logging.getLogger().handlers:
            if self not in handler.filters:
                handler.addFilter(self)
