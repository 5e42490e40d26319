"""Waiting between tries: one backoff formula, and the frozen policies built on it.

Everything here only computes; nothing sleeps. The callers own the clock and the wait (a
cancellable `Event.wait` in production, a recorder in tests), so tests drive real HTTP failures
from the emulator without waiting, and a cancelled sync never sleeps through its shutdown.

- `backoff_delay` is the one formula: exponential growth from `initial` by `factor`, capped, with
  jitter. HTTP retries, slot waits (422) and polls through API errors all use it.
- `RetryPolicy` bounds one API call: attempts, and a time budget that includes the attempt in
  flight (the client caps each attempt's timeouts at what is left of the budget).
- `SlotWaitPolicy` paces retries while the account's import slots are all busy.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

Rand = Callable[[], float]


def backoff_delay(attempt: int, *, initial: float, factor: float, cap: float, rand: Rand,
                  floor: float = 0.0) -> float:
    """The wait after failed attempt number `attempt` (1-based).

    The ceiling grows as `initial * factor ** (attempt - 1)` up to `cap`; the wait is a uniform draw
    between `floor` times the ceiling and the ceiling. With `floor` 0 this is "full jitter", which
    spreads the retries of many clients sharing one account (what Scarf's guide asks for on 422/429).
    """
    exponent = min(max(attempt - 1, 0), 64)  # no float overflow on very long outages
    ceiling = min(cap, initial * factor ** exponent)
    return ceiling * (floor + (1.0 - floor) * rand())


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how long to retry one API call.

    `max_attempts` counts the first try (None: no limit but the time). `max_total_seconds` bounds the
    whole call, waits and the attempt in flight included: a retry whose wait would leave no time for
    the attempt is not made. A `Retry-After` header is honoured as given (up to
    `retry_after_max_seconds`) instead of the computed backoff.
    """

    max_attempts: int | None = 6
    backoff_initial_seconds: float = 1.0
    backoff_factor: float = 2.0
    backoff_max_seconds: float = 30.0
    max_total_seconds: float = 300.0
    retry_after_max_seconds: float = 120.0
    #: An attempt needs at least this much of the budget to be worth starting.
    min_attempt_seconds: float = 0.05

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.backoff_initial_seconds < 0 or self.backoff_max_seconds < 0 or self.max_total_seconds < 0:
            raise ValueError("backoff and budget must not be negative")

    def with_budget(self, seconds: float, *, unlimited_attempts: bool = True) -> RetryPolicy:
        """The same backoff with another time budget (and, by default, no attempt limit)."""
        return replace(self, max_total_seconds=seconds,
                       max_attempts=None if unlimited_attempts else self.max_attempts)

    def backoff(self, attempt: int, *, rand: Rand = random.random) -> float:
        return backoff_delay(attempt, initial=self.backoff_initial_seconds, factor=self.backoff_factor,
                             cap=self.backoff_max_seconds, rand=rand)

    def next_wait(
        self,
        *,
        attempt: int,
        elapsed: float,
        retry_after: float | None = None,
        rand: Rand = random.random,
        remaining: float | None = None,
    ) -> float | None:
        """The wait before the next attempt, or None when this policy allows no more attempts.

        `remaining` is what is left of the caller's own deadline (for example an import's), when
        that is shorter than this policy's budget.
        """
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return None
        if retry_after is not None:
            wait = min(max(retry_after, 0.0), self.retry_after_max_seconds)
        else:
            wait = self.backoff(attempt, rand=rand)
        left = self.max_total_seconds - elapsed
        if remaining is not None:
            left = min(left, remaining)
        if wait + self.min_attempt_seconds > left:
            return None
        return wait


@dataclass(frozen=True, kw_only=True)
class SlotWaitPolicy:
    """Backoff while all the account's import slots are busy (HTTP 422): between half and all of the ceiling.

    The floor of one half keeps a waiting batch from hammering the account when the draw is small;
    the other half of the range still spreads the syncs that share the account.
    """

    initial_seconds: float = 2.0
    factor: float = 2.0
    max_seconds: float = 60.0

    def wait(self, attempt: int, rand: Rand) -> float:
        return backoff_delay(attempt, initial=self.initial_seconds, factor=self.factor, cap=self.max_seconds,
                             rand=rand, floor=0.5)


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - now(), 0.0)


def duration_text(seconds: float) -> str:
    """"4.2 s", "3.5 minutes", "2.0 hours": for messages that say how long something was tried."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} minutes"
    return f"{seconds / 3600:.1f} hours"
