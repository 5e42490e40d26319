"""`destination-scarf preview`: what the first records of the input would become in Scarf, without sending anything.

    destination-scarf preview --config c.json --catalog k.json [--limit N] [--json] < messages.jsonl

For each of the first N records (across streams, in input order): the event a sync would send, with each `$`
field's value and the record key it came from (`EventMapper.sources_for`) and the custom variables; or the
reason the sync would reject the record, with the sync's own advice. Then a one-line summary and the mapping
plan of each stream previewed. `--json` writes the same as NDJSON, one object per line.

It cannot disagree with a sync: the config and catalog are opened as `write` opens them (`cli.open_sync`),
the mappers are the sync's own (`writer.compile_mappers`), the input goes through the sync's `InputReader`
(byte-order marks, glued lines, huge integers read again exactly), each record takes the sync's record step
(`EventMapper.encode`), record positions and state windows are counted by the sync's `Checkpoints`
(so repeated content gets the numbered ids a sync gives it), and each event is parsed from the very line a
sync sends. It stops reading after N records, and exits 0 whatever the records would become; 1 only for a config
or catalog it cannot use.

It sends nothing to Scarf. It reads from Scarf only what a sync reads to turn package and tracking pixel names
into ids (the owner's two lists, `sync/artifact_names.py`), when a stream can send a name and the config has a
token other than the placeholder `preview`: one attempt per page, `NAMES_SECONDS` in all. When it cannot (the
placeholder, no network, a refused token), it says so in its summary and at each name, shows names as given,
and goes on.

Unlike logs, it prints record values: they are the user's own data, on the user's own terminal. Unreadable
lines and records of streams outside the catalog are reported by line number, never quoted.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import IO, Any

import orjson

from destination_scarf.airbyte.protocol import CHUNK_BYTES
from destination_scarf.config import ScarfConfig
from destination_scarf.errors import ScarfError
from destination_scarf.mapping import InvalidRecord
from destination_scarf.mapping.artifacts import ArtifactNames, is_uuid
from destination_scarf.mapping.rules import ARTIFACT_FIELDS
from destination_scarf.scarf.client import ScarfClient
from destination_scarf.scarf.retry import RetryPolicy
from destination_scarf.sync.artifact_names import names_needed, read_artifact_names
from destination_scarf.sync.catalog import StreamIndex, StreamInfo
from destination_scarf.sync.checkpoints import Checkpoints
from destination_scarf.sync.reader import (
    BadLine,
    InputReader,
    MarkedRecord,
    Message,
    Record,
    State,
    UnknownStream,
    dump_message,
)
from destination_scarf.sync.writer import BAD_LINE_HINT, INVALID_RECORD_HINT, compile_mappers, start_windows

DEFAULT_LIMIT = 10

#: The token the README's recipes put in a preview's config: names are then not checked, and Scarf not called.
PLACEHOLDER_TOKEN = "preview"
#: How long a preview may spend reading the owner's package and tracking pixel lists: one attempt per page.
NAMES_SECONDS = 10.0
NAMES_RETRY = RetryPolicy(max_attempts=1, max_total_seconds=NAMES_SECONDS)
#: Appended to the source of an artifact field holding a name, when the names could not be checked.
NOT_CHECKED = " (name not checked)"

#: Under `on_invalid_record: skip` a sync gives no advice (it logs the skip and goes on); the preview says so.
SKIPPED_RECORD_HINT = ("Under on_invalid_record: skip, a sync counts such records as rejected and goes on; fix the "
                       "source data or the field mapping to send them.")
SKIPPED_LINE_HINT = "Under on_invalid_record: skip, a sync skips such lines and goes on."

DESCRIPTION = f"""\
Show what the first records of stdin (Airbyte messages, as `write` reads them) would become in Scarf,
without sending anything: for each record the event (every $ field with its value and the record key it
came from, and the custom variables) or the reason a sync would reject it, then a summary and each
stream's mapping plan. The config and catalog are the ones a sync would get. Nothing is sent to Scarf; with
a real token it reads the owner's package and tracking pixel lists, to show the ids that names stand for
(with the placeholder token `{PLACEHOLDER_TOKEN}`, names are shown unchecked).
It prints record values, unlike the connector's logs: they are your own data, shown on your own terminal.
It stops after --limit records (default {DEFAULT_LIMIT}) and exits 0 even when records would be rejected."""


def preview(*, config: ScarfConfig, streams: list[StreamInfo], limit: int = DEFAULT_LIMIT, as_json: bool = False,
            stdin: IO[bytes], out: IO[bytes]) -> None:
    """Write the report on `out`; a reader of `out` that hangs up early (`preview | head`) ends it quietly."""
    report = JsonReport(out) if as_json else TextReport(out)
    names, unchecked = preview_names(config, streams)
    try:
        Preview(config=config, streams=streams, limit=limit, report=report, names=names,
                names_unchecked=unchecked).run(stdin)
    except BrokenPipeError:  # `preview | head`: the reader has seen enough
        _silence_stdout()


def preview_names(config: ScarfConfig, streams: list[StreamInfo]) -> tuple[ArtifactNames | None, str | None]:
    """The owner's names as a sync would read them: (names, None); (None, why not) when they could not be read;
    (None, None) when no stream can send a name. Never raises for Scarf's sake."""
    if not names_needed(config, streams):
        return None, None
    if config.api_token == PLACEHOLDER_TOKEN:
        return None, f"the config's api_token is the placeholder '{PLACEHOLDER_TOKEN}'"
    try:
        with ScarfClient.from_config(config, retry=NAMES_RETRY, connect_timeout=5.0, read_timeout=NAMES_SECONDS,
                                     exchange_timeout=NAMES_SECONDS) as client:
            names, _ = read_artifact_names(client, config, budget_seconds=NAMES_SECONDS,
                                            attempts=NAMES_RETRY.max_attempts)
    except ScarfError as error:
        return None, f"the owner's lists could not be read: {error.message}"
    return names, None


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the interpreter's last flush does not fail again
    except (OSError, ValueError):
        pass


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class Preview:
    """Reads input until `limit` records of the catalog's streams are previewed; tells `report` about each."""

    def __init__(self, *, config: ScarfConfig, streams: list[StreamInfo], limit: int, report: Report,
                 now: Callable[[], datetime.datetime] = _utc_now, names: ArtifactNames | None = None,
                 names_unchecked: str | None = None) -> None:
        """`names`: the owner's packages and pixels, as a sync reads them; `names_unchecked`: why they could not
        be read, when a stream can send a name (names are then shown as given, marked as not checked)."""
        self._streams = streams
        self._limit = limit
        self._report = report
        self._skip = config.on_invalid_record == "skip"
        # "now" for the time window, refreshed per input chunk, as a sync does.
        self._wall_now = now
        self._now = now()
        self.mappers = compile_mappers(config, streams, lambda: self._now, names)
        self._names_summary: dict[str, Any] | None = None
        if names is not None:
            self._names_summary = {"checked": True, "packages": names.package_count,
                                   "tracking_pixels": names.tracking_pixel_count, "reason": None,
                                   "unchecked_values": 0}
        elif names_unchecked is not None:
            self._names_summary = {"checked": False, "packages": None, "tracking_pixels": None,
                                   "reason": names_unchecked, "unchecked_values": 0}
        index = StreamIndex(streams)
        # Record positions and state scopes counted exactly as a sync counts them. Nothing is ever batched, so
        # no state leaves; a state only starts a new window for numbering repeated content, as in a sync.
        self._checkpoints = Checkpoints(stream_count=len(streams), find_stream=index.find)
        self.reader = InputReader(index=index)
        self.counts = {"records": 0, "would_send": 0, "would_reject": 0, "unreadable_lines": 0,
                       "unknown_streams": 0}
        self._previewed: set[int] = set()

    def run(self, stdin: IO[bytes]) -> None:
        read = getattr(stdin, "read1", stdin.read)  # what has arrived, so a slow source is previewed as it comes
        stopped = False
        while not stopped and (chunk := read(CHUNK_BYTES)):
            self._now = self._wall_now()
            stopped = self._take(self.reader.read(chunk))
        if not stopped:
            stopped = self._take(self.reader.end())
        self._report.summary({**self.counts, "limit": self._limit, "stopped_at_limit": stopped,
                              "names": self._names_summary,
                              "streams": [self._stream_summary(i) for i in sorted(self._previewed)]})

    def _take(self, messages: Iterable[Message]) -> bool:
        """Preview each message; True once the `limit`-th record is previewed (the rest of the input is not read)."""
        return any(self._add(message) for message in messages)

    def _stream_summary(self, index: int) -> dict[str, Any]:
        stream, mapper = self._streams[index], self.mappers[index]
        return {"stream": stream.name, "namespace": stream.namespace, "plan": mapper.describe_plan(),
                "dropped_fields": sorted(mapper.ignored_fields)}

    def _add(self, message: Message) -> bool:
        if type(message) is Record or type(message) is MarkedRecord:
            return self._add_record(message)
        if type(message) is State:
            start_windows(self.mappers, self._checkpoints.state_received(message.message,
                                                                         input_line=message.input_line))
        elif type(message) is BadLine:
            self.counts["unreadable_lines"] += 1
            self._report.unreadable_line({"input_line": message.input_line, "reason": message.what,
                                          "hint": SKIPPED_LINE_HINT if self._skip else BAD_LINE_HINT})
        elif type(message) is UnknownStream:
            self.counts["unknown_streams"] += 1
            self._report.unknown_stream({"stream": message.stream, "namespace": message.namespace,
                                         "input_line": message.input_line})
        return False

    def _add_record(self, record: Record) -> bool:
        """A sync's record step (`encode`, the position in its stream), and what the event is made of."""
        stream, mapper = self._streams[record.stream], self.mappers[record.stream]
        repeated = mapper.repeated
        try:
            if type(record) is MarkedRecord:  # fields the source or the platform nulled or truncated, as a sync checks
                mapper.check_changes(record.changes)
            line = mapper.encode(record.data, record.line)
        except InvalidRecord as invalid:
            position = self._checkpoints.record_rejected(record.stream)
            self.counts["would_reject"] += 1
            entry: dict[str, Any] = {"rejected": {
                "field": invalid.field, "reason": invalid.reason,
                "hint": SKIPPED_RECORD_HINT if self._skip else INVALID_RECORD_HINT}}
        else:
            position = self._checkpoints.record_batched(record.stream)
            self.counts["would_send"] += 1
            sources = mapper.sources_for(record.data, record.line)
            if mapper.repeated > repeated:  # `encode` numbered this id: the content repeats an earlier record's
                sources["$unique_id"] += ", numbered: the same content as an earlier record since the last state"
            event = _event_of(line)
            if self._names_summary is not None and not self._names_summary["checked"]:
                for field in ARTIFACT_FIELDS:
                    if field in sources and not is_uuid(event[field]):
                        sources[field] += NOT_CHECKED
                        self._names_summary["unchecked_values"] += 1
            entry = {"event": event, "sources": sources}
        self.counts["records"] += 1
        self._previewed.add(record.stream)
        self._report.record({"stream": stream.name, "namespace": stream.namespace, "record_position": position,
                             "input_line": record.line_no, **entry}, label=stream.label)
        return self.counts["records"] >= self._limit


def _event_of(line: bytes) -> dict[str, Any]:
    """The event a sync sends, from the NDJSON line it sends (the standard library for what orjson refuses)."""
    try:
        event: dict[str, Any] = orjson.loads(line)
    except orjson.JSONDecodeError:
        event = json.loads(line.decode("utf-8", "surrogatepass"))
    return event


# ----- the two layouts -------------------------------------------------------------------------------------------


class Report:
    """Where the preview's findings go; flushed after each, so a slow source is shown as it comes."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out

    def _write(self, text: str) -> None:
        self._out.write(text.encode("utf-8", "backslashreplace"))
        self._out.flush()

    def record(self, entry: dict[str, Any], *, label: str) -> None:
        raise NotImplementedError

    def unreadable_line(self, entry: dict[str, Any]) -> None:
        raise NotImplementedError

    def unknown_stream(self, entry: dict[str, Any]) -> None:
        raise NotImplementedError

    def summary(self, summary: dict[str, Any]) -> None:
        raise NotImplementedError


class JsonReport(Report):
    """NDJSON: one object per record (with `event` and `sources`, or `rejected`), `unreadable_line`,
    `unknown_stream`, and the `summary` last."""

    def _emit(self, entry: dict[str, Any]) -> None:
        self._write(_inert(dump_message(entry).decode("utf-8", "surrogatepass")))

    def record(self, entry: dict[str, Any], *, label: str) -> None:
        self._emit(entry)

    def unreadable_line(self, entry: dict[str, Any]) -> None:
        self._emit({"unreadable_line": entry})

    def unknown_stream(self, entry: dict[str, Any]) -> None:
        self._emit({"unknown_stream": entry})

    def summary(self, summary: dict[str, Any]) -> None:
        self._emit({"summary": summary})


class TextReport(Report):
    """For people: one block per record, values as JSON (quoted, escaped: exactly what is sent, and nothing in a
    value can move the terminal's cursor)."""

    def record(self, entry: dict[str, Any], *, label: str) -> None:
        head = f"Record #{entry['record_position']} of stream '{_shown(label)}' (input line {entry['input_line']})"
        rejected = entry.get("rejected")
        if rejected is not None:
            self._write(f"{head} would be rejected: {rejected['field']} {rejected['reason']}.\n"
                        f"  {rejected['hint']}\n\n")
            return
        event, sources = entry["event"], entry["sources"]
        fields = [(name, _json_text(event[name]), sources[name]) for name in sources]
        custom = [(_shown(name, in_quotes=False), _json_text(value))
                  for name, value in event.items() if name not in sources]
        width = max(len(name) for name, _, _ in fields)
        column = min(max(len(value) for _, value, _ in fields), 40)
        lines = [f"{head} would be sent:"]
        lines += [f"  {name:<{width}}  {value:<{column}}  <- {_shown(source)}"
                  for name, value, source in fields]
        if custom:
            lines.append("  custom variables:")
            inner = max(len(name) for name, _ in custom)
            lines += [f"    {name:<{inner}}  {value}" for name, value in custom]
        else:
            lines.append("  custom variables: none")
        self._write("\n".join(lines) + "\n\n")

    def unreadable_line(self, entry: dict[str, Any]) -> None:
        self._write(f"Input line {entry['input_line']} {entry['reason']}. {entry['hint']}\n\n")

    def unknown_stream(self, entry: dict[str, Any]) -> None:
        namespace, stream = entry["namespace"], entry["stream"]
        name = f"{namespace}.{stream}" if namespace else str(stream)
        self._write(f"Input line {entry['input_line']} is a record of stream '{_shown(name)}', which is not in the "
                    "configured catalog: a sync ignores that stream's records.\n\n")

    def summary(self, summary: dict[str, Any]) -> None:
        ending = (f"--limit {summary['limit']} reached; the rest of the input was not read"
                  if summary["stopped_at_limit"] else "the whole input")
        text = (f"Previewed {_count(summary['records'], 'record')} ({ending}): {summary['would_send']} would be "
                f"sent, {summary['would_reject']} would be rejected")
        if summary["unreadable_lines"]:
            text += f"; {_count(summary['unreadable_lines'], 'unreadable line')}"
        if summary["unknown_streams"]:
            text += f"; {_count(summary['unknown_streams'], 'stream')} not in the catalog"
        lines = [f"{text}. Nothing was sent to Scarf."]
        names = summary.get("names")
        if names is not None and names["checked"]:
            lines.append(f"Names in $package and $tracking_pixel were checked against the owner's "
                         f"{_count(names['packages'], 'package')} and "
                         f"{_count(names['tracking_pixels'], 'tracking pixel')}, as a sync checks them.")
        elif names is not None and names["unchecked_values"]:  # said only when a name was shown unchecked
            reason = _shown_reason(names["reason"])
            lines.append(f"Names in $package and $tracking_pixel could not be checked ({reason}): they are shown "
                         "as given. A sync reads the owner's packages and tracking pixels, sends "
                         "the ids names stand for, and rejects a name that is unknown or ambiguous.")
        for stream in summary["streams"]:
            label = f"{stream['namespace']}.{stream['stream']}" if stream["namespace"] else stream["stream"]
            lines.append(f"Stream '{_shown(label)}' maps to Scarf as: {stream['plan']}")
            dropped = stream["dropped_fields"]
            if dropped:
                lines.append(f"Stream '{_shown(label)}' drops {_count(len(dropped), '`$` field')} that "
                             f"{'is not a Scarf field' if len(dropped) == 1 else 'are not Scarf fields'}: "
                             + ", ".join(_shown(name, in_quotes=False) for name in dropped))
        self._write("\n".join(lines) + "\n")


def _shown_reason(reason: str) -> str:
    """A reason from the client as one line, without what a terminal would act on."""
    return _inert(" ".join(str(reason).split())).rstrip(".")


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _json_text(value: Any) -> str:
    try:
        return _inert(orjson.dumps(value).decode())
    except TypeError:  # lone surrogates: the standard library escapes them (and everything else outside ASCII)
        return json.dumps(value)


#: What a terminal may act on that JSON leaves as it is: DEL, the C1 controls (U+009B is a CSI), and the invisible
#: and direction-changing format characters.
_TERMINAL_CONTROLS = re.compile("[\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _inert(json_text: str) -> str:
    """JSON text with every character a terminal would act on escaped (\\u009b): the same JSON, harmless to show."""
    return _TERMINAL_CONTROLS.sub(lambda found: f"\\u{ord(found.group()):04x}", json_text)


def _shown(name: Any, *, in_quotes: bool = True) -> str:
    """A name as is, unless it holds characters a terminal would act on (or, for a name in a column rather than
    in quotes, spaces or a leading quote): then as JSON text."""
    text = str(name)
    if text and text.isprintable() and (in_quotes or not (any(c.isspace() for c in text) or text.startswith('"'))):
        return text
    return json.dumps(text)
