"""Console entry point: `destination-scarf spec|check|write ...`."""

from __future__ import annotations

import sys

from destination_scarf.destination import DestinationScarf


def run() -> None:
    DestinationScarf().run(sys.argv[1:])
