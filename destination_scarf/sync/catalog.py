"""The streams a sync writes, read from the configured catalog's raw JSON.

Read raw (not through the CDK's dataclasses) so that fields the CDK does not model yet, such as
`destination_object_name` from Airbyte's data-activation flow, stay available.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from destination_scarf.errors import ScarfConfigError
from destination_scarf.mapping.numbers import numeric_paths


@dataclass(frozen=True, kw_only=True)
class StreamInfo:
    index: int
    name: str
    namespace: str | None
    sync_mode: str
    #: The primary key ids are made from: the stream's key under `append_dedup`, else None.
    primary_key: list[list[str]] | None
    object_name: str | None = None
    #: The key the catalog declares (configured, or else source-defined), whatever the sync mode: under `append`
    #: ids do not come from it, which the sync log says once.
    declared_primary_key: list[list[str]] | None = None
    #: The fields the stream's JSON schema declares numeric, as key paths: their canonical number makes ids.
    numeric_fields: frozenset[tuple[str, ...]] = frozenset()
    #: The configured stream's `sync_id`: Airbyte's job id, the same for every stream of a sync (None outside).
    sync_id: int | None = None
    #: The platform asks to replace the stream's data (a refresh that truncates): generation N, minimum N > 0.
    truncate_generation: int | None = None

    @property
    def label(self) -> str:
        """The stream as users name it in messages: `namespace.name` or `name`."""
        return f"{self.namespace}.{self.name}" if self.namespace else self.name


SUPPORTED_SYNC_MODES = ("append", "append_dedup")


def unsupported_sync_mode_message(stream: str, sync_mode: str) -> str:
    """Why a destination sync mode is refused, and the fix where people meet it: Airbyte's UI, PyAirbyte.

    PyAirbyte's default write strategy asks for `overwrite` on every stream that has neither a primary
    key nor a cursor (a file, a log), so that is where most users see this message.
    """
    return (
        f"Stream '{stream}' asks for destination sync mode '{sync_mode}', which Scarf cannot do: Scarf "
        "events cannot be deleted or overwritten, so this destination only appends (append, append_dedup). "
        "In the Airbyte UI, choose the Append or Append + Deduped sync mode for this stream. "
        "Under PyAirbyte, whose default write strategy asks for overwrite when a stream has neither a "
        'primary key nor a cursor, write with destination.write(source, write_strategy="append").'
    )


def _truncate_generation(configured: Mapping[str, Any]) -> int | None:
    """The generation of a refresh that replaces the stream's data (Airbyte sets minimum_generation_id equal
    to generation_id, above 0), else None."""
    generation, minimum = configured.get("generation_id"), configured.get("minimum_generation_id")
    if type(generation) is int and generation > 0 and minimum == generation:
        return generation
    return None


def load_catalog_file(path: str) -> Any:
    """The configured catalog's JSON; a missing or unreadable file is a config error that says so."""
    try:
        return orjson.loads(Path(path).read_bytes())
    except OSError as error:
        raise ScarfConfigError(f"Cannot read the configured catalog {path} ({type(error).__name__}): pass the "
                               "path of a readable catalog file with --catalog.") from None
    except orjson.JSONDecodeError:
        raise ScarfConfigError(f"The configured catalog {path} is not valid JSON.") from None


def parse_catalog(raw: Mapping[str, Any]) -> list[StreamInfo]:
    """The configured streams in catalog order; raises a config error for a malformed catalog."""
    streams = raw.get("streams") if isinstance(raw, Mapping) else None
    if not isinstance(streams, list):
        raise ScarfConfigError("The configured catalog has no `streams` list.")
    result = []
    for index, configured in enumerate(streams):
        stream = configured.get("stream") if isinstance(configured, Mapping) else None
        if not isinstance(stream, Mapping) or not isinstance(stream.get("name"), str):
            raise ScarfConfigError(f"Stream #{index + 1} of the configured catalog has no name.")
        sync_mode = configured.get("destination_sync_mode") or "append"
        if sync_mode not in SUPPORTED_SYNC_MODES:
            raise ScarfConfigError(unsupported_sync_mode_message(stream["name"], sync_mode))
        primary_key = configured.get("primary_key") or stream.get("source_defined_primary_key") or None
        result.append(
            StreamInfo(
                index=index,
                name=stream["name"],
                namespace=stream.get("namespace") or None,
                sync_mode=sync_mode,
                primary_key=primary_key if sync_mode == "append_dedup" else None,
                declared_primary_key=primary_key,
                numeric_fields=numeric_paths(stream.get("json_schema")),
                sync_id=sync_id if type(sync_id := configured.get("sync_id")) is int else None,
                object_name=configured.get("destination_object_name") or None,
                truncate_generation=_truncate_generation(configured),
            )
        )
    if len(result) > 65535:
        raise ScarfConfigError("The configured catalog has more than 65535 streams.")
    return result


class StreamIndex:
    """Finds a record's stream fast: by (namespace, name), else by name when that is unambiguous."""

    def __init__(self, streams: list[StreamInfo]) -> None:
        #: (namespace or None, name) -> index: the reader's hot loop looks records up here first.
        self.exact = {(s.namespace, s.name): s.index for s in streams}
        by_name: dict[str, list[StreamInfo]] = {}
        for s in streams:
            by_name.setdefault(s.name, []).append(s)
        self._by_name = {name: found[0] for name, found in by_name.items() if len(found) == 1}

    def find(self, namespace: str | None, name: Any) -> int | None:
        """The stream index, or None. A namespace missing on one side only (record or catalog) still matches."""
        try:
            index = self.exact.get((namespace or None, name))
        except TypeError:  # an unhashable stream name or namespace (a list, an object): no stream of ours
            return None
        if index is None and isinstance(name, str):
            only = self._by_name.get(name)
            if only is not None and (not namespace or only.namespace is None):
                index = only.index
        return index
