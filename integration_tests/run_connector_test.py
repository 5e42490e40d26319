"""`make connector-test`: the Airbyte CDK's own command, `airbyte-cdk connector test`, run on this connector offline.

What the command needs, and how this script gives it that:

- A connector folder named like the connector. The CDK takes the connector's name from the folder's name (after
  resolving symlinks), and from the name the test class (DestinationTestSuiteBase for `destination-...`) and the
  class it tests (`destination_scarf.DestinationScarf`, imported from this virtualenv). A clone may have any name,
  so the script makes a folder `destination-scarf` in a temporary directory, with metadata.yaml and
  acceptance-test-config.yml linked from the repo. The CDK writes its generated test module and its JUnit report
  into that folder, so nothing lands in the repo.
- The scenarios' configs in `secrets/` (acceptance-test-config.yml names them). `airbyte-cdk secrets fetch` would
  fetch them from Airbyte's Google Secret Manager; here they point at a local Scarf emulator that this script runs.
- No network beyond that emulator on loopback. Not a Docker engine either: the suite's image tests (`image_tests`)
  build and run the image, so they are deselected, as in pytest.ini (`docker` is on PATH on the project's machines,
  with no engine behind it, so the suite would not skip them by itself).

Exits with the CDK command's exit code.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "integration_tests")]

from support import new_plain_emulator, write_scenario_configs  # noqa: E402  (the paths above come first)

CONNECTOR = "destination-scarf"


def main() -> int:
    airbyte_cdk = Path(sys.executable).parent / "airbyte-cdk"
    # Plain HTTP to loopback: this script runs outside the test session, whose test CA the HTTPS emulator needs
    # (the CDK's suite checks the connector's conventions, not its transport; the suite runs that over HTTPS).
    with tempfile.TemporaryDirectory(prefix="connector-test-") as scratch, new_plain_emulator() as emulator:
        folder = Path(scratch) / CONNECTOR
        folder.mkdir()
        for name in ("metadata.yaml", "acceptance-test-config.yml"):
            (folder / name).symlink_to(ROOT / name)
        write_scenario_configs(folder / "secrets", emulator)
        command = [str(airbyte_cdk), "connector", "test", str(folder),
                   "--pytest-arg=-m", "--pytest-arg=not image_tests", "--pytest-arg=-p", "--pytest-arg=no:cacheprovider",
                   "--pytest-arg=-rs"]
        print("$", " ".join(command[:3]), CONNECTOR, *command[4:], flush=True)
        return subprocess.run(command, cwd=scratch).returncode


if __name__ == "__main__":
    sys.exit(main())
