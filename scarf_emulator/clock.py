"""Time helpers shared by the emulator.

Scarf reports timestamps as ISO 8601 with a trailing ``Z`` (see the guide's sample
``"2023-08-04T13:58:26.021037Z"``); clients parse them, so every timestamp the emulator
emits goes through :func:`iso_z` to keep that one shape.
"""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> datetime:
    """Return an aware UTC timestamp (naive datetimes would compare wrongly with event times)."""
    return datetime.now(timezone.utc)


def iso_z(moment: datetime) -> str:
    """Format an aware datetime the way Scarf does: microseconds and a ``Z`` suffix."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
