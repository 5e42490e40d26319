"""The command line: every command of `destination-scarf` is dispatched here.

    spec | check | discover | write    the Airbyte protocol: messages on stdout, a TRACE and exit code 1 on failure
    preview                            what the first records of stdin would become, without sending anything
    imports | import-log | abort       operator commands, for people and scripts

`write`, the command that runs long and often, runs without importing the Airbyte CDK (about a second
of CPU and 45 MB): it reads raw stdin, echoes states with orjson, filters secrets with the CDK's own
filter and ends a failed sync with a TRACE in the CDK's format (protocol.py). Only `check` imports the
CDK, for its CONNECTION_STATUS model. The CDK's `Destination` class (destination.py) is a thin adapter
onto the same functions, so `DestinationScarf().run([...])` behaves exactly like the console script.

Every sync, the console's, the CDK's programmatic one and `preview`'s, is opened by `open_sync`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Callable, Generator, Iterable, Mapping, MutableMapping
from typing import IO, Any, NoReturn

from destination_scarf.airbyte import operators
from destination_scarf.airbyte.check import check_before_write, preflight, run_check
from destination_scarf.airbyte.discover import destination_catalog_message
from destination_scarf.airbyte.preview import DEFAULT_LIMIT, DESCRIPTION, preview
from destination_scarf.airbyte.protocol import MessageOutput, install_log_handler, log_to, read_chunks, trace_message
from destination_scarf.airbyte.secret_filter import filter_secrets, register_config_secrets
from destination_scarf.airbyte.signals import CancelOnSignals
from destination_scarf.config import ScarfConfig, load_config_file, parse_config
from destination_scarf.errors import ScarfConfigError, ScarfError
from destination_scarf.options import VERSION, spec
from destination_scarf.scarf.client import ScarfClient
from destination_scarf.sync.artifact_names import names_for_sync
from destination_scarf.sync.catalog import StreamInfo, load_catalog_file, parse_catalog
from destination_scarf.sync.writer import Writer

logger = logging.getLogger("airbyte")


def build_parser() -> argparse.ArgumentParser:
    """The Airbyte protocol's commands (spec, check, discover, write), `preview` and the operator commands."""
    parser = argparse.ArgumentParser(prog="destination-scarf")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}",
                        help="print the connector's version and exit")
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


def run(argv: list[str] | None = None) -> NoReturn:
    """The console entry point: runs the command and exits with its code.

    A stdout that closed under a protocol command (its reader went away) ends it with exit code 1, not with a
    BrokenPipeError traceback or the interpreter's "Exception ignored" as it flushes stdout on its way out.
    (The commands for people treat a reader that stops early as a normal end: see `_for_a_reader`.)
    """
    try:
        code = main(sys.argv[1:] if argv is None else argv)
        sys.stdout.flush()  # a reader that went away shows here, not in the interpreter's last flush
    except BrokenPipeError:
        _discard_stdout()
        code = 1
    sys.exit(code)


def main(argv: list[str]) -> int:
    """Run one command; returns the process exit code."""
    parsed = build_parser().parse_args(argv)
    if parsed.command in operators.COMMANDS:
        return _for_a_reader(lambda: operators.run_operator_command(parsed, operators.read_config(parsed.config)))
    if parsed.command == "preview":
        return _for_a_reader(lambda: _preview(parsed))
    return _protocol_command(parsed)


def _for_a_reader(command: Callable[[], int]) -> int:
    """Run a command whose output is for people and scripts. A reader that has seen enough and hangs up
    (`destination-scarf imports --json | head`) ends it quietly with exit code 0, as it ends `preview`: the
    rest of the answer is dropped, and nothing is said about it."""
    try:
        code = command()
        sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()
        return 0
    return code


def _discard_stdout() -> None:
    """Point stdout's file descriptor at /dev/null, so that what is still buffered for it goes nowhere quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _preview(parsed: argparse.Namespace) -> int:
    """`preview`: the report on stdout; a config or catalog it cannot use on stderr with exit code 1."""
    log_to(sys.stderr)  # nothing here should log, but whatever does goes to stderr, never into the report
    try:
        config, streams = open_sync(load_config_file(parsed.config), load_catalog_file(parsed.catalog))
    except ScarfError as error:
        print(f"error: {filter_secrets(str(error))}", file=sys.stderr)
        return 1
    preview(config=config, streams=streams, limit=parsed.limit, as_json=parsed.json, stdin=sys.stdin.buffer,
            out=sys.stdout.buffer)
    return 0


def _protocol_command(parsed: argparse.Namespace) -> int:
    """spec, check, discover or write: protocol messages on stdout; on failure a TRACE (the last line), exit 1."""
    output = MessageOutput()
    install_log_handler(output)
    try:
        if parsed.command == "spec":
            output.emit({"type": "SPEC", "spec": spec()})
        elif parsed.command == "check":
            output.emit(_check_message(parsed.config))
        elif parsed.command == "discover":
            config = parse_config(_load_config(parsed.config))
            output.emit(destination_catalog_message(config.target))
        else:
            _write(config_path=parsed.config, catalog_path=parsed.catalog, stdin=sys.stdin.buffer, output=output)
        return 0
    except Exception as error:
        output.emit(trace_message(error))  # through the CDK's secret filter, like every LOG
        return 1


def _load_config(path: str) -> MutableMapping[str, Any]:
    """The config file, its secrets registered with the log filter before anything can print them."""
    raw_config = load_config_file(path)
    register_config_secrets(raw_config)
    return raw_config


def _check_message(config_path: str) -> dict[str, Any]:
    """`check` validates with our own config parser, whose messages name the field and the fix.

    (The CDK would validate against spec.json first, and a JSON-schema message such as
    "'x' does not match '^[0-9a-f]...'" names neither.) A config file it cannot read is answered like any
    other config it cannot use: a FAILED status that names the file and what to give instead, not a TRACE.
    """
    from airbyte_cdk.models import (  # check's status is the CDK's
        AirbyteConnectionStatus,
        AirbyteMessage,
        AirbyteMessageSerializer,
        Status,
        Type,
    )

    try:
        raw_config = _load_config(config_path)
    except ScarfConfigError as error:
        status = AirbyteConnectionStatus(status=Status.FAILED, message=str(error))
    else:
        status = run_check(raw_config, logger=logger)
    return dict(AirbyteMessageSerializer.dump(AirbyteMessage(type=Type.CONNECTION_STATUS, connectionStatus=status)))


def open_sync(raw_config: Mapping[str, Any], raw_catalog: Any) -> tuple[ScarfConfig, list[StreamInfo]]:
    """What every sync starts with (the console's `write`, the CDK's programmatic write, `preview`): the config's
    secrets registered before anything can print them, the config and catalog parsed, and what a sync refuses
    before any call to Scarf checked."""
    register_config_secrets(raw_config)
    config = parse_config(raw_config)  # every option, with messages that name the field
    streams = parse_catalog(raw_catalog)
    check_before_write(config, streams)
    return config, streams


def sync(config: ScarfConfig, streams: list[StreamInfo], chunks: Iterable[bytes], *,
         cancelled: threading.Event | None = None) -> Generator[MutableMapping[str, Any], None, None]:
    """Run a sync: the token, owner and dead-letter store are checked before any input is read, and the owner's
    package and tracking pixel names read when a stream can send one; then each state once it is safe."""
    with ScarfClient.from_config(config, cancelled=cancelled) as client:
        preflight(client, config, cancelled=cancelled)
        names = names_for_sync(client, config, streams)
        yield from Writer(config=config, streams=streams, client=client, cancelled=cancelled,
                          names=names).write(chunks)


def _write(*, config_path: str, catalog_path: str, stdin: IO[bytes], output: MessageOutput) -> None:
    """`write`: states on stdout as they become safe. Why a sync ended early is in its log as well as its TRACE."""
    try:
        config, streams = open_sync(load_config_file(config_path), load_catalog_file(catalog_path))
        cancelled = threading.Event()
        with CancelOnSignals(cancelled):
            states = sync(config, streams, read_chunks(stdin, idle_seconds=1.0), cancelled=cancelled)
            try:
                for state in states:
                    output.emit(state)
            finally:
                # However the loop ends, the sync's cleanup runs now: imports in flight aborted, spool files removed.
                states.close()
    except Exception as error:
        logger.error("%s", error, exc_info=not isinstance(error, ScarfError))
        raise
