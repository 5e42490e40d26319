"""Import batches on disk: events serialized to NDJSON and gzip-compressed into files of a locked spool folder.

A batch never holds its events in memory: encoded lines collect in a small buffer that is compressed
into a spool file every `_FLUSH_BYTES`, so memory stays flat whatever the stream length. For each line
the batch remembers where it came from (stream, position of the record in its stream, input line),
which is how a failed line in Scarf's import log is traced back to a record the user can find.
A closed batch is a `Batch` (scarf/import_job.py), what an import is made of.

When events Scarf fails are kept aside (`on_failed_events: warn` with a rejected-records file or store), each
record's input line is kept too, until the batch's import is settled: as a second gzip stream beside the
batch's spool file, line for line with the events, read back only for the lines Scarf failed. So a failed
event's entry carries the original record message, as a refused record's does, and one recipe replays both.

The spool folder: a sync holds an exclusive lock on a file in its folder for as long as it runs, and
the kernel drops that lock when the process ends, however it ends (SIGKILL included). So a folder
whose lock can be taken belongs to a sync that is gone, and every new sync removes such stale folders
before it starts: batches of record data are never left in the temp folder for good. The lock comes
first: a folder is made under a name of its own (`.destination-scarf-new-*`), locked, then renamed
into place, so every `destination-scarf-*` folder has its lock from birth. A new-named folder still
without its lock a minute later was left by a sync killed in that instant, and is removed too.
Folders of 0.1.0, which had no lock, are removed once nothing in them has changed for a day.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import stat
import tempfile
import time
from array import array
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

from isal import isal_zlib

from destination_scarf.scarf.import_job import Batch

logger = logging.getLogger("airbyte")

#: Compress in chunks of about this many bytes: large enough for ISA-L to be efficient (it releases
#: the GIL on big inputs), small enough to keep memory flat.
_FLUSH_BYTES = 1 << 20
#: Compressed chunks allowed to wait for the compressor thread (each up to _FLUSH_BYTES).
_MAX_PENDING = 4
#: wbits that produce a gzip container (header + trailer), which Scarf accepts with
#: `Content-Encoding: gzip`.
_GZIP_WBITS = 31


PREFIX = "destination-scarf-"
#: Where a spool folder is made and locked, before it is renamed to PREFIX-something.
_NEW_PREFIX = ".destination-scarf-new-"
#: A folder that is still new and unlocked this long after its last change was left by a killed sync.
_NEW_STALE_SECONDS = 60
_LOCK = ".lock"
#: A folder without a lock file (made by 0.1.0) is stale once it is this old.
_UNLOCKED_STALE_SECONDS = 24 * 3600



class BatchBuilder:
    """The open batch: accepts encoded events until a bound is reached, then `close()`s into a `Batch`.

    Compression (ISA-L's gzip, `isal`) runs on `compressor`, the spool's single-thread executor shared by the
    sync's batches: it releases the GIL, so gzip runs on the second core while the main thread parses and maps. Chunks
    are compressed in submission order (one thread), and at most `_MAX_PENDING` wait, so memory
    stays bounded even if compression falls behind.
    """

    def __init__(self, *, batch_id: int, spool_dir: Path, level: int, compressor: ThreadPoolExecutor,
                 stream_labels: Sequence[str], clock=time.monotonic, max_events: int = 1 << 62,
                 max_bytes: int = 1 << 62, keep_messages: bool = False) -> None:
        self.batch_id = batch_id
        self._stream_labels = stream_labels
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
        #: The records' input lines, kept beside the events (`add_kept`), or None when they are not kept.
        self.messages_path: Path | None = None
        self._messages: _Stream | None = None
        if keep_messages:
            self.messages_path = spool_dir / f"batch-{batch_id:06d}.messages.gz"
            self._messages = _Stream(self.messages_path, level)

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

    def add_kept(self, encoded: bytes, message: bytes, stream_index: int, record_position: int,
                 input_line: int) -> bool:
        """`add`, keeping the record's input line `message` beside its event (a batch made with `keep_messages`)."""
        messages = self._messages
        assert messages is not None, "a batch that keeps messages"
        kept = messages.buffer
        kept += message.strip()
        kept += b"\n"
        if len(kept) >= _FLUSH_BYTES:
            self._flush_messages()
        return self.add(encoded, stream_index, record_position, input_line)

    def _flush_messages(self) -> None:
        messages = self._messages
        if messages is not None and messages.buffer:
            chunk, messages.buffer = messages.buffer, bytearray()
            self._pending.append(self._executor.submit(messages.compress, chunk))
            while len(self._pending) > _MAX_PENDING:
                self._pending.popleft().result()

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
        if self._messages is not None:
            self._messages.finish()

    def close(self) -> Batch:
        """Finish the gzip stream (and the kept messages') and hand the batch over for upload."""
        self._flush()
        self._flush_messages()
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
            stream_labels=self._stream_labels,
            messages_path=self.messages_path,
        )

    def discard(self) -> None:
        """Drop an open batch (cancellation or failure): close and delete its spool file."""
        try:
            for future in self._pending:
                future.cancel()
            wait(self._pending)
            self._file.close()
            if self._messages is not None:
                self._messages.file.close()
        finally:
            self.path.unlink(missing_ok=True)
            if self.messages_path is not None:
                self.messages_path.unlink(missing_ok=True)


class _Stream:
    """A second gzip stream of a batch (its records' input lines): touched on the compressor thread only, but for
    `buffer`, which the batch fills."""

    def __init__(self, path: Path, level: int) -> None:
        self.file = open(path, "wb")  # noqa: SIM115 - open for the batch's life; closed in finish/discard
        self._zlib = isal_zlib.compressobj(level, isal_zlib.DEFLATED, _GZIP_WBITS)
        self.buffer = bytearray()

    def compress(self, chunk: bytearray) -> None:
        data = self._zlib.compress(chunk)
        if data:
            self.file.write(data)

    def finish(self) -> None:
        self.file.write(self._zlib.flush())
        self.file.close()


class Spool:
    """What a sync's batches need: a private temp folder, locked while it lives, and the gzip thread.

    Taken before any input is read (after removing the folders of syncs that are gone); `close()` waits
    for the gzip thread and removes the folder.
    """

    def __init__(self, *, root: str | None = None, gzip_level: int, stream_labels: Sequence[str]) -> None:
        remove_stale(root)
        self._level = gzip_level
        self._stream_labels = stream_labels
        # The lock first, then the name a cleaner judges: it can never see a spool folder without its lock.
        new = Path(tempfile.mkdtemp(prefix=_NEW_PREFIX, dir=root))
        self._lock_fd = os.open(new / _LOCK, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.path = new.with_name(PREFIX + new.name[len(_NEW_PREFIX):])
        os.rename(new, self.path)
        self._compressor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scarf-gzip")

    def new_batch(self, batch_id: int, *, max_events: int, max_bytes: int, clock=time.monotonic,
                  keep_messages: bool = False) -> BatchBuilder:
        return BatchBuilder(batch_id=batch_id, spool_dir=self.path, level=self._level, compressor=self._compressor,
                            stream_labels=self._stream_labels, clock=clock, max_events=max_events,
                            max_bytes=max_bytes, keep_messages=keep_messages)

    def close(self) -> None:
        self._compressor.shutdown(wait=True)
        shutil.rmtree(self.path, ignore_errors=True)
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def remove_stale(root: str | None = None, *, now: float | None = None) -> list[Path]:
    """Remove the spool folders of syncs that are gone (in `root`, default the temp folder); return them."""
    base = Path(root or tempfile.gettempdir())
    removed = []
    try:
        candidates = [entry for entry in base.iterdir() if entry.name.startswith((PREFIX, _NEW_PREFIX))]
    except OSError:
        return []
    for folder in candidates:
        try:
            if _is_stale(folder, now=time.time() if now is None else now):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
        except OSError:  # another user's folder, or one that vanished meanwhile: not ours to judge
            continue
    if removed:
        logger.info("Removed %d spool folder(s) left behind by earlier syncs that did not end cleanly.",
                    len(removed))
    return removed


def _is_stale(folder: Path, *, now: float) -> bool:
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return False  # a symlink or another user's folder is never removed
    try:
        fd = os.open(folder / _LOCK, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        unlocked_for = now - _newest_change(folder)
        if folder.name.startswith(_NEW_PREFIX):  # killed between making the folder and locking it
            return unlocked_for > _NEW_STALE_SECONDS
        return unlocked_for > _UNLOCKED_STALE_SECONDS  # a folder of 0.1.0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False  # a running sync holds it
        raise
    finally:
        os.close(fd)
    return True


def _newest_change(folder: Path) -> float:
    newest = os.lstat(folder).st_mtime
    for entry in folder.iterdir():
        newest = max(newest, os.lstat(entry).st_mtime)
    return newest
