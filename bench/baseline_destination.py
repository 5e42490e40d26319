"""B, the baseline: the smallest possible CDK destination. Its `write` iterates the CDK's parsed input
messages and echoes states: the ceiling of any destination that uses the CDK's own input parsing."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from airbyte_cdk.destinations import Destination
from airbyte_cdk.models import AirbyteConnectionStatus, AirbyteMessage, ConfiguredAirbyteCatalog, Status, Type


class BaselineDestination(Destination):
    def spec(self, logger):
        from airbyte_cdk.models import ConnectorSpecification

        return ConnectorSpecification(connectionSpecification={"type": "object"})

    def check(self, logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        return AirbyteConnectionStatus(status=Status.SUCCEEDED)

    def write(self, config: Mapping[str, Any], configured_catalog: ConfiguredAirbyteCatalog,
              input_messages: Iterable[AirbyteMessage]) -> Iterable[AirbyteMessage]:
        for message in input_messages:
            if message.type == Type.STATE:
                yield message


if __name__ == "__main__":
    BaselineDestination().run(sys.argv[1:])
