"""Reading the input: raw stdin chunks in, typed messages out, every line accounted for.

`InputReader.read(chunk)` yields the messages of one chunk, in input order: a `Record` of a catalog
stream (a `MarkedRecord` when the source or the platform marked fields it nulled or truncated in
`record.meta.changes`), a `State`, a `StreamComplete` (a source's STREAM_STATUS COMPLETE trace), a `BadLine` (what is
wrong with a line, never its content: lines carry personal data) or an `UnknownStream` (once per
stream outside the catalog). Each message carries its input line number, which messages quote so
that users can find a record.

The common line, a RECORD of a known stream whose data is an object, takes a fast path: orjson
straight to a `Record`, no CDK dataclass per message. Every other line goes through the general path:

- a byte-order mark at the start of a line is dropped (an editor's, or files concatenated);
- an unreadable line with an Airbyte message glued to its end (a writer that lost a newline, or two
  writers interleaved) still delivers that message, so a bad line never takes the next record along;
- a STATE is read again with an exact parser, so a cursor of 2**64 is echoed as 18446744073709551616.

`dump_message` is the one writer of protocol lines: the reader checks with it that a state can be
echoed, and the Airbyte edge writes every line with it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from destination_scarf.sync.catalog import StreamIndex

_LOADS = orjson.loads
_BOM = b"\xef\xbb\xbf"
#: Message types a destination may see and has nothing to do with.
_IGNORED_TYPES = frozenset({"LOG", "TRACE", "CONTROL", "SPEC", "CONNECTION_STATUS", "CATALOG", "DESTINATION_CATALOG"})
_KNOWN_TYPES = _IGNORED_TYPES | {"RECORD", "STATE"}
#: How many places of an unreadable line are tried as the start of a message glued to it.
_GLUE_TRIES = 64


@dataclass(slots=True)
class Record:
    """A RECORD of catalog stream `stream` (its index), with its data and its input line as received."""

    stream: int
    data: Any
    line: bytes
    line_no: int


@dataclass(slots=True)
class MarkedRecord(Record):
    """A record whose `meta.changes` name fields the source or the platform nulled or truncated: `changes` holds
    the entries that name a field (`{"field", "change", "reason"}`), as received."""

    changes: list[dict[str, Any]]


@dataclass(slots=True)
class State:
    """A STATE, read exactly, to be echoed once the records before it are imported."""

    message: dict
    input_line: int


@dataclass(slots=True)
class StreamComplete:
    """A source's STREAM_STATUS COMPLETE trace: that stream sends no more records."""

    input_line: int


@dataclass(slots=True)
class BadLine:
    """An input line that is not a usable Airbyte message: `what` is wrong with it (never its content)."""

    input_line: int
    what: str


@dataclass(slots=True)
class UnknownStream:
    """The first record of a stream that is not in the configured catalog."""

    namespace: Any
    stream: Any
    input_line: int

    @property
    def name(self) -> str:
        return f"{self.namespace}.{self.stream}" if self.namespace else str(self.stream)


Message = Record | MarkedRecord | State | StreamComplete | BadLine | UnknownStream


def dump_message(message: Mapping[str, Any]) -> bytes:
    """One protocol line. orjson, except for what it cannot write: integers beyond 64 bits (a state read
    exactly, with a cursor of 2**64) and lone surrogates; the standard library writes those exactly."""
    try:
        return orjson.dumps(message, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(message, separators=(",", ":"), allow_nan=False).encode() + b"\n"


class InputReader:
    """Turns the input's chunks into messages: `read(chunk)` for each chunk, `end()` once the input is over."""

    def __init__(self, *, index: StreamIndex) -> None:
        self._index = index
        self._pending = b""
        self._unknown_streams: set[str] = set()
        #: Input lines read so far.
        self.line_no = 0

    def read(self, chunk: bytes) -> Iterator[Message]:
        """The messages of the complete lines of `chunk` (and of the line the previous chunk left unfinished).

        The hot loop: the common line is read inline, anything else through `_messages`, which says what it
        is. Locals instead of attributes, and the line number kept in a local: this runs for every line.
        """
        lines = (self._pending + chunk).split(b"\n") if self._pending else chunk.split(b"\n")
        self._pending = lines.pop()
        loads, exact = _LOADS, self._index.exact
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
                    meta = record.get("meta")  # the one lookup more a record without meta costs
                except (orjson.JSONDecodeError, LookupError, TypeError):
                    index = None
                if index is not None and type(data) is dict:
                    yield Record(index, data, line, line_no) if meta is None else _record(index, data, line,
                                                                                          line_no, meta)
                else:
                    yield from self._messages(line, line_no)
        finally:
            self.line_no = line_no

    def end(self) -> Iterator[Message]:
        """The input ended: its last line may lack a newline."""
        if self._pending:
            pending, self._pending = self._pending, b""
            self.line_no += 1
            yield from self._messages(pending, self.line_no)

    def _messages(self, line: bytes, line_no: int) -> Iterator[Message]:
        if line.startswith(_BOM):
            line = line[len(_BOM):]
        try:
            message = _LOADS(line)
        except orjson.JSONDecodeError as error:
            if line.strip():
                yield from self._unreadable(line, line_no, error)
            return
        yield from self._message(message, line, line_no)

    def _message(self, message: Any, line: bytes, line_no: int) -> Iterator[Message]:
        kind = message.get("type") if type(message) is dict else None
        if kind == "RECORD":
            yield from self._record(message, line, line_no)
        elif kind == "STATE":
            yield self._state(message, line, line_no)
        elif kind == "TRACE":
            if _completes_a_stream(message):
                yield StreamComplete(line_no)
        elif kind not in _IGNORED_TYPES:
            yield BadLine(line_no, "is not an Airbyte message (no known `type`)")

    def _unreadable(self, line: bytes, line_no: int, error: orjson.JSONDecodeError) -> Iterator[Message]:
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
                yield BadLine(line_no, "is not valid JSON before the Airbyte message glued to its end")
                yield from self._message(glued, line[start:], line_no)
                return
            break
        if "depth" in str(error):
            yield BadLine(line_no, "nests objects or lists more than 1024 levels deep, more than the connector reads")
        else:
            yield BadLine(line_no, "is not valid JSON")

    def _record(self, message: dict, line: bytes, line_no: int) -> Iterator[Message]:
        record = message.get("record")
        if type(record) is not dict:
            yield BadLine(line_no, "is a RECORD message without a `record` object")
            return
        namespace, stream = record.get("namespace"), record.get("stream")
        index = self._index.find(namespace, stream)
        if index is not None:
            yield _record(index, record.get("data"), line, line_no, record.get("meta"))
            return
        unknown = UnknownStream(namespace, stream, line_no)
        if unknown.name not in self._unknown_streams:
            self._unknown_streams.add(unknown.name)
            yield unknown

    def _state(self, message: dict, line: bytes, line_no: int) -> Message:
        if type(message.get("state")) is not dict:
            return BadLine(line_no, "is a STATE message without a `state` object")
        exact = _exact_state(line, fallback=message)
        if exact is None:
            return BadLine(line_no, "is a STATE message nested too deeply to be echoed")
        return State(exact, line_no)


def _record(index: int, data: Any, line: bytes, line_no: int, meta: Any) -> Record:
    """A record, marked when its `meta.changes` name fields the source or the platform nulled or truncated."""
    changes = meta.get("changes") if type(meta) is dict else None
    marked = [change for change in changes if type(change) is dict and type(change.get("field")) is str] \
        if type(changes) is list else []
    return MarkedRecord(index, data, line, line_no, marked) if marked else Record(index, data, line, line_no)


def _completes_a_stream(message: dict) -> bool:
    trace = message.get("trace")
    status = trace.get("stream_status") if type(trace) is dict else None
    return type(status) is dict and status.get("status") == "COMPLETE"


def _exact_state(line: bytes, *, fallback: dict) -> dict | None:
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
