"""The client's bounds against a misbehaving server: silence, trickles, huge answers, redirects, outages,
revoked tokens, cancellation, and `check` against a server that never answers.

Everything is real HTTP on loopback, no mocks: the emulator, plus two tiny servers of the tests' own, a
capture server that counts every connection it accepts (where redirects point) and a scripted server for
answers the emulator does not make. Nothing here is timed: a bound is shown by the deadline the code states
in its message ("no answer within N s", "after N attempt(s) over X s"), by the attempts the server saw, by
the waits the client asked for (an injected `sleep`, or an injected clock that only the waits move), or by
how a wait on the cancellation event returned. A call that would run for minutes if its bound were not
enforced runs under `run_with_hang_guard`, which fails only after a minute and never looks at how long the
call took. Memory is measured with tracemalloc, as the peak of what Python allocated during the call.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import socket
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from airbyte_cdk.models import FailureType, Status

from destination_scarf.airbyte.check import CHECK_RETRY, run_check
from destination_scarf.errors import (
    ScarfAuthError,
    ScarfConfigError,
    ScarfTransientError,
    SyncCancelled,
    UncertainImport,
)
from destination_scarf.scarf.client import ScarfClient
from destination_scarf.scarf.retry import RetryPolicy
from destination_scarf.scarf.transport import MAX_ANSWER_BYTES
from integration_tests.scarf.test_client import TO_PACKAGE, Sleeps, events, ndjson_gz, requests_of, wait_final
from support import (
    OWNER,
    PACKAGE,
    TOKEN,
    make_config,
    messages_of,
    new_emulator,
    run_connector,
    run_with_hang_guard,
    stated_attempts,
    wait_for,
    write_json,
)

MiB = 1024 * 1024


# ----- helpers -------------------------------------------------------------------------------------


def policy(total: float, *, attempts: int | None = None, backoff: float = 0.01, cap: float = 0.05) -> RetryPolicy:
    return RetryPolicy(max_attempts=attempts, backoff_initial_seconds=backoff, backoff_max_seconds=cap,
                       max_total_seconds=total, retry_after_max_seconds=0.2)


def client_for(emu, *, retry: RetryPolicy, sleep: Callable[[float], None] | None = None, **kwargs: Any) -> ScarfClient:
    """A client with fixed jitter (every wait is its ceiling); `sleep` None keeps the real, cancellable wait."""
    return ScarfClient(api_url=emu.url, api_token=TOKEN, owner=OWNER, retry=retry, sleep=sleep,
                       rand=lambda: 1.0, **kwargs)


class SteppedClock(Sleeps):
    """An injected clock and `sleep` in one: each wait is recorded and moves the clock on at once.

    Attempts take no time on it, so what the client decides from its clock (whether another wait and attempt
    still fit, how long it says it tried) is exact, however fast the machine is. The transport's watchdog
    reads the same clock, so against it only quick answers may be used (a 5xx), never a silent server;
    each attempt's socket timeouts are still capped at what is left on this clock, so keep that at seconds.
    """

    def __init__(self, start: float = 1000.0) -> None:
        super().__init__()
        self.now = start

    def __call__(self, seconds: float) -> None:
        super().__call__(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


class RecordedEvent(threading.Event):
    """A cancellation event that records every wait on it: (the timeout asked for, what the wait returned).

    `Event.wait` returns True when the event was set, False when its timeout ran out: so the record shows
    whether a wait was ended by the cancel or waited its full length, without timing it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[tuple[float | None, bool]] = []

    def wait(self, timeout: float | None = None) -> bool:
        woken = super().wait(timeout)
        self.waits.append((timeout, woken))
        return woken


@contextmanager
def retry_warnings() -> Iterator[list[str]]:
    """The client's "retry N in S s" warnings while the block runs (each names why the attempt failed)."""
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Collect(logging.WARNING)
    airbyte = logging.getLogger("airbyte")
    airbyte.addHandler(handler)
    try:
        yield seen
    finally:
        airbyte.removeHandler(handler)


@contextmanager
def peak_allocation() -> Iterator[list[int]]:
    """`peak[0]`: the most memory Python allocated above what was in use when the block started."""
    peak: list[int] = []
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        yield peak
    finally:
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        peak.append(top - base)


def answer_wait(message: str) -> float:
    """The N of "no answer within N s" (a socket timeout) or "no complete answer within N s" (the deadline)."""
    match = re.search(r"no (?:complete )?answer within (\d+(?:\.\d+)?) s", message)
    assert match, f"the message does not say that the server did not answer: {message}"
    return float(match.group(1))


def failed(emu, category: str) -> list:
    return [r for r in requests_of(emu, category=category) if r.status is None or r.status >= 500]


def end_outage_after(emu, n: int, category: str) -> threading.Thread:
    """A helper thread that ends the outage once `n` failed requests of `category` were seen (never by a timer)."""
    def run() -> None:
        try:
            wait_for(lambda: len(failed(emu, category)) >= n, what=f"{n} failed {category} requests", timeout=20)
        finally:
            emu.end_outage()  # also when the wait failed: the client under test must not spin forever

    thread = threading.Thread(target=run, name="end-outage", daemon=True)
    thread.start()
    return thread


def set_after(event: threading.Event, predicate: Callable[[], Any]) -> threading.Thread:
    """A helper thread that sets `event` once `predicate` holds (never by a timer)."""
    def run() -> None:
        try:
            wait_for(predicate, what="the moment to cancel", timeout=20)
        finally:
            event.set()

    thread = threading.Thread(target=run, name="cancel", daemon=True)
    thread.start()
    return thread


class LoopbackServer:
    """A loopback TCP server on a free port: it accepts until closed and hands each connection to `_handle`."""

    def __init__(self, *, name: str) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()


class CaptureServer(LoopbackServer):
    """A loopback TCP server that counts every connection it accepts and keeps every byte it receives.

    It never answers: all it proves is whether anything reached it.
    """

    def __init__(self) -> None:
        super().__init__(name="capture-server")
        self.connections = 0
        self.received = bytearray()
        self._thread.start()

    def _handle(self, conn: socket.socket) -> None:
        self.connections += 1
        conn.settimeout(0.2)
        try:
            while chunk := conn.recv(65536):
                self.received += chunk
        except OSError:
            pass
        finally:
            conn.close()


class ScriptedServer(LoopbackServer):
    """A loopback HTTP server that reads each request's head and answers with `head`, then `body`, then
    `filler` bytes of "x" written as fast as the client reads them (until it hangs up)."""

    def __init__(self, head: bytes, body: bytes = b"", filler: int = 0) -> None:
        super().__init__(name="scripted-server")
        self._answer_head = head + body  # made here, so that it is not counted in a test's allocations
        self._filler = filler
        self.requests = 0
        self._thread.start()

    def _handle(self, conn: socket.socket) -> None:
        threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        filler = b"x" * 65536
        with conn:
            try:
                conn.settimeout(5)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                self.requests += 1
                conn.sendall(self._answer_head)
                left = self._filler
                while left > 0 and not self._stop.is_set():
                    conn.sendall(filler[:min(left, len(filler))])
                    left -= len(filler)
            except OSError:
                pass


@pytest.fixture
def capture():
    server = CaptureServer()
    yield server
    server.close()


# ----- 1. a server that never answers --------------------------------------------------------------


def test_silent_server_get_fails_within_the_budget_saying_it_did_not_answer(emulator):
    [held] = emulator.hold_slots(OWNER, 1)
    emulator.silence_next(100, only="import-get")
    budget, read_timeout = 1.2, 0.3
    with client_for(emulator, retry=policy(budget), read_timeout=read_timeout) as client, \
            pytest.raises(ScarfTransientError) as caught:
        run_with_hang_guard(lambda: client.get_import(held), "a GET to a silent server")
    message = str(caught.value)
    assert caught.value.failure_type == FailureType.transient_error
    assert not isinstance(caught.value, UncertainImport)
    assert answer_wait(message) <= read_timeout
    assert f"reading import {held}" in message
    attempts = requests_of(emulator, "GET")
    assert len(attempts) >= 2, "a GET to a silent server is retried"
    assert f"after {len(attempts)} attempt(s)" in message
    assert all(r.status is None for r in attempts)  # not one byte of answer came back
    # The budget ended the retries: every attempt but the last waited out its whole read timeout (a socket
    # timeout never ends early), and an attempt starts only while the budget has time left, so no more than
    # budget / read timeout attempts fit. A slower machine makes fewer, never more.
    assert len(attempts) <= math.ceil(budget / read_timeout), message


# ----- 2. a trickling answer -----------------------------------------------------------------------


@pytest.mark.parametrize("part", ["body", "headers"])
def test_trickling_answer_ends_at_the_exchange_timeout_and_get_is_retried(emulator, part):
    [held] = emulator.hold_slots(OWNER, 1)
    emulator.trickle_next(1, only="import-get", bytes_per_second=1, part=part)
    sleeps = Sleeps()
    # Each byte arrives well within the read timeout, so only the exchange's own deadline can end it. At one
    # byte a second the trickled answer would take minutes: the hang guard fails long before it is whole.
    with client_for(emulator, retry=policy(20), sleep=sleeps, read_timeout=5, exchange_timeout=0.5) as client, \
            retry_warnings() as warnings:
        found = run_with_hang_guard(lambda: client.get_import(held), "a GET with a trickled answer")
    assert found.id == held
    assert len(requests_of(emulator, "GET")) == 2
    assert len(sleeps.waits) == 1
    # The first attempt was ended by the exchange's deadline, as the client says when it retries.
    [warning] = warnings
    assert answer_wait(warning) == 0.5 and "no complete answer" in warning, warning


@pytest.mark.parametrize("part", ["body", "headers"])
def test_trickling_answers_fail_saying_no_complete_answer_within_the_exchange_timeout(emulator, part):
    [held] = emulator.hold_slots(OWNER, 1)
    emulator.trickle_next(10, only="import-get", bytes_per_second=1, part=part)
    sleeps = Sleeps()
    with client_for(emulator, retry=policy(20, attempts=2), sleep=sleeps, read_timeout=5,
                    exchange_timeout=0.5) as client, pytest.raises(ScarfTransientError) as caught:
        run_with_hang_guard(lambda: client.get_import(held), "GETs with trickled answers")
    message = str(caught.value)
    assert "no complete answer within 0.5 s" in message, message
    assert "after 2 attempt(s)" in message
    assert len(requests_of(emulator, "GET")) == 2
    assert len(sleeps.waits) == 1  # one wait between the two attempts, and no more attempts


@pytest.mark.parametrize("part", ["body", "headers"])
def test_trickling_answer_ends_when_the_budget_runs_out_first(emulator, part):
    [held] = emulator.hold_slots(OWNER, 1)
    emulator.trickle_next(10, only="import-get", bytes_per_second=1, part=part)
    budget = 1.0
    sleeps = Sleeps()
    with client_for(emulator, retry=policy(budget), sleep=sleeps, read_timeout=5) as client, \
            pytest.raises(ScarfTransientError) as caught:
        # exchange_timeout is its default 300 s: the budget is what ends it
        run_with_hang_guard(lambda: client.get_import(held), "a GET with a trickled answer")
    assert "no complete answer within" in str(caught.value), str(caught.value)
    assert budget - 0.1 <= answer_wait(str(caught.value)) <= budget
    assert len(requests_of(emulator, "GET")) == 1  # no time left for a second attempt
    assert sleeps.waits == []  # nor for a wait


# ----- 3. huge answers -----------------------------------------------------------------------------


def test_huge_json_answer_is_not_read_into_memory_and_get_is_retried(emulator):
    [held] = emulator.hold_slots(OWNER, 1)
    emulator.huge_next(1, only="import-get", megabytes=300, shape="json")
    sleeps = Sleeps()
    with client_for(emulator, retry=policy(20), sleep=sleeps) as client, peak_allocation() as peak:
        found = run_with_hang_guard(lambda: client.get_import(held), "a GET with a 300 MB answer")
    assert found.id == held and found.status == "importing"
    assert [r.status for r in requests_of(emulator, "GET")] == [200, 200]  # the huge one, then the real one
    assert len(sleeps.waits) == 1
    # Past 4 MiB the client stops reading and drops what it read, so memory stays flat whatever the size.
    assert peak[0] < 2 * MAX_ANSWER_BYTES, f"{peak[0] / MiB:.1f} MiB allocated for a 300 MB answer"


def test_huge_json_answers_fail_with_a_clear_message(emulator):
    [held] = emulator.hold_slots(OWNER, 1)
    emulator.huge_next(10, only="import-get", megabytes=300, shape="json")
    with client_for(emulator, retry=policy(20, attempts=3), sleep=Sleeps()) as client, peak_allocation() as peak, \
            pytest.raises(ScarfTransientError) as caught:
        client.get_import(held)
    message = str(caught.value)
    assert "an answer larger than 4 MiB" in message and "after 3 attempt(s)" in message, message
    assert len(requests_of(emulator, "GET")) == 3
    assert peak[0] < 2 * MAX_ANSWER_BYTES, f"{peak[0] / MiB:.1f} MiB allocated"


def test_huge_ndjson_log_is_streamed_and_capped_at_max_entries(emulator):
    [held] = emulator.hold_slots(OWNER, 1)
    emulator.huge_next(1, only="log", megabytes=300, shape="ndjson")
    with client_for(emulator, retry=policy(20), sleep=Sleeps()) as client, peak_allocation() as peak:
        entries = run_with_hang_guard(lambda: client.import_log(held, max_entries=50), "reading a 300 MB log")
    assert len(entries) == 50
    assert [e["line"] for e in entries] == list(range(1, 51))
    assert all(e["type"] == "failed-to-decode" and e["class"] == "error" for e in entries)
    assert len(requests_of(emulator, category="log")) == 1  # one streamed answer, not retried
    assert peak[0] < MAX_ANSWER_BYTES, f"{peak[0] / MiB:.1f} MiB allocated for 50 log entries"


def test_an_overlong_log_line_is_skipped_without_filling_memory(emulator):
    [held] = emulator.hold_slots(OWNER, 1)
    # One 300 MB line without a newline: the cap is per line, so the whole answer is read and dropped.
    emulator.huge_next(1, only="log", megabytes=300, shape="line")
    with client_for(emulator, retry=policy(20), sleep=Sleeps()) as client, peak_allocation() as peak:
        entries = run_with_hang_guard(lambda: client.import_log(held, max_entries=50), "reading a 300 MB log line")
    assert entries == []
    assert len(requests_of(emulator, category="log")) == 1
    assert peak[0] < MAX_ANSWER_BYTES, f"{peak[0] / MiB:.1f} MiB allocated for a skipped line"


def test_an_overlong_log_line_between_good_ones_is_skipped_and_the_others_kept():
    def entry(n: int) -> bytes:
        return b'{"type":"failed-to-decode","class":"error","line":%d,"human_friendly_message":"bad"}\n' % n

    overlong = b'{"type":"progress","class":"info","human_friendly_message":"' + b"y" * (3 * MiB) + b'"}\n'
    body = entry(1) + overlong + entry(2) + b"not json\n" + b"\n" + entry(3)
    head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nContent-Length: {len(body)}\r\n"
            "\r\n").encode()
    server = ScriptedServer(head, body)
    try:
        client = ScarfClient(api_url=server.url, api_token=TOKEN, owner=OWNER, retry=policy(20), sleep=Sleeps())
        with client, peak_allocation() as peak:
            entries = client.import_log("0c4f966c-b715-497a-83e2-467254c95e40")
    finally:
        server.close()
    assert [e["line"] for e in entries] == [1, 2, 3]
    assert server.requests == 1
    assert peak[0] < MAX_ANSWER_BYTES, f"{peak[0] / MiB:.1f} MiB allocated for a log with a 3 MiB line"


# ----- 4. redirects are never followed -------------------------------------------------------------

REDIRECTS = [301, 302, 303, 307, 308]


@pytest.mark.parametrize("status", REDIRECTS)
def test_redirect_on_get_is_a_config_error_and_nothing_reaches_the_other_host(emulator, capture, status):
    [held] = emulator.hold_slots(OWNER, 1)
    emulator.redirect_next(1, only="import-get", status=status, location=capture.url)
    with client_for(emulator, retry=policy(20), sleep=Sleeps()) as client, \
            pytest.raises(ScarfConfigError) as caught:
        client.get_import(held)
    message = str(caught.value)
    assert caught.value.failure_type == FailureType.config_error
    assert f"HTTP {status}" in message and capture.url in message, message
    assert "(the same host)" not in message
    assert TOKEN not in message
    assert [r.status for r in requests_of(emulator, "GET")] == [status]  # not retried either
    assert capture.connections == 0 and not capture.received


@pytest.mark.parametrize("status", REDIRECTS)
def test_redirect_on_import_post_is_a_config_error_and_nothing_reaches_the_other_host(emulator, capture, status):
    body = ndjson_gz(events(3, f"redirect-{status}"))
    emulator.redirect_next(1, only="import-post", status=status, location=capture.url)
    with client_for(emulator, retry=policy(20), sleep=Sleeps()) as client, \
            pytest.raises(ScarfConfigError) as caught:
        client.import_events(target=TO_PACKAGE, body=body, gzipped=True, safe_to_resend=True)
    message = str(caught.value)
    assert f"HTTP {status}" in message and capture.url in message, message
    [post] = requests_of(emulator, "POST")
    assert post.status == status and post.headers["Content-Encoding"] == "gzip"
    assert post.body_bytes_len == len(body)
    assert capture.connections == 0 and not capture.received
    assert emulator.imports(OWNER) == []  # the emulator processed nothing either


def test_redirect_with_a_huge_body_is_not_read(capture):
    """A 3xx is answered like any error: only a short excerpt of its body is read, whatever its length."""
    size = 200_000_000
    head = (f"HTTP/1.1 302 Found\r\nLocation: {capture.url}/elsewhere\r\nContent-Type: text/html\r\n"
            f"Content-Length: {size}\r\n\r\n").encode()
    server = ScriptedServer(head, filler=size)
    try:
        client = ScarfClient(api_url=server.url, api_token=TOKEN, owner=OWNER, retry=policy(20), sleep=Sleeps())
        with client, peak_allocation() as peak, pytest.raises(ScarfConfigError) as caught:
            run_with_hang_guard(lambda: client.get_package(PACKAGE), "a GET answered by a 200 MB redirect")
    finally:
        server.close()
    assert "HTTP 302" in str(caught.value) and capture.url in str(caught.value), str(caught.value)
    assert "/elsewhere" not in str(caught.value)
    assert server.requests == 1
    assert peak[0] < MAX_ANSWER_BYTES, f"{peak[0] / MiB:.1f} MiB allocated for a redirect"
    assert capture.connections == 0


@pytest.mark.parametrize(
    "location, named, hidden",
    [
        ("http://127.0.0.1:99999", "http://127.0.0.1:99999", []),  # a port out of range
        ("http://evil.example:abc/x?y=1", "http://evil.example:abc", ["/x", "y=1"]),  # a port that is no number
        ("http://[::1]:8080/v2", "http://[::1]:8080", ["/v2"]),  # an IPv6 literal, bracketed
        ("https://user:s3cret@evil.example:8443/p?token=abc", "https://evil.example:8443", ["s3cret", "user", "abc"]),
    ],
    ids=["port-out-of-range", "port-not-a-number", "ipv6", "credentials-path-query"],
)
def test_redirect_message_names_only_the_other_host_whatever_the_location(emulator, location, named, hidden):
    emulator.redirect_next(1, only="artifact-get", status=302, location=location)
    with client_for(emulator, retry=policy(20), sleep=Sleeps()) as client, \
            pytest.raises(ScarfConfigError) as caught:
        client.get_package(PACKAGE)
    message = str(caught.value)
    assert f"to {named}" in message, message
    for fragment in hidden:
        assert fragment not in message, message
    assert len(requests_of(emulator, "GET")) == 1


def test_redirect_to_the_same_host_says_so(emulator):
    emulator.redirect_next(1, only="artifact-get", status=301)  # Location: this emulator, same path
    with client_for(emulator, retry=policy(20), sleep=Sleeps()) as client, \
            pytest.raises(ScarfConfigError) as caught:
        client.get_package(PACKAGE)
    assert f"{emulator.url} (the same host)" in str(caught.value), str(caught.value)
    assert len(requests_of(emulator, "GET")) == 1  # the redirect was not followed to the same host either


# ----- 5. outages and flakiness --------------------------------------------------------------------


def test_get_rides_out_an_outage_once_it_ends(emulator):
    [held] = emulator.hold_slots(OWNER, 1)
    emulator.start_outage(only="import-get", status=503)
    helper = end_outage_after(emulator, 4, "import-get")
    with client_for(emulator, retry=policy(20)) as client:
        found = client.get_import(held)
    helper.join(5)
    assert found.id == held
    statuses = [r.status for r in requests_of(emulator, "GET")]
    assert statuses[-1] == 200 and statuses.count(200) == 1
    assert all(s == 503 for s in statuses[:-1]) and len(statuses) >= 5


def test_get_with_a_deadline_that_passes_during_the_outage_says_how_long_it_tried(emulator):
    [held] = emulator.hold_slots(OWNER, 1)
    emulator.start_outage(only="import-get", status=503)  # never ended by the test: the deadline ends the call
    # The deadline is on an injected clock that only the waits move (10 s each, rand=1.0), so when the client
    # gives up is exact. Every attempt still has seconds left for its socket timeouts: a 503 comes back well
    # within them.
    clock = SteppedClock()
    backoff = RetryPolicy(max_attempts=None, backoff_initial_seconds=10, backoff_factor=1, backoff_max_seconds=10,
                          max_total_seconds=600)
    deadline_in = 35.0
    with client_for(emulator, retry=backoff, sleep=clock, clock=clock.clock) as client, \
            pytest.raises(ScarfTransientError) as caught:
        deadline = clock.now + deadline_in
        run_with_hang_guard(lambda: client.get_import(held, deadline=deadline), "a GET through an outage")
    message = str(caught.value)
    assert "HTTP 503 after" in message, message
    attempts, seconds = stated_attempts(message)
    assert attempts == len(requests_of(emulator, "GET")) >= 2
    assert clock.waits == [10.0] * (attempts - 1)
    # It gives up once no wait plus attempt fits before the deadline: not sooner, and never past it.
    assert seconds == sum(clock.waits) <= deadline_in
    assert seconds + 10.0 + backoff.min_attempt_seconds > deadline_in
    assert attempts == 4  # at 0, 10, 20 and 30 s; a wait to 40 s would pass the deadline at 35 s


def test_flaky_server_twenty_gets_all_succeed(emulator):
    [held] = emulator.hold_slots(OWNER, 1)
    emulator.flaky(every=2, status=503, only="import-get")
    with client_for(emulator, retry=policy(20, attempts=3), sleep=Sleeps()) as client:
        found = [client.get_import(held).id for _ in range(20)]
    assert found == [held] * 20
    # Deterministic: every second request fails, so each GET after the first needs one retry.
    assert [r.status for r in requests_of(emulator, "GET")] == [200] + [503, 200] * 19


def test_import_post_safe_to_resend_rides_out_an_outage_and_creates_one_import(emulator):
    body = ndjson_gz(events(5, "outage"))
    emulator.start_outage(only="import-post", status=503)
    helper = end_outage_after(emulator, 3, "import-post")
    with client_for(emulator, retry=policy(20)) as client:
        created = client.import_events(target=TO_PACKAGE, body=body, safe_to_resend=True)
        final = wait_final(client, created.id)
    helper.join(5)
    statuses = [r.status for r in requests_of(emulator, "POST")]
    assert statuses[-1] == 200 and statuses.count(200) == 1 and len(statuses) >= 4
    assert [i["id"] for i in emulator.imports(OWNER)] == [created.id]
    assert final.events_successfully_imported == 5 and emulator.event_count(OWNER) == 5


def test_import_post_not_safe_to_resend_fails_at_once_on_5xx_after_one_post(emulator):
    emulator.start_outage(only="import-post", status=503)
    sleeps = Sleeps()
    with client_for(emulator, retry=policy(20), sleep=sleeps) as client, pytest.raises(UncertainImport) as caught:
        client.import_events(target=TO_PACKAGE, body=ndjson_gz(events(2, "once")), safe_to_resend=False)
    assert "503" in str(caught.value) and "unique_id" in str(caught.value)
    assert [r.status for r in requests_of(emulator, "POST")] == [503]
    assert sleeps.waits == []
    assert emulator.imports(OWNER) == []


# ----- 6. a token revoked after N imports ----------------------------------------------------------


@pytest.mark.parametrize("next_call", ["import", "get"])
def test_revoked_token_is_an_auth_error_and_not_retried(emulator, next_call):
    emulator.revoke_token_after(TOKEN, 2)
    sleeps = Sleeps()
    with client_for(emulator, retry=policy(20), sleep=sleeps) as client:
        created = [client.import_events(target=TO_PACKAGE, body=ndjson_gz(events(1, f"rev-{n}")), safe_to_resend=True)
                   for n in range(2)]
        before = len(emulator.requests)
        with pytest.raises(ScarfAuthError) as caught:
            if next_call == "import":
                client.import_events(target=TO_PACKAGE, body=ndjson_gz(events(1, "rev-3")), safe_to_resend=True)
            else:
                client.get_import(created[0].id)
    assert caught.value.failure_type == FailureType.config_error
    assert "403" in str(caught.value) and "api_token" in str(caught.value)
    after = emulator.requests[before:]
    assert [r.status for r in after] == [403]
    assert sleeps.waits == []
    assert sorted(i["id"] for i in emulator.imports(OWNER)) == sorted(c.id for c in created)


# ----- 7. cancellation -----------------------------------------------------------------------------


def test_cancelling_wakes_a_retry_wait_at_once(emulator):
    [held] = emulator.hold_slots(OWNER, 1)
    emulator.start_outage(only="import-get", status=503)
    cancelled = RecordedEvent()
    # Every wait is 300 s (rand=1.0). The client's own cancellable wait (sleep=None) is a wait on `cancelled`,
    # which records how each wait ended; a wait the cancel did not wake would also trip the hang guard.
    slow = RetryPolicy(max_attempts=None, backoff_initial_seconds=300, backoff_factor=1, backoff_max_seconds=300,
                       max_total_seconds=3600)
    helper = set_after(cancelled, lambda: len(failed(emulator, "import-get")) >= 1)
    with client_for(emulator, retry=slow, cancelled=cancelled) as client, pytest.raises(SyncCancelled) as caught:
        run_with_hang_guard(lambda: client.get_import(held), "a GET waiting to retry when cancelled")
    helper.join(5)
    assert caught.value.failure_type == FailureType.transient_error
    assert "cancelled" in str(caught.value)
    # One retry wait, of 300 s, and it returned because the event was set (True), not because it ran out.
    assert cancelled.waits == [(300.0, True)]
    assert len(requests_of(emulator, "GET")) == 1  # no attempt after the cancel


def test_abort_is_not_cancellable(emulator):
    [held] = emulator.hold_slots(OWNER, 1)
    cancelled = threading.Event()
    cancelled.set()
    with client_for(emulator, retry=policy(20), cancelled=cancelled) as client:
        client.abort_import(held)
        with pytest.raises(SyncCancelled):
            client.get_import(held)  # a cancellable call on the same client does stop
    assert emulator.get_import(OWNER, held)["status"] == "aborted"
    assert [r.category for r in emulator.requests] == ["abort"]


def test_abort_while_cancelled_still_backs_off_between_retries(emulator):
    """A cancelled sync aborts its imports with a few seconds' budget. Its cancellable wait returns at once
    then, so without care the abort's retries would hammer a failing API with no pause at all."""
    [held] = emulator.hold_slots(OWNER, 1)
    emulator.fail_next(2, status=503, only="abort")
    cancelled = threading.Event()
    cancelled.set()
    backoff = RetryPolicy(max_attempts=5, backoff_initial_seconds=0.2, backoff_factor=1, backoff_max_seconds=0.2,
                          max_total_seconds=20)
    with client_for(emulator, retry=backoff, cancelled=cancelled) as client:
        client.abort_import(held)
    attempts = requests_of(emulator, category="abort")
    assert [r.status for r in attempts] == [503, 503, 204]
    gaps = [b.received_at - a.received_at for a, b in itertools.pairwise(attempts)]
    assert min(gaps) >= 0.19, gaps  # each retry waited its backoff (a lower bound: no speed assumption)


def test_abort_through_an_outage_while_cancelled_sends_a_bounded_number_of_requests(emulator):
    [held] = emulator.hold_slots(OWNER, 1)
    emulator.start_outage(only="abort", status=503)
    cancelled = threading.Event()
    cancelled.set()
    # On an injected clock that only the waits move, in tens of seconds so that every attempt keeps seconds
    # for its socket timeouts: the abort's own budget (100 s here, far below the policy's), not the speed of
    # the machine, decides how many attempts it makes.
    clock = SteppedClock()
    backoff = RetryPolicy(backoff_initial_seconds=10, backoff_factor=2, backoff_max_seconds=40,
                          max_total_seconds=6000)
    budget = 100.0
    with client_for(emulator, retry=backoff, cancelled=cancelled, sleep=clock, clock=clock.clock) as client, \
            pytest.raises(ScarfTransientError) as caught:
        # as a cancelled import job does (abort_budget_seconds)
        run_with_hang_guard(lambda: client.abort_import(held, budget_seconds=budget), "an abort through an outage")
    assert not isinstance(caught.value, SyncCancelled)
    assert "aborting import" in str(caught.value)
    # 10 + 20 + 40 s of waits fit in 100 s, and another 40 s would not: 4 attempts, not hundreds.
    attempts, seconds = stated_attempts(str(caught.value))
    assert attempts == len(requests_of(emulator, category="abort")) == 4
    assert clock.waits == [10.0, 20.0, 40.0]
    assert seconds == sum(clock.waits) <= budget


# ----- 8. the budget includes the attempt in flight ------------------------------------------------


def test_budget_cuts_the_attempt_in_flight_short(emulator):
    emulator.silence_next(100, only="artifact-get")
    sleeps = Sleeps()
    with client_for(emulator, retry=policy(2.0), sleep=sleeps, read_timeout=10) as client, \
            pytest.raises(ScarfTransientError) as caught:
        run_with_hang_guard(lambda: client.get_package(PACKAGE), "a GET to a silent server")
    # The 10 s read timeout was capped at what was left of the 2 s budget, as the client states.
    assert 1.9 <= answer_wait(str(caught.value)) <= 2.0  # the budget, not the 10 s read timeout
    assert len(requests_of(emulator, "GET")) == 1
    assert sleeps.waits == []  # and nothing was left for a wait and another attempt


# ----- 9. check against a silent server ------------------------------------------------------------


def test_check_against_a_silent_server_fails_within_its_bounds_and_never_prints_the_token(tmp_path):
    """The CLI and the in-process check run side by side (each waits out check's read timeout once).

    Neither is timed: each states how long it waited for an answer and how many attempts it made, and both
    are within CHECK_RETRY's bounds. The subprocess's timeout and the hang guard only catch a hang.
    """
    with new_emulator() as cli_emu, new_emulator() as local_emu, ThreadPoolExecutor(max_workers=1) as pool:
        for emu in (cli_emu, local_emu):
            emu.silence_next(1000, only="any")
        config_path = tmp_path / "config.json"
        write_json(config_path, make_config(cli_emu))
        cli_run = pool.submit(run_connector, ["check", "--config", str(config_path)], timeout=60)
        local = run_with_hang_guard(
            lambda: run_check(make_config(local_emu), logger=logging.getLogger("test-check-silent")),
            "the in-process check")
        done = cli_run.result()  # run_connector's own timeout ends a hung subprocess

    assert CHECK_RETRY.max_attempts is not None
    output = (done.stdout + done.stderr).decode("utf-8", "replace")
    statuses = [m for m in messages_of(done.stdout) if m.get("type") == "CONNECTION_STATUS"]
    assert len(statuses) == 1, output
    status = statuses[0]["connectionStatus"]
    assert done.returncode == 0
    assert status["status"] == "FAILED"
    assert answer_wait(status["message"]) <= CHECK_RETRY.max_total_seconds
    attempts, _ = stated_attempts(status["message"])
    assert attempts == len(cli_emu.requests) <= CHECK_RETRY.max_attempts, status["message"]
    assert TOKEN not in output
    assert cli_emu.requests and all(r.status is None for r in cli_emu.requests)

    assert local.status == Status.FAILED
    assert answer_wait(local.message) <= CHECK_RETRY.max_total_seconds
    attempts, _ = stated_attempts(local.message)
    assert attempts == len(local_emu.requests) <= CHECK_RETRY.max_attempts, local.message
    assert TOKEN not in local.message
