"""What happens to each message: records become events in the open batch, states go to the checkpoints.

`Ingest` is the writer's per-message half (the writer decides *when* things happen; this decides
*what*): the reader hands it each RECORD and STATE; a record is mapped and encoded, then either
added to the open batch or rejected (per `on_invalid_record`); a full or aged batch is closed and
handed to `submit`; a settled import's outcome is told to the checkpoints. It owns the batches'
resources: the spool folder and the gzip thread, taken in `open()` and released in `close()`.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from destination_scarf.config import ScarfConfig
from destination_scarf.dead_letter.rejects import RejectLog
from destination_scarf.errors import InvalidInput
from destination_scarf.mapping import EventMapper, InexactNumber, InvalidRecord, compile_mapper
from destination_scarf.scarf.import_job import Outcome
from destination_scarf.sync.batching import Batch, BatchBuilder, LineOrigin
from destination_scarf.sync.catalog import StreamIndex, StreamInfo
from destination_scarf.sync.checkpoints import GLOBAL, Checkpoints
from destination_scarf.sync.reader import InputReader, exact_data
from destination_scarf.sync.spool import SpoolDir, remove_stale

#: What to do about a record that cannot become an event, as a sync under `on_invalid_record: fail` says it
#: (and `preview` repeats it, so that both give the same advice).
INVALID_RECORD_HINT = ("Fix the source data or the field mapping, or set on_invalid_record to skip to count such "
                       "records as rejected and go on.")
#: Likewise for an input line that is not a usable Airbyte message.
BAD_LINE_HINT = ("The destination reads one Airbyte message (JSON) per line; check what feeds its standard input, "
                 "or set on_invalid_record to skip.")


def compile_mappers(config: ScarfConfig, streams: list[StreamInfo],
                    now: Callable[[], datetime.datetime]) -> list[EventMapper]:
    """One mapper per stream, in catalog order: what a sync maps with, and what `preview` shows."""
    return [compile_mapper(config=config.mapping, stream=s.name, namespace=s.namespace, primary_key=s.primary_key,
                           now=now) for s in streams]



def start_windows(mappers: list[EventMapper], scope: int) -> None:
    """A state of `scope` starts a new window for counting identical records (see UniqueIds.content_id): for
    every stream after a GLOBAL state, for its own stream after a STREAM state."""
    if scope == GLOBAL:
        for mapper in mappers:
            mapper.new_window()
    elif scope >= 0:
        mappers[scope].new_window()

class Ingest:
    def __init__(self, *, config: ScarfConfig, streams: list[StreamInfo], clock: Callable[[], float],
                 now: Callable[[], datetime.datetime], describe: Callable[[LineOrigin], str]) -> None:
        self._config = config
        self._streams = streams
        self._clock = clock
        self._describe = describe
        # The mappers read "now" (for Scarf's one-week window) from a value refreshed once per input chunk
        # (`tick`): a clock call per record would cost more than the check, and a chunk spans milliseconds.
        self._wall_now = now
        self._now = now()
        self.mappers: list[EventMapper] = compile_mappers(config, streams, lambda: self._now)
        self._encoders = [mapper.encode for mapper in self.mappers]
        index = StreamIndex(streams)
        self.checkpoints = Checkpoints(stream_count=len(streams), find_stream=index.find)
        self.reader = InputReader(index=index, add_record=self._add_record, add_state=self._add_state,
                                  bad_line=self.bad_line, on_trace=self._on_trace)
        self.rejects = RejectLog(policy=config.on_invalid_record, path=config.rejected_records_path,
                                 store=config.dead_letter)
        self.submit: Callable[[Batch], None] = lambda batch: None  # set by the writer: hands a batch over
        self._batch: BatchBuilder | None = None
        self._spool: SpoolDir | None = None
        self._compressor: ThreadPoolExecutor | None = None

    # ----- resources -------------------------------------------------------------------------------

    def open(self, *, spool_root: str | None) -> None:
        """Before any input is read: the rejected-records file (a bad path fails here), the spool folder
        (after removing those of syncs that are gone) and the gzip thread."""
        self.rejects.open()
        remove_stale(spool_root)
        self._spool = SpoolDir(root=spool_root)
        self._compressor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scarf-gzip")

    def close(self, *, ok: bool) -> None:
        try:
            self.discard_open_batch()
            if self._compressor is not None:
                self._compressor.shutdown(wait=True)
        finally:
            try:
                self.rejects.close(ok=ok)
            finally:
                if self._spool is not None:
                    self._spool.close()

    # ----- messages --------------------------------------------------------------------------------

    @property
    def records_read(self) -> int:
        """Records of the catalog's streams read so far (batched or rejected)."""
        return self.checkpoints.records_read

    def tick(self) -> None:
        """A new input chunk: refresh the "now" of the time-window check."""
        self._now = self._wall_now()

    def _add_record(self, index: int, data: Any, line: bytes, line_no: int) -> None:
        """The hot path: a record of stream `index` becomes an event of the open batch, or is rejected."""
        try:
            if type(data) is not dict:
                raise InvalidRecord("data", "the record's `data` is not an object")
            try:
                encoded = self._encoders[index](data)
            except InexactNumber:  # rare: a huge integer the fast parser read as a float; read the line exactly
                encoded = self._encoders[index](exact_data(line))
        except InvalidRecord as invalid:
            self._reject(index, invalid, line, line_no)
            return
        position = self.checkpoints.record_batched(index)
        batch = self._batch or self._open_batch()
        if batch.add(encoded, index, position, line_no):
            self.close_batch()

    def _add_state(self, message: dict, line: bytes) -> None:
        start_windows(self.mappers, self.checkpoints.state_received(message, input_line=self.reader.line_no))

    def _on_trace(self, message: dict) -> None:
        """A STREAM_STATUS COMPLETE trace: that stream sends no more, so its last states need not wait for the
        batch's age: the open batch is closed at once."""
        trace = message.get("trace")
        status = trace.get("stream_status") if type(trace) is dict else None
        if type(status) is dict and status.get("status") == "COMPLETE" and self._batch is not None:
            self.close_batch()

    def _reject(self, index: int, invalid: InvalidRecord, line: bytes, line_no: int) -> None:
        stream = self._streams[index]
        position = self.checkpoints.record_rejected(index)
        if self.rejects.policy == "fail":
            raise InvalidInput(
                f"Record #{position} of stream '{stream.label}' (input line {line_no}) cannot become a "
                f"Scarf event: {invalid.field} {invalid.reason}. {INVALID_RECORD_HINT}"
            )
        where = LineOrigin(stream_index=index, record_position=position, input_line=line_no)
        self.rejects.record(self._describe(where), invalid, stream=stream, origin=where, line=line)

    def bad_line(self, what: str) -> None:
        """An input line that is not a usable Airbyte message. Its content is never logged."""
        if self.rejects.policy == "fail":
            raise InvalidInput(
                f"Input line {self.reader.line_no} {what}. {BAD_LINE_HINT}"
            )
        self.rejects.bad_line(self.reader.line_no, what)

    # ----- batches ---------------------------------------------------------------------------------

    def _open_batch(self) -> BatchBuilder:
        limits = self._config.batch
        assert self._spool is not None and self._compressor is not None, "open() comes first"
        self._batch = BatchBuilder(batch_id=self.checkpoints.open_batch, spool_dir=self._spool.path,
                                   level=self._config.gzip_level, compressor=self._compressor, clock=self._clock,
                                   max_events=limits.max_events, max_bytes=limits.max_bytes)
        return self._batch

    def close_batch(self) -> None:
        """Hand the open batch over for import (nothing happens when no batch is open)."""
        batch, self._batch = self._batch, None
        if batch is None:
            return
        closed = batch.close()
        self.checkpoints.batch_closed()
        self.submit(closed)

    def close_aged_batch(self) -> None:
        """Close the open batch once it is `batch_max_age_seconds` old, so states keep flowing on slow sources."""
        batch = self._batch
        if batch is not None and self._clock() - batch.opened_at >= self._config.batch.max_age_seconds:
            self.close_batch()

    def discard_open_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch is not None:
            batch.discard()
            self.checkpoints.batch_discarded()

    def settle(self, outcome: Outcome) -> None:
        """An import is settled (done, failures handled per policy): keep the events Scarf failed, then tell the
        checkpoints, which count them as rejected with the first state after each record."""
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
        if not failed or not self.rejects.keeps_entries or outcome.result is None:
            return
        events = outcome.batch.read_lines({f.line for f in failed})
        for line in failed:
            origin = line.origin
            assert origin is not None
            self.rejects.failed_event(self._describe(origin), stream=self._streams[origin.stream_index],
                                      origin=origin, kind=line.kind, reason=line.message,
                                      import_id=outcome.result.id, event=events.get(line.line))
