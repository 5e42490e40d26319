"""The dead-letter store itself: rejected records buffered and written as numbered batch objects, one folder
per sync, and the probe `check` runs."""

from __future__ import annotations

import gzip
import logging
import secrets
import threading
from typing import Any

from destination_scarf.dead_letter.s3 import _client, _failures, _put, translate_error
from destination_scarf.dead_letter.settings import (
    _SYNC_ID_PATTERN,
    DEFAULT_BATCH_BYTES,
    PROBE_TIMEOUTS,
    S3Settings,
    S3Timeouts,
)
from destination_scarf.errors import ScarfError

logger = logging.getLogger("airbyte")


class S3DeadLetterStore:
    """Buffers NDJSON lines and writes them as numbered batch objects under one folder per sync.

    `add` is thread-safe. A failed write raises and keeps the buffer and the part number, so a later
    `flush` (or `close`) writes the same object again: nothing is dropped and no part is skipped.
    """

    def __init__(self, settings: S3Settings, sync_id: str, *, batch_bytes: int = DEFAULT_BATCH_BYTES,
                 timeouts: S3Timeouts = S3Timeouts()) -> None:  # noqa: B008 - frozen
        if not _SYNC_ID_PATTERN.fullmatch(sync_id):
            raise ValueError(f"sync_id {sync_id!r} must be letters, digits, '.', '_' or '-'")
        if batch_bytes < 1:
            raise ValueError("batch_bytes must be positive")
        self.settings = settings
        self.sync_id = sync_id
        self.batch_bytes = batch_bytes
        #: The key prefix of this sync's objects, ending with '/'.
        self.prefix = f"{settings.folder}/{sync_id}/"
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
        """Where this sync's objects go, as an s3:// URL (for logs and the sync's summary)."""
        return f"s3://{self.settings.bucket}/{self.prefix}"

    @property
    def buffered(self) -> int:
        """Lines added but not written yet."""
        return self._buffered_lines

    def _next_key(self) -> str:
        extension = ".jsonl.gz" if self.settings.gzip else ".jsonl"
        return f"{self.prefix}rejected-{self._part:05d}{extension}"

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
    key = f"{settings.folder}/_check_test-{secrets.token_hex(4)}.jsonl"
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
