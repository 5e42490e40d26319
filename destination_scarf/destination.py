"""The Airbyte glue: `spec` from spec.json, `check` and `write` delegated to their modules.

`write` on the command line bypasses the CDK's message parsing on purpose: records take orjson's fast
path, and states are echoed exactly as received (the CDK's dataclasses would drop keys such as the
platform's state `id`, which Airbyte 1.7+ requires).
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
from airbyte_cdk.destinations import Destination
from airbyte_cdk.exception_handler import init_uncaught_exception_handler
from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteMessageSerializer,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteCatalogSerializer,
    Type,
)
from airbyte_cdk.utils.airbyte_secrets_utils import add_to_secrets, get_secrets, update_secrets
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from destination_scarf import operator_cli
from destination_scarf.airbyte_io import MessageOutput, install_log_handler, read_chunks
from destination_scarf.catalog import parse_catalog
from destination_scarf.check import check_local_paths, run_check, verify_access
from destination_scarf.client import ScarfClient
from destination_scarf.config import load_config_file, parse_config
from destination_scarf.discover import check_object_names, destination_catalog_message
from destination_scarf.errors import ScarfConfigError
from destination_scarf.signals import CancelOnSignals
from destination_scarf.writer import Writer

logger = logging.getLogger("airbyte")


class DestinationScarf(Destination):
    """Imports records from any Airbyte source into Scarf through the Event Import API."""

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        return run_check(config, logger=logger)

    @staticmethod
    def read_config(config_path: str) -> MutableMapping[str, Any]:
        return load_config_file(config_path)

    def parse_args(self, args: list[str]) -> argparse.Namespace:
        """The CDK's commands (spec, check, write), plus `discover` and the operator commands."""
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
        operator_cli.add_parsers(commands)
        return parser.parse_args(args)

    def run(self, args: list[str]) -> None:
        # As the CDK's own run() does: an uncaught error leaves as a TRACE message, never a bare traceback.
        init_uncaught_exception_handler(logger)
        parsed = self.parse_args(args)
        if parsed.command in operator_cli.COMMANDS:
            sys.exit(operator_cli.run_operator_command(parsed, operator_cli.read_config(parsed.config)))
        if parsed.command == "discover":
            self._run_discover_command(config_path=parsed.config)
            return
        if parsed.command == "check":
            self._run_check_command(config_path=parsed.config)
            return
        if parsed.command != "write":
            super().run(args)
            return
        output = MessageOutput()
        install_log_handler(output)
        try:
            self._run_write_command(config_path=parsed.config, catalog_path=parsed.catalog, output=output)
        except Exception as error:
            traced = (error if isinstance(error, AirbyteTracedException)
                      else AirbyteTracedException.from_exception(error))
            logger.error("%s", traced, exc_info=not isinstance(error, AirbyteTracedException))
            # Sanitized: the CDK's secret filter runs over the message, the internal message and the stack trace.
            output.emit(AirbyteMessageSerializer.dump(traced.as_sanitized_airbyte_message()))
            sys.exit(1)

    def _load_config(self, config_path: str) -> Mapping[str, Any]:
        """Read the config and register its secrets with the CDK's log filter before anything can print them."""
        raw_config = self.read_config(config_path)
        secrets = get_secrets(self.spec(logger).connectionSpecification, raw_config)
        update_secrets(secrets)
        for secret in secrets:  # the token as it is used (stripped) must be filtered too, not only as pasted
            if isinstance(secret, str) and secret.strip() and secret.strip() != secret:
                add_to_secrets(secret.strip())
        return raw_config

    def _run_check_command(self, *, config_path: str) -> None:
        """`check` validates with our own config parser, whose messages name the field and the fix.

        (The CDK would validate against spec.json first, and a JSON-schema message such as
        "'x' does not match '^[0-9a-f]...'" names neither.)
        """
        status = run_check(self._load_config(config_path), logger=logger)
        message = AirbyteMessage(type=Type.CONNECTION_STATUS, connectionStatus=status)
        print(orjson.dumps(AirbyteMessageSerializer.dump(message)).decode(), flush=True)

    def _run_discover_command(self, *, config_path: str) -> None:
        try:
            config = parse_config(self._load_config(config_path))
        except ScarfConfigError as error:
            print(orjson.dumps(AirbyteMessageSerializer.dump(error.as_airbyte_message())).decode(), flush=True)
            sys.exit(1)
        print(orjson.dumps(destination_catalog_message(config.target)).decode(), flush=True)

    def _run_write_command(self, *, config_path: str, catalog_path: str, output: MessageOutput) -> None:
        # parse_config validates everything spec.json declares, with messages that name the field.
        config = parse_config(self._load_config(config_path))
        streams = parse_catalog(_read_catalog(catalog_path))
        check_object_names(streams, config.target)
        check_local_paths(config)
        cancelled = threading.Event()
        with CancelOnSignals(cancelled), ScarfClient.from_config(config, cancelled=cancelled) as client:
            verify_access(client)  # a wrong token or owner fails in seconds, before any input is read
            writer = Writer(config=config, streams=streams, client=client, cancelled=cancelled)
            # closing(): however the loop ends, the generator's cleanup runs now: in-flight imports are
            # aborted, spool files removed.
            with closing(writer.write(read_chunks(sys.stdin.buffer, idle_seconds=1.0))) as states:
                for state in states:
                    output.emit(state)

    def write(
        self,
        config: Mapping[str, Any],
        configured_catalog: ConfiguredAirbyteCatalog,
        input_messages: Iterable[AirbyteMessage],
    ) -> Iterable[AirbyteMessage]:
        """The CDK's programmatic interface, for callers that hand over parsed messages.

        The command line does not use it (see the module docstring). States come back through the
        CDK's models here, so keys they do not know are lost on this path only.
        """
        streams = parse_catalog(ConfiguredAirbyteCatalogSerializer.dump(configured_catalog))
        parsed = parse_config(config)
        check_object_names(streams, parsed.target)
        lines = (orjson.dumps(AirbyteMessageSerializer.dump(m)) + b"\n" for m in input_messages)
        with ScarfClient.from_config(parsed) as client:
            verify_access(client)
            for state in Writer(config=parsed, streams=streams, client=client).write(lines):
                yield AirbyteMessageSerializer.load(state)


def _read_catalog(path: str) -> Any:
    """The configured catalog's JSON; a missing or unreadable file is a config error that says so."""
    try:
        return orjson.loads(Path(path).read_bytes())
    except OSError as error:
        raise ScarfConfigError(f"Cannot read the configured catalog {path} ({type(error).__name__}): pass the "
                               "path of a readable catalog file with --catalog.") from None
    except orjson.JSONDecodeError:
        raise ScarfConfigError(f"The configured catalog {path} is not valid JSON.") from None
