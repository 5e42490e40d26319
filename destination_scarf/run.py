"""Console entry point: `destination-scarf spec|check|discover|write|imports|import-log|abort ...`."""

from __future__ import annotations

from destination_scarf.cli import run

__all__ = ["run"]
