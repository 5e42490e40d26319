"""The dead-letter store itself: rejected records buffered and written as numbered batch objects, one folder
per sync, and the probe `check` runs."""

from __future__ import annotations

import gzip
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from destination_scarf.dead_letter.s3 import _client, _failures, _put, translate_error
from destination_scarf.dead_letter.settings import (
    _SYNC_ID_PATTERN,
    CONNECTOR_FOLDER,
    DEFAULT_BATCH_BYTES,
    PROBE_TIMEOUTS,
    S3Settings,
    S3Timeouts,
)
from destination_scarf.errors import ScarfError, ScarfTransientError, SyncCancelled

logger = logging.getLogger("airbyte")

T = TypeVar("T")

#: How often a wait for the store looks for a cancel.
_POLL_SECONDS = 0.1
#: A wait for the store says so in the log this often.
LOG_EVERY_SECONDS = 10.0


#: What a cancel leaves undone when it cuts a write short (the cancel's message says it).
UNWRITTEN_ON_CANCEL = ("the rejected records not written are sent again by the next sync, which resumes from the "
                       "last saved state")


def bounded(call: Callable[[], T], *, doing: str, seconds: float, cancelled: threading.Event | None = None,
            clock: Callable[[], float] = time.monotonic, undone: str = UNWRITTEN_ON_CANCEL) -> T:
    """`call()` (an S3 call, with botocore's own timeouts and retries), waited for at most `seconds`, and not at all
    once `cancelled` is set; a log line every LOG_EVERY_SECONDS while it waits. `undone` is what a cancel leaves
    undone, for its message.

    botocore's bounds are per attempt (a connect and a read timeout, five attempts): against a store that accepts
    and never answers they add up to minutes, and nothing in botocore wakes on a cancel. So the call runs on a
    thread of its own, and the sync's thread waits for it here: on a cancel or past `seconds` the sync goes on
    without it (`SyncCancelled`, `ScarfTransientError`), and the thread, a daemon, ends with its own timeouts.
    """
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=run, name="scarf-dead-letter", daemon=True).start()
    started = clock()
    next_log = started + LOG_EVERY_SECONDS
    while not done.wait(_POLL_SECONDS):
        now = clock()
        if cancelled is not None and cancelled.is_set():
            raise SyncCancelled(f"The sync was cancelled while it was {doing}; {undone}.")
        if now - started >= seconds:
            raise ScarfTransientError(
                f"The rejected-records store did not finish {doing} within {seconds:g} s: the S3 endpoint accepts "
                "connections but does not answer in time. Check object_storage_config (s3_endpoint, region) and "
                "the network, then re-run the sync (it resumes from the last saved state).")
        if now >= next_log:
            logger.info("Still %s (for %.0f s so far, at most %g s)", doing, now - started, seconds)
            next_log += LOG_EVERY_SECONDS
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class S3DeadLetterStore:
    """Buffers NDJSON lines and writes them as numbered batch objects in one folder per job:
    `<bucket_path>/<folder>/rejected-<attempt>-00001.jsonl`, ...

    `folder` is the job's (`settings.job_folder`: the folder Airbyte links as the sync's rejected records);
    `attempt` names this attempt's objects, so that the attempts of one job, which share the folder, never
    overwrite each other's objects.

    `add` is thread-safe. A failed write raises and keeps the buffer and the part number, so a later
    `flush` (or `close`) writes the same object again: nothing is dropped and no part is skipped.
    """

    def __init__(self, settings: S3Settings, folder: str, attempt: str, *, batch_bytes: int = DEFAULT_BATCH_BYTES,
                 timeouts: S3Timeouts = S3Timeouts()) -> None:  # noqa: B008 - frozen
        for what, name in (("folder", folder), ("attempt", attempt)):
            if not _SYNC_ID_PATTERN.fullmatch(name):
                raise ValueError(f"{what} {name!r} must be letters, digits, '.', '_' or '-'")
        if batch_bytes < 1:
            raise ValueError("batch_bytes must be positive")
        self.settings = settings
        self.folder = folder
        self.attempt = attempt
        self.batch_bytes = batch_bytes
        #: The key prefix of this job's objects (the folder Airbyte links), ending with '/'.
        self.prefix = f"{settings.prefix}{folder}/"
        self.keys_written: list[str] = []
        self.lines_written = 0
        self._buffer = bytearray()
        self._buffered_lines = 0
        self._part = 1
        self._closed = False
        self._lock = threading.Lock()
        try:
            self._client = _client(settings, timeouts)
        except _failures() as error:
            raise translate_error(error, settings, doing="open the rejected-records store at",
                                  key=self.prefix) from None

    @property
    def location(self) -> str:
        """Where this sync's objects go, as an s3:// URL (for logs and the sync's summary): the job's folder."""
        return f"s3://{self.settings.bucket}/{self.prefix}"

    @property
    def objects(self) -> str:
        """This attempt's objects in the folder, as a pattern (for logs)."""
        return f"rejected-{self.attempt}-*{self._extension}"

    @property
    def _extension(self) -> str:
        return ".jsonl.gz" if self.settings.gzip else ".jsonl"

    @property
    def buffered(self) -> int:
        """Lines added but not written yet."""
        return self._buffered_lines

    def writes_with(self, line: bytes) -> bool:
        """Whether `add(line)` writes a batch object (the buffer would reach `batch_bytes`)."""
        return len(self._buffer) + len(line.rstrip(b"\r\n")) + 1 >= self.batch_bytes

    def _next_key(self) -> str:
        return f"{self.prefix}rejected-{self.attempt}-{self._part:05d}{self._extension}"

    def add(self, line: bytes) -> None:
        """Buffer one NDJSON line (a trailing newline is added if missing); write a batch when the buffer is full."""
        body = line.rstrip(b"\r\n")
        if b"\n" in body or b"\r" in body:
            raise ValueError("a dead-letter line must be one line of JSON, without inner line breaks")
        with self._lock:
            if self._closed:
                raise ValueError("the dead-letter store is closed")
            self._buffer += body + b"\n"
            self._buffered_lines += 1
            if len(self._buffer) >= self.batch_bytes:
                self._write_batch()

    def flush(self) -> None:
        """Write the buffered lines, if any, as the next batch object."""
        with self._lock:
            self._write_batch()

    def close(self) -> None:
        """Write what is buffered; then the store takes no more lines. Calling it again does nothing."""
        with self._lock:
            if self._closed:
                return
            self._write_batch()
            self._closed = True

    def _write_batch(self) -> None:
        if not self._buffer:
            return
        key = self._next_key()
        body = bytes(self._buffer)
        if self.settings.gzip:
            body = gzip.compress(body, mtime=0)
        _put(self._client, self.settings, key, body, doing="write rejected records to")
        self.keys_written.append(key)
        self.lines_written += self._buffered_lines
        self._buffer.clear()
        self._buffered_lines = 0
        self._part += 1

    def __enter__(self) -> S3DeadLetterStore:
        return self

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            self.close()
            return
        # The block failed already: still try to keep what is buffered, without hiding the first error.
        try:
            self.close()
        except ScarfError as error:
            logger.warning("%d rejected record(s) could not be written to %s: %s",
                           self._buffered_lines, self.location, error.message)


def probe(settings: S3Settings, *, timeouts: S3Timeouts = PROBE_TIMEOUTS) -> str:
    """Write and delete a small object where a sync would write, raising what a sync would; returns its key.

    For `check`: a wrong bucket, region, endpoint or credential fails here in seconds, with the same
    `ScarfConfigError`/`ScarfTransientError` a sync would raise at its first rejected record.
    """
    key = f"{settings.prefix}_{CONNECTOR_FOLDER}-check-{secrets.token_hex(4)}.jsonl"
    try:
        client = _client(settings, timeouts)
    except _failures() as error:
        raise translate_error(error, settings, doing="check the rejected-records store at", key=key) from None
    _put(client, settings, key, b'{"check":"destination-scarf"}\n', doing="write a check object to")
    try:
        client.delete_object(Bucket=settings.bucket, Key=key)
    except _failures() as error:
        raise translate_error(error, settings, doing="delete the check object", key=key,
                              permission="s3:DeleteObject (check deletes its probe object)") from None
    return key
