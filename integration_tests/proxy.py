"""A small HTTP proxy on loopback for tests: CONNECT tunnels and plain-HTTP forwarding, counted.

Corporate networks and Airbyte deployments put an HTTPS proxy between the connector and Scarf
(``HTTPS_PROXY``); this one lets a test check that traffic really goes through such a proxy:

* ``CONNECT host:port``: opens a TCP connection to the target, answers ``200 Connection established``
  and pipes bytes both ways untouched (TLS runs end to end, the proxy sees only ciphertext);
* ``GET http://host:port/path`` (absolute URI, what clients send to a proxy for plain ``http://``):
  forwards the request in origin form with ``Connection: close`` and pipes the answer back.

Either way the connection ends as soon as either side closes it (a reset from the target is passed on
to the client as a reset).  Anything else is answered ``400``, a target that cannot be reached ``502``.
:attr:`ConnectProxy.tunnels`, :attr:`~ConnectProxy.forwarded` and :attr:`~ConnectProxy.targets` say what
it carried.  Standard library only; threaded, one thread per client connection.

    with ConnectProxy() as proxy:   # or the connect_proxy fixture
        requests.get(url, proxies={"https": proxy.url}, verify=ca_bundle)
        assert proxy.tunnels == 1
"""

from __future__ import annotations

import logging
import select
import socket
import socketserver
import struct
import threading
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

#: Longest request head accepted (request line and headers).
MAX_HEAD_BYTES = 64 * 1024

#: Bound on reading a request head and on connecting to a target (a hang guard, never a test's subject).
IO_TIMEOUT_SECONDS = 10.0

#: How often a pipe checks whether the proxy is stopping.
POLL_SECONDS = 0.05

#: Headers of a forwarded request that concern the hop to the proxy, not the target (RFC 9110 section 7.6.1).
#: Transfer-Encoding stays: the body is passed on as it came, chunked or not.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "proxy-authorization", "upgrade"})


class ConnectProxy:
    """A threaded CONNECT proxy and plain-HTTP forwarder on ``host`` (loopback by default)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.url: str | None = None
        self._lock = threading.Lock()
        self._tunnels = 0
        self._forwarded = 0
        self._refused = 0
        self._targets: list[str] = []
        self._sockets: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> str:
        """Listen and serve in a background thread; return the proxy URL, ``http://HOST:PORT``."""
        if self._server is not None:
            return self.url  # type: ignore[return-value]
        self._stopping.clear()
        self._server = _Server((self.host, self.port), self)
        host, port = self._server.socket.getsockname()[:2]
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": POLL_SECONDS},
                                        name="connect-proxy", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop listening and end every connection and tunnel still open."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)
        if self._thread is not None:
            self._thread.join(IO_TIMEOUT_SECONDS)

    def __enter__(self) -> ConnectProxy:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what it carried -------------------------------------------------------------------------------------
    @property
    def tunnels(self) -> int:
        """CONNECT tunnels opened (counted before the client is told ``200``)."""
        with self._lock:
            return self._tunnels

    @property
    def forwarded(self) -> int:
        """Plain-HTTP (absolute-URI) requests forwarded to their target."""
        with self._lock:
            return self._forwarded

    @property
    def refused(self) -> int:
        """Requests answered by the proxy itself: 400 (not a proxy request) or 502 (target unreachable)."""
        with self._lock:
            return self._refused

    @property
    def targets(self) -> list[str]:
        """One line per request served, in order: ``CONNECT host:port`` or ``GET http://...``."""
        with self._lock:
            return list(self._targets)

    @property
    def open_connections(self) -> int:
        """Sockets open now, client and target sides together (0 once every connection has ended)."""
        with self._lock:
            return len(self._sockets)

    # -- serving ---------------------------------------------------------------------------------------------
    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        upstream: socket.socket | None = None
        try:
            client.settimeout(IO_TIMEOUT_SECONDS)
            head, rest = _read_head(client)
            if head is None:
                return
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            parts = request_line.split(" ")
            if len(parts) != 3:
                self._refuse(client, 400, "Bad Request")
                return
            method, target, version = parts
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = self._dial(client, host.strip("[]"), port)
                if upstream is None:
                    return
                with self._lock:
                    self._tunnels += 1
                    self._targets.append(f"CONNECT {target}")
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                first = rest
            elif target.startswith("http://"):
                split = urlsplit(target)
                upstream = self._dial(client, split.hostname or "", str(split.port or 80))
                if upstream is None:
                    return
                with self._lock:
                    self._forwarded += 1
                    self._targets.append(f"{method} {target}")
                path = (split.path or "/") + (f"?{split.query}" if split.query else "")
                headers = [line for line in header_lines if line.split(":", 1)[0].strip().lower() not in HOP_BY_HOP]
                first = (f"{method} {path} {version}\r\n" + "".join(f"{line}\r\n" for line in headers)
                         + "Connection: close\r\n\r\n").encode("latin-1") + rest
            else:
                self._refuse(client, 400, "Bad Request")
                return
            if first:
                upstream.sendall(first)
            self._pipe(client, upstream)
        except OSError as exc:
            logger.debug("proxy connection ended: %s", exc)
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    self._forget(sock)
                    sock.close()

    def _dial(self, client: socket.socket, host: str, port: str) -> socket.socket | None:
        try:
            upstream = socket.create_connection((host, int(port)), timeout=IO_TIMEOUT_SECONDS)
        except (OSError, ValueError) as exc:
            logger.debug("cannot reach %s:%s: %s", host, port, exc)
            self._refuse(client, 502, "Bad Gateway")
            return None
        self._track(upstream)
        return upstream

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copy bytes both ways until either side closes (or resets: the other side is then reset too)."""
        peer = {client: upstream, upstream: client}
        for sock in peer:
            sock.settimeout(IO_TIMEOUT_SECONDS)  # for sendall only: reads wait in select()
        while not self._stopping.is_set():
            readable, _, _ = select.select(list(peer), [], [], POLL_SECONDS)
            for sock in readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    _reset(peer[sock])
                    return
                if not data:
                    return
                peer[sock].sendall(data)

    def _refuse(self, client: socket.socket, status: int, reason: str) -> None:
        with self._lock:
            self._refused += 1
        body = f"{status} {reason} (test proxy)\n".encode()
        client.sendall(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                       f"Connection: close\r\n\r\n".encode() + body)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _forget(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], proxy: ConnectProxy) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.proxy = proxy
        super().__init__(address, _Handler)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.server.proxy._serve(self.request)


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    """(the request head without its blank line, the bytes read after it); (None, b"") if the client
    hung up first or sent a head that is too long."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD_BYTES:
            return None, b""
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER with a zero timeout), so the other side sees a reset as well."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()
