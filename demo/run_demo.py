"""`make demo`: start the local Scarf emulator, run `check`, run a sample sync, show what arrived.

Everything runs over real HTTP on 127.0.0.1: the emulator in a subprocess, the connector through its
console entry point (`destination-scarf`), exactly as Airbyte or `docker run ... write` would run it.
Files (config, catalog, input, output) are left in demo-output/ to look at.
"""

from __future__ import annotations

import datetime
import json
import random
import shutil
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-output"
OWNER = "demo-org"
TOKEN = "demo-token"
PACKAGES = {"cli-tool": "8d2f6a1e-3b4c-4d5e-9f60-7a8b9c0d1e2f", "python-sdk": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"}
USER_AGENTS = ["pip/24.0 CPython/3.12.1", "npm/10.2.4 node/v20.11.0", "curl/8.5.0", "Docker-Client/24.0.7 (linux)"]


def connector() -> list[str]:
    found = shutil.which("destination-scarf", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-c", "from destination_scarf.airbyte.cli import run; run()"]


def start_emulator() -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "scarf_emulator", "--port", "0", "--owner", OWNER, "--token", TOKEN]
    for package_id in PACKAGES.values():
        command += ["--package", package_id]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline().strip()
    if not line.startswith("SCARF_EMULATOR_URL="):
        process.kill()
        raise SystemExit(f"the emulator did not start: {line!r}")
    return process, line.split("=", 1)[1]


def sample_input(records: int) -> str:
    """A downloads table and a docs-views table, as a warehouse source would send them, with states."""
    rng = random.Random(7)
    now = datetime.datetime.now(datetime.timezone.utc)
    lines = []
    for n in range(1, records + 1):
        when = (now - datetime.timedelta(seconds=rng.randint(60, 86_400))).isoformat()
        name = rng.choice(list(PACKAGES))
        row = {"download_id": n, "downloaded_at": when, "package_id": PACKAGES[name], "package_name": name,
               "client_ip": f"198.51.100.{rng.randint(1, 254)}", "user_agent": rng.choice(USER_AGENTS),
               "version": f"2.{rng.randint(0, 4)}.{rng.randint(0, 9)}",
               "geo": {"country": rng.choice(["NL", "DE", "US", "BR", "IN"])}}
        lines.append({"type": "RECORD", "record": {"stream": "downloads", "data": row, "emitted_at": 0}})
        if n % 250 == 0:
            lines.append({"type": "STATE", "state": {"type": "STREAM", "id": n, "stream": {
                "stream_descriptor": {"name": "downloads"}, "stream_state": {"download_id": n}}}})
    return "".join(json.dumps(line) + "\n" for line in lines)


def main() -> None:
    OUT.mkdir(exist_ok=True)
    emulator, url = start_emulator()
    try:
        print(f"Scarf emulator listening at {url}")
        config = {
            "api_token": TOKEN, "owner": OWNER, "api_url": url, "target": {"target_type": "multi_artifact"},
            "field_mappings": [
                {"scarf_field": "$time", "source_field": "downloaded_at"},
                {"scarf_field": "$package", "source_field": "package_id"},
                {"scarf_field": "$remote_address", "source_field": "client_ip"},
                {"scarf_field": "$type", "constant": "download"},
            ],
            "batch_max_events": 400, "max_concurrent_imports": 3,
        }
        catalog = {"streams": [{"stream": {"name": "downloads", "json_schema": {},
                                           "supported_sync_modes": ["incremental"]},
                                "sync_mode": "incremental", "destination_sync_mode": "append_dedup",
                                "primary_key": [["download_id"]]}]}
        (OUT / "config.json").write_text(json.dumps(config, indent=2))
        (OUT / "catalog.json").write_text(json.dumps(catalog, indent=2))
        (OUT / "input.jsonl").write_text(sample_input(2000))

        check = subprocess.run(connector() + ["check", "--config", str(OUT / "config.json")],
                               capture_output=True, text=True, check=True)
        status = next(json.loads(line) for line in check.stdout.splitlines() if '"CONNECTION_STATUS"' in line)
        print(f"check: {status['connectionStatus']['status']}")

        with open(OUT / "input.jsonl", "rb") as stdin, open(OUT / "output.jsonl", "wb") as stdout:
            write = subprocess.run(connector() + ["write", "--config", str(OUT / "config.json"),
                                                  "--catalog", str(OUT / "catalog.json")], stdin=stdin, stdout=stdout)
        output = [json.loads(line) for line in (OUT / "output.jsonl").read_text().splitlines() if line.strip()]
        states = [m for m in output if m["type"] == "STATE"]
        summary = [m["log"]["message"] for m in output if m["type"] == "LOG" and "Sync summary" in m["log"]["message"]]
        print(f"write: exit code {write.returncode}, {len(states)} states echoed, last: "
              f"{json.dumps(states[-1]['state']) if states else None}")
        for line in summary:
            print(line)

        events = json.load(urllib.request.urlopen(f"{url}/_emulator/events?owner={OWNER}"))
        by_package = Counter({v: k for k, v in PACKAGES.items()}[e["$package"]] for e in events)
        print(f"Scarf now holds {len(events)} events: {dict(by_package)}")
        print("one of them:", json.dumps(events[0], indent=2))
        if write.returncode != 0 or len(events) != 2000:
            raise SystemExit("the demo sync did not deliver every event: see demo-output/output.jsonl")
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


if __name__ == "__main__":
    main()
