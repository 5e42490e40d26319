"""Operator commands outside the Airbyte protocol (the platform never calls them), for people and scripts:

    destination-scarf imports    --config c.json [--status importing] [--limit 30] [--json]
    destination-scarf import-log --config c.json IMPORT_ID [--json]
    destination-scarf abort      --config c.json IMPORT_ID

They follow Scarf's guide ("Checking Import Status", "Cancelling Imports"). Output is plain text (or
JSON with --json) on stdout; errors go to stderr with exit code 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TextIO

import orjson

from destination_scarf.airbyte.protocol import log_to
from destination_scarf.airbyte.secret_filter import update_secrets
from destination_scarf.config import ScarfConfig, load_config_file, parse_config
from destination_scarf.errors import ScarfError
from destination_scarf.mapping.timeparse import parse_event_time
from destination_scarf.scarf.client import EventImport, ScarfClient

STATUSES = ("importing", "done", "aborted")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    imports = subparsers.add_parser("imports", help="list the account's imports, newest first")
    imports.add_argument("--config", required=True, help="path to the JSON configuration file")
    imports.add_argument("--status", action="append", choices=STATUSES, help="only imports with this status")
    imports.add_argument("--limit", type=_positive, default=30, help="how many imports to show (default 30)")
    imports.add_argument("--json", action="store_true", help="print JSON for scripts")
    log = subparsers.add_parser("import-log", help="show an import's errors and warnings")
    log.add_argument("--config", required=True, help="path to the JSON configuration file")
    log.add_argument("import_id", help="the import's id (a UUID)")
    log.add_argument("--json", action="store_true", help="print the log as NDJSON")
    abort = subparsers.add_parser("abort", help="abort one import")
    abort.add_argument("--config", required=True, help="path to the JSON configuration file")
    abort.add_argument("import_id", help="the import's id (a UUID)")


COMMANDS = ("imports", "import-log", "abort")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def read_config(path: str) -> Mapping[str, Any] | None:
    """The config file's JSON, or None (after saying why on stderr) when it cannot be read."""
    try:
        return load_config_file(path)
    except ScarfError as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def run_operator_command(
    args: argparse.Namespace,
    raw_config: Mapping[str, Any] | None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    client_factory: Callable[[ScarfConfig], ScarfClient] | None = None,
) -> int:
    """Run one operator command; returns the process exit code (None config: it could not be read)."""
    out = out if out is not None else sys.stdout  # looked up now, so redirections and test capture apply
    err = err if err is not None else sys.stderr
    log_to(err)  # logs (retries, say) go to stderr: stdout holds only the answer
    if raw_config is None:
        return 1
    try:
        config = parse_config(raw_config)
        update_secrets([config.api_token])  # the stderr logs pass through the CDK's secret filter
        factory = client_factory or _client
        with factory(config) as client:
            if args.command == "imports":
                _list_imports(client, args, out)
            elif args.command == "import-log":
                _show_log(client, args, out)
            else:
                _abort(client, args, out)
        return 0
    except ScarfError as error:
        print(f"error: {error}", file=err)
        return 1


def _client(config: ScarfConfig) -> ScarfClient:
    return ScarfClient.from_config(config)


def _list_imports(client: ScarfClient, args: argparse.Namespace, out: TextIO) -> None:
    imports = client.list_imports(statuses=args.status or (), per_page=args.limit)
    imports = sorted(imports, key=_created, reverse=True)[: args.limit]
    if args.json:
        out.write(orjson.dumps([dict(i.raw) for i in imports], option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not imports:
        out.write("No imports.\n")
        return
    rows = [("ID", "STATUS", "CREATED", "TOTAL", "IMPORTED", "FAILED")]
    rows += [(i.id, str(i.status), i.created_at or "-", str(i.events_total), str(i.events_successfully_imported),
              str(i.events_failed_to_import)) for i in imports]
    out.write(_table(rows))


def _created(event_import: EventImport) -> float:
    """Sort key: created_at as a moment (not as text, whose precision or offset could vary)."""
    try:
        return parse_event_time(event_import.created_at).timestamp()
    except ValueError:
        return float("-inf")


#: The most log entries `import-log` shows: a log is one entry per failed line, and a huge one must not fill memory.
MAX_LOG_ENTRIES = 100_000


def _show_log(client: ScarfClient, args: argparse.Namespace, out: TextIO) -> None:
    entries = list(client.import_log(args.import_id, max_entries=MAX_LOG_ENTRIES + 1))
    if len(entries) > MAX_LOG_ENTRIES:
        entries = entries[:MAX_LOG_ENTRIES]
        print(f"note: the log of import {args.import_id} has more than {MAX_LOG_ENTRIES:,} entries; "
              "showing the first ones.", file=sys.stderr)
    if args.json:
        out.writelines(orjson.dumps(entry).decode() + "\n" for entry in entries)
        return
    problems = [e for e in entries if e.get("class") in ("error", "warning")]
    if not problems:
        out.write(f"Import {args.import_id}: no errors or warnings.\n")
    else:
        rows = [("LINE", "CLASS", "TYPE", "MESSAGE")]
        rows += [(str(e.get("line", "-")), str(e.get("class")), str(e.get("type")), _describe(e)) for e in problems]
        out.write(_table(rows))
    for entry in entries:
        if entry.get("type") == "progress":
            out.write(f"Progress: {entry.get('events_count', 0)} events processed, "
                      f"{entry.get('failed_events_count', 0)} failed.\n")


def _describe(entry: Mapping[str, Any]) -> str:
    text = str(entry.get("human_friendly_message") or "")
    artifact = entry.get("package_id") or entry.get("tracking_pixel_id")
    return f"{text} ({artifact})" if artifact else text


def _abort(client: ScarfClient, args: argparse.Namespace, out: TextIO) -> None:
    current: EventImport = client.get_import(args.import_id)
    if current.is_final:
        out.write(f"Import {current.id} is already {current.status}; nothing to abort.\n")
        return
    client.abort_import(current.id)
    after = client.get_import(current.id)
    out.write(f"Import {current.id} aborted (status now: {after.status}; "
              f"{after.events_successfully_imported} of {after.events_total} events were imported before).\n")


def _table(rows: Iterable[tuple[str, ...]]) -> str:
    rows = list(rows)
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    return "".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip() + "\n"
                   for row in rows)
