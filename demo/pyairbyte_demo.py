"""Run destination-scarf under PyAirbyte, against the local emulator (`make pyairbyte-demo`).

PyAirbyte is not a dependency of this repo: the Makefile installs it into its own virtualenv
(.venv-pyairbyte), next to this package, then runs this script there.
"""

from __future__ import annotations

import sys
from pathlib import Path

import airbyte as ab

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scarf_emulator import ScarfEmulator  # noqa: E402  (the repo root is on the path only now)

PACKAGE = "8d2f6a1e-3b4c-4d5e-9f60-7a8b9c0d1e2f"
BIN = Path(sys.executable).parent


def main() -> None:
    with ScarfEmulator(tokens={"demo-token": {"demo-org"}}, packages={"demo-org": [PACKAGE]}) as emulator:
        source = ab.get_source(
            "source-downloads-demo",
            local_executable=str(BIN / "downloads-demo-source"),
            config={"package_id": PACKAGE, "count": 500},
        )
        source.select_all_streams()
        scarf = ab.get_destination(
            "destination-scarf",
            local_executable=str(BIN / "destination-scarf"),
            config={"api_token": "demo-token", "owner": "demo-org", "api_url": emulator.url,
                    "target": {"target_type": "multi_artifact"}},
        )
        result = scarf.write(source, cache=False)
        arrived = emulator.event_count("demo-org")
        print(f"PyAirbyte wrote through destination-scarf: {arrived} events arrived in the emulator")
        if arrived != 500:
            raise SystemExit(f"expected 500 events, got {arrived} ({result})")


if __name__ == "__main__":
    main()
