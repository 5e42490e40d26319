"""The command line: `destination-scarf spec|check|discover|write` (the Airbyte protocol), `preview` (a mapping
preview, preview.py) and the operator commands (`imports`, `import-log`, `abort`).

`write`, the command that runs long and often, starts without importing the Airbyte CDK (about a second
of CPU and 45 MB): it reads raw stdin, echoes states with orjson, filters secrets with the CDK's own
filter (secret_filter.py) and ends a failed sync with a TRACE in the CDK's format (trace.py). The other
commands go through the CDK's `Destination` (destination.py), as before. Both paths share
`write_command`, so `DestinationScarf().run(["write", ...])` behaves exactly like the console script.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from contextlib import closing
from typing import IO

from destination_scarf.airbyte import operators
from destination_scarf.airbyte.check import check_before_write, verify_access
from destination_scarf.airbyte.preview import DEFAULT_LIMIT, DESCRIPTION, preview_command
from destination_scarf.airbyte.protocol import MessageOutput, install_log_handler, read_chunks
from destination_scarf.airbyte.secret_filter import register_config_secrets
from destination_scarf.airbyte.signals import CancelOnSignals
from destination_scarf.airbyte.trace import trace_message
from destination_scarf.config import load_config_file, parse_config
from destination_scarf.errors import ScarfError
from destination_scarf.scarf.client import ScarfClient
from destination_scarf.sync.catalog import load_catalog_file, parse_catalog
from destination_scarf.sync.writer import Writer

logger = logging.getLogger("airbyte")


def build_parser() -> argparse.ArgumentParser:
    """The CDK's commands (spec, check, write), plus `discover`, `preview` and the operator commands."""
    parser = argparse.ArgumentParser(prog="destination-scarf")
    commands = parser.add_subparsers(title="commands", dest="command", required=True)
    commands.add_parser("spec", help="print the connector's configuration specification")
    check = commands.add_parser("check", help="check that the config can be used to import into Scarf")
    check.add_argument("--config", required=True, help="path to the JSON configuration file")
    discover = commands.add_parser("discover", help="print the DESTINATION_CATALOG for data activation")
    discover.add_argument("--config", required=True, help="path to the JSON configuration file")
    write = commands.add_parser("write", help="import Airbyte messages from stdin into Scarf")
    write.add_argument("--config", required=True, help="path to the JSON configuration file")
    write.add_argument("--catalog", required=True, help="path to the configured catalog JSON file")
    preview = commands.add_parser(
        "preview", help="show what the first records of stdin would become in Scarf, without sending anything",
        description=DESCRIPTION)
    preview.add_argument("--config", required=True, help="path to the JSON configuration file")
    preview.add_argument("--catalog", required=True, help="path to the configured catalog JSON file")
    preview.add_argument("--limit", type=_limit, default=DEFAULT_LIMIT, metavar="N",
                         help=f"how many records to preview, across streams (default {DEFAULT_LIMIT})")
    preview.add_argument("--json", action="store_true", help="print NDJSON, one object per record, for scripts")
    operators.add_parsers(commands)
    return parser


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def run(argv: list[str] | None = None) -> None:
    """The console entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    parsed = build_parser().parse_args(args)
    if parsed.command == "write":
        sys.exit(write_command(config_path=parsed.config, catalog_path=parsed.catalog))
    if parsed.command == "preview":
        sys.exit(preview_command(config_path=parsed.config, catalog_path=parsed.catalog, limit=parsed.limit,
                                 as_json=parsed.json))
    if parsed.command in operators.COMMANDS:
        sys.exit(operators.run_operator_command(parsed, operators.read_config(parsed.config)))
    from destination_scarf.airbyte.destination import DestinationScarf  # the CDK, for spec, check and discover

    DestinationScarf().run(args)


def write_command(*, config_path: str, catalog_path: str, stdin: IO[bytes] | None = None) -> int:
    """`write`: states on stdout as they become safe; on failure a TRACE (the last line) and exit code 1."""
    output = MessageOutput()
    install_log_handler(output)
    try:
        _write(config_path=config_path, catalog_path=catalog_path, stdin=stdin or sys.stdin.buffer, output=output)
        return 0
    except Exception as error:
        logger.error("%s", error, exc_info=not isinstance(error, ScarfError))
        output.emit(trace_message(error))  # through the CDK's secret filter, like every LOG
        return 1


def _write(*, config_path: str, catalog_path: str, stdin: IO[bytes], output: MessageOutput) -> None:
    raw_config = load_config_file(config_path)
    register_config_secrets(raw_config)  # before anything can print them
    config = parse_config(raw_config)  # every option, with messages that name the field
    streams = parse_catalog(load_catalog_file(catalog_path))
    check_before_write(config, streams)
    cancelled = threading.Event()
    with CancelOnSignals(cancelled), ScarfClient.from_config(config, cancelled=cancelled) as client:
        verify_access(client)  # a wrong token or owner fails in seconds, before any input is read
        writer = Writer(config=config, streams=streams, client=client, cancelled=cancelled)
        # closing(): however the loop ends, the generator's cleanup runs now: in-flight imports are
        # aborted, spool files removed.
        with closing(writer.write(read_chunks(stdin, idle_seconds=1.0))) as states:
            for state in states:
                output.emit(state)
