"""Helpers of the write tests: scripted inputs, collecting states, the CLI in a subprocess, assertions on the emulator.

Nothing here waits on wall-clock speed: a scripted input feeds idle chunks until a condition holds,
and every wait has a generous timeout that only guards against a hang.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from support import OWNER, ROOT, connector_command, download, lines, record, stream_state, write_json

STREAM = "downloads"
UNKNOWN_PACKAGE = "99999999-9999-4999-8999-999999999999"
SECRET = "SECRET-VALUE-123"
SECRET_IP = "203.0.113.77"
WAIT_SECONDS = 20.0


# ----- helpers ---------------------------------------------------------------------------------------




class Background:
    """Runs `action` in a daemon thread; `join()` re-raises what it raised, so helper failures are seen."""

    def __init__(self, action: Callable[[], Any]) -> None:
        self.error: BaseException | None = None
        self.result: Any = None

        def run() -> None:
            try:
                self.result = action()
            except BaseException as error:
                self.error = error

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def join(self, timeout: float = WAIT_SECONDS) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "background helper did not finish"
        if self.error is not None:
            raise self.error
        return self.result


class Until:
    """A step of a scripted input: feed idle chunks until `predicate` holds, then run `then`."""

    def __init__(self, predicate: Callable[[], Any], what: str, then: Callable[[], Any] | None = None) -> None:
        self.predicate, self.what, self.then = predicate, what, then


def script(items: Iterable[Any]) -> Iterator[bytes]:
    """Input chunks for `Writer.write`: messages become lines; an `Until` yields b"" (no input for a
    while) until its condition holds. Each b"" lets the writer echo the states that became safe, so a
    condition may look at the states the test has collected so far."""
    for item in items:
        if isinstance(item, Until):
            deadline = time.monotonic() + WAIT_SECONDS
            while not item.predicate():
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out waiting for {item.what}")
                yield b""
                time.sleep(0.005)
            if item.then is not None:
                item.then()
        elif isinstance(item, bytes):
            yield item
        else:
            yield orjson.dumps(item) + b"\n"


def drain(states_out: list, generator: Iterator) -> BaseException | None:
    """Collect yielded states into `states_out` until the generator ends; return what it raised."""
    try:
        for state in generator:
            states_out.append(state)
    except Exception as error:
        return error
    return None


def state_ids(states: Iterable[dict]) -> list[Any]:
    return [s["state"]["id"] for s in states]


def cursors(states: Iterable[dict]) -> list[Any]:
    return [s["state"]["stream"]["stream_state"]["cursor"] for s in states]


def stats(state: dict) -> dict:
    return state["state"]["destinationStats"]


def stored_ids(emulator) -> list[int]:
    return sorted(int(event["id"]) for event in emulator.events(OWNER))


def downloads_with_states(count: int, every: int, start: int = 0) -> list[dict]:
    """`count` download records with a stream state (cursor = records so far) after every `every`."""
    messages: list[dict] = []
    for n in range(start, start + count):
        messages.append(record(STREAM, download(n)))
        if (n + 1 - start) % every == 0:
            messages.append(stream_state(STREAM, n + 1))
    return messages


def input_states(messages: Iterable[Any]) -> list[dict]:
    return [m for m in messages if isinstance(m, dict) and m.get("type") == "STATE"]


def requests_of(emulator, category: str) -> list:
    return [r for r in emulator.requests if r.category == category]


def polled(emulator, import_id: str) -> bool:
    """The connector has polled this import: it knows its id and treats it as importing. It read the import by id,
    or read the imports list after the upload that created it (its status poller)."""
    created = False
    for r in emulator.requests:
        if r.kind == "import-post" and r.import_id == import_id:
            created = True
        elif (r.kind == "import-by-id" and r.path.endswith(import_id)) or (r.kind == "import-list" and created):
            return True
    return False


def our_imports(emulator) -> list[dict]:
    """Imports with events (held slots are empty imports started by 'another tool')."""
    return [i for i in emulator.imports(OWNER) if i["events_total"] > 0]


def assert_everything_once(emulator, expected_ids: Iterable[int]) -> None:
    expected = sorted(expected_ids)
    assert emulator.wait_idle(WAIT_SECONDS)
    assert emulator.event_count(OWNER) == len(expected)
    assert stored_ids(emulator) == expected


class Connector:
    """The real CLI in a subprocess; stdout is read line by line by a helper thread."""

    def __init__(self, tmp_path, config: dict, raw_catalog: dict, stdin: Any = subprocess.PIPE) -> None:
        args = ["write", "--config", write_json(tmp_path / "config.json", config),
                "--catalog", write_json(tmp_path / "catalog.json", raw_catalog)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(connector_command(*args), stdin=stdin, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=ROOT)
        self.messages: list[dict] = []
        self._lines: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._stderr = Background(self.proc.stderr.read)

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.strip():
                message = orjson.loads(line)
                self.messages.append(message)
                self._lines.put(message)
        self._lines.put(None)

    def send(self, messages: Iterable[Any]) -> None:
        for line in lines(messages):
            self.proc.stdin.write(line)
        self.proc.stdin.flush()

    def next_state(self, timeout: float = WAIT_SECONDS) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            message = self._lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            assert message is not None, f"connector ended without a state: {self.messages[-3:]}"
            if message["type"] == "STATE":
                return message

    def finish(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        self.stderr = self._stderr.join(timeout)
        return code

    def states(self) -> list[dict]:
        return [m for m in self.messages if m["type"] == "STATE"]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


