"""What a sync says about itself in the logs: its mapping plan, its progress, its warnings, its summary.

Only names and counts, never record values. Logged once where once is enough (the plan at the start,
per-stream warnings at the end), and progress at most every `interval` seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotations only
    from destination_scarf.dead_letter import RejectLog
    from destination_scarf.mapping import EventMapper
    from destination_scarf.scarf.client import CallKind
    from destination_scarf.scarf.imports import ImportSlots
    from destination_scarf.sync.catalog import StreamInfo
    from destination_scarf.sync.checkpoints import Checkpoints

logger = logging.getLogger("airbyte")

#: The sync summary's words for the kinds of calls (scarf/client.py `CallKind`).
_CALL_WORDS = {"upload": "uploads", "status": "status reads by id", "status list": "imports list reads",
               "log": "log reads", "abort": "aborts", "pre-flight": "pre-flight", "artifact": "artifact reads",
               "artifact list": "package and pixel list reads", "list": "list reads"}


def _key_text(key: object) -> str:
    """A primary key as users read it ("id", "org, id", "request.id"); "" when there is none."""
    if not isinstance(key, list):
        return ""
    paths = [".".join(str(part) for part in path) for path in key if isinstance(path, list) and path]
    return ", ".join(paths)


class SyncLog:
    def __init__(self, *, streams: Sequence[StreamInfo], mappers: Sequence[EventMapper], interval: float,
                 clock: Callable[[], float]) -> None:
        self._streams = streams
        self._mappers = mappers
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._last_progress = self._started
        self._warned_ignored: set[int] = set()

    def plan(self) -> None:
        """Once at the start: where each Scarf field of each stream comes from (what to look at when a
        mapping is wrong)."""
        for stream, mapper in zip(self._streams, self._mappers, strict=True):
            logger.info("Stream '%s' maps to Scarf as: %s", stream.label, mapper.describe_plan())
            if stream.truncate_generation is not None:
                logger.warning(
                    "Stream '%s' asks for a refresh that replaces its data (generation %d), but events already in "
                    "Scarf cannot be removed: they stay. Re-sent events override their earlier copies where "
                    "$unique_id is deterministic; others are added.", stream.label, stream.truncate_generation)
            self._warn_key_unused(stream, mapper)

    @staticmethod
    def _warn_key_unused(stream: StreamInfo, mapper: EventMapper) -> None:
        """An `append` stream with a primary key: its ids come from content, not from the key. Said once, at the
        start, since switching a stream between Append and Append + Deduped changes every id (and doubles events)."""
        key = _key_text(stream.declared_primary_key)
        if stream.sync_mode != "append" or not key or not mapper.ids.enabled or mapper.unique_id_mapped:
            return
        logger.warning(
            "Stream '%s' is synced with Append, but it has a primary key (%s). Under Append a $unique_id comes from "
            "the event's content, not from the key: a row whose content changes becomes a new event in Scarf (the "
            "earlier one stays), and switching the stream between Append and Append + Deduped changes every id. "
            "To make the key the event's id, choose Append + Deduped for this stream, or map $unique_id to the key "
            "field in field_mappings.", stream.label, key)

    def progress(self, *, records: int, imports: ImportSlots, checkpoints: Checkpoints) -> None:
        now = self._clock()
        if now - self._last_progress < self._interval:
            return
        self._last_progress = now
        self._warn_ignored_fields()
        stats = imports.stats
        logger.info(
            "Progress: %d records read, %d events sent, %d imports in flight, %d done, %d events imported, "
            "%d failed, %d states waiting", records, imports.events_uploaded, imports.in_flight, stats.imports_done,
            stats.events_imported, stats.events_failed, checkpoints.pending_states,
        )

    def summary(self, *, records: int, imports: ImportSlots, checkpoints: Checkpoints, rejects: RejectLog,
                calls: Mapping[CallKind, int], stopped_early: bool) -> None:
        self._warn_ignored_fields()
        self._warn_repeated_content()
        self._warn_marked_fields()
        stats = imports.stats
        duration = max(self._clock() - self._started, 1e-9)
        logger.info(
            "Sync summary%s: %d records read, %d events sent in %d imports, %d imported, %d failed, %d rejected "
            "before upload, %d states echoed, %.1f s (%.0f records/s), %.1f MB sent",
            " (the sync stopped early)" if stopped_early else "", records, imports.events_uploaded,
            stats.imports_started, stats.events_imported, stats.events_failed, rejects.count, checkpoints.echoed,
            duration, records / duration, stats.wire_bytes / 1e6,
        )
        total = sum(calls.values())
        by_kind = ", ".join(f"{_CALL_WORDS.get(kind, kind)} {count}" for kind, count in calls.items() if count)
        per_import = f", {total / stats.imports_started:.1f} per import" if stats.imports_started else ""
        logger.info("API calls to Scarf (Scarf bills each): %d%s%s", total, f" ({by_kind})" if by_kind else "",
                    per_import)

    def _warn_ignored_fields(self) -> None:
        """Once per stream: name the `$` keys that are not Scarf fields and were dropped (names, not values)."""
        for index, mapper in enumerate(self._mappers):
            if mapper.ignored_fields and index not in self._warned_ignored:
                self._warned_ignored.add(index)
                logger.warning("Stream '%s': dropped %d `$` field(s) that are not Scarf fields: %s",
                               self._streams[index].label, len(mapper.ignored_fields),
                               ", ".join(sorted(mapper.ignored_fields)[:10]))

    def _warn_marked_fields(self) -> None:
        """Once per stream, at the end: the fields the source or the platform nulled or truncated that fed no
        Scarf key field, so their events were sent with what arrived."""
        for stream, mapper in zip(self._streams, self._mappers, strict=True):
            if mapper.marked_records:
                logger.warning(
                    "Stream '%s': %d record(s) arrived with %d field(s) that the source or the platform nulled or "
                    "truncated (record.meta.changes). None of them fed $time, $unique_id or the artifact field, so "
                    "these events were sent with the values as they arrived: their custom variables may be missing "
                    "or cut short, and where the $unique_id is a hash of the content, the record sent again in full "
                    "later gets another id.", stream.label, mapper.marked_records, mapper.marked_fields)

    def _warn_repeated_content(self) -> None:
        """Once per stream, at the end: how many records repeated another record's content (numbered ids)."""
        for stream, mapper in zip(self._streams, self._mappers, strict=True):
            if mapper.repeated:
                logger.warning(
                    "Stream '%s': %d record(s) had the same content as an earlier record between the same two "
                    "states; each was kept as its own event, with a $unique_id numbered by occurrence. Such ids "
                    "depend on the order of the records: map a $unique_id field (field_mappings) or sync with a "
                    "primary key (append_dedup) to make them independent of it.", stream.label, mapper.repeated)
