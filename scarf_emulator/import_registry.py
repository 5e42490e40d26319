"""Import records and their lifecycle (importing -> done | aborted).

The registry is the one place that decides which imports count as *active*, so the
15-per-owner limit, ``wait_idle`` and the list endpoint all agree.  Import faults (see
faults.py) only change the word an import *reports* (``interim_status`` while importing,
``final_status`` instead of done) and how many of its lines are left out: ``status`` stays
the real lifecycle state, so an import counts as active while it processes whatever it says.
Two locks are used:

* the registry condition guards every record's fields (held only for quick updates);
* each record's ``commit_lock`` orders a worker's "store chunk + count it" step against an
  abort, so once :meth:`ImportRegistry.abort` returns nothing more is stored or counted
  for that import.  Lock order is always ``commit_lock`` -> registry condition.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

from .clock import iso_z, utc_now
from .faults import ImportQuirks, ListQuirks

IMPORTING = "importing"
DONE = "done"
ABORTED = "aborted"
STATUSES = (IMPORTING, DONE, ABORTED)

#: Scarf answers the ``error_log_sample`` with the first few errors; the emulator keeps 10.
ERROR_SAMPLE_SIZE = 10

#: Aborting an import that already finished (done or aborted) is undocumented by Scarf.
#: The emulator answers this status and leaves the import unchanged.
ABORT_FINISHED_IMPORT_STATUS = 204


@dataclass(eq=False)
class ImportRecord:
    """Mutable state of one import; read it through the registry's snapshots."""

    id: str
    owner: str
    seq: int
    created: datetime
    events_total: int
    held: bool = False
    status: str = IMPORTING
    updated: datetime | None = None
    imported: int = 0
    failed: int = 0
    errors: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    progress: dict | None = None
    commit_lock: threading.Lock = field(default_factory=threading.Lock)
    interim_status: str | None = None  # reported instead of "importing" (import fault)
    final_status: str | None = None  # reported instead of "done" (import fault)
    left_out: int = 0  # last lines of the body never processed (short_count import fault)
    finished_at: float | None = None  # registry clock when it left importing (list_stale fault)
    last_importing: dict | None = None  # how it looked just before (what a stale list shows)

    def reported_status(self) -> str:
        """The status word the API shows; call with the registry lock held."""
        if self.status == IMPORTING and self.interim_status:
            return self.interim_status
        if self.status == DONE and self.final_status:
            return self.final_status
        return self.status

    def to_dict(self) -> dict:
        """EventImport shape; call with the registry lock held."""
        return {
            "id": self.id,
            "owner": self.owner,
            "status": self.reported_status(),
            "events_total": self.events_total,
            "events_successfully_imported": self.imported,
            "events_failed_to_import": self.failed,
            "error_log_sample": [dict(e) for e in self.errors[:ERROR_SAMPLE_SIZE]],
            "warning_log_sample": [dict(w) for w in self.warnings[:ERROR_SAMPLE_SIZE]],
            "created_at": iso_z(self.created),
            "updated_at": iso_z(self.updated or self.created),
        }

    def progress_entry(self) -> dict:
        """The final ``progress`` log entry; ``events_count`` counts every processed event."""
        processed = self.imported + self.failed
        return {
            "type": "progress",
            "class": "info",
            "events_count": processed,
            "failed_events_count": self.failed,
            "human_friendly_message": (
                f"Processed {processed} of {self.events_total} events, {self.failed} failed"
            ),
        }


class ImportRegistry:
    """All imports of all owners, with the active-import limit."""

    def __init__(self, max_active: int = 15, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_active = max_active
        self._clock = clock
        self._cond = threading.Condition()
        self._by_owner: dict[str, list[ImportRecord]] = {}
        self._by_id: dict[str, ImportRecord] = {}
        self._seq = 0

    # -- creation ------------------------------------------------------------------
    def create(
        self,
        owner: str,
        events_total: int,
        *,
        held: bool = False,
        force: bool = False,
        quirks: Callable[[], ImportQuirks | None] | None = None,
    ) -> ImportRecord | None:
        """Create an importing record, or return None when the owner has no free slot.

        ``quirks`` (FaultPlan.take_import_quirks) is asked only once a slot is granted, and its
        answer is applied before the record becomes visible.
        """
        with self._cond:
            if not force and self._active_count_locked(owner) >= self.max_active:
                return None
            self._seq += 1
            record = ImportRecord(str(uuid.uuid4()), owner, self._seq, utc_now(), events_total, held=held)
            found = quirks() if quirks is not None else None
            if found is not None:
                record.interim_status, record.final_status = found.interim_status, found.final_status
                record.left_out = min(found.missing, events_total)
                if found.mode == "total":
                    record.events_total -= record.left_out
            self._by_owner.setdefault(owner, []).append(record)
            self._by_id[record.id] = record
            return record

    def _active_count_locked(self, owner: str) -> int:
        return sum(1 for r in self._by_owner.get(owner, ()) if r.status == IMPORTING)

    # -- reads ---------------------------------------------------------------------
    def get(self, owner: str, import_id: str) -> ImportRecord | None:
        record = self._by_id.get(import_id)
        return record if record is not None and record.owner == owner else None

    def snapshot(self, record: ImportRecord) -> dict:
        with self._cond:
            return record.to_dict()

    def snapshots(self, owner: str) -> list[dict]:
        """All imports of the owner, oldest first."""
        with self._cond:
            return [r.to_dict() for r in self._by_owner.get(owner, ())]

    def page(self, owner: str, statuses: Iterable[str], after: str | None, per_page: int,
             quirks: ListQuirks | None = None) -> list[dict]:
        """Newest-first page; ``after`` is the id of the last import of the previous page.

        An unknown ``after`` id yields an empty page (what a "created before the cursor"
        query would give), not an error.  The cursor is a position among all the owner's
        imports, so it works whatever the filter and whether or not that import still matches.
        ``quirks`` (list faults) may show finished imports stale, leave imports out, change
        the page size and cut the page short, in that order.
        """
        wanted = set(statuses)
        quirks = quirks or ListQuirks()
        with self._cond:
            newest_first = list(reversed(self._by_owner.get(owner, ())))
            if after is not None:
                ids = [r.id for r in newest_first]
                newest_first = newest_first[ids.index(after) + 1:] if after in ids else []
            now = self._clock()
            views = []
            for record in newest_first:
                if quirks.omits(record.id, record.seq, record.status == IMPORTING):
                    continue
                view = self._list_view_locked(record, quirks.stale_seconds, now)
                if not wanted or view["status"] in wanted:
                    views.append(view)
                    if len(views) >= (quirks.page_size or per_page):
                        break
            return views[:quirks.keep] if quirks.keep is not None else views

    @staticmethod
    def _list_view_locked(record: ImportRecord, stale_seconds: float, now: float) -> dict:
        """What the list shows of one import: a stale view within ``stale_seconds`` of its end."""
        if (stale_seconds and record.finished_at is not None and record.last_importing is not None
                and now - record.finished_at < stale_seconds):
            return dict(record.last_importing)
        return record.to_dict()

    def reports_status(self, owner: str, word: str) -> bool:
        """Whether an import of the owner reports (or will report) ``word``, a status from a fault."""
        with self._cond:
            return any(word in (r.interim_status, r.final_status) for r in self._by_owner.get(owner, ()))

    def log(self, record: ImportRecord) -> list[dict]:
        """Full log: errors (in line order), warnings, then the final progress entry."""
        with self._cond:
            entries = [dict(e) for e in record.errors] + [dict(w) for w in record.warnings]
            if record.progress is not None:
                entries.append(dict(record.progress))
            return entries

    def stats(self, owner: str | None) -> dict:
        with self._cond:
            records = list(self._by_id.values()) if owner is None else list(self._by_owner.get(owner, ()))
            by_status = {s: sum(1 for r in records if r.status == s) for s in STATUSES}
            return {
                "imports": len(records),
                "active_imports": by_status[IMPORTING],
                "imports_by_status": by_status,
                "events_total": sum(r.events_total for r in records),
                "events_imported": sum(r.imported for r in records),
                "events_failed": sum(r.failed for r in records),
            }

    # -- processing updates --------------------------------------------------------
    def record_chunk(self, record: ImportRecord, imported: int, errors: list[dict]) -> None:
        """Count one processed chunk; call with ``record.commit_lock`` held."""
        with self._cond:
            record.imported += imported
            record.failed += len(errors)
            record.errors.extend(errors)
            record.updated = utc_now()

    def finish(self, record: ImportRecord) -> None:
        """Mark a fully processed import done (no-op if it was aborted meanwhile)."""
        with record.commit_lock, self._cond:
            if record.status == IMPORTING:
                self._close_locked(record, DONE)

    def abort(self, record: ImportRecord) -> bool:
        """Abort an importing record; return False (and change nothing) if already final."""
        with record.commit_lock, self._cond:
            if record.status != IMPORTING:
                return False
            self._close_locked(record, ABORTED)
            return True

    def release_held(self, owner: str) -> list[str]:
        """Finish the owner's held slots as done; return their ids."""
        released = []
        with self._cond:
            for record in self._by_owner.get(owner, ()):
                if record.held and record.status == IMPORTING:
                    self._close_locked(record, DONE)
                    released.append(record.id)
        return released

    def _close_locked(self, record: ImportRecord, status: str) -> None:
        record.last_importing = record.to_dict()
        record.finished_at = self._clock()
        record.status = status
        record.updated = utc_now()
        record.progress = record.progress_entry()
        self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no non-held import is importing; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._busy_locked():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))
            return True

    def _busy_locked(self) -> bool:
        return any(r.status == IMPORTING and not r.held for r in self._by_id.values())
