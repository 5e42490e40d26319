"""The connector's configuration: parsed and validated once, then passed around as typed, frozen values.

The options themselves (names, defaults, bounds, help) are declared once, in `options.py`; this module
turns a raw config into a `ScarfConfig`. `parse_config` collects every problem it finds and raises one
`ScarfConfigError` that lists them all, so a user fixes their config in one round instead of one error
per sync attempt. A key that is not an option is refused when it is a typo of one, naming it (`field_mapping`
would otherwise be ignored in silence); a retired option (`options.RETIRED`) or a key of another version is
accepted with a warning, since a saved config must keep working. Nothing here touches the network; `check` does that.
"""

from __future__ import annotations

import datetime
import difflib
import ipaddress
import logging
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast, get_args

import orjson

from destination_scarf.dead_letter import S3Settings, parse_object_storage
from destination_scarf.errors import ScarfConfigError
from destination_scarf.mapping import FieldRule, MappingConfig, validate_rules
from destination_scarf.options import (
    BY_KEY,
    DEFAULT_API_URL,
    OWNER_REGEX,
    RETIRED,
    SCARF_FIELDS,
    SCARF_MAX_ACTIVE_IMPORTS,
    UUID_REGEX,
    VERSION,
    CustomVariablesMode,
    OnFailedEvents,
    OnInvalidRecord,
    RetiredOption,
    StatusPolling,
    TargetKind,
    UniqueIdMode,
)

__all__ = ["DEFAULT_API_URL", "SCARF_MAX_ACTIVE_IMPORTS", "ScarfConfig", "Target", "load_config_file", "parse_config"]

logger = logging.getLogger("airbyte")

OWNER_PATTERN = re.compile(OWNER_REGEX)
UUID_PATTERN = re.compile(UUID_REGEX)

#: The option naming a single target's artifact.
_TARGET_ID_KEYS: dict[TargetKind, str] = {"package": "package_id", "tracking_pixel": "tracking_pixel_id"}


def _default(key: str) -> Any:
    return BY_KEY[key].default


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where the events go: the multi-artifact endpoint, or one package, or one tracking pixel."""

    kind: TargetKind
    artifact_id: str | None = None

    def describe(self) -> str:
        if self.kind == "package":
            return f"package {self.artifact_id}"
        if self.kind == "tracking_pixel":
            return f"tracking pixel {self.artifact_id}"
        return "multi-artifact import"


@dataclass(frozen=True, kw_only=True)
class BatchLimits:
    """A batch closes at whichever bound it reaches first.

    The age bound keeps checkpoints flowing on slow sources: Airbyte expects a state at least every
    15 minutes while data flows, and a state can only be echoed once its batch is imported.
    """

    max_events: int = _default("batch_max_events")
    max_bytes: int = _default("batch_max_megabytes") * 1024 * 1024
    max_age_seconds: float = float(_default("batch_max_age_seconds"))


@dataclass(frozen=True, kw_only=True)
class ScarfConfig:
    """Everything a sync needs, validated. `api_token` is kept out of `repr` so it never reaches a log."""

    api_token: str = field(repr=False)
    owner: str
    api_url: str = DEFAULT_API_URL
    target: Target = Target(kind="multi_artifact")
    mapping: MappingConfig = MappingConfig()
    batch: BatchLimits = BatchLimits()
    max_concurrent_imports: int = _default("max_concurrent_imports")
    on_invalid_record: OnInvalidRecord = _default("on_invalid_record")
    rejected_records_path: str | None = None
    dead_letter: S3Settings | None = None
    on_failed_events: OnFailedEvents = _default("on_failed_events")
    import_timeout_seconds: float = 60.0 * _default("import_timeout_minutes")
    slot_wait_seconds: float = 60.0 * _default("slot_wait_minutes")
    upload_retry_seconds: float = 60.0 * _default("upload_retry_minutes")
    status_polling: StatusPolling = _default("status_polling")
    #: Not a user option: ISA-L's level 2 (of 0-3) compresses about 10x faster than zlib's 6, for about 15% more
    #: wire bytes (0.185 of the NDJSON size on the benchmark's pessimistic data; the benchmark tracks both).
    gzip_level: int = 2


def load_config_file(path: str) -> dict[str, Any]:
    """The config file's JSON object; an unreadable file is a config error the user can fix.

    Shared by the Airbyte commands (which turn the error into a TRACE) and the operator commands
    (which print it), so both say the same thing.
    """
    try:
        with open(path, "rb") as config_file:
            config = orjson.loads(config_file.read())
    except (OSError, orjson.JSONDecodeError) as error:
        raise ScarfConfigError(
            f"cannot read the config file {path} ({type(error).__name__}): give --config the path of a readable "
            "JSON file that holds the destination's settings (`destination-scarf spec` lists them)."
        ) from None
    if not isinstance(config, dict):
        raise ScarfConfigError(f"the config file {path} must hold a JSON object: the destination's settings "
                               "(`destination-scarf spec` lists them).")
    return config


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses, where plain http cannot leak a token to the network."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_api_url(url: str) -> list[str]:
    """Problems with `api_url`: it must be https, except towards a loopback host (the local emulator)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return ["api_url must be an http(s) URL such as https://api.scarf.sh"]
    if parsed.query or parsed.fragment or parsed.username or parsed.password:
        return ["api_url must not carry a query, fragment or credentials"]
    if parsed.scheme == "http" and not is_loopback_host(parsed.hostname):
        return [
            "api_url must use https (plain http is only allowed for a loopback host such as 127.0.0.1), "
            "or the API token would cross the network unencrypted"
        ]
    return []


class _Problems:
    """Collects config problems so that all of them are reported at once."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.warnings: list[str] = []

    def add(self, text: str) -> None:
        self.items.append(text)

    def integer(self, raw: Mapping[str, Any], key: str) -> int:
        """An integer option, with the default, bounds and message its declaration gives."""
        option = BY_KEY[key]
        default, low, high = option.default, option.minimum, option.maximum
        value = raw.get(key, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(f"{key} must be a whole number between {low} and {high}")
            return default
        if not low <= value <= high:  # type: ignore[operator]
            self.add(f"{key} must be between {low} and {high} (got {value})")
            return default
        return value

    def choice(self, raw: Mapping[str, Any], key: str) -> str:
        option = BY_KEY[key]
        value = raw.get(key, option.default)
        if value is None:
            return option.default
        if value not in option.choices:
            self.add(f"{key} must be one of {', '.join(option.choices)}")
            return option.default
        return value

    def other_keys(self, raw: Mapping[str, Any], retired: Mapping[str, RetiredOption]) -> Mapping[str, Any]:
        """Keys that are not options. A typo of an option is refused, naming the option: its setting would
        otherwise be lost in silence. A retired option is accepted with a warning naming what replaced it (a
        renamed one's value read as the new option's), and any other key with a warning: a config saved by a
        newer or an older version must keep working (Airbyte's rule). Returns the config to parse."""
        renamed: dict[str, Any] = {}
        for key in raw:
            if key in BY_KEY:
                continue
            name = str(key)[:60]
            if key in retired:
                self._retired(raw, retired[key], renamed)
            elif (option := _typo_of(name)) is not None:
                self.add(f"unknown option {name!r} (did you mean {option}?)")
            else:
                close = difflib.get_close_matches(name, BY_KEY, n=1, cutoff=0.6)
                hint = f"; the closest option is {close[0]}" if close else ""
                self.warnings.append(
                    f"Ignoring {name!r}: it is not an option of destination-scarf {VERSION} (a newer or an older "
                    f"version's, perhaps){hint}. `destination-scarf spec` lists the options.")
        return {**raw, **renamed} if renamed else raw

    def _retired(self, raw: Mapping[str, Any], old: RetiredOption, renamed: dict[str, Any]) -> None:
        since = f"destination-scarf {old.retired_in}"
        if old.renamed_to is None:
            self.warnings.append(f"Ignoring {old.key!r}: {since} retired that option (replaced by {old.replaced_by}). "
                                 "Remove it from the config.")
        elif old.renamed_to in raw or old.renamed_to in renamed:
            self.warnings.append(f"Ignoring {old.key!r}: {since} renamed it to {old.renamed_to!r}, which the config "
                                 f"sets too. Remove {old.key!r} from the config.")
        else:
            renamed[old.renamed_to] = raw[old.key]
            self.warnings.append(f"Reading {old.key!r} as {old.renamed_to!r}: {since} renamed that option. Rename it "
                                 "in the config to silence this warning.")


def _typo_of(key: str) -> str | None:
    """The option `key` is a typo of (the closest if several): written the same but for case and `-` for `_`, or
    within two edits of its name (one for names of six characters or fewer, so that `order` is not taken for
    `owner`). Keys further off, like a newer version's `status_polling_seconds`, are not typos of `status_polling`."""
    spelled = key.lower().replace("-", "_")
    candidates = [(edits, option) for option in BY_KEY
                  if (edits := _edits(spelled, option)) <= (2 if len(option) > 6 else 1)]
    return min(candidates)[1] if candidates else None


def _edits(a: str, b: str) -> int:
    """The edit distance of a and b: insertions, deletions, substitutions and swaps of two neighbours."""
    if abs(len(a) - len(b)) > 2:
        return 3  # more than any typo allows; not worth computing
    before: list[int] | None = None
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i] + [0] * len(b)
        for j, char_b in enumerate(b, start=1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            if before is not None and i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                current[j] = min(current[j], before[j - 2] + 1)
        before, previous = previous, current
    return previous[-1]


def _parse_target(raw: Any, problems: _Problems) -> Target:
    if raw is None:
        return Target(kind="multi_artifact")
    if not isinstance(raw, Mapping):
        problems.add("target must be an object with target_type")
        return Target(kind="multi_artifact")
    kind = raw.get("target_type", "multi_artifact")
    if kind not in get_args(TargetKind):
        problems.add("target.target_type must be multi_artifact, package or tracking_pixel")
        return Target(kind="multi_artifact")
    if kind == "multi_artifact":
        return Target(kind=kind)
    id_key = _TARGET_ID_KEYS[kind]
    artifact_id = raw.get(id_key)
    if not isinstance(artifact_id, str) or not UUID_PATTERN.fullmatch(artifact_id.strip()):
        problems.add(
            f"target.{id_key} must be the {kind.replace('_', ' ')}'s id, a UUID such as "
            "abc01234-0000-0000-0000-000000000000 (find it in the Scarf app or its API)"
        )
        return Target(kind=kind, artifact_id=None)
    return Target(kind=kind, artifact_id=artifact_id.strip().lower())


def _parse_field_rules(raw: Any, problems: _Problems) -> tuple[FieldRule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add("field_mappings must be a list")
        return ()
    rules = []
    for index, entry in enumerate(raw, start=1):
        if not isinstance(entry, Mapping):
            problems.add(f"field_mappings[{index}] must be an object")
            continue
        scarf_field = entry.get("scarf_field")
        if scarf_field not in SCARF_FIELDS:
            problems.add(f"field_mappings[{index}].scarf_field must be one of {', '.join(SCARF_FIELDS)}")
            continue
        rules.append(
            FieldRule(
                scarf_field=scarf_field,
                source_field=entry.get("source_field") or None,
                constant=entry.get("constant") if entry.get("constant") not in (None, "") else None,
                stream=entry.get("stream") or None,
            )
        )
    return tuple(rules)


def _parse_custom_variables(raw: Any, problems: _Problems) -> tuple[CustomVariablesMode, tuple[str, ...]]:
    if raw is None:
        return "all", ()
    if not isinstance(raw, Mapping) or raw.get("mode") not in get_args(CustomVariablesMode):
        problems.add("custom_variables.mode must be all, listed or none")
        return "all", ()
    fields = raw.get("fields") or []
    if raw["mode"] == "listed" and (not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields)):
        problems.add("custom_variables.fields must be a list of source field names")
        return "listed", ()
    return raw["mode"], tuple(fields) if raw["mode"] == "listed" else ()


def token_problem(token: str) -> str | None:
    """Why `token` (already stripped of surrounding whitespace) cannot be sent in an HTTP header, or None.

    Pasted tokens pick up invisible characters (a zero-width space, a byte-order mark, a line break). Sent
    as is they fail deep inside the HTTP library with an error that quotes the header, token included, so
    they are refused here, naming the position and kind of the character but never the token itself.
    """
    for position, char in enumerate(token, start=1):
        if "!" <= char <= "~":
            continue
        code = f"U+{ord(char):04X}"
        kind = _INVISIBLE.get(char) or ("a space" if char == " " else
                                        "a control character" if ord(char) < 32 or ord(char) == 127 else
                                        "a character outside ASCII")
        return (f"api_token has {kind} ({code}) at position {position} of {len(token)}, which cannot be sent "
                "in an HTTP header: copy the token from Scarf again, without anything around it")
    return None


_INVISIBLE = {"\u200b": "an invisible zero-width space", "\ufeff": "an invisible byte-order mark",
              "\u200c": "an invisible zero-width non-joiner", "\u200d": "an invisible zero-width joiner",
              "\u2060": "an invisible word joiner", "\u00a0": "a non-breaking space",
              "\n": "a line break", "\r": "a line break", "\t": "a tab"}


def _parse_connection(raw: Mapping[str, Any], problems: _Problems) -> tuple[str, str, str]:
    token = raw.get("api_token")
    if not isinstance(token, str) or not token.strip():
        problems.add("api_token is required: create one in Scarf under your account's API tokens")
        token = ""
    elif (problem := token_problem(token.strip())) is not None:
        problems.add(problem)
        token = ""
    owner = raw.get("owner")
    if not isinstance(owner, str) or not OWNER_PATTERN.fullmatch(owner):
        problems.add(
            "owner must be your Scarf user or organization name (letters, digits, '.', '_' or '-'), "
            "as it appears in Scarf URLs"
        )
        owner = ""
    api_url = raw.get("api_url") or DEFAULT_API_URL
    if not isinstance(api_url, str):
        problems.add("api_url must be a string")
        api_url = DEFAULT_API_URL
    api_url = api_url.strip().rstrip("/")
    for problem in validate_api_url(api_url):
        problems.add(problem)
    return token.strip(), owner, api_url


def parse_config(raw: Mapping[str, Any], *, retired: Iterable[RetiredOption] = RETIRED) -> ScarfConfig:
    """Validate a raw config (as Airbyte passes it) into a `ScarfConfig`, or raise listing every problem.

    Keys that are not options are logged as warnings when they are accepted (`retired`: the table of retired
    options, `options.RETIRED`; a test passes its own)."""
    problems = _Problems()
    raw = problems.other_keys(raw, {option.key: option for option in retired})
    for warning in problems.warnings:
        logger.warning("%s", warning)
    token, owner, api_url = _parse_connection(raw, problems)
    target = _parse_target(raw.get("target"), problems)
    mode, listed = _parse_custom_variables(raw.get("custom_variables"), problems)
    window_days = problems.integer(raw, "event_time_window_days")
    id_mode = cast(UniqueIdMode, problems.choice(raw, "unique_id_mode"))
    mapping = MappingConfig(
        field_rules=_parse_field_rules(raw.get("field_mappings"), problems),
        custom_variables=mode,
        custom_variable_fields=listed,
        unique_id_mode=id_mode,
        time_window=datetime.timedelta(days=window_days) if window_days else None,
        target_type=target.kind,
    )
    for problem in validate_rules(mapping):
        problems.add(f"field_mappings: {problem}")
    batch = BatchLimits(
        max_events=problems.integer(raw, "batch_max_events"),
        max_bytes=problems.integer(raw, "batch_max_megabytes") * 1024 * 1024,
        max_age_seconds=float(problems.integer(raw, "batch_max_age_seconds")),
    )
    rejected_path = raw.get("rejected_records_path") or None
    if rejected_path is not None and not isinstance(rejected_path, str):
        problems.add("rejected_records_path must be a file path")
        rejected_path = None
    dead_letter, storage_problems = parse_object_storage(raw.get("object_storage_config"))
    for problem in storage_problems:
        problems.add(problem)
    config = ScarfConfig(
        api_token=token,
        owner=owner,
        api_url=api_url,
        target=target,
        mapping=mapping,
        batch=batch,
        max_concurrent_imports=problems.integer(raw, "max_concurrent_imports"),
        on_invalid_record=cast(OnInvalidRecord, problems.choice(raw, "on_invalid_record")),
        rejected_records_path=rejected_path,
        dead_letter=dead_letter,
        on_failed_events=cast(OnFailedEvents, problems.choice(raw, "on_failed_events")),
        import_timeout_seconds=60.0 * problems.integer(raw, "import_timeout_minutes"),
        slot_wait_seconds=60.0 * problems.integer(raw, "slot_wait_minutes"),
        upload_retry_seconds=60.0 * problems.integer(raw, "upload_retry_minutes"),
        status_polling=cast(StatusPolling, problems.choice(raw, "status_polling")),
    )
    if problems.items:
        raise ScarfConfigError(
            "The destination's configuration is not valid: " + "; ".join(problems.items) + ".",
        )
    return config
