"""When to try a POST again: exponential backoff with jitter, capped, and the server's Retry-After."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# A Retry-After longer than this is taken as this: a misconfigured proxy must not park us for days.
RETRY_AFTER_LIMIT_S = 3600.0


@dataclass(frozen=True)
class Backoff:
    """``delay(n)``: about ``initial * 2**(n-1)``, at most ``maximum``, jittered down to half of it.

    A Retry-After from the server is a floor: the wait is never shorter than what it asked for.
    """

    initial: float
    maximum: float
    random: Callable[[], float] = field(default=random.random, repr=False)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        step = min(self.maximum, self.initial * 2.0 ** min(max(attempt - 1, 0), 62))
        wait = step * (0.5 + 0.5 * self.random())
        if retry_after is not None:
            wait = max(wait, min(retry_after, RETRY_AFTER_LIMIT_S))
        return wait


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if unusable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
