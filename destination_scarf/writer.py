"""The write orchestrator: input lines in, events out in batches, states out once their imports are done.

    for each input chunk:          (a chunk of raw stdin bytes; b"" means "no input for a while")
        RECORD -> map -> encode -> the open batch; a full batch goes to the import pipeline
        STATE  -> queued behind the unfinished batches of its scope (see checkpoints.py)
        then:  close an aged batch, collect finished imports, yield every state that is now safe

The rule "records before a state are imported before the state is yielded" lives in `Checkpoints`;
this module only feeds it. Records take a fast path: orjson straight to the stream's compiled mapper,
no CDK dataclass per message.
"""

from __future__ import annotations

import datetime
import logging
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, MutableMapping

import orjson

from destination_scarf.batching import BatchBuilder, LineOrigin
from destination_scarf.catalog import StreamIndex, StreamInfo
from destination_scarf.checkpoints import GLOBAL, UNKNOWN_STREAM, Checkpoints
from destination_scarf.client import ScarfClient
from destination_scarf.config import ScarfConfig
from destination_scarf.errors import InvalidInput, ScarfError
from destination_scarf.imports import ImportJob, ImportPipeline, PollPolicy, SlotWaitPolicy, describe_streams
from destination_scarf.mapping import EventMapper, InvalidRecord, compile_mapper
from destination_scarf.rejects import RejectLog

logger = logging.getLogger("airbyte")

_LOADS = orjson.loads
#: Message types a destination may see and has nothing to do with.
_IGNORED_TYPES = frozenset({"LOG", "TRACE", "CONTROL", "SPEC", "CONNECTION_STATUS", "CATALOG", "DESTINATION_CATALOG"})


@dataclass(frozen=True, kw_only=True)
class WriterTuning:
    """Knobs that are not user options: tests shorten them, the defaults suit real Scarf."""

    progress_interval_seconds: float = 30.0
    idle_tick_seconds: float = 1.0
    poll: PollPolicy = PollPolicy()
    slot_wait: SlotWaitPolicy = SlotWaitPolicy()


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
    ) -> None:
        self._config = config
        self._streams = streams
        self._index = StreamIndex(streams)
        self._clock = clock
        self._tuning = tuning
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
        self._spool_dir = Path(tempfile.mkdtemp(prefix="destination-scarf-", dir=spool_root))
        self._compressor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scarf-gzip")
        self._pipeline = ImportPipeline(
            client=client,
            target=config.target,
            slots=config.max_concurrent_imports,
            max_queued=config.max_concurrent_imports,
            import_timeout_seconds=config.import_timeout_seconds,
            slot_wait_seconds=config.slot_wait_seconds,
            safe_to_resend=config.mapping.unique_ids,
            on_failed_events=config.on_failed_events,
            describe_origin=self._describe,
            poll=tuning.poll,
            slot_wait=tuning.slot_wait,
            clock=clock,
        )
        self._rejects = RejectLog(policy=config.on_invalid_record, path=config.rejected_records_path)
        self._batch: BatchBuilder | None = None
        self._next_batch_id = 1
        self._line_no = 0
        self._warned_streams: set[str] = set()
        self._warned_ignored: set[int] = set()
        self.records_read = 0
        self._started = clock()
        self._last_progress = self._started

    # ----- the generator ---------------------------------------------------------------------------

    def write(self, chunks: Iterable[bytes]) -> Iterator[MutableMapping[str, Any]]:
        """Consume input chunks; yield each state message once it is safe. Cleans up however it ends."""
        ok = False
        try:
            pending = b""
            for chunk in chunks:
                self._now = self._wall_now()
                if chunk:
                    lines = (pending + chunk).split(b"\n") if pending else chunk.split(b"\n")
                    pending = lines.pop()
                    try:
                        self._handle_lines(lines)
                    except InvalidInput:
                        yield from self._drain_then_fail()
                        raise
                yield from self._housekeeping()
            if pending:
                try:
                    self._handle_line(pending)
                except InvalidInput:
                    yield from self._drain_then_fail()
                    raise
            yield from self._finish()
            ok = True
        finally:
            self._shutdown(ok)

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
                add_record(index, data)
            else:  # unusual (a state, a bad line, an unknown stream): `_handle_line` says what it is
                self._line_no -= 1
                self._handle_line(line)

    def _handle_line(self, line: bytes) -> None:
        self._line_no += 1
        try:
            message = _LOADS(line)
        except orjson.JSONDecodeError:
            if line.strip():
                self._bad_line("is not valid JSON")
            return
        kind = message.get("type") if type(message) is dict else None
        if kind == "RECORD":
            self._handle_record(message)
        elif kind == "STATE":
            self._handle_state(message)
        elif kind not in _IGNORED_TYPES:
            self._bad_line("is not an Airbyte message (no known `type`)")

    def _handle_record(self, message: dict) -> None:
        record = message.get("record")
        if type(record) is not dict:
            self._bad_line("is a RECORD message without a `record` object")
            return
        index = self._index.find(record.get("namespace"), record.get("stream"))
        if index is None:
            self._warn_unknown_stream(record)
            return
        self._add_record(index, record.get("data"))

    def _add_record(self, index: int, data: Any) -> None:
        """Count a record of stream `index`, then add its event to the open batch or reject it."""
        self.records_read += 1
        counts = self.checkpoints.records
        position = counts[index] = counts[index] + 1
        try:
            if type(data) is not dict:
                raise InvalidRecord("data", "the record's `data` is not an object")
            encoded = self._encoders[index](data)
        except InvalidRecord as invalid:
            self._reject(index, position, invalid, data)
            return
        batch = self._batch or self._open_batch()
        if batch.add(encoded, stream_index=index, record_position=position, input_line=self._line_no):
            self._close_batch()

    def _handle_state(self, message: dict) -> None:
        self.checkpoints.add_state(message, scope=self._state_scope(message), input_line=self._line_no)

    def _state_scope(self, message: dict) -> int:
        state = message.get("state")
        if type(state) is not dict:
            return GLOBAL
        if state.get("type") == "STREAM":
            descriptor = (state.get("stream") or {}).get("stream_descriptor") or {}
            index = self._index.find(descriptor.get("namespace"), descriptor.get("name"))
            return UNKNOWN_STREAM if index is None else index
        return GLOBAL  # GLOBAL, LEGACY (no type), or an unknown future type: wait for everything

    # ----- batches ---------------------------------------------------------------------------------

    def _open_batch(self) -> BatchBuilder:
        limits = self._config.batch
        batch = BatchBuilder(batch_id=self._next_batch_id, spool_dir=self._spool_dir,
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
        for job in self._pipeline.take_finished():
            self._settle_job(job)

    def _settle_job(self, job: ImportJob) -> None:
        for failed in job.failed_lines:
            if failed.origin is not None:
                self.checkpoints.reject_late(failed.origin.stream_index, failed.origin.input_line)
        self.checkpoints.batch_done(job.batch.batch_id)

    def _finish(self) -> Iterator[MutableMapping[str, Any]]:
        """End of input: upload the last batch, wait for every import, echo the remaining states."""
        self._close_batch()
        yield from self._wait_for_all_imports()
        self._log_summary()

    def _wait_for_all_imports(self) -> Iterator[MutableMapping[str, Any]]:
        while self._pipeline.busy or self.checkpoints.unfinished_batches:
            self._pipeline.wait_for_progress(self._tuning.idle_tick_seconds)
            self._collect_finished()
            yield from self.checkpoints.ready()
            self._maybe_log_progress()
            if not self._pipeline.busy and self.checkpoints.unfinished_batches:
                self._collect_finished()
                if self.checkpoints.unfinished_batches:
                    # Never wait forever: a batch that is neither running nor done can no longer finish.
                    raise ScarfError(
                        f"{self.checkpoints.unfinished_batches} batch(es) stopped without finishing their import, "
                        "so no state past them was saved. Re-run the sync; it resumes from the last saved state."
                    )
        yield from self.checkpoints.ready()

    def _drain_then_fail(self) -> Iterator[MutableMapping[str, Any]]:
        """Before failing on bad input: import the records before it and echo the states they allow.

        Every state echoed here came before the bad record, so a re-run resumes at or before it.
        """
        self._close_batch()
        yield from self._wait_for_all_imports()

    def _shutdown(self, ok: bool) -> None:
        if not ok:
            aborted = self._pipeline.abort_all()
            if aborted:
                logger.warning("Aborted %d in-flight import(s) of this sync: %s", len(aborted), ", ".join(aborted))
        self._pipeline.close()
        if self._batch is not None:
            self._batch.discard()
        self._compressor.shutdown(wait=True)
        self._rejects.close()
        shutil.rmtree(self._spool_dir, ignore_errors=True)

    # ----- problems --------------------------------------------------------------------------------

    def _reject(self, index: int, position: int, invalid: InvalidRecord, data: Any) -> None:
        stream = self._streams[index]
        where = LineOrigin(stream_index=index, record_position=position, input_line=self._line_no)
        if self._rejects.policy == "fail":
            raise InvalidInput(
                f"Record #{position} of stream '{stream.label}' (input line {self._line_no}) cannot become a "
                f"Scarf event: {invalid.field} {invalid.reason}. Fix the source data or the field mapping, or "
                "set on_invalid_record to skip to count such records as rejected and go on."
            )
        self.checkpoints.rejected[index] += 1
        self._rejects.record(self._describe(where), invalid, stream=stream, origin=where, data=data)

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
        p = self._pipeline
        self._warn_ignored_fields()
        logger.info(
            "Progress: %d records read, %d events sent, %d imports in flight, %d done, %d events imported, "
            "%d failed, %d states waiting", self.records_read, p.events_uploaded, p.in_flight, p.imports_done,
            p.events_imported, p.events_failed, self.checkpoints.pending_states,
        )

    def _warn_ignored_fields(self) -> None:
        """Once per stream: name the `$` keys that are not Scarf fields and were dropped (names, not values)."""
        for index, mapper in enumerate(self._mappers):
            if mapper.ignored_fields and index not in self._warned_ignored:
                self._warned_ignored.add(index)
                logger.warning("Stream '%s': dropped %d `$` field(s) that are not Scarf fields: %s",
                               self._streams[index].label, len(mapper.ignored_fields),
                               ", ".join(sorted(mapper.ignored_fields)[:10]))

    def _log_summary(self) -> None:
        self._warn_ignored_fields()
        p = self._pipeline
        duration = max(self._clock() - self._started, 1e-9)
        logger.info(
            "Sync summary: %d records read, %d events sent in %d imports, %d imported, %d failed, %d rejected "
            "before upload, %d states echoed, %.1f s (%.0f records/s), %.1f MB sent",
            self.records_read, p.events_uploaded, p.imports_started, p.events_imported, p.events_failed,
            self._rejects.count, self.checkpoints.echoed, duration, self.records_read / duration,
            p.wire_bytes / 1e6,
        )
