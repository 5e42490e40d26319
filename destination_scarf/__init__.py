"""destination-scarf: an Airbyte destination that imports records into Scarf as events."""

from importlib import metadata

try:
    __version__ = metadata.version("destination-scarf")
except metadata.PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"

from destination_scarf.destination import DestinationScarf  # noqa: E402  (after __version__, which it uses)

__all__ = ["DestinationScarf", "__version__"]
