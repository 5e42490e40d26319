"""Protocol I/O, without the CDK: raw stdin chunks in; one locked stdout for states, LOG and TRACE messages out.

States are written exactly as received (plus destinationStats) with orjson, never through the CDK's
dataclasses. Logs from every thread go through the same lock, so a log line can never split a state
line on stdout. Every LOG and TRACE passes the CDK's secret filter (secret_filter.py).

The TRACE message a failed command ends with is the CDK's, built without the CDK: the same fields as
`AirbyteTracedException.as_sanitized_airbyte_message()` (type ERROR, the failure type, the user's
message, the internal message and the stack trace). A test builds both for the same errors and
compares them.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from typing import IO, Any

from destination_scarf.airbyte.secret_filter import filter_secrets
from destination_scarf.errors import ScarfError
from destination_scarf.sync.reader import dump_message

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


def log_to(stream: IO[str]) -> None:
    """For the commands meant for people and scripts (`preview`, the operator commands): their logs (retries, say)
    go to `stream` (stderr) as plain text, secrets filtered out, so stdout holds only the answer, never an
    Airbyte LOG message."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    handler.addFilter(_without_secrets)
    airbyte = logging.getLogger("airbyte")
    airbyte.handlers = [handler]
    airbyte.propagate = False


def _without_secrets(record: logging.LogRecord) -> bool:
    record.msg, record.args = filter_secrets(record.getMessage()), ()
    return True


def install_log_handler(output: MessageOutput, logger_name: str = "airbyte") -> logging.Logger:
    """Route the connector's logger to the shared output (replacing handlers that write elsewhere)."""
    logger = logging.getLogger(logger_name)
    logger.handlers = [AirbyteLogHandler(output)]
    logger.setLevel(logging.DEBUG if os.environ.get("LOG_LEVEL", "").lower() == "debug" else logging.INFO)
    logger.propagate = False
    return logger


#: What the CDK says for an error that is not one of ours (a bug): the details are in the internal message.
UNEXPECTED = "Something went wrong in the connector. See the logs for more details."


def trace_message(error: BaseException) -> dict[str, Any]:
    """The TRACE message for `error`; a ScarfError keeps its failure type and message."""
    if isinstance(error, ScarfError):
        message, internal, failure = error.message, error.internal_message, error.failure
        cause: BaseException = error.cause or error
    else:
        message, internal, failure, cause = UNEXPECTED, str(error), "system_error", error
    stack = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    return {
        "type": "TRACE",
        "trace": {
            "type": "ERROR",
            "emitted_at": time.time() * 1000,
            "error": {
                "message": filter_secrets(message),
                "internal_message": filter_secrets(internal),
                "stack_trace": filter_secrets(stack),
                "failure_type": failure,
            },
        },
    }
