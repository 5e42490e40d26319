"""The pure modules do not need the Airbyte CDK: importing them is cheap and works without it."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["destination_scarf.mapping.timeparse", "destination_scarf.mapping",
                                    "destination_scarf.sync.checkpoints", "destination_scarf"])
def test_importing_a_pure_module_does_not_import_the_cdk(module):
    code = f"import sys, {module}; sys.exit('airbyte_cdk' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0, f"{module} imports airbyte_cdk"
