"""The write orchestrator: input in, events out in batches, states out once their imports are settled.

    stdin -> InputReader (reader.py) -> EventMapper.encode (mapping) -> BatchBuilder (batching.py)
          -> ImportPipeline (imports.py: ImportJob in a WorkerPool) -> Checkpoints (checkpoints.py) -> stdout

For each input chunk (raw stdin bytes; b"" means "no input for a while") the reader hands each
RECORD and STATE to `Ingest` (ingest.py: what happens to each message); then the writer closes an
aged batch, settles finished imports and yields every state that is now safe. Which states are
safe is decided by `Checkpoints` alone; this module and `Ingest` only tell it what happened.

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
from destination_scarf.errors import InvalidInput, ScarfError, SyncCancelled
from destination_scarf.scarf.client import ScarfClient
from destination_scarf.scarf.import_job import JobSettings, Outcome, PollPolicy
from destination_scarf.scarf.imports import ImportPipeline, describe_streams
from destination_scarf.scarf.pool import PoolStopped
from destination_scarf.scarf.retry import SlotWaitPolicy
from destination_scarf.sync.batching import Batch
from destination_scarf.sync.catalog import StreamInfo
from destination_scarf.sync.ingest import Ingest
from destination_scarf.sync.sync_log import SyncLog

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
        self._client = client
        self._clock = clock
        self._tuning = tuning
        self._spool_root = spool_root
        self._cancelled = cancelled if cancelled is not None else threading.Event()
        self._describe = describe_streams([s.label for s in streams])
        self._ingest = Ingest(config=config, streams=streams, clock=clock, now=now, describe=self._describe)
        self._ingest.submit = self._submit
        self.checkpoints = self._ingest.checkpoints
        self._log = SyncLog(streams=streams, mappers=self._ingest.mappers,
                            interval=tuning.progress_interval_seconds, clock=clock)
        self._failure: BaseException | None = None  # the first fatal outcome: what the sync reports
        self._stopping_for: BaseException | None = None  # the error the sync is stopping for, once it is
        self._pipeline: ImportPipeline = None  # type: ignore[assignment]  # set by _open(), inside write()

    @property
    def records_read(self) -> int:
        return self._ingest.records_read

    # ----- the generator ---------------------------------------------------------------------------

    def write(self, chunks: Iterable[bytes]) -> Generator[MutableMapping[str, Any], None, None]:
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
        except Exception as error:
            yield from self._stop_after(error)
            raise
        finally:
            self._close(ok)

    def _run(self, chunks: Iterable[bytes]) -> Iterator[MutableMapping[str, Any]]:
        self._log.plan()
        reader = self._ingest.reader
        for chunk in chunks:
            self._raise_if_cancelled()
            self._ingest.tick()
            if chunk:
                reader.feed(chunk)
            yield from self._housekeeping()
        reader.end()
        yield from self._finish()

    def _submit(self, batch: Batch) -> None:
        self._pipeline.submit(batch, on_wait=self._while_blocked)

    def _while_blocked(self) -> None:
        """While reading is paused (all slots busy and the queue full): keep releasing states and logging."""
        self._raise_if_cancelled()
        self._collect_finished()
        self._log_progress()

    # ----- housekeeping ----------------------------------------------------------------------------

    def _housekeeping(self) -> Iterator[MutableMapping[str, Any]]:
        """Between chunks: close an aged batch, release states of finished imports, log progress."""
        self._ingest.close_aged_batch()
        self._collect_finished()
        yield from self._release()
        self._log_progress()

    def _collect_finished(self) -> None:
        """Settle the imports that ended; raise the first fatal error once every outcome is settled."""
        for outcome in self._pipeline.take_finished():
            self._settle(outcome)
        if self._failure is not None:
            raise self._failure

    def _settle(self, outcome: Outcome) -> None:
        if outcome.error is None:
            self._ingest.settle(outcome)
            return
        if self._failure is None:
            self._failure = outcome.error
        if self._stopping_for is not None and outcome.error is not self._stopping_for and not isinstance(
                outcome.error, SyncCancelled):
            logger.warning("An import failed while the sync was stopping: %s", outcome.error.message)

    def _finish(self) -> Iterator[MutableMapping[str, Any]]:
        """End of input: upload the last batch, wait for every import, echo the remaining states."""
        self._ingest.close_batch()
        while self._pipeline.busy:
            self._raise_if_cancelled()
            self._pipeline.wait_for_progress(self._tuning.idle_tick_seconds)
            self._collect_finished()
            yield from self._release()
            self._log_progress()
        self._collect_finished()
        if self.checkpoints.unfinished_batches:
            # Never wait forever: a batch that is neither running nor done can no longer finish.
            raise ScarfError(
                f"{self.checkpoints.unfinished_batches} batch(es) stopped without finishing their import, "
                "so no state past them was saved. Re-run the sync; it resumes from the last saved state."
            )
        yield from self._release()
        self._summary(stopped_early=False)

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
                self._quietly(self._ingest.close_batch)
            else:
                self._pipeline.stop()
                self._ingest.discard_open_batch()
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
            yield from self._release()
            self._log_progress()

    def _cancel(self, error: BaseException | None) -> Iterator[MutableMapping[str, Any]]:
        """Abort what runs (bounded), then echo the states whose imports were done before that."""
        self._ingest.discard_open_batch()
        report = self._pipeline.cancel(seconds=self._tuning.shutdown_seconds)
        for outcome in report.outcomes:
            self._settle(outcome)
        yield from self._release()
        logger.warning("The sync was cancelled. %s", report.describe())
        if isinstance(error, SyncCancelled):
            error.message = f"{error.message} {report.describe()}"

    def _release(self) -> Iterator[MutableMapping[str, Any]]:
        """Yield the states that are safe. Rejected records are stored before any state that covers them leaves:
        the dead-letter store's buffer is written first, and if that fails, no state leaves."""
        if self.checkpoints.any_ready and self._ingest.rejects.unflushed:
            if self._stopping_for is None:
                self._ingest.rejects.flush()
            else:
                try:
                    self._ingest.rejects.flush()
                except ScarfError as late:
                    logger.warning("No further state is echoed: rejected records could not be stored: %s",
                                   late.message)
                    return
        yield from self.checkpoints.ready()

    def _raise_if_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise SyncCancelled(
                "The sync was cancelled. No state past the last echoed one was saved; the next sync resumes "
                "from there."
            )

    # ----- resources and logs ----------------------------------------------------------------------

    def _open(self) -> None:
        """Take what a sync needs; if a step fails, what was taken is released again."""
        try:
            self._ingest.open(spool_root=self._spool_root)
            config, tuning = self._config, self._tuning
            settings = JobSettings(
                target=config.target, safe_to_resend=config.mapping.unique_ids,
                on_failed_events=config.on_failed_events, import_timeout_seconds=config.import_timeout_seconds,
                slot_wait_seconds=config.slot_wait_seconds, upload_budget_seconds=config.upload_retry_seconds,
                describe_origin=self._describe, poll=tuning.poll, slot_wait=tuning.slot_wait,
                not_found_grace_seconds=tuning.not_found_grace_seconds,
                abort_budget_seconds=min(5.0, tuning.shutdown_seconds))
            self._pipeline = ImportPipeline(client=self._client, settings=settings,
                                            slots=config.max_concurrent_imports,
                                            max_queued=config.max_concurrent_imports, cancelled=self._cancelled,
                                            clock=self._clock)
        except BaseException:
            self._close(False)
            raise

    def _close(self, ok: bool) -> None:
        try:
            pipeline = self._pipeline
            if pipeline is not None:
                if not ok and pipeline.busy:  # the consumer closed the generator early: stop as on cancel
                    report = pipeline.cancel(seconds=self._tuning.shutdown_seconds)
                    logger.warning("The sync stopped early. %s", report.describe())
                pipeline.stop()
        finally:
            self._ingest.close(ok=ok)

    def _log_progress(self) -> None:
        self._log.progress(records=self.records_read, pipeline=self._pipeline, checkpoints=self.checkpoints)

    def _summary(self, *, stopped_early: bool) -> None:
        self._log.summary(records=self.records_read, pipeline=self._pipeline, checkpoints=self.checkpoints,
                          rejects=self._ingest.rejects, stopped_early=stopped_early)
