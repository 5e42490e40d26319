"""Fault injection: scripted misbehaviour for the next N matching requests.

The connector must survive what a real API and the network do to it (5xx, 429 with
Retry-After, dropped connections, slowness).  Tests queue faults here; the HTTP layer asks
for them on every request.  Faults are consumed in the order they were queued, each by the
next requests of its category, and every operation is thread-safe.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, replace

#: Request categories a fault can be limited to ("any" matches every API request;
#: requests to the /_emulator/ control endpoints are never faulted).
CATEGORIES = ("any", "import-post", "import-get", "log", "abort", "artifact-get")

FAIL = "fail"
RESET = "reset"
THROTTLE = "throttle"
DELAY = "delay"


@dataclass
class Fault:
    """One queued fault; ``remaining`` counts the requests it still applies to."""

    kind: str
    remaining: int
    only: str = "any"
    status: int = 503
    retry_after: int = 1
    seconds: float = 0.0
    after_processing: bool = False

    def matches(self, category: str) -> bool:
        return self.only == "any" or self.only == category


def _check_common(n: int, only: str) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError("n must be a non-negative integer")
    if only not in CATEGORIES:
        raise ValueError(f"only must be one of {CATEGORIES}")


class FaultPlan:
    """Thread-safe queue of faults."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    # -- queueing ------------------------------------------------------------------
    def fail_next(self, n: int, status: int = 503, only: str = "any", after_processing: bool = False) -> None:
        _check_common(n, only)
        if not 400 <= int(status) <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        self._add(Fault(FAIL, n, only, status=int(status), after_processing=after_processing))

    def reset_next(self, n: int, only: str = "any", after_processing: bool = False) -> None:
        _check_common(n, only)
        self._add(Fault(RESET, n, only, after_processing=after_processing))

    def throttle_next(self, n: int, retry_after: float = 1, only: str = "any") -> None:
        _check_common(n, only)
        if retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        self._add(Fault(THROTTLE, n, only, status=429, retry_after=math.ceil(retry_after)))

    def delay_next(self, n: int, seconds: float, only: str = "any") -> None:
        _check_common(n, only)
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        self._add(Fault(DELAY, n, only, seconds=float(seconds)))

    def _add(self, fault: Fault) -> None:
        if fault.remaining:
            with self._lock:
                self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[dict]:
        with self._lock:
            return [asdict(f) for f in self._faults]

    # -- consumption ---------------------------------------------------------------
    def take_delay(self, category: str) -> float:
        """Seconds to wait before answering this request (0 when no delay is queued)."""
        fault = self._take(lambda f: f.kind == DELAY and f.matches(category))
        return fault.seconds if fault else 0.0

    def take(self, category: str, after_processing: bool) -> Fault | None:
        """The next terminal fault (fail/reset/throttle) for this request and phase."""
        return self._take(
            lambda f: f.kind != DELAY and f.matches(category) and f.after_processing == after_processing
        )

    def _take(self, predicate) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if predicate(fault):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self._faults[index]
                    return replace(fault)
        return None
