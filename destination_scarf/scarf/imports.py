"""The import slots: closed batches become import jobs (`import_job.py`), run on threads of their own.

Up to `slots` imports run at once, and up to `slots` more batches wait their turn; the sync's loop
hands a batch over only while there is room (`has_room`), so a fast reader is paused instead of piling
batches up: backpressure. The sync's own thread never blocks on HTTP: it starts batches, waits for any
import to end (`wait`), and takes the outcomes of ended jobs (`take_finished`), which release states.

Stopping is explicit and bounded:

- `stop()`: after a fatal error, queued batches never start; running jobs go on to their end, so
  that their states can still be echoed.
- `cancel()`: on SIGTERM/SIGINT, every import still running is aborted, in parallel, within a few
  seconds in all; the report says which imports were aborted and which could not be.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from destination_scarf.errors import ScarfError
from destination_scarf.scarf.client import ScarfClient
from destination_scarf.scarf.import_job import Batch, ImportJob, JobSettings, Outcome, Phase
from destination_scarf.scarf.polling import StatusPoller

logger = logging.getLogger("airbyte")


class ImportsStopped(ScarfError):
    """A batch was handed over after `stop()`: the sync is stopping, and it never starts."""


@dataclass(frozen=True)
class CancelReport:
    """What a cancellation did: every import of this sync that was aborted, those that could not be, and uploads
    still unanswered."""

    aborted: tuple[str, ...]
    not_aborted: tuple[tuple[str, str], ...]  # (import id, why)
    unanswered_uploads: int  # uploads still on their way when time ran out (Scarf may create those imports)
    outcomes: tuple[Outcome, ...] = ()  # of the jobs that ended meanwhile (some may be done: settle them)

    def describe(self) -> str:
        parts = []
        if self.aborted:
            parts.append(f"Aborted import(s) of this sync: {', '.join(self.aborted)}.")
        if self.not_aborted:
            listed = "; ".join(f"{import_id} ({why})" for import_id, why in self.not_aborted)
            parts.append(f"Could not abort: {listed}; abort them with `destination-scarf abort IMPORT_ID`.")
        if self.unanswered_uploads:
            parts.append(f"{self.unanswered_uploads} upload(s) had no answer yet: check `destination-scarf imports` "
                         "for imports that started after the cancellation.")
        return " ".join(parts) or "No import of this sync was in flight."


@dataclass
class ImportStats:
    imports_started: int = 0
    imports_done: int = 0
    events_imported: int = 0
    events_failed: int = 0
    wire_bytes: int = 0
    events_settled: int = 0  # events of uploaded batches whose job has ended


class ImportSlots:
    """Runs up to `slots` import jobs at once; see the module docstring."""

    def __init__(
        self,
        *,
        client: ScarfClient,
        settings: JobSettings,
        slots: int,
        cancelled: threading.Event,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._client = client
        self._settings = settings
        self._max_queued = slots
        self._cancelled = cancelled
        self._clock = clock
        self._rand = rand
        self._cond = threading.Condition()
        self._queue: deque[ImportJob] = deque()
        self._running: list[ImportJob] = []
        self._ended: deque[tuple[ImportJob, object]] = deque()
        self._stopped = False
        self.stats = ImportStats()
        #: Every import a job of this sync aborted, and the aborts that failed (import id, why), so far.
        self._aborted: list[str] = []
        self._not_aborted: list[tuple[str, str]] = []
        #: One poller for every import of the sync (list mode); None: each import is read by id on its own.
        self._poller = (StatusPoller(client=client, cadence=settings.cadence, cancelled=cancelled, clock=clock)
                        if settings.status_polling == "list" else None)
        self._threads = [threading.Thread(target=self._work, name=f"scarf-import-slot-{n}", daemon=True)
                         for n in range(slots)]
        for thread in self._threads:
            thread.start()

    # ----- the sync's side -----------------------------------------------------------------------

    @property
    def has_room(self) -> bool:
        """Whether a batch may be handed over now without piling up (fewer than `slots` wait for a slot)."""
        with self._cond:
            return self._has_room()

    def start(self, batch: Batch) -> None:
        """Queue a closed batch for import (call it when `has_room`); it starts as soon as a slot is free."""
        job = ImportJob(batch=batch, settings=self._settings, client=self._client, cancelled=self._cancelled,
                        clock=self._clock, rand=self._rand, poller=self._poller)
        with self._cond:
            if self._stopped:
                raise ImportsStopped(f"Batch {batch.batch_id} was not imported: the sync is stopping.")
            self._queue.append(job)
            self._cond.notify_all()

    def wait(self, timeout: float, *, for_room: bool = False) -> None:
        """Block until an import ends (with `for_room`, or a waiting batch starts), none is left, or `timeout`."""
        with self._cond:
            self._cond.wait_for(lambda: bool(self._ended) or not self._busy() or (for_room and self._has_room()),
                                timeout)

    def take_finished(self) -> list[Outcome]:
        """Outcomes of the jobs that ended since the last call, in the order they ended."""
        with self._cond:
            ended = list(self._ended)
            self._ended.clear()
        outcomes = []
        for job, result in ended:
            outcome = result if isinstance(result, Outcome) else _crashed(job, result)
            self._count(outcome)
            outcomes.append(outcome)
        return outcomes

    @property
    def busy(self) -> bool:
        """True while any batch waits for a slot or any import runs."""
        with self._cond:
            return self._busy()

    @property
    def in_flight(self) -> int:
        with self._cond:
            return len(self._running)

    @property
    def events_uploaded(self) -> int:
        """Events sent so far: those of ended jobs, plus those of running jobs past their upload."""
        with self._cond:
            running = list(self._running)
        return self.stats.events_settled + sum(job.events_sent for job in running)

    def _has_room(self) -> bool:
        return len(self._queue) < self._max_queued

    def _busy(self) -> bool:
        return bool(self._queue or self._running)

    def _count(self, outcome: Outcome) -> None:
        self._aborted.extend(outcome.aborted)
        self._not_aborted.extend(outcome.not_aborted)
        stats = self.stats
        stats.imports_started += len(outcome.imports)
        if outcome.imports:
            stats.events_settled += outcome.batch.events
            stats.wire_bytes += outcome.batch.wire_bytes * len(outcome.imports)
        if outcome.error is None and outcome.result is not None:
            stats.imports_done += 1
            stats.events_imported += outcome.result.events_successfully_imported
            stats.events_failed += outcome.result.events_failed_to_import

    # ----- the slots' side -----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._stopped)
                if not self._queue:
                    return
                job = self._queue.popleft()
                self._running.append(job)
                self._cond.notify_all()  # a queue place is free: wake a sync waiting for room
            try:
                result: object = job.run()
            except BaseException as error:  # a bug in the job: handed back as its result
                result = error
            with self._cond:
                self._running.remove(job)
                self._ended.append((job, result))
                self._cond.notify_all()

    # ----- stopping ------------------------------------------------------------------------------

    def stop(self) -> int:
        """No new job starts (queued batches are dropped; returns how many); running jobs go on to their end."""
        with self._cond:
            self._stopped = True
            dropped = len(self._queue)
            self._queue.clear()
            self._cond.notify_all()
            return dropped

    def close(self) -> None:
        """The sync is over: no job starts, and the status poller stops. (A sync closes with imports still running
        only once they are cancelled: their jobs do not wait for the poller any more.)"""
        self.stop()
        if self._poller is not None:
            self._poller.stop()

    def cancel(self, *, seconds: float) -> CancelReport:
        """Abort every import of this sync that is still running: in parallel, within `seconds` in all.

        Jobs that are uploading get the same time for their answer; each aborts the import its upload
        created (see `ImportJob._upload`). Nothing here raises: the sync is stopping anyway, and a re-run
        from the last state re-sends what was not imported.
        """
        self._cancelled.set()
        self.stop()
        deadline = self._clock() + seconds
        # Each job wakes up and aborts its own import; what is still running after half the time is a job
        # stuck in a call to Scarf, whose import is aborted from here instead, by the job's own abort.
        self._join(seconds / 2)
        with self._cond:
            stuck = [job for job in self._running if job.phase is Phase.IMPORTING and job.import_id
                     and not job.aborting]
        threads = [threading.Thread(target=job.abort, daemon=True, name=f"scarf-abort-{job.import_id}")
                   for job in stuck]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - self._clock()))
        self._join(max(0.0, deadline - self._clock()))
        outcomes = self.take_finished()
        aborted, not_aborted = list(self._aborted), list(self._not_aborted)  # also those of outcomes taken earlier
        with self._cond:
            running = list(self._running)
        for job in running:  # still stuck: in a call to Scarf, or in its own abort
            import_id = job.import_id
            if job.phase is not Phase.IMPORTING or not import_id or import_id in aborted:
                continue
            if import_id in job.aborted:
                aborted.append(import_id)
            else:
                why = dict(job.not_aborted).get(import_id) or f"no answer within {seconds:g} s"
                not_aborted.append((import_id, why))
        unanswered = sum(1 for job in running if job.phase is Phase.UPLOADING)
        return CancelReport(aborted=tuple(aborted), not_aborted=tuple(not_aborted), unanswered_uploads=unanswered,
                            outcomes=tuple(outcomes))

    def _join(self, timeout: float) -> bool:
        """Wait (at most `timeout` seconds in all) for the running jobs after `stop()`; True if all ended."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout)


def _crashed(job: ImportJob, error: object) -> Outcome:
    """A job that raised instead of returning an outcome: a bug in the connector, reported as such."""
    name = type(error).__name__
    return Outcome(batch=job.batch, phase=Phase.FAILED, error=ScarfError(
        f"An import slot failed unexpectedly ({name}) while importing batch {job.batch.batch_id}. Re-run the "
        "sync; it resumes from the last saved state. Please report this with the sync's logs.",
        internal=repr(error), cause=error if isinstance(error, BaseException) else None))
