"""Fixtures for the integration tests; the builders they use live in support.py (TLS ones in tls_support.py)."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from proxy import ConnectProxy
from scarf_emulator import ScarfEmulator
from support import *  # noqa: F403  (re-exported: tests may import builders from either module)
from support import new_emulator
from tls_support import Pki, make_pki


@pytest.fixture
def emulator():
    """A fresh emulator on an ephemeral loopback port, stopped after the test."""
    emu = new_emulator()
    emu.start()
    yield emu
    emu.stop()


# -- HTTPS ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """The session's test CAs, trusted and untrusted, and the server certificates they issue: pki.good(),
    pki.wrong_host(), pki.expired(), pki.untrusted() (each a server ssl.SSLContext; see tls_support.py)."""
    return make_pki(tmp_path_factory.mktemp("pki"))


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
    """Like `emulator`, but on HTTPS (emu.url is https://127.0.0.1:PORT) with a good certificate from the
    trusted test CA: clients verify it with the `ca_bundle` fixture's file."""
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
