"""Fault injection: scripted misbehaviour of the API and of the network in front of it.

The connector must survive what a real API and the network do to it (5xx, 429 with
Retry-After, dropped connections, slowness, outages, silent or trickling servers, huge or
odd answers, revoked tokens).  Tests queue faults here; the HTTP layer and the import logic
ask for them.  Every operation is thread-safe.

Request faults (``only`` limits each to one request category of :data:`CATEGORIES`):
``"import-get"`` matches every import read, the imports list and a single import alike (as it
always has); ``"import-list"`` and ``"import-by-id"`` match only one of them.

* ``fail_next`` / ``reset_next`` / ``throttle_next``: answer the next N requests with an
  error status, drop the connection without an answer, or answer 429 with Retry-After;
  ``after_processing=True`` lets the API do the work first (an import is created, then its
  answer is lost).
* ``delay_next``: hold the next N answers back by some seconds.
* ``silence_next``: read the next N requests and never answer (not a byte) until
  :meth:`FaultPlan.release_silenced`, ``stop()`` or the client hanging up; then the
  connection is closed.  Nothing is processed.
* ``trickle_next``: send the next N real answers slowly, at ``bytes_per_second``, either the
  status line and headers (``part="headers"``) or the body after headers sent at once
  (``part="body"``).
* ``huge_next``: answer the next N requests 200 with a body of ``megabytes`` (10**6 bytes)
  made on the fly, with a correct Content-Length: ``shape="json"`` one EventImport-like JSON
  object with a giant ``padding`` string, ``"ndjson"`` many ImportLog lines, ``"line"`` one
  giant ImportLog object without a newline.  Nothing is processed.
* ``redirect_next``: answer the next N requests with a 3xx and a Location (a base URL
  without path gets the request's path and query appended).  Nothing is processed.
* ``start_outage`` / ``end_outage``: every matching request is answered with a 5xx (or the
  connection dropped, status ``"reset"``) until ``end_outage`` or, given ``seconds``, until
  they have passed.
* ``flaky``: every ``every``-th matching request fails (deterministic), for the next
  ``count`` matching requests or until cleared.

Order applied to one request (each step can end it; later steps then consume nothing):

1. an active outage matching the request answers it: during an outage no queued fault is
   consumed and no flaky rule counts, so they all wait behind the outage;
2. ``delay_next``;
3. the first queued fault of the request's category among fail/reset/throttle (before
   processing), silence, huge and redirect, in the order they were queued;
4. flaky rules: each matching rule counts the request; it fails if one of them says so;
5. the API answers (token revocations and import faults take effect here);
6. the first queued fail/reset with ``after_processing=True``;
7. ``trickle_next``: applied to the answer about to be sent (real or injected error);
   silenced, dropped and huge answers do not consume it.

Import faults, consumed by the next imports created through the API (not by refused
uploads, nor by ``hold_slots``); one import takes at most one of each kind:

* ``short_count_next``: the import ends ``done`` counting fewer events than it received; the
  last ``missing`` lines of the body are left out (not imported, not failed, not stored).
  ``mode="processed"`` keeps ``events_total`` at what was received; ``mode="total"``
  reports ``events_total`` as received minus missing.
* ``final_status_next``: the import ends with this word instead of ``done``, after being
  processed normally (its accepted events are stored and counted).
* ``interim_status_next``: the import reports this word instead of ``importing`` while it is
  processing, then ends normally.  It still holds an active slot while processing.

List faults, applied to the answers of the imports list (``GET /v2/imports/{owner}``) that the
API answers 200 (not to refused or injected answers); ``n`` counts such answers, ``n=None``
means every one until :meth:`FaultPlan.clear`; one answer takes at most one of each kind:

* ``list_omit_next(n, import_ids=None, fraction=None)``: the answer leaves out the imports
  named, whatever their status, or (without ids) ``fraction`` (default 1) of the imports
  that are still importing: the ones whose creation number ``seq`` makes
  ``floor(seq * fraction)`` step up, so the choice is spread evenly and stable from one
  answer to the next.  Left-out imports are skipped before paging (the page fills up with
  others), like an index that has not caught up.
* ``list_truncate_next(n, keep=1)``: the page holds at most ``keep`` imports although more
  match; the ``after`` cursor still works from its last import.
* ``list_ignore_per_page_next(n, page_size=10)``: ``per_page`` is ignored (still checked):
  pages hold ``page_size`` imports, Scarf's reported default.
* ``list_stale(seconds)``: persistent; the list shows an import that finished (done or
  aborted, or an injected final word) less than ``seconds`` ago as the list last saw it while
  importing: status ``importing`` (or its interim word) and the counts of that moment; the
  ``status`` filter matches that stale word.  Reads by id are never stale.  ``list_stale(0)``
  ends it.  Seconds are measured on the plan's clock.

Token faults: ``revoke_token_after(token, imports=N)``: once the token has created N more
imports it is refused as an unknown token on every request; the N imports complete
normally.  :meth:`FaultPlan.clear` lifts revocations, too.

TLS handshake faults, for an emulator serving HTTPS (``ScarfEmulator(tls=...)``).  They are
consumed by the next N connections that start a TLS handshake, in the order queued, before
any request is read, so they take no ``only`` and hit whatever the connection would have
carried, ``/_emulator/`` control requests included; a connection that sends plain HTTP to
the HTTPS port consumes none.  Each waits for the first bytes of the client's ClientHello,
then:

* ``tls_reset_next``: resets the connection (TCP RST): the client's handshake fails with a
  connection reset (``ConnectionResetError``; requests raises ``ConnectionError``).
* ``tls_eof_next``: closes it cleanly (FIN, after reading what the client sent): the
  handshake fails with an unexpected EOF (``ssl.SSLEOFError``; requests raises ``SSLError``).
* ``tls_stall_next``: never answers the ClientHello: the connection stays open without a byte
  until :meth:`FaultPlan.release_silenced`, ``stop()`` or the client hanging up, then it is
  closed as by ``tls_eof_next``.  It counts as a silenced connection in ``summary()``.  The
  client's handshake only ends by its own timeout (or with an EOF once released).

Nothing is processed and nothing is recorded in ``requests`` for such a connection.  On a plain
HTTP emulator they are refused (``ScarfEmulator`` raises ValueError): there is no handshake.

Lock order: ``_token_lock`` -> the import registry's condition -> ``_lock``; ``_lock`` is
never held while another lock is taken.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import Callable, TypeVar

#: Request categories a fault can be limited to ("any" matches every API request;
#: requests to the /_emulator/ control endpoints are never faulted).  Each request has one kind
#: (recording.CALL_KINDS); a category names a kind, or a group of kinds (CATEGORY_GROUPS).
#: "artifact-get" is one package or pixel and each page of their lists: one page is one
#: request, so a fault queued after page 1 hits page 2 alone.
CATEGORIES = ("any", "import-post", "import-get", "import-by-id", "import-list", "log", "abort", "artifact-get")

#: "import-get" is both import reads: existing tests and callers fault the list and single reads with it.
CATEGORY_GROUPS = {"import-get": frozenset({"import-by-id", "import-list"})}


def category_matches(only: str, kind: str) -> bool:
    """Whether a fault limited to ``only`` applies to a request of this kind."""
    return only == "any" or only == kind or kind in CATEGORY_GROUPS.get(only, ())


FAIL = "fail"
RESET = "reset"
THROTTLE = "throttle"
DELAY = "delay"
SILENCE = "silence"
TRICKLE = "trickle"
HUGE = "huge"
REDIRECT = "redirect"
TLS_RESET = "tls_reset"
TLS_EOF = "tls_eof"
TLS_STALL = "tls_stall"

#: Faults applied to a connection's TLS handshake rather than to a request.
HANDSHAKE = frozenset({TLS_RESET, TLS_EOF, TLS_STALL})

#: Queued kinds that answer (or refuse to answer) a request instead of the API.
TERMINAL = frozenset({FAIL, RESET, THROTTLE, SILENCE, HUGE, REDIRECT})

TRICKLE_PARTS = ("headers", "body")
HUGE_SHAPES = ("json", "ndjson", "line")
REDIRECT_STATUSES = (301, 302, 303, 307, 308)

SHORT_COUNT = "short_count"
FINAL_STATUS = "final_status"
INTERIM_STATUS = "interim_status"
SHORT_COUNT_MODES = ("processed", "total")

LIST_OMIT = "list_omit"
LIST_TRUNCATE = "list_truncate"
LIST_IGNORE_PER_PAGE = "list_ignore_per_page"
LIST_STALE = "list_stale"

#: Scarf's reported default page of the imports list, and what list_ignore_per_page_next pages at.
LIST_DEFAULT_PAGE = 10

#: Bytes in one "megabyte" of ``huge_next``.
MEGABYTE = 1_000_000

@dataclass
class QueuedFault:
    """One queued request fault; ``remaining`` counts the requests it still applies to."""

    kind: str
    remaining: int
    only: str = "any"

    def matches(self, category: str) -> bool:
        return category_matches(self.only, category)

    @property
    def before_processing(self) -> bool:
        return True

    def describe(self) -> dict:
        return asdict(self)


@dataclass
class Fault(QueuedFault):
    """fail / reset / throttle / delay."""

    status: int = 503
    retry_after: int = 1
    seconds: float = 0.0
    after_processing: bool = False

    @property
    def before_processing(self) -> bool:
        return not self.after_processing


@dataclass
class Trickle(QueuedFault):
    bytes_per_second: float = 1.0
    part: str = "body"


@dataclass
class Huge(QueuedFault):
    megabytes: float = 300
    shape: str = "json"

    @property
    def size(self) -> int:
        return int(self.megabytes * MEGABYTE)


@dataclass
class Redirect(QueuedFault):
    status: int = 307
    location: str | None = None  # None: this emulator, as the client addressed it


@dataclass
class HandshakeFault(QueuedFault):
    """tls_reset / tls_eof / tls_stall: applies to a connection, before any request, so not to a category."""

    def describe(self) -> dict:
        return {"kind": self.kind, "remaining": self.remaining}


@dataclass
class Outage:
    only: str
    status: int | str
    until: float | None  # time.monotonic() deadline, None until end_outage()

    def matches(self, category: str) -> bool:
        return category_matches(self.only, category)

    def describe(self, now: float) -> dict:
        left = None if self.until is None else max(0.0, self.until - now)
        return {"kind": "outage", "only": self.only, "status": self.status, "seconds_left": left}


@dataclass
class Flaky:
    every: int
    status: int | str
    only: str
    remaining: int | None  # matching requests still to count; None until clear_faults()
    seen: int = 0

    def matches(self, category: str) -> bool:
        return category_matches(self.only, category)

    def describe(self) -> dict:
        return {"kind": "flaky", **asdict(self)}


@dataclass
class ImportFault:
    """One queued import fault (short_count, final_status or interim_status)."""

    kind: str
    remaining: int
    missing: int = 0
    mode: str = "processed"
    status: str = ""

    def describe(self) -> dict:
        if self.kind == SHORT_COUNT:
            return {"kind": self.kind, "remaining": self.remaining, "missing": self.missing, "mode": self.mode}
        return {"kind": self.kind, "remaining": self.remaining, "status": self.status}


@dataclass
class ImportQuirks:
    """What the import faults make of one new import."""

    missing: int = 0
    mode: str = "processed"
    interim_status: str | None = None
    final_status: str | None = None


@dataclass
class ListFault:
    """One list fault (omit, truncate or ignore per_page); ``remaining`` None lasts until cleared."""

    kind: str
    remaining: int | None
    import_ids: tuple[str, ...] | None = None
    fraction: float | None = None
    keep: int = 1
    page_size: int = LIST_DEFAULT_PAGE

    def describe(self) -> dict:
        entry: dict = {"kind": self.kind, "remaining": self.remaining}
        if self.kind == LIST_OMIT:
            entry.update(import_ids=list(self.import_ids) if self.import_ids is not None else None,
                         fraction=self.fraction)
        elif self.kind == LIST_TRUNCATE:
            entry["keep"] = self.keep
        else:
            entry["page_size"] = self.page_size
        return entry


@dataclass
class ListQuirks:
    """What the list faults make of one answer of the imports list (see the module docstring)."""

    omit_ids: frozenset[str] | None = None
    omit_fraction: float | None = None
    keep: int | None = None
    page_size: int | None = None
    stale_seconds: float = 0.0

    def omits(self, import_id: str, seq: int, importing: bool) -> bool:
        if self.omit_ids is not None:
            return import_id in self.omit_ids
        if self.omit_fraction is None or not importing:
            return False
        return math.floor(seq * self.omit_fraction) > math.floor((seq - 1) * self.omit_fraction)


@dataclass
class Revocation:
    imports: int
    created: int = 0

    @property
    def revoked(self) -> bool:
        return self.created >= self.imports


def _check_common(n: int, only: str) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError("n must be a non-negative integer")
    if only not in CATEGORIES:
        raise ValueError(f"only must be one of {CATEGORIES}")


def _check_count(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError("n must be a non-negative integer")


def _failure_status(status: int | str, lowest: int) -> int | str:
    if status == RESET:
        return RESET
    if isinstance(status, bool) or not isinstance(status, int) or not lowest <= status <= 599:
        raise ValueError(f'status must be an HTTP status {lowest}-599 or "reset"')
    return status


def _check_answers(n: int | None) -> None:
    if n is not None:
        _check_count(n)


def _status_word(status: str) -> str:
    if not isinstance(status, str) or not status:
        raise ValueError("status must be a non-empty string")
    return status


T = TypeVar("T")


class FaultPlan:
    """Thread-safe store of every kind of fault (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._faults: list[QueuedFault] = []
        self._outages: list[Outage] = []
        self._flaky: list[Flaky] = []
        self._import_faults: list[ImportFault] = []
        self._list_faults: list[ListFault] = []
        self._list_stale_seconds = 0.0
        self._silenced: list[threading.Event] = []
        self._busy = {SILENCE: 0, TRICKLE: 0, HUGE: 0}
        self._token_lock = threading.Lock()
        self._revocations: dict[str, Revocation] = {}

    # -- queueing: request faults --------------------------------------------------
    def fail_next(self, n: int, status: int = 503, only: str = "any", after_processing: bool = False) -> None:
        _check_common(n, only)
        if not 400 <= int(status) <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        self._add(Fault(FAIL, n, only, status=int(status), after_processing=after_processing))

    def reset_next(self, n: int, only: str = "any", after_processing: bool = False) -> None:
        _check_common(n, only)
        self._add(Fault(RESET, n, only, after_processing=after_processing))

    def throttle_next(self, n: int, retry_after: float = 1, only: str = "any") -> None:
        _check_common(n, only)
        if retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        self._add(Fault(THROTTLE, n, only, status=429, retry_after=math.ceil(retry_after)))

    def delay_next(self, n: int, seconds: float, only: str = "any") -> None:
        _check_common(n, only)
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        self._add(Fault(DELAY, n, only, seconds=float(seconds)))

    def silence_next(self, n: int, only: str = "any") -> None:
        _check_common(n, only)
        self._add(QueuedFault(SILENCE, n, only))

    def trickle_next(self, n: int, only: str = "any", bytes_per_second: float = 1.0, part: str = "body") -> None:
        _check_common(n, only)
        if not bytes_per_second > 0:
            raise ValueError("bytes_per_second must be > 0")
        if part not in TRICKLE_PARTS:
            raise ValueError(f"part must be one of {TRICKLE_PARTS}")
        self._add(Trickle(TRICKLE, n, only, bytes_per_second=float(bytes_per_second), part=part))

    def huge_next(self, n: int, only: str = "any", megabytes: float = 300, shape: str = "json") -> None:
        _check_common(n, only)
        if not megabytes > 0:
            raise ValueError("megabytes must be > 0")
        if shape not in HUGE_SHAPES:
            raise ValueError(f"shape must be one of {HUGE_SHAPES}")
        self._add(Huge(HUGE, n, only, megabytes=megabytes, shape=shape))

    def redirect_next(self, n: int, only: str = "any", status: int = 307, location: str | None = None) -> None:
        _check_common(n, only)
        if status not in REDIRECT_STATUSES:
            raise ValueError(f"status must be one of {REDIRECT_STATUSES}")
        if location is not None and not (isinstance(location, str) and location.startswith(("http://", "https://"))):
            raise ValueError("location must be an absolute http(s) URL, or None for this emulator")
        self._add(Redirect(REDIRECT, n, only, status=status, location=location))

    # -- queueing: TLS handshake faults ---------------------------------------------
    def tls_reset_next(self, n: int) -> None:
        _check_count(n)
        self._add(HandshakeFault(TLS_RESET, n))

    def tls_eof_next(self, n: int) -> None:
        _check_count(n)
        self._add(HandshakeFault(TLS_EOF, n))

    def tls_stall_next(self, n: int) -> None:
        _check_count(n)
        self._add(HandshakeFault(TLS_STALL, n))

    def _add(self, fault: QueuedFault) -> None:
        if fault.remaining:
            with self._lock:
                self._faults.append(fault)

    # -- queueing: rules -----------------------------------------------------------
    def start_outage(self, only: str = "any", status: int | str = 503, seconds: float | None = None) -> None:
        _check_common(0, only)
        status = _failure_status(status, 500)
        if seconds is not None and not seconds > 0:
            raise ValueError("seconds must be > 0, or None for an outage that lasts until end_outage()")
        with self._lock:
            until = None if seconds is None else self._clock() + float(seconds)
            self._outages.append(Outage(only, status, until))

    def end_outage(self) -> int:
        """End every outage; return how many were still active."""
        with self._lock:
            self._prune_outages_locked()
            ended = len(self._outages)
            self._outages.clear()
            return ended

    def flaky(self, every: int = 2, status: int | str = 503, only: str = "any", count: int | None = None) -> None:
        _check_common(0, only)
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError("every must be a positive integer")
        if count is not None:
            _check_count(count)
        status = _failure_status(status, 400)
        if count != 0:
            with self._lock:
                self._flaky.append(Flaky(every, status, only, count))

    # -- queueing: import and token faults -----------------------------------------
    def short_count_next(self, n: int, missing: int = 1, mode: str = "processed") -> None:
        _check_count(n)
        if isinstance(missing, bool) or not isinstance(missing, int) or missing < 1:
            raise ValueError("missing must be a positive integer")
        if mode not in SHORT_COUNT_MODES:
            raise ValueError(f"mode must be one of {SHORT_COUNT_MODES}")
        self._add_import(ImportFault(SHORT_COUNT, n, missing=missing, mode=mode))

    def final_status_next(self, n: int, status: str = "failed") -> None:
        _check_count(n)
        self._add_import(ImportFault(FINAL_STATUS, n, status=_status_word(status)))

    def interim_status_next(self, n: int, status: str = "queued") -> None:
        _check_count(n)
        self._add_import(ImportFault(INTERIM_STATUS, n, status=_status_word(status)))

    def _add_import(self, fault: ImportFault) -> None:
        if fault.remaining:
            with self._lock:
                self._import_faults.append(fault)

    # -- queueing: list faults ------------------------------------------------------
    def list_omit_next(self, n: int | None, import_ids: list[str] | None = None,
                       fraction: float | None = None) -> None:
        _check_answers(n)
        if import_ids is not None:
            if fraction is not None:
                raise ValueError("give import_ids or fraction, not both")
            if isinstance(import_ids, str) or not all(isinstance(i, str) for i in import_ids):
                raise ValueError("import_ids must be a list of import ids")
            ids: tuple[str, ...] | None = tuple(import_ids)
        else:
            ids = None
            fraction = 1.0 if fraction is None else fraction
            if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
                raise ValueError("fraction must be > 0 and <= 1")
            fraction = float(fraction)
        self._add_list(ListFault(LIST_OMIT, n, import_ids=ids, fraction=fraction))

    def list_truncate_next(self, n: int | None, keep: int = 1) -> None:
        _check_answers(n)
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError("keep must be a positive integer")
        self._add_list(ListFault(LIST_TRUNCATE, n, keep=keep))

    def list_ignore_per_page_next(self, n: int | None, page_size: int = LIST_DEFAULT_PAGE) -> None:
        _check_answers(n)
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError("page_size must be a positive integer")
        self._add_list(ListFault(LIST_IGNORE_PER_PAGE, n, page_size=page_size))

    def list_stale(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise ValueError("seconds must be >= 0")
        with self._lock:
            self._list_stale_seconds = float(seconds)

    def _add_list(self, fault: ListFault) -> None:
        if fault.remaining != 0:
            with self._lock:
                self._list_faults.append(fault)

    def revoke_token_after(self, token: str, imports: int) -> None:
        if isinstance(imports, bool) or not isinstance(imports, int) or imports < 0:
            raise ValueError("imports must be a non-negative integer")
        with self._token_lock:
            self._revocations[token] = Revocation(imports)

    # -- overview ------------------------------------------------------------------
    def clear(self) -> None:
        """Forget every pending fault and rule, end outages and lift revocations.

        Connections already silenced stay held (``release_silenced`` frees them) and answers
        already trickling go on.
        """
        with self._lock:
            self._faults.clear()
            self._outages.clear()
            self._flaky.clear()
            self._import_faults.clear()
            self._list_faults.clear()
            self._list_stale_seconds = 0.0
        with self._token_lock:
            self._revocations.clear()

    def pending(self) -> list[dict]:
        """Faults not yet used up: queued request faults, outages, flaky rules, import faults,
        list faults (a stale list last), then token revocations (without the token).  Each is a
        dict with a ``kind``."""
        with self._lock:
            self._prune_outages_locked()
            now = self._clock()
            entries = [f.describe() for f in self._faults]
            entries += [o.describe(now) for o in self._outages]
            entries += [f.describe() for f in self._flaky]
            entries += [f.describe() for f in self._import_faults]
            entries += [f.describe() for f in self._list_faults]
            if self._list_stale_seconds:
                entries.append({"kind": LIST_STALE, "seconds": self._list_stale_seconds})
        with self._token_lock:
            entries += [
                {"kind": "revoke_token", "imports": r.imports, "created": r.created, "revoked": r.revoked}
                for r in self._revocations.values()
            ]
        return entries

    def summary(self) -> dict:
        """Counts of pending faults by kind, and of answers being held, trickled or streamed now."""
        pending = self.pending()
        by_kind: dict[str, int] = {}
        for entry in pending:
            by_kind[entry["kind"]] = by_kind.get(entry["kind"], 0) + 1
        with self._lock:
            busy = dict(self._busy)
        return {
            "pending": len(pending),
            "pending_by_kind": by_kind,
            "outages": by_kind.get("outage", 0),
            "silenced_connections": busy[SILENCE],
            "trickling_answers": busy[TRICKLE],
            "huge_answers": busy[HUGE],
        }

    # -- consumption: request faults -----------------------------------------------
    def outage_status(self, category: str) -> int | str | None:
        """The failure an active outage gives this request, or None when none applies."""
        with self._lock:
            self._prune_outages_locked()
            for outage in self._outages:
                if outage.matches(category):
                    return outage.status
        return None

    def _prune_outages_locked(self) -> None:
        now = self._clock()
        self._outages = [o for o in self._outages if o.until is None or o.until > now]

    def take_delay(self, category: str) -> float:
        """Seconds to wait before answering this request (0 when no delay is queued)."""
        fault = self._take(lambda f: f.kind == DELAY and f.matches(category))
        return fault.seconds if fault else 0.0  # type: ignore[attr-defined]

    def take(self, category: str, after_processing: bool) -> QueuedFault | None:
        """The next terminal fault for this request and phase (only fail/reset apply after processing)."""
        return self._take(
            lambda f: f.kind in TERMINAL and f.matches(category) and f.before_processing != after_processing
        )

    def take_handshake_fault(self) -> str | None:
        """The kind of the next TLS handshake fault for a new connection (TLS_RESET, TLS_EOF or
        TLS_STALL), or None when none is queued."""
        fault = self._take(lambda f: f.kind in HANDSHAKE)
        return fault.kind if fault else None

    def take_trickle(self, category: str) -> Trickle | None:
        return self._take(lambda f: f.kind == TRICKLE and f.matches(category))  # type: ignore[return-value]

    def flaky_status(self, category: str) -> int | str | None:
        """Count this request in every matching flaky rule; the failure of the first that fails it."""
        failure = None
        with self._lock:
            for rule in list(self._flaky):
                if not rule.matches(category):
                    continue
                rule.seen += 1
                if rule.seen % rule.every == 0 and failure is None:
                    failure = rule.status
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._flaky.remove(rule)
        return failure

    def _take(self, predicate) -> QueuedFault | None:
        with self._lock:
            for index, fault in enumerate(self._faults):
                if predicate(fault):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        del self._faults[index]
                    return replace(fault)
        return None

    # -- answers in progress -------------------------------------------------------
    def hold_silenced(self) -> threading.Event:
        """Register a silenced connection; the event is set when it must be released."""
        gate = threading.Event()
        with self._lock:
            self._silenced.append(gate)
        return gate

    def forget_silenced(self, gate: threading.Event) -> None:
        with self._lock:
            if gate in self._silenced:
                self._silenced.remove(gate)

    def release_silenced(self) -> int:
        """Release every silenced connection; return how many were held."""
        with self._lock:
            gates, self._silenced = self._silenced, []
        for gate in gates:
            gate.set()
        return len(gates)

    def busy(self, kind: str) -> "_Busy":
        """Context manager counting an answer in progress (silence, trickle or huge)."""
        return _Busy(self, kind)

    def _count_busy(self, kind: str, delta: int) -> None:
        with self._lock:
            self._busy[kind] += delta

    # -- consumption: import and token faults --------------------------------------
    def take_import_quirks(self) -> ImportQuirks | None:
        """One fault of each import kind for a new import, or None when none is queued."""
        with self._lock:
            taken: dict[str, ImportFault] = {}
            for fault in list(self._import_faults):
                if fault.kind in taken:
                    continue
                taken[fault.kind] = replace(fault)
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._import_faults.remove(fault)
        if not taken:
            return None
        quirks = ImportQuirks()
        if SHORT_COUNT in taken:
            quirks.missing, quirks.mode = taken[SHORT_COUNT].missing, taken[SHORT_COUNT].mode
        if FINAL_STATUS in taken:
            quirks.final_status = taken[FINAL_STATUS].status
        if INTERIM_STATUS in taken:
            quirks.interim_status = taken[INTERIM_STATUS].status
        return quirks

    # -- consumption: list faults ----------------------------------------------------
    def take_list_quirks(self) -> ListQuirks:
        """One fault of each list kind for one list answer, and the stale window."""
        with self._lock:
            taken: dict[str, ListFault] = {}
            for fault in list(self._list_faults):
                if fault.kind in taken:
                    continue
                taken[fault.kind] = fault
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._list_faults.remove(fault)
            quirks = ListQuirks(stale_seconds=self._list_stale_seconds)
        if LIST_OMIT in taken:
            omit = taken[LIST_OMIT]
            quirks.omit_ids = frozenset(omit.import_ids) if omit.import_ids is not None else None
            quirks.omit_fraction = omit.fraction
        if LIST_TRUNCATE in taken:
            quirks.keep = taken[LIST_TRUNCATE].keep
        if LIST_IGNORE_PER_PAGE in taken:
            quirks.page_size = taken[LIST_IGNORE_PER_PAGE].page_size
        return quirks

    def token_revoked(self, token: str | None) -> bool:
        if token is None or not self._revocations:
            return False
        with self._token_lock:
            revocation = self._revocations.get(token)
            return revocation is not None and revocation.revoked

    def admit_import(self, token: str | None, create: Callable[[], T]) -> tuple[bool, T | None]:
        """Run ``create`` unless the token is revoked; count what it creates against the token.

        Returns (False, None) when the token is revoked.  The check, the creation and the count
        happen under one lock, so concurrent uploads never create more than N imports.
        """
        if token is None or not self._revocations:
            return True, create()
        with self._token_lock:
            revocation = self._revocations.get(token)
            if revocation is None:
                return True, create()
            if revocation.revoked:
                return False, None
            created = create()
            if created is not None:
                revocation.created += 1
            return True, created


class _Busy:
    def __init__(self, plan: FaultPlan, kind: str) -> None:
        self._plan = plan
        self._kind = kind

    def __enter__(self) -> None:
        self._plan._count_busy(self._kind, 1)

    def __exit__(self, *exc_info) -> None:
        self._plan._count_busy(self._kind, -1)
