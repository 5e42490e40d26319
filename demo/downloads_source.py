"""A tiny Airbyte source for demos: two streams of recent events, one with a primary key, one without.

- `downloads`: a downloads table, primary key `download_id`, no cursor.
- `access_log`: web-server log lines, with neither a primary key nor a cursor, like a file or log
  source. PyAirbyte's default write strategy asks the destination to `overwrite` such a stream, which
  Scarf cannot do; demo/pyairbyte_demo.py shows that, and the strategy that works.

Every record is distinct (log lines a second apart), so every one becomes its own Scarf event.
Used by demo/pyairbyte_demo.py to show the destination under PyAirbyte without any network source.
Run as `python demo/downloads_source.py spec|check|discover|read ...` like any Python source.
"""

from __future__ import annotations

import datetime
import random
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from airbyte_cdk.entrypoint import launch
from airbyte_cdk.models import ConnectorSpecification, SyncMode
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.streams import Stream

PATHS = ["/downloads/cli-1.4.0.tar.gz", "/downloads/cli-1.5.0.tar.gz", "/docs/install", "/"]
USER_AGENTS = ["curl/8.5.0", "Wget/1.21.4", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"]


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


class AccessLog(Stream):
    """Parsed web-server log lines: no primary key, no cursor (full refresh only)."""

    primary_key = None

    def __init__(self, count: int) -> None:
        self._count = count

    def get_json_schema(self) -> Mapping[str, Any]:
        return {"type": "object", "properties": {
            "timestamp": {"type": "string", "format": "date-time"}, "client_ip": {"type": "string"},
            "referer": {"type": ["null", "string"]}, "status": {"type": "integer"}, "bytes": {"type": "integer"},
            "request": {"type": "object", "properties": {
                "method": {"type": "string"}, "path": {"type": "string"},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}}}}}}

    def read_records(self, sync_mode: SyncMode, cursor_field=None, stream_slice=None, stream_state=None
                     ) -> Iterable[Mapping[str, Any]]:
        rng = random.Random(5)
        start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=self._count + 60)
        for n in range(self._count):
            agent = rng.choice(USER_AGENTS)
            yield {"timestamp": (start + datetime.timedelta(seconds=n)).isoformat(),
                   "client_ip": f"198.51.100.{rng.randint(1, 254)}",
                   "referer": rng.choice([None, "https://example.com/", "https://search.example/?q=cli"]),
                   "status": 200, "bytes": rng.randint(1_000, 9_000_000),
                   "request": {"method": "GET", "path": rng.choice(PATHS),
                               "headers": {"user-agent": agent, "accept": "*/*"}}}


class DownloadsSource(AbstractSource):
    def check_connection(self, logger, config) -> tuple[bool, Any]:
        return True, None

    def streams(self, config: Mapping[str, Any]) -> list[Stream]:
        return [Downloads(int(config.get("count", 100)), config["package_id"]),
                AccessLog(int(config.get("log_lines", 100)))]

    def spec(self, logger) -> ConnectorSpecification:
        return ConnectorSpecification(connectionSpecification={
            "type": "object", "required": ["package_id"],
            "properties": {"package_id": {"type": "string"}, "count": {"type": "integer", "default": 100},
                           "log_lines": {"type": "integer", "default": 100}}})


if __name__ == "__main__":
    launch(DownloadsSource(), sys.argv[1:])
