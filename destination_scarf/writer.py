"""The write orchestrator: input lines in, events out in batches, states out once their imports are done.

    for each input chunk:          (a chunk of raw stdin bytes; b"" means "no input for a while")
        RECORD -> map -> encode -> the open batch; a full batch goes to the import pipeline
        STATE  -> queued behind the unfinished batches of its scope (see checkpoints.py)
        then:  close an aged batch, collect finished imports, yield every state that is now safe

The rule "records before a state are imported before the state is yielded" lives in `Checkpoints`;
this module only feeds it. On every way out that is not the end of the input, the states that are
already safe are yielded first, then the error is raised, so a re-run starts from there:

- bad input under `on_invalid_record: fail`: the records before it are imported first;
- a fatal import error (revoked token, failed import, ...): queued batches are dropped, the running
  imports go on to their end (each within its own deadline);
- cancellation (SIGTERM/SIGINT, or the consumer closing the generator): running imports are aborted,
  within `WriterTuning.shutdown_seconds` in all.

Records take a fast path: orjson straight to the stream's compiled mapper, no CDK dataclass per message.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, MutableMapping

import orjson

from destination_scarf.airbyte_io import dump_message
from destination_scarf.batching import BatchBuilder, LineOrigin
from destination_scarf.catalog import StreamIndex, StreamInfo
from destination_scarf.checkpoints import GLOBAL, UNKNOWN_STREAM, Checkpoints
from destination_scarf.client import ScarfClient
from destination_scarf.config import ScarfConfig
from destination_scarf.errors import InvalidInput, ScarfError, SyncCancelled
from destination_scarf.import_job import JobSettings, Outcome, PollPolicy
from destination_scarf.imports import ImportPipeline, describe_streams
from destination_scarf.mapping import EventMapper, ExactFloat, InexactNumber, InvalidRecord, compile_mapper
from destination_scarf.pool import PoolStopped
from destination_scarf.rejects import RejectLog
from destination_scarf.retry import SlotWaitPolicy
from destination_scarf.spool import SpoolDir, remove_stale

logger = logging.getLogger("airbyte")

_LOADS = orjson.loads
_BOM = b"\xef\xbb\xbf"
#: Message types a destination may see and has nothing to do with.
_IGNORED_TYPES = frozenset({"LOG", "TRACE", "CONTROL", "SPEC", "CONNECTION_STATUS", "CATALOG", "DESTINATION_CATALOG"})
_KNOWN_TYPES = _IGNORED_TYPES | {"RECORD", "STATE"}
#: How many places of an unreadable line are tried as the start of a message glued to it.
_GLUE_TRIES = 64


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
        self._index = StreamIndex(streams)
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
        self.checkpoints = Checkpoints(stream_count=len(streams))
        self._rejects = RejectLog(policy=config.on_invalid_record, path=config.rejected_records_path)
        self._batch: BatchBuilder | None = None
        self._next_batch_id = 1
        self._line_no = 0
        self._warned_streams: set[str] = set()
        self._warned_ignored: set[int] = set()
        self._failure: BaseException | None = None  # the first fatal outcome: what the sync reports
        self._stopping_for: BaseException | None = None  # the error the sync is stopping for, once it is
        self._spool: SpoolDir | None = None
        self._compressor: ThreadPoolExecutor | None = None
        self._pipeline: ImportPipeline | None = None  # type: ignore[assignment]
        self.records_read = 0
        self._started = clock()
        self._last_progress = self._started

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
        pending = b""
        for chunk in chunks:
            self._raise_if_cancelled()
            self._now = self._wall_now()
            if chunk:
                lines = (pending + chunk).split(b"\n") if pending else chunk.split(b"\n")
                pending = lines.pop()
                self._handle_lines(lines)
            yield from self._housekeeping()
        if pending:
            self._handle_line(pending)
        yield from self._finish()

    def _handle_lines(self, lines: list[bytes]) -> None:
        """The hot loop: `_handle_line` for each line, with the common case (a RECORD of a known stream whose
        data is an object) read inline. Any other line goes through `_handle_line`, which says what is wrong."""
        loads, find, add_record = _LOADS, self._index.find, self._add_record
        for line in lines:
            self._line_no += 1
            try:
                message = loads(line)
                record = message["record"] if message["type"] == "RECORD" else None
                data = record["data"]
                index = find(record.get("namespace"), record["stream"])
            except (orjson.JSONDecodeError, LookupError, TypeError):
                index = None
            if index is not None and type(data) is dict:
                add_record(index, data, line)
            else:  # unusual (a state, a bad line, an unknown stream): `_handle_line` says what it is
                self._line_no -= 1
                self._handle_line(line)

    def _handle_line(self, line: bytes) -> None:
        self._line_no += 1
        if line.startswith(_BOM):  # a byte-order mark (an editor's, or files concatenated): not part of JSON
            line = line[len(_BOM):]
        try:
            message = _LOADS(line)
        except orjson.JSONDecodeError as error:
            if line.strip():
                self._unreadable_line(line, error)
            return
        self._handle_message(message, line)

    def _handle_message(self, message: Any, line: bytes) -> None:
        kind = message.get("type") if type(message) is dict else None
        if kind == "RECORD":
            self._handle_record(message, line)
        elif kind == "STATE":
            self._handle_state(message, line)
        elif kind not in _IGNORED_TYPES:
            self._bad_line("is not an Airbyte message (no known `type`)")

    def _unreadable_line(self, line: bytes, error: orjson.JSONDecodeError) -> None:
        """A line that is not JSON. A message glued to its end (a writer that lost a newline, or two writers
        interleaved) is still read, so the record after a bad line is not lost with it."""
        start = line.find(b'{"', 1)
        for _ in range(_GLUE_TRIES):
            if start < 0:
                break
            try:
                glued = _LOADS(line[start:])
            except orjson.JSONDecodeError:
                start = line.find(b'{"', start + 1)
                continue
            if type(glued) is dict and glued.get("type") in _KNOWN_TYPES:
                self._bad_line("is not valid JSON before the Airbyte message glued to its end")
                self._handle_message(glued, line[start:])
                return
            break
        if "depth" in str(error):
            self._bad_line("nests objects or lists more than 1024 levels deep, more than the connector reads")
        else:
            self._bad_line("is not valid JSON")

    def _handle_record(self, message: dict, line: bytes) -> None:
        record = message.get("record")
        if type(record) is not dict:
            self._bad_line("is a RECORD message without a `record` object")
            return
        index = self._index.find(record.get("namespace"), record.get("stream"))
        if index is None:
            self._warn_unknown_stream(record)
            return
        self._add_record(index, record.get("data"), line)

    def _add_record(self, index: int, data: Any, line: bytes) -> None:
        """Count a record of stream `index`, then add its event to the open batch or reject it."""
        self.records_read += 1
        counts = self.checkpoints.records
        position = counts[index] = counts[index] + 1
        try:
            if type(data) is not dict:
                raise InvalidRecord("data", "the record's `data` is not an object")
            try:
                encoded = self._encoders[index](data)
            except InexactNumber:  # rare: a huge integer the fast parser read as a float; read the line exactly
                encoded = self._encoders[index](_exact_data(line))
        except InvalidRecord as invalid:
            self._reject(index, position, invalid, line)
            return
        batch = self._batch or self._open_batch()
        if batch.add(encoded, stream_index=index, record_position=position, input_line=self._line_no):
            self._close_batch()

    def _handle_state(self, message: dict, line: bytes) -> None:
        if type(message.get("state")) is not dict:
            self._bad_line("is a STATE message without a `state` object")
            return
        exact = _exact_state(line, fallback=message)
        if exact is None:
            self._bad_line("is a STATE message nested too deeply to be echoed")
            return
        scope = self._state_scope(exact)
        if scope == GLOBAL:
            for mapper in self._mappers:
                mapper.new_window()
        elif scope >= 0:
            self._mappers[scope].new_window()
        self.checkpoints.add_state(exact, scope=scope, input_line=self._line_no)

    def _state_scope(self, message: dict) -> int:
        state = message["state"]
        if state.get("type") == "STREAM":
            stream = state.get("stream")
            descriptor = stream.get("stream_descriptor") if type(stream) is dict else None
            if type(descriptor) is not dict:
                descriptor = {}
            index = self._index.find(descriptor.get("namespace"), descriptor.get("name"))
            return UNKNOWN_STREAM if index is None else index
        return GLOBAL  # GLOBAL, LEGACY (no type), or an unknown future type: wait for everything

    # ----- batches ---------------------------------------------------------------------------------

    def _open_batch(self) -> BatchBuilder:
        limits = self._config.batch
        batch = BatchBuilder(batch_id=self._next_batch_id, spool_dir=self._spool.path,
                             level=self._config.gzip_level, compressor=self._compressor, clock=self._clock,
                             max_events=limits.max_events, max_bytes=limits.max_bytes)
        self._next_batch_id += 1
        self.checkpoints.batch_started(batch.batch_id, batch.streams)
        self._batch = batch
        return batch

    def _close_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch is None:
            return
        closed = batch.close()
        self._pipeline.submit(closed, on_wait=self._while_blocked)

    def _while_blocked(self) -> None:
        """While reading is paused (all slots busy and the queue full): keep releasing states and logging."""
        self._raise_if_cancelled()
        self._collect_finished()
        self._maybe_log_progress()

    # ----- housekeeping ----------------------------------------------------------------------------

    def _housekeeping(self) -> Iterator[MutableMapping[str, Any]]:
        """Between chunks: close an aged batch, release states of finished imports, log progress."""
        batch = self._batch
        if batch is not None and self._clock() - batch.opened_at >= self._config.batch.max_age_seconds:
            self._close_batch()
        self._collect_finished()
        yield from self.checkpoints.ready()
        self._maybe_log_progress()

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
        for failed in outcome.failed_lines:
            if failed.origin is not None:
                self.checkpoints.reject_late(failed.origin.stream_index, failed.origin.input_line)
        last = batch.origin(batch.events)
        for _ in range(outcome.unattributed if last is not None else 0):
            # Failed or missing events that Scarf did not trace to a line: counted with the batch's last record.
            self.checkpoints.reject_late(last.stream_index, last.input_line)  # type: ignore[union-attr]
        self.checkpoints.batch_done(batch.batch_id)

    def _finish(self) -> Iterator[MutableMapping[str, Any]]:
        """End of input: upload the last batch, wait for every import, echo the remaining states."""
        self._close_batch()
        yield from self._wait_for_imports()
        self._log_summary()

    def _wait_for_imports(self) -> Iterator[MutableMapping[str, Any]]:
        while self._pipeline.busy:
            self._raise_if_cancelled()
            self._pipeline.wait_for_progress(self._tuning.idle_tick_seconds)
            self._collect_finished()
            yield from self.checkpoints.ready()
            self._maybe_log_progress()
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
        self._log_summary(failed=True)

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
            self._maybe_log_progress()

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

    def _discard_open_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch is not None:
            batch.discard()

    # ----- problems --------------------------------------------------------------------------------

    def _reject(self, index: int, position: int, invalid: InvalidRecord, line: bytes) -> None:
        stream = self._streams[index]
        where = LineOrigin(stream_index=index, record_position=position, input_line=self._line_no)
        if self._rejects.policy == "fail":
            raise InvalidInput(
                f"Record #{position} of stream '{stream.label}' (input line {self._line_no}) cannot become a "
                f"Scarf event: {invalid.field} {invalid.reason}. Fix the source data or the field mapping, or "
                "set on_invalid_record to skip to count such records as rejected and go on."
            )
        self.checkpoints.rejected[index] += 1
        self._rejects.record(self._describe(where), invalid, stream=stream, origin=where, line=line)

    def _bad_line(self, what: str) -> None:
        """An input line that is not a usable Airbyte message. Its content is never logged."""
        if self._rejects.policy == "fail":
            raise InvalidInput(
                f"Input line {self._line_no} {what}. The destination reads one Airbyte message (JSON) per line; "
                "check what feeds its standard input, or set on_invalid_record to skip."
            )
        self._rejects.bad_line(self._line_no, what)

    def _warn_unknown_stream(self, record: dict) -> None:
        name = f"{record.get('namespace')}.{record.get('stream')}" if record.get("namespace") else str(record.get("stream"))
        if name not in self._warned_streams:
            self._warned_streams.add(name)
            logger.warning("Ignoring records of stream '%s': it is not in the configured catalog.", name)

    # ----- logs ------------------------------------------------------------------------------------

    def _maybe_log_progress(self) -> None:
        now = self._clock()
        if now - self._last_progress < self._tuning.progress_interval_seconds:
            return
        self._last_progress = now
        p, stats = self._pipeline, self._pipeline.stats
        self._warn_ignored_fields()
        logger.info(
            "Progress: %d records read, %d events sent, %d imports in flight, %d done, %d events imported, "
            "%d failed, %d states waiting", self.records_read, p.events_uploaded, p.in_flight, stats.imports_done,
            stats.events_imported, stats.events_failed, self.checkpoints.pending_states,
        )

    def _warn_ignored_fields(self) -> None:
        """Once per stream: name the `$` keys that are not Scarf fields and were dropped (names, not values)."""
        for index, mapper in enumerate(self._mappers):
            if mapper.ignored_fields and index not in self._warned_ignored:
                self._warned_ignored.add(index)
                logger.warning("Stream '%s': dropped %d `$` field(s) that are not Scarf fields: %s",
                               self._streams[index].label, len(mapper.ignored_fields),
                               ", ".join(sorted(mapper.ignored_fields)[:10]))

    def _warn_repeated_content(self) -> None:
        """Once per stream, at the end: how many records repeated another record's content (and got numbered ids)."""
        for index, mapper in enumerate(self._mappers):
            if mapper.repeated:
                logger.warning(
                    "Stream '%s': %d record(s) had the same content as an earlier record between the same two "
                    "states; each was kept as its own event, with a $unique_id numbered by occurrence. Such ids "
                    "depend on the order of the records: map a $unique_id field (field_mappings) or sync with a "
                    "primary key (append_dedup) to make them independent of it.",
                    self._streams[index].label, mapper.repeated)

    def _log_summary(self, *, failed: bool = False) -> None:
        self._warn_ignored_fields()
        self._warn_repeated_content()
        stats = self._pipeline.stats
        duration = max(self._clock() - self._started, 1e-9)
        logger.info(
            "Sync summary%s: %d records read, %d events sent in %d imports, %d imported, %d failed, %d rejected "
            "before upload, %d states echoed, %.1f s (%.0f records/s), %.1f MB sent",
            " (the sync stopped early)" if failed else "",
            self.records_read, self._pipeline.events_uploaded, stats.imports_started, stats.events_imported,
            stats.events_failed, self._rejects.count, self.checkpoints.echoed, duration,
            self.records_read / duration, stats.wire_bytes / 1e6,
        )


def _exact_data(line: bytes) -> dict:
    """A record's `data` read again exactly: integers keep every digit, floats are marked as such."""
    try:
        message = json.loads(line, parse_float=ExactFloat)
    except RecursionError:
        raise InvalidRecord("data", "nests objects or lists too deeply to be read exactly") from None
    except ValueError:  # Python refuses integers of more than 4300 digits
        raise InvalidRecord("data", "holds a number too long to be read exactly") from None
    return message["record"]["data"]


def _exact_state(line: bytes, *, fallback: dict) -> dict | None:
    """A state read exactly (a cursor of 2**64 must come back as 18446744073709551616), or None when it
    cannot be echoed at all (nested deeper than JSON serializers go)."""
    try:
        exact = json.loads(line)
    except (RecursionError, ValueError):
        exact = fallback
    if type(exact) is not dict or type(exact.get("state")) is not dict:
        exact = fallback
    try:
        dump_message(exact)
    except (RecursionError, ValueError, TypeError):
        return None
    return exact
