"""Local emulator of Scarf's Event Import API, for the destination-scarf tests, demo and benchmark.

It speaks the endpoints of Scarf's OpenAPI spec over real HTTP, processes imports
asynchronously with Scarf's per-line rules, stores accepted events in SQLite keyed by
``$unique_id``, and can misbehave on request (5xx, 429, dropped connections, full slots,
slowness, outages, flaky answers, silent or trickling servers, huge bodies, redirects, short
``done`` counts, odd status words, revoked tokens, an imports list that leaves imports out, cuts
pages short, ignores ``per_page`` or lags behind; see faults.py).  Imports can take a set time
whatever their size (``import_seconds``), and ``call_counts()`` says what a client's calls were,
by kind and per import.  Standard library only.

    from scarf_emulator import ScarfEmulator
    with ScarfEmulator(tokens={"t": {"acme"}}, packages={"acme": ["pkg-1"]}) as emu:
        ...  # talk to emu.url

    # packages and pixels with names (and package types):
    ScarfEmulator(packages={"acme": [{"id": "pkg-2", "name": "right-pad", "type": "npm"}]},
                  tracking_pixels={"acme": [{"id": "px-1", "name": "docs"}]})

HTTPS: pass a server-side ``ssl.SSLContext`` as ``ScarfEmulator(..., tls=context)`` (see
emulator.py; ``scarf_emulator.tls.server_context(cert, key)`` builds one from PEM files) and
``start()`` returns an ``https://`` URL; TLS handshake faults (``tls_reset_next``,
``tls_eof_next``, ``tls_stall_next``) then apply too.  Plain HTTP is the default.

Run ``python -m scarf_emulator --help`` for the subprocess form (``--tls-cert``/``--tls-key``
for HTTPS).
"""

__version__ = "0.1.0"

from .emulator import DEFAULT_MAX_ACTIVE_IMPORTS, DEFAULT_TIME_WINDOW, ScarfEmulator  # noqa: E402
from .import_registry import ABORT_FINISHED_IMPORT_STATUS  # noqa: E402
from .recording import ImportSeen, RequestRecord  # noqa: E402

__all__ = [
    "ABORT_FINISHED_IMPORT_STATUS",
    "DEFAULT_MAX_ACTIVE_IMPORTS",
    "DEFAULT_TIME_WINDOW",
    "ImportSeen",
    "RequestRecord",
    "ScarfEmulator",
    "__version__",
]
