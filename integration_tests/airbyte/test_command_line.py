"""The command line as people use it: `--version`, output piped into a reader that stops early, and a config
file that is missing or unreadable."""

from __future__ import annotations

from importlib import metadata

from support import run_connector


def test_version_prints_the_installed_version_and_exits_0():
    result = run_connector(["--version"])

    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == f"destination-scarf {metadata.version('destination-scarf')}\n"
    assert result.stderr == b""
