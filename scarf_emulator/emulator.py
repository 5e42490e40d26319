"""The :class:`ScarfEmulator` facade: configuration, lifecycle and the test-facing API.

Tests of the connector drive everything through this one object (or, for subprocesses,
through the equivalent ``/_emulator/`` endpoints), so its method names are a contract.

HTTPS: ``ScarfEmulator(..., tls=context)`` with a server-side :class:`ssl.SSLContext` that has
its certificate chain loaded (:func:`scarf_emulator.tls.server_context` makes one from PEM
files) serves every route, API and ``/_emulator/`` control alike, over TLS, with every fault;
``start()`` then returns ``https://HOST:PORT``.  Plain HTTP stays the default.  Only an HTTPS
emulator takes the TLS handshake faults (``tls_reset_next``, ``tls_eof_next``,
``tls_stall_next``).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from datetime import timedelta
from typing import Callable, Iterable, Mapping

from .accounts import Directory
from .api import ScarfApi
from .control import ControlApi
from .faults import FaultPlan
from .import_registry import ImportRegistry
from .processing import Processor, ProcessingSettings
from .recording import RequestLog, RequestRecord, call_counts
from .server import EmulatorHTTPServer, ServerContext
from .store import EventStore

logger = logging.getLogger(__name__)

#: One configured package or tracking pixel: its id, or a dict with "id" and optionally "name" (and "type").
ArtifactSpec = str | Mapping[str, str]

#: Scarf's documented limit of concurrently active imports per account.
DEFAULT_MAX_ACTIVE_IMPORTS = 15

#: Scarf refuses events older than one week before the import (since 2026-06-15).
DEFAULT_TIME_WINDOW = timedelta(days=7)


class ScarfEmulator:
    """A local, in-process Scarf Event Import API on a real HTTP socket.

    ``packages`` and ``tracking_pixels`` map an owner to its artifacts, each an id (its name is
    then the id, a package's type ``file``) or a dict: ``{"id": ..., "name": ..., "type": ...}``
    for a package (name and type optional; type one of docker, file, python, npm, hackage),
    ``{"id": ..., "name": ...}`` for a pixel.  Both forms mix in one list.  A package name is
    unique per owner and type (see :meth:`Directory.add_package`).

    The store stays readable after :meth:`stop`, so assertions can run after a ``with`` block.
    """

    def __init__(
        self,
        tokens: Mapping[str, Iterable[str]] | None = None,
        packages: Mapping[str, Iterable[ArtifactSpec]] | None = None,
        tracking_pixels: Mapping[str, Iterable[ArtifactSpec]] | None = None,
        db_path: str = ":memory:",
        events_per_second: float | None = None,
        max_active_imports: int = DEFAULT_MAX_ACTIVE_IMPORTS,
        time_window: timedelta = DEFAULT_TIME_WINDOW,
        store_events: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: ssl.SSLContext | None = None,
        import_seconds: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``import_seconds``: every import takes this long whatever its size (see :meth:`set_import_seconds`).
        ``clock``: monotonic seconds for import pacing, the list's staleness and timed outages
        (``time.monotonic``; a test may pass a fake one it advances by hand)."""
        if tls is not None:
            if not isinstance(tls, ssl.SSLContext):
                raise TypeError("tls must be a server-side ssl.SSLContext (see scarf_emulator.tls.server_context)")
            if tls.protocol == ssl.PROTOCOL_TLS_CLIENT:
                raise ValueError("tls must be a server-side context (ssl.PROTOCOL_TLS_SERVER), not a client one")
        self.host = host
        self.port = port
        #: The server-side TLS context when serving HTTPS, None for plain HTTP.
        self.tls = tls
        self.url: str | None = None
        clock = clock or time.monotonic
        self._directory = Directory()
        self._store = EventStore(db_path)
        self._settings = ProcessingSettings(_rate(events_per_second), time_window, store_events,
                                            _import_seconds(import_seconds))
        self._registry = ImportRegistry(max_active_imports, clock)
        self._processor = Processor(self._registry, self._store, self._settings, self._directory, clock)
        self._faults = FaultPlan(clock)
        self._requests = RequestLog()
        self._server: EmulatorHTTPServer | None = None
        self._context: ServerContext | None = None
        self._thread: threading.Thread | None = None
        self._configure(tokens or {}, packages or {}, tracking_pixels or {})

    def _configure(self, tokens, packages, pixels) -> None:
        for owner, specs in packages.items():
            self.add_owner(owner)
            for spec in specs:
                self.add_package(owner, **_artifact_fields(spec, "package_id", ("name", "type"), "package"))
        for owner, specs in pixels.items():
            self.add_owner(owner)
            for spec in specs:
                self.add_tracking_pixel(owner, **_artifact_fields(spec, "pixel_id", ("name",), "tracking pixel"))
        for token, owners in tokens.items():
            self.add_token(token, owners)

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> str:
        """Bind, serve in a background thread and return the base URL."""
        if self._server is not None:
            return self.url  # type: ignore[return-value]
        self._processor.restart()
        self._context = context = ServerContext(
            ScarfApi(self._directory, self._registry, self._processor, self._faults), ControlApi(self), self._faults,
            self._requests,
        )
        self._server = EmulatorHTTPServer(self.host, self.port, context, self.tls)
        port = self._server.server_address[1]
        self.url = f"{self._server.scheme}://{_url_host(self.host)}:{port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="scarf-emulator", daemon=True
        )
        self._thread.start()
        logger.info("Scarf emulator listening on %s", self.url)
        return self.url

    def stop(self) -> None:
        """Stop serving, release silenced connections, end delays and slow answers,
        drop open connections and stop the import workers."""
        server, self._server = self._server, None
        if server is None:
            return
        if self._context is not None:
            self._context.stopping.set()
        self._faults.release_silenced()
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(5)
        self._processor.stop()

    def close(self) -> None:
        """Stop and release the database connection."""
        self.stop()
        self._store.close()

    def __enter__(self) -> "ScarfEmulator":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- configuration -------------------------------------------------------------
    def add_owner(self, owner: str) -> None:
        self._directory.add_owner(owner)

    def add_package(self, owner: str, package_id: str, name: str | None = None, type: str = "file") -> None:
        """Add or replace a package; ValueError for an unknown type or a (type, name) another id holds."""
        self._directory.add_package(owner, package_id, name, type)

    def add_tracking_pixel(self, owner: str, pixel_id: str, name: str | None = None) -> None:
        """Add or replace a tracking pixel (``name`` defaults to the id)."""
        self._directory.add_tracking_pixel(owner, pixel_id, name)

    def add_token(self, token: str, owners: Iterable[str] | str) -> None:
        self._directory.add_token(token, owners)

    @property
    def max_active_imports(self) -> int:
        return self._registry.max_active

    @max_active_imports.setter
    def max_active_imports(self, value: int) -> None:
        self._registry.max_active = value

    # -- faults and slots ----------------------------------------------------------
    # Request faults, import faults and token faults; faults.py documents how they combine
    # (outages first, then delays, queued faults in queue order, flaky rules, the API, ...).
    def fail_next(self, n: int, status: int = 503, only: str = "any", after_processing: bool = False) -> None:
        """Answer the next ``n`` matching requests with ``status`` (after_processing: do the work first)."""
        self._faults.fail_next(n, status, only, after_processing)

    def reset_next(self, n: int, only: str = "any", after_processing: bool = False) -> None:
        """Close the next ``n`` matching connections without an answer, after reading the request."""
        self._faults.reset_next(n, only, after_processing)

    def throttle_next(self, n: int, retry_after: float = 1, only: str = "any") -> None:
        """Answer the next ``n`` matching requests with 429 and ``Retry-After: retry_after``."""
        self._faults.throttle_next(n, retry_after, only)

    def delay_next(self, n: int, seconds: float, only: str = "any") -> None:
        """Hold back the answers to the next ``n`` matching requests by ``seconds``."""
        self._faults.delay_next(n, seconds, only)

    def start_outage(self, only: str = "any", status: int | str = 503, seconds: float | None = None) -> None:
        """Answer every matching request with ``status`` (500-599, or "reset" to drop the connection)
        until :meth:`end_outage` or, when ``seconds`` is given, until that many seconds have passed.

        During an outage no other fault is consumed: queued faults and flaky counts wait behind it.
        """
        self._faults.start_outage(only, status, seconds)

    def end_outage(self) -> int:
        """End every outage now; return how many were active."""
        return self._faults.end_outage()

    def flaky(self, every: int = 2, status: int | str = 503, only: str = "any", count: int | None = None) -> None:
        """Fail every ``every``-th matching request (the 2nd, 4th, ... for every=2), deterministically,
        for the next ``count`` matching requests (None: until :meth:`clear_faults`).

        ``status`` is 400-599 or "reset".  Requests answered by an outage or a queued fault are not counted.
        """
        self._faults.flaky(every, status, only, count)

    def silence_next(self, n: int, only: str = "any") -> None:
        """Read the next ``n`` matching requests and never answer: the connection stays open without a
        byte until :meth:`release_silenced`, :meth:`stop` or the client hanging up, then it is closed.

        Nothing is processed (an import POST creates no import).
        """
        self._faults.silence_next(n, only)

    def release_silenced(self) -> int:
        """Close every connection held by :meth:`silence_next` or :meth:`tls_stall_next`; return how many
        there were."""
        return self._faults.release_silenced()

    def trickle_next(self, n: int, only: str = "any", bytes_per_second: float = 1.0, part: str = "body") -> None:
        """Send the real answers to the next ``n`` matching requests at ``bytes_per_second``:
        part="headers" trickles the status line and headers (the body follows at once),
        part="body" sends the headers at once and trickles the body.  :meth:`stop` cuts them off.
        """
        self._faults.trickle_next(n, only, bytes_per_second, part)

    def huge_next(self, n: int, only: str = "any", megabytes: float = 300, shape: str = "json") -> None:
        """Answer the next ``n`` matching requests 200 with a body of ``megabytes`` (10**6 bytes) made on
        the fly, with a correct Content-Length: shape "json" (an EventImport with a giant padding field),
        "ndjson" (ImportLog lines, as from /log) or "line" (one giant line, no newline).

        Nothing is processed; :meth:`stop` cuts the body off.
        """
        self._faults.huge_next(n, only, megabytes, shape)

    def redirect_next(self, n: int, only: str = "any", status: int = 307, location: str | None = None) -> None:
        """Answer the next ``n`` matching requests with ``status`` (301, 302, 303, 307 or 308) and a
        Location header: ``location`` as given, with the request's path and query appended when it is a
        base URL without path; None means this emulator (as the client addressed it).

        The request body is read and discarded; nothing is processed.
        """
        self._faults.redirect_next(n, only, status, location)

    def tls_reset_next(self, n: int) -> None:
        """Reset (TCP RST) the next ``n`` connections during their TLS handshake, once the client has
        started it: the client sees a connection reset.  HTTPS emulator only; these handshake faults hit
        every kind of connection, control ones included (faults.py has the details)."""
        self._require_tls("tls_reset_next")
        self._faults.tls_reset_next(n)

    def tls_eof_next(self, n: int) -> None:
        """Close the next ``n`` connections cleanly (FIN) during their TLS handshake: the client sees an
        unexpected EOF (``ssl.SSLEOFError``).  HTTPS emulator only."""
        self._require_tls("tls_eof_next")
        self._faults.tls_eof_next(n)

    def tls_stall_next(self, n: int) -> None:
        """Never answer the ClientHello of the next ``n`` connections: each stays open without a byte
        until :meth:`release_silenced`, :meth:`stop` or the client hanging up (it counts as a silenced
        connection), then it is closed cleanly.  HTTPS emulator only."""
        self._require_tls("tls_stall_next")
        self._faults.tls_stall_next(n)

    def _require_tls(self, knob: str) -> None:
        if self.tls is None:
            raise ValueError(f"{knob} needs an emulator serving HTTPS (ScarfEmulator(tls=...)): plain HTTP has no handshake")

    def short_count_next(self, n: int, missing: int = 1, mode: str = "processed") -> None:
        """The next ``n`` imports created end ``done`` counting fewer events than they received: the
        last ``missing`` lines of the body are neither imported nor failed nor stored.

        mode="processed": events_total is what was received; mode="total": events_total itself
        reports received - missing.
        """
        self._faults.short_count_next(n, missing, mode)

    def final_status_next(self, n: int, status: str = "failed") -> None:
        """The next ``n`` imports created end with ``status`` (any word) instead of ``done``.

        They are processed normally first: their accepted events are stored and counted.
        """
        self._faults.final_status_next(n, status)

    def interim_status_next(self, n: int, status: str = "queued") -> None:
        """The next ``n`` imports created report ``status`` (any word) instead of ``importing`` while
        they process, then end normally; they hold an active slot meanwhile."""
        self._faults.interim_status_next(n, status)

    # List faults: they change what 200 answers of the imports list show (faults.py documents them).
    # ``n`` counts list answers; None means every answer until clear_faults().
    def list_omit_next(self, n: int | None, import_ids: list[str] | None = None,
                       fraction: float | None = None) -> None:
        """The next ``n`` list answers leave out the imports named (whatever their status) or, without
        ids, ``fraction`` (default 1: all) of the imports still importing, chosen evenly and stably by
        creation order.  They are skipped before paging, like an index that has not caught up."""
        self._faults.list_omit_next(n, import_ids, fraction)

    def list_truncate_next(self, n: int | None, keep: int = 1) -> None:
        """The next ``n`` list answers hold at most ``keep`` imports although more match; the ``after``
        cursor still continues from the last import shown."""
        self._faults.list_truncate_next(n, keep)

    def list_ignore_per_page_next(self, n: int | None, page_size: int = 10) -> None:
        """The next ``n`` list answers ignore ``per_page`` (it is still checked) and page at ``page_size``."""
        self._faults.list_ignore_per_page_next(n, page_size)

    def list_stale(self, seconds: float) -> None:
        """From now on the list shows an import that finished less than ``seconds`` ago (on the emulator's
        clock) as it last looked while importing; reads by id stay fresh.  0 (or clear_faults) ends it."""
        self._faults.list_stale(seconds)

    def revoke_token_after(self, token: str, imports: int) -> None:
        """Once ``token`` has created ``imports`` more imports, refuse it on every request as an unknown
        token (403 "invalid token"); those imports complete normally.  :meth:`clear_faults` lifts it."""
        if self._directory.token_owners(token) is None:
            raise KeyError("unknown token")
        self._faults.revoke_token_after(token, imports)

    def clear_faults(self) -> None:
        """Forget every pending fault, end outages and flaky rules, lift token revocations.

        Connections already silenced stay held (:meth:`release_silenced`); answers already
        trickling or streaming go on."""
        self._faults.clear()

    def pending_faults(self) -> list[dict]:
        """Faults not used up yet, each a dict with a ``kind`` (see faults.FaultPlan.pending)."""
        return self._faults.pending()

    def fault_summary(self) -> dict:
        """Pending faults counted by kind, and the answers in progress right now: connections held
        silent, answers trickling, huge bodies streaming."""
        return self._faults.summary()

    def hold_slots(self, owner: str, k: int) -> list[str]:
        """Occupy ``k`` import slots of ``owner`` with real, never-progressing imports.

        They model imports started by another tool; they ignore the active limit.
        """
        self._require_owner(owner)
        return [self._registry.create(owner, 0, held=True, force=True).id for _ in range(int(k))]

    def release_slots(self, owner: str) -> list[str]:
        """Finish the held imports of ``owner`` as done; return their ids."""
        return self._registry.release_held(owner)

    def set_rate(self, events_per_second: float | None) -> None:
        """Per-import processing rate for running and future imports (None/0 = unthrottled)."""
        self._settings.events_per_second = _rate(events_per_second)

    def set_import_seconds(self, seconds: float | None) -> None:
        """Every import, running or future, takes ``seconds`` (on the emulator's clock) whatever its
        size, its counts growing evenly meanwhile; None/0 = as fast as the rate allows.  With a rate
        too, the slower of the two wins."""
        self._settings.import_seconds = _import_seconds(seconds)

    def abort_import(self, owner: str, import_id: str) -> bool:
        """Abort as another user would; False if the import had already finished."""
        record = self._registry.get(owner, import_id)
        if record is None:
            raise KeyError(f"no import {import_id} for owner {owner}")
        return self._registry.abort(record)

    # -- observation ---------------------------------------------------------------
    def events(self, owner: str, artifact: str | None = None) -> list[dict]:
        return self._store.events(owner, artifact)

    def event_rows(self, owner: str) -> list[dict]:
        """Stored events with unique_id, artifact_type, artifact_id and import_id."""
        return self._store.rows(owner)

    def event_count(self, owner: str) -> int:
        return self._store.count(owner)

    def imports(self, owner: str) -> list[dict]:
        return self._registry.snapshots(owner)

    def get_import(self, owner: str, import_id: str) -> dict:
        record = self._registry.get(owner, import_id)
        if record is None:
            raise KeyError(f"no import {import_id} for owner {owner}")
        return self._registry.snapshot(record)

    def import_log(self, owner: str, import_id: str) -> list[dict]:
        record = self._registry.get(owner, import_id)
        if record is None:
            raise KeyError(f"no import {import_id} for owner {owner}")
        return self._registry.log(record)

    @property
    def requests(self) -> list[RequestRecord]:
        return self._requests.snapshot()

    def clear_requests(self) -> None:
        self._requests.clear()

    def call_counts(self, owner: str | None = None) -> dict:
        """API calls received so far (all of them, or those naming ``owner``), by kind and per import:
        ``{"total", "by_kind", "imports", "by_import", "unattributed"}``; see recording.call_counts."""
        return call_counts(self._requests.snapshot(), owner)

    def stats(self, owner: str | None = None) -> dict:
        """Counters for one owner (or all); while imports run, store and import counters are
        read one after the other and may differ by a chunk."""
        stats = self._registry.stats(owner)
        stats["stored_events"] = self._store.count(owner)
        stats["owner"] = owner
        stats["requests"] = len(self._requests.snapshot())
        stats["events_per_second"] = self._settings.events_per_second
        stats["import_seconds"] = self._settings.import_seconds
        return stats

    def wait_idle(self, timeout: float = 10) -> bool:
        """Wait until no import is importing (held slots excepted); False on timeout."""
        return self._registry.wait_idle(timeout)

    def _require_owner(self, owner: str) -> None:
        if not self._directory.has_owner(owner):
            raise KeyError(f"unknown owner {owner}")


def _artifact_fields(spec: ArtifactSpec, id_keyword: str, optional: tuple[str, ...], what: str) -> dict[str, str]:
    """The keyword arguments of add_package / add_tracking_pixel for one constructor entry."""
    if isinstance(spec, str):
        return {id_keyword: spec}
    if not isinstance(spec, Mapping):
        raise TypeError(f"a {what} is an id or a dict, not {spec!r}")
    if "id" not in spec or set(spec) - {"id", *optional}:
        raise ValueError(f"a {what} dict has 'id' and optionally {' and '.join(optional)}; got keys {sorted(spec)}")
    return {id_keyword: spec["id"], **{k: v for k, v in spec.items() if k != "id"}}


def _rate(events_per_second: float | None) -> float | None:
    if events_per_second is None or events_per_second == 0:
        return None
    if events_per_second < 0:
        raise ValueError("events_per_second must be positive, 0 or None")
    return float(events_per_second)


def _import_seconds(seconds: float | None) -> float | None:
    if seconds is None or seconds == 0:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise ValueError("import_seconds must be positive, 0 or None")
    return float(seconds)


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
