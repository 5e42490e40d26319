"""Records skipped under `on_invalid_record: skip`: counted, the first reasons logged, optionally kept in a file.

Logs name the stream, record position, field and reason, never the record's values. The optional
rejected-records file is the user's own file (for `docker run` pipelines with a mounted volume), so
it keeps each rejected record's data, to be fixed and replayed.
"""

from __future__ import annotations

import logging
from typing import IO, Any

import orjson

from destination_scarf.batching import LineOrigin
from destination_scarf.catalog import StreamInfo
from destination_scarf.mapping import InvalidRecord

logger = logging.getLogger("airbyte")

#: How many rejections are logged one by one; the rest are only counted (and kept in the file).
LOGGED_REASONS = 10


class RejectLog:
    def __init__(self, *, policy: str, path: str | None) -> None:
        self.policy = policy
        self._path = path
        self._file: IO[bytes] | None = None
        self.count = 0
        self.bad_lines = 0

    def record(self, where: str, invalid: InvalidRecord, *, stream: StreamInfo, origin: LineOrigin, data: Any) -> None:
        """A record that could not become a valid event was skipped."""
        self.count += 1
        self._log(f"Skipped {where}: {invalid.field} {invalid.reason}")
        self._write({
            "stream": stream.name, "namespace": stream.namespace, "record_position": origin.record_position,
            "input_line": origin.input_line, "field": invalid.field, "reason": invalid.reason, "data": data,
        })

    def bad_line(self, line_no: int, what: str) -> None:
        """An input line that is not a usable Airbyte message was skipped (its content is not logged)."""
        self.bad_lines += 1
        self._log(f"Skipped input line {line_no}: it {what}")
        self._write({"input_line": line_no, "reason": f"the line {what}"})

    def _log(self, text: str) -> None:
        total = self.count + self.bad_lines
        if total <= LOGGED_REASONS:
            logger.warning(text)
        if total == LOGGED_REASONS:
            logger.warning("Further skipped records are counted but not logged one by one.")

    def _write(self, entry: dict) -> None:
        if not self._path:
            return
        if self._file is None:
            self._file = open(self._path, "ab")
        self._file.write(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.count or self.bad_lines:
            where = f"; they are listed in {self._path}" if self._path else ""
            logger.warning("Skipped %d invalid record(s) and %d unreadable input line(s)%s.",
                           self.count, self.bad_lines, where)
