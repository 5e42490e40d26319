"""The operator commands (`imports`, `import-log`, `abort`) against the emulator.

Most runs go through `operators.run_operator_command` with arguments parsed by the connector's own
parser, so they cost milliseconds; two subprocesses check the console entry point's wiring.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from destination_scarf.airbyte import operators
from destination_scarf.airbyte.destination import DestinationScarf
from destination_scarf.config import Target
from support import (
    OTHER_TOKEN,
    OWNER,
    PACKAGE,
    TOKEN,
    fast_client,
    make_config,
    now_iso,
    run_connector,
    write_json,
)

UNKNOWN_ID = "99999999-9999-4999-8999-999999999999"
UNKNOWN_PACKAGE = "44444444-4444-4444-8444-444444444444"
WRONG_TOKEN = "wrong-token-31f9a0c2"
MULTI = Target(kind="multi_artifact")
IMPORTS_HEADER = ["ID", "STATUS", "CREATED", "TOTAL", "IMPORTED", "FAILED"]
LOG_HEADER = ["LINE", "CLASS", "TYPE", "MESSAGE"]


@dataclass
class Run:
    code: int
    out: str
    err: str


def run_cli(argv: list[str], raw_config: dict[str, Any]) -> Run:
    """Parse argv with the connector's parser, then run the operator command in-process."""
    args = DestinationScarf().parse_args([argv[0], "--config", "config.json", *argv[1:]])
    out, err = io.StringIO(), io.StringIO()
    code = operators.run_operator_command(args, raw_config, out=out, err=err)
    return Run(code, out.getvalue(), err.getvalue())


def post_import(emulator, events: list[dict[str, Any]]) -> str:
    """Start one multi-artifact import (as any tool would) and return its id."""
    body = b"".join(orjson.dumps(event) + b"\n" for event in events)
    with fast_client(emulator) as client:
        return client.import_events(target=MULTI, body=body, gzipped=False, safe_to_resend=True).id


def good_event(n: int) -> dict[str, Any]:
    return {"$time": now_iso(-n), "$package": PACKAGE, "$unique_id": f"evt-{n}", "n": str(n)}


def table(text: str, columns: int) -> list[list[str]]:
    """Rows of a printed table (header first); the last column may contain spaces."""
    return [line.split(None, columns - 1) for line in text.splitlines() if line.strip()]


def api_requests(emulator) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in emulator.requests]


@pytest.fixture
def history(emulator):
    """Four imports, oldest first: done cleanly, done with two failed lines, aborted, importing."""
    clean = post_import(emulator, [good_event(1), good_event(2)])
    with_failures = post_import(emulator, [
        good_event(3),
        {"$time": now_iso(), "$package": UNKNOWN_PACKAGE, "$unique_id": "evt-unknown-package"},
        {"$package": PACKAGE, "$unique_id": "evt-no-time"},
    ])
    assert emulator.wait_idle(10)
    aborted, importing = emulator.hold_slots(OWNER, 2)
    assert emulator.abort_import(OWNER, aborted)
    emulator.clear_requests()
    return SimpleNamespace(clean=clean, with_failures=with_failures, aborted=aborted, importing=importing)


def snapshots_newest_first(emulator) -> list[dict[str, Any]]:
    return list(reversed(emulator.imports(OWNER)))


# --- imports ----------------------------------------------------------------------------------------


def test_imports_lists_every_import_newest_first_with_its_counts(emulator, history):
    result = run_cli(["imports"], make_config(emulator))

    assert (result.code, result.err) == (0, "")
    header, *rows = table(result.out, len(IMPORTS_HEADER))
    assert header == IMPORTS_HEADER
    expected = [[i["id"], i["status"], i["created_at"], str(i["events_total"]), str(i["events_successfully_imported"]),
                 str(i["events_failed_to_import"])] for i in snapshots_newest_first(emulator)]
    assert rows == expected
    assert [row[0] for row in rows] == [history.importing, history.aborted, history.with_failures, history.clean]
    assert rows[2][1:2] + rows[2][3:] == ["done", "3", "1", "2"]
    assert {row[1] for row in rows} == {"done", "aborted", "importing"}


def test_imports_status_filter_shows_only_those_imports(emulator, history):
    importing = run_cli(["imports", "--status", "importing"], make_config(emulator))
    finished = run_cli(["imports", "--status", "done", "--status", "aborted"], make_config(emulator))

    assert importing.code == finished.code == 0
    assert [row[:2] for row in table(importing.out, 6)[1:]] == [[history.importing, "importing"]]
    assert [row[:2] for row in table(finished.out, 6)[1:]] == [
        [history.aborted, "aborted"], [history.with_failures, "done"], [history.clean, "done"]]
    assert ("GET", f"/v2/imports/{OWNER}") in api_requests(emulator)


def test_imports_limit_keeps_the_newest(emulator, history):
    two = run_cli(["imports", "--limit", "2"], make_config(emulator))
    newest_done = run_cli(["imports", "--status", "done", "--limit", "1"], make_config(emulator))

    assert [row[0] for row in table(two.out, 6)[1:]] == [history.importing, history.aborted]
    assert [row[0] for row in table(newest_done.out, 6)[1:]] == [history.with_failures]


def test_imports_json_prints_the_event_imports_as_scarf_reports_them(emulator, history):
    everything = run_cli(["imports", "--json"], make_config(emulator))
    newest = run_cli(["imports", "--json", "--limit", "1"], make_config(emulator))

    assert everything.code == 0
    assert json.loads(everything.out) == snapshots_newest_first(emulator)
    assert json.loads(newest.out) == snapshots_newest_first(emulator)[:1]
    with_failures = next(i for i in json.loads(everything.out) if i["id"] == history.with_failures)
    assert with_failures["events_failed_to_import"] == 2 and len(with_failures["error_log_sample"]) == 2


def test_imports_without_any_import(emulator):
    text = run_cli(["imports"], make_config(emulator))
    as_json = run_cli(["imports", "--json"], make_config(emulator))

    assert (text.code, text.out, text.err) == (0, "No imports.\n", "")
    assert (as_json.code, json.loads(as_json.out)) == (0, [])


# --- import-log -------------------------------------------------------------------------------------


def test_import_log_lists_failed_lines_and_progress(emulator, history):
    result = run_cli(["import-log", history.with_failures], make_config(emulator))

    assert (result.code, result.err) == (0, "")
    lines = result.out.splitlines()
    assert lines[-1] == "Progress: 3 events processed, 2 failed."
    header, *rows = table("\n".join(lines[:-1]), len(LOG_HEADER))
    assert header == LOG_HEADER
    assert [row[:3] for row in rows] == [["2", "error", "artifact-not-found"], ["3", "error", "failed-to-decode"]]
    assert UNKNOWN_PACKAGE in rows[0][3] and "not found" in rows[0][3]
    assert "$time" in rows[1][3]


def test_import_log_json_prints_the_log_as_ndjson(emulator, history):
    result = run_cli(["import-log", history.with_failures, "--json"], make_config(emulator))

    assert result.code == 0
    entries = [json.loads(line) for line in result.out.splitlines()]
    assert entries == emulator.import_log(OWNER, history.with_failures)
    assert [e["type"] for e in entries] == ["artifact-not-found", "failed-to-decode", "progress"]


def test_import_log_of_an_import_without_problems(emulator, history):
    result = run_cli(["import-log", history.clean], make_config(emulator))

    assert result.code == 0
    assert result.out == (f"Import {history.clean}: no errors or warnings.\n"
                          "Progress: 2 events processed, 0 failed.\n")


# --- abort ------------------------------------------------------------------------------------------


def test_abort_stops_an_importing_import(emulator):
    emulator.set_rate(1)  # one event per second: 20 events keep the import busy far longer than the test
    import_id = post_import(emulator, [good_event(n) for n in range(20)])
    assert emulator.get_import(OWNER, import_id)["status"] == "importing"

    result = run_cli(["abort", import_id], make_config(emulator))

    assert (result.code, result.err) == (0, "")
    after = emulator.get_import(OWNER, import_id)
    assert after["status"] == "aborted"
    assert ("POST", f"/v2/imports/{OWNER}/{import_id}/abort") in api_requests(emulator)
    imported = after["events_successfully_imported"]
    assert imported < 20
    assert result.out == (f"Import {import_id} aborted (status now: aborted; "
                          f"{imported} of 20 events were imported before).\n")
    assert len([r for r in emulator.event_rows(OWNER) if r["import_id"] == import_id]) == imported


@pytest.mark.parametrize("which", ["clean", "aborted"])
def test_abort_of_a_finished_import_changes_nothing_and_succeeds(emulator, history, which):
    import_id = getattr(history, which)
    before = emulator.get_import(OWNER, import_id)

    result = run_cli(["abort", import_id], make_config(emulator))

    assert (result.code, result.err) == (0, "")
    assert result.out == f"Import {import_id} is already {before['status']}; nothing to abort.\n"
    assert emulator.get_import(OWNER, import_id) == before
    assert not [path for method, path in api_requests(emulator) if path.endswith("/abort")]


def test_abort_of_an_unknown_import_fails_naming_it(emulator, history):
    result = run_cli(["abort", UNKNOWN_ID], make_config(emulator))

    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith("error: ") and UNKNOWN_ID in result.err and "not found" in result.err
    assert [s["status"] for s in emulator.imports(OWNER)] == ["done", "done", "aborted", "importing"]


@pytest.mark.parametrize("command", ["abort", "import-log"])
@pytest.mark.parametrize("bad_id", ["not-an-id", "../imports", "99999999999949998999999999999999"])
def test_an_id_that_is_not_a_uuid_is_refused_before_any_request(emulator, command, bad_id):
    result = run_cli([command, bad_id], make_config(emulator))

    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith("error: ") and "UUID" in result.err
    assert emulator.requests == []


# --- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["imports"], ["import-log", UNKNOWN_ID], ["abort", UNKNOWN_ID]],
                         ids=["imports", "import-log", "abort"])
@pytest.mark.parametrize("token", [WRONG_TOKEN, OTHER_TOKEN], ids=["unknown-token", "token-of-another-owner"])
def test_a_rejected_token_exits_1_says_what_to_fix_and_never_prints_the_token(emulator, argv, token):
    result = run_cli(argv, make_config(emulator, api_token=token))

    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith("error: ")
    assert "HTTP 403" in result.err and "api_token" in result.err and f"'{OWNER}'" in result.err
    assert token not in result.out + result.err
    assert len(emulator.requests) == 1, "a rejected token is final: no retries"


def test_an_invalid_config_is_refused_before_any_request(emulator):
    result = run_cli(["imports"], make_config(emulator, owner="no such owner!", api_url="http://example.com"))

    assert result.code == 1
    assert "owner" in result.err and "https" in result.err
    assert TOKEN not in result.out + result.err
    assert emulator.requests == []


def test_parser_defaults_choices_and_required_arguments():
    parser = DestinationScarf()
    parsed = parser.parse_args(["imports", "--config", "c.json"])
    assert (parsed.command, parsed.status, parsed.limit, parsed.json) == ("imports", None, 30, False)
    parsed = parser.parse_args(["imports", "--config", "c.json", "--status", "importing", "--status", "done",
                                "--limit", "5", "--json"])
    assert (parsed.status, parsed.limit, parsed.json) == (["importing", "done"], 5, True)
    parsed = parser.parse_args(["import-log", "--config", "c.json", UNKNOWN_ID, "--json"])
    assert (parsed.command, parsed.import_id, parsed.json) == ("import-log", UNKNOWN_ID, True)
    for bad in (["imports", "--config", "c.json", "--status", "uploading"],
                ["imports", "--config", "c.json", "--limit", "many"],
                ["abort", "--config", "c.json"],
                ["import-log", UNKNOWN_ID]):
        with pytest.raises(SystemExit) as refused:
            parser.parse_args(bad)
        assert refused.value.code == 2, bad


def test_run_exits_with_the_commands_code(emulator, history, tmp_path):
    """DestinationScarf.run dispatches operator commands and exits with their code (in-process).

    Only the code is checked here: run_operator_command's `out`/`err` defaults are the streams of the moment
    the module was imported, so capturing fixtures do not see them; the subprocess tests read the output.
    """
    config = write_json(tmp_path / "config.json", make_config(emulator))
    codes = []
    for import_id in (UNKNOWN_ID, history.clean):
        with pytest.raises(SystemExit) as exited:
            DestinationScarf().run(["abort", "--config", config, import_id])
        codes.append(exited.value.code)

    assert codes == [1, 0]
    assert emulator.get_import(OWNER, history.clean)["status"] == "done"


# --- the console entry point ------------------------------------------------------------------------


def test_imports_command_line(emulator, history, tmp_path):
    config = write_json(tmp_path / "config.json", make_config(emulator))
    result = run_connector(["imports", "--config", config, "--json"])

    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert [i["id"] for i in json.loads(result.stdout)] == [
        history.importing, history.aborted, history.with_failures, history.clean]
    assert TOKEN.encode() not in result.stdout + result.stderr


def test_imports_json_keeps_stdout_pure_json_with_retry_logs_on_stderr(emulator, history, tmp_path):
    emulator.fail_next(1, 503, only="import-get")  # a retry, whose warning must not land in the JSON
    config = write_json(tmp_path / "config.json", make_config(emulator))
    result = run_connector(["imports", "--config", config, "--json"])

    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert len(json.loads(result.stdout)) == 4  # the whole of stdout is one JSON document
    assert b"HTTP 503; retry 1" in result.stderr and b'"type":"LOG"' not in result.stderr
    assert TOKEN.encode() not in result.stdout + result.stderr


def test_abort_command_line(emulator, tmp_path):
    emulator.set_rate(1)
    import_id = post_import(emulator, [good_event(n) for n in range(50)])
    config = write_json(tmp_path / "config.json", make_config(emulator))

    result = run_connector(["abort", "--config", config, import_id])

    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert re.fullmatch(rf"Import {import_id} aborted \(status now: aborted; \d+ of 50 events were imported "
                        r"before\)\.\n", result.stdout.decode())
    assert emulator.get_import(OWNER, import_id)["status"] == "aborted"
    assert TOKEN.encode() not in result.stdout + result.stderr


def test_an_unreadable_config_file_is_an_error_line_not_a_traceback(tmp_path, capsys):
    broken = tmp_path / "config.json"
    broken.write_text("{not json")
    assert operators.read_config(str(broken)) is None
    assert operators.read_config(str(tmp_path / "missing.json")) is None
    err = capsys.readouterr().err
    assert err.count("error: cannot read the config file") == 2
    args = DestinationScarf().parse_args(["imports", "--config", str(broken)])
    assert operators.run_operator_command(args, None) == 1
