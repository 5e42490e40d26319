"""Run destination-scarf under PyAirbyte, against the local emulator (`make pyairbyte-demo`).

PyAirbyte is not a dependency of this repo: the Makefile installs it into its own virtualenv
(.venv-pyairbyte), next to this package, then runs this script there.

The demo source (demo/downloads_source.py) has a `downloads` stream with a primary key and an
`access_log` stream with neither a primary key nor a cursor. The script first writes with PyAirbyte's
default write strategy, which asks for `overwrite` on `access_log`: the connector refuses the sync
before sending anything, and its message names the fix. It then writes with `write_strategy="append"`
and checks that every record of both streams arrived in the emulator as one event. Last, it runs the
README's recipe "Previewing a source's first records" exactly as the README writes it (the code is read
from README.md, so the two cannot drift), with the demo source standing in for its `source-file`, and
checks the records it wrote and what `destination-scarf preview` said of them.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import airbyte as ab

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scarf_emulator import ScarfEmulator  # noqa: E402  (the repo root is on the path only now)

PACKAGE = "8d2f6a1e-3b4c-4d5e-9f60-7a8b9c0d1e2f"
BIN = Path(sys.executable).parent
DOWNLOADS, LOG_LINES = 500, 300
FIX = 'write_strategy="append"'
#: What the README's preview recipe reads: the first 20 records of `downloads`, every field the source sends.
PREVIEWED = 20
DOWNLOAD_FIELDS = {"download_id", "time", "package", "remote_address", "user_agent", "version"}


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

        # 3. The README's preview recipe, as written, on the demo source.
        preview_recipe(source)


def readme_recipe() -> str:
    """The code of the README's "Previewing a source's first records": the first python block after that title."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("**Previewing a source's first records.**")
    block = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE).search(text, start)
    if block is None:
        raise SystemExit("README.md: no python block after 'Previewing a source's first records'")
    return block.group(1)


@contextmanager
def stdout_into(path: Path) -> Iterator[None]:
    """Send this process's stdout, and so the stdout its subprocesses inherit, into `path` for a while."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(path, "wb") as captured:
        os.dup2(captured.fileno(), 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def preview_recipe(source: ab.Source) -> None:
    """Run the README's recipe unchanged: its `ab.get_source("source-file", config={...})` answers with the demo
    source, and `destination-scarf` is found on PATH, as the README says (this virtualenv's bin, "activated")."""
    code = readme_recipe()
    get_source = ab.get_source
    ab.get_source = lambda *args, **kwargs: source  # type: ignore[assignment]
    os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    here = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="preview-recipe-") as folder:
        os.chdir(folder)
        try:
            with stdout_into(Path(folder) / "preview.txt"):
                exec(compile(code, "README.md (Previewing a source's first records)", "exec"), {"__name__": "recipe"})
        finally:
            os.chdir(here)
            ab.get_source = get_source
        report = (Path(folder) / "preview.txt").read_text(encoding="utf-8")
        written = [json.loads(line) for line in (Path(folder) / "first-records.jsonl").read_text().splitlines()]
    print(report, end="")
    ids = [message["record"]["data"].get("download_id") for message in written]
    if ids != list(range(1, PREVIEWED + 1)):
        raise SystemExit(f"the README's preview recipe wrote the records {ids}, expected download_id 1 to {PREVIEWED}")
    fields = [set(message["record"]["data"]) for message in written]
    if any(keys != DOWNLOAD_FIELDS for keys in fields):
        raise SystemExit(f"expected the fields {sorted(DOWNLOAD_FIELDS)} in every record, got {fields[0]}")
    summary = f"Previewed {PREVIEWED} records"
    if summary not in report or f": {PREVIEWED} would be sent, 0 would be rejected" not in report:
        raise SystemExit(f"expected preview to say that all {PREVIEWED} records would be sent, it said:\n{report}")
    print(f"The README's preview recipe: {PREVIEWED} records of `downloads` written and previewed, all would be sent")


if __name__ == "__main__":
    main()
