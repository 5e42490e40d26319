"""destination-scarf: an Airbyte destination that imports records into Scarf as events.

Importing the package is cheap: `DestinationScarf` (which needs the Airbyte CDK, about a second to
import) is loaded only when it is asked for, so the pure modules (mapping, sync.checkpoints) can be
used and tested without the CDK. The layout is the README's Architecture section.
"""

from typing import Any

from destination_scarf.options import VERSION as __version__

__all__ = ["DestinationScarf", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "DestinationScarf":
        from destination_scarf.airbyte.destination import DestinationScarf

        return DestinationScarf
    raise AttributeError(f"module 'destination_scarf' has no attribute {name!r}")
