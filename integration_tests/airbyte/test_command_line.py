"""The command line as people use it: `--version`, output piped into a reader that stops early, and a config
file that is missing or unreadable."""

from __future__ import annotations

import os
import subprocess
import tempfile
from importlib import metadata

import pytest

from support import (
    OWNER,
    ROOT,
    catalog,
    connector_command,
    download,
    lines,
    make_config,
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
