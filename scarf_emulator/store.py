"""Durable storage of accepted events in SQLite.

Scarf's ``$unique_id`` contract ("reusing one overrides the earlier event") is what makes a
re-sent batch harmless, so the store enforces it with ``UNIQUE(owner, unique_id)`` and
``INSERT OR REPLACE``.  SQLite treats NULLs as distinct in a UNIQUE index, which gives the
other half of the contract for free: events without ``$unique_id`` always add a row.

One connection serves every thread (this also makes ``:memory:`` databases shareable); a
lock serialises access.  Callers hand over whole chunks so the lock is taken once per
``executemany`` rather than once per event.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import Sequence

#: (owner, unique_id or None, artifact_type, artifact_id, import_id, event JSON text)
EventRow = tuple[str, "str | None", str, str, str, str]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    unique_id TEXT,
    artifact_type TEXT NOT NULL,
    artifact_id TEXT NOT NULL,
    import_id TEXT NOT NULL,
    event TEXT NOT NULL,
    UNIQUE (owner, unique_id)
)
"""

_INSERT = (
    "INSERT OR REPLACE INTO events (owner, unique_id, artifact_type, artifact_id, import_id, event)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


class EventStore:
    """Thread-safe SQLite event table keyed by (owner, $unique_id)."""

    def __init__(self, db_path: str = ":memory:") -> None:
        self.db_path = db_path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(db_path, check_same_thread=False)
        if db_path != ":memory:":
            # WAL + NORMAL keeps durability across process exits without an fsync per chunk.
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)
        self._conn.commit()

    def insert(self, rows: Sequence[EventRow]) -> None:
        """Store one chunk of accepted events in a single transaction."""
        if not rows:
            return
        with self._lock:
            self._conn.executemany(_INSERT, rows)
            self._conn.commit()

    def events(self, owner: str, artifact: str | None = None) -> list[dict]:
        """Stored events of ``owner`` (optionally one artifact id), in storage order."""
        sql = "SELECT event FROM events WHERE owner = ?"
        params: tuple = (owner,)
        if artifact is not None:
            sql += " AND artifact_id = ?"
            params += (artifact,)
        with self._lock:
            texts = [row[0] for row in self._conn.execute(sql + " ORDER BY seq", params)]
        return [json.loads(text) for text in texts]

    def rows(self, owner: str) -> list[dict]:
        """Stored rows with their bookkeeping columns, for tests that check artifact/import ids."""
        sql = (
            "SELECT unique_id, artifact_type, artifact_id, import_id, event FROM events"
            " WHERE owner = ? ORDER BY seq"
        )
        with self._lock:
            found = self._conn.execute(sql, (owner,)).fetchall()
        keys = ("unique_id", "artifact_type", "artifact_id", "import_id")
        return [dict(zip(keys, row[:4]), event=json.loads(row[4])) for row in found]

    def count(self, owner: str | None = None) -> int:
        with self._lock:
            if owner is None:
                return self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            return self._conn.execute("SELECT COUNT(*) FROM events WHERE owner = ?", (owner,)).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
