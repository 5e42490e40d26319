"""The import pipeline: closed batches become Scarf imports, each with a small explicit state, in a few slots.

Each slot is a worker thread that takes one batch through its whole life:

    QUEUED -> UPLOADING (-> WAITING_FOR_SLOT on 422, with backoff) -> IMPORTING (polled)
           -> SETTLING (read the log of failed events) -> DONE
    any state -> FAILED (a fatal error for the sync) or CANCELLED (the sync is stopping)

An import `aborted` by someone else is re-uploaded once when the events carry `$unique_id` (a re-sent
event overrides itself), then the sync fails. The main thread never blocks on HTTP: it submits batches
(waiting only when too many are queued: backpressure) and collects finished jobs to release states.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable, Sequence

from destination_scarf.batching import Batch, LineOrigin
from destination_scarf.client import EventImport, ScarfClient
from destination_scarf.config import Target
from destination_scarf.errors import ImportFailed, InvalidInput, ScarfError, ScarfTransientError, TooManyActiveImports

logger = logging.getLogger("airbyte")

#: How many failed lines to name in a message; the rest are counted.
_SAMPLES = 5


class JobState(enum.Enum):
    QUEUED = "queued"
    UPLOADING = "uploading"
    WAITING_FOR_SLOT = "waiting_for_slot"
    IMPORTING = "importing"
    SETTLING = "settling"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, kw_only=True)
class PollPolicy:
    """Adaptive polling: quick at first, then a fraction of the import's age, up to a cap.

    Short imports are noticed quickly (which keeps slots busy and states flowing); long ones are
    not polled more often than they deserve. An import is seen done at most ~8% of its age late,
    which bounds what polling costs the pipeline; a 10-minute import takes about 120 polls.
    When the import reports progress (processed events growing), the next poll is brought forward
    to when the import should finish at its current pace, so a slot is not left idle waiting for
    a poll; it is never later than the age-based interval.
    """

    initial_seconds: float = 0.1
    age_fraction: float = 0.08
    max_seconds: float = 10.0

    def interval(self, age_seconds: float, *, done_fraction: float | None = None) -> float:
        interval = min(self.max_seconds, max(self.initial_seconds, age_seconds * self.age_fraction))
        if done_fraction is not None and 0.0 < done_fraction < 1.0:
            expected_rest = age_seconds * (1.0 - done_fraction) / done_fraction
            interval = min(interval, max(self.initial_seconds, expected_rest))
        return interval


@dataclass(frozen=True, kw_only=True)
class SlotWaitPolicy:
    """Backoff with full jitter while all the account's import slots are busy (HTTP 422)."""

    initial_seconds: float = 2.0
    factor: float = 2.0
    max_seconds: float = 60.0

    def wait(self, attempt: int, rand: Callable[[], float]) -> float:
        ceiling = min(self.max_seconds, self.initial_seconds * self.factor ** (attempt - 1))
        return ceiling * (0.5 + rand() / 2)


@dataclass(frozen=True)
class FailedLine:
    """An event Scarf reported as failed, traced back to its record."""

    kind: str  # the log entry's type, e.g. failed-to-decode, artifact-not-found
    message: str
    origin: LineOrigin | None


@dataclass(eq=False)
class ImportJob:
    batch: Batch
    state: JobState = JobState.QUEUED
    import_id: str | None = None
    uploads: int = 0
    result: EventImport | None = None
    failed_lines: list[FailedLine] = field(default_factory=list)
    #: Failed events the log did not trace to a line (counted, not attributable to a record).
    unattributed_failures: int = 0


class ImportPipeline:
    """Runs up to `slots` imports at once; see the module docstring for a job's life."""

    def __init__(
        self,
        *,
        client: ScarfClient,
        target: Target,
        slots: int,
        max_queued: int,
        import_timeout_seconds: float,
        slot_wait_seconds: float,
        safe_to_resend: bool,
        on_failed_events: str,
        describe_origin: Callable[[LineOrigin], str],
        poll: PollPolicy = PollPolicy(),
        slot_wait: SlotWaitPolicy = SlotWaitPolicy(),
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._client = client
        self._target = target
        self._max_queued = max_queued
        self._import_timeout = import_timeout_seconds
        self._slot_wait_seconds = slot_wait_seconds
        self._safe_to_resend = safe_to_resend
        self._on_failed_events = on_failed_events
        self._describe = describe_origin
        self._poll = poll
        self._slot_wait = slot_wait
        self._clock = clock
        self._rand = rand
        self._lock = threading.Condition()
        self._queue: deque[ImportJob] = deque()
        self._finished: deque[ImportJob] = deque()
        self._active: set[ImportJob] = set()
        self._fatal: BaseException | None = None
        self._stopping = threading.Event()
        self._aborted_after_upload: list[str] = []
        self.imports_started = 0
        self.imports_done = 0
        self.events_uploaded = 0
        self.events_imported = 0
        self.events_failed = 0
        self.wire_bytes = 0
        self._workers = [
            threading.Thread(target=self._work, name=f"scarf-import-slot-{n}", daemon=True) for n in range(slots)
        ]
        for worker in self._workers:
            worker.start()

    # ----- main-thread side ------------------------------------------------------------------------

    def submit(self, batch: Batch, *, on_wait: Callable[[], None] = lambda: None) -> None:
        """Queue a closed batch; while `max_queued` batches already wait for a slot, block (backpressure).

        `on_wait` runs about every half second while blocked, so the caller can echo states and log.
        """
        job = ImportJob(batch=batch)
        with self._lock:
            while True:
                self._raise_fatal()
                if len(self._queue) < self._max_queued:
                    break
                self._lock.wait(0.5)
                self._lock.release()
                try:
                    on_wait()
                finally:
                    self._lock.acquire()
            self._queue.append(job)
            self._lock.notify_all()

    def take_finished(self) -> list[ImportJob]:
        """Jobs that reached DONE since the last call (their states may now be released)."""
        with self._lock:
            self._raise_fatal()
            jobs = list(self._finished)
            self._finished.clear()
            return jobs

    def wait_for_progress(self, timeout: float) -> None:
        """Block until a job finishes, a fatal error occurs, or `timeout` passes."""
        with self._lock:
            if not self._finished and self._fatal is None:
                self._lock.wait(timeout)
            self._raise_fatal()

    @property
    def busy(self) -> bool:
        """True while any batch is queued or importing."""
        with self._lock:
            return bool(self._queue or self._active)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._active)

    def abort_all(self, *, grace_seconds: float = 10.0) -> list[str]:
        """Stop the workers and abort every import of this sync that is still importing.

        Uploads already under way get `grace_seconds` to return, so that the worker aborts the import
        its POST creates (otherwise that import would run on after the connector exits). Returns the
        aborted import ids. Failures to abort are logged, not raised: the sync is stopping anyway,
        and a re-run from the last state re-sends those events.
        """
        self._stopping.set()
        with self._lock:
            self._queue.clear()
            active = [job for job in self._active if job.import_id and job.state is JobState.IMPORTING]
            self._lock.notify_all()
        aborted = []
        for job in active:
            try:
                self._client.abort_import(job.import_id)
                aborted.append(job.import_id)
            except ScarfError as error:
                logger.warning("Could not abort import %s: %s", job.import_id, error)
        deadline = self._clock() + grace_seconds
        for worker in self._workers:
            worker.join(max(0.0, deadline - self._clock()))
        return aborted + self._aborted_after_upload

    def close(self) -> None:
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    # ----- worker side -----------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping.is_set():
                    self._lock.wait()
                if self._stopping.is_set():
                    return
                job = self._queue.popleft()
                self._active.add(job)
                self._lock.notify_all()  # a queue place is free: wake a blocked submit
            try:
                self._run(job)
            except BaseException as error:  # noqa: BLE001 - any failure of a slot is fatal for the sync
                job.state = JobState.CANCELLED if self._stopping.is_set() else JobState.FAILED
                with self._lock:
                    self._active.discard(job)
                    if self._fatal is None and not self._stopping.is_set():
                        self._fatal = error if isinstance(error, ScarfError) else ScarfError(
                            f"An import slot failed unexpectedly: {type(error).__name__}. Re-run the sync; "
                            "it resumes from the last saved state.", internal=repr(error), cause=error)
                    self._lock.notify_all()
                return
            with self._lock:
                self._active.discard(job)
                if job.state is JobState.DONE:
                    self._finished.append(job)
                self._lock.notify_all()

    def _run(self, job: ImportJob) -> None:
        while not self._stopping.is_set():
            final = self._poll_until_final(job, self._upload(job))
            if final is None:
                return
            if final.status == "done":
                self._settle(job, final)
                return
            self._handle_external_abort(job, final)

    def _sleep(self, seconds: float) -> bool:
        """Wait; True when the sync is stopping (so the caller gives up at once)."""
        return self._stopping.wait(seconds)

    def _upload(self, job: ImportJob) -> EventImport:
        job.state = JobState.UPLOADING
        started = self._clock()
        attempt = 0
        while True:
            try:
                created = self._client.import_events(
                    target=self._target,
                    body=job.batch.path,
                    safe_to_resend=self._safe_to_resend,
                    what=f"batch {job.batch.batch_id} ({job.batch.events} events)",
                )
                break
            except TooManyActiveImports:
                attempt += 1
                waited = self._clock() - started
                if waited >= self._slot_wait_seconds:
                    raise ScarfTransientError(
                        f"All 15 import slots of the Scarf account stayed busy for {_duration(waited)} "
                        f"(HTTP 422 'too many active imports'), so batch {job.batch.batch_id} could not be "
                        "uploaded. Other tools or syncs may be using the slots: wait for them, lower "
                        "max_concurrent_imports, or raise slot_wait_minutes, then re-run the sync."
                    ) from None
                job.state = JobState.WAITING_FOR_SLOT
                wait = min(self._slot_wait.wait(attempt, self._rand), self._slot_wait_seconds - waited + 0.01)
                logger.info("All Scarf import slots are busy (HTTP 422); batch %d waits %.1f s for a slot",
                            job.batch.batch_id, wait)
                if self._sleep(wait):
                    raise
        job.uploads += 1
        job.import_id = created.id
        job.state = JobState.IMPORTING
        with self._lock:
            self.imports_started += 1
            self.events_uploaded += job.batch.events
            self.wire_bytes += job.batch.wire_bytes
        if self._stopping.is_set():
            # The sync was cancelled while this POST was on its way: the new import must not run on.
            self._client.abort_import(created.id)
            self._aborted_after_upload.append(created.id)
        logger.info("Batch %d (%d events) is import %s", job.batch.batch_id, job.batch.events, created.id)
        return created

    def _poll_until_final(self, job: ImportJob, current: EventImport) -> EventImport | None:
        """Poll the import by id until `done` or `aborted`; None when the sync is stopping."""
        started = self._clock()
        while not current.is_final:
            age = self._clock() - started
            if age >= self._import_timeout:
                self._client.abort_import(current.id)
                raise ImportFailed(
                    f"Import {current.id} (batch {job.batch.batch_id}, {job.batch.events} events) was still "
                    f"'{current.status}' after {_duration(age)}, so it was aborted and the sync stops. "
                    "Scarf may be slow right now: raise import_timeout_minutes or lower batch_max_events, then "
                    "re-run the sync (it resumes from the last saved state)."
                )
            if self._sleep(self._poll.interval(age, done_fraction=_done_fraction(current))):
                return None
            current = self._client.get_import(current.id)
        return current

    def _handle_external_abort(self, job: ImportJob, final: EventImport) -> None:
        """Someone aborted our import: re-upload once if that cannot double-count, else fail."""
        if self._stopping.is_set():
            return
        if self._safe_to_resend and job.uploads < 2:
            logger.warning(
                "Import %s (batch %d) was aborted outside this sync; uploading the batch again once "
                "(its events carry $unique_id, so nothing is counted twice).", final.id, job.batch.batch_id)
            return
        why = ("it was aborted again after one re-upload" if self._safe_to_resend else
               "its events carry no $unique_id, so re-sending could count the already processed ones twice")
        raise ImportFailed(
            f"Import {final.id} (batch {job.batch.batch_id}) was aborted outside this sync, and {why}. "
            "Check who aborts imports in the Scarf account, then re-run the sync (it resumes from the last "
            "saved state)."
        )

    def _settle(self, job: ImportJob, final: EventImport) -> None:
        """A done import: trace failed events to records, apply `on_failed_events`, free the spool file."""
        job.state = JobState.SETTLING
        job.result = final
        if final.events_failed_to_import > 0:
            job.failed_lines = self._failed_lines(job, final)
            job.unattributed_failures = max(0, final.events_failed_to_import - len(job.failed_lines))
            summary = self._summarize(job, final)
            if self._on_failed_events == "fail":
                raise InvalidInput(
                    f"{summary} No state past these records was saved. Fix the records (or the mapping) and "
                    "re-run, or set on_failed_events to warn to count them as rejected and go on."
                )
            logger.warning("%s Counted as rejected (on_failed_events: warn).", summary)
        job.batch.delete_spool()
        with self._lock:
            self.imports_done += 1
            self.events_imported += final.events_successfully_imported
            self.events_failed += final.events_failed_to_import
        job.state = JobState.DONE

    def _failed_lines(self, job: ImportJob, final: EventImport) -> list[FailedLine]:
        entries = self._client.import_log(final.id)
        lines: dict[int, FailedLine] = {}
        for entry in entries:
            line = entry.get("line")
            if entry.get("class") != "error" or not isinstance(line, int) or line in lines:
                continue
            lines[line] = FailedLine(
                kind=str(entry.get("type") or "error"),
                message=_reason_without_values(entry.get("human_friendly_message")),
                origin=job.batch.origin(line),
            )
        return list(lines.values())

    def _summarize(self, job: ImportJob, final: EventImport) -> str:
        by_kind = Counter(failed.kind for failed in job.failed_lines)
        kinds = ", ".join(f"{kind}: {count}" for kind, count in by_kind.most_common())
        samples = "; ".join(self._describe_failed(failed) for failed in job.failed_lines[:_SAMPLES])
        more = len(job.failed_lines) - _SAMPLES
        text = (
            f"Scarf could not import {final.events_failed_to_import} of {final.events_total} events of import "
            f"{final.id} (batch {job.batch.batch_id})"
            + (f" [{kinds}]" if kinds else "")
            + (f": {samples}" if samples else "")
            + (f"; and {more} more" if more > 0 else "")
            + "."
        )
        if job.unattributed_failures:
            text += f" {job.unattributed_failures} failed event(s) were not listed in the import's log."
        return text

    def _describe_failed(self, failed: FailedLine) -> str:
        where = self._describe(failed.origin) if failed.origin else "a line outside the batch"
        reason = f" ({failed.message})" if failed.message else ""
        return f"{where}: {failed.kind}{reason}"


def _reason_without_values(message: object) -> str:
    """Scarf's message for a failed line, cut where it may start quoting the event's data.

    Scarf's messages are undocumented; its own examples read "Package not found: <id>", a label, a colon,
    then the value. Sync logs must not carry record values (IP addresses, user agents), so only the label is
    kept. `destination-scarf import-log` shows the full messages to an operator who asks for them.
    """
    return str(message or "").split(":", 1)[0].strip()[:120]


def _done_fraction(current: EventImport) -> float | None:
    """How much of an import Scarf has processed, if its counts say so (they may only appear at the end)."""
    if current.events_total <= 0:
        return None
    return (current.events_successfully_imported + current.events_failed_to_import) / current.events_total


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.0f} minutes"


def describe_streams(names: Sequence[str]) -> Callable[[LineOrigin], str]:
    """A describer of line origins for messages: stream name, record position, input line."""

    def describe(origin: LineOrigin) -> str:
        return (
            f"stream '{names[origin.stream_index]}' record #{origin.record_position} "
            f"(input line {origin.input_line})"
        )

    return describe
