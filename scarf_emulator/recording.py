"""What the emulator saw: one record per API request, for assertions in tests and call counts.

Only a few headers are kept.  The bearer token is kept (tests may compare it) but is
excluded from ``repr`` so a failing assertion never prints it.

Each record has a coarse ``category`` (the one fault tests have always filtered on:
``import-get`` covers the imports list and single-import reads alike) and a finer ``kind``
(:data:`CALL_KINDS`), which :func:`call_counts` counts by, because Scarf bills every call and
a list read and a read by id are different costs for a polling policy.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Iterable, Mapping

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
class ImportSeen:
    """One import as an answer showed it: its id, status word and counts (what a client decides on)."""

    id: str
    status: str
    events_total: int
    events_successfully_imported: int
    events_failed_to_import: int

    @classmethod
    def of(cls, view: Mapping) -> ImportSeen:
        return cls(str(view.get("id")), str(view.get("status")), int(view.get("events_total") or 0),
                   int(view.get("events_successfully_imported") or 0), int(view.get("events_failed_to_import") or 0))

    def to_dict(self) -> dict:
        return asdict(self)


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
    kind: str = "other"  # one of CALL_KINDS
    owner: str | None = None  # the {owner} of the path, when the route has one
    import_id: str | None = None  # the import the path names, or the import an upload created
    #: What an import read (by id, or the list) answered with, as sent: one status per import; empty for any
    #: other request, and for an answer a fault replaced.
    answered: tuple[ImportSeen, ...] = ()

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
            "kind": self.kind,
            "owner": self.owner,
            "import_id": self.import_id,
            "answered": [seen.to_dict() for seen in self.answered],
        }


#: Kinds of API calls, as counted by :func:`call_counts` (and as faults' ``only`` can name them):
#: uploads, single-import reads, list reads, log reads, aborts, package/pixel reads, anything else.
CALL_KINDS = ("import-post", "import-by-id", "import-list", "log", "abort", "artifact-get", "other")


def call_counts(records: Iterable[RequestRecord], owner: str | None = None) -> dict:
    """API calls by kind, and per import: what a sync cost in calls (Scarf bills each one).

    Every request the emulator received counts, whatever its answer (an injected 503 is billed
    too, as far as anyone knows).  ``owner`` keeps the calls whose path names that owner.

    Returns ``{"total", "by_kind": {kind: n for every kind}, "imports": number of imports
    named, "by_import": {import_id: {"total", kind: n, ...}}, "unattributed": {kind: n}}``; a
    call is attributed to the import its path names, or, for an upload, to the import it
    created.  List reads, artifact reads and refused uploads are unattributed.
    """
    by_kind = dict.fromkeys(CALL_KINDS, 0)
    by_import: dict[str, dict[str, int]] = {}
    unattributed: dict[str, int] = {}
    total = 0
    for record in records:
        if owner is not None and record.owner != owner:
            continue
        total += 1
        by_kind[record.kind] = by_kind.get(record.kind, 0) + 1
        if record.import_id is None:
            unattributed[record.kind] = unattributed.get(record.kind, 0) + 1
            continue
        counts = by_import.setdefault(record.import_id, {"total": 0})
        counts["total"] += 1
        counts[record.kind] = counts.get(record.kind, 0) + 1
    return {"total": total, "by_kind": by_kind, "imports": len(by_import), "by_import": by_import,
            "unattributed": unattributed}


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
