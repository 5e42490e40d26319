"""SIGTERM and SIGINT (Airbyte cancelling a sync, or Ctrl-C) become a flag, never an exception.

Raising from a signal handler would interrupt whatever code runs at that moment, a lock held or a
state half written. So the handler only writes the signal's number to a pipe (safe at any point), and
a watcher thread sets the `cancelled` event and logs. Every wait of the sync (retry sleeps, polls,
slot waits, the reader) wakes up on that event; the writer then aborts the imports in flight and
exits with code 1. A second signal is logged and ignored: the sync is already stopping, and it must
not be killed halfway through aborting its imports.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Any

logger = logging.getLogger("airbyte")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class CancelOnSignals:
    """A context manager: while it is open, SIGTERM/SIGINT set `cancelled`."""

    def __init__(self, cancelled: threading.Event) -> None:
        self.cancelled = cancelled
        self.received: list[str] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> CancelOnSignals:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._watcher = threading.Thread(target=self._watch, name="scarf-signals", daemon=True)
        self._watcher.start()
        self._previous = {sig: signal.signal(sig, self._handle) for sig in _SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            # Once cancelled, the process is on its way out: a further signal must not kill it halfway.
            signal.signal(sig, signal.SIG_IGN if self.received else previous)
        os.close(self._write_fd)  # ends the watcher
        self._watcher.join(1.0)
        os.close(self._read_fd)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        try:
            os.write(self._write_fd, bytes([signum]))
        except OSError:  # the pipe is full or closed: a signal is already waiting to be seen
            pass

    def _watch(self) -> None:
        while True:
            try:
                data = os.read(self._read_fd, 16)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                self._received(signal.Signals(signum).name)

    def _received(self, name: str) -> None:
        self.received.append(name)
        if len(self.received) == 1:
            logger.warning("Received %s: the sync stops, aborting the imports in flight.", name)
            self.cancelled.set()
        else:
            logger.warning("Received %s again: ignored, the sync is already stopping.", name)
