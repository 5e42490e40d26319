"""Huge answer bodies for ``huge_next``, generated chunk by chunk and never held in memory.

Every shape is valid JSON (or NDJSON) of exactly the announced length, and starts like a real
answer, so a client that reads the whole thing would parse it; what the connector must show is
that it refuses to read that much.  Shapes:

* ``json``: one EventImport object (``"status": "importing"``) with a giant ``padding`` string;
* ``ndjson``: ImportLog lines of :data:`NDJSON_LINE_BYTES` each (``failed-to-decode`` errors
  numbered from 1), ending with a longer ``progress`` line that makes up the exact size;
* ``line``: one giant ImportLog object without a newline.
"""

from __future__ import annotations

import json
import uuid
from typing import Iterator

from .clock import iso_z, utc_now

#: Bytes per chunk written to the socket.
CHUNK_BYTES = 64 * 1024

#: Length of each error line of the ndjson shape, newline included.
NDJSON_LINE_BYTES = 200

_LINES_PER_CHUNK = CHUNK_BYTES // NDJSON_LINE_BYTES
_FILLER = b"x" * CHUNK_BYTES


def huge_body(shape: str, size: int, owner: str = "", import_id: str | None = None) -> tuple[str, int, Iterator[bytes]]:
    """(content type, exact length, chunks) of a body of about ``size`` bytes.

    The length is ``size`` unless the shape's framing alone is longer (tiny sizes).
    """
    if shape == "json":
        return "application/json", *_json_object(size, owner, import_id or str(uuid.uuid4()))
    if shape == "ndjson":
        return "application/x-ndjson", *_ndjson(size)
    if shape == "line":
        prefix = b'{"type":"failed-to-decode","class":"error","line":1,"human_friendly_message":"'
        return "application/x-ndjson", *_framed(prefix, b'"}', size)
    raise ValueError(f"unknown huge body shape {shape!r}")


def _json_object(size: int, owner: str, import_id: str) -> tuple[int, Iterator[bytes]]:
    now = iso_z(utc_now())
    head = {
        "id": import_id,
        "owner": owner,
        "status": "importing",
        "events_total": 0,
        "events_successfully_imported": 0,
        "events_failed_to_import": 0,
        "error_log_sample": [],
        "warning_log_sample": [],
        "created_at": now,
        "updated_at": now,
    }
    prefix = json.dumps(head, separators=(",", ":"))[:-1].encode() + b',"padding":"'
    return _framed(prefix, b'"}', size)


def _framed(prefix: bytes, suffix: bytes, size: int) -> tuple[int, Iterator[bytes]]:
    """``prefix``, then ``x`` filler, then ``suffix``: ``size`` bytes in all (or just the frame)."""
    filler = max(0, size - len(prefix) - len(suffix))

    def chunks() -> Iterator[bytes]:
        yield prefix
        left = filler
        while left > 0:
            piece = min(left, CHUNK_BYTES)
            yield _FILLER[:piece]
            left -= piece
        yield suffix

    return len(prefix) + filler + len(suffix), chunks()


def _padded(prefix: bytes, suffix: bytes, length: int) -> bytes:
    return prefix + b" " * max(0, length - len(prefix) - len(suffix)) + suffix


def _error_line(number: int) -> bytes:
    prefix = b'{"type":"failed-to-decode","class":"error","line":%d,"human_friendly_message":"Not a valid JSON object' % number
    return _padded(prefix, b'"}\n', NDJSON_LINE_BYTES)


def _progress_line(errors: int, length: int) -> bytes:
    prefix = (
        b'{"type":"progress","class":"info","events_count":%d,"failed_events_count":%d,'
        b'"human_friendly_message":"Processed %d of %d events, %d failed' % (errors, errors, errors, errors, errors)
    )
    return _padded(prefix, b'"}\n', length)


def _ndjson(size: int) -> tuple[int, Iterator[bytes]]:
    errors = max(1, size // NDJSON_LINE_BYTES) - 1
    last = _progress_line(errors, size - errors * NDJSON_LINE_BYTES)

    def chunks() -> Iterator[bytes]:
        for first in range(1, errors + 1, _LINES_PER_CHUNK):
            yield b"".join(_error_line(n) for n in range(first, min(first + _LINES_PER_CHUNK, errors + 1)))
        yield last

    return errors * NDJSON_LINE_BYTES + len(last), chunks()
