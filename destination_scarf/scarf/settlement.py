"""Settling a `done` import: do Scarf's counts account for every event, and which records failed?

What "done" means for the sync, the core of "nothing lost": Scarf reports the import `done` AND its
counts account for every event of the batch. Events Scarf failed are traced back to their records
through the import's log; events it does not account for at all (a short count) are failures whose
lines are unknown. Both follow `on_failed_events` (applied by the import job).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from destination_scarf.errors import FailedEvents, ImportIncomplete, ScarfError
from destination_scarf.scarf.client import EventImport
from destination_scarf.sync.batching import Batch, LineOrigin

#: How many failed lines to name in a message; the rest are counted.
_SAMPLES = 5


@dataclass(frozen=True)
class FailedLine:
    """An event Scarf reported as failed, traced back to its record."""

    kind: str  # the log entry's type, e.g. failed-to-decode, artifact-not-found
    message: str
    origin: LineOrigin | None
    line: int = 0  # the 1-based line of the batch


@dataclass(frozen=True)
class Settlement:
    """A done import's failures: the ones traced to records, and how many could not be (`unattributed`)."""

    failed_lines: tuple[FailedLine, ...]
    unattributed: int  # failed events missing from the log, plus events Scarf's counts leave out
    problems: str  # what went wrong, for a message; "" when every event was imported
    short: bool  # whether Scarf's counts leave events out

    def error(self) -> ScarfError:
        """The error under `on_failed_events: fail`: the records' fault (config), or Scarf's (transient)."""
        error_type = FailedEvents if self.failed_lines and not self.short else ImportIncomplete
        return error_type(
            f"{self.problems} No state past these records was saved. "
            + ("Fix the records (or the mapping) and re-run, " if self.failed_lines else "Re-run the sync, ")
            + "or set on_failed_events to warn to count such events as rejected and go on.")


def settle(final: EventImport, batch: Batch, *, read_log: Callable[[], list[Mapping[str, Any]]],
           describe_origin: Callable[[LineOrigin], str]) -> Settlement:
    """Compare Scarf's counts with the batch, and read the log (only when events failed) to trace them."""
    failed_lines = tuple(_failed_lines(read_log(), batch)) if final.events_failed_to_import > 0 else ()
    unlisted = max(0, final.events_failed_to_import - len(failed_lines))
    missing = shortfall(final, batch)
    problems = _describe(final, batch, failed_lines, unlisted, missing, describe_origin)
    return Settlement(failed_lines=failed_lines, unattributed=unlisted + missing, problems=problems,
                      short=missing > 0)


def shortfall(final: EventImport, batch: Batch) -> int:
    """Events of the batch that Scarf's counts do not account for (neither imported nor failed)."""
    counted = min(final.events_total, final.events_successfully_imported + final.events_failed_to_import)
    return max(0, batch.events - counted)


def _failed_lines(entries: list[Mapping[str, Any]], batch: Batch) -> list[FailedLine]:
    lines: dict[int, FailedLine] = {}
    for entry in entries:
        line = entry.get("line")
        if entry.get("class") != "error" or type(line) is not int or line in lines:
            continue
        lines[line] = FailedLine(
            kind=str(entry.get("type") or "error")[:60],
            message=_reason_without_values(entry.get("human_friendly_message")),
            origin=batch.origin(line),
            line=line,
        )
    return list(lines.values())


def _describe(final: EventImport, batch: Batch, failed_lines: tuple[FailedLine, ...], unlisted: int,
              missing: int, describe_origin: Callable[[LineOrigin], str]) -> str:
    parts = []
    if final.events_failed_to_import > 0:
        by_kind = Counter(failed.kind for failed in failed_lines)
        kinds = ", ".join(f"{kind}: {count}" for kind, count in by_kind.most_common())
        samples = "; ".join(_describe_failed(failed, describe_origin) for failed in failed_lines[:_SAMPLES])
        more = len(failed_lines) - _SAMPLES
        parts.append(
            f"Scarf could not import {final.events_failed_to_import} of {final.events_total} events of import "
            f"{final.id} (batch {batch.batch_id})"
            + (f" [{kinds}]" if kinds else "")
            + (f": {samples}" if samples else "")
            + (f"; and {more} more" if more > 0 else "")
            + ".")
        if unlisted:
            parts.append(f"{unlisted} failed event(s) were not listed in the import's log.")
    if missing:
        parts.append(
            f"Scarf counted {batch.events - missing} of {batch.events} events of import {final.id} (batch "
            f"{batch.batch_id}) although it reports the import done (events_total {final.events_total}, "
            f"imported {final.events_successfully_imported}, failed {final.events_failed_to_import}): "
            f"{missing} event(s) are not accounted for.")
    return " ".join(parts)


def _describe_failed(failed: FailedLine, describe_origin: Callable[[LineOrigin], str]) -> str:
    where = describe_origin(failed.origin) if failed.origin else "a line outside the batch"
    reason = f" ({failed.message})" if failed.message else ""
    return f"{where}: {failed.kind}{reason}"


def _reason_without_values(message: object) -> str:
    """Scarf's message for a failed line, cut where it may start quoting the event's data.

    Scarf's messages are undocumented; its own examples read "Package not found: <id>", a label, a colon,
    then the value. Sync logs must not carry record values (IP addresses, user agents), so only the label is
    kept. `destination-scarf import-log` shows the full messages to an operator who asks for them.
    """
    return str(message or "").split(":", 1)[0].strip()[:120]
