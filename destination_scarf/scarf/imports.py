"""The import pipeline: closed batches become import jobs (`import_job.py`) run by a worker pool (`pool.py`).

The main thread never blocks on HTTP: it submits batches (waiting only when too many are queued:
backpressure) and collects the outcomes of finished jobs, which release states. This module adds
what is Scarf-specific around the pool: the counters the logs report, and the way a sync stops:

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from destination_scarf.errors import ScarfError
from destination_scarf.scarf.client import ScarfClient
from destination_scarf.scarf.import_job import ImportJob, JobSettings, Outcome, Phase
from destination_scarf.scarf.pool import WorkerPool
from destination_scarf.sync.batching import Batch, LineOrigin

logger = logging.getLogger("airbyte")


@dataclass(frozen=True)
class CancelReport:
    """What a cancellation did to this sync's imports."""

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
class PipelineStats:
    imports_started: int = 0
    imports_done: int = 0
    events_imported: int = 0
    events_failed: int = 0
    wire_bytes: int = 0
    events_settled: int = 0  # events of uploaded batches whose job has ended


class ImportPipeline:
    """Runs up to `slots` import jobs at once; see the module docstring."""

    def __init__(
        self,
        *,
        client: ScarfClient,
        settings: JobSettings,
        slots: int,
        max_queued: int,
        cancelled: threading.Event,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._client = client
        self._settings = settings
        self._cancelled = cancelled
        self._clock = clock
        self._rand = rand
        self._pool: WorkerPool[ImportJob] = WorkerPool(workers=slots, max_queued=max_queued,
                                                        name="scarf-import-slot")
        self.stats = PipelineStats()

    # ----- running -------------------------------------------------------------------------------

    def submit(self, batch: Batch, *, on_wait: Callable[[], None] = lambda: None) -> None:
        """Queue a closed batch; blocks while the queue is full, calling `on_wait` about every half second."""
        job = ImportJob(batch=batch, settings=self._settings, client=self._client, cancelled=self._cancelled,
                        clock=self._clock, rand=self._rand)
        self._pool.submit(job, on_wait=on_wait)

    def take_finished(self) -> list[Outcome]:
        """Outcomes of the jobs that ended since the last call, in the order they ended."""
        outcomes = []
        for job, result in self._pool.take():
            outcome = result if isinstance(result, Outcome) else _crashed(job, result)
            self._count(outcome)
            outcomes.append(outcome)
        return outcomes

    def wait_for_progress(self, timeout: float) -> None:
        self._pool.wait(timeout)

    @property
    def busy(self) -> bool:
        return self._pool.busy

    @property
    def in_flight(self) -> int:
        return len(self._pool.running())

    @property
    def events_uploaded(self) -> int:
        """Events sent so far: those of ended jobs, plus those of running jobs past their upload."""
        return self.stats.events_settled + sum(job.events_sent for job in self._pool.running())

    def _count(self, outcome: Outcome) -> None:
        stats = self.stats
        stats.imports_started += len(outcome.imports)
        if outcome.imports:
            stats.events_settled += outcome.batch.events
            stats.wire_bytes += outcome.batch.wire_bytes * len(outcome.imports)
        if outcome.error is None and outcome.result is not None:
            stats.imports_done += 1
            stats.events_imported += outcome.result.events_successfully_imported
            stats.events_failed += outcome.result.events_failed_to_import

    # ----- stopping ------------------------------------------------------------------------------

    def stop(self) -> int:
        """No new job starts (queued batches are dropped; returns how many); running jobs go on to their end."""
        return len(self._pool.stop())

    def cancel(self, *, seconds: float) -> CancelReport:
        """Abort every import of this sync that is still running: in parallel, within `seconds` in all.

        Jobs that are uploading get the same time for their answer; each aborts the import its upload
        created (see `ImportJob._upload`). Nothing here raises: the sync is stopping anyway, and a re-run
        from the last state re-sends what was not imported.
        """
        self._cancelled.set()
        self._pool.stop()
        deadline = self._clock() + seconds
        # Each job wakes up and aborts its own import; what is still running after half the time is a job
        # stuck in a call to Scarf, whose import is aborted from here instead.
        self._pool.join(seconds / 2)
        stuck = [job.import_id for job in self._pool.running()
                 if job.phase is Phase.IMPORTING and job.import_id and not job.aborting]
        results: dict[str, str | None] = {}
        threads = [threading.Thread(target=self._abort, args=(import_id, results), daemon=True,
                                    name=f"scarf-abort-{import_id[:8]}") for import_id in stuck]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(max(0.0, deadline - self._clock()))
        self._pool.join(max(0.0, deadline - self._clock()))
        aborted: list[str] = []
        not_aborted: list[tuple[str, str]] = []
        outcomes = self.take_finished()
        for outcome in outcomes:
            aborted.extend(outcome.aborted)
            not_aborted.extend(outcome.not_aborted)
        for job in self._pool.running():  # still stuck: in a call to Scarf, or in its own abort
            import_id = job.import_id
            if job.phase is not Phase.IMPORTING or not import_id or import_id in aborted:
                continue
            if import_id in results and results[import_id] is None:
                aborted.append(import_id)
            else:
                not_aborted.append((import_id, results.get(import_id) or f"no answer within {seconds:g} s"))
        unanswered = sum(1 for job in self._pool.running() if job.phase is Phase.UPLOADING)
        return CancelReport(aborted=tuple(aborted), not_aborted=tuple(not_aborted), unanswered_uploads=unanswered,
                            outcomes=tuple(outcomes))

    def _abort(self, import_id: str, results: dict[str, str | None]) -> None:
        try:
            self._client.abort_import(import_id, budget_seconds=self._settings.abort_budget_seconds)
            results[import_id] = None
        except ScarfError as error:
            results[import_id] = error.message[:160]


def _crashed(job: ImportJob, error: object) -> Outcome:
    """A job that raised instead of returning an outcome: a bug in the connector, reported as such."""
    name = type(error).__name__
    return Outcome(batch=job.batch, phase=Phase.FAILED, error=ScarfError(
        f"An import slot failed unexpectedly ({name}) while importing batch {job.batch.batch_id}. Re-run the "
        "sync; it resumes from the last saved state. Please report this with the sync's logs.",
        internal=repr(error), cause=error if isinstance(error, BaseException) else None))


def describe_streams(names: Sequence[str]) -> Callable[[LineOrigin], str]:
    """A describer of line origins for messages: stream name, record position, input line."""

    def describe(origin: LineOrigin) -> str:
        return (
            f"stream '{names[origin.stream_index]}' record #{origin.record_position} "
            f"(input line {origin.input_line})"
        )

    return describe
