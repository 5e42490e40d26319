"""Import batches: events serialized to NDJSON, gzip-compressed into a spool file, with their provenance.

A batch never holds its events in memory: encoded lines collect in a small buffer that is compressed
into a temporary file every `_FLUSH_BYTES`, so memory stays flat whatever the stream length. For each
line the batch remembers where it came from (stream, position of the record in its stream, input
line), which is how a failed line in Scarf's import log is traced back to a record the user can find.
"""

from __future__ import annotations

import gzip
import os
import time
from array import array
from collections import deque
from concurrent.futures import Executor, Future, wait
from dataclasses import dataclass
from pathlib import Path

from isal import isal_zlib

#: Compress in chunks of about this many bytes: large enough for ISA-L to be efficient (it releases
#: the GIL on big inputs), small enough to keep memory flat.
_FLUSH_BYTES = 1 << 20
#: Compressed chunks allowed to wait for the compressor thread (each up to _FLUSH_BYTES).
_MAX_PENDING = 4
#: wbits that produce a gzip container (header + trailer), which Scarf accepts with
#: `Content-Encoding: gzip`.
_GZIP_WBITS = 31


@dataclass(frozen=True)
class LineOrigin:
    """Where an event line of a batch came from."""

    stream_index: int
    record_position: int  # 1-based position of the record within its stream, in this sync
    input_line: int  # 1-based line of the connector's input


class BatchBuilder:
    """The open batch: accepts encoded events until a bound is reached, then `close()`s into a `Batch`.

    Compression (ISA-L's gzip, `isal`) runs on `compressor`, a single-thread executor shared by the writer's
    batches: it releases the GIL, so gzip runs on the second core while the main thread parses and maps. Chunks
    are compressed in submission order (one thread), and at most `_MAX_PENDING` wait, so memory
    stays bounded even if compression falls behind.
    """

    def __init__(self, *, batch_id: int, spool_dir: Path, level: int, compressor: Executor,
                 clock=time.monotonic, max_events: int = 1 << 62, max_bytes: int = 1 << 62) -> None:
        self.batch_id = batch_id
        self._max_events = max_events
        self._max_bytes = max_bytes
        self.path = spool_dir / f"batch-{batch_id:06d}.ndjson.gz"
        self._file = open(self.path, "wb")  # noqa: SIM115 - open for the batch's life; closed in _finish/discard
        self._zlib = isal_zlib.compressobj(level, isal_zlib.DEFLATED, _GZIP_WBITS)
        self._executor = compressor
        self._pending: deque[Future] = deque()
        self._buffer = bytearray()
        self.raw_bytes = 0
        self.wire_bytes = 0
        self.opened_at = clock()
        self.stream_indexes = array("H")
        self.record_positions = array("Q")
        self.input_lines = array("Q")

    @property
    def events(self) -> int:
        return len(self.input_lines)

    def add(self, encoded: bytes, stream_index: int, record_position: int, input_line: int) -> bool:
        """Append one encoded event (a JSON object followed by a newline); True when the batch is now full
        (it holds `max_events` events or `max_bytes` uncompressed bytes) and should be closed.

        Positional arguments only: this runs once per record."""
        buffer = self._buffer
        buffer += encoded
        self.stream_indexes.append(stream_index)
        self.record_positions.append(record_position)
        lines = self.input_lines
        lines.append(input_line)
        if len(buffer) >= _FLUSH_BYTES:
            self._flush()
        return len(lines) >= self._max_events or self.raw_bytes + len(buffer) >= self._max_bytes

    def _flush(self) -> None:
        if self._buffer:
            chunk, self._buffer = self._buffer, bytearray()
            self.raw_bytes += len(chunk)
            self._pending.append(self._executor.submit(self._compress, chunk))
            while len(self._pending) > _MAX_PENDING:
                self._pending.popleft().result()

    def _compress(self, chunk: bytearray) -> None:
        """On the compressor thread: the only place that touches the zlib stream and the spool file."""
        data = self._zlib.compress(chunk)
        if data:
            self._file.write(data)
            self.wire_bytes += len(data)

    def _finish(self) -> None:
        tail = self._zlib.flush()
        self._file.write(tail)
        self.wire_bytes += len(tail)
        self._file.close()

    def close(self) -> Batch:
        """Finish the gzip stream and hand the batch over for upload."""
        self._flush()
        self._pending.append(self._executor.submit(self._finish))
        while self._pending:
            self._pending.popleft().result()
        return Batch(
            batch_id=self.batch_id,
            path=self.path,
            events=self.events,
            raw_bytes=self.raw_bytes,
            wire_bytes=self.wire_bytes,
            streams=frozenset(self.stream_indexes),
            stream_indexes=self.stream_indexes,
            record_positions=self.record_positions,
            input_lines=self.input_lines,
        )

    def discard(self) -> None:
        """Drop an open batch (cancellation or failure): close and delete its spool file."""
        try:
            for future in self._pending:
                future.cancel()
            wait(self._pending)
            self._file.close()
        finally:
            _unlink(self.path)


@dataclass(eq=False)
class Batch:
    """A closed batch, ready to become an import. Its spool file is deleted once the import is done."""

    batch_id: int
    path: Path
    events: int
    raw_bytes: int
    wire_bytes: int
    streams: frozenset[int]
    stream_indexes: array
    record_positions: array
    input_lines: array

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

    def read_lines(self, numbers: set[int]) -> dict[int, bytes]:
        """Lines `numbers` (1-based) of the batch as sent, read back from the spool file (for failed events)."""
        found: dict[int, bytes] = {}
        if not numbers:
            return found
        with gzip.open(self.path, "rb") as body:
            for number, line in enumerate(body, start=1):
                if number in numbers:
                    found[number] = line.rstrip(b"\n")
                    if len(found) == len(numbers):
                        break
        return found

    def delete_spool(self) -> None:
        _unlink(self.path)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
