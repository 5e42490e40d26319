"""Reading the input: raw stdin chunks in, records and states out, every other line accounted for.

The common line, a RECORD of a known stream whose data is an object, takes a fast path: orjson
straight to the writer's `add_record`, no CDK dataclass per message. Every other line goes through
the general path, which says what is wrong with it (never quoting it: lines carry personal data):

- a byte-order mark at the start of a line is dropped (an editor's, or files concatenated);
- an unreadable line with an Airbyte message glued to its end (a writer that lost a newline, or two
  writers interleaved) still delivers that message, so a bad line never takes the next record along;
- a STATE is read again with an exact parser, so a cursor of 2**64 is echoed as 18446744073709551616.

The reader counts input lines (`line_no`), which messages quote so that users can find a record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import orjson

from destination_scarf.airbyte.protocol import dump_message
from destination_scarf.mapping import ExactFloat, InvalidRecord
from destination_scarf.sync.catalog import StreamIndex

logger = logging.getLogger("airbyte")

_LOADS = orjson.loads
_BOM = b"\xef\xbb\xbf"
#: Message types a destination may see and has nothing to do with.
_IGNORED_TYPES = frozenset({"LOG", "TRACE", "CONTROL", "SPEC", "CONNECTION_STATUS", "CATALOG", "DESTINATION_CATALOG"})
_KNOWN_TYPES = _IGNORED_TYPES | {"RECORD", "STATE"}
#: How many places of an unreadable line are tried as the start of a message glued to it.
_GLUE_TRIES = 64

AddRecord = Callable[[int, Any, bytes, int], None]  # (stream index, the record's data, its line, its line number)
AddState = Callable[[dict, bytes], None]  # (the message, its input line)
BadLine = Callable[[str], None]  # what is wrong with the current line
UnknownStream = Callable[[Any, Any], None]  # (namespace, stream) of a record no catalog stream matches


class InputReader:
    """Feeds the writer: `feed(chunk)` for each chunk of input, `end()` once the input is over."""

    def __init__(self, *, index: StreamIndex, add_record: AddRecord, add_state: AddState, bad_line: BadLine,
                 on_trace: Callable[[dict], None] = lambda message: None,
                 unknown_stream: UnknownStream | None = None) -> None:
        self._index = index
        self._add_record = add_record
        self._add_state = add_state
        self._bad_line = bad_line
        self._on_trace = on_trace
        #: Told once per unknown stream (at its first record); None: a warning in the log.
        self._unknown_stream = unknown_stream
        self._pending = b""
        self._warned_streams: set[str] = set()
        self.line_no = 0

    def feed(self, chunk: bytes) -> None:
        lines = (self._pending + chunk).split(b"\n") if self._pending else chunk.split(b"\n")
        self._pending = lines.pop()
        self._lines(lines)

    def end(self) -> None:
        """The input ended: its last line may lack a newline."""
        if self._pending:
            pending, self._pending = self._pending, b""
            self._line(pending)

    def _lines(self, lines: list[bytes]) -> None:
        """The hot loop: the common case read inline, anything else through `_line`, which says what it is.

        The common case: a RECORD whose (namespace, stream) is exactly a catalog stream's and whose data is an
        object. Locals instead of attributes, and the line number kept in a local: this runs for every line.
        """
        loads, exact, add_record = _LOADS, self._index.exact, self._add_record
        line_no = self.line_no
        record: Any
        try:
            for line in lines:
                line_no += 1
                try:
                    message = loads(line)
                    record = message["record"] if message["type"] == "RECORD" else None
                    data = record["data"]
                    index = exact.get((record.get("namespace"), record["stream"]))
                except (orjson.JSONDecodeError, LookupError, TypeError):
                    index = None
                if index is not None and type(data) is dict:
                    add_record(index, data, line, line_no)
                else:
                    self.line_no = line_no - 1
                    self._line(line)
                    line_no = self.line_no
        finally:
            self.line_no = line_no

    def _line(self, line: bytes) -> None:
        self.line_no += 1
        if line.startswith(_BOM):
            line = line[len(_BOM):]
        try:
            message = _LOADS(line)
        except orjson.JSONDecodeError as error:
            if line.strip():
                self._unreadable(line, error)
            return
        self._message(message, line)

    def _message(self, message: Any, line: bytes) -> None:
        kind = message.get("type") if type(message) is dict else None
        if kind == "RECORD":
            self._record(message, line)
        elif kind == "STATE":
            self._state(message, line)
        elif kind == "TRACE":
            self._on_trace(message)
        elif kind not in _IGNORED_TYPES:
            self._bad_line("is not an Airbyte message (no known `type`)")

    def _unreadable(self, line: bytes, error: orjson.JSONDecodeError) -> None:
        start = line.find(b'{"', 1)
        for _ in range(_GLUE_TRIES):
            if start < 0:
                break
            try:
                glued = _LOADS(line[start:])
            except orjson.JSONDecodeError:
                start = line.find(b'{"', start + 1)
                continue
            if type(glued) is dict and glued.get("type") in _KNOWN_TYPES:
                self._bad_line("is not valid JSON before the Airbyte message glued to its end")
                self._message(glued, line[start:])
                return
            break
        if "depth" in str(error):
            self._bad_line("nests objects or lists more than 1024 levels deep, more than the connector reads")
        else:
            self._bad_line("is not valid JSON")

    def _record(self, message: dict, line: bytes) -> None:
        record = message.get("record")
        if type(record) is not dict:
            self._bad_line("is a RECORD message without a `record` object")
            return
        index = self._index.find(record.get("namespace"), record.get("stream"))
        if index is None:
            self._warn_unknown_stream(record)
            return
        self._add_record(index, record.get("data"), line, self.line_no)

    def _state(self, message: dict, line: bytes) -> None:
        if type(message.get("state")) is not dict:
            self._bad_line("is a STATE message without a `state` object")
            return
        exact = exact_state(line, fallback=message)
        if exact is None:
            self._bad_line("is a STATE message nested too deeply to be echoed")
            return
        self._add_state(exact, line)

    def _warn_unknown_stream(self, record: dict) -> None:
        namespace, stream = record.get("namespace"), record.get("stream")
        name = f"{namespace}.{stream}" if namespace else str(stream)
        if name not in self._warned_streams:
            self._warned_streams.add(name)
            if self._unknown_stream is not None:
                self._unknown_stream(namespace, stream)
            else:
                logger.warning("Ignoring records of stream '%s': it is not in the configured catalog.", name)


def exact_data(line: bytes) -> dict:
    """A record's `data` read again exactly: integers keep every digit, floats are marked as such."""
    try:
        message = json.loads(line, parse_float=ExactFloat)
    except RecursionError:
        raise InvalidRecord("data", "nests objects or lists too deeply to be read exactly") from None
    except ValueError:  # Python refuses integers of more than 4300 digits
        raise InvalidRecord("data", "holds a number too long to be read exactly") from None
    return message["record"]["data"]


def exact_state(line: bytes, *, fallback: dict) -> dict | None:
    """A state read exactly, or None when it cannot be echoed at all (nested deeper than JSON writers go)."""
    try:
        exact = json.loads(line)
    except (RecursionError, ValueError):
        exact = fallback
    if type(exact) is not dict or type(exact.get("state")) is not dict:
        exact = fallback
    try:
        dump_message(exact)
    except (RecursionError, ValueError, TypeError):
        return None
    return exact
