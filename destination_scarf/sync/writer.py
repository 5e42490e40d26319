"""The sync loop: input in, events out in batches, states out once their imports are settled.

    for each message the reader yields (reader.py):
        a record   -> its event line (mapping/) goes into the open batch (batches.py), or it is rejected
        a state    -> it waits in the checkpoints (checkpoints.py) behind the batches it depends on
        a full batch is handed over to the import slots (scarf/imports.py); while they are full, the loop
        waits there, echoing the states that become safe meanwhile
    between chunks: an aged batch is handed over, ended imports are settled, and the states they freed
    are yielded

Which states are safe is decided by `Checkpoints` alone; this module only tells it what happened. The
loop runs on the caller's thread; only the imports run on threads of their own.

On every way out that is not the end of the input, the states that are already safe are yielded
first, then the error is raised, so a re-run starts from there:

- bad input under `on_invalid_record: fail`: the records before it are imported first;
- a fatal import error (revoked token, failed import, ...): queued batches are dropped, the running
  imports go on to their end (each within its own deadline);
- cancellation (SIGTERM/SIGINT, or the consumer closing the generator): running imports are aborted,
  within `WriterTuning.shutdown_seconds` in all.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

from destination_scarf.config import ScarfConfig
from destination_scarf.dead_letter import RejectLog
from destination_scarf.errors import InvalidInput, ScarfError, SyncCancelled
from destination_scarf.mapping import EventMapper, InvalidRecord, compile_mapper
from destination_scarf.mapping.artifacts import ArtifactNames
from destination_scarf.scarf.client import ScarfClient
from destination_scarf.scarf.import_job import Batch, JobSettings, Outcome, describe_record
from destination_scarf.scarf.imports import CancelReport, ImportSlots
from destination_scarf.scarf.polling import Cadence, PollPolicy
from destination_scarf.scarf.retry import SlotWaitPolicy
from destination_scarf.sync.batches import BatchBuilder, Spool
from destination_scarf.sync.catalog import StreamIndex, StreamInfo
from destination_scarf.sync.checkpoints import GLOBAL, Checkpoints
from destination_scarf.sync.reader import (
    BadLine,
    InputReader,
    MarkedRecord,
    Message,
    Record,
    State,
    StreamComplete,
    UnknownStream,
)
from destination_scarf.sync.sync_log import SyncLog

logger = logging.getLogger("airbyte")

StateMessage = MutableMapping[str, Any]

#: What to do about a record that cannot become an event, as a sync under `on_invalid_record: fail` says it
#: (and `preview` repeats it, so that both give the same advice).
INVALID_RECORD_HINT = ("Fix the source data or the field mapping, or set on_invalid_record to skip to count such "
                       "records as rejected and go on.")
#: Likewise for an input line that is not a usable Airbyte message.
BAD_LINE_HINT = ("The destination reads one Airbyte message (JSON) per line; check what feeds its standard input, "
                 "or set on_invalid_record to skip.")


@dataclass(frozen=True, kw_only=True)
class WriterTuning:
    """Knobs that are not user options: tests shorten them, the defaults suit real Scarf."""

    progress_interval_seconds: float = 30.0
    idle_tick_seconds: float = 1.0
    poll: PollPolicy = PollPolicy()
    cadence: Cadence = Cadence()
    slot_wait: SlotWaitPolicy = SlotWaitPolicy()
    #: How long a cancelled sync may take to abort its imports and stop, in all.
    shutdown_seconds: float = 8.0
    not_found_grace_seconds: float = 60.0


def compile_mappers(config: ScarfConfig, streams: list[StreamInfo], now: Callable[[], datetime.datetime],
                    names: ArtifactNames | None = None) -> list[EventMapper]:
    """One mapper per stream, in catalog order: what a sync maps with, and what `preview` shows. `names` (the
    owner's packages and tracking pixels, see artifact_names.py) turns names in artifact fields into ids."""
    return [compile_mapper(config=config.mapping, stream=s.name, namespace=s.namespace, primary_key=s.primary_key,
                           now=now, numeric_fields=s.numeric_fields, names=names) for s in streams]


def start_windows(mappers: list[EventMapper], scope: int) -> None:
    """A state of `scope` starts a new window for counting identical records (see UniqueIds.content_id): for
    every stream after a GLOBAL state, for its own stream after a STREAM state."""
    if scope == GLOBAL:
        for mapper in mappers:
            mapper.new_window()
    elif scope >= 0:
        mappers[scope].new_window()


class Writer:
    """One sync's write: create, then iterate `write(chunks)` to the end (or close it to cancel)."""

    def __init__(
        self,
        *,
        config: ScarfConfig,
        streams: list[StreamInfo],
        client: ScarfClient,
        tuning: WriterTuning = WriterTuning(),
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.timezone.utc),
        spool_root: str | None = None,
        cancelled: threading.Event | None = None,
        names: ArtifactNames | None = None,
    ) -> None:
        """`names`: the owner's packages and tracking pixels, when a stream can send a name (see
        artifact_names.py: `names_for_sync` reads them before the sync reads input)."""
        self._config = config
        self._streams = streams
        self._client = client
        self._tuning = tuning
        self._clock = clock
        self._spool_root = spool_root
        self._cancelled = cancelled if cancelled is not None else threading.Event()
        # The mappers read "now" (for Scarf's one-week window) from a value refreshed once per input chunk:
        # a clock call per record would cost more than the check, and a chunk spans milliseconds.
        self._wall_now = now
        self._now = now()
        self._mappers = compile_mappers(config, streams, lambda: self._now, names)
        index = StreamIndex(streams)
        self._reader = InputReader(index=index)
        self.checkpoints = Checkpoints(stream_count=len(streams), find_stream=index.find)
        self._rejects = RejectLog(path=config.rejected_records_path, store=config.dead_letter,
                                  cancelled=self._cancelled,
                                  job_id=next((s.sync_id for s in streams if s.sync_id is not None), None))
        self._log = SyncLog(streams=streams, mappers=self._mappers, interval=tuning.progress_interval_seconds,
                            clock=clock)
        self._batch: BatchBuilder | None = None
        #: Whether each record's input line is kept beside its event until the import is settled, so that an event
        #: Scarf fails is kept aside with its original message (only then: it costs a copy of the input on disk).
        self._keep_messages = config.on_failed_events == "warn" and self._rejects.keeps_entries
        # Taken when iteration starts, before any input is read (`_open`):
        self._spool: Spool | None = None
        self._imports: ImportSlots | None = None
        self._failure: BaseException | None = None  # the first fatal outcome: what the sync reports
        self._stopping_for: BaseException | None = None  # the error the sync is stopping for, once it is
        self._cancel_report: CancelReport | None = None  # once the imports were cancelled (only ever once)

    @property
    def records_read(self) -> int:
        """Records of the catalog's streams read so far (batched or rejected)."""
        return self.checkpoints.records_read

    # ----- the loop --------------------------------------------------------------------------------

    def write(self, chunks: Iterable[bytes]) -> Generator[StateMessage, None, None]:
        """Consume input chunks (b"" means "no input for a while"); yield each state message once it is safe.

        Its resources (spool folder, threads, the rejected-records file) are taken when iteration
        starts, before any input is read, and released however it ends, so a generator closed
        early leaks nothing.
        """
        imports = self._open()
        ok = False
        try:
            yield from self._run(chunks, imports)
            ok = True
        except Exception as error:
            yield from self._stop_after(error, imports)
            raise
        finally:
            self._close(ok)

    def _run(self, chunks: Iterable[bytes], imports: ImportSlots) -> Iterator[StateMessage]:
        self._log.plan()
        for chunk in chunks:
            SyncCancelled.check(self._cancelled, _CANCELLED)
            self._now = self._wall_now()
            yield from self._take(self._reader.read(chunk), imports)
            aged = self._close_aged_batch()
            if aged is not None:
                yield from self._hand_over(aged, imports)
            yield from self._collect(imports)
        yield from self._take(self._reader.end(), imports)
        yield from self._finish(imports)

    def _take(self, messages: Iterable[Message], imports: ImportSlots) -> Iterator[StateMessage]:
        """Each message of a chunk: a record goes into the open batch, a full batch is handed over."""
        for message in messages:
            batch = self._add_record(message) if type(message) is Record else self._add(message)
            if batch is not None:
                yield from self._hand_over(batch, imports)

    def _add_record(self, record: Record) -> Batch | None:
        """The hot path: a record becomes an event of the open batch, or is rejected. Returns the batch it filled."""
        try:
            line = self._mappers[record.stream].encode(record.data, record.line)
        except InvalidRecord as invalid:
            self._reject(record, invalid)
            return None
        position = self.checkpoints.record_batched(record.stream)
        batch = self._batch or self._open_batch()
        if self._keep_messages:  # the record's input line goes beside its event (see `_keep_messages`)
            full = batch.add_kept(line, record.line, record.stream, position, record.line_no)
        else:
            full = batch.add(line, record.stream, position, record.line_no)
        return self._close_batch() if full else None

    def _add(self, message: Message) -> Batch | None:
        """Any other message; returns a batch to hand over when the message closes the open one."""
        if type(message) is MarkedRecord:
            # Fields the source or the platform nulled or truncated: invalid when one feeds $time, the id or the
            # artifact; else counted, and the record goes on as any other.
            try:
                self._mappers[message.stream].check_changes(message.changes)
            except InvalidRecord as invalid:
                self._reject(message, invalid)
                return None
            return self._add_record(message)
        if type(message) is State:
            scope = self.checkpoints.state_received(message.message, input_line=message.input_line)
            start_windows(self._mappers, scope)
        elif type(message) is StreamComplete:
            # That stream sends no more: its last states need not wait for the batch's age.
            return self._close_batch()
        elif type(message) is BadLine:
            self._bad_line(message)
        elif type(message) is UnknownStream:
            logger.warning("Ignoring records of stream '%s': it is not in the configured catalog.", message.name)
        return None

    def _hand_over(self, batch: Batch, imports: ImportSlots) -> Iterator[StateMessage]:
        """Start a closed batch's import. While every slot is busy and as many batches wait, reading waits here,
        and the states that become safe meanwhile are echoed."""
        while not imports.has_room:
            imports.wait(self._tuning.idle_tick_seconds, for_room=True)
            yield from self._collect(imports)
        imports.start(batch)

    def _collect(self, imports: ImportSlots) -> Iterator[StateMessage]:
        """Settle the imports that ended and echo the states they freed; raise the first fatal error.

        A cancelled sync stops here first: its imports' outcomes are left to the cancel, which settles them.
        """
        SyncCancelled.check(self._cancelled, _CANCELLED)
        for outcome in imports.take_finished():
            self._import_ended(outcome)
        if self._failure is not None:
            raise self._failure
        yield from self._release()
        self._log.progress(records=self.records_read, imports=imports, checkpoints=self.checkpoints)

    def _finish(self, imports: ImportSlots) -> Iterator[StateMessage]:
        """End of input: upload the last batch, wait for every import, echo the remaining states."""
        last = self._close_batch()
        if last is not None:
            yield from self._hand_over(last, imports)
        while imports.busy:
            imports.wait(self._tuning.idle_tick_seconds)
            yield from self._collect(imports)
        yield from self._collect(imports)
        if self.checkpoints.unfinished_batches:
            # Never wait forever: a batch that is neither running nor done can no longer finish.
            raise ScarfError(
                f"{self.checkpoints.unfinished_batches} batch(es) stopped without finishing their import, "
                "so no state past them was saved. Re-run the sync; it resumes from the last saved state."
            )
        self._summary(imports, stopped_early=False)

    # ----- records ---------------------------------------------------------------------------------

    def _reject(self, record: Record, invalid: InvalidRecord) -> None:
        stream = self._streams[record.stream]
        position = self.checkpoints.record_rejected(record.stream)
        if self._config.on_invalid_record == "fail":
            raise InvalidInput(
                f"Record #{position} of stream '{stream.label}' (input line {record.line_no}) cannot become a "
                f"Scarf event: {invalid.field} {invalid.reason}. {INVALID_RECORD_HINT}"
            )
        self._rejects.invalid_record(
            where=describe_record(stream.label, position, record.line_no), stream=stream.name,
            namespace=stream.namespace, record_position=position, input_line=record.line_no, field=invalid.field,
            reason=invalid.reason, message=record.line)

    def _bad_line(self, bad: BadLine) -> None:
        """An input line that is not a usable Airbyte message. Its content is never logged."""
        if self._config.on_invalid_record == "fail":
            raise InvalidInput(f"Input line {bad.input_line} {bad.what}. {BAD_LINE_HINT}")
        self._rejects.bad_line(bad.input_line, bad.what)

    # ----- batches ---------------------------------------------------------------------------------

    def _open_batch(self) -> BatchBuilder:
        assert self._spool is not None, "_open() comes first"
        limits = self._config.batch
        self._batch = self._spool.new_batch(self.checkpoints.open_batch, max_events=limits.max_events,
                                            max_bytes=limits.max_bytes, clock=self._clock,
                                            keep_messages=self._keep_messages)
        return self._batch

    def _close_batch(self) -> Batch | None:
        """Close the open batch for import (None when no batch is open)."""
        batch, self._batch = self._batch, None
        if batch is None:
            return None
        closed = batch.close()
        self.checkpoints.batch_closed()
        return closed

    def _close_aged_batch(self) -> Batch | None:
        """Close the open batch once it is `batch_max_age_seconds` old, so states keep flowing on slow sources."""
        batch = self._batch
        if batch is not None and self._clock() - batch.opened_at >= self._config.batch.max_age_seconds:
            return self._close_batch()
        return None

    def _discard_open_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch is not None:
            batch.discard()
            self.checkpoints.batch_discarded()

    # ----- ended imports ---------------------------------------------------------------------------

    def _import_ended(self, outcome: Outcome) -> None:
        if outcome.error is None:
            self._batch_settled(outcome)
            return
        if self._failure is None:
            self._failure = outcome.error
        if self._stopping_for is not None and outcome.error is not self._stopping_for and not isinstance(
                outcome.error, SyncCancelled):
            logger.warning("An import failed while the sync was stopping: %s", outcome.error.message)

    def _batch_settled(self, outcome: Outcome) -> None:
        """A batch's import is settled (done, failures handled per policy): keep the events Scarf failed, then
        tell the checkpoints, which count them as rejected with the first state after each record."""
        batch = outcome.batch
        self._keep_failed_events(outcome)
        batch.delete_spool()
        late = [(failed.origin.stream_index, failed.origin.input_line)
                for failed in outcome.failed_lines if failed.origin is not None]
        last = batch.origin(batch.events)
        if last is not None:
            # Failed or missing events that Scarf did not trace to a line: counted with the batch's last record.
            late += [(last.stream_index, last.input_line)] * outcome.unattributed
        self.checkpoints.batch_settled(batch.batch_id, late_rejections=late)

    def _keep_failed_events(self, outcome: Outcome) -> None:
        failed = [f for f in outcome.failed_lines if f.origin is not None]
        if not failed or not self._rejects.keeps_entries or outcome.result is None:
            return
        numbers = {f.line for f in failed}
        events, messages = outcome.batch.read_lines(numbers), outcome.batch.read_messages(numbers)
        for line in failed:
            origin = line.origin
            assert origin is not None
            stream = self._streams[origin.stream_index]
            self._rejects.failed_event(
                where=outcome.batch.describe(origin), stream=stream.name, namespace=stream.namespace,
                record_position=origin.record_position, input_line=origin.input_line, kind=line.kind,
                reason=line.message, import_id=outcome.result.id, event=events.get(line.line),
                message=messages.get(line.line))

    def _release(self) -> Iterator[StateMessage]:
        """Yield the states that are safe. A state that covers a rejected record not yet in the dead-letter store
        waits for the store's write: the states before that record leave first, then the store is written, then
        the rest; if the write fails, no state past that record leaves."""
        first_unstored = self._rejects.first_unstored_line
        if first_unstored is not None:
            yield from self.checkpoints.ready(before_line=first_unstored)
            if not self.checkpoints.any_ready:
                return
            try:
                self._rejects.flush(stopping=self._stopping_for is not None)
            except ScarfError as late:
                if self._stopping_for is None:
                    raise
                logger.warning("No further state is echoed: rejected records could not be stored: %s",
                               late.message)
                return
        yield from self.checkpoints.ready()

    # ----- stopping --------------------------------------------------------------------------------

    def _stop_after(self, error: BaseException, imports: ImportSlots) -> Iterator[StateMessage]:
        """Before `error` leaves: echo every state that is safe, after the work that can still finish.

        Nothing raised here replaces `error` (the first error is what the sync reports); problems on
        the way out are logged.
        """
        self._stopping_for = error
        if isinstance(error, SyncCancelled) or self._cancelled.is_set():
            yield from self._cancel(error, imports)
        else:
            if isinstance(error, InvalidInput):
                # The records before the bad one are good: import them, so their states can be echoed.
                try:
                    last = self._close_batch()
                    if last is not None:
                        yield from self._hand_over(last, imports)
                except ScarfError as late:
                    if late is not error:
                        logger.warning("While the sync was stopping: %s", late.message)
            else:
                imports.stop()
                self._discard_open_batch()
            yield from self._drain(imports)
        self._summary(imports, stopped_early=True)

    def _drain(self, imports: ImportSlots) -> Iterator[StateMessage]:
        """Let the imports in flight end (each within its own deadline), echoing states as they become safe."""
        if imports.in_flight:
            logger.info("The sync is stopping: waiting for %d import(s) in flight to finish, so that their "
                        "states are saved.", imports.in_flight)
        while True:
            for outcome in imports.take_finished():  # those that ended with the failure, too
                self._import_ended(outcome)
            if self._failure is not None:
                imports.stop()  # a failure: no queued batch may start any more
            yield from self._release()
            if not imports.busy:
                return
            if self._cancelled.is_set():
                yield from self._cancel(None, imports)
                return
            imports.wait(self._tuning.idle_tick_seconds)
            self._log.progress(records=self.records_read, imports=imports, checkpoints=self.checkpoints)

    def _cancel(self, error: BaseException | None, imports: ImportSlots) -> Iterator[StateMessage]:
        """Abort what runs (bounded, and only once), then echo the states whose imports were done before that."""
        self._discard_open_batch()
        report = self._cancel_imports(imports)
        for outcome in report.outcomes:
            self._import_ended(outcome)
        yield from self._release()
        logger.warning("The sync was cancelled. %s", report.describe())
        if isinstance(error, SyncCancelled):
            error.message = f"{error.message} {report.describe()}"

    def _cancel_imports(self, imports: ImportSlots) -> CancelReport:
        if self._cancel_report is None:
            self._cancel_report = imports.cancel(seconds=self._tuning.shutdown_seconds)
        return self._cancel_report

    # ----- resources and logs ----------------------------------------------------------------------

    def _open(self) -> ImportSlots:
        """Take what a sync needs, before any input is read; if a step fails, what was taken is released again.

        The rejected-records file first (a bad path fails here), then the spool folder (after removing those
        of syncs that are gone) with the gzip thread, then the import slots.
        """
        try:
            self._rejects.open()
            config, tuning = self._config, self._tuning
            self._spool = Spool(root=self._spool_root, gzip_level=config.gzip_level,
                                stream_labels=[s.label for s in self._streams])
            settings = JobSettings(
                target=config.target, safe_to_resend=config.mapping.unique_ids,
                on_failed_events=config.on_failed_events, import_timeout_seconds=config.import_timeout_seconds,
                slot_wait_seconds=config.slot_wait_seconds, upload_budget_seconds=config.upload_retry_seconds,
                status_polling=config.status_polling, poll=tuning.poll, cadence=tuning.cadence,
                slot_wait=tuning.slot_wait, not_found_grace_seconds=tuning.not_found_grace_seconds,
                abort_budget_seconds=min(5.0, tuning.shutdown_seconds))
            self._imports = ImportSlots(client=self._client, settings=settings, slots=config.max_concurrent_imports,
                                        cancelled=self._cancelled, clock=self._clock)
            return self._imports
        except BaseException:
            self._close(False)
            raise

    def _close(self, ok: bool) -> None:
        try:
            imports = self._imports
            if imports is not None:
                if not ok and imports.busy and self._cancel_report is None:
                    # The consumer closed the generator early: stop as on cancel.
                    logger.warning("The sync stopped early. %s", self._cancel_imports(imports).describe())
                imports.close()
        finally:
            try:
                self._discard_open_batch()
                if self._spool is not None:
                    self._spool.close()
            finally:
                self._rejects.close(ok=ok)

    def _summary(self, imports: ImportSlots, *, stopped_early: bool) -> None:
        self._log.summary(records=self.records_read, imports=imports, checkpoints=self.checkpoints,
                          rejects=self._rejects, calls=self._client.calls, stopped_early=stopped_early)


_CANCELLED = "The sync was cancelled. No state past the last echoed one was saved; the next sync resumes from there."
