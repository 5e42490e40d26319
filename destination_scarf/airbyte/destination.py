"""The CDK's `Destination`, a thin adapter onto the command line's functions (cli.py).

`run` is the console entry point itself. `check` and `write` are the CDK's programmatic interface:
`write` takes parsed messages and yields the states as the CDK's models (so keys those models do not
know, such as the platform's state `id`, are lost on this path only; the console's `write` echoes
states exactly as received). `spec` is the CDK's own, from the spec.json that `make spec` generates.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import orjson
from airbyte_cdk.destinations import Destination
from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteMessageSerializer,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteCatalogSerializer,
)

from destination_scarf.airbyte import cli
from destination_scarf.airbyte.check import run_check
from destination_scarf.config import load_config_file


class DestinationScarf(Destination):
    """Imports records from any Airbyte source into Scarf through the Event Import API."""

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        return run_check(config, logger=logger)

    @staticmethod
    def read_config(config_path: str) -> MutableMapping[str, Any]:
        return load_config_file(config_path)  # an unreadable file is a config error that says so

    def parse_args(self, args: list[str]) -> argparse.Namespace:
        return cli.build_parser().parse_args(args)

    def run(self, args: list[str]) -> None:
        cli.run(args)

    def write(
        self,
        config: Mapping[str, Any],
        configured_catalog: ConfiguredAirbyteCatalog,
        input_messages: Iterable[AirbyteMessage],
    ) -> Iterable[AirbyteMessage]:
        """The CDK's programmatic interface, for callers that hand over parsed messages (see the module docstring)."""
        parsed, streams = cli.open_sync(config, ConfiguredAirbyteCatalogSerializer.dump(configured_catalog))
        lines = (orjson.dumps(AirbyteMessageSerializer.dump(m)) + b"\n" for m in input_messages)
        for state in cli.sync(parsed, streams, lines):
            yield AirbyteMessageSerializer.load(state)
