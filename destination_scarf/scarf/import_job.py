"""One batch's life as a Scarf import: what a batch is, what "done" means for it, and a small explicit state machine.

    UPLOADING -(422)-> WAITING_FOR_SLOT -> UPLOADING -> IMPORTING (polled) -> SETTLING -> DONE
                                             ^              |
                                             +-- aborted outside the sync (re-upload once, if safe)
    any phase -> FAILED (the sync must stop) or CANCELLED (the sync is stopping)

A `Batch` is what the sync hands over: its gzip NDJSON body in a spool file, and where each line came from
(stream, record position, input line), so that a failed line in Scarf's log is traced back to a record the
user can find. `ImportJob.run()` takes the batch through its whole life and returns an `Outcome`; it never
raises for what Scarf or the network do, and it owns no thread: the import slots (`imports.py`) run it, and
tests run it directly with a real client against the emulator and an injected clock. Every wait in it is
bounded and wakes up at once when the sync is cancelled.

What "done" means, the core of "nothing lost" (`settle`): Scarf reports the import `done` AND its counts
account for every event of the batch. Events Scarf failed are traced back to their records through the
import's log; events it does not account for at all (a short count) are failures whose lines are unknown.
Both follow `on_failed_events`: `fail` stops the sync, `warn` counts them as rejected.
"""

from __future__ import annotations

import enum
import gzip
import logging
import random
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from destination_scarf.config import Target
from destination_scarf.errors import (
    FailedEvents,
    ImportFailed,
    ImportIncomplete,
    ScarfError,
    ScarfNotFound,
    ScarfTransientError,
    SyncCancelled,
    TooManyActiveImports,
)
from destination_scarf.options import SCARF_MAX_ACTIVE_IMPORTS, OnFailedEvents, StatusPolling
from destination_scarf.scarf.client import EventImport, ScarfClient
from destination_scarf.scarf.polling import Cadence, PollPolicy, StatusPoller
from destination_scarf.scarf.retry import SlotWaitPolicy, backoff_delay, duration_text

logger = logging.getLogger("airbyte")


# ----- the batch ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineOrigin:
    """Where an event line of a batch came from."""

    stream_index: int
    record_position: int  # 1-based position of the record within its stream, in this sync
    input_line: int  # 1-based line of the connector's input


def describe_record(label: str, record_position: int, input_line: int) -> str:
    """How messages name a record: by stream, position and input line, never by its values."""
    return f"stream '{label}' record #{record_position} (input line {input_line})"


@dataclass(eq=False)
class Batch:
    """A closed batch, ready to become an import. Its spool file is deleted once the import is settled."""

    batch_id: int
    path: Path
    events: int
    raw_bytes: int
    wire_bytes: int
    streams: frozenset[int]
    stream_indexes: array
    record_positions: array
    input_lines: array
    #: The sync's stream labels (`namespace.name`), by stream index: for messages that name a record.
    stream_labels: Sequence[str]
    #: The records' input lines, line for line with the events (gzip), when they are kept for rejected records.
    messages_path: Path | None = None

    def origin(self, line: int) -> LineOrigin | None:
        """The origin of 1-based body line `line`, or None for a line number outside the batch."""
        if not 1 <= line <= self.events:
            return None
        index = line - 1
        return LineOrigin(
            stream_index=self.stream_indexes[index],
            record_position=self.record_positions[index],
            input_line=self.input_lines[index],
        )

    def describe(self, origin: LineOrigin) -> str:
        return describe_record(self.stream_labels[origin.stream_index], origin.record_position, origin.input_line)

    def read_lines(self, numbers: set[int]) -> dict[int, bytes]:
        """Lines `numbers` (1-based) of the batch as sent, read back from the spool file (for failed events)."""
        return _read_gzip_lines(self.path, numbers)

    def read_messages(self, numbers: set[int]) -> dict[int, bytes]:
        """The input lines of the records of events `numbers` (1-based), when the batch kept them (else none)."""
        return {} if self.messages_path is None else _read_gzip_lines(self.messages_path, numbers)

    def delete_spool(self) -> None:
        self.path.unlink(missing_ok=True)
        if self.messages_path is not None:
            self.messages_path.unlink(missing_ok=True)


def _read_gzip_lines(path: Path, numbers: set[int]) -> dict[int, bytes]:
    """Lines `numbers` (1-based) of a gzip file of lines, read as a stream: memory holds only the lines asked for."""
    found: dict[int, bytes] = {}
    if not numbers:
        return found
    with gzip.open(path, "rb") as body:
        for number, line in enumerate(body, start=1):
            if number in numbers:
                found[number] = line.rstrip(b"\n")
                if len(found) == len(numbers):
                    break
    return found


class Phase(enum.Enum):
    UPLOADING = "uploading"
    WAITING_FOR_SLOT = "waiting_for_slot"
    IMPORTING = "importing"
    SETTLING = "settling"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, kw_only=True)
class JobSettings:
    """What every import job of a sync shares: the target, the policies and the time budgets."""

    target: Target
    safe_to_resend: bool  # every event carries a $unique_id, so re-sending overrides instead of doubling
    on_failed_events: OnFailedEvents
    import_timeout_seconds: float
    slot_wait_seconds: float
    upload_budget_seconds: float
    status_polling: StatusPolling = "list"
    #: How an import is read by id on its own cadence (`status_polling: by_id`, or a job without a poller).
    poll: PollPolicy = PollPolicy()
    #: When the status poller looks at the imports (list mode).
    cadence: Cadence = Cadence()
    slot_wait: SlotWaitPolicy = SlotWaitPolicy()
    #: A 404 on an import this sync has just created is taken for Scarf not showing it yet, for this long.
    not_found_grace_seconds: float = 60.0
    #: Each abort gets this long; aborts happen on the way out, where time is short.
    abort_budget_seconds: float = 5.0


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """How a job ended. `error` is None when the batch is settled: done, with failures handled per policy."""

    batch: Batch
    phase: Phase
    result: EventImport | None = None
    failed_lines: tuple[FailedLine, ...] = ()
    #: Failed or missing events that cannot be traced to a record (not listed in the log, or a short count).
    unattributed: int = 0
    error: ScarfError | None = None
    imports: tuple[str, ...] = ()  # every import this job created, in order
    aborted: tuple[str, ...] = ()  # the ones the job itself aborted (a timeout, or the sync's cancellation)
    not_aborted: tuple[tuple[str, str], ...] = ()  # (import id, why) for aborts that failed


# ----- what "done" means: settling a done import --------------------------------------------------------


#: How many failed lines to name in a message; the rest are counted.
_SAMPLES = 5


@dataclass(frozen=True)
class FailedLine:
    """An event Scarf reported as failed, traced back to its record."""

    kind: str  # the log entry's type, e.g. failed-to-decode, artifact-not-found
    message: str
    origin: LineOrigin | None
    line: int = 0  # the 1-based line of the batch


@dataclass(frozen=True)
class Settlement:
    """A done import's failures: the ones traced to records, and how many could not be (`unattributed`)."""

    failed_lines: tuple[FailedLine, ...]
    unattributed: int  # failed events missing from the log, plus events Scarf's counts leave out
    problems: str  # what went wrong, for a message; "" when every event was imported
    short: bool  # whether Scarf's counts leave events out

    def error(self) -> ScarfError:
        """The error under `on_failed_events: fail`: the records' fault (config), or Scarf's (transient)."""
        error_type = FailedEvents if self.failed_lines and not self.short else ImportIncomplete
        return error_type(
            f"{self.problems} No state past these records was saved. "
            + ("Fix the records (or the mapping) and re-run, " if self.failed_lines else "Re-run the sync, ")
            + "or set on_failed_events to warn to count such events as rejected and go on.")


def settle(final: EventImport, batch: Batch, *, read_log: Callable[[], list[Mapping[str, Any]]]) -> Settlement:
    """Compare Scarf's counts with the batch, and read the log (only when events failed) to trace them."""
    failed_lines = tuple(_failed_lines(read_log(), batch)) if final.events_failed_to_import > 0 else ()
    unlisted = max(0, final.events_failed_to_import - len(failed_lines))
    missing = shortfall(final, batch)
    problems = _describe(final, batch, failed_lines, unlisted, missing)
    return Settlement(failed_lines=failed_lines, unattributed=unlisted + missing, problems=problems,
                      short=missing > 0)


def shortfall(final: EventImport, batch: Batch) -> int:
    """Events of the batch that Scarf's counts do not account for (neither imported nor failed)."""
    counted = min(final.events_total, final.events_successfully_imported + final.events_failed_to_import)
    return max(0, batch.events - counted)


def _failed_lines(entries: list[Mapping[str, Any]], batch: Batch) -> list[FailedLine]:
    lines: dict[int, FailedLine] = {}
    for entry in entries:
        line = entry.get("line")
        if entry.get("class") != "error" or type(line) is not int or line in lines:
            continue
        lines[line] = FailedLine(
            kind=str(entry.get("type") or "error")[:60],
            message=_reason_without_values(entry.get("human_friendly_message")),
            origin=batch.origin(line),
            line=line,
        )
    return list(lines.values())


def _describe(final: EventImport, batch: Batch, failed_lines: tuple[FailedLine, ...], unlisted: int,
              missing: int) -> str:
    parts = []
    if final.events_failed_to_import > 0:
        by_kind = Counter(failed.kind for failed in failed_lines)
        kinds = ", ".join(f"{kind}: {count}" for kind, count in by_kind.most_common())
        samples = "; ".join(_describe_failed(failed, batch) for failed in failed_lines[:_SAMPLES])
        more = len(failed_lines) - _SAMPLES
        parts.append(
            f"Scarf could not import {final.events_failed_to_import} of {final.events_total} events of import "
            f"{final.id} (batch {batch.batch_id})"
            + (f" [{kinds}]" if kinds else "")
            + (f": {samples}" if samples else "")
            + (f"; and {more} more" if more > 0 else "")
            + ".")
        if unlisted:
            parts.append(f"{unlisted} failed event(s) were not listed in the import's log.")
    if missing:
        parts.append(
            f"Scarf counted {batch.events - missing} of {batch.events} events of import {final.id} (batch "
            f"{batch.batch_id}) although it reports the import done (events_total {final.events_total}, "
            f"imported {final.events_successfully_imported}, failed {final.events_failed_to_import}): "
            f"{missing} event(s) are not accounted for.")
    return " ".join(parts)


def _describe_failed(failed: FailedLine, batch: Batch) -> str:
    where = batch.describe(failed.origin) if failed.origin else "a line outside the batch"
    reason = f" ({failed.message})" if failed.message else ""
    return f"{where}: {failed.kind}{reason}"


def _reason_without_values(message: object) -> str:
    """Scarf's message for a failed line, cut where it may start quoting the event's data.

    Scarf's messages are undocumented; its own examples read "Package not found: <id>", a label, a colon,
    then the value. Sync logs must not carry record values (IP addresses, user agents), so only the label is
    kept. `destination-scarf import-log` shows the full messages to an operator who asks for them.
    """
    return str(message or "").split(":", 1)[0].strip()[:120]


# ----- the job -----------------------------------------------------------------------------------------


class _Stop(Exception):
    """Internal: end `run()` with this outcome's phase and error."""

    def __init__(self, phase: Phase, error: ScarfError) -> None:
        super().__init__(error.message)
        self.phase, self.error = phase, error


@dataclass(eq=False)
class ImportJob:
    """One batch through its import; create, then `run()` once (on any thread)."""

    batch: Batch
    settings: JobSettings
    client: ScarfClient
    cancelled: threading.Event
    clock: Callable[[], float] = time.monotonic
    rand: Callable[[], float] = random.random
    #: The sync's status poller (list mode); None: the import is read by id on its own (`settings.poll`).
    poller: StatusPoller | None = None
    #: How the job waits: True when the sync was cancelled meanwhile. Default: `cancelled.wait`, which wakes up
    #: at once on cancellation; tests pass one that advances their clock instead.
    wait: Callable[[float], bool] | None = None
    phase: Phase = Phase.UPLOADING
    import_id: str | None = None  # the import being polled, once Scarf has created it
    aborting: bool = False  # an abort of `import_id` is under way (so nobody else needs to send one)
    aborted: list[str] = field(default_factory=list)  # the imports this job aborted
    not_aborted: list[tuple[str, str]] = field(default_factory=list)  # (import id, why) for aborts that failed
    _imports: list[str] = field(default_factory=list)

    @property
    def events_sent(self) -> int:
        """The batch's events once they are uploaded (for progress logs), else 0."""
        return self.batch.events if self._imports else 0

    def run(self) -> Outcome:
        try:
            while True:
                created = self._upload()
                final = self._wait_until_final(created)
                if final.outcome == "done":
                    return self._settle(final)
                self._after_abort_or_failure(final)
        except _Stop as stop:
            self.phase = stop.phase
            return self._outcome(error=stop.error)
        except SyncCancelled as cancelled:
            return self._after_cancel(cancelled)
        except ScarfError as error:
            self.phase = Phase.FAILED
            return self._outcome(error=error)

    def _after_cancel(self, cancelled: SyncCancelled) -> Outcome:
        """The sync is stopping: an import Scarf has finished meanwhile still counts; any other is aborted.

        One last look (bounded, not cancellable) keeps the states of imports that are done but not yet
        polled; each job aborts its own import, so the aborts of a sync run in parallel.
        """
        import_id = self.import_id
        if self.phase is Phase.IMPORTING and import_id and import_id not in self.aborted:
            try:
                final = self.client.get_import(import_id, cancellable=False,
                                               deadline=self.clock() + self.settings.abort_budget_seconds / 2)
            except ScarfError:
                final = None
            if final is not None and final.outcome == "done" and not final.events_failed_to_import \
                    and not shortfall(final, self.batch):
                self.phase = Phase.DONE
                return self._outcome(result=final)
            self.abort()
        self.phase = Phase.CANCELLED
        return self._outcome(error=cancelled)

    def _outcome(self, **kwargs: object) -> Outcome:
        return Outcome(batch=self.batch, phase=self.phase, imports=tuple(self._imports),
                       aborted=tuple(self.aborted), not_aborted=tuple(self.not_aborted),
                       **kwargs)  # type: ignore[arg-type]

    # ----- phases --------------------------------------------------------------------------------

    def _upload(self) -> EventImport:
        """UPLOADING, with WAITING_FOR_SLOT while the account's 15 slots are busy (HTTP 422)."""
        started = self.clock()
        attempt = 0
        while True:
            self.phase = Phase.UPLOADING
            SyncCancelled.check(self.cancelled)
            try:
                created = self.client.import_events(
                    target=self.settings.target, body=self.batch.path, safe_to_resend=self.settings.safe_to_resend,
                    what=f"batch {self.batch.batch_id} ({self.batch.events} events)",
                    budget_seconds=self.settings.upload_budget_seconds)
                break
            except TooManyActiveImports:
                attempt += 1
                self._wait_for_slot(attempt, waited=self.clock() - started)
        self._imports.append(created.id)
        self.import_id = created.id
        self.phase = Phase.IMPORTING
        logger.info("Batch %d (%d events) is import %s", self.batch.batch_id, self.batch.events, created.id)
        if self.cancelled.is_set():
            # Cancelled while this POST was on its way: the new import must not run on after the sync.
            raise SyncCancelled(f"The sync was cancelled while import {created.id} was being created.")
        return created

    def _wait_for_slot(self, attempt: int, *, waited: float) -> None:
        limit = self.settings.slot_wait_seconds
        if waited >= limit:
            raise _Stop(Phase.FAILED, ScarfTransientError(
                f"All {SCARF_MAX_ACTIVE_IMPORTS} import slots of the Scarf account stayed busy for "
                f"{duration_text(waited)} (HTTP 422 'too many active imports'), so batch {self.batch.batch_id} could "
                "not be uploaded. Other tools or syncs may be using the slots: wait for them, lower "
                "max_concurrent_imports, or raise slot_wait_minutes, then re-run the sync."))
        self.phase = Phase.WAITING_FOR_SLOT
        wait = min(self.settings.slot_wait.wait(attempt, self.rand), limit - waited + 0.01)
        logger.info("All Scarf import slots are busy (HTTP 422); batch %d waits %.1f s for a slot",
                    self.batch.batch_id, wait)
        self._sleep(wait)

    def _wait_until_final(self, current: EventImport) -> EventImport:
        """IMPORTING: read by id until Scarf says done, aborted or failed, within the import's deadline: when the
        sync's status poller says the import is due (it has left the imports list), or on its own cadence.

        Reads are idempotent, so API outages are ridden out (the client retries until the deadline) and
        a 404 right after creation is taken for Scarf not showing the import yet.
        """
        started = self.clock()
        timeout = self.settings.import_timeout_seconds
        not_found = 0
        poller = self.poller
        watch = poller.watch(current, events=self.batch.events) if poller is not None else None
        try:
            while not current.is_final:
                age = self.clock() - started
                if age >= timeout:
                    self._timed_out(current, age)
                if poller is None or watch is None:
                    self._sleep(min(self.settings.poll.interval(age, done_fraction=_done_fraction(current)),
                                    timeout - age))
                else:
                    poller.wait(watch, until=started + timeout)
                if self.clock() - started >= timeout:
                    continue
                try:
                    current = self.client.get_import(current.id, deadline=started + timeout)
                    not_found = 0
                except ScarfNotFound:
                    not_found += 1
                    self._after_not_found(current.id, age=self.clock() - started, times=not_found)
                    continue
                except ScarfTransientError as error:
                    if isinstance(error, SyncCancelled):
                        raise
                    self._timed_out(current, self.clock() - started, api_error=error)
                if poller is not None and watch is not None:
                    poller.report(watch, current)
        finally:
            if poller is not None and watch is not None:
                poller.forget(watch)
        return current

    def _timed_out(self, current: EventImport, age: float, *, api_error: ScarfError | None = None) -> None:
        """The import's own deadline (import_timeout_minutes) passed: abort it and stop."""
        self.abort()
        seen = (f"was still '{current.status}' after {duration_text(age)}" if api_error is None else
                f"could not be followed to its end within {duration_text(age)}: {api_error.message}")
        raise _Stop(Phase.FAILED, ImportFailed(
            f"Import {current.id} (batch {self.batch.batch_id}, {self.batch.events} events) {seen} It was aborted "
            "and the sync stops. Scarf may be slow or failing right now: raise import_timeout_minutes or lower "
            "batch_max_events, then re-run the sync (it resumes from the last saved state).",
            internal=api_error.internal_message if api_error else None))

    def _after_not_found(self, import_id: str, *, age: float, times: int) -> None:
        grace = self.settings.not_found_grace_seconds
        if age >= grace:
            raise _Stop(Phase.FAILED, ImportFailed(
                f"Import {import_id} (batch {self.batch.batch_id}), which this sync created "
                f"{duration_text(age)} ago, is not found at Scarf (HTTP 404). Scarf may have lost it: check "
                f"`destination-scarf imports`, then re-run the sync (it resumes from the last saved state)."))
        wait = backoff_delay(times, initial=0.5, factor=2.0, cap=10.0, rand=self.rand, floor=0.5)
        logger.info("Import %s is not visible at Scarf yet (HTTP 404); asking again in %.1f s", import_id, wait)
        self._sleep(min(wait, max(grace - age, 0.01)))

    def _after_abort_or_failure(self, final: EventImport) -> None:
        """An import that ended without `done`: re-upload once after an outside abort if that is safe, else stop."""
        if final.outcome == "failed":
            raise _Stop(Phase.FAILED, ImportFailed(
                f"Scarf reports import {final.id} (batch {self.batch.batch_id}, {self.batch.events} events) as "
                f"'{final.status}': it did not finish, and some of its events may be missing. No state past these "
                f"records was saved. `destination-scarf import-log {final.id}` shows what Scarf logged; re-run the "
                "sync (it resumes from the last saved state)."))
        SyncCancelled.check(self.cancelled)
        if self.settings.safe_to_resend and len(self._imports) < 2:
            logger.warning(
                "Import %s (batch %d) was aborted outside this sync; uploading the batch again once "
                "(its events carry $unique_id, so nothing is counted twice).", final.id, self.batch.batch_id)
            return
        why = ("it was aborted again after one re-upload" if self.settings.safe_to_resend else
               "its events carry no $unique_id, so re-sending could count the already processed ones twice")
        raise _Stop(Phase.FAILED, ImportFailed(
            f"Import {final.id} (batch {self.batch.batch_id}) was aborted outside this sync, and {why}. "
            "Check who aborts imports in the Scarf account, then re-run the sync (it resumes from the last "
            "saved state)."))

    def _settle(self, final: EventImport) -> Outcome:
        """SETTLING: check Scarf's counts, trace failed events to records, apply `on_failed_events`."""
        self.phase = Phase.SETTLING
        # The log is read with the upload's patience: an outage here must not fail a sync whose events are in.
        deadline = self.clock() + self.settings.upload_budget_seconds
        settled = settle(final, self.batch, read_log=lambda: self.client.import_log(
            final.id, max_entries=self.batch.events + 1000, deadline=deadline))
        if settled.problems:
            if self.settings.on_failed_events == "fail":
                raise _Stop(Phase.FAILED, settled.error())
            logger.warning("%s Counted as rejected (on_failed_events: warn).", settled.problems)
        self.phase = Phase.DONE
        return self._outcome(result=final, failed_lines=settled.failed_lines, unattributed=settled.unattributed)

    # ----- waiting and aborting ------------------------------------------------------------------

    def _sleep(self, seconds: float) -> None:
        if (self.wait or self.cancelled.wait)(max(seconds, 0.0)):
            raise SyncCancelled("The sync was cancelled.")

    def abort(self) -> None:
        """Abort the import this job follows. Best effort: a failure to abort is logged and reported (the caller is
        stopping anyway). The job's own thread calls it on a timeout or a cancel; the import slots call it from
        another thread for a job stuck in a call to Scarf while the sync is cancelled."""
        import_id = self.import_id
        if import_id is None:
            return
        self.aborting = True
        try:
            self.client.abort_import(import_id, budget_seconds=self.settings.abort_budget_seconds)
            self.aborted.append(import_id)
        except ScarfError as error:
            logger.warning("Could not abort import %s: %s", import_id, error.message)
            self.not_aborted.append((import_id, error.message[:160]))
        finally:
            self.aborting = False


def _done_fraction(current: EventImport) -> float | None:
    """How much of an import Scarf has processed, if its counts say so (they may only appear at the end)."""
    if current.events_total <= 0:
        return None
    return (current.events_successfully_imported + current.events_failed_to_import) / current.events_total
