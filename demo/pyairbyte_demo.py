"""Run destination-scarf under PyAirbyte, against the local emulator (`make pyairbyte-demo`).

PyAirbyte is not a dependency of this repo: the Makefile installs it into its own virtualenv
(.venv-pyairbyte), next to this package, then runs this script there.

The demo source (demo/downloads_source.py) has a `downloads` stream with a primary key and an
`access_log` stream with neither a primary key nor a cursor. The script first writes with PyAirbyte's
default write strategy, which asks for `overwrite` on `access_log`: the connector refuses the sync
before sending anything, and its message names the fix. It then writes with `write_strategy="append"`
and checks that every record of both streams arrived in the emulator as one event.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import airbyte as ab

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scarf_emulator import ScarfEmulator  # noqa: E402  (the repo root is on the path only now)

PACKAGE = "8d2f6a1e-3b4c-4d5e-9f60-7a8b9c0d1e2f"
BIN = Path(sys.executable).parent
DOWNLOADS, LOG_LINES = 500, 300
FIX = 'write_strategy="append"'


def destination_config(api_url: str) -> dict:
    """`downloads` is named the Scarf way already; `access_log` is mapped stream by stream."""
    log = "access_log"
    return {
        "api_token": "demo-token", "owner": "demo-org", "api_url": api_url,
        "target": {"target_type": "multi_artifact"},
        "field_mappings": [
            {"scarf_field": "$type", "constant": "download", "stream": "downloads"},
            {"scarf_field": "$type", "constant": "web_log", "stream": log},
            {"scarf_field": "$package", "constant": PACKAGE, "stream": log},
            {"scarf_field": "$time", "source_field": "timestamp", "stream": log},
            {"scarf_field": "$remote_address", "source_field": "client_ip", "stream": log},
            {"scarf_field": "$user_agent", "source_field": "request.headers.user-agent", "stream": log},
            {"scarf_field": "$headers", "source_field": "request.headers", "stream": log},
            {"scarf_field": "$referrer", "source_field": "referer", "stream": log},
        ],
    }


def main() -> None:
    with ScarfEmulator(tokens={"demo-token": {"demo-org"}}, packages={"demo-org": [PACKAGE]}) as emulator:
        source = ab.get_source(
            "source-downloads-demo",
            local_executable=str(BIN / "downloads-demo-source"),
            config={"package_id": PACKAGE, "count": DOWNLOADS, "log_lines": LOG_LINES},
        )
        source.select_all_streams()
        scarf = ab.get_destination(
            "destination-scarf",
            local_executable=str(BIN / "destination-scarf"),
            config=destination_config(emulator.url),
        )

        # 1. PyAirbyte's default strategy: merge for `downloads` (it has a primary key), overwrite
        #    for `access_log` (no primary key, no cursor). The connector refuses the whole sync.
        try:
            scarf.write(source, cache=False)
        except ab.exceptions.AirbyteConnectorError as error:  # AirbyteConnectorWriteError
            # PyAirbyte prints the connector's TRACE message as an ERROR line and keeps it in the
            # connector's log file; the exception itself only says that the connector exited with 1.
            refusal = error.log_file.read_text() if error.log_file else str(error)
        else:
            raise SystemExit("the default write strategy was expected to fail on access_log (overwrite)")
        if FIX not in refusal or emulator.event_count("demo-org") != 0:
            raise SystemExit(f"expected a refusal naming {FIX} and no events, got:\n{refusal}")
        print(f"Default write strategy: refused as expected, 0 events sent; the message names {FIX}")

        # 2. The strategy that works for every stream: append.
        result = scarf.write(source, cache=False, write_strategy="append")
        events = emulator.events("demo-org")
        by_type = Counter(event.get("$type") for event in events)
        print(f"write_strategy=\"append\": {len(events)} events arrived in the emulator "
              f"({by_type['download']} downloads, {by_type['web_log']} access_log)")
        expected = {"download": DOWNLOADS, "web_log": LOG_LINES}
        if dict(by_type) != expected:
            raise SystemExit(f"expected {expected} events by $type, got {dict(by_type)} ({result})")
        logged = {event["$time"] for event in events if event["$type"] == "web_log"}
        if len(logged) != LOG_LINES:  # every log line is its own event (distinct content, distinct $unique_id)
            raise SystemExit(f"expected {LOG_LINES} distinct access_log events, got {len(logged)}")


if __name__ == "__main__":
    main()
