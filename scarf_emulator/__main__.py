"""Command line entry point: run the emulator as a subprocess for the demo and the benchmark.

The parent learns the address from exactly one stdout line, ``SCARF_EMULATOR_URL=...``,
so with ``--port 0`` there is no port race.  Everything else goes to stderr.

With ``--tls-cert FILE --tls-key FILE`` (PEM) it serves HTTPS and the URL is ``https://...``;
clients must trust the certificate's issuer (``REQUESTS_CA_BUNDLE=ca.pem``, for requests).
"""

from __future__ import annotations

import argparse
import logging
import signal
import ssl
import sys
import threading
from datetime import timedelta

from .accounts import PACKAGE_TYPES
from .emulator import DEFAULT_MAX_ACTIVE_IMPORTS, ScarfEmulator
from .tls import server_context


def package_arg(value: str) -> dict[str, str]:
    """``ID``, ``ID=NAME`` or ``ID=NAME:TYPE``: the type is after the last colon, so a name with a
    colon in it needs the type spelled out (``ID=a:b:file``)."""
    package_id, has_name, rest = value.partition("=")
    if not package_id or (has_name and not rest):
        raise argparse.ArgumentTypeError(f"expected ID, ID=NAME or ID=NAME:TYPE, got {value!r}")
    if not has_name:
        return {"id": package_id}
    name, has_type, package_type = rest.rpartition(":")
    if not has_type:
        return {"id": package_id, "name": rest}
    if not name or package_type not in PACKAGE_TYPES:
        raise argparse.ArgumentTypeError(
            f"expected ID=NAME:TYPE with TYPE one of {', '.join(sorted(PACKAGE_TYPES))}, got {value!r} "
            "(a name with a colon needs its type: ID=NAME:file)"
        )
    return {"id": package_id, "name": name, "type": package_type}


def pixel_arg(value: str) -> dict[str, str]:
    """``ID`` or ``ID=NAME`` (everything after the first ``=`` is the name)."""
    pixel_id, has_name, name = value.partition("=")
    if not pixel_id or (has_name and not name):
        raise argparse.ArgumentTypeError(f"expected ID or ID=NAME, got {value!r}")
    return {"id": pixel_id, "name": name} if has_name else {"id": pixel_id}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scarf_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--owner", default="acme", help="owner the token, packages and pixels belong to")
    parser.add_argument("--token", action="append", default=None, help="bearer token for --owner (repeatable; default test-token)")
    parser.add_argument("--package", action="append", default=[], type=package_arg, metavar="ID[=NAME[:TYPE]]",
                        help="package of --owner (repeatable): its id, optionally its name and type "
                             f"({', '.join(sorted(PACKAGE_TYPES))}; default file); the name defaults to the id")
    parser.add_argument("--tracking-pixel", action="append", default=[], type=pixel_arg, metavar="ID[=NAME]",
                        help="tracking pixel of --owner (repeatable): its id, optionally its name")
    parser.add_argument("--db", default=":memory:", help="SQLite file for stored events (default in memory)")
    parser.add_argument("--rate", type=float, default=None, help="events per second per import (default unthrottled)")
    parser.add_argument("--import-seconds", type=float, default=None,
                        help="every import takes this many seconds whatever its size (default: as --rate allows)")
    parser.add_argument("--no-store", action="store_true", help="check and count events without storing them")
    parser.add_argument("--max-active", type=int, default=DEFAULT_MAX_ACTIVE_IMPORTS, help="active imports per owner")
    parser.add_argument("--time-window-days", type=float, default=7.0, help="oldest accepted $time, in days before the import")
    parser.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this PEM certificate (chain); needs --tls-key")
    parser.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    tls = None
    if args.tls_cert is not None:
        try:
            tls = server_context(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            parser.error(f"cannot load --tls-cert/--tls-key: {exc}")
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        emulator = ScarfEmulator(
            tokens={token: {args.owner} for token in (args.token or ["test-token"])},
            packages={args.owner: args.package},
            tracking_pixels={args.owner: args.tracking_pixel},
            db_path=args.db,
            events_per_second=args.rate,
            import_seconds=args.import_seconds,
            max_active_imports=args.max_active,
            time_window=timedelta(days=args.time_window_days),
            store_events=not args.no_store,
            host=args.host,
            port=args.port,
            tls=tls,
        )
    except ValueError as exc:  # e.g. two --package of one type with the same name
        parser.error(str(exc))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    url = emulator.start()
    print(f"SCARF_EMULATOR_URL={url}", flush=True)
    try:
        while not stop.wait(0.2):
            pass
    finally:
        emulator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
