"""Every option of the connector, declared once: its name, type, default, bounds, title and help.

From this table come the three things that used to be written separately: `spec.json` (what Airbyte
shows and validates), the defaults, and the parsing of simple options with messages that name the
field (`config.py`). The structured options (target, field mappings, custom variables, the dead-letter
store) carry their JSON schema here and their own parsers in `config.py`. `spec.json` is generated
(`make spec`), and a test fails when it differs from what this module produces.

The bottom of the package: it imports nothing of the connector but the dead-letter store's own schema, so
every layer can use its words.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal, get_args

from destination_scarf.dead_letter.settings import SPEC_FRAGMENT as OBJECT_STORAGE_SCHEMA

try:
    VERSION = metadata.version("destination-scarf")
except metadata.PackageNotFoundError:  # running from a source tree that was not installed
    VERSION = "0.0.0+source"

# The words of the configuration, each a `Literal` used end to end (config, mapping, sync, Scarf client).
TargetKind = Literal["multi_artifact", "package", "tracking_pixel"]
OnInvalidRecord = Literal["fail", "skip"]
OnFailedEvents = Literal["fail", "warn"]
UniqueIdMode = Literal["deterministic", "as_mapped", "off"]
CustomVariablesMode = Literal["all", "listed", "none"]
StatusPolling = Literal["list", "by_id"]

#: Scarf's event fields (its `Event` schema), the values of a field mapping's `scarf_field`.
SCARF_FIELDS = (
    "$time",
    "$unique_id",
    "$package",
    "$tracking_pixel",
    "$version",
    "$type",
    "$remote_address",
    "$user_agent",
    "$domain",
    "$referrer",
    "$headers",
)

DEFAULT_API_URL = "https://api.scarf.sh"
#: Scarf's documented per-account limit on active imports.
SCARF_MAX_ACTIVE_IMPORTS = 15
OWNER_REGEX = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
UUID_REGEX = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

GROUPS = (("connection", "Connection"), ("mapping", "Field mapping"), ("errors", "Error handling"),
          ("advanced", "Advanced"))


@dataclass(frozen=True, kw_only=True)
class Option:
    """One top-level key of the config. `kind` "integer" and "choice" are parsed from this declaration alone;
    the others have a parser of their own in config.py."""

    key: str
    title: str
    description: str
    group: str
    kind: Literal["string", "integer", "choice", "structured"]
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    choices: tuple[str, ...] = ()
    required: bool = False
    secret: bool = False
    hidden: bool = False  # for pipelines and the emulator, not for the Airbyte UI
    schema: dict[str, Any] = field(default_factory=dict)  # what else the JSON schema says (pattern, oneOf, ...)

    def json_schema(self, order: int) -> dict[str, Any]:
        out: dict[str, Any] = {"title": self.title, "description": self.description}
        if self.kind == "integer":
            out.update(type="integer", minimum=self.minimum, maximum=self.maximum)
        elif self.kind == "choice":
            out.update(type="string", enum=list(self.choices))
        elif self.kind == "string":
            out["type"] = "string"
        if self.default is not None:
            out["default"] = self.default
        out.update(self.schema)
        if self.secret:
            out["airbyte_secret"] = True
        if self.hidden:
            out["airbyte_hidden"] = True
        out.update(order=order, group=self.group)
        return out


def _target_variant(title: str, kind: str, id_key: str | None = None, id_title: str = "", api: str = "") -> dict:
    variant: dict[str, Any] = {
        "title": title, "type": "object", "required": ["target_type"],
        "properties": {"target_type": {"type": "string", "const": kind, "default": kind, "order": 0}},
    }
    if id_key:
        variant["required"].append(id_key)
        variant["properties"][id_key] = {
            "title": id_title, "description": f"The {id_title[:-3].lower()}'s id, from the Scarf app or the {api} API.",
            "type": "string", "pattern": UUID_REGEX,
            "pattern_descriptor": "a UUID, e.g. abc01234-0000-0000-0000-000000000000", "order": 1,
        }
    return variant


def _mode_variant(title: str, mode: str, **extra: Any) -> dict:
    properties: dict[str, Any] = {"mode": {"type": "string", "const": mode, "default": mode}}
    properties.update(extra)
    return {"title": title, "type": "object", "required": ["mode", *extra], "properties": properties}


_FIELD_RULE = {
    "type": "object",
    "required": ["scarf_field"],
    "properties": {
        "scarf_field": {"title": "Scarf Field", "type": "string", "enum": list(SCARF_FIELDS), "order": 0},
        "source_field": {"title": "Source Field", "type": "string", "minLength": 1, "order": 1,
                         "description": "The record field to read; a dotted path reads a nested field (request.ip)."},
        "constant": {"title": "Constant", "type": "string", "minLength": 1, "order": 2,
                     "description": "A fixed value instead of a source field, e.g. download for $type."},
        "stream": {"title": "Stream", "type": "string", "order": 3,
                   "description": "Only for this stream (its name, or namespace.name). Empty: every stream."},
    },
    # Exactly one of source_field and constant: an entry with neither (or both) is refused by the UI too.
    "oneOf": [
        {"title": "From a source field", "required": ["source_field"], "not": {"required": ["constant"]}},
        {"title": "A constant", "required": ["constant"], "not": {"required": ["source_field"]}},
    ],
}

OPTIONS: tuple[Option, ...] = (
    Option(key="api_token", title="API Token", group="connection", kind="string", required=True, secret=True,
           description="A Scarf API token with access to the owner below. Create one in the Scarf app under your "
                       "account settings, API tokens."),
    Option(key="owner", title="Owner", group="connection", kind="string", required=True,
           description="The Scarf user or organization that owns the packages and tracking pixels, as it appears "
                       "in Scarf URLs (app.scarf.sh/<owner>/...).",
           schema={"pattern": OWNER_REGEX, "pattern_descriptor": "letters, digits, '.', '_' or '-', e.g. my-org",
                   "examples": ["my-org"]}),
    Option(key="target", title="Import Target", group="connection", kind="structured", required=True,
           default={"target_type": "multi_artifact"},
           description="Where the events go. Multi-artifact: each event names its package ($package) or tracking "
                       "pixel ($tracking_pixel). One package or one tracking pixel: every event goes to that "
                       "artifact.",
           schema={"type": "object", "oneOf": [
               _target_variant("Multiple packages and pixels (IDs in each event)", "multi_artifact"),
               _target_variant("One package", "package", "package_id", "Package ID", "packages"),
               _target_variant("One tracking pixel", "tracking_pixel", "tracking_pixel_id", "Tracking Pixel ID",
                               "tracking pixels"),
           ]}),
    Option(key="field_mappings", title="Field Mappings", group="mapping", kind="structured", default=[],
           description="Which source field (or constant) fills each Scarf field. Without an entry, a source field "
                       "already named like Scarf's ($time, or time without the $) is used. An entry without a "
                       "stream applies to every stream; an entry with a stream overrides it for that stream.",
           schema={"type": "array", "items": _FIELD_RULE}),
    Option(key="custom_variables", title="Custom Variables", group="mapping", kind="structured",
           default={"mode": "all"},
           description="Fields that no Scarf field uses become custom variables (nested objects as dotted keys, "
                       "values as text, nulls dropped).",
           schema={"type": "object", "oneOf": [
               _mode_variant("All remaining fields", "all"),
               _mode_variant("Only listed fields", "listed", fields={
                   "title": "Fields", "description": "Source field names (or dotted paths) to send as custom "
                                                     "variables.", "type": "array", "items": {"type": "string"}}),
               _mode_variant("None", "none"),
           ]}),
    Option(key="unique_id_mode", title="Event IDs", group="mapping", kind="choice", default="deterministic",
           choices=get_args(UniqueIdMode),
           description="deterministic: every event gets a $unique_id derived from the stream and the mapped "
                       "$unique_id field, else the primary key (deduped syncs), else the event's content, so a "
                       "re-sent or re-synced event replaces itself in Scarf instead of counting twice. as_mapped: "
                       "the same, but a mapped $unique_id is sent exactly as the source has it, so Scarf "
                       "deduplicates against ids you already import with (not namespaced by stream: the same id in "
                       "two streams is one event). off: no $unique_id (Scarf counts every send; failed uploads are "
                       "then never re-sent)."),
    Option(key="event_time_window_days", title="Event Age Limit (days)", group="mapping", kind="integer",
           default=7, minimum=0, maximum=36500,
           description="Events whose $time is older than this many days are rejected before upload. Scarf does not "
                       "import events more than 7 days older than the import (since June 2026). 0 disables the "
                       "check."),
    Option(key="on_invalid_record", title="On Invalid Record", group="errors", kind="choice", default="fail",
           choices=get_args(OnInvalidRecord),
           description="fail: stop the sync at the first record that cannot become a valid Scarf event, naming the "
                       "stream, record position, field and reason. skip: count it as rejected, log the first "
                       "reasons, keep it in the dead-letter store or file if one is set, and go on."),
    Option(key="rejected_records_path", title="Rejected Records File", group="errors", kind="string", hidden=True,
           description="For docker run pipelines with a mounted volume: append each rejected record, with where "
                       "and why and its Airbyte message verbatim, to this NDJSON file (created with mode 0600). "
                       "In Airbyte, use the object storage below instead. Empty: not written."),
    Option(key="on_failed_events", title="On Events Failed By Scarf", group="errors", kind="choice", default="fail",
           choices=get_args(OnFailedEvents),
           description="When an import finishes with events Scarf could not import (or did not count). fail: stop "
                       "the sync with the counts and reasons (no state is saved past them). warn: log them, count "
                       "them as rejected, keep them in the dead-letter store or file if one is set, and go on."),
    Option(key="object_storage_config", title=OBJECT_STORAGE_SCHEMA["title"], group="errors", kind="structured",
           description=OBJECT_STORAGE_SCHEMA["description"],
           schema={k: v for k, v in OBJECT_STORAGE_SCHEMA.items() if k not in ("title", "description", "order",
                                                                              "group")}),
    Option(key="max_concurrent_imports", title="Max Concurrent Imports", group="advanced", kind="integer",
           default=4, minimum=1, maximum=SCARF_MAX_ACTIVE_IMPORTS,
           description="Imports this sync keeps in flight at once. Scarf allows 15 active imports per account, "
                       "shared with other tools and syncs."),
    Option(key="batch_max_events", title="Events Per Import", group="advanced", kind="integer", default=20_000,
           minimum=1, maximum=5_000_000, description="An import batch closes after this many events."),
    Option(key="batch_max_megabytes", title="Batch Size Limit (MB)", group="advanced", kind="integer", default=64,
           minimum=1, maximum=4096,
           description="An import batch closes when its uncompressed NDJSON reaches this size."),
    Option(key="batch_max_age_seconds", title="Batch Age Limit (seconds)", group="advanced", kind="integer",
           default=300, minimum=1, maximum=840,
           description="An import batch closes this long after its first event, so that states keep being saved on "
                       "slow sources."),
    Option(key="import_timeout_minutes", title="Import Timeout (minutes)", group="advanced", kind="integer",
           default=120, minimum=1, maximum=1440,
           description="How long to wait for one import to be processed by Scarf before the sync fails. Status "
                       "polls ride out API errors until then."),
    Option(key="slot_wait_minutes", title="Import Slot Patience (minutes)", group="advanced", kind="integer",
           default=60, minimum=0, maximum=1440,
           description="How long to keep retrying when all 15 import slots of the account are busy (HTTP 422) "
                       "before the sync fails."),
    Option(key="upload_retry_minutes", title="Upload Retry Budget (minutes)", group="advanced", kind="integer",
           default=15, minimum=1, maximum=1440,
           description="How long one batch's upload keeps retrying through API errors, timeouts and outages (HTTP "
                       "5xx, 429, dropped connections) before the sync fails. A re-sent upload never counts an "
                       "event twice: uploads are only re-sent when every event carries a $unique_id or the request "
                       "provably never reached Scarf."),
    Option(key="status_polling", title="Import Status Polling", group="advanced", kind="choice", default="list",
           choices=get_args(StatusPolling), hidden=True,
           description="list: one read of the account's imports list answers for every import in flight, and an "
                       "import is read by id once it has left the list (the fewest API calls Scarf bills). by_id: "
                       "each import is read by id on its own, as before 0.2 (more calls; for an account whose "
                       "imports list misbehaves)."),
    Option(key="api_url", title="API URL", group="advanced", kind="string", default=DEFAULT_API_URL, hidden=True,
           description="Scarf's API base URL. Change it only for a proxy or a local emulator; it must be https "
                       "unless the host is a loopback address.",
           schema={"pattern": "^https?://", "pattern_descriptor": "https://host[:port]"}),
)

BY_KEY = {option.key: option for option in OPTIONS}


@dataclass(frozen=True, kw_only=True)
class RetiredOption:
    """A top-level key that a release removed or renamed, which configs saved before it may still hold.

    Airbyte keeps a destination's config as the user saved it, and its rule for connectors is that removing or
    renaming an option must never break a saved config. So a retired key is accepted, with a warning that names
    what replaced it: a renamed option's value is read as the new option's (when the config does not set that
    one too), a removed option's value is ignored.
    """

    key: str
    retired_in: str  #: the release that retired it, e.g. "0.3.0"
    replaced_by: str  #: what to use instead, for the warning: "field_mappings", or a sentence
    renamed_to: str | None = None  #: the option that now reads its value, for a plain rename


#: Every option retired so far. None yet: every option since 0.1.0 is in OPTIONS. To retire one, remove it from
#: OPTIONS and add it here in the same change (config.py then accepts it with a warning; a test checks the table).
RETIRED: tuple[RetiredOption, ...] = ()


def spec() -> dict[str, Any]:
    """The connector specification (what `spec` prints and spec.json holds)."""
    properties: dict[str, Any] = {}
    orders = {"connection": 0, "mapping": 10, "errors": 20, "advanced": 30}
    for option in OPTIONS:
        properties[option.key] = option.json_schema(orders[option.group])
        orders[option.group] += 1
    return {
        "documentationUrl": "https://docs.scarf.sh/importing-events/",
        "supported_destination_sync_modes": ["append", "append_dedup"],
        "supportsIncremental": True,
        "supportsNormalization": False,
        "supportsDBT": False,
        "connectionSpecification": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "title": "Scarf Destination Spec",
            "type": "object",
            "required": [option.key for option in OPTIONS if option.required],
            # Airbyte's rule: a config saved by another version must keep working. config.py accepts retired
            # keys (RETIRED) and keys of other versions with a warning, and refuses only typos of an option.
            "additionalProperties": True,
            "groups": [{"id": group, "title": title} for group, title in GROUPS],
            "properties": properties,
        },
    }


def spec_json() -> str:
    """spec.json's text: the spec, two-space indented, as `make spec` writes it."""
    return json.dumps(spec(), indent=2, ensure_ascii=False) + "\n"

