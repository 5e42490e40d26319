"""Custom variables: every record field no Scarf field uses, as text, nested objects as dotted keys.

Mode "all" sends every such top-level key (nulls dropped, `_airbyte_*` keys skipped, `$` keys that are
not Scarf fields dropped and reported in `ignored_fields`); mode "listed" sends the listed fields (top-level
names or dotted paths) as listed, even if a Scarf field also uses them; mode "none" sends none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from destination_scarf.mapping.rules import SCARF_FIELD_SET
from destination_scarf.mapping.values import JSON_SCALARS, flatten_into, float_text, read_path, variable_text

# Key classes, cached per key name (record key sets repeat across a stream).
_CUSTOM, _SKIP, _IGNORED = 0, 1, 2
_KEY_CACHE_LIMIT = 10_000  # streams with unbounded key names must not grow the cache forever


class CustomVariables:
    """One stream's custom variables, decided once: which keys become variables, and how values are written."""

    def __init__(self, *, mode: str, consumed: Iterable[str], listed: Iterable[str]) -> None:
        self.mode = mode
        #: `$`-prefixed record keys that are not Scarf fields and were dropped (names only), for a warning.
        self.ignored_fields: set[str] = set()
        # Every key a Scarf field uses, including unused convention keys and the artifact fields' sources in
        # single-target mode: none of them is a custom variable.
        self._consumed = frozenset(consumed)
        # Only dotted paths matter inside nested objects; usually there are none, which skips the check entirely.
        self.consumed_nested = frozenset(key for key in self._consumed if "." in key)
        self._key_class: dict[Any, int] = {}
        self._listed = tuple((path, tuple(path.split(".")) if "." in path else ()) for path in listed)

    @property
    def listed(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The listed fields (mode "listed"): (name, its path when dotted, else ())."""
        return self._listed

    def keys_of(self, shape: tuple[Any, ...]) -> tuple[str, ...]:
        """For one record shape: its keys that become custom variables in mode "all" (once per shape)."""
        kinds = [(key, self._key_class.get(key)) for key in shape]
        kinds = [(key, kind if kind is not None else self._classify(key)) for key, kind in kinds]
        self.ignored_fields.update(key for key, kind in kinds if kind == _IGNORED)
        return tuple(key for key, kind in kinds if kind == _CUSTOM) if self.mode == "all" else ()

    def put(self, data: Mapping[str, Any], event: dict[str, Any], keys: tuple[str, ...]) -> None:
        """Add the record's custom variables to `event`: the listed fields, then `keys` (from `keys_of`)."""
        if self._listed:
            self._put_listed(data, event)
        for key in keys:
            value = data[key]
            if value is None:
                continue
            value_type = type(value)
            if value_type is str:
                event[key] = value
            elif value_type is int:  # bool is not: it is spelled the JSON way below
                event[key] = str(value)
            elif value_type is float:
                event[key] = float_text(value)
            elif value_type is dict:
                flatten_into(event, key, value, self.consumed_nested)
            elif value_type in JSON_SCALARS or not isinstance(value, Mapping):  # ABC checks are slow
                event[key] = variable_text(value)
            else:
                flatten_into(event, key, value, self.consumed_nested)

    def describe(self) -> str:
        if self.mode == "all":
            return "every other field"
        if self.mode == "listed":
            return ", ".join(path for path, _ in self._listed) or "none listed"
        return "none"

    def _put_listed(self, data: Mapping[str, Any], event: dict[str, Any]) -> None:
        """Listed fields are sent as listed, even if a Scarf field also uses them: the user asked for them."""
        for name, path in self._listed:
            value = read_path(data, name, path) if path else data.get(name)
            if value is None:
                continue
            if type(value) is str:
                event[name] = value
            elif isinstance(value, Mapping):
                flatten_into(event, name, value, frozenset())
            else:
                event[name] = variable_text(value)

    def _classify(self, key: Any) -> int:
        """Custom variable, skipped, or an ignored `$` key; cached, since a stream repeats its key names."""
        if not isinstance(key, str) or key in self._consumed or key.startswith("_airbyte_"):
            kind = _SKIP
        elif key.startswith("$"):
            # A Scarf field's own key that a rule overrides is dropped silently: the user chose another source.
            kind = _SKIP if key in SCARF_FIELD_SET else _IGNORED
        else:
            kind = _CUSTOM
        if len(self._key_class) < _KEY_CACHE_LIMIT:
            self._key_class[key] = kind
        return kind
