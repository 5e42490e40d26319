"""A TCP relay on loopback for tests, which can turn into a black hole: it accepts and never answers.

    relay = Relay(upstream="http://127.0.0.1:PORT")   # forwards every byte both ways, untouched
    ...                                                # point the client at relay.url
    relay.black_hole()                                 # from now on: nothing is forwarded, nothing answered
    wait_for(lambda: relay.swallowed, "the client to send into the black hole")
    relay.close()

`Relay()` without an upstream is a black hole from the start: a server that accepts connections, reads what
is sent and never sends a byte (a store, or an API, that hangs). In black-hole mode, connections opened
before the switch stop too (a client's pooled keep-alive connection must not get around it): their bytes
are read and dropped, and no answer comes back. Connections are held open until `close()` or the client
hangs up. What it saw is counted (`connections`, `swallowed`), never timed. Standard library only.
"""

from __future__ import annotations

import select
import socket
import threading
from urllib.parse import urlsplit

#: How often a pipe looks whether the relay switched or is closing.
_POLL_SECONDS = 0.05


class Relay:
    def __init__(self, upstream: str | None = None) -> None:
        self._upstream = None
        if upstream is not None:
            parts = urlsplit(upstream)
            self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL_SECONDS)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._held: list[socket.socket] = []
        self._closing = threading.Event()
        self._dropping = threading.Event()
        if self._upstream is None:
            self._dropping.set()
        #: Connections accepted so far, and bytes a client sent into the black hole (requests never answered).
        self.connections = 0
        self.swallowed = 0
        self._thread = threading.Thread(target=self._accept, name="relay", daemon=True)
        self._thread.start()

    def black_hole(self) -> None:
        """From now on nothing is forwarded either way, on new and open connections alike."""
        self._dropping.set()

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            held, self._held = self._held, []
        for sock in held:
            try:
                sock.close()
            except OSError:
                pass

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._held.append(client)
            threading.Thread(target=self._serve, args=(client,), name="relay-connection", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        server = None
        if not self._dropping.is_set():
            assert self._upstream is not None
            try:
                server = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                client.close()
                return
            with self._lock:
                self._held.append(server)
        sockets = [client] + ([server] if server is not None else [])
        try:
            while not self._closing.is_set():
                try:
                    readable, _, _ = select.select(sockets, [], [], _POLL_SECONDS)
                except (OSError, ValueError):
                    return
                for sock in readable:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return  # either side hung up: the connection ends
                    if self._dropping.is_set():
                        if sock is client:
                            with self._lock:
                                self.swallowed += len(data)
                        continue  # read and dropped: nothing goes on, nothing comes back
                    other = server if sock is client else client
                    assert other is not None
                    try:
                        other.sendall(data)
                    except OSError:
                        return
        finally:
            for sock in sockets:
                try:
                    sock.close()
                except OSError:
                    pass
