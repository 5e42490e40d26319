"""Server-side TLS for the emulator: a context from PEM files, for ``ScarfEmulator(tls=...)``.

Production Scarf is HTTPS only, so the connector's transport must be tested over TLS too.
Tests usually build the context from an in-memory test CA (``integration_tests/tls_support.py``,
with trustme); the command line (``--tls-cert FILE --tls-key FILE``) goes through
:func:`server_context`.  Standard library only.
"""

from __future__ import annotations

import ssl


def server_context(cert_file: str, key_file: str | None = None) -> ssl.SSLContext:
    """A server-side context presenting the certificate chain in ``cert_file`` (PEM: the server's
    certificate first, then any intermediates) with its private key from ``key_file`` (or from
    ``cert_file`` when None).  TLS 1.2 or newer, HTTP/1.1 offered through ALPN."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["http/1.1"])
    return context
