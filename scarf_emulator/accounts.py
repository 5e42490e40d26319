"""Owners, API tokens, packages and tracking pixels known to the emulator.

Everything the HTTP layer needs to answer 401/403/404 lives here, so the import logic
never has to know how access is configured.  Mutation is guarded by a lock; reads of the
per-owner id dictionaries are lock-free on purpose, because the import workers test
membership for every event and a dict lookup is atomic under the GIL.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterable, TypeVar

from .clock import iso_z, utc_now

#: Package types allowed by Scarf's v2 ``PackageType`` enum.
PACKAGE_TYPES = frozenset({"docker", "file", "python", "npm", "hackage"})


@dataclass(frozen=True)
class Package:
    """A package as returned by ``GET /v2/packages/{owner}/{id}`` (``PackageBase`` shape)."""

    id: str
    owner: str
    name: str
    type: str
    created_at: str

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "owner": self.owner,
            "type": self.type,
            "created_at": self.created_at,
            "updated_at": self.created_at,
        }


@dataclass(frozen=True)
class TrackingPixel:
    """A tracking pixel as returned by ``GET /v2/tracking-pixels/{owner}/{id}``."""

    id: str
    owner: str
    name: str
    created_at: str

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "owner": self.owner,
            "name": self.name,
            "created_at": self.created_at,
            "updated_at": self.created_at,
        }


class Directory:
    """Registry of owners, tokens and artifacts; the single source for access decisions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: set[str] = set()
        self._tokens: dict[str, set[str]] = {}
        self._packages: dict[str, dict[str, Package]] = {}
        self._pixels: dict[str, dict[str, TrackingPixel]] = {}

    # -- configuration -------------------------------------------------------------
    def add_owner(self, owner: str) -> None:
        with self._lock:
            self._add_owner_locked(owner)

    def _add_owner_locked(self, owner: str) -> None:
        if not owner:
            raise ValueError("owner must be a non-empty string")
        self._owners.add(owner)
        self._packages.setdefault(owner, {})
        self._pixels.setdefault(owner, {})

    def add_token(self, token: str, owners: Iterable[str] | str) -> None:
        """Grant ``token`` access to ``owners`` (added to any access it already has)."""
        if not token:
            raise ValueError("token must be a non-empty string")
        owner_list = [owners] if isinstance(owners, str) else list(owners)
        with self._lock:
            for owner in owner_list:
                self._add_owner_locked(owner)
            self._tokens.setdefault(token, set()).update(owner_list)

    def add_package(self, owner: str, package_id: str, name: str | None = None, type: str = "file") -> Package:
        """Add (or replace, by id) a package; ``name`` defaults to the id.

        A name is unique per owner and type, not per owner: an npm ``right-pad`` and a docker
        ``right-pad`` may both exist.  Scarf addresses a package by owner, type and name
        (``GET /v2/packages/{owner}/{package_type}/{package_name}`` in its current public spec;
        the v2 excerpt we keep does not say), so a second package of the same type and name under
        another id is refused with ValueError.
        """
        if not package_id:
            raise ValueError("package id must be a non-empty string")
        if type not in PACKAGE_TYPES:
            raise ValueError(f"package type must be one of {sorted(PACKAGE_TYPES)}")
        package = Package(package_id, owner, name or package_id, type, iso_z(utc_now()))
        with self._lock:
            self._add_owner_locked(owner)
            for other in self._packages[owner].values():
                if (other.type, other.name) == (package.type, package.name) and other.id != package_id:
                    raise ValueError(
                        f"owner {owner} already has a {type} package named {package.name!r} (id {other.id})"
                    )
            self._packages[owner][package_id] = package
        return package

    def add_tracking_pixel(self, owner: str, pixel_id: str, name: str | None = None) -> TrackingPixel:
        """Add (or replace, by id) a tracking pixel; ``name`` defaults to the id.

        Pixel names may repeat: the spec says nothing of their uniqueness, and its example is a free-text label.
        """
        if not pixel_id:
            raise ValueError("tracking pixel id must be a non-empty string")
        pixel = TrackingPixel(pixel_id, owner, name or pixel_id, iso_z(utc_now()))
        with self._lock:
            self._add_owner_locked(owner)
            self._pixels[owner][pixel_id] = pixel
        return pixel

    # -- lookups -------------------------------------------------------------------
    def has_owner(self, owner: str) -> bool:
        return owner in self._owners

    def owners(self) -> list[str]:
        with self._lock:
            return sorted(self._owners)

    def token_owners(self, token: str) -> frozenset[str] | None:
        """Owners the token may access, or None when the token is unknown."""
        with self._lock:
            owners = self._tokens.get(token)
            return None if owners is None else frozenset(owners)

    def package(self, owner: str, package_id: str) -> Package | None:
        return self._packages.get(owner, {}).get(package_id)

    def pixel(self, owner: str, pixel_id: str) -> TrackingPixel | None:
        return self._pixels.get(owner, {}).get(pixel_id)

    def package_page(self, owner: str, after: str | None, limit: int,
                     types: Iterable[str] = ()) -> tuple[list[Package], bool]:
        """Up to ``limit`` packages of ``owner`` (of ``types``, when given) whose id sorts after
        ``after``, in id order; and whether more follow.  See :func:`keyset_page`."""
        wanted = frozenset(types)
        with self._lock:
            chosen = [p for p in self._packages.get(owner, {}).values() if not wanted or p.type in wanted]
        return keyset_page(chosen, after, limit)

    def pixel_page(self, owner: str, after: str | None, limit: int) -> tuple[list[TrackingPixel], bool]:
        """Up to ``limit`` tracking pixels of ``owner`` whose id sorts after ``after``; see :func:`keyset_page`."""
        with self._lock:
            chosen = list(self._pixels.get(owner, {}).values())
        return keyset_page(chosen, after, limit)

    def live_package_ids(self, owner: str) -> dict[str, Package]:
        """The owner's live package mapping, for per-event membership tests (do not mutate)."""
        with self._lock:
            return self._packages.setdefault(owner, {})

    def live_pixel_ids(self, owner: str) -> dict[str, TrackingPixel]:
        """The owner's live pixel mapping, for per-event membership tests (do not mutate)."""
        with self._lock:
            return self._pixels.setdefault(owner, {})


_Artifact = TypeVar("_Artifact", Package, TrackingPixel)


def keyset_page(items: Iterable[_Artifact], after: str | None, limit: int) -> tuple[list[_Artifact], bool]:
    """One page of a list ordered by id, ``after`` being the id that ended the previous page.

    ``after`` is a bound, not a position: it need not be an existing id, and artifacts added or
    removed between two pages neither repeat nor shift the ones not yet seen.
    """
    ordered = sorted((item for item in items if after is None or item.id > after), key=lambda item: item.id)
    return ordered[:limit], len(ordered) > limit
