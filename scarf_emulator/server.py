"""HTTP/1.1 transport, plain or over TLS: request parsing, routing, fault application, recording.

Why not a framework: the emulator must be stdlib-only, and it has to control the wire
precisely (drop a connection without an answer, hold a response back, always send
Content-Length so clients can keep connections alive).

With a server-side ``ssl.SSLContext`` (``ScarfEmulator(tls=...)``) every connection is
TLS: the handshake runs in the connection's own thread (a slow or broken client never holds
up the accept loop), then the same handler serves API and control requests over it, with
every fault.  Each new connection is looked at before anything else (its first byte, by
peeking), so a client that speaks the wrong protocol fails at once instead of hanging:

* plain HTTP sent to an HTTPS emulator is answered ``400`` in plain HTTP ("plain HTTP request
  sent to an HTTPS port"), as nginx and Go's server do;
* a TLS ClientHello sent to a plain HTTP emulator is answered with a plain HTTP ``400``, which
  the client's TLS layer reports as ``[SSL: WRONG_VERSION_NUMBER]``.

Both then close with a lingering close (the client's bytes are read until it hangs up), so the
answer is never overtaken by a TCP reset.  The TLS handshake faults of faults.py are applied
here, before the handshake.
"""

from __future__ import annotations

import logging
import select
import socket
import socketserver
import ssl
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import __version__
from .faults import (
    HUGE, REDIRECT, RESET, SILENCE, THROTTLE, TLS_EOF, TLS_RESET, TLS_STALL, TRICKLE, Fault, FaultPlan, Huge,
    QueuedFault, Redirect, Trickle,
)
from .huge import huge_body
from .recording import ImportSeen, RequestLog, RequestRecord, bearer_token, pick_headers
from .responses import ApiRequest, Response, error, json_response

logger = logging.getLogger(__name__)

#: Idle keep-alive connections are closed after this many seconds.
KEEPALIVE_TIMEOUT = 60

CONTROL_PREFIX = "/_emulator"

#: How often a silenced connection checks whether it was released or the client hung up.
SILENCE_POLL_SECONDS = 0.05

#: A trickling answer writes at most this often (fewer, bigger writes at high rates).
TRICKLE_TICK_SECONDS = 0.05

#: The first byte of every TLS connection: a handshake record (the ClientHello).  HTTP/1.x
#: requests start with a method name, so one byte tells them apart.
TLS_HANDSHAKE_RECORD = b"\x16"

#: How long a lingering close (see _linger) waits for the client to hang up.
LINGER_SECONDS = 5.0

#: The answer to a request sent in plain HTTP to the HTTPS port.
PLAIN_HTTP_TO_TLS_PORT = "plain HTTP request sent to an HTTPS port: use https://"

#: The answer to a TLS handshake sent to the plain HTTP port (the client reads it as not TLS).
TLS_TO_PLAIN_PORT = "TLS handshake sent to a plain HTTP port: use http://"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: tuple[str, ...]  # literal segments, or "{name}" placeholders
    handler: str  # ScarfApi method name
    category: str  # recorded category (RequestRecord.category); "import-get" covers both import reads
    kind: str = ""  # finer kind faults can target and calls are counted by; defaults to the category

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", self.category)


ROUTES = (
    Route("POST", ("v2", "packages", "{owner}", "{artifact}", "import"), "import_package", "import-post"),
    Route("POST", ("v2", "tracking-pixels", "{owner}", "{artifact}", "import"), "import_pixel", "import-post"),
    Route("POST", ("v2", "{owner}", "import"), "import_multi", "import-post"),
    Route("GET", ("v2", "imports", "{owner}"), "list_imports", "import-get", "import-list"),
    Route("GET", ("v2", "imports", "{owner}", "{import_id}"), "get_import", "import-get", "import-by-id"),
    Route("GET", ("v2", "imports", "{owner}", "{import_id}", "log"), "get_log", "log"),
    Route("POST", ("v2", "imports", "{owner}", "{import_id}", "abort"), "abort", "abort"),
    Route("GET", ("v2", "packages", "{owner}", "{artifact}"), "get_package", "artifact-get"),
    Route("GET", ("v2", "tracking-pixels", "{owner}", "{artifact}"), "get_pixel", "artifact-get"),
    Route("GET", ("v2", "packages", "{owner}"), "list_packages", "artifact-get"),
    Route("GET", ("v2", "tracking-pixels", "{owner}"), "list_pixels", "artifact-get"),
)


def _bind(pattern: tuple[str, ...], segments: list[str]) -> dict[str, str] | None:
    if len(pattern) != len(segments):
        return None
    params: dict[str, str] = {}
    for expected, actual in zip(pattern, segments):
        if expected.startswith("{"):
            if not actual:
                return None
            params[expected[1:-1]] = actual
        elif expected != actual:
            return None
    return params


def match_route(method: str, raw_path: str) -> tuple[Route | None, dict[str, str], list[str]]:
    """Find the route; path segments are percent-decoded one by one (``%2F`` stays inside).

    Returns (route, params, allowed methods when only the method was wrong).
    """
    segments = [unquote(s) for s in raw_path.split("/")[1:]]
    allowed: list[str] = []
    for route in ROUTES:
        params = _bind(route.pattern, segments)
        if params is None:
            continue
        if route.method == method:
            return route, params, []
        allowed.append(route.method)
    return None, {}, allowed


@dataclass
class ServerContext:
    """What request handlers need from the emulator."""

    api: Any  # ScarfApi
    control: Any  # ControlApi
    faults: FaultPlan
    requests: RequestLog
    #: Set by ScarfEmulator.stop(): whatever holds a connection (silence, delay, trickle, huge body) lets go.
    stopping: threading.Event = field(default_factory=threading.Event)


class _BadBody(Exception):
    pass


class EmulatorRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"ScarfEmulator/{__version__}"
    timeout = KEEPALIVE_TIMEOUT

    def setup(self) -> None:
        super().setup()
        try:  # headers and body go out in separate writes; avoid Nagle/delayed-ACK stalls
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        try:
            self._dispatch()
        except (ConnectionError, socket.timeout, OSError) as exc:
            logger.debug("connection problem: %s", exc)
            self.close_connection = True

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    # -- request -------------------------------------------------------------------
    def _dispatch(self) -> None:
        received_at = time.monotonic()
        context: ServerContext = self.server.context  # type: ignore[attr-defined]
        try:
            body = self._read_body()
        except _BadBody as exc:
            self.close_connection = True
            self._send(error(400, str(exc)))
            return
        split = urlsplit(self.path)
        query = parse_qs(split.query, keep_blank_values=True)
        if split.path == CONTROL_PREFIX or split.path.startswith(CONTROL_PREFIX + "/"):
            self._send(context.control.handle(self.command, split.path, query, body, self.client_address[0]))
            return
        route, params, allowed = match_route(self.command, split.path)
        category = route.category if route else "other"
        kind = route.kind if route else "other"  # what faults match and calls are counted by
        self._created_import: str | None = None
        outage = context.faults.outage_status(kind)  # first: during an outage no fault is used up
        if outage is not None:
            answer: Response | QueuedFault | None = _failure_response(outage, "outage")
        else:
            answer = self._answer(context, route, params, allowed, kind, ApiRequest(
                self.command, split.path, query, self.headers, body))
        context.requests.append(RequestRecord(
            self.command, split.path, query, pick_headers(self.headers), len(body),
            status=answer.status if isinstance(answer, Response) else 200 if isinstance(answer, Huge) else None,
            auth_present=self.headers.get("Authorization") is not None,
            category=category, received_at=received_at, token=bearer_token(self.headers),
            kind=kind, owner=params.get("owner"), import_id=params.get("import_id") or self._created_import,
            answered=tuple(ImportSeen.of(view) for view in answer.imports) if isinstance(answer, Response) else (),
        ))
        if answer is None:
            self._drop_connection()
        elif isinstance(answer, Response):
            self._send(answer, context, None if outage is not None else context.faults.take_trickle(kind))
        elif isinstance(answer, Huge):
            self._send_huge(answer, params, context)
        else:
            self._hold_silent(context)

    def _answer(self, context: ServerContext, route: Route | None, params: dict[str, str],
                allowed: list[str], kind: str, req: ApiRequest) -> Response | QueuedFault | None:
        """Apply faults around the real answer, in the order faults.py documents (outages aside).

        None means "drop the connection"; a SILENCE fault means "hold it without answering",
        a Huge fault "stream a huge body instead of the answer".  An upload that created an
        import leaves its id in ``self._created_import``, even when a fault then replaces the answer.
        """
        delay = context.faults.take_delay(kind)
        if delay:
            context.stopping.wait(delay)
        fault = context.faults.take(kind, after_processing=False)
        if fault is not None:
            if fault.kind in (SILENCE, HUGE):
                return fault
            if fault.kind == REDIRECT:
                return self._redirect(fault)  # type: ignore[arg-type]
            return _fault_response(fault)  # type: ignore[arg-type]
        flaky = context.faults.flaky_status(kind)
        if flaky is not None:
            return _failure_response(flaky, "flaky failure")
        response = self._call(context, route, params, allowed, req)
        self._created_import = response.import_id
        fault = context.faults.take(kind, after_processing=True)
        return response if fault is None else _fault_response(fault)

    @staticmethod
    def _call(context: ServerContext, route: Route | None, params: dict[str, str],
              allowed: list[str], req: ApiRequest) -> Response:
        if route is None:
            if allowed:
                return error(405, "method not allowed", {"Allow": ", ".join(sorted(set(allowed)))})
            return error(404, "not found")
        try:
            return getattr(context.api, route.handler)(req, **params)
        except Exception:
            logger.exception("emulator bug while answering %s %s", req.method, req.path)
            return error(500, "internal emulator error")

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            size = int(length)
        except ValueError:
            raise _BadBody("invalid Content-Length") from None
        if size < 0:
            raise _BadBody("invalid Content-Length")
        data = self.rfile.read(size)
        if len(data) != size:
            raise _BadBody("body shorter than Content-Length")
        return data

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise _BadBody("truncated chunked body")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BadBody("invalid chunk size") from None
            if size == 0:
                self._skip_trailers()
                return b"".join(parts)
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                raise _BadBody("truncated chunk")
            parts.append(chunk)
            self.rfile.readline(65537)  # the CRLF after each chunk

    def _skip_trailers(self) -> None:
        while True:
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                return

    # -- response ------------------------------------------------------------------
    def _send(self, response: Response, context: ServerContext | None = None, trickle: Trickle | None = None) -> None:
        """Send the answer; with ``trickle``, send its headers or its body slowly (see faults.py)."""
        self.send_response(response.status)
        bodiless = response.status == 204 or response.status == 304 or response.status < 200
        if not bodiless:  # RFC 9110: no Content-Length on 204
            if response.content_type:
                self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        body = response.body if not bodiless and self.command != "HEAD" else b""
        if trickle is None or context is None:
            self.end_headers()
            if body:
                self.wfile.write(body)
            return
        head = self._take_head()
        with context.faults.busy(TRICKLE):
            if trickle.part == "headers":
                sent = self._trickle(head, trickle.bytes_per_second, context.stopping)
                if sent and body:
                    self.wfile.write(body)
            else:
                self.wfile.write(head)
                sent = self._trickle(body, trickle.bytes_per_second, context.stopping)
        if not sent:
            self._drop_connection()

    def _take_head(self) -> bytes:
        """The buffered status line and headers, which end_headers() would have flushed in one write."""
        self._headers_buffer.append(b"\r\n")  # type: ignore[attr-defined]  # BaseHTTPRequestHandler's buffer
        head = b"".join(self._headers_buffer)  # type: ignore[attr-defined]
        self._headers_buffer = []  # type: ignore[attr-defined]
        return head

    def _trickle(self, data: bytes, bytes_per_second: float, stopping: threading.Event) -> bool:
        """Write ``data`` at about ``bytes_per_second``; False if the emulator stopped first."""
        step = max(1, int(bytes_per_second * TRICKLE_TICK_SECONDS))
        for start in range(0, len(data), step):
            if start and stopping.wait(step / bytes_per_second):
                return False
            self.wfile.write(data[start:start + step])
        return True

    def _redirect(self, fault: Redirect) -> Response:
        """The injected 3xx; a Location without a path gets this request's path and query."""
        scheme: str = self.server.scheme  # type: ignore[attr-defined]
        location = fault.location or f"{scheme}://{self.headers.get('Host') or self._own_address()}"
        split = urlsplit(location)
        if split.path in ("", "/") and not split.query and not split.fragment:
            location = location.rstrip("/") + self.path  # the raw path and query, as the client sent them
        return error(fault.status, "moved (injected redirect)", {"Location": location})

    def _own_address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def _send_huge(self, fault: Huge, params: dict[str, str], context: ServerContext) -> None:
        """200 with a huge body made chunk by chunk (see huge.py); stop() cuts it off."""
        content_type, length, chunks = huge_body(fault.shape, fault.size, params.get("owner", ""), params.get("import_id"))
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        if self.command == "HEAD":
            return
        with context.faults.busy(HUGE):
            for chunk in chunks:
                if context.stopping.is_set():
                    self._drop_connection()
                    return
                self.wfile.write(chunk)

    def _hold_silent(self, context: ServerContext) -> None:
        """Send not a byte until released, the emulator stops or the client hangs up; then close."""
        gate = context.faults.hold_silenced()
        try:
            with context.faults.busy(SILENCE):
                while not gate.wait(SILENCE_POLL_SECONDS):
                    if context.stopping.is_set() or self._peer_closed():
                        break
        finally:
            context.faults.forget_silenced(gate)
        self._drop_connection()

    def _peer_closed(self) -> bool:
        """True once the client has closed its side (a readable socket with nothing to read).

        Only for a connection that will never be answered (silence): under TLS, which cannot peek
        (and TLS 1.3 encrypts even a record's type), what the client sent is read and dropped, and
        a close_notify or a bare FIN reads as the end.
        """
        connection = self.connection
        try:
            readable, _, _ = select.select([connection], [], [], 0)
            if not readable:
                return False
            if not isinstance(connection, ssl.SSLSocket):
                return connection.recv(1, socket.MSG_PEEK) == b""
            timeout = connection.gettimeout()
            connection.setblocking(False)  # a partial record must not block the silence loop
            try:
                return connection.recv(65536) == b""
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return False
            finally:
                connection.settimeout(timeout)
        except (OSError, ValueError):
            return True

    def _drop_connection(self) -> None:
        """Close without a single byte of answer, as a crashing proxy would (under TLS: no close_notify)."""
        self.close_connection = True
        _shutdown(self.connection, socket.SHUT_RDWR)


def _shutdown(sock: socket.socket, how: int) -> None:
    """Shut the TCP connection down; for an SSLSocket without touching its TLS state, which the
    connection's own thread may be using (SSLSocket.shutdown would drop it under that thread)."""
    try:
        socket.socket.shutdown(sock, how)
    except OSError:
        pass


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST instead of a FIN (SO_LINGER with a zero timeout)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def _linger(sock: socket.socket, stopping: threading.Event, answer: bytes = b"") -> None:
    """Send ``answer``, half-close, then read and discard until the client hangs up (at most
    LINGER_SECONDS, or until stop()), then close.  Closing a socket with unread bytes would send a
    TCP RST, which can reach the client before the answer and the FIN and hide them."""
    try:
        if answer:
            sock.sendall(answer)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(SILENCE_POLL_SECONDS)
        deadline = time.monotonic() + LINGER_SECONDS
        while time.monotonic() < deadline and not stopping.is_set():
            try:
                if not sock.recv(65536):
                    break
            except socket.timeout:
                continue
    except OSError:
        pass
    finally:
        sock.close()


def _raw_answer(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection, written without a request handler."""
    response = json_response(status, {"message": message})
    head = (f"HTTP/1.1 {status} {reason}\r\nServer: {EmulatorRequestHandler.server_version}\r\n"
            f"Content-Type: {response.content_type}\r\nContent-Length: {len(response.body)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("ascii") + response.body


def _fault_response(fault: Fault) -> Response | None:
    if fault.kind == RESET:
        return None
    if fault.kind == THROTTLE:
        return error(429, "rate limited (injected)", {"Retry-After": str(fault.retry_after)})
    return error(fault.status, f"injected failure {fault.status}")


def _failure_response(status: int | str, what: str) -> Response | None:
    """An outage's or flaky rule's answer: an error status, or None for RESET (drop the connection)."""
    if status == RESET:
        return None
    return error(int(status), f"injected {what} {status}")


class EmulatorHTTPServer(ThreadingHTTPServer):
    """Threaded server that tracks its connections so :meth:`drop_connections` can end them.

    With ``tls`` (a server-side context with its certificate loaded) it serves HTTPS; see the
    module docstring for what each new connection goes through.
    """

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, host: str, port: int, context: ServerContext, tls: ssl.SSLContext | None = None) -> None:
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.context = context
        self.tls = tls
        self.scheme = "http" if tls is None else "https"
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__((host, port), EmulatorRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a reverse DNS lookup that can stall start-up.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[0], self.server_address[1]

    def process_request(self, request, client_address) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def finish_request(self, request, client_address) -> None:
        """Serve one connection, in its own thread: check the protocol, then for HTTPS apply a
        handshake fault or shake hands, then hand the connection to the request handler."""
        connection = self._open_connection(request)
        if connection is None:
            return
        try:
            super().finish_request(connection, client_address)
        finally:
            if connection is not request:  # the TLS socket; socketserver closes only the (detached) plain one
                with self._open_lock:
                    self._open.discard(connection)
                _shutdown(connection, socket.SHUT_WR)
                connection.close()

    def _open_connection(self, sock: socket.socket) -> socket.socket | None:
        """The socket to serve requests on, or None when this connection is already dealt with."""
        stopping = self.context.stopping
        sock.settimeout(KEEPALIVE_TIMEOUT)
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except OSError:  # no byte before the keep-alive timeout, or stop() shut it down
            return None
        if not first:
            return None  # connected and hung up without a byte (a port probe)
        speaks_tls = first == TLS_HANDSHAKE_RECORD
        if self.tls is None:
            if not speaks_tls:
                return sock
            logger.debug("TLS handshake on the plain HTTP port; answering 400 in plain HTTP")
            _linger(sock, stopping, _raw_answer(400, "Bad Request", TLS_TO_PLAIN_PORT))
            return None
        if not speaks_tls:
            logger.debug("plain HTTP on the HTTPS port; answering 400 in plain HTTP")
            _linger(sock, stopping, _raw_answer(400, "Bad Request", PLAIN_HTTP_TO_TLS_PORT))
            return None
        fault = self.context.faults.take_handshake_fault()
        if fault == TLS_RESET:
            _reset(sock)
            return None
        if fault == TLS_EOF:
            _linger(sock, stopping)
            return None
        if fault == TLS_STALL:
            self._stall(sock)
            return None
        try:
            connection = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except OSError as exc:
            logger.debug("cannot start TLS: %s", exc)
            return None
        with self._open_lock:  # wrap_socket detached `sock`: stop() must now shut the TLS socket down
            self._open.discard(sock)
            self._open.add(connection)
        try:
            connection.do_handshake()  # with the socket's keep-alive timeout
        except OSError as exc:  # the client refused our certificate, hung up, or timed out
            logger.debug("TLS handshake failed: %s", exc)
            with self._open_lock:
                self._open.discard(connection)
            connection.close()
            return None
        return connection

    def _stall(self, sock: socket.socket) -> None:
        """tls_stall: read what the client sends, answer nothing, until released, stopped or hung up."""
        faults, stopping = self.context.faults, self.context.stopping
        gate = faults.hold_silenced()
        try:
            with faults.busy(SILENCE):
                sock.settimeout(SILENCE_POLL_SECONDS)
                while not gate.is_set() and not stopping.is_set():
                    try:
                        if not sock.recv(65536):
                            break  # the client gave up
                    except socket.timeout:
                        continue
        except OSError:
            pass
        finally:
            faults.forget_silenced(gate)
        _linger(sock, stopping)

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up mid-request (tests and the connector's cancellation do so on purpose) is
        routine, not a server error: no traceback for it. Anything else is still printed."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            return
        super().handle_error(request, client_address)

    def drop_connections(self) -> None:
        """End idle keep-alive connections so clients cannot talk to a stopped emulator."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            _shutdown(sock, socket.SHUT_RDWR)
