"""The Airbyte glue for the commands that go through the CDK: `spec` from spec.json, `check`, `discover`,
and `write` for callers that hand over parsed messages (the CDK's programmatic interface).

The console script's `write` does not come here (cli.py): it reads raw stdin without the CDK, records
take orjson's fast path, and states are echoed exactly as received (the CDK's dataclasses would drop
keys such as the platform's state `id`, which Airbyte 1.7+ requires).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Mapping, MutableMapping
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

from destination_scarf.airbyte import cli, operators
from destination_scarf.airbyte.check import check_before_write, run_check, verify_access
from destination_scarf.airbyte.discover import destination_catalog_message
from destination_scarf.airbyte.secret_filter import register_config_secrets
from destination_scarf.config import load_config_file, parse_config
from destination_scarf.errors import ScarfConfigError
from destination_scarf.scarf.client import ScarfClient
from destination_scarf.sync.catalog import parse_catalog
from destination_scarf.sync.writer import Writer

logger = logging.getLogger("airbyte")


class DestinationScarf(Destination):
    """Imports records from any Airbyte source into Scarf through the Event Import API."""

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        return run_check(config, logger=logger)

    @staticmethod
    def read_config(config_path: str) -> MutableMapping[str, Any]:
        return load_config_file(config_path)

    def parse_args(self, args: list[str]) -> argparse.Namespace:
        return cli.build_parser().parse_args(args)

    def run(self, args: list[str]) -> None:
        # As the CDK's own run() does: an uncaught error leaves as a TRACE message, never a bare traceback.
        init_uncaught_exception_handler(logger)
        parsed = self.parse_args(args)
        if parsed.command == "write":
            code = cli.write_command(config_path=parsed.config, catalog_path=parsed.catalog)
            if code:
                sys.exit(code)
            return
        if parsed.command in operators.COMMANDS:
            sys.exit(operators.run_operator_command(parsed, operators.read_config(parsed.config)))
        if parsed.command == "discover":
            self._run_discover_command(config_path=parsed.config)
            return
        if parsed.command == "check":
            self._run_check_command(config_path=parsed.config)
            return
        super().run(args)

    def _load_config(self, config_path: str) -> Mapping[str, Any]:
        """Read the config and register its secrets with the CDK's log filter before anything can print them."""
        raw_config = self.read_config(config_path)
        register_config_secrets(raw_config)
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
        check_before_write(parsed, streams)
        lines = (orjson.dumps(AirbyteMessageSerializer.dump(m)) + b"\n" for m in input_messages)
        with ScarfClient.from_config(parsed) as client:
            verify_access(client)
            for state in Writer(config=parsed, streams=streams, client=client).write(lines):
                yield AirbyteMessageSerializer.load(state)
