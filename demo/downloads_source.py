"""A tiny Airbyte source for demos: one `downloads` stream of recent, realistic download events.

Used by demo/pyairbyte_demo.py to show the destination under PyAirbyte without any network source.
Run as `python demo/downloads_source.py spec|check|discover|read ...` like any Python source.
"""

from __future__ import annotations

import datetime
import random
import sys
from typing import Any, Iterable, Mapping

from airbyte_cdk.entrypoint import launch
from airbyte_cdk.models import SyncMode
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.streams import Stream


class Downloads(Stream):
    primary_key = "download_id"

    def __init__(self, count: int, package_id: str) -> None:
        self._count = count
        self._package_id = package_id

    def get_json_schema(self) -> Mapping[str, Any]:
        return {"type": "object", "properties": {
            "download_id": {"type": "integer"}, "time": {"type": "string", "format": "date-time"},
            "package": {"type": "string"}, "remote_address": {"type": "string"}, "user_agent": {"type": "string"},
            "version": {"type": "string"}}}

    def read_records(self, sync_mode: SyncMode, cursor_field=None, stream_slice=None, stream_state=None
                     ) -> Iterable[Mapping[str, Any]]:
        rng = random.Random(3)
        now = datetime.datetime.now(datetime.timezone.utc)
        for n in range(1, self._count + 1):
            yield {"download_id": n, "time": (now - datetime.timedelta(minutes=rng.randint(1, 600))).isoformat(),
                   "package": self._package_id, "remote_address": f"203.0.113.{rng.randint(1, 254)}",
                   "user_agent": "pip/24.0", "version": f"1.{rng.randint(0, 9)}.0"}


class DownloadsSource(AbstractSource):
    def check_connection(self, logger, config) -> tuple[bool, Any]:  # noqa: ANN001 - the CDK's signature
        return True, None

    def streams(self, config: Mapping[str, Any]) -> list[Stream]:
        return [Downloads(int(config.get("count", 100)), config["package_id"])]

    def spec(self, logger):  # noqa: ANN001
        from airbyte_cdk.models import ConnectorSpecification

        return ConnectorSpecification(connectionSpecification={
            "type": "object", "required": ["package_id"],
            "properties": {"package_id": {"type": "string"}, "count": {"type": "integer", "default": 100}}})


if __name__ == "__main__":
    launch(DownloadsSource(), sys.argv[1:])
