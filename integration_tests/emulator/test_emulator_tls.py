"""The emulator over HTTPS, the test CAs, the CONNECT proxy and the TLS handshake faults, with plain clients.

Production Scarf is HTTPS only. These tests establish, with `requests`, `ssl` and sockets only (never the
connector), that the test infrastructure behaves as a TLS server and a proxy do: certificates verified or
refused for the right reason, the wrong protocol refused at once, traffic really carried by the proxy, and
handshake faults failing exactly the next connections. No test measures time: timeouts are hang guards
(a regression then fails with a timeout instead of the expected error), and waiting is by polling.
"""

from __future__ import annotations

import selectors
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from proxy import ConnectProxy
from scarf_emulator import ScarfEmulator
from tls_support import WRONG_HOST, Pki, write_cert_files

ROOT = Path(__file__).resolve().parents[2]

#: Owner and token these tests add to whichever emulator they talk to (this module needs no other account).
OWNER = "tls-owner"
TOKEN = "tls-test-token"

#: Hang guard for every socket and client call; never a measured quantity.
DEADLINE = 10.0

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


# --------------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------------
def auth(emu: ScarfEmulator) -> dict[str, str]:
    """Headers for a real API call, after giving this module's token access to its owner on `emu`."""
    emu.add_token(TOKEN, OWNER)
    return {"Authorization": f"Bearer {TOKEN}"}


def list_imports(emu: ScarfEmulator, client: Any = requests, **kwargs: Any) -> requests.Response:
    """GET /v2/imports/{owner}: a real, authenticated API call (with `requests` or a Session)."""
    return client.get(f"{emu.url}/v2/imports/{OWNER}", headers=auth(emu), timeout=DEADLINE, **kwargs)


def address(url: str | None) -> tuple[str, int]:
    """(host, port) of a started server's URL."""
    assert url is not None, "not started"
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


def chain(exc: BaseException) -> list[BaseException]:
    """`exc` and everything it wraps: causes, contexts, exception arguments and urllib3's `reason`s."""
    found: list[BaseException] = []
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        pending += [item for item in nested if isinstance(item, BaseException)]
    return found


def verify_failure(exc: BaseException) -> str:
    """OpenSSL's reason for refusing the server's certificate, from the SSLCertVerificationError inside `exc`."""
    errors = [e for e in chain(exc) if isinstance(e, ssl.SSLCertVerificationError)]
    assert errors, f"no certificate verification error in {exc!r}"
    return f"{errors[0].verify_message} ({errors[0]})"


def wait_for(predicate: Callable[[], Any], what: str) -> Any:
    """Poll until `predicate` is truthy; fail (never hang) after DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)
    return value


def silenced(emu: ScarfEmulator) -> int:
    return emu.fault_summary()["silenced_connections"]


def read_to_end(sock: socket.socket) -> bytes:
    """Everything until the other side closes; a reset ends the data too."""
    parts: list[bytes] = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)


def raw_request(host: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
    return (head + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()) + "\r\n").encode()


def tls_connection(emu: ScarfEmulator, pki: Pki, version: ssl.TLSVersion | None = None) -> ssl.SSLSocket:
    """A verified TLS connection to the emulator (at most `version`), on a plain socket, to control exactly
    what is sent."""
    host, port = address(emu.url)
    context = pki.trusted.client_context()
    if version is not None:
        context.maximum_version = version
    raw = socket.create_connection((host, port), timeout=DEADLINE)
    tls = context.wrap_socket(raw, server_hostname=host)
    assert version is None or tls.version() == version.name.replace("_", ".")
    return tls


@pytest.fixture
def background() -> Iterator[Callable[..., Future]]:
    """Run a blocking client call in a thread; the test collects it with .result(DEADLINE)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        yield pool.submit


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy settings from the machine: each test sets exactly the ones it means."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def stop_with_guard(emu: ScarfEmulator) -> None:
    stopper = threading.Thread(target=emu.stop, daemon=True)
    stopper.start()
    stopper.join(DEADLINE)
    assert not stopper.is_alive(), "stop() hung"


# --------------------------------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------------------------------
def test_https_emulator_answers_an_api_call_when_the_ca_bundle_is_given(https_emulator, ca_bundle):
    assert https_emulator.url.startswith("https://127.0.0.1:")
    response = list_imports(https_emulator, verify=ca_bundle)
    assert (response.status_code, response.json()) == (200, {"event_imports": []})
    health = requests.get(f"{https_emulator.url}/_emulator/health", verify=ca_bundle, timeout=DEADLINE)
    assert health.json() == {"ok": True, "url": https_emulator.url}  # control routes are HTTPS too
    assert [(r.method, r.path, r.status) for r in https_emulator.requests] == [("GET", f"/v2/imports/{OWNER}", 200)]


def test_localhost_is_a_good_name_too(https_emulator, ca_bundle):
    _, port = address(https_emulator.url)
    response = requests.get(f"https://localhost:{port}/v2/imports/{OWNER}", headers=auth(https_emulator),
                            verify=ca_bundle, timeout=DEADLINE)
    assert response.status_code == 200


def test_requests_ca_bundle_in_the_environment_is_what_makes_the_certificate_trusted(https_emulator, trust_test_ca):
    assert list_imports(https_emulator).status_code == 200  # verify=True: REQUESTS_CA_BUNDLE decides
    with requests.Session() as session:
        session.trust_env = False  # the same call without the environment: certifi's CAs do not know ours
        with pytest.raises(requests.exceptions.SSLError) as refused:
            list_imports(https_emulator, session)
    assert "unable to get local issuer certificate" in verify_failure(refused.value)


def test_a_sessions_verify_loses_to_a_ca_bundle_in_the_environment(https_emulator, ca_bundle, pki, monkeypatch):
    """requests' long-standing quirk (psf/requests#3829, #4726): with trust_env (the default), REQUESTS_CA_BUNDLE
    or CURL_CA_BUNDLE replaces Session.verify; only verify= on the call itself wins. Machines and CI images often
    set them (this one does), so a client that puts its CA bundle on the Session does not get it there."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki.untrusted_ca.bundle_path)
    with requests.Session() as session:
        session.verify = ca_bundle
        with pytest.raises(requests.exceptions.SSLError):
            list_imports(https_emulator, session)
        assert list_imports(https_emulator, session, verify=ca_bundle).status_code == 200


@pytest.mark.parametrize(("certificate", "host", "reason"), [
    ("untrusted", "127.0.0.1", "unable to get local issuer certificate"),
    ("expired", "127.0.0.1", "certificate has expired"),
    ("wrong_host", "127.0.0.1", "IP address mismatch, certificate is not valid for '127.0.0.1'"),
    ("wrong_host", "localhost", "Hostname mismatch, certificate is not valid for 'localhost'"),
])
def test_a_bad_certificate_fails_with_an_ssl_error_that_says_why(start_https_emulator, pki, ca_bundle,
                                                                 certificate, host, reason):
    emu = start_https_emulator(getattr(pki, certificate)())
    _, port = address(emu.url)
    with pytest.raises(requests.exceptions.SSLError) as refused:
        requests.get(f"https://{host}:{port}/v2/imports/{OWNER}", headers=auth(emu), verify=ca_bundle,
                     timeout=DEADLINE)
    assert "certificate verify failed" in str(refused.value)
    assert reason in verify_failure(refused.value)
    assert emu.requests == []  # refused during the handshake: no request was sent


def test_the_wrong_host_certificate_is_refused_for_its_name_only(start_https_emulator, pki):
    emu = start_https_emulator(pki.wrong_host())
    with socket.create_connection(address(emu.url), timeout=DEADLINE) as raw:  # verified, under its own name
        with pki.trusted.client_context().wrap_socket(raw, server_hostname=WRONG_HOST) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


# --------------------------------------------------------------------------------------------------------------
# The wrong protocol fails at once (a hang would end in the DEADLINE timeout instead of the expected error)
# --------------------------------------------------------------------------------------------------------------
def test_https_to_the_plain_http_emulator_fails_with_an_ssl_error(emulator):
    with pytest.raises(requests.exceptions.SSLError) as refused:
        requests.get(emulator.url.replace("http://", "https://") + "/_emulator/health", timeout=DEADLINE)
    assert "WRONG_VERSION_NUMBER" in str(refused.value)
    assert requests.get(emulator.url + "/_emulator/health", timeout=DEADLINE).json()["ok"]  # still serving


def test_a_tls_handshake_on_the_plain_port_gets_a_plain_400_then_a_clean_close(emulator, pki):
    raw = socket.create_connection(address(emulator.url), timeout=DEADLINE)
    with raw, pytest.raises(ssl.SSLError, match="WRONG_VERSION_NUMBER"):
        pki.trusted.client_context().wrap_socket(raw, server_hostname="127.0.0.1")
    raw = socket.create_connection(address(emulator.url), timeout=DEADLINE)
    with raw:  # what the TLS client read: a plain HTTP answer, then the end of the stream (not a reset)
        raw.sendall(b"\x16\x03\x01\x00\x05hello")  # the start of a handshake record
        answer = read_to_end(raw)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert answer.endswith(b'{"message":"TLS handshake sent to a plain HTTP port: use http://"}')


def test_plain_http_to_the_https_port_is_answered_400_in_plain_http(https_emulator):
    response = requests.get(https_emulator.url.replace("https://", "http://") + f"/v2/imports/{OWNER}",
                            headers=auth(https_emulator), timeout=DEADLINE)
    assert response.status_code == 400
    assert response.json() == {"message": "plain HTTP request sent to an HTTPS port: use https://"}
    assert response.headers["Connection"] == "close"
    assert https_emulator.requests == []


def test_plain_http_to_the_https_port_ends_with_a_clean_close_even_with_a_body(https_emulator):
    host, port = address(https_emulator.url)
    with socket.create_connection((host, port), timeout=DEADLINE) as raw:
        body = b"x" * 200_000  # more than the socket buffers: read by the lingering close, never reset
        raw.sendall(f"POST /v2/{OWNER}/import HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                    + body)
        answer = read_to_end(raw)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n") and answer.endswith(b"use https://\"}")


# --------------------------------------------------------------------------------------------------------------
# The CONNECT proxy
# --------------------------------------------------------------------------------------------------------------
def test_https_proxy_in_the_environment_carries_the_request_through_a_tunnel(https_emulator, ca_bundle, connect_proxy,
                                                                             no_proxy_env):
    no_proxy_env.setenv("HTTPS_PROXY", connect_proxy.url)
    no_proxy_env.setenv("https_proxy", connect_proxy.url)
    assert connect_proxy.url.startswith("http://127.0.0.1:")
    assert list_imports(https_emulator, verify=ca_bundle).status_code == 200
    host, port = address(https_emulator.url)
    assert (connect_proxy.tunnels, connect_proxy.targets) == (1, [f"CONNECT {host}:{port}"])
    assert len(https_emulator.requests) == 1
    wait_for(lambda: connect_proxy.open_connections == 0, "the tunnel to end with the client's connection")


def test_the_tunnel_keeps_tls_end_to_end(https_emulator, pki, connect_proxy):
    """Through the tunnel the client still verifies the emulator's certificate: a bad one is refused."""
    emu_host, emu_port = address(https_emulator.url)
    with socket.create_connection(address(connect_proxy.url), timeout=DEADLINE) as raw:
        raw.sendall(f"CONNECT {emu_host}:{emu_port} HTTP/1.1\r\nHost: {emu_host}:{emu_port}\r\n\r\n".encode())
        assert raw.recv(65536).startswith(b"HTTP/1.1 200 ")
        with pki.trusted.client_context().wrap_socket(raw, server_hostname=emu_host) as tls:
            tls.sendall(raw_request(emu_host, f"/v2/imports/{OWNER}", auth(https_emulator)))
            assert read_to_end(tls).startswith(b"HTTP/1.1 200 OK\r\n")
    untrusting = pki.untrusted_ca.client_context()
    with socket.create_connection(address(connect_proxy.url), timeout=DEADLINE) as raw:
        raw.sendall(f"CONNECT {emu_host}:{emu_port} HTTP/1.1\r\n\r\n".encode())
        assert raw.recv(65536).startswith(b"HTTP/1.1 200 ")
        with pytest.raises(ssl.SSLCertVerificationError):
            untrusting.wrap_socket(raw, server_hostname=emu_host)
    assert connect_proxy.tunnels == 2


def test_http_proxy_forwards_plain_requests(emulator, connect_proxy, no_proxy_env):
    no_proxy_env.setenv("HTTP_PROXY", connect_proxy.url)
    no_proxy_env.setenv("http_proxy", connect_proxy.url)
    response = list_imports(emulator, params={"per_page": "5"})
    assert response.status_code == 200
    assert (connect_proxy.forwarded, connect_proxy.tunnels) == (1, 0)
    assert connect_proxy.targets == [f"GET {emulator.url}/v2/imports/{OWNER}?per_page=5"]
    (recorded,) = emulator.requests  # arrived in origin form, with the query
    assert (recorded.path, recorded.query) == (f"/v2/imports/{OWNER}", {"per_page": ["5"]})


def test_a_proxy_connection_ends_when_either_side_closes(emulator, connect_proxy):
    host, port = address(emulator.url)
    with socket.create_connection(address(connect_proxy.url), timeout=DEADLINE) as client:  # the server closes
        client.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\n\r\n".encode())
        assert client.recv(65536) == b"HTTP/1.1 200 Connection established\r\n\r\n"
        client.sendall(raw_request(host, "/_emulator/health"))  # Connection: close: the emulator hangs up
        assert b'"ok":true' in read_to_end(client)
    wait_for(lambda: connect_proxy.open_connections == 0, "the tunnel to end after the emulator closed")
    client = socket.create_connection(address(connect_proxy.url), timeout=DEADLINE)  # the client closes
    client.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\n\r\n".encode())
    assert client.recv(65536).startswith(b"HTTP/1.1 200 ")
    wait_for(lambda: connect_proxy.open_connections == 2, "both sides of the second tunnel")
    client.close()
    wait_for(lambda: connect_proxy.open_connections == 0, "the tunnel to end after the client closed")
    assert connect_proxy.tunnels == 2


def test_the_proxy_refuses_what_it_cannot_carry(connect_proxy):
    with socket.socket() as probe:  # a port nothing listens on (bound, then released)
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(requests.exceptions.ProxyError):
        requests.get(f"https://127.0.0.1:{closed_port}/", proxies={"https": connect_proxy.url}, timeout=DEADLINE)
    with socket.create_connection(address(connect_proxy.url), timeout=DEADLINE) as raw:
        raw.sendall(b"GET /not-a-proxy-request HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_to_end(raw).startswith(b"HTTP/1.1 400 ")
    assert (connect_proxy.refused, connect_proxy.tunnels, connect_proxy.forwarded) == (2, 0, 0)


def test_stopping_the_proxy_ends_its_tunnels(emulator):
    proxy = ConnectProxy()
    proxy.start()
    host, port = address(emulator.url)
    with socket.create_connection(address(proxy.url), timeout=DEADLINE) as client:
        client.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\n\r\n".encode())
        assert client.recv(65536).startswith(b"HTTP/1.1 200 ")
        proxy.stop()
        assert read_to_end(client) == b""
    wait_for(lambda: proxy.open_connections == 0, "the tunnel's sockets to be closed")


# --------------------------------------------------------------------------------------------------------------
# TLS handshake faults
# --------------------------------------------------------------------------------------------------------------
def test_tls_reset_next_resets_the_next_handshakes_then_connections_succeed(https_emulator, ca_bundle):
    https_emulator.tls_reset_next(2)
    for _ in range(2):
        with pytest.raises(requests.exceptions.ConnectionError) as failed:
            list_imports(https_emulator, verify=ca_bundle)
        assert any(isinstance(e, ConnectionResetError) for e in chain(failed.value)), repr(failed.value)
        assert not isinstance(failed.value, requests.exceptions.SSLError)
    assert https_emulator.pending_faults() == []
    assert list_imports(https_emulator, verify=ca_bundle).status_code == 200
    assert len(https_emulator.requests) == 1  # the failed connections carried no request


def test_tls_eof_next_closes_during_the_handshake_then_connections_succeed(https_emulator, ca_bundle):
    https_emulator.tls_eof_next(1)
    assert https_emulator.pending_faults() == [{"kind": "tls_eof", "remaining": 1}]
    with pytest.raises(requests.exceptions.SSLError) as failed:
        list_imports(https_emulator, verify=ca_bundle)
    assert any(isinstance(e, ssl.SSLEOFError) for e in chain(failed.value)), repr(failed.value)
    assert list_imports(https_emulator, verify=ca_bundle).status_code == 200


def test_tls_stall_next_holds_the_handshake_until_released(https_emulator, ca_bundle, background):
    https_emulator.tls_stall_next(1)
    stalled = background(list_imports, https_emulator, verify=ca_bundle)
    wait_for(lambda: silenced(https_emulator) == 1, "the handshake to be held")
    assert list_imports(https_emulator, verify=ca_bundle).status_code == 200  # other connections go on
    assert not stalled.done()
    assert https_emulator.release_silenced() == 1
    with pytest.raises(requests.exceptions.SSLError) as failed:
        stalled.result(DEADLINE)
    assert any(isinstance(e, ssl.SSLEOFError) for e in chain(failed.value)), repr(failed.value)
    wait_for(lambda: silenced(https_emulator) == 0, "the held connection to be let go")


def test_a_stalled_handshake_is_let_go_when_the_client_hangs_up_or_the_emulator_stops(https_emulator, pki):
    https_emulator.tls_stall_next(2)
    sock = socket.create_connection(address(https_emulator.url), timeout=DEADLINE)
    sock.sendall(b"\x16\x03\x01\x00\x05hello")  # a handshake begins, and the client gives up
    wait_for(lambda: silenced(https_emulator) == 1, "the handshake to be held")
    sock.close()
    wait_for(lambda: silenced(https_emulator) == 0, "the hung-up connection to be noticed")
    with socket.create_connection(address(https_emulator.url), timeout=DEADLINE) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x05hello")
        wait_for(lambda: silenced(https_emulator) == 1, "the second handshake to be held")
        stop_with_guard(https_emulator)
        assert read_to_end(sock) == b""
    wait_for(lambda: silenced(https_emulator) == 0, "stop() to let the connection go")


def test_a_handshake_fault_leaves_connections_already_open_alone(https_emulator, ca_bundle):
    with requests.Session() as session:
        assert list_imports(https_emulator, session, verify=ca_bundle).status_code == 200
        https_emulator.tls_reset_next(1)
        assert list_imports(https_emulator, session, verify=ca_bundle).status_code == 200  # kept alive: no handshake
        assert https_emulator.pending_faults() == [{"kind": "tls_reset", "remaining": 1}]
    with pytest.raises(requests.exceptions.ConnectionError):
        list_imports(https_emulator, verify=ca_bundle)  # a new connection: it takes the fault


def test_handshake_faults_through_the_control_endpoint_hit_control_connections_too(https_emulator, ca_bundle):
    answer = requests.post(f"{https_emulator.url}/_emulator/faults", json={"action": "tls_eof_next", "n": 1},
                           verify=ca_bundle, timeout=DEADLINE)
    assert answer.json() == {"ok": True, "result": None}
    with pytest.raises(requests.exceptions.SSLError):  # the handshake comes before the request: no exemption
        requests.get(f"{https_emulator.url}/_emulator/health", verify=ca_bundle, timeout=DEADLINE)
    assert requests.get(f"{https_emulator.url}/_emulator/health", verify=ca_bundle, timeout=DEADLINE).json()["ok"]


def test_plain_http_to_the_https_port_uses_up_no_handshake_fault(https_emulator, ca_bundle):
    https_emulator.tls_reset_next(1)
    assert requests.get(https_emulator.url.replace("https://", "http://"), timeout=DEADLINE).status_code == 400
    assert https_emulator.pending_faults() == [{"kind": "tls_reset", "remaining": 1}]


def test_handshake_faults_are_refused_by_a_plain_http_emulator(emulator):
    for knob in ("tls_reset_next", "tls_eof_next", "tls_stall_next"):
        with pytest.raises(ValueError, match="needs an emulator serving HTTPS"):
            getattr(emulator, knob)(1)
        answer = requests.post(f"{emulator.url}/_emulator/faults", json={"action": knob, "n": 1}, timeout=DEADLINE)
        assert answer.status_code == 400 and "needs an emulator serving HTTPS" in answer.json()["message"]
    assert emulator.pending_faults() == []


def test_handshake_fault_arguments_are_checked_and_clear_faults_forgets_them(https_emulator, ca_bundle):
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError):
            https_emulator.tls_reset_next(bad)
    https_emulator.tls_reset_next(0)  # nothing to queue
    https_emulator.tls_reset_next(1)
    https_emulator.tls_eof_next(2)
    https_emulator.tls_stall_next(3)
    summary = https_emulator.fault_summary()
    assert summary["pending_by_kind"] == {"tls_reset": 1, "tls_eof": 1, "tls_stall": 1}
    assert [f["remaining"] for f in https_emulator.pending_faults()] == [1, 2, 3]
    https_emulator.clear_faults()
    assert https_emulator.pending_faults() == []
    assert list_imports(https_emulator, verify=ca_bundle).status_code == 200


# --------------------------------------------------------------------------------------------------------------
# Every other fault works over HTTPS too
# --------------------------------------------------------------------------------------------------------------
def test_error_faults_over_https(https_emulator, ca_bundle):
    https_emulator.fail_next(1, status=502)
    https_emulator.throttle_next(1, retry_after=3)
    with requests.Session() as http:  # one kept-alive TLS connection, while it lasts
        assert list_imports(https_emulator, http, verify=ca_bundle).status_code == 502
        throttled = list_imports(https_emulator, http, verify=ca_bundle)
        assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "3")
        https_emulator.start_outage(status="reset")
        with pytest.raises(requests.exceptions.ConnectionError):
            list_imports(https_emulator, http, verify=ca_bundle)
        https_emulator.end_outage()
        assert list_imports(https_emulator, http, verify=ca_bundle).status_code == 200


def test_reset_next_over_https_drops_the_connection_after_the_request(https_emulator, ca_bundle):
    https_emulator.reset_next(1, only="import-get")
    with pytest.raises(requests.exceptions.ConnectionError) as failed:
        list_imports(https_emulator, verify=ca_bundle)
    assert not isinstance(failed.value, requests.exceptions.SSLError)  # the handshake had succeeded
    assert [r.status for r in https_emulator.requests] == [None]  # the request arrived; no answer left
    assert list_imports(https_emulator, verify=ca_bundle).status_code == 200


def test_injected_redirect_over_https_points_at_https(https_emulator, ca_bundle):
    https_emulator.redirect_next(1, status=308)
    response = list_imports(https_emulator, verify=ca_bundle, allow_redirects=False, params={"per_page": "2"})
    assert response.status_code == 308
    assert response.headers["Location"] == f"{https_emulator.url}/v2/imports/{OWNER}?per_page=2"


@pytest.mark.parametrize("part", ["headers", "body"])
def test_trickled_answers_over_https_arrive_whole(https_emulator, ca_bundle, part):
    expected = list_imports(https_emulator, verify=ca_bundle)
    https_emulator.trickle_next(1, bytes_per_second=2000, part=part)
    trickled = list_imports(https_emulator, verify=ca_bundle)
    assert (trickled.status_code, trickled.content) == (200, expected.content)
    assert https_emulator.pending_faults() == []


def test_huge_answer_over_https_has_the_announced_size(https_emulator, ca_bundle):
    https_emulator.huge_next(1, megabytes=0.5, shape="json")
    response = list_imports(https_emulator, verify=ca_bundle)
    assert response.status_code == 200
    assert len(response.content) == int(response.headers["Content-Length"]) == 500_000
    assert response.json()["padding"]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_silenced_request_over_https_is_released_or_noticed_when_the_client_hangs_up(https_emulator, pki, version):
    """TLS 1.3 encrypts even the type of a record, so a close_notify is told from data only by reading it."""
    https_emulator.silence_next(3, only="import-get")
    host, _ = address(https_emulator.url)
    request = raw_request(host, f"/v2/imports/{OWNER}", auth(https_emulator))
    with tls_connection(https_emulator, pki, version) as tls:  # released: closed without a byte
        tls.sendall(request)
        wait_for(lambda: silenced(https_emulator) == 1, "the request to be silenced")
        assert https_emulator.release_silenced() == 1
        assert read_to_end(tls) == b""
    wait_for(lambda: silenced(https_emulator) == 0, "the handler to let go")
    tls = tls_connection(https_emulator, pki, version)  # the client closes its socket (TCP FIN, no close_notify)
    tls.sendall(request)
    wait_for(lambda: silenced(https_emulator) == 1, "the second request to be silenced")
    tls.close()
    wait_for(lambda: silenced(https_emulator) == 0, "a FIN under TLS to be noticed")
    tls = tls_connection(https_emulator, pki, version)  # the client sends close_notify and keeps the TCP connection open
    tls.sendall(request)
    wait_for(lambda: silenced(https_emulator) == 1, "the third request to be silenced")
    tls.setblocking(False)
    with pytest.raises(ssl.SSLWantReadError):
        tls.unwrap()  # sends close_notify, would then wait for the server's
    wait_for(lambda: silenced(https_emulator) == 0, "a close_notify to be noticed")
    tls.close()
    assert https_emulator.release_silenced() == 0


def test_stop_ends_kept_alive_tls_connections(https_emulator, ca_bundle):
    with requests.Session() as http:
        assert list_imports(https_emulator, http, verify=ca_bundle).status_code == 200
        stop_with_guard(https_emulator)
        with pytest.raises(requests.exceptions.ConnectionError):
            list_imports(https_emulator, http, verify=ca_bundle)


# --------------------------------------------------------------------------------------------------------------
# Construction and the command line
# --------------------------------------------------------------------------------------------------------------
def test_the_tls_argument_must_be_a_server_context():
    with pytest.raises(ValueError, match="server-side"):
        ScarfEmulator(tls=ssl.create_default_context())
    with pytest.raises(TypeError):
        ScarfEmulator(tls="cert.pem")  # type: ignore[arg-type]
    plain = ScarfEmulator()
    assert plain.tls is None
    plain.close()


def test_cli_serves_https_with_tls_cert_and_key(pki, ca_bundle, tmp_path):
    cert, key = write_cert_files(pki.trusted.issue("127.0.0.1"), tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "scarf_emulator", "--port", "0", "--token", TOKEN, "--owner", OWNER,
         "--tls-cert", cert, "--tls-key", key],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = read_line(process.stdout)
        assert line.startswith("SCARF_EMULATOR_URL=https://127.0.0.1:"), line
        url = line.strip().split("=", 1)[1]
        response = requests.get(f"{url}/v2/imports/{OWNER}", headers={"Authorization": f"Bearer {TOKEN}"},
                                verify=ca_bundle, timeout=DEADLINE)
        assert response.status_code == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(f"{url}/_emulator/health", timeout=DEADLINE)  # the default trust store lacks the test CA
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=DEADLINE) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.communicate(timeout=DEADLINE)


def read_line(stream: Any) -> str:
    """One line from a child's pipe; fail (never hang) when none comes before DEADLINE."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(DEADLINE):
            raise AssertionError("the child printed nothing before the deadline")
        return stream.readline()


@pytest.mark.parametrize(("arguments", "message"), [
    (["--tls-cert", "server.crt"], "--tls-cert and --tls-key go together"),
    (["--tls-key", "server.key"], "--tls-cert and --tls-key go together"),
    (["--tls-cert", "missing.crt", "--tls-key", "missing.key"], "cannot load --tls-cert/--tls-key"),
])
def test_cli_refuses_incomplete_or_unreadable_tls_files(arguments, message, tmp_path):
    finished = subprocess.run([sys.executable, "-m", "scarf_emulator", "--port", "0", *arguments], cwd=ROOT,
                              capture_output=True, text=True, timeout=DEADLINE)
    assert finished.returncode == 2 and finished.stdout == ""
    assert message in finished.stderr


