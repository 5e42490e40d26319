"""What the emulator saw: one record per API request, for assertions in tests.

Only a few headers are kept.  The bearer token is kept (tests may compare it) but is
excluded from ``repr`` so a failing assertion never prints it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Mapping

#: Request headers copied into :class:`RequestRecord.headers` when present.
RECORDED_HEADERS = (
    "Content-Encoding",
    "Content-Type",
    "Content-Length",
    "Transfer-Encoding",
    "User-Agent",
    "Accept",
    "Accept-Encoding",
)


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str  # raw (still percent-encoded) path, without the query string
    query: dict[str, list[str]]
    headers: dict[str, str]
    body_bytes_len: int
    status: int | None = None  # None when the connection was reset without an answer
    auth_present: bool = False
    category: str = "other"
    received_at: float = 0.0  # time.monotonic() when the request line arrived
    token: str | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """JSON-friendly form without the token (used by the control endpoint)."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body_bytes_len": self.body_bytes_len,
            "status": self.status,
            "auth_present": self.auth_present,
            "category": self.category,
            "received_at": self.received_at,
        }


def pick_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in RECORDED_HEADERS if headers.get(name) is not None}


def bearer_token(headers: Mapping[str, str]) -> str | None:
    value = headers.get("Authorization")
    if not value:
        return None
    parts = value.split(None, 1)
    return parts[1].strip() if len(parts) == 2 and parts[0].lower() == "bearer" else None


class RequestLog:
    """Append-only, thread-safe list of :class:`RequestRecord`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
