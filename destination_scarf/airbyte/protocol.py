"""Protocol I/O for `write`: raw stdin chunks in, one locked stdout for states and logs out.

States are written exactly as received (plus destinationStats) with orjson, never through the CDK's
dataclasses. Logs from every thread go through the same lock, so a log line can never split a state
line on stdout.
"""

from __future__ import annotations

import json
import logging
import os
import select
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import IO, Any

import orjson

from destination_scarf.airbyte.secret_filter import filter_secrets

#: Read stdin in chunks of up to this many bytes: large enough that the per-chunk cost vanishes.
CHUNK_BYTES = 1 << 20

_LEVELS = {
    logging.CRITICAL: "FATAL",
    logging.ERROR: "ERROR",
    logging.WARNING: "WARN",
    logging.INFO: "INFO",
    logging.DEBUG: "DEBUG",
}


def read_chunks(stream: IO[bytes], *, idle_seconds: float) -> Iterator[bytes]:
    """Yield raw chunks of `stream` as they arrive, and b"" after `idle_seconds` without input.

    The empty chunks let the writer close aged batches and echo states while a slow source is
    silent. Uses select() on pipes and terminals; regular files are always readable.
    """
    fd = stream.fileno()
    while True:
        readable, _, _ = select.select([fd], [], [], idle_seconds)
        if not readable:
            yield b""
            continue
        chunk = os.read(fd, CHUNK_BYTES)
        if not chunk:
            return
        yield chunk


def dump_message(message: Mapping[str, Any]) -> bytes:
    """One protocol line. orjson, except for what it cannot write: integers beyond 64 bits (a state read
    exactly, with a cursor of 2**64) and lone surrogates; the standard library writes those exactly."""
    try:
        return orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"


class MessageOutput:
    """Writes whole protocol lines to stdout under one lock and flushes each, so nothing interleaves."""

    def __init__(self, stream: IO[bytes] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer
        self._lock = threading.Lock()

    def emit(self, message: Mapping[str, Any]) -> None:
        line = dump_message(message)
        with self._lock:
            self._stream.write(line)
            self._stream.flush()


class AirbyteLogHandler(logging.Handler):
    """Formats log records as Airbyte LOG messages on the shared output, with secrets filtered out."""

    def __init__(self, output: MessageOutput) -> None:
        super().__init__()
        self._output = output

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = filter_secrets(record.getMessage())
            if record.exc_info and record.levelno >= logging.ERROR:
                text += "\n" + filter_secrets(logging.Formatter().formatException(record.exc_info))
            self._output.emit({
                "type": "LOG",
                "log": {"level": _LEVELS.get(record.levelno, "INFO"), "message": text},
            })
        except Exception:
            self.handleError(record)


def install_log_handler(output: MessageOutput, logger_name: str = "airbyte") -> logging.Logger:
    """Route the connector's logger to the shared output (replacing handlers that write elsewhere)."""
    logger = logging.getLogger(logger_name)
    logger.handlers = [AirbyteLogHandler(output)]
    logger.setLevel(logging.DEBUG if os.environ.get("LOG_LEVEL", "").lower() == "debug" else logging.INFO)
    logger.propagate = False
    return logger

