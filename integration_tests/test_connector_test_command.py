"""`make connector-test`: the CDK's `airbyte-cdk connector test` runs on this connector, passes, and leaves the repo
as it was (the CDK writes its generated tests and report into the connector's folder, here a temporary one)."""

from __future__ import annotations

import subprocess
import sys

from support import ROOT


def test_the_cdks_connector_test_command_passes_offline():
    before = sorted(path.name for path in ROOT.iterdir())
    result = subprocess.run([sys.executable, str(ROOT / "integration_tests" / "run_connector_test.py")],
                            capture_output=True, timeout=600, cwd=ROOT)
    output = (result.stdout + result.stderr).decode()

    assert result.returncode == 0, output[-4000:]
    assert " passed" in output and " failed" not in output and " error" not in output, output[-4000:]
    assert sorted(path.name for path in ROOT.iterdir()) == before  # no .tmp/, build/ or secrets/ left in the repo
