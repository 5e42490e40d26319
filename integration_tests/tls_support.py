"""Test CAs and certificates for the emulator over HTTPS (with trustme), for the TLS fixtures in conftest.py.

Production Scarf is HTTPS only, so the transport is tested over TLS against certificates made here, in
memory, per test session: nothing is checked in and nothing touches the system trust store.

- :class:`LocalCA` is one throwaway CA with its certificate in a PEM file (the bundle a client trusts), and
  issues server certificates as ready-to-serve ``ssl.SSLContext`` objects for ``ScarfEmulator(tls=...)``.
- :class:`Pki` holds the trusted CA and a second, untrusted one, with one method per server certificate
  a test needs: :meth:`~Pki.good` (127.0.0.1, localhost and ::1), :meth:`~Pki.wrong_host`,
  :meth:`~Pki.expired` and :meth:`~Pki.untrusted`.

This module does not import the connector: it is test infrastructure for the emulator and for any client.
"""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

#: What a good server certificate is valid for: every name and address a loopback emulator is reached by.
GOOD_HOSTS = ("127.0.0.1", "localhost", "::1")

#: The only name the wrong-host certificate is valid for (``.invalid`` is reserved, RFC 2606).
WRONG_HOST = "wrong-host.scarf.invalid"


class LocalCA:
    """A throwaway certificate authority and the PEM file of its certificate (the CA bundle for clients)."""

    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self.ca = trustme.CA(organization_name=f"destination-scarf tests: {name}")
        self.bundle_path = str(directory / f"{name}.pem")
        self.ca.cert_pem.write_to_path(self.bundle_path)

    def issue(self, *hosts: str, not_before: datetime.datetime | None = None,
              not_after: datetime.datetime | None = None) -> trustme.LeafCert:
        """A server certificate for ``hosts`` (names or IP addresses), signed by this CA."""
        return self.ca.issue_cert(*hosts, not_before=not_before, not_after=not_after)

    def server_context(self, *hosts: str, not_before: datetime.datetime | None = None,
                       not_after: datetime.datetime | None = None) -> ssl.SSLContext:
        """A server-side context presenting a new certificate for ``hosts`` (see :meth:`issue`)."""
        return server_context_for(self.issue(*hosts, not_before=not_before, not_after=not_after))

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA (and nothing else), verifying host names: for raw sockets."""
        return ssl.create_default_context(cafile=self.bundle_path)


def server_context_for(cert: trustme.LeafCert) -> ssl.SSLContext:
    """A server-side context (TLS 1.2 or newer, HTTP/1.1 through ALPN) presenting ``cert`` and its chain."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    cert.configure_cert(context)
    return context


def write_cert_files(cert: trustme.LeafCert, directory: Path, stem: str = "server") -> tuple[str, str]:
    """Write ``cert`` (with its chain) and its private key as PEM files; return (cert path, key path),
    e.g. for ``python -m scarf_emulator --tls-cert CERT --tls-key KEY``."""
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    return str(cert_path), str(key_path)


@dataclass(frozen=True)
class Pki:
    """The trusted test CA (whose bundle clients are given) and an untrusted one (whose bundle nobody is).

    Each method issues a fresh certificate and returns a server context for ``ScarfEmulator(tls=...)``.
    """

    trusted: LocalCA
    untrusted_ca: LocalCA

    @property
    def ca_bundle(self) -> str:
        """Path of the PEM file with the trusted CA's certificate: ``verify=`` or ``REQUESTS_CA_BUNDLE``."""
        return self.trusted.bundle_path

    def good(self) -> ssl.SSLContext:
        """Valid now, for 127.0.0.1, localhost and ::1, from the trusted CA."""
        return self.trusted.server_context(*GOOD_HOSTS)

    def wrong_host(self) -> ssl.SSLContext:
        """From the trusted CA and valid now, but only for :data:`WRONG_HOST`."""
        return self.trusted.server_context(WRONG_HOST)

    def expired(self) -> ssl.SSLContext:
        """For the good hosts, from the trusted CA, but expired a day ago (valid for the 30 days before)."""
        now = datetime.datetime.now(datetime.timezone.utc)
        return self.trusted.server_context(*GOOD_HOSTS, not_before=now - datetime.timedelta(days=31),
                                           not_after=now - datetime.timedelta(days=1))

    def untrusted(self) -> ssl.SSLContext:
        """For the good hosts and valid now, but from the second CA, which no client trusts."""
        return self.untrusted_ca.server_context(*GOOD_HOSTS)


def make_pki(directory: Path) -> Pki:
    """Two fresh CAs, their bundles written into ``directory``."""
    return Pki(trusted=LocalCA(directory, "trusted-ca"), untrusted_ca=LocalCA(directory, "untrusted-ca"))
