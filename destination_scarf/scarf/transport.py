"""Bounded HTTP exchanges: every request ends by its deadline, reads a bounded answer, never follows a redirect.

`requests` bounds each socket operation (connect, each read), not the exchange: a server that
trickles its answer one byte a second never trips a read timeout. So every exchange here runs
under a guard with a deadline, and a single watchdog thread shuts the socket of an exchange down
when its deadline passes; the blocked read then fails and the exchange ends as "no answer within
N s". Answers are read as a stream, up to a limit, so a huge body cannot fill memory. Redirects are
never followed: a 3xx would have `requests` re-send the body (record data) and the token's header
to whatever host the answer names.

This module knows HTTP, not Scarf: `client.py` turns its outcomes into the connector's errors.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ReadTimeoutError

#: The most an ordinary API answer may hold. Scarf's import objects are about a kilobyte.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
#: How much of an error answer is read, for the excerpt shown to the user.
MAX_ERROR_BYTES = 2048
_CHUNK = 64 * 1024

Consume = Callable[["requests.Response"], Any]
#: What a failed exchange raises: requests' errors, and urllib3's and the socket's while the body is streamed.
_NETWORK_ERRORS = (requests.RequestException, HTTPError, http.client.HTTPException, OSError)


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

    def __init__(self, reason: str, *, reached_server: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reached_server = reached_server


class AnswerTooLarge(Exception):
    """A consumer's signal that the answer is over its limit (the exchange then ends as Unanswered)."""


# ----- the watchdog --------------------------------------------------------------------------------


@dataclass(eq=False)
class _Guard:
    deadline: float
    connection: Any = None  # the urllib3 connection the exchange is using, once it has one
    done: bool = False
    fired: bool = False


_current = threading.local()  # the guard of the exchange running on this thread


class _Watchdog:
    """One daemon thread that ends overdue exchanges by shutting their socket down."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Guard]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    @contextmanager
    def guard(self, seconds: float) -> Iterator[_Guard]:
        guard = _Guard(deadline=self._clock() + max(seconds, 0.0))
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
                wait = self._heap[0][0] - self._clock()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                _, _, guard = heapq.heappop(self._heap)
                guard.fired = True
                _shut(guard.connection)


def _shut(connection: Any) -> None:
    """Shut an exchange's socket down: its blocked read returns at once. (The plain socket's shutdown, so
    that an SSL socket's state is left to the thread that owns it.)"""
    sock = getattr(connection, "sock", None)
    if sock is None:
        return
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, TypeError):
        pass


class _WatchedHTTPConnection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> Any:
        _attach(self)
        return super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> Any:
        _attach(self)
        return super().request(*args, **kwargs)


def _attach(connection: Any) -> None:
    guard = getattr(_current, "guard", None)
    if guard is not None:
        guard.connection = connection


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
    _session: requests.Session = field(init=False, repr=False)
    _watchdog: _Watchdog = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._session = _NeverRedirectSession()
        # Pool size above Scarf's 15-slot limit so concurrent polls and uploads never queue for a socket.
        adapter = _WatchedAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._session.headers.update(self.headers)
        self._watchdog = _Watchdog(self.clock)

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
    ) -> Answer:
        """One attempt, ended by `deadline` at the latest (connect, send, answer and body all included)."""
        left = deadline - self.clock()
        limit = min(self.exchange_timeout, left)
        if limit <= 0:
            raise Unanswered("no time was left for another attempt", reached_server=False)
        timeout = (min(self.connect_timeout, limit), min(self.read_timeout, limit))
        with contextlib.ExitStack() as stack:
            # A file object with a known size is streamed with a Content-Length, not read into memory.
            # It is opened outside the network error handling: a missing spool file is a bug, not an outage.
            data = stack.enter_context(body.open("rb")) if isinstance(body, Path) else body
            guard = stack.enter_context(self._watchdog.guard(limit))
            try:
                return self._exchange(method, url, path=path, params=params, headers=headers, data=data,
                                      timeout=timeout, consume=consume, guard=guard)
            except AnswerTooLarge as error:
                raise Unanswered(str(error), reached_server=True) from None
            except _NETWORK_ERRORS as error:
                if guard.fired:
                    raise Unanswered(f"no complete answer within {limit:.3g} s", reached_server=True) from None
                raise Unanswered(_describe(error, timeout), reached_server=not _never_arrived(error)) from None
        raise AssertionError("unreachable")  # pragma: no cover - ExitStack does not swallow exceptions

    def _exchange(self, method: str, url: str, *, path: str, params: Any, headers: Any, data: Any,
                  timeout: tuple[float, float], consume: Consume, guard: _Guard) -> Answer:
        response = self._session.request(method, url, params=params, headers=headers, data=data,
                                         timeout=timeout, stream=True, allow_redirects=False)
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


def _never_arrived(error: BaseException) -> bool:
    """True when the request never reached the server (so re-sending cannot duplicate anything)."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason: BaseException | None = error
    seen = 0
    while reason is not None and seen < 8:
        if isinstance(reason, (NewConnectionError, ConnectTimeoutError)):
            return True
        reason = getattr(reason, "reason", None) or reason.__cause__ or reason.__context__
        seen += 1
    return False


def _describe(error: BaseException, timeout: tuple[float, float]) -> str:
    if isinstance(error, requests.ConnectTimeout):
        return f"no connection within {timeout[0]:.3g} s"
    if isinstance(error, (requests.ReadTimeout, ReadTimeoutError, socket.timeout)):
        return f"no answer within {timeout[1]:.3g} s"
    if _never_arrived(error):
        return f"could not connect ({type(error).__name__})"
    return f"the connection failed ({type(error).__name__})"
