"""One immutable retry policy: exponential backoff with full jitter, a cap, Retry-After, and a time budget.

The policy only computes; it never sleeps. The client owns the clock and the sleep function, so
tests drive real HTTP failures from the emulator with an injected sleep and never wait.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how long to retry one API call.

    `max_attempts` counts the first try. `max_total_seconds` bounds the whole call, waits included:
    a retry whose wait would cross it is not made. A `Retry-After` header is honoured as given
    (up to `retry_after_max_seconds`) instead of the computed backoff.
    """

    max_attempts: int = 6
    backoff_initial_seconds: float = 1.0
    backoff_factor: float = 2.0
    backoff_max_seconds: float = 30.0
    max_total_seconds: float = 300.0
    retry_after_max_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_initial_seconds < 0 or self.backoff_max_seconds < 0 or self.max_total_seconds < 0:
            raise ValueError("backoff and budget must not be negative")

    def backoff(self, attempt: int, *, rand: Callable[[], float] = random.random) -> float:
        """The wait after failed attempt number `attempt` (1-based), with full jitter.

        Full jitter (a uniform draw below the exponential ceiling) spreads the retries of many
        clients sharing one account, which is what Scarf's guide asks for on 422 and 429.
        """
        ceiling = min(self.backoff_max_seconds, self.backoff_initial_seconds * self.backoff_factor ** (attempt - 1))
        return ceiling * rand()

    def next_wait(
        self,
        *,
        attempt: int,
        elapsed: float,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """The wait before the next attempt, or None when this policy allows no more attempts."""
        if attempt >= self.max_attempts:
            return None
        if retry_after is not None:
            wait = min(max(retry_after, 0.0), self.retry_after_max_seconds)
        else:
            wait = self.backoff(attempt, rand=rand)
        if elapsed + wait > self.max_total_seconds:
            return None
        return wait


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - now(), 0.0)
