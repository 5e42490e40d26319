"""Records skipped under `on_invalid_record: skip`: counted, the first reasons logged, optionally kept in a file.

Logs name the stream, record position, field and reason, never the record's values. The optional
rejected-records file is the user's own file (for `docker run` pipelines with a mounted volume), so
it keeps each rejected record's Airbyte message byte for byte (exact digits, any depth), ready to be
fixed and replayed: `jq -c .message rejected.ndjson | destination-scarf write ...`. Since it holds
record data, it is created readable by its owner only, and a symlink is never followed.

The file is opened before the sync reads any input, and `check` validates the path, so a path that
cannot be written fails at once instead of at the first bad row, hours into a sync.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

import orjson

from destination_scarf.batching import LineOrigin
from destination_scarf.catalog import StreamInfo
from destination_scarf.errors import ScarfConfigError
from destination_scarf.mapping import InvalidRecord

logger = logging.getLogger("airbyte")

#: How many rejections are logged one by one; the rest are only counted (and kept in the file).
LOGGED_REASONS = 10


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
    def __init__(self, *, policy: str, path: str | None) -> None:
        self.policy = policy
        self._path = path
        self._fd: int | None = None
        self.count = 0
        self.bad_lines = 0

    def open(self) -> None:
        """Open (or create, mode 0600) the rejected-records file for appending; a config error if it cannot be."""
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

    def record(self, where: str, invalid: InvalidRecord, *, stream: StreamInfo, origin: LineOrigin,
               line: bytes) -> None:
        """A record that could not become a valid event was skipped; `line` is its input line as received."""
        self.count += 1
        self._log(f"Skipped {where}: {invalid.field} {invalid.reason}")
        self._write({
            "stream": stream.name, "namespace": stream.namespace, "record_position": origin.record_position,
            "input_line": origin.input_line, "field": invalid.field, "reason": invalid.reason,
        }, message=line)

    def bad_line(self, line_no: int, what: str) -> None:
        """An input line that is not a usable Airbyte message was skipped (its content is not kept: it may not
        even be text)."""
        self.bad_lines += 1
        self._log(f"Skipped input line {line_no}: it {what}")
        self._write({"input_line": line_no, "reason": f"the line {what}"})

    def _log(self, text: str) -> None:
        total = self.count + self.bad_lines
        if total <= LOGGED_REASONS:
            logger.warning(text)
        if total == LOGGED_REASONS:
            logger.warning("Further skipped records are counted but not logged one by one.")

    def _write(self, entry: dict[str, Any], *, message: bytes | None = None) -> None:
        if self._fd is None:
            return
        data = orjson.dumps(entry)
        if message is not None:
            # The message is valid JSON (it was parsed): spliced in as received, never re-serialized.
            data = data[:-1] + b',"message":' + message.strip() + b"}"
        os.write(self._fd, data + b"\n")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self.count or self.bad_lines:
            where = f"; they are listed in {self._path}" if self._path else ""
            logger.warning("Skipped %d invalid record(s) and %d unreadable input line(s)%s.",
                           self.count, self.bad_lines, where)
