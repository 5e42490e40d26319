"""The write orchestrator: input in, events out in batches, states out once their imports are settled.

    stdin -> InputReader (reader.py) -> EventMapper.encode (mapping) -> BatchBuilder (batching.py)
          -> ImportPipeline (imports.py: ImportJob in a WorkerPool) -> Checkpoints (checkpoints.py) -> stdout

For each input chunk (raw stdin bytes; b"" means "no input for a while") the reader hands over each
RECORD and STATE; then the writer closes an aged batch, settles finished imports and yields every
state that is now safe. Which states are safe is decided by `Checkpoints` alone; this module only
tells it what happened. On every way out that is not the end of the input, the states that are
already safe are yielded first, then the error is raised, so a re-run starts from there:

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, MutableMapping

from destination_scarf.batching import BatchBuilder, LineOrigin
from destination_scarf.catalog import StreamIndex, StreamInfo
from destination_scarf.checkpoints import GLOBAL, Checkpoints
from destination_scarf.client import ScarfClient
from destination_scarf.config import ScarfConfig
from destination_scarf.errors import InvalidInput, ScarfError, SyncCancelled
from destination_scarf.import_job import JobSettings, Outcome, PollPolicy
from destination_scarf.imports import ImportPipeline, describe_streams
from destination_scarf.mapping import EventMapper, InexactNumber, InvalidRecord, compile_mapper
from destination_scarf.pool import PoolStopped
from destination_scarf.reader import InputReader, exact_data
from destination_scarf.rejects import RejectLog
from destination_scarf.retry import SlotWaitPolicy
from destination_scarf.spool import SpoolDir, remove_stale
from destination_scarf.sync_log import SyncLog

logger = logging.getLogger("airbyte")


@dataclass(frozen=True, kw_only=True)
class WriterTuning:
    """Knobs that are not user options: tests shorten them, the defaults suit real Scarf."""

    progress_interval_seconds: float = 30.0
    idle_tick_seconds: float = 1.0
    poll: PollPolicy = PollPolicy()
    slot_wait: SlotWaitPolicy = SlotWaitPolicy()
    #: How long a cancelled sync may take to abort its imports and stop, in all.
    shutdown_seconds: float = 8.0
    not_found_grace_seconds: float = 60.0


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
    ) -> None:
        self._config = config
        self._streams = streams
        self._client = client
        self._clock = clock
        self._tuning = tuning
        self._spool_root = spool_root
        self._cancelled = cancelled if cancelled is not None else threading.Event()
        # The mappers read "now" (for Scarf's one-week window) from a value refreshed once per input chunk:
        # a clock call per record would cost more than the check, and a chunk spans milliseconds.
        self._wall_now = now
        self._now = now()
        self._mappers: list[EventMapper] = [
            compile_mapper(config=config.mapping, stream=s.name, namespace=s.namespace,
                           primary_key=s.primary_key, now=lambda: self._now)
            for s in streams
        ]
        self._encoders = [mapper.encode for mapper in self._mappers]
        self._describe = describe_streams([s.label for s in streams])
        index = StreamIndex(streams)
        self.checkpoints = Checkpoints(stream_count=len(streams), find_stream=index.find)
        self._reader = InputReader(index=index, add_record=self._add_record, add_state=self._add_state,
                                   bad_line=self._bad_line, on_trace=self._on_trace)
        self._rejects = RejectLog(policy=config.on_invalid_record, path=config.rejected_records_path)
        self._log = SyncLog(streams=streams, mappers=self._mappers, interval=tuning.progress_interval_seconds,
                            clock=clock)
        self._batch: BatchBuilder | None = None
        self._failure: BaseException | None = None  # the first fatal outcome: what the sync reports
        self._stopping_for: BaseException | None = None  # the error the sync is stopping for, once it is
        self._spool: SpoolDir | None = None
        self._compressor: ThreadPoolExecutor | None = None
        self._pipeline: ImportPipeline = None  # type: ignore[assignment]  # set by _open(), inside write()
        self.records_read = 0

    # ----- the generator ---------------------------------------------------------------------------

    def write(self, chunks: Iterable[bytes]) -> Iterator[MutableMapping[str, Any]]:
        """Consume input chunks; yield each state message once it is safe.

        Its resources (spool folder, threads, the rejected-records file) are taken when iteration
        starts, before any input is read, and released however it ends, so a generator closed
        early leaks nothing.
        """
        self._open()
        ok = False
        try:
            yield from self._run(chunks)
            ok = True
        except Exception as error:  # noqa: BLE001 - every failure: echo the safe states first, then raise
            yield from self._stop_after(error)
            raise
        finally:
            self._close(ok)

    def _run(self, chunks: Iterable[bytes]) -> Iterator[MutableMapping[str, Any]]:
        self._log.plan()
        for chunk in chunks:
            self._raise_if_cancelled()
            self._now = self._wall_now()
            if chunk:
                self._reader.feed(chunk)
            yield from self._housekeeping()
        self._reader.end()
        yield from self._finish()

    # ----- what the reader hands over --------------------------------------------------------------

    def _add_record(self, index: int, data: Any, line: bytes) -> None:
        """The hot path: a record of stream `index` becomes an event of the open batch, or is rejected."""
        self.records_read += 1
        try:
            if type(data) is not dict:
                raise InvalidRecord("data", "the record's `data` is not an object")
            try:
                encoded = self._encoders[index](data)
            except InexactNumber:  # rare: a huge integer the fast parser read as a float; read the line exactly
                encoded = self._encoders[index](exact_data(line))
        except InvalidRecord as invalid:
            self._reject(index, invalid, line)
            return
        position = self.checkpoints.record_batched(index)
        batch = self._batch or self._open_batch()
        if batch.add(encoded, stream_index=index, record_position=position, input_line=self._reader.line_no):
            self._close_batch()

    def _add_state(self, message: dict, line: bytes) -> None:
        scope = self.checkpoints.state_received(message, input_line=self._reader.line_no)
        # A state starts a new window for counting identical records (see EventMapper._content_id).
        if scope == GLOBAL:
            for mapper in self._mappers:
                mapper.new_window()
        elif scope >= 0:
            self._mappers[scope].new_window()

    def _on_trace(self, message: dict) -> None:
        """A STREAM_STATUS COMPLETE trace: that stream sends no more, so its last states need not wait for the
        batch's age: the open batch is closed at once."""
        trace = message.get("trace")
        status = trace.get("stream_status") if type(trace) is dict else None
        if type(status) is dict and status.get("status") == "COMPLETE" and self._batch is not None:
            self._close_batch()

    # ----- batches ---------------------------------------------------------------------------------

    def _open_batch(self) -> BatchBuilder:
        limits = self._config.batch
        assert self._spool is not None and self._compressor is not None
        self._batch = BatchBuilder(batch_id=self.checkpoints.open_batch, spool_dir=self._spool.path,
                                   level=self._config.gzip_level, compressor=self._compressor, clock=self._clock,
                                   max_events=limits.max_events, max_bytes=limits.max_bytes)
        return self._batch

    def _close_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch is None:
            return
        closed = batch.close()
        self.checkpoints.batch_closed()
        self._pipeline.submit(closed, on_wait=self._while_blocked)

    def _discard_open_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch is not None:
            batch.discard()
            self.checkpoints.batch_discarded()

    def _while_blocked(self) -> None:
        """While reading is paused (all slots busy and the queue full): keep releasing states and logging."""
        self._raise_if_cancelled()
        self._collect_finished()
        self._log_progress()

    # ----- housekeeping ----------------------------------------------------------------------------

    def _housekeeping(self) -> Iterator[MutableMapping[str, Any]]:
        """Between chunks: close an aged batch, release states of finished imports, log progress."""
        batch = self._batch
        if batch is not None and self._clock() - batch.opened_at >= self._config.batch.max_age_seconds:
            self._close_batch()
        self._collect_finished()
        yield from self.checkpoints.ready()
        self._log_progress()

    def _collect_finished(self) -> None:
        """Settle the imports that ended; raise the first fatal error once every outcome is settled."""
        for outcome in self._pipeline.take_finished():
            self._settle(outcome)
        if self._failure is not None:
            raise self._failure

    def _settle(self, outcome: Outcome) -> None:
        if outcome.error is not None:
            if self._failure is None:
                self._failure = outcome.error
            if self._stopping_for is not None and outcome.error is not self._stopping_for and not isinstance(
                    outcome.error, SyncCancelled):
                logger.warning("An import failed while the sync was stopping: %s", outcome.error.message)
            return
        batch = outcome.batch
        late = [(failed.origin.stream_index, failed.origin.input_line)
                for failed in outcome.failed_lines if failed.origin is not None]
        last = batch.origin(batch.events)
        if last is not None:
            # Failed or missing events that Scarf did not trace to a line: counted with the batch's last record.
            late += [(last.stream_index, last.input_line)] * outcome.unattributed
        self.checkpoints.batch_settled(batch.batch_id, late_rejections=late)

    def _finish(self) -> Iterator[MutableMapping[str, Any]]:
        """End of input: upload the last batch, wait for every import, echo the remaining states."""
        self._close_batch()
        yield from self._wait_for_imports()
        self._summary(stopped_early=False)

    def _wait_for_imports(self) -> Iterator[MutableMapping[str, Any]]:
        while self._pipeline.busy:
            self._raise_if_cancelled()
            self._pipeline.wait_for_progress(self._tuning.idle_tick_seconds)
            self._collect_finished()
            yield from self.checkpoints.ready()
            self._log_progress()
        self._collect_finished()
        if self.checkpoints.unfinished_batches:
            # Never wait forever: a batch that is neither running nor done can no longer finish.
            raise ScarfError(
                f"{self.checkpoints.unfinished_batches} batch(es) stopped without finishing their import, "
                "so no state past them was saved. Re-run the sync; it resumes from the last saved state."
            )
        yield from self.checkpoints.ready()

    # ----- stopping --------------------------------------------------------------------------------

    def _stop_after(self, error: BaseException) -> Iterator[MutableMapping[str, Any]]:
        """Before `error` leaves: echo every state that is safe, after the work that can still finish.

        Nothing raised here replaces `error` (the first error is what the sync reports); problems on
        the way out are logged.
        """
        self._stopping_for = error
        if isinstance(error, SyncCancelled) or self._cancelled.is_set():
            yield from self._cancel(error)
        else:
            if isinstance(error, InvalidInput):
                # The records before the bad one are good: import them, so their states can be echoed.
                self._quietly(self._close_batch)
            else:
                self._pipeline.stop()
                self._discard_open_batch()
            yield from self._drain()
        self._summary(stopped_early=True)

    def _quietly(self, step: Callable[[], None]) -> None:
        """Run a step of the way out; what it raises is logged (the error being reported stays the first)."""
        try:
            step()
        except (ScarfError, PoolStopped) as late:
            if late is not self._stopping_for:
                logger.warning("While the sync was stopping: %s", getattr(late, "message", None) or late)

    def _drain(self) -> Iterator[MutableMapping[str, Any]]:
        """Let the imports in flight end (each within its own deadline), echoing states as they become safe."""
        waiting = self._pipeline.in_flight
        if waiting:
            logger.info("The sync is stopping: waiting for %d import(s) in flight to finish, so that their "
                        "states are saved.", waiting)
        while self._pipeline.busy:
            if self._cancelled.is_set():
                yield from self._cancel(None)
                return
            self._pipeline.wait_for_progress(self._tuning.idle_tick_seconds)
            for outcome in self._pipeline.take_finished():
                self._settle(outcome)
                if self._failure is not None:
                    self._pipeline.stop()  # a failure: no queued batch may start any more
            yield from self.checkpoints.ready()
            self._log_progress()

    def _cancel(self, error: BaseException | None) -> Iterator[MutableMapping[str, Any]]:
        """Abort what runs (bounded), then echo the states whose imports were done before that."""
        self._discard_open_batch()
        report = self._pipeline.cancel(seconds=self._tuning.shutdown_seconds)
        for outcome in report.outcomes:
            self._settle(outcome)
        yield from self.checkpoints.ready()
        logger.warning("The sync was cancelled. %s", report.describe())
        if isinstance(error, SyncCancelled):
            error.message = f"{error.message} {report.describe()}"

    def _raise_if_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise SyncCancelled(
                "The sync was cancelled. No state past the last echoed one was saved; the next sync resumes "
                "from there."
            )

    # ----- resources -------------------------------------------------------------------------------

    def _open(self) -> None:
        """Take what a sync needs; if a step fails, what was taken is released again."""
        try:
            self._rejects.open()  # a bad rejected_records_path fails here, before any input is read
            remove_stale(self._spool_root)
            self._spool = SpoolDir(root=self._spool_root)
            self._compressor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scarf-gzip")
            self._pipeline = self._new_pipeline()
        except BaseException:
            self._close(False)
            raise

    def _new_pipeline(self) -> ImportPipeline:
        config, tuning = self._config, self._tuning
        settings = JobSettings(
            target=config.target, safe_to_resend=config.mapping.unique_ids, on_failed_events=config.on_failed_events,
            import_timeout_seconds=config.import_timeout_seconds, slot_wait_seconds=config.slot_wait_seconds,
            upload_budget_seconds=config.upload_retry_seconds, describe_origin=self._describe, poll=tuning.poll,
            slot_wait=tuning.slot_wait, not_found_grace_seconds=tuning.not_found_grace_seconds,
            abort_budget_seconds=min(5.0, tuning.shutdown_seconds))
        return ImportPipeline(client=self._client, settings=settings, slots=config.max_concurrent_imports,
                              max_queued=config.max_concurrent_imports, cancelled=self._cancelled, clock=self._clock)

    def _close(self, ok: bool) -> None:
        try:
            pipeline = self._pipeline
            if pipeline is not None:
                if not ok and pipeline.busy:  # the consumer closed the generator early: stop as on cancel
                    report = pipeline.cancel(seconds=self._tuning.shutdown_seconds)
                    logger.warning("The sync stopped early. %s", report.describe())
                pipeline.stop()
            self._discard_open_batch()
            if self._compressor is not None:
                self._compressor.shutdown(wait=True)
        finally:
            self._rejects.close()
            if self._spool is not None:
                self._spool.close()

    # ----- problems and logs -----------------------------------------------------------------------

    def _reject(self, index: int, invalid: InvalidRecord, line: bytes) -> None:
        stream = self._streams[index]
        position = self.checkpoints.record_rejected(index)
        line_no = self._reader.line_no
        if self._rejects.policy == "fail":
            raise InvalidInput(
                f"Record #{position} of stream '{stream.label}' (input line {line_no}) cannot become a "
                f"Scarf event: {invalid.field} {invalid.reason}. Fix the source data or the field mapping, or "
                "set on_invalid_record to skip to count such records as rejected and go on."
            )
        where = LineOrigin(stream_index=index, record_position=position, input_line=line_no)
        self._rejects.record(self._describe(where), invalid, stream=stream, origin=where, line=line)

    def _bad_line(self, what: str) -> None:
        """An input line that is not a usable Airbyte message. Its content is never logged."""
        if self._rejects.policy == "fail":
            raise InvalidInput(
                f"Input line {self._reader.line_no} {what}. The destination reads one Airbyte message (JSON) per "
                "line; check what feeds its standard input, or set on_invalid_record to skip."
            )
        self._rejects.bad_line(self._reader.line_no, what)

    def _log_progress(self) -> None:
        self._log.progress(records=self.records_read, pipeline=self._pipeline, checkpoints=self.checkpoints)

    def _summary(self, *, stopped_early: bool) -> None:
        self._log.summary(records=self.records_read, pipeline=self._pipeline, checkpoints=self.checkpoints,
                          rejects=self._rejects, stopped_early=stopped_early)
