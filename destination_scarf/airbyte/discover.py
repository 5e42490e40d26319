"""`discover` for Airbyte's data activation: which objects this destination can write, with their fields.

The Python CDK has no destination `discover`, so this module builds the protocol's DESTINATION_CATALOG
message itself. It describes one object, the configured target (events of the multi-artifact
endpoint, of one package, or of one tracking pixel), in two operations: `append`, and `append_dedup`
matched on `$unique_id`. Its JSON schema is Scarf's `Event` (from the shared OpenAPI spec) plus custom
variables; Airbyte's mapping UI renames source columns to these `$` names, and the writer's
pass-through mapping takes them as they are.
"""

from __future__ import annotations

import copy
import functools
import json
from importlib import resources
from typing import Any

from destination_scarf.config import Target
from destination_scarf.errors import ScarfConfigError
from destination_scarf.options import TargetKind
from destination_scarf.sync.catalog import StreamInfo

#: The one object each target offers for data activation.
OBJECT_NAMES: dict[TargetKind, str] = {
    "multi_artifact": "events",
    "package": "package_events",
    "tracking_pixel": "tracking_pixel_events",
}


@functools.cache
def scarf_event_schema() -> dict[str, Any]:
    """Scarf's `Event` schema, read from the OpenAPI spec shipped in the package."""
    spec = json.loads(resources.files("destination_scarf").joinpath("resources/event-import.openapi.json").read_text())
    return spec["components"]["schemas"]["Event"]


#: What the writer accepts as `$time`: ISO 8601 date-times and dates, epoch numbers, and numeric text
#: (seconds, milliseconds or microseconds, chosen by magnitude). It always sends ISO 8601 UTC.
_TIME_AS_WRITTEN: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date"},
        {"type": "number"},
        {"type": "string", "pattern": r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$"},
    ],
}


def object_name(target: Target) -> str:
    return OBJECT_NAMES[target.kind]


def object_schema(target: Target) -> dict[str, Any]:
    """The JSON schema of the target's events: Scarf's fields, and any other key as a custom variable."""
    event = copy.deepcopy(scarf_event_schema())
    properties = {
        name: {key: value for key, value in prop.items() if not key.startswith("x-")}
        for name, prop in event["properties"].items()
    }
    if target.kind != "multi_artifact":
        # The endpoint decides the artifact: the writer drops these fields in single-target mode.
        properties.pop("$package", None)
        properties.pop("$tracking_pixel", None)
    # Scarf's schema says a date-time string; the writer accepts more and converts it (timeparse.py), so the
    # mapper in Airbyte must not refuse what would import fine.
    properties["$time"] = _TIME_AS_WRITTEN | {
        key: value for key, value in properties["$time"].items() if key in ("description", "title")}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "description": (
            "A Scarf event. `$` fields are Scarf's; any other field becomes a custom variable (sent as text)."
            + (" Each event needs $package or $tracking_pixel." if target.kind == "multi_artifact" else "")
        ),
        "required": list(event.get("required", ["$time"])),
        "properties": properties,
        "additionalProperties": True,
    }


def destination_catalog_message(target: Target) -> dict[str, Any]:
    """The DESTINATION_CATALOG message for `discover`."""
    name, schema = object_name(target), object_schema(target)
    return {
        "type": "DESTINATION_CATALOG",
        "destination_catalog": {
            "operations": [
                {"object_name": name, "sync_mode": "append", "json_schema": schema},
                {"object_name": name, "sync_mode": "append_dedup", "json_schema": schema,
                 "matching_keys": [["$unique_id"]]},
            ]
        },
    }


def check_object_names(streams: list[StreamInfo], target: Target) -> None:
    """A stream configured (through data activation) to write an object this target does not offer is an error."""
    expected = object_name(target)
    for stream in streams:
        if stream.object_name and stream.object_name != expected:
            raise ScarfConfigError(
                f"Stream '{stream.label}' is mapped to destination object '{stream.object_name}', but this "
                f"destination's target ({target.describe()}) offers only '{expected}'. Re-run discover and "
                "map the stream again, or change the destination's target."
            )
