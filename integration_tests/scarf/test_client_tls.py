"""The client against every TLS and network fault, on real servers the tests start: the HTTPS emulator with the
session's test certificates (good, wrong host, expired, from an untrusted CA), the plain emulator for https://
to a plain port, a closed port, an `.invalid` host name, the emulator's reset and handshake faults, and the
CONNECT proxy.

What the user must fix (a certificate that is not trusted, https:// to a plain port) is a ScarfConfigError at
the first attempt, naming the host and what to do; a handshake cut off is retried like any dropped connection;
a failure that persists ends in a ScarfTransientError that names its cause. Attempts are counted, never timed:
by the waits the client asked for (an injected `sleep`), its retry warnings, the requests the emulator
recorded and the tunnels the proxy opened.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from airbyte_cdk.models import FailureType

from destination_scarf.errors import ScarfConfigError, ScarfTransientError, SyncCancelled
from destination_scarf.scarf.client import ScarfClient
from integration_tests.scarf.test_client import TO_PACKAGE, Sleeps, closed_port, events, ndjson_gz, requests_of
from integration_tests.scarf.test_client_bounds import ScriptedServer, retry_warnings
from proxy import ConnectProxy
from scarf_emulator import ScarfEmulator
from support import FAST_RETRY, OWNER, TOKEN, new_plain_emulator, run_with_hang_guard, stated_attempts, wait_for
from tls_support import Pki

#: A host name that never resolves (RFC 2606 reserves .invalid).
UNRESOLVABLE = "scarf-api.destination-scarf.invalid"
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")

#: Each certificate the connector must refuse, and OpenSSL's words for why (they reach the message).
BAD_CERTIFICATES = {
    "untrusted": "unable to get local issuer certificate",
    "wrong_host": "IP address mismatch",
    "expired": "certificate has expired",
}


def client_for(url: str, sleeps: Sleeps, **kwargs: Any) -> ScarfClient:
    """A client with fast retries whose waits are recorded instead of waited (one wait per retry)."""
    return ScarfClient(api_url=url, api_token=TOKEN, owner=OWNER, retry=kwargs.pop("retry", FAST_RETRY),
                       sleep=sleeps, rand=lambda: 1.0, **kwargs)


def host_of(url: str) -> str:
    """host:port of a URL, as the messages name it."""
    return url.split("://", 1)[1]


def call(client: ScarfClient, how: str) -> Any:
    """One idempotent GET, or one import upload that is safe to re-send (so both may be retried)."""
    if how == "get":
        return client.list_imports()
    return client.import_events(target=TO_PACKAGE, body=ndjson_gz(events(2, "tls")), safe_to_resend=True)


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy settings from the machine: each test sets exactly the ones it means."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


@pytest.fixture
def via_proxy(connect_proxy: ConnectProxy, no_proxy_env: pytest.MonkeyPatch) -> Iterator[ConnectProxy]:
    """HTTPS_PROXY points at the tests' CONNECT proxy, which counts the tunnels (one per connection attempt)."""
    for name in ("HTTPS_PROXY", "https_proxy"):
        no_proxy_env.setenv(name, connect_proxy.url)
    yield connect_proxy


# ----- what the user must fix: a config error at the first attempt ----------------------------------


@pytest.mark.parametrize("how", ["get", "upload"])
@pytest.mark.parametrize("certificate", list(BAD_CERTIFICATES))
def test_a_certificate_that_cannot_be_trusted_is_a_config_error_at_the_first_attempt(start_https_emulator, pki,
                                                                                     certificate, how):
    emu = start_https_emulator(getattr(pki, certificate)())
    sleeps = Sleeps()
    with retry_warnings() as warnings, client_for(emu.url, sleeps) as client, \
            pytest.raises(ScarfConfigError) as caught:
        call(client, how)
    message = str(caught.value)
    assert caught.value.failure_type == FailureType.config_error
    assert f"TLS certificate of {host_of(emu.url)} was not accepted ({BAD_CERTIFICATES[certificate]}" in message
    assert "REQUESTS_CA_BUNDLE" in message and "SSL_CERT_FILE" in message and "api_url" in message, message
    assert (sleeps.waits, warnings) == ([], []), "retried: retrying cannot fix a certificate"
    assert emu.requests == []  # refused in the handshake: no request was ever sent


@pytest.mark.parametrize("how", ["get", "upload"])
def test_https_to_a_plain_http_port_is_a_config_error_at_the_first_attempt(how):
    with new_plain_emulator() as plain:  # plain HTTP on purpose: the fault under test is TLS to a plain port
        url = plain.url.replace("http://", "https://")
        sleeps = Sleeps()
        with retry_warnings() as warnings, client_for(url, sleeps) as client, \
                pytest.raises(ScarfConfigError) as caught:
            call(client, how)
        message = str(caught.value)
        assert f"{host_of(url)} does not speak TLS" in message and "api_url" in message, message
        assert (sleeps.waits, warnings) == ([], [])
        assert plain.requests == []


@pytest.mark.parametrize("certificate", [*BAD_CERTIFICATES, "plain port"])
def test_through_an_https_proxy_a_bad_certificate_is_still_a_config_error_after_one_tunnel(start_https_emulator,
                                                                                            pki, via_proxy,
                                                                                            certificate):
    """TLS runs end to end through a CONNECT tunnel: the proxy opens exactly one, so there was one attempt."""
    plain = None
    if certificate == "plain port":
        plain = new_plain_emulator()  # plain HTTP on purpose: the fault under test is TLS to a plain port
        url = plain.start().replace("http://", "https://")
    else:
        url = start_https_emulator(getattr(pki, certificate)()).url
    try:
        sleeps = Sleeps()
        with client_for(url, sleeps) as client, pytest.raises(ScarfConfigError) as caught:
            client.list_imports()
        assert host_of(url) in str(caught.value) and "api_url" in str(caught.value)
        assert (via_proxy.tunnels, via_proxy.targets) == (1, [f"CONNECT {host_of(url)}"])
        assert sleeps.waits == []
    finally:
        if plain is not None:
            plain.stop()


# ----- a handshake cut off: retried, and the call succeeds -----------------------------------------


@pytest.mark.parametrize("how", ["get", "upload"])
@pytest.mark.parametrize(("fault", "named"), [("tls_eof_next", "TLS connection"), ("tls_reset_next", "reset")])
def test_a_handshake_cut_off_is_retried_and_the_call_succeeds(emulator, fault, named, how):
    getattr(emulator, fault)(2)
    sleeps = Sleeps()
    with retry_warnings() as warnings, client_for(emulator.url, sleeps) as client:
        call(client, how)
    assert len(sleeps.waits) == 2 and len(warnings) == 2, warnings
    assert all(named in warning for warning in warnings), warnings
    assert emulator.pending_faults() == []
    assert len(requests_of(emulator)) == 1  # the failed handshakes carried no request
    if how == "upload":
        assert len(emulator.imports(OWNER)) == 1


def test_a_handshake_cut_off_through_the_proxy_is_retried_too(emulator, via_proxy):
    emulator.tls_reset_next(1)
    sleeps = Sleeps()
    with client_for(emulator.url, sleeps) as client:
        assert client.list_imports() == []
    assert len(sleeps.waits) == 1
    assert via_proxy.tunnels == 2  # one tunnel per attempt


# ----- failures that persist: transient, and named -------------------------------------------------


def _refused() -> str:
    return f"https://127.0.0.1:{closed_port()}"


@pytest.mark.parametrize(("fault", "named"), [
    ("refused", "was refused"),
    ("dns", "could not be resolved (DNS)"),
    ("tls_reset_next", "was reset"),
    ("reset_next", "was reset"),
    ("tls_eof_next", "the TLS connection to"),
])
def test_a_connection_failure_that_persists_is_transient_and_names_its_cause(emulator, fault, named):
    if fault == "refused":
        url = _refused()
    elif fault == "dns":
        url = f"https://{UNRESOLVABLE}"
    else:
        url = emulator.url
        getattr(emulator, fault)(100)
    sleeps = Sleeps()
    with client_for(url, sleeps) as client, pytest.raises(ScarfTransientError) as caught:
        client.list_imports()
    message = str(caught.value)
    assert type(caught.value) is ScarfTransientError
    assert named in message and host_of(url) in message, message
    assert "within" not in message, "a failure that is not a timeout is named as one"
    attempts, _ = stated_attempts(message)
    assert attempts == len(sleeps.waits) + 1 >= 2, "not retried"
    if fault != "dns":  # (a resolver that drops queries takes seconds of the budget, so fewer may fit)
        assert attempts == FAST_RETRY.max_attempts
    if fault in ("tls_reset_next", "tls_eof_next"):
        assert requests_of(emulator) == []
    elif fault == "reset_next":
        assert len(requests_of(emulator)) == attempts


@pytest.mark.parametrize("fault", ["silence_next", "tls_stall_next"])
def test_a_server_that_never_answers_ends_in_a_transient_error_naming_the_timeout(emulator, fault):
    """A silent answer runs into the read timeout, a held handshake into the connect timeout: the message says
    which limit ended it, and states the very number the client was given."""
    getattr(emulator, fault)(100)
    sleeps = Sleeps()
    with client_for(emulator.url, sleeps, connect_timeout=0.3, read_timeout=0.3) as client, \
            pytest.raises(ScarfTransientError) as caught:
        run_with_hang_guard(client.list_imports, "a call to a server that never answers")
    message = str(caught.value)
    assert re.search(r"no (connection to \S+|answer) within 0\.3 s", message), message
    attempts, _ = stated_attempts(message)
    assert attempts == len(sleeps.waits) + 1 >= 2


# ----- the CA bundle, the standard way --------------------------------------------------------------


@pytest.mark.parametrize("variable", CA_VARIABLES)
def test_each_standard_variable_alone_makes_the_test_ca_trusted(emulator, ca_bundle, monkeypatch, variable):
    for name in CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, ca_bundle)
    with client_for(emulator.url, Sleeps()) as client:
        assert client.list_imports() == []


def test_without_any_of_them_the_test_ca_is_not_trusted(emulator, monkeypatch):
    """The control for the test above: certifi's public CAs do not know the test CA."""
    for name in CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with client_for(emulator.url, Sleeps()) as client, pytest.raises(ScarfConfigError) as caught:
        client.list_imports()
    assert "unable to get local issuer certificate" in str(caught.value)


def test_requests_ca_bundle_wins_over_ssl_cert_file(emulator, ca_bundle, pki: Pki, monkeypatch):
    """The order the connector reads them in (requests' order, then OpenSSL's): one CA file, the first one set."""
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki.untrusted_ca.bundle_path)
    monkeypatch.setenv("SSL_CERT_FILE", ca_bundle)
    with client_for(emulator.url, Sleeps()) as client, pytest.raises(ScarfConfigError):
        client.list_imports()


def test_the_proxy_carries_a_whole_call_and_the_emulator_sees_it(emulator: ScarfEmulator, via_proxy):
    with client_for(emulator.url, Sleeps()) as client:
        assert client.list_imports() == []
    assert via_proxy.targets == [f"CONNECT {host_of(emulator.url)}"]
    assert [r.path for r in requests_of(emulator)] == [f"/v2/imports/{OWNER}"]


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"])
@pytest.mark.parametrize("problem", ["missing", "not a certificate", "empty"])
def test_a_ca_bundle_that_cannot_be_loaded_is_a_config_error_naming_the_variable(emulator, tmp_path, monkeypatch,
                                                                                 variable, problem):
    """A typo in the path, or a file that holds no PEM certificate: the user must fix the variable, so retrying
    (for an upload's whole budget) cannot help, and a not-retryable upload is not left "uncertain"."""
    path = tmp_path / "corporate-ca.pem"
    if problem != "missing":
        path.write_text("" if problem == "empty" else "this is not a certificate\n")
    for name in CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, str(path))
    sleeps = Sleeps()
    for how in ("get", "upload not safe to re-send"):
        with client_for(emulator.url, sleeps) as client, pytest.raises(ScarfConfigError) as caught:
            if how == "get":
                client.list_imports()
            else:
                client.import_events(target=TO_PACKAGE, body=ndjson_gz(events(1, "ca")), safe_to_resend=False)
        message = str(caught.value)
        assert f"{variable} names {path}" in message, message
        assert ("does not exist" if problem == "missing" else "holds no certificate") in message, message
    assert sleeps.waits == []
    assert emulator.requests == []


def test_a_ca_bundle_variable_does_not_matter_for_plain_http_to_loopback(tmp_path, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with new_plain_emulator() as plain, client_for(plain.url, Sleeps()) as client:  # plain HTTP: no TLS at all
        assert client.list_imports() == []


# ----- what never reached Scarf, and proxies -----------------------------------------------------------


@pytest.mark.parametrize("fault", ["tls_eof_next", "tls_reset_next"])
def test_an_upload_cut_off_in_the_handshake_never_reached_scarf_so_it_is_re_sent_even_without_unique_ids(emulator,
                                                                                                        fault):
    """No byte of the request is sent before the handshake completes, so re-sending cannot count an event twice:
    like a refused connection, and unlike a reset after the request (test_client.py: UncertainImport)."""
    getattr(emulator, fault)(1)
    sleeps = Sleeps()
    with client_for(emulator.url, sleeps) as client:
        created = client.import_events(target=TO_PACKAGE, body=ndjson_gz(events(2, "handshake")),
                                       safe_to_resend=False)
    assert len(sleeps.waits) == 1
    assert len(requests_of(emulator, "POST")) == 1
    assert [i["id"] for i in emulator.imports(OWNER)] == [created.id]


@pytest.mark.parametrize(("proxy", "named"), [
    ("refused", "refused the connection"),
    ("dns", "could not be resolved (DNS"),
])
def test_a_proxy_that_cannot_be_reached_is_named_and_scarf_is_not_blamed(emulator, no_proxy_env, proxy, named):
    address = f"127.0.0.1:{closed_port()}" if proxy == "refused" else "proxy.destination-scarf.invalid:3128"
    no_proxy_env.setenv("HTTPS_PROXY", f"http://someone:proxy-secret@{address}")
    sleeps = Sleeps()
    with client_for(emulator.url, sleeps) as client, pytest.raises(ScarfTransientError) as caught:
        client.list_imports()
    message = str(caught.value)
    assert named in message and f"http://{address}" in message and "HTTPS_PROXY" in message, message
    scarf = host_of(emulator.url)
    assert f"the connection to {scarf} was refused" not in message and f"host name {scarf}" not in message, message
    assert "proxy-secret" not in message and "someone" not in message  # the proxy's credentials are never shown
    assert len(sleeps.waits) == FAST_RETRY.max_attempts - 1
    assert emulator.requests == []


def test_a_proxy_that_cannot_open_the_tunnel_is_named_with_its_answer(via_proxy):
    url = _refused()
    with client_for(url, Sleeps()) as client, pytest.raises(ScarfTransientError) as caught:
        client.list_imports()
    message = str(caught.value)
    assert f"the proxy {via_proxy.url} could not open a tunnel to {host_of(url)} (502 Bad Gateway)" in message
    assert via_proxy.refused == FAST_RETRY.max_attempts


def test_a_proxy_that_asks_for_credentials_is_a_config_error(no_proxy_env, emulator):
    proxy = ScriptedServer(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n"
                           b"Content-Length: 0\r\n\r\n")
    try:
        no_proxy_env.setenv("HTTPS_PROXY", proxy.url)
        sleeps = Sleeps()
        with client_for(emulator.url, sleeps) as client, pytest.raises(ScarfConfigError) as caught:
            client.list_imports()
        message = str(caught.value)
        assert f"the proxy {proxy.url} refused the tunnel to {host_of(emulator.url)}" in message, message
        assert "407" in message and "HTTPS_PROXY" in message
        assert (sleeps.waits, proxy.requests) == ([], 1)
    finally:
        proxy.close()


def test_a_reset_after_the_request_went_through_the_tunnel_is_not_the_proxys_fault(emulator, via_proxy):
    """urllib3 reports any failure of a tunnelled connection it has closed as "Unable to connect to proxy"; the
    request did arrive (the emulator saw it), so the message names the connection to Scarf's host."""
    emulator.reset_next(100)
    with client_for(emulator.url, Sleeps()) as client, pytest.raises(ScarfTransientError) as caught:
        client.list_imports()
    message = str(caught.value)
    assert f"the connection to {host_of(emulator.url)} was reset" in message and "proxy" not in message, message
    assert len(requests_of(emulator)) == FAST_RETRY.max_attempts


def test_a_dns_lookup_that_fails_after_the_deadline_is_still_named_dns(monkeypatch):
    """A lookup blocks its thread (the watchdog has no socket to shut yet), and a resolver that drops queries
    takes its own seconds: when it fails after the exchange's deadline, the failure is still the lookup's, not
    "no complete answer". The machine's resolver stands in with a slow one for this one name; the rest is real."""
    slow_name = "slow-resolver.destination-scarf.invalid"
    real_getaddrinfo = socket.getaddrinfo

    def slow_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == slow_name:
            time.sleep(0.4)  # past the 0.2 s the exchange is given
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_getaddrinfo)
    sleeps = Sleeps()
    with client_for(f"https://{slow_name}", sleeps, exchange_timeout=0.2,
                    retry=dataclasses.replace(FAST_RETRY, max_attempts=2)) as client, \
            pytest.raises(ScarfTransientError) as caught:
        client.list_imports()
    message = str(caught.value)
    assert f"the host name {slow_name} could not be resolved (DNS)" in message, message
    assert "answer within" not in message


def test_a_cancel_cuts_a_hung_tls_handshake_short(emulator):
    """The server takes the connection and never answers the ClientHello. With a connect timeout of an hour, only
    the cancel can end the call: the watchdog knows the connection from the moment it starts connecting, and
    shuts down the descriptor the TLS socket being made has taken over."""
    import threading

    emulator.tls_stall_next(1)
    cancelled = threading.Event()
    client = ScarfClient(api_url=emulator.url, api_token=TOKEN, owner=OWNER, retry=FAST_RETRY, cancelled=cancelled,
                         connect_timeout=3600, read_timeout=3600, exchange_timeout=3600)

    def cancel_once_stalled() -> None:
        wait_for(lambda: emulator.fault_summary()["silenced_connections"] == 1, "the handshake to hang")
        cancelled.set()

    helper = threading.Thread(target=cancel_once_stalled, daemon=True)
    helper.start()
    with client, pytest.raises(SyncCancelled) as caught:
        run_with_hang_guard(lambda: client.list_imports(budget_seconds=3600), "a call in a hung TLS handshake")
    assert "cancelled while listing imports" in str(caught.value)
    assert emulator.requests == []  # the handshake never finished: no request reached the server
    helper.join(5)
