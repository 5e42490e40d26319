"""Fixtures for the integration tests; the builders they use live in support.py (TLS ones in tls_support.py)."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import certifi
import pytest

from proxy import ConnectProxy
from scarf_emulator import ScarfEmulator
from support import *  # noqa: F403  (re-exported: tests may import builders from either module)
from support import new_emulator, serve_https_with
from tls_support import Pki, make_pki


@pytest.fixture
def emulator():
    """A fresh emulator on an ephemeral loopback port, serving HTTPS (see `https_by_default`), stopped after the
    test."""
    emu = new_emulator()
    emu.start()
    yield emu
    emu.stop()


# -- HTTPS ---------------------------------------------------------------------------------------------------
#: The environment variables that name the CA bundle a client trusts (requests reads the first two, OpenSSL the
#: third; the connector all three, in this order).
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The session's test CAs, trusted and untrusted, and the server certificates they issue: pki.good(),
    pki.wrong_host(), pki.expired(), pki.untrusted() (each a server ssl.SSLContext; see tls_support.py)."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session", autouse=True)
def https_by_default(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str | None]]:
    """Production Scarf is HTTPS only, so the connector's tests talk HTTPS: `new_emulator()` (and so the
    `emulator` fixture) serves a good certificate from the session's test CA, and the connector trusts that CA
    the standard way, through REQUESTS_CA_BUNDLE, set for the whole session so that every connector run as a
    subprocess inherits it. Yields the CA variables as the machine had them (the emulator's own tests go back
    to them).

    The bundle is the test CA added to the CAs the machine trusted (as a user adds a TLS-inspecting proxy's CA):
    REQUESTS_CA_BUNDLE replaces a client's trust store, and other programs the tests run read it too (pip,
    in test_packaging.py, reaches its index through this machine's own inspecting proxy)."""
    machine = {name: os.environ.get(name) for name in CA_VARIABLES}
    trusted = next((path for path in machine.values() if path and os.path.isfile(path)), None) or certifi.where()
    bundle = tmp_path_factory.mktemp("ca-bundle") / "test-ca-and-machine-cas.pem"
    bundle.write_bytes(Path(pki.ca_bundle).read_bytes() + b"\n" + Path(trusted).read_bytes())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        serve_https_with(pki.good())  # one server context for every emulator: the handshake is all they share
        try:
            yield machine
        finally:
            serve_https_with(None)


@pytest.fixture(scope="session")
def ca_bundle(pki: Pki) -> str:
    """Path of the PEM file with the trusted test CA's certificate, for `verify=` or `REQUESTS_CA_BUNDLE`."""
    return pki.ca_bundle


@pytest.fixture
def start_https_emulator(pki: Pki) -> Iterator[Callable[..., ScarfEmulator]]:
    """start_https_emulator(tls=None, **kwargs): a started emulator with new_emulator()'s accounts, serving
    HTTPS with the server context `tls` (pki.good() when None); kwargs go to ScarfEmulator. Each one is stopped
    after the test."""
    started: list[ScarfEmulator] = []

    def start(tls: ssl.SSLContext | None = None, **kwargs: Any) -> ScarfEmulator:
        emu = new_emulator(tls=tls or pki.good(), **kwargs)
        started.append(emu)
        emu.start()
        return emu

    yield start
    for emu in started:
        emu.stop()


@pytest.fixture
def https_emulator(start_https_emulator: Callable[..., ScarfEmulator]) -> ScarfEmulator:
    """An emulator on HTTPS (emu.url is https://127.0.0.1:PORT) with a good certificate from the trusted test CA:
    clients verify it with the `ca_bundle` fixture's file. (The `emulator` fixture is one too, but in the
    emulator's own tests, which choose their transport.)"""
    return start_https_emulator()


@pytest.fixture
def trust_test_ca(ca_bundle: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """For this test, requests trusts the test CA only, through REQUESTS_CA_BUNDLE (so do subprocesses started
    with os.environ, such as the connector run by support.run_connector); returns the bundle's path."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_bundle)
    return ca_bundle


# -- proxy ---------------------------------------------------------------------------------------------------
@pytest.fixture
def connect_proxy() -> Iterator[ConnectProxy]:
    """A CONNECT proxy (and plain-HTTP forwarder) on loopback, at connect_proxy.url (http://127.0.0.1:PORT);
    its counters say what it carried. Stopped after the test."""
    proxy = ConnectProxy()
    proxy.start()
    yield proxy
    proxy.stop()
