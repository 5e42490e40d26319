"""Deterministic `$unique_id`s: the same record always gets the same id, so a re-sent event overrides itself.

Every id is a UUID (version 5 layout) from SHA-256 over a prefix naming (namespace, stream, material kind),
then the material. Material, first available: the mapped $unique_id ("i"); the primary-key values ("k");
the whole event as canonical JSON without the id ("e"), and for the n-th copy of the same content within
a window, n and that content ("r"). The same input always gives the same id (no Python hash(), which is
salted per process), and the prefixes keep the same material in two streams, or of two kinds, apart.
With `unique_id_mode: as_mapped`, a mapped id is sent as it is, unless it is longer than `MAX_AS_MAPPED` characters
(then it is hashed, as under `deterministic`). A mapped id that is empty or only white space is no id: the event
gets its content id. A mapped number and the same digits as text (`1`, `"1"`) are one id.

Where the stream's JSON schema declares a key field numeric (the mapped source, a primary-key field), the id is
built from the number's canonical text (numbers.py), so `1`, `1.0` and `"1.000000000"` give one id; the encoder
does the same for the fields of a content id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from destination_scarf.mapping.numbers import canonical_number
from destination_scarf.mapping.values import (
    canonical_json,
    canonical_json_fallback,
    check_exact,
    field_text,
    read_path_exact,
)

#: The longest mapped id sent as it is under `as_mapped`; a longer one is hashed (ids are keys, not payloads).
MAX_AS_MAPPED = 512

# Hex digit of the variant nibble: keep its low two bits, set the top two to 10 (RFC 4122 variant).
_VARIANT_DIGIT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def _uid_prefix(namespace: str | None, stream: str, kind: str) -> bytes:
    """Prefix naming what the id belongs to. JSON never contains a raw NUL, so prefix and material cannot blur."""
    return b"destination-scarf/unique-id/v1\0" + orjson.dumps([namespace, stream, kind]) + b"\0"


def _uuid_from(prefixed: Any, material: bytes) -> str:
    """Finish a pre-fed SHA-256 with `material` and lay out the first 128 bits as a version-5-style UUID string."""
    return _uuid_text(_digest_hex(prefixed, material))


def _digest_hex(prefixed: Any, material: bytes) -> str:
    hasher = prefixed.copy()
    hasher.update(material)
    return hasher.hexdigest()


def _uuid_text(x: str) -> str:
    # String surgery on the hex is cheaper than uuid.UUID(bytes=..., version=5) (~2 µs) and gives the same text.
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT_DIGIT[x[16]]}{x[17:20]}-{x[20:32]}"



class UniqueIds:
    """The ids of one stream's events: from the mapped field, the primary key, or the content."""

    def __init__(self, *, enabled: bool, namespace: str | None, stream: str,
                 read_mapped: Callable[[Mapping[str, Any]], Any], primary_key: list[list[str]] | None,
                 as_mapped: bool = False, numeric_fields: frozenset[tuple[str, ...]] = frozenset()) -> None:
        self.enabled = enabled
        #: A mapped id is sent unchanged (unique_id_mode: as_mapped), so Scarf deduplicates against ids it already
        #: holds; the price: the same id in two streams is one event. Records without one still get the
        #: deterministic id below.
        self.as_mapped = as_mapped
        self._read_mapped = read_mapped
        self.pk_paths = tuple(tuple(path) for path in (primary_key or ()) if path)
        #: The places in the key of the primary-key fields the schema declares numeric: their values enter the id
        #: as canonical numbers. Decided once, so a stream without them pays nothing per record.
        self._numeric_key_places = tuple(i for i, path in enumerate(self.pk_paths) if path in numeric_fields)
        self._key_material = self._numeric_key_material if self._numeric_key_places else canonical_json
        # One hasher per kind of material, pre-fed with a prefix naming the stream: the same material in another
        # stream, or a mapped id equal to some event's hash input, can never give the same id.
        self._hashers = {kind: hashlib.sha256(_uid_prefix(namespace, stream, kind)) for kind in "iker"}
        self._content_hasher = self._hashers["e"]
        self._seen: set[int] = set()
        self._repeats: dict[int, int] = {}
        #: Records whose content repeated an earlier record of their window (they got numbered ids).
        self.repeated = 0

    def key_id(self, data: Mapping[str, Any], *, may_have_mapped: bool) -> str | None:
        """The id from the record's mapped field or primary key, or None when it must be a hash of the event."""
        mapped = self._mapped_value(data) if may_have_mapped else None
        if mapped is not None:
            if self.as_mapped and len(mapped) <= MAX_AS_MAPPED:
                return mapped
            return _uuid_from(self._hashers["i"], mapped.encode("utf-8", "surrogatepass"))
        if self.pk_paths:
            values = self._primary_key_values(data)
            if values is not None:
                return _uuid_from(self._hashers["k"], self._key_material(values))
        return None

    def material(self, data: Mapping[str, Any], *, may_have_mapped: bool) -> str:
        """Which material `key_id` takes for this record: "mapped as given" (as_mapped), "mapped", "primary key",
        or "content" (it returns None, and the id is a hash of the event). The same tests in the same order, for
        previews; not the hot path."""
        mapped = self._mapped_value(data) if may_have_mapped else None
        if mapped is not None:
            return "mapped as given" if self.as_mapped and len(mapped) <= MAX_AS_MAPPED else "mapped"
        if self.pk_paths and self._primary_key_values(data) is not None:
            return "primary key"
        return "content"

    def first_content_id(self, canonical: bytes) -> str:
        """The content id the first record of that content in a window gets (pure)."""
        return _uuid_from(self._hashers["e"], canonical)

    def content_id(self, canonical: bytes) -> str:
        """The id of an event without key or mapped id: a hash of its content, numbered by occurrence.

        Two distinct records with the same content (two downloads of one file by one CI runner in the same
        second) must stay two events, yet a re-run must reproduce the very same ids. So repeats are counted
        per window, the records between two states of the stream's scope (`new_window`): a re-run from a state
        sees the same records in the same windows and numbers them the same way. The first occurrence keeps
        the plain content hash, the id 0.1.0 gave every copy.
        """
        hasher = self._content_hasher.copy()  # _digest_hex and _uuid_text inlined: this runs for every record
        hasher.update(canonical)
        x = hasher.hexdigest()
        key = int(x[:16], 16)  # 64 bits of the hash: a smaller set entry than the text
        if key not in self._seen:
            self._seen.add(key)
            return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT_DIGIT[x[16]]}{x[17:20]}-{x[20:32]}"
        occurrence = self._repeats.get(key, 1) + 1
        self._repeats[key] = occurrence
        self.repeated += 1
        return _uuid_text(_digest_hex(self._hashers["r"], b"%d\0" % occurrence + canonical))

    def new_window(self) -> None:
        """A state of this stream's scope arrived: occurrences are counted afresh from here."""
        if self._seen:
            self._seen.clear()
            self._repeats.clear()

    def _mapped_value(self, data: Mapping[str, Any]) -> str | None:
        value = self._read_mapped(data)
        if value is None:
            return None
        text = value if type(value) is str else field_text("$unique_id", value)
        return text if text and not text.isspace() else None

    def _numeric_key_material(self, values: tuple[Any, ...]) -> bytes:
        """`canonical_json(values)` with each numeric key field's number written as its canonical text, as a JSON
        number: a plain integer key keeps the bytes (and the id) it always had, and `1.0` or `"1.000000000"` get
        them too. Byte for byte what `canonical_json` writes for the other values, its fallback included."""
        numbers = {}
        for place in self._numeric_key_places:
            text = canonical_number(values[place])
            if text is not None:
                numbers[place] = text
        if not numbers:
            return canonical_json(values)
        parts = [orjson.Fragment(numbers[i]) if i in numbers else value for i, value in enumerate(values)]
        try:
            return orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # what canonical_json's fallback writes, element by element (a list is "[" a "," b "]")
            written = [numbers[i].encode() if i in numbers else canonical_json_fallback(value)
                       for i, value in enumerate(values)]
            return b"[" + b",".join(written) + b"]"

    def _primary_key_values(self, data: Mapping[str, Any]) -> tuple[Any, ...] | None:
        values = []
        for path in self.pk_paths:
            value = data.get(path[0]) if len(path) == 1 else read_path_exact(data, path)
            if value is None:
                return None
            if type(value) is not str and type(value) is not int:
                check_exact(value, ".".join(path), 1)
            values.append(value)
        return tuple(values)
