"""Asynchronous processing of import bodies, line by line, the way Scarf reports it.

Scarf answers an import POST immediately and works through the lines later; clients have to
poll.  Each import gets its own worker thread, which

1. checks a chunk of lines without holding any lock (JSON decoding dominates the cost),
2. stores the accepted events of the chunk with one ``executemany`` and counts the chunk,
   under the import's commit lock (so an abort cuts cleanly between chunks),
3. paces itself to ``events_per_second`` when a rate is set, to mimic Scarf's slowness, and
   to ``import_seconds`` when a duration is set: then every import takes that long whatever its
   size (a benchmark's "imports of about 60 s", scaled down), its counts growing evenly
   meanwhile.  With both, the slower of the two wins.

Time is read from the emulator's clock (``time.monotonic`` unless a test injects another), so
a test can advance a fake clock and watch counts grow without waiting on wall-clock durations;
workers still sleep for real, at most ``PACING_POLL_SECONDS`` at a time, and re-read it.

Per-line checks are deliberately cheap (no jsonschema): the benchmark pushes about a million
events through an emulator that shares two cores with the connector.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Mapping

from .import_registry import IMPORTING, ImportRecord, ImportRegistry
from .store import EventRow, EventStore

logger = logging.getLogger(__name__)

#: Lines per chunk when no rate is set: big enough to amortise the store lock, small enough
#: that an abort takes effect quickly.
FAST_CHUNK = 1000

#: Longest sleep of a paced worker, so aborts, rate changes and shutdown are noticed quickly.
PACING_POLL_SECONDS = 0.05

NumberedLine = tuple[int, bytes]
Artifact = tuple[str, str]  # ("package" | "tracking_pixel", id)

MSG_NOT_JSON_OBJECT = "Not a valid JSON object"
MSG_MISSING_TIME = "Missing required field $time"
MSG_INVALID_TIME = "Invalid $time: expected an ISO 8601 date-time string"
MSG_INVALID_HEADERS = "Invalid $headers: expected an array of {name, value} objects"
MSG_NO_ARTIFACT = "Event has neither $package nor $tracking_pixel"

#: ``$`` fields that are not plain strings in Scarf's ``Event`` schema.
_NON_STRING_FIELDS = frozenset({"$time", "$headers"})
_MISSING = object()


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


#: Python's json accepts NaN/Infinity; Scarf's decoder does not, and ``json.dumps`` emits
#: them by default, so the emulator must reject them to catch that client bug.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)

try:  # orjson (installed with the connector) decodes about 4x faster and refuses NaN/Infinity itself;
    # the benchmark needs the emulator to spend as little of the shared CPU as possible.
    import orjson as _orjson
except ImportError:  # pragma: no cover - the emulator also runs on the standard library alone
    _orjson = None


def _decode_line(raw: bytes) -> object:
    """One body line as JSON (ValueError if it is not valid UTF-8 JSON)."""
    if _orjson is not None:
        return _orjson.loads(raw)  # JSONDecodeError is a ValueError
    return _DECODER.decode(raw.decode("utf-8"))


@dataclass
class ProcessingSettings:
    """Knobs shared by all workers; changing them affects running imports too."""

    events_per_second: float | None = None
    time_window: timedelta = field(default_factory=lambda: timedelta(days=7))
    store_events: bool = True
    import_seconds: float | None = None  # every import takes this long, whatever its size


def split_lines(body: bytes) -> list[NumberedLine]:
    """Non-blank physical lines with their 1-based line numbers."""
    return [(n, line) for n, line in enumerate(body.split(b"\n"), 1) if line and not line.isspace()]


def parse_event_time(value: object) -> datetime | None:
    """Parse ``$time`` as an ISO 8601 date-time; naive values are taken as UTC.

    A date without a time part is refused: the spec says ``format: date-time``.
    """
    if type(value) is not str or len(value) < 11 or value[10] not in "Tt ":
        return None
    if value[-1] in "Zz":
        value = value[:-1] + "+00:00"
    value = _six_digit_fraction(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _six_digit_fraction(value: str) -> str:
    """Pad or cut a fraction of a second to the six digits every Python's fromisoformat reads.

    RFC 3339 allows any number of digits (nanoseconds are common); Python 3.10's fromisoformat takes
    only 3 or 6, so without this the emulator would refuse on 3.10 what it accepts on 3.11.
    """
    if len(value) < 20 or value[19] != ".":
        return value
    end = 20
    while end < len(value) and value[end].isdigit():
        end += 1
    digits = value[20:end]
    if not digits:
        return value  # "12:00:00." stays invalid
    return value[:20] + (digits + "00000")[:6] + value[end:]


def too_old_message(window: timedelta) -> str:
    if window == timedelta(days=7):
        return "$time is more than one week before the import started"
    return f"$time is more than {window} before the import started"


def _decode_error(message: str) -> dict:
    return {"type": "failed-to-decode", "class": "error", "human_friendly_message": message}


def _headers_ok(headers: object) -> bool:
    if type(headers) is not list:
        return False
    for item in headers:
        if type(item) is not dict:
            return False
        if any(key in item and type(item[key]) is not str for key in ("name", "value")):
            return False
    return True


class LineChecker:
    """Applies Scarf's per-line rules for one import and builds store rows."""

    def __init__(
        self,
        owner: str,
        import_id: str,
        oldest_allowed: datetime,
        too_old_msg: str,
        fixed_artifact: Artifact | None,
        packages: Mapping[str, object],
        pixels: Mapping[str, object],
    ) -> None:
        self._owner = owner
        self._import_id = import_id
        self._oldest = oldest_allowed
        self._too_old_msg = too_old_msg
        self._fixed = fixed_artifact
        self._packages = packages
        self._pixels = pixels

    def check_chunk(self, chunk: list[NumberedLine]) -> tuple[list[EventRow], list[dict]]:
        rows: list[EventRow] = []
        errors: list[dict] = []
        check = self.check_line
        for line_no, raw in chunk:
            result = check(raw)
            if type(result) is dict:
                result["line"] = line_no
                errors.append(result)
            else:
                rows.append(result)
        return rows, errors

    def check_line(self, raw: bytes) -> EventRow | dict:
        """Return the store row for an accepted line, or an ImportLog error entry (no line)."""
        try:
            event = _decode_line(raw)
            text = raw.decode("utf-8")
        except ValueError:
            return _decode_error(MSG_NOT_JSON_OBJECT)
        if type(event) is not dict:
            return _decode_error(MSG_NOT_JSON_OBJECT)
        problem = self._field_problem(event)
        if problem is not None:
            return _decode_error(problem)
        artifact = self._fixed or self._event_artifact(event)
        if type(artifact) is dict:
            return artifact
        return (self._owner, event.get("$unique_id"), artifact[0], artifact[1], self._import_id, text)

    def _field_problem(self, event: dict) -> str | None:
        moment = event.get("$time", _MISSING)
        if moment is _MISSING:
            return MSG_MISSING_TIME
        parsed = parse_event_time(moment)
        if parsed is None:
            return MSG_INVALID_TIME
        if parsed < self._oldest:
            return self._too_old_msg
        for key, value in event.items():  # the type test first: nearly every value is a string
            if type(value) is not str and key[:1] == "$" and key not in _NON_STRING_FIELDS:
                return f"Field {key} must be a string"
        if "$headers" in event and not _headers_ok(event["$headers"]):
            return MSG_INVALID_HEADERS
        return None

    def _event_artifact(self, event: dict) -> Artifact | dict:
        """Multi-artifact rule: ``$package`` and/or ``$tracking_pixel`` must name known ids."""
        package = event.get("$package")
        pixel = event.get("$tracking_pixel")
        if package is None and pixel is None:
            return {"type": "artifact-not-found", "class": "error", "human_friendly_message": MSG_NO_ARTIFACT}
        missing = []
        if package is not None and package not in self._packages:
            missing.append(f"Package not found: {package}")
        if pixel is not None and pixel not in self._pixels:
            missing.append(f"Tracking pixel not found: {pixel}")
        if missing:
            entry = {"type": "artifact-not-found", "class": "error", "human_friendly_message": "; ".join(missing)}
            if package is not None:
                entry["package_id"] = package
            if pixel is not None:
                entry["tracking_pixel_id"] = pixel
            return entry
        return ("package", package) if package is not None else ("tracking_pixel", pixel)


class Pacer:
    """Hands out event allowances at the current rate (a small token bucket).

    The rate is read on every call, so ``set_rate`` slows down or speeds up running imports.
    """

    def __init__(self, rate: Callable[[], float | None], should_stop: Callable[[], bool], wait: Callable[[float], object],
                 clock: Callable[[], float] = time.monotonic):
        self._rate = rate
        self._should_stop = should_stop
        self._wait = wait
        self._clock = clock
        self._budget = 0.0
        self._last: float | None = None

    def take(self, limit: int) -> int:
        """Block until at least one event may be processed; return how many (0 = stop)."""
        while True:
            if self._should_stop():
                return 0
            rate = self._rate()
            if not rate:
                self._last = None
                return limit
            now = self._clock()
            if self._last is None:
                self._last, self._budget = now, 1.0
            cap = max(1.0, rate * 0.2)
            self._budget = min(self._budget + (now - self._last) * rate, cap)
            self._last = now
            if self._budget >= 1.0:
                count = min(limit, int(self._budget))
                self._budget -= count
                return count
            self._wait(min((1.0 - self._budget) / rate, PACING_POLL_SECONDS))


class ImportWorker(threading.Thread):
    """Processes the lines of one import, then marks it done."""

    def __init__(
        self,
        record: ImportRecord,
        lines: list[NumberedLine],
        checker: LineChecker,
        registry: ImportRegistry,
        store: EventStore,
        settings: ProcessingSettings,
        stopping: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name=f"scarf-import-{record.id[:8]}", daemon=True)
        self._record = record
        self._lines = lines
        self._checker = checker
        self._registry = registry
        self._store = store
        self._settings = settings
        self._stopping = stopping
        self._clock = clock

    def run(self) -> None:
        try:
            self._process()
        except Exception:  # pragma: no cover - a bug here must not kill the server silently
            logger.exception("import %s failed inside the emulator", self._record.id)
        finally:
            self._lines = []
            if not self._stopping.is_set():
                self._registry.finish(self._record)

    def _halted(self) -> bool:
        return self._stopping.is_set() or self._record.status != IMPORTING

    def _process(self) -> None:
        settings, clock = self._settings, self._clock
        pacer = Pacer(lambda: settings.events_per_second, self._halted, self._stopping.wait, clock)
        started = clock()
        position, total = 0, len(self._lines)
        while True:
            limit = min(FAST_CHUNK, total - position)
            duration = settings.import_seconds
            if duration:
                elapsed = clock() - started
                if elapsed < duration:
                    limit = min(limit, int(total * elapsed / duration) - position)
                if limit <= 0:  # nothing due yet; or all processed and the import's time not yet up
                    if position >= total and elapsed >= duration:
                        return
                    if self._halted():
                        return
                    due_at = duration if position >= total else (position + 1) * duration / total
                    self._stopping.wait(min(max(due_at - elapsed, 0.001), PACING_POLL_SECONDS))
                    continue
            elif position >= total:
                return
            count = pacer.take(limit)
            if count == 0:
                return
            chunk = self._lines[position:position + count]
            if not self._commit(*self._checker.check_chunk(chunk)):
                return
            position += count

    def _commit(self, rows: list[EventRow], errors: list[dict]) -> bool:
        """Store and count one chunk unless the import was aborted meanwhile."""
        with self._record.commit_lock:
            if self._halted():
                return False
            if self._settings.store_events:
                self._store.insert(rows)
            self._registry.record_chunk(self._record, len(rows), errors)
            return True


class Processor:
    """Starts import workers and stops them all on shutdown."""

    def __init__(self, registry: ImportRegistry, store: EventStore, settings: ProcessingSettings, directory,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._registry = registry
        self._store = store
        self._settings = settings
        self._directory = directory
        self._clock = clock
        self._stopping = threading.Event()
        self._workers: list[ImportWorker] = []
        self._lock = threading.Lock()

    def launch(self, record: ImportRecord, lines: list[NumberedLine], artifact: Artifact | None) -> None:
        window = self._settings.time_window
        checker = LineChecker(
            record.owner,
            record.id,
            record.created - window,
            too_old_message(window),
            artifact,
            self._directory.live_package_ids(record.owner),
            self._directory.live_pixel_ids(record.owner),
        )
        worker = ImportWorker(record, lines, checker, self._registry, self._store, self._settings, self._stopping,
                              self._clock)
        with self._lock:
            self._workers = [w for w in self._workers if w.is_alive()]
            self._workers.append(worker)
        worker.start()

    def restart(self) -> None:
        """Allow workers again after :meth:`stop` (the emulator can be restarted)."""
        self._stopping = threading.Event()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        with self._lock:
            workers, self._workers = self._workers, []
        deadline = time.monotonic() + timeout
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
