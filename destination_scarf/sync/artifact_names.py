"""The owner's package and tracking pixel names, read once when a sync starts, for the mapping to resolve.

A record may name its artifact (`right-pad`) where Scarf's import wants its id. When any stream can send a name
(a multi-artifact target, unless every artifact source is a constant UUID), the sync reads the owner's packages
and tracking pixels, every page (`ScarfClient.list_artifacts`), after its pre-flight and before it reads any input,
and hands the mappers a plain table (`mapping.artifacts.ArtifactNames`). The mapping never calls Scarf.

A constant name in `field_mappings` that names no single artifact fails the sync here (and `check`), before any
input is read: every record it applies to would be rejected.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from destination_scarf.config import ScarfConfig
from destination_scarf.errors import ScarfConfigError
from destination_scarf.mapping.artifacts import Artifact, ArtifactNames, may_send_names, name_constants
from destination_scarf.mapping.rules import MappingConfig
from destination_scarf.scarf.client import ARTIFACT_PAGE_SIZE, ScarfClient
from destination_scarf.sync.catalog import StreamInfo

logger = logging.getLogger("airbyte")

#: How long reading both lists may take at the start of a sync, every page and retry included.
LIST_SECONDS = 120.0


def names_needed(config: ScarfConfig, streams: Iterable[StreamInfo]) -> bool:
    """Whether any stream can send a name in $package or $tracking_pixel (so the lists must be read)."""
    return may_send_names(config.mapping, [(s.name, s.namespace) for s in streams])


def read_artifact_names(client: ScarfClient, config: ScarfConfig, *, budget_seconds: float = LIST_SECONDS,
                        attempts: int | None = None, per_page: int = ARTIFACT_PAGE_SIZE) -> tuple[ArtifactNames, int]:
    """Read every page of the owner's packages and tracking pixels, within `budget_seconds` for both and
    `attempts` at each page (None: as many as the budget allows); the table, and how many pages it took."""
    started = time.monotonic()
    packages = client.list_artifacts("packages", per_page=per_page, budget_seconds=budget_seconds,
                                     attempts=attempts)
    left = max(budget_seconds - (time.monotonic() - started), 0.0)
    pixels = client.list_artifacts("tracking-pixels", per_page=per_page, budget_seconds=left, attempts=attempts)
    names = ArtifactNames(
        owner=config.owner,
        packages=_artifacts(packages.items, typed=True), packages_complete=packages.complete,
        tracking_pixels=_artifacts(pixels.items, typed=False), tracking_pixels_complete=pixels.complete)
    return names, packages.pages + pixels.pages


def _artifacts(items: Iterable[Mapping[str, Any]], *, typed: bool) -> list[Artifact]:
    """The listed items that have a name (a tracking pixel's name is optional in Scarf's spec)."""
    found = []
    for item in items:
        name, kind = item.get("name"), item.get("type")
        if isinstance(name, str) and name:
            found.append(Artifact(str(item["id"]), name, kind if typed and isinstance(kind, str) else None))
    return found


def names_for_sync(client: ScarfClient, config: ScarfConfig, streams: list[StreamInfo], *,
                   per_page: int = ARTIFACT_PAGE_SIZE) -> ArtifactNames | None:
    """At the start of a sync: the owner's names when a stream can send one (else None: nothing is read), with
    the constant names of `field_mappings` checked. Bounded by LIST_SECONDS, and woken by the client's cancel."""
    if not names_needed(config, streams):
        return None
    names, pages = read_artifact_names(client, config, per_page=per_page)
    logger.info("Read the %s of owner '%s' (%d list page(s)): names in $package and $tracking_pixel are sent as "
                "the ids they name.", names.describe(), config.owner, pages)
    check_constant_names(config.mapping, names)
    return names


def check_constant_names(config: MappingConfig, names: ArtifactNames) -> None:
    """A constant $package or $tracking_pixel name in `field_mappings` must name one artifact; else a config error
    naming it and the closest names (for `check` and at the start of a sync)."""
    problems = []
    for rule in name_constants(config):
        reason = names.problem(rule.scarf_field, rule.constant or "")
        if reason is not None:
            where = f"stream '{rule.stream}'" if rule.stream else "all streams"
            problems.append(f"the constant {rule.scarf_field} for {where}: {reason}")
    if problems:
        raise ScarfConfigError("The destination's configuration is not valid: field_mappings: "
                               + "; ".join(problems) + ".")
