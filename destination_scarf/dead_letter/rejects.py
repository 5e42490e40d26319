"""Rejected records: counted, the first reasons logged, and kept in a file and/or a dead-letter store.

Two kinds are kept: records refused before upload (under `on_invalid_record: skip`) and events Scarf
failed (under `on_failed_events: warn`), traced back to their records. Logs name the stream, record
position, field and reason, never the record's values. What is kept is the user's own data, so each
entry carries it whole: the record's Airbyte message byte for byte (exact digits, any depth), for a
refused record and for an event Scarf failed alike (the batch kept its records' input lines until its
import was settled), ready to be fixed and replayed with one recipe
(`jq -c '.message // empty' rejected.ndjson | destination-scarf write ...`); a failed event also
carries the event as it was sent.

- The local file (`rejected_records_path`, for `docker run` pipelines with a mounted volume) is created
  readable by its owner only, a symlink is never followed, and it is opened before any input is read
  (`check` validates the path too), so a bad path fails at once, not at the first bad row.
- The dead-letter store (`object_storage_config`, see dead_letter/) outlives an Airbyte pod. Its
  writes are batched; `flush()` runs before any state that covers a buffered entry is echoed (the
  states before `first_unstored_line` need not wait for it), and a failed write fails the sync: a
  rejected record is never dropped in silence. Every write is bounded (`store.bounded`): it wakes on a
  cancel, says in the log that it waits, and on the way out of a failed or cancelled sync gets only
  a few seconds; while a write given up on still runs (it holds the store), no other is waited for.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from destination_scarf.dead_letter.settings import JOB_ID_ENV, S3Settings, job_folder, new_attempt_id
from destination_scarf.dead_letter.store import S3DeadLetterStore, bounded
from destination_scarf.errors import ScarfConfigError, ScarfError, ScarfTransientError

logger = logging.getLogger("airbyte")

#: How many rejections are logged one by one; the rest are only counted (and kept in the file).
LOGGED_REASONS = 10
#: How long one write to the dead-letter store may take (botocore's retries included) before the sync fails...
STORE_WRITE_SECONDS = 120.0
#: ...and on the way out of a failed or cancelled sync, where time is short (then it does not wake on the cancel).
STORE_WRITE_SECONDS_STOPPING = 5.0


def rejects_path_problem(path: str) -> str | None:
    """Why the rejected-records file cannot be used, or None. Looks without creating anything."""
    target = Path(path)
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        parent = target.parent
        if not parent.is_dir():
            return f"rejected_records_path {path}: the folder {parent} does not exist"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"rejected_records_path {path}: the folder {parent} is not writable"
        return None
    except OSError as error:
        return f"rejected_records_path {path} cannot be read ({type(error).__name__})"
    if stat.S_ISLNK(info.st_mode):
        return f"rejected_records_path {path} is a symbolic link; give the real file's path"
    if stat.S_ISDIR(info.st_mode):
        return f"rejected_records_path {path} is a folder; give a file path inside it"
    if not stat.S_ISREG(info.st_mode):
        return f"rejected_records_path {path} is not a regular file"
    if not os.access(target, os.W_OK):
        return f"rejected_records_path {path} is not writable"
    return None


class RejectLog:
    """Where a sync's rejected records go: counted, the first ones logged, kept in the file and the store."""

    def __init__(self, *, path: str | None, store: S3Settings | None = None, cancelled: threading.Event | None = None,
                 store_write_seconds: float = STORE_WRITE_SECONDS, job_id: int | str | None = None) -> None:
        """`job_id` is the configured catalog's `sync_id` (Airbyte's job id), when it has one: it names the store's
        folder, the one Airbyte links as the sync's rejected records."""
        self._path = path
        self._job_id = job_id
        self._store_settings = store
        self._store: S3DeadLetterStore | None = None
        self._cancelled = cancelled if cancelled is not None else threading.Event()
        self._store_write_seconds = store_write_seconds
        self._fd: int | None = None
        self.count = 0
        self.bad_lines = 0
        self.failed_events = 0
        #: The input line of the first entry that is not in the store yet (None: all are): states before it
        #: cover no entry that could still be lost.
        self.first_unstored_line: int | None = None
        #: Set once a store call that `bounded` stopped waiting for (a cancel, or its time ran out) has ended. Until
        #: then it holds the store's lock, so no other write can start: none is waited for meanwhile.
        self._abandoned: threading.Event | None = None

    @property
    def keeps_entries(self) -> bool:
        return bool(self._path) or self._store_settings is not None

    def open(self) -> None:
        """Open the file (creating it, mode 0600) and the store; a config error if either cannot be used."""
        if self._store_settings is not None and self._store is None:
            # The job's folder, where Airbyte's link to the sync's rejected records points; this attempt's objects are
            # named apart from the other attempts' in it.
            attempt = new_attempt_id()
            folder, source = job_folder(catalog_sync_id=self._job_id, environment_job_id=os.environ.get(JOB_ID_ENV),
                                        attempt_id=attempt)
            self._store = S3DeadLetterStore(self._store_settings, folder, attempt)
            logger.info("Rejected records of this sync go to %s (job folder: %s), as %s", self._store.location,
                        source, self._store.objects)
        if not self._path or self._fd is not None:
            return
        problem = rejects_path_problem(self._path)
        if problem is None:
            try:
                self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                                   0o600)
                return
            except OSError as error:
                problem = f"rejected_records_path {self._path} cannot be opened ({type(error).__name__})"
        raise ScarfConfigError(f"The destination's configuration is not valid: {problem}.")

    def invalid_record(self, *, where: str, stream: str, namespace: str | None, record_position: int,
                       input_line: int, field: str, reason: str, message: bytes) -> None:
        """A record that could not become a valid event was skipped; `message` is its input line as received."""
        self.count += 1
        self._log(f"Skipped {where}: {field} {reason}")
        self._write({
            "stream": stream, "namespace": namespace, "record_position": record_position,
            "input_line": input_line, "field": field, "reason": reason,
        }, input_line=input_line, message=message)

    def failed_event(self, *, where: str, stream: str, namespace: str | None, record_position: int,
                     input_line: int, kind: str, reason: str, import_id: str, event: bytes | None,
                     message: bytes | None = None) -> None:
        """An event Scarf failed (kept under `on_failed_events: warn`), with its record's input line as received
        (`message`) and the event line as it was sent."""
        self.failed_events += 1
        if self.failed_events <= LOGGED_REASONS:
            logger.warning("Scarf failed %s (import %s): %s", where, import_id,
                           kind + (f" ({reason})" if reason else ""))
        self._write({
            "stream": stream, "namespace": namespace, "record_position": record_position,
            "input_line": input_line, "reason": f"Scarf could not import the event: {kind}",
            "scarf_message": reason, "import_id": import_id,
        }, input_line=input_line, message=message, event=event)

    def bad_line(self, line_no: int, what: str) -> None:
        """An input line that is not a usable Airbyte message was skipped (its content is not kept: it may not
        even be text)."""
        self.bad_lines += 1
        self._log(f"Skipped input line {line_no}: it {what}")
        self._write({"input_line": line_no, "reason": f"the line {what}"}, input_line=line_no)

    def _log(self, text: str) -> None:
        total = self.count + self.bad_lines
        if total <= LOGGED_REASONS:
            logger.warning(text)
        if total == LOGGED_REASONS:
            logger.warning("Further skipped records are counted but not logged one by one.")

    def _write(self, entry: dict[str, Any], *, input_line: int, message: bytes | None = None,
               event: bytes | None = None) -> None:
        if not self.keeps_entries:
            return
        data = orjson.dumps(entry)
        # The message or event is valid JSON (it was parsed, or written by us): spliced in, never re-serialized.
        if message is not None:
            data = data[:-1] + b',"message":' + message.strip() + b"}"
        if event is not None:
            data = data[:-1] + b',"event":' + event.strip() + b"}"
        line = data + b"\n"
        if self._fd is not None:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view):]
        store = self._store
        if store is not None:
            first = self.first_unstored_line
            self.first_unstored_line = input_line if first is None else min(first, input_line)
            if store.writes_with(line):
                self._store_call(lambda: store.add(line), stopping=False)
            else:
                store.add(line)
            if not store.buffered:
                self.first_unstored_line = None

    def flush(self, *, stopping: bool = False) -> None:
        """Write what the store buffers (before a state that covers it is echoed); raises if it cannot. While the
        sync is `stopping` the write gets only a few seconds, and a cancel does not cut it short."""
        store = self._store
        if store is not None and store.buffered:
            self._store_call(store.flush, stopping=stopping)
            self.first_unstored_line = None

    def _store_call(self, call: Callable[[], None], *, stopping: bool) -> None:
        assert self._store is not None
        doing = f"writing rejected records to {self._store.location}"
        if self._abandoned is not None and not self._abandoned.is_set():
            # Waiting would be for nothing: this write could only start once the earlier one ends, which botocore's
            # own timeouts allow to take minutes. (A cancelled sync would wait out STORE_WRITE_SECONDS_STOPPING for
            # each of its last writes, on top of the cancel's own few seconds.)
            raise ScarfTransientError(
                f"The rejected-records store could not finish {doing}: an earlier write is still waiting for "
                "the S3 endpoint, which accepts connections but does not answer. Check object_storage_config "
                "(s3_endpoint, region) and the network, then re-run the sync (it resumes from the last saved state).")
        ended = threading.Event()

        def tracked() -> None:
            try:
                call()
            finally:
                ended.set()

        try:
            if stopping:
                bounded(tracked, doing=doing, seconds=STORE_WRITE_SECONDS_STOPPING)
            else:
                bounded(tracked, doing=doing, seconds=self._store_write_seconds, cancelled=self._cancelled)
        except BaseException:
            if not ended.is_set():  # given up on while it runs (a cancel, or its time ran out)
                self._abandoned = ended
            raise

    def close(self, *, ok: bool = True) -> None:
        """Close the file and the store. After a failed sync a store that cannot be written is logged, so that
        the sync's first error stays the one reported; after a good one it fails the sync."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        store = self._store
        stored = store is not None
        if store is not None:
            try:
                self._store_call(store.close, stopping=not ok)
                self.first_unstored_line = None
            except ScarfError as error:
                if ok:
                    raise
                stored = False
                logger.warning("Rejected records could not be written to %s: %s", store.location, error.message)
            finally:
                self._store = None
        if self.count or self.bad_lines or self.failed_events:
            kept = [str(place) for place in (self._path, store.location if store and stored else None) if place]
            where = f"; they are kept in {' and '.join(kept)}" if kept else ""
            logger.warning("Skipped %d invalid record(s), %d unreadable input line(s) and %d event(s) Scarf failed%s.",
                           self.count, self.bad_lines, self.failed_events, where)
