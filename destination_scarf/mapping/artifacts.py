"""Package and tracking pixel names: a record may name its artifact where Scarf's import wants an id.

Warehouses and download logs hold package *names* (`right-pad`, `my-org/cli`), Scarf's import endpoint wants
package and tracking pixel ids (UUIDs). A sync reads the owner's packages and tracking pixels once, at its start
(`sync/artifact_names.py`, through `scarf/client.py`), and hands the mapping an `ArtifactNames`: plain tables of
ids, names and package types. Nothing here calls Scarf.

The rules, for `$package` and `$tracking_pixel` alike (mapped, constant or by convention):

- a value that is a UUID is sent as it is;
- any other value is a name, matched exactly (case-sensitively) against the list of its own field: `$package`
  against the packages, `$tracking_pixel` against the tracking pixels, so a name that is both goes by the field
  it is in;
- a package name that packages of two types share (an npm and a docker `right-pad`) is ambiguous, unless written
  `TYPE:NAME` (`npm:right-pad`); the types are Scarf's (file, docker, python, npm, hackage) and any other the
  list reports. A tracking pixel name that two pixels share is ambiguous (give the id);
- an unknown or ambiguous name makes the record invalid (`InvalidRecord` on its field, so `on_invalid_record`
  applies), with a message that names the value and the closest known names, found case-insensitively.

Package and pixel names are the names of the user's own catalogue, not personal data, so unlike everything else
in `mapping/` these messages name a value: the name, cut to `SHOWN_CHARACTERS` and with control characters escaped.

On the hot path a record pays one dict lookup per artifact field it has (`NameResolver`: every unique
name, and each UUID or qualified name once seen, bounded); a mapper without names pays nothing.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from destination_scarf.mapping.rules import ARTIFACT_FIELDS, FieldRule, MappingConfig, choose_rules
from destination_scarf.mapping.values import InvalidRecord
from destination_scarf.options import UUID_REGEX

_UUID = re.compile(UUID_REGEX)

ArtifactField = Literal["$package", "$tracking_pixel"]

#: Scarf's package types (v2 `PackageType`). A `TYPE:NAME` qualifier may name these, and any other type the
#: owner's list reports (Scarf may add types before this list knows them).
SCARF_PACKAGE_TYPES = ("file", "docker", "python", "npm", "hackage")

#: How much of a value a message shows: names are short, and a mis-mapped field may hold anything.
SHOWN_CHARACTERS = 80
#: How many close names a message suggests.
SUGGESTIONS = 3
#: Values (UUIDs, qualified names) remembered per field beyond the owner's names, and refusals remembered. Past
#: either, that memory starts again from the owner's names, so a stream of ever new values keeps memory flat.
CACHE_LIMIT = 65536
REFUSALS_LIMIT = 1024
#: Past this many different unknown values, a message suggests only names that differ in case or surrounding
#: space: the fuzzy search costs a comparison with every name, and so many misses mean a mapping problem anyway.
FUZZY_LIMIT = 256


def is_uuid(value: str) -> bool:
    return _UUID.fullmatch(value) is not None


def shown(value: str) -> str:
    """A name for a message: quoted, control characters escaped (repr), cut to SHOWN_CHARACTERS."""
    if len(value) > SHOWN_CHARACTERS:
        return repr(value[:SHOWN_CHARACTERS]) + f" (cut at {SHOWN_CHARACTERS} of {len(value)} characters)"
    return repr(value)


@dataclass(frozen=True, slots=True)
class Artifact:
    """One package or tracking pixel of the owner, as Scarf lists it."""

    id: str
    name: str
    type: str | None = None  # packages: file, docker, python, npm, hackage, ...; pixels: None


class _Catalogue:
    """The names of one kind of artifact (the owner's packages, or its tracking pixels)."""

    def __init__(self, *, what: str, owner: str, artifacts: Iterable[Artifact], complete: bool) -> None:
        self.what = what  # "package" or "tracking pixel"
        self.owner = owner
        self.complete = complete
        self.by_name: dict[str, list[Artifact]] = {}
        self.by_type: dict[tuple[str, str], Artifact] = {}
        self.count = 0
        for artifact in artifacts:
            self.count += 1
            holders = self.by_name.setdefault(artifact.name, [])
            if all(other.id != artifact.id for other in holders):
                holders.append(artifact)
            if artifact.type is not None:
                self.by_type.setdefault((artifact.type, artifact.name), artifact)
        #: The types a TYPE:NAME qualifier may name (packages only: pixels have no type).
        self.types = (frozenset(SCARF_PACKAGE_TYPES) | {t for t, _ in self.by_type}) if self.by_type else frozenset()
        self.unique = {name: holders[0].id for name, holders in self.by_name.items() if len(holders) == 1}
        self._folded: dict[str, list[str]] = {}
        for name in self.by_name:
            self._folded.setdefault(_fold(name), []).append(name)
        self._fuzzy_searches = 0

    def lookup(self, value: str) -> str | None:
        """The id `value` names (a UUID, a unique name, or TYPE:NAME), else None."""
        if is_uuid(value):
            return value
        found = self.unique.get(value)
        if found is not None:
            return found
        kind, colon, name = value.partition(":")
        if colon and kind in self.types:
            artifact = self.by_type.get((kind, name))
            if artifact is not None:
                return artifact.id
        return None

    def refusal(self, value: str, *, other: _Catalogue | None, field: str, other_field: str) -> str:
        """Why `value` names no single artifact: the reason of an InvalidRecord on `field` (after the field)."""
        holders = self.by_name.get(value, [])
        if len(holders) > 1:
            return self._ambiguous(value, holders)
        hints = [f"{_count(self.count, self.what)} listed"
                 + ("" if self.complete else f", the most it reads: a {self.what} beyond them needs its id")]
        if other is not None and value in other.by_name:
            hints.append(f"{shown(value)} is the name of a {other.what}: map it to {other_field}")
        suggestions = self.suggestions(value)
        if suggestions:
            hints.append("names are matched exactly; the closest: " + ", ".join(shown(s) for s in suggestions))
        elif len(hints) == 1:
            hints.append("names are matched exactly; none is close to it")
        return f"{shown(value)} is not the name or id of a {self.what} of owner {self.owner!r} ({'; '.join(hints)})"

    def _ambiguous(self, value: str, holders: list[Artifact]) -> str:
        if self.by_type and all(h.type is not None for h in holders):
            forms = " or ".join(shown(f"{h.type}:{h.name}") for h in sorted(holders, key=_type_order))
            types = " and ".join(f"{h.type}" for h in sorted(holders, key=_type_order))
            return (f"{shown(value)} is ambiguous: owner {self.owner!r} has {self.what}s of that name of the types "
                    f"{types}; write {forms}, or give the id")
        ids = ", ".join(h.id for h in holders[:SUGGESTIONS]) + (", ..." if len(holders) > SUGGESTIONS else "")
        return (f"{shown(value)} is ambiguous: owner {self.owner!r} has {len(holders)} {self.what}s of that name "
                f"({ids}); give the id")

    def suggestions(self, value: str) -> list[str]:
        """Up to SUGGESTIONS known names close to `value`, compared case-insensitively (and without surrounding
        space): first those equal but for that, then the most similar. A name packages of several types share
        is suggested in its TYPE:NAME forms, and so is every name for a qualified value (its type first)."""
        kind, colon, bare = value.partition(":")
        qualified = bool(colon) and kind in self.types
        folded = _fold(bare if qualified else value)
        candidates = list(self._folded.get(folded, ()))
        if len(candidates) < SUGGESTIONS and self._fuzzy_searches < FUZZY_LIMIT and self._folded:
            self._fuzzy_searches += 1
            for close in _closest(folded, self._folded):
                candidates += [name for name in self._folded[close] if name not in candidates]
        forms: list[str] = []
        for name in candidates:
            holders = self.by_name[name]
            if (qualified or len(holders) > 1) and all(h.type is not None for h in holders):
                typed = sorted(holders, key=lambda h: (h.type != kind, h.type or ""))
                forms += [f"{h.type}:{h.name}" for h in typed]
            else:
                forms.append(name)
        return [form for form in dict.fromkeys(forms) if form != value][:SUGGESTIONS]


def _closest(word: str, known: Iterable[str], cutoff: float = 0.6) -> list[str]:
    """`difflib.get_close_matches`, but ties go in alphabetical order (difflib puts them in reverse)."""
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(word)
    scored = []
    for candidate in known:
        matcher.set_seq1(candidate)
        if matcher.real_quick_ratio() >= cutoff and matcher.quick_ratio() >= cutoff:
            ratio = matcher.ratio()
            if ratio >= cutoff:
                scored.append((-ratio, candidate))
    return [candidate for _, candidate in sorted(scored)[:SUGGESTIONS]]


def _fold(name: str) -> str:
    return name.strip().casefold()


def _type_order(artifact: Artifact) -> str:
    return artifact.type or ""


class NameResolver(dict[str, str]):
    """One field's table of value -> id, for the mappers of one sync (every stream shares it).

    `resolver[value]` is the hot path: one dict lookup for every unique name of the owner and every value resolved
    since (UUIDs, qualified names; bounded). A value it lacks reaches `__missing__`, the slow path: it looks the
    value up in the catalogue and remembers what resolves, and raises InvalidRecord for what does not
    (remembering the reason, so a repeated bad name costs no new search).
    """

    __slots__ = ("_catalogue", "_names", "_other", "_other_field", "_refused", "field")

    def __init__(self, field: ArtifactField, catalogue: _Catalogue, other: _Catalogue, other_field: str) -> None:
        super().__init__(catalogue.unique)
        self.field = field
        self._catalogue = catalogue
        self._other = other
        self._other_field = other_field
        self._names = dict(catalogue.unique)
        self._refused: dict[str, str] = {}

    def __missing__(self, value: str) -> str:
        """The id for a value not seen before, or raise InvalidRecord naming the value and close names."""
        found = self._catalogue.lookup(value)
        if found is None:
            raise InvalidRecord(self.field, self.refusal(value))
        if len(self) >= len(self._names) + CACHE_LIMIT:
            self.clear()  # in place: compiled mappers hold this very dict
            self.update(self._names)
        self[value] = found
        return found

    def refusal(self, value: str) -> str:
        reason = self._refused.get(value)
        if reason is None:
            reason = self._catalogue.refusal(value, other=self._other, field=self.field,
                                             other_field=self._other_field)
            if len(self._refused) >= REFUSALS_LIMIT:
                self._refused.clear()
            self._refused[value] = reason
        return reason

    def problem(self, value: str) -> str | None:
        """None when `value` resolves, else why not (the reason of the InvalidRecord a record would get)."""
        try:
            self[value]
        except InvalidRecord as invalid:
            return invalid.reason
        return None


class ArtifactNames:
    """The owner's packages and tracking pixels by name: what the mapping resolves names with.

    Built by the sync from the lists it read (never by the mapping, which does not call Scarf). `complete` is
    False for a list the sync stopped reading at its page limit: names beyond it are unknown, and messages say so.
    """

    def __init__(self, *, owner: str, packages: Iterable[Artifact] = (), tracking_pixels: Iterable[Artifact] = (),
                 packages_complete: bool = True, tracking_pixels_complete: bool = True) -> None:
        self.owner = owner
        self._packages = _Catalogue(what="package", owner=owner, artifacts=packages, complete=packages_complete)
        self._pixels = _Catalogue(what="tracking pixel", owner=owner, artifacts=tracking_pixels,
                                  complete=tracking_pixels_complete)
        self._resolvers: dict[str, NameResolver] = {
            "$package": NameResolver("$package", self._packages, self._pixels, "$tracking_pixel"),
            "$tracking_pixel": NameResolver("$tracking_pixel", self._pixels, self._packages, "$package"),
        }

    def resolver(self, field: str) -> NameResolver:
        return self._resolvers[field]

    def resolve(self, field: str, value: str) -> str:
        """The id `value` names in `field` ($package or $tracking_pixel), or raise InvalidRecord."""
        return self._resolvers[field][value]

    def problem(self, field: str, value: str) -> str | None:
        """None when `value` names one artifact of `field` (or is a UUID), else why not."""
        return self._resolvers[field].problem(value)

    @property
    def package_count(self) -> int:
        return self._packages.count

    @property
    def tracking_pixel_count(self) -> int:
        return self._pixels.count

    def describe(self) -> str:
        """"25 packages and 3 tracking pixels": what was read (counts, no names)."""
        return (f"{_count(self._packages.count, 'package')} and "
                f"{_count(self._pixels.count, 'tracking pixel')}")


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def name_constants(config: MappingConfig) -> Iterator[FieldRule]:
    """The field rules whose constant for $package or $tracking_pixel is a name (not a UUID), with a
    multi-artifact target (a single target sends neither field)."""
    if config.target_type != "multi_artifact":
        return
    for rule in config.field_rules:
        if rule.scarf_field in ARTIFACT_FIELDS and rule.constant and not is_uuid(rule.constant):
            yield rule


def may_send_names(config: MappingConfig, streams: Iterable[tuple[str, str | None]]) -> bool:
    """Whether any of these (stream, namespace) can send a name in $package or $tracking_pixel: with a
    multi-artifact target, unless every artifact source of every stream is a constant UUID."""
    if config.target_type != "multi_artifact":
        return False
    for stream, namespace in streams:
        rules = choose_rules(config.field_rules, stream, namespace)
        for field in ARTIFACT_FIELDS:
            rule = rules.get(field)
            if rule is None or rule.constant is None or not is_uuid(rule.constant):
                return True
    return False
