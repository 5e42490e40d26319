"""destination-scarf: an Airbyte destination that imports records into Scarf as events.

Importing the package is cheap: `DestinationScarf` (which needs the Airbyte CDK, about a second to
import) is loaded only when it is asked for, so the pure modules (timeparse, mapping, checkpoints)
can be used and tested without the CDK.
"""

from importlib import metadata
from typing import Any

try:
    __version__ = metadata.version("destination-scarf")
except metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"

__all__ = ["DestinationScarf", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "DestinationScarf":
        from destination_scarf.airbyte.destination import DestinationScarf

        return DestinationScarf
    raise AttributeError(f"module 'destination_scarf' has no attribute {name!r}")
