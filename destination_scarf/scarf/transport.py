"""Bounded HTTP exchanges: every request ends by its deadline or a cancel, reads a bounded answer, never follows a
redirect, and every way it can fail is named.

`requests` bounds each socket operation (connect, each read), not the exchange: a server that
trickles its answer one byte a second never trips a read timeout. So every exchange here runs
under a guard with a deadline, and a single watchdog thread shuts the socket of an exchange down
when its deadline passes, or when the sync is cancelled (for every exchange but aborts); the
blocked read then fails and the exchange ends as "no complete answer within N s", or as cancelled.
Answers are read as a stream, up to a limit, so a huge body cannot fill memory. Redirects are
never followed: a 3xx would have `requests` re-send the body (record data) and the token's header
to whatever host the answer names.

Whatever the network stack raises (requests', urllib3's, the socket's and the TLS library's errors,
nested in each other) ends an exchange as `Unanswered`, whose reason names the cause: refused, DNS,
TLS, timeout, reset. A failure that retrying cannot fix (a certificate that is not trusted, a wrong
host name, an expired certificate, TLS to a port that speaks plain HTTP) carries `fix`, what the user
must change. TLS certificates are checked against the CA bundle the environment names, the standard
way: `REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE`, `SSL_CERT_FILE`, else certifi's; a variable that names a file
holding no certificate is a configuration error too. `HTTPS_PROXY` is honoured.

This module knows HTTP, not Scarf: `client.py` turns its outcomes into the connector's errors.
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import http.client
import itertools
import os
import socket
import ssl
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ProxyError,
    ReadTimeoutError,
)

#: The most an ordinary API answer may hold. Scarf's import objects are about a kilobyte.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
#: How much of an error answer is read, for the excerpt shown to the user.
MAX_ERROR_BYTES = 2048
_CHUNK = 64 * 1024

Consume = Callable[["requests.Response"], Any]
#: What a failed exchange raises: requests' errors, and urllib3's, the socket's and the TLS library's while the
#: body is streamed; ValueError and UnicodeError for an address the stack cannot use (urllib3's LocationParseError,
#: IDNA).
_NETWORK_ERRORS = (requests.RequestException, HTTPError, http.client.HTTPException, OSError, ValueError)
#: How often the watchdog looks for a cancel while a cancellable exchange runs.
_CANCEL_POLL_SECONDS = 0.1
#: OpenSSL's reasons for talking TLS to something that does not (https:// to a plain-HTTP port, say).
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "UNKNOWN_PROTOCOL", "PACKET_LENGTH_TOO_LONG",
                      "RECORD_LAYER_FAILURE"})
_TRUST_FIX = ("If a proxy or gateway that inspects TLS stands between this connector and Scarf, trust its CA the "
              "standard way: set REQUESTS_CA_BUNDLE (or SSL_CERT_FILE) to a PEM file that holds it. Otherwise "
              "check api_url.")


@dataclass(frozen=True)
class Answer:
    """A complete HTTP answer: the status, its headers, and the body as the consumer read it."""

    status: int
    headers: Mapping[str, str]
    body: Any  # bytes for ordinary answers; whatever the consumer returns otherwise
    method: str
    path: str


class Unanswered(Exception):
    """The exchange ended without a usable answer (refused, reset, timed out, too large).

    `reached_server` is False only when the request provably never reached the server (the
    connection was refused or could not be made): then re-sending cannot duplicate anything.
    """

    def __init__(self, reason: str, *, reached_server: bool, fix: str | None = None,
                 cancelled: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reached_server = reached_server
        #: What the user must change when retrying cannot help (an untrusted certificate, say); None otherwise.
        self.fix = fix
        #: The sync was cancelled while the exchange ran: it was cut short.
        self.cancelled = cancelled


class AnswerTooLarge(Exception):
    """A consumer's signal that the answer is over its limit (the exchange then ends as Unanswered)."""


# ----- the watchdog --------------------------------------------------------------------------------


@dataclass(eq=False)
class _Guard:
    deadline: float
    cancellable: bool = True  # a cancel of the sync ends it too (aborts, which a cancel sends, are not)
    connection: Any = None  # the urllib3 connection the exchange is using, from the moment it starts connecting
    sent: bool = False  # the request was handed to the connection (before that, not a byte of it was sent)
    done: bool = False
    fired: bool = False  # its deadline passed
    interrupted: bool = False  # the sync was cancelled while it ran


_current = threading.local()  # the guard of the exchange running on this thread


class _Watchdog:
    """One daemon thread that ends exchanges by shutting their socket down: overdue ones, and every cancellable
    one once `cancelled` is set (it looks every `_CANCEL_POLL_SECONDS` while one runs)."""

    def __init__(self, clock: Callable[[], float], cancelled: threading.Event) -> None:
        self._clock = clock
        self._cancelled = cancelled
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Guard]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    @contextmanager
    def guard(self, seconds: float, *, cancellable: bool) -> Iterator[_Guard]:
        guard = _Guard(deadline=self._clock() + max(seconds, 0.0), cancellable=cancellable)
        with self._cond:
            heapq.heappush(self._heap, (guard.deadline, next(self._seq), guard))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="scarf-http-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
        _current.guard = guard
        try:
            yield guard
        finally:
            _current.guard = None
            with self._cond:
                guard.done = True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                while self._heap and self._heap[0][2].done:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                watching = self._interrupt_if_cancelled()
                wait = self._heap[0][0] - self._clock()
                if wait > 0:
                    self._cond.wait(min(wait, _CANCEL_POLL_SECONDS) if watching else wait)
                    continue
                _, _, guard = heapq.heappop(self._heap)
                guard.fired = True
                _shut(guard.connection)

    def _interrupt_if_cancelled(self) -> bool:
        """Once the sync is cancelled, end every cancellable exchange; returns whether one is left to watch for."""
        running = [guard for _, _, guard in self._heap
                   if guard.cancellable and not guard.done and not guard.interrupted]
        if running and self._cancelled.is_set():
            for guard in running:
                guard.interrupted = True
                _shut(guard.connection)
            return False
        return bool(running)


def _shut(connection: Any) -> None:
    """Shut an exchange's socket down: its blocked read returns at once. (The plain socket's shutdown, so
    that an SSL socket's state is left to the thread that owns it.)

    During a TLS handshake the connection's socket has been handed to the TLS socket being made (it is
    detached), so the descriptor it had is shut down instead: the exchange is still running, so that
    descriptor is still its own."""
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    try:
        if sock.fileno() >= 0:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
            return
        descriptor = getattr(connection, "watched_fd", -1)
        if descriptor >= 0:
            handle = socket.socket(fileno=descriptor)
            try:
                handle.shutdown(socket.SHUT_RDWR)
            finally:
                handle.detach()  # the descriptor is the connection's: never closed from here
    except (OSError, TypeError, ValueError):
        pass


# The watchdog learns an exchange's connection as soon as it starts connecting, so that a hung proxy tunnel
# or TLS handshake can be cut short too; the request is "sent" only once it is handed to the connection: for
# https that is after the connection is made (TCP, a proxy's tunnel, the TLS handshake: urllib3 connects
# before it sends), so an exchange whose guard was not `sent` never sent a byte of its request.
class _Watched:
    """What both connection classes add to urllib3's: the descriptor to shut down, and the guard told."""

    watched_fd = -1

    def _new_conn(self) -> Any:
        sock = super()._new_conn()  # type: ignore[misc]
        self.watched_fd = sock.fileno()  # for https, the TLS socket made from it keeps this descriptor
        return sock

    def connect(self) -> None:
        _attach(self, sent=False)
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> Any:
        _attach(self, sent=True)  # a kept-alive connection is not connected again
        return super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


def _attach(connection: Any, *, sent: bool) -> None:
    guard = getattr(_current, "guard", None)
    if guard is not None:
        guard.connection = connection
        guard.sent = guard.sent or sent


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """An adapter whose connections tell the watchdog which socket an exchange uses (proxies included)."""

    _POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(self._POOLS)

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(*args, **kwargs)
        manager.pool_classes_by_scheme = dict(self._POOLS)
        return manager


# ----- exchanges -----------------------------------------------------------------------------------


def read_bounded(response: requests.Response, limit: int = MAX_ANSWER_BYTES) -> bytes:
    """The whole body, or AnswerTooLarge past `limit` bytes (what was read is dropped)."""
    parts: list[bytes] = []
    size = 0
    for chunk in response.raw.stream(_CHUNK, decode_content=True):
        size += len(chunk)
        if size > limit:
            raise AnswerTooLarge(f"an answer larger than {limit // (1024 * 1024)} MiB")
        parts.append(chunk)
    return b"".join(parts)


def iter_lines_bounded(response: requests.Response, *, max_line: int) -> Iterator[bytes | None]:
    """The body's lines, streamed; a line longer than `max_line` is yielded as None (its bytes are dropped)."""
    pending = bytearray()
    overlong = False
    for chunk in response.raw.stream(_CHUNK, decode_content=True):
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if not overlong:
                    pending += chunk[start:]
                    if len(pending) > max_line:
                        pending.clear()
                        overlong = True
                break
            if overlong:
                yield None
            else:
                pending += chunk[start:end]
                yield None if len(pending) > max_line else bytes(pending)
            pending.clear()
            overlong = False
            start = end + 1
    if overlong:
        yield None
    elif pending:
        yield bytes(pending)


class _NeverRedirectSession(requests.Session):
    """A session that never works out a redirect, not even one it does not follow.

    With allow_redirects=False, `Session.send` still runs `resolve_redirects` once to prepare the
    unfollowed request (`Response.next`). That reads the whole 3xx body into memory, past any bound
    (and with `max_redirects` 0 it would raise TooManyRedirects, hiding the redirect behind a
    "connection failed"). Here it yields nothing: a 3xx comes back as an answer like any other.
    """

    def resolve_redirects(self, *args: Any, **kwargs: Any) -> Iterator[Any]:  # type: ignore[override]
        return iter(())


@dataclass
class Transport:
    """A `requests` session whose every exchange is bounded in time and size, and never redirected."""

    connect_timeout: float
    read_timeout: float
    exchange_timeout: float
    headers: Mapping[str, str] = field(repr=False)  # carries the Authorization header: never in a repr
    clock: Callable[[], float] = time.monotonic
    #: Set when the sync is cancelled: every cancellable exchange then ends at once.
    cancelled: threading.Event = field(default_factory=threading.Event)
    _session: requests.Session = field(init=False, repr=False)
    _watchdog: _Watchdog = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._session = _NeverRedirectSession()
        # Pool size above Scarf's 15-slot limit so concurrent polls and uploads never queue for a socket.
        adapter = _WatchedAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update(self.headers)
        self._watchdog = _Watchdog(self.clock, self.cancelled)

    def close(self) -> None:
        self._session.close()
        self._watchdog.close()

    def exchange(
        self,
        method: str,
        url: str,
        *,
        path: str,
        deadline: float,
        params: Sequence[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes | Path | None = None,
        consume: Consume = read_bounded,
        cancellable: bool = True,
    ) -> Answer:
        """One attempt, ended by `deadline` at the latest (connect, send, answer and body all included), or by a
        cancel of the sync when `cancellable`."""
        left = deadline - self.clock()
        limit = min(self.exchange_timeout, left)
        if limit <= 0:
            raise Unanswered("no time was left for another attempt", reached_server=False)
        if url[:8].lower() == "https://":
            untrusted = ca_bundle_problem()
            if untrusted is not None:
                raise untrusted
        timeout = (min(self.connect_timeout, limit), min(self.read_timeout, limit))
        with contextlib.ExitStack() as stack:
            # A file object with a known size is streamed with a Content-Length, not read into memory.
            # It is opened outside the network error handling: a missing spool file is a bug, not an outage.
            data = stack.enter_context(body.open("rb")) if isinstance(body, Path) else body
            guard = stack.enter_context(self._watchdog.guard(limit, cancellable=cancellable))
            try:
                return self._exchange(method, url, path=path, params=params, headers=headers, data=data,
                                      timeout=timeout, consume=consume, guard=guard)
            except AnswerTooLarge as error:
                raise Unanswered(str(error), reached_server=True) from None
            except _NETWORK_ERRORS as error:
                # No byte of the request left before its connection was handed it: for https that is after the
                # TCP connection, the proxy's tunnel and the TLS handshake, so a failure of any of these never
                # reached the server (re-sending cannot duplicate anything).
                sent = guard.sent
                if guard.interrupted:
                    raise Unanswered("cut short by the cancel", reached_server=sent and not _never_arrived(error),
                                     cancelled=True) from None
                if guard.fired and sent:  # the watchdog shut its socket, or it ended on its own past the deadline
                    raise Unanswered(f"no complete answer within {limit:.3g} s", reached_server=True) from None
                # (Before the request had a connection, the watchdog had nothing to shut: whatever ended the
                # exchange is the network stack's own, such as a DNS lookup that failed after the deadline.)
                raise diagnose(error, url=url, timeout=timeout, sent=sent) from None
        raise AssertionError("unreachable")  # pragma: no cover - ExitStack does not swallow exceptions

    def _exchange(self, method: str, url: str, *, path: str, params: Any, headers: Any, data: Any,
                  timeout: tuple[float, float], consume: Consume, guard: _Guard) -> Answer:
        response = self._session.request(method, url, params=params, headers=headers, data=data,
                                         timeout=timeout, stream=True, allow_redirects=False, verify=ca_bundle())
        with response:
            if response.status_code >= 300:
                content: Any = _prefix(response, MAX_ERROR_BYTES)
            else:
                content = consume(response)
            if guard.fired:  # the watchdog ended it while the body was being read
                raise requests.ConnectionError("deadline passed")
            return Answer(status=response.status_code, headers=response.headers, body=content,
                          method=method, path=path)


def _prefix(response: requests.Response, limit: int) -> bytes:
    """At most `limit` bytes of an error answer; the rest is never read (the connection is then dropped)."""
    data = bytearray()
    for chunk in response.raw.stream(min(limit, _CHUNK), decode_content=True):
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data[:limit])


#: The environment variables that name a CA bundle, in the order they are read (requests' two, then OpenSSL's).
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


def _named_ca_bundle() -> tuple[str, str] | None:
    """(the variable, the path) of the CA bundle the environment names, or None (certifi's is used)."""
    for name in CA_VARIABLES:
        path = os.environ.get(name)
        if path:
            return name, path
    return None


def ca_bundle() -> str | bool:
    """The CA bundle that TLS certificates are checked against: the one the environment names, the standard way
    (`REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE`, then OpenSSL's `SSL_CERT_FILE`), else certifi's (True).

    Passed with every request: a session's own `verify` would be replaced by the first two anyway (requests),
    and `SSL_CERT_FILE` alone would be ignored."""
    named = _named_ca_bundle()
    return named[1] if named else True


def ca_bundle_problem() -> Unanswered | None:
    """Why the CA bundle the environment names cannot be used (a path that does not exist, a file that holds no
    certificate), as a failure that retrying cannot fix; None when it can be used.

    Without this, requests' "could not find a suitable TLS CA certificate bundle" and OpenSSL's "no certificate
    or crl found" would look like network failures and be retried for a whole budget. A folder is taken as
    it is (requests passes it to OpenSSL as a folder of hashed certificates)."""
    named = _named_ca_bundle()
    if named is None:
        return None
    name, path = named
    try:
        status = os.stat(path)
    except FileNotFoundError:
        problem: str | None = "which does not exist"
    except OSError as error:
        problem = f"which cannot be read ({error.strerror or type(error).__name__})"
    else:
        problem = None if stat.S_ISDIR(status.st_mode) else _bundle_problem(path, status.st_mtime_ns, status.st_size)
    if problem is None:
        return None
    return Unanswered(f"TLS certificates cannot be checked: {name} names {path}, {problem}", reached_server=False,
                      fix=f"Set {name} to a PEM file that holds the CA certificates to trust (a TLS-inspecting "
                          "proxy's CA, say), or unset it to trust the public CAs.")


@functools.lru_cache(maxsize=8)
def _bundle_problem(path: str, mtime_ns: int, size: int) -> str | None:
    """What is wrong with the CA file at `path`, loaded as OpenSSL will (cached while the file is unchanged)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError:
        return "which holds no certificate in PEM form"
    except OSError as error:
        return f"which cannot be read ({error.strerror or type(error).__name__})"
    return None if context.cert_store_stats().get("x509") else "which holds no certificate in PEM form"


def _causes(error: BaseException) -> list[BaseException]:
    """The error and every error behind it: requests wraps urllib3's, which wraps the socket's or the TLS
    library's (as `reason`, an argument, a cause or a context). Only exceptions are followed: an `ssl.SSLError`'s
    `reason` is a string."""
    found: list[BaseException] = []
    pending: list[object] = [error]
    while pending and len(found) < 16:
        item = pending.pop(0)
        if not isinstance(item, BaseException) or any(item is seen for seen in found):
            continue
        found.append(item)
        pending += [getattr(item, "reason", None), *item.args, item.__cause__, item.__context__]
    return found


def _never_arrived(error: BaseException) -> bool:
    """True when the request never reached the server (so re-sending cannot duplicate anything)."""
    return any(isinstance(cause, (requests.ConnectTimeout, NewConnectionError, ConnectTimeoutError,
                                  NameResolutionError, ConnectionRefusedError, socket.gaierror))
               for cause in _causes(error))


def _where(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    return f"{parsed.hostname}:{parsed.port}" if parsed.port else str(parsed.hostname)


def diagnose(error: BaseException, *, url: str, timeout: tuple[float, float], sent: bool = True) -> Unanswered:
    """What went wrong, named: refused, DNS, TLS, timeout, reset; with the fix when retrying cannot help.

    `sent` is False when the request was never handed to a connection (the connection, a proxy's tunnel or the
    TLS handshake failed first): then it did not reach the server, whatever the error."""
    causes = _causes(error)
    host = _where(url)
    arrived = sent and not _never_arrived(error)
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            why = cause.verify_message or cause.reason or "verification failed"
            return Unanswered(f"the TLS certificate of {host} was not accepted ({why})", reached_server=False,
                              fix=_TRUST_FIX)
        if isinstance(cause, ssl.SSLError) and cause.reason in _NOT_TLS:
            return Unanswered(f"{host} does not speak TLS ({cause.reason}): is api_url https:// to a port that "
                              "serves plain HTTP?", reached_server=False, fix="Check api_url.")
    if any(isinstance(cause, (requests.exceptions.ProxyError, ProxyError)) for cause in causes) and not (
            sent and url[:8].lower() == "https://"):
        # (Through a tunnel that was made, urllib3 still calls a failure "Unable to connect to proxy" once it has
        # closed the connection: that one is the server's, named below.)
        return _proxy_failure(causes, url=url, connect_timeout=timeout[0])
    if any(_connect_timeout(cause) for cause in causes):
        return Unanswered(f"no connection to {host} within {timeout[0]:.3g} s", reached_server=False)
    if any(isinstance(cause, (requests.ReadTimeout, ReadTimeoutError, socket.timeout)) for cause in causes):
        return Unanswered(f"no answer within {timeout[1]:.3g} s", reached_server=arrived)
    if any(isinstance(cause, (socket.gaierror, NameResolutionError)) for cause in causes):
        return Unanswered(f"the host name {host} could not be resolved (DNS)", reached_server=False)
    if any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        return Unanswered(f"the connection to {host} was refused", reached_server=False)
    tls = next((cause for cause in causes if isinstance(cause, ssl.SSLError)), None)
    if tls is not None:  # cut off during the handshake or the body: may pass, like any dropped connection
        return Unanswered(f"the TLS connection to {host} failed ({_named(tls)})", reached_server=arrived)
    if any(isinstance(cause, ConnectionResetError) for cause in causes):
        return Unanswered(f"the connection to {host} was reset", reached_server=arrived)
    if arrived:
        return Unanswered(f"the connection to {host} failed ({_named(causes[-1])})", reached_server=True)
    return Unanswered(f"could not connect to {host} ({_named(causes[-1])})", reached_server=False)


def _proxy_failure(causes: list[BaseException], *, url: str, connect_timeout: float) -> Unanswered:
    """A proxy that could not be reached, or would not open a tunnel: named, with the proxy (never its
    credentials), so that nobody looks for the fault at Scarf. A proxy asking for credentials is the user's to fix."""
    proxy, host = _proxy_for(url), _where(url)
    tunnel = next((cause for cause in causes if str(cause).startswith("Tunnel connection failed:")), None)
    if tunnel is not None:
        answer = str(tunnel).removeprefix("Tunnel connection failed:").strip()[:100]
        if answer.startswith("407"):
            return Unanswered(f"the proxy {proxy} refused the tunnel to {host} ({answer})", reached_server=False,
                              fix="Check the proxy's credentials in HTTPS_PROXY (http://user:password@host:port).")
        return Unanswered(f"the proxy {proxy} could not open a tunnel to {host} ({answer})", reached_server=False)
    if any(isinstance(cause, (socket.gaierror, NameResolutionError)) for cause in causes):
        why = f"the host name of the proxy {proxy} could not be resolved (DNS; check HTTPS_PROXY)"
    elif any(isinstance(cause, ConnectionRefusedError) for cause in causes):
        why = f"the proxy {proxy} refused the connection (check HTTPS_PROXY)"
    elif any(_connect_timeout(cause) for cause in causes):
        why = f"no connection to the proxy {proxy} within {connect_timeout:.3g} s (check HTTPS_PROXY)"
    else:
        why = f"the proxy {proxy} on the way to {host} failed ({_named(causes[-1])})"
    return Unanswered(why, reached_server=False)


def _proxy_for(url: str) -> str:
    """The proxy the environment names for `url` (HTTPS_PROXY, ALL_PROXY, ..., minus NO_PROXY), as requests picks
    it, without its credentials."""
    try:
        proxy = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
        if proxy:
            parsed = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            host = f"[{parsed.hostname}]" if parsed.hostname and ":" in parsed.hostname else parsed.hostname
            return f"{parsed.scheme}://{host}" + (f":{parsed.port}" if parsed.port else "")
    except ValueError:  # a port that is not a number: name no address rather than a wrong one
        pass
    return "(from HTTPS_PROXY)"


def _connect_timeout(error: BaseException) -> bool:
    """A connection that was not made in time. (urllib3's NewConnectionError, which a refused connection and a
    failed DNS lookup raise too, is a ConnectTimeoutError by inheritance only.)"""
    if isinstance(error, requests.ConnectTimeout):
        return True
    return isinstance(error, ConnectTimeoutError) and not isinstance(error, NewConnectionError)


def _named(error: BaseException) -> str:
    """An error's type and its own words, short (they come from the network stack, never from record data)."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text[:160]}" if text else type(error).__name__
