"""The command line as people use it: `--version`, output piped into a reader that stops early, and a config
file that is missing or unreadable."""

from __future__ import annotations

import os
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

import pytest

from support import (
    OWNER,
    ROOT,
    catalog,
    connector_command,
    download,
    lines,
    make_config,
    messages_of,
    record,
    run_connector,
    write_json,
)


def test_version_prints_the_installed_version_and_exits_0():
    result = run_connector(["--version"])

    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == f"destination-scarf {metadata.version('destination-scarf')}\n"
    assert result.stderr == b""


# -- output into a reader that stops early -----------------------------------------------------------------------
#: Imports enough that `imports` prints several times a pipe's buffer (64 KiB on Linux), as JSON or as a table, so
#: the connector is still writing when `head` has read its lines and gone: its next write meets a closed pipe.
MANY_IMPORTS = 3000


def piped_into_head(command: list[str], *, lines: int = 3, stdin: bytes | None = None) -> tuple[bytes, bytes, int]:
    """Run `command | head -n LINES` with a real pipe between the two processes: what head printed, and the
    connector's stderr and exit code."""
    # Buffered, as people run it (unbuffered, a write cut short by the closed pipe would just be partial).
    env = {key: value for key, value in os.environ.items() if key != "PYTHONUNBUFFERED"}
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as given:
        given.write(stdin or b"")
        given.seek(0)
        connector = subprocess.Popen(command, stdin=given, stdout=subprocess.PIPE, stderr=err, env=env, cwd=ROOT)
        head = subprocess.Popen(["head", "-n", str(lines)], stdin=connector.stdout, stdout=subprocess.PIPE)
        assert connector.stdout is not None
        connector.stdout.close()  # head holds the only reading end: when it exits, the pipe is closed
        shown, _ = head.communicate(timeout=120)
        code = connector.wait(timeout=120)
        err.seek(0)
        return shown, err.read(), code


@pytest.mark.parametrize("as_json", [True, False], ids=["json", "table"])
def test_imports_piped_into_head_ends_quietly(emulator, tmp_path, as_json):
    emulator.hold_slots(OWNER, MANY_IMPORTS)
    config = write_json(tmp_path / "config.json", make_config(emulator))
    command = connector_command("imports", "--config", config, "--limit", str(MANY_IMPORTS),
                                *(["--json"] if as_json else []))
    whole = run_connector(command[3:]).stdout
    assert len(whole) > 4 * 65536  # far more than a pipe holds

    shown, err, code = piped_into_head(command)

    assert shown.splitlines() == whole.splitlines()[:3]
    assert err == b"", err.decode()  # no BrokenPipeError traceback, no "Exception ignored" at shutdown
    assert code == 0  # the reader has seen what it wanted: as for preview, that is a normal end


def test_preview_piped_into_head_ends_quietly(tmp_path):
    config = write_json(tmp_path / "config.json", {"api_token": "preview", "owner": OWNER})
    raw_catalog = write_json(tmp_path / "catalog.json", catalog("downloads"))
    records = b"".join(lines(record("downloads", download(n)) for n in range(1, 2001)))
    command = connector_command("preview", "--config", config, "--catalog", raw_catalog, "--limit", "2000")

    shown, err, code = piped_into_head(command, stdin=records)

    assert shown.decode().startswith("Record #1 of stream 'downloads' (input line 1) would be sent:")
    assert err == b"", err.decode()
    assert code == 0


# -- a config file that cannot be read --------------------------------------------------------------------------
def unreadable_config(tmp_path: Path, case: str) -> tuple[str, str]:
    """A --config argument that is no usable file, and the reason the message gives in parentheses."""
    if case == "missing":
        return str(tmp_path / "missing.json"), "(FileNotFoundError)"
    if case == "folder":
        return str(tmp_path), "(IsADirectoryError)"
    path = tmp_path / "config.json"
    path.write_text('{"api_token": "t", ' if case == "not JSON" else '["api_token"]')
    return str(path), "(JSONDecodeError)" if case == "not JSON" else "must hold a JSON object"


CASES = ["missing", "folder", "not JSON", "not an object"]


@pytest.mark.parametrize("case", CASES)
def test_check_answers_an_unreadable_config_file_with_a_failed_status_naming_it(tmp_path, case):
    path, reason = unreadable_config(tmp_path, case)

    result = run_connector(["check", "--config", path])

    assert result.returncode == 0 and result.stderr == b"", result.stderr.decode()
    assert [m["type"] for m in messages_of(result.stdout)] == ["CONNECTION_STATUS"]  # one line, no TRACE
    status = messages_of(result.stdout)[0]["connectionStatus"]
    assert status["status"] == "FAILED"
    assert path in status["message"] and reason in status["message"]
    assert "destination-scarf spec" in status["message"]  # what to give instead
    assert b"Traceback" not in result.stdout


def test_every_command_names_an_unreadable_config_file_and_the_fix(tmp_path):
    """The other commands say the same as check: the protocol ones in their TRACE, the others on stderr.
    (One reader of the file serves them all, so one kind of unreadable file stands for the others here.)"""
    path, _ = unreadable_config(tmp_path, "missing")
    raw_catalog = write_json(tmp_path / "catalog.json", catalog("downloads"))
    check = messages_of(run_connector(["check", "--config", path]).stdout)[0]["connectionStatus"]["message"]

    for command in (["discover", "--config", path], ["write", "--config", path, "--catalog", raw_catalog]):
        result = run_connector(command)
        assert result.returncode == 1 and result.stderr == b"", result.stderr.decode()
        *logs, trace = messages_of(result.stdout)
        assert trace["trace"]["error"]["message"] == check and trace["trace"]["error"]["failure_type"] == "config_error"
        if command[0] == "write":  # a sync says why it ended in its log too
            assert [log["log"] for log in logs] == [{"level": "ERROR", "message": check}]
    for command in (["imports", "--config", path], ["preview", "--config", path, "--catalog", raw_catalog]):
        result = run_connector(command)
        assert (result.returncode, result.stdout, result.stderr.decode()) == (1, b"", f"error: {check}\n")
