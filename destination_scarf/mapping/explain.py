"""Explaining a compiled mapping to people: the plan a sync logs at its start, and, for `preview`, where each
field of one record's event came from. Never on the hot path; names keys, never values."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for the annotations only
    from destination_scarf.mapping.encoder import EventMapper, _ShapePlan


def describe_plan(mapper: EventMapper) -> str:
    """Where each Scarf field comes from, for the log at the start of a sync (names only, no values)."""
    parts = [f"{field} <- {where}" for field, where in mapper.sources.items() if field != "$unique_id"]
    if not mapper.ids.enabled:
        parts.append("$unique_id: not sent (unique_id_mode off)")
    else:
        material = [mapper.sources["$unique_id"] + (" as given" if mapper.ids.as_mapped else "")]
        if mapper.ids.pk_paths:
            material.append("the primary key " + ", ".join(".".join(p) for p in mapper.ids.pk_paths))
        material.append("a hash of the event's content, numbered for repeats")
        parts.append("$unique_id <- " + ", else ".join(material))
    parts.append(f"custom variables: {mapper.variables.describe()}")
    return "; ".join(parts)


def sources_for(mapper: EventMapper, data: dict) -> dict[str, str]:
    """Where each Scarf field of this record's event comes from, for the fields the event has, in Scarf's order.

    A field's source is the record key that supplied its value (the first non-null of a convention's keys:
    `$x`, `x`, then aliases; or the rule's source field), its dotted path, or "constant". `$unique_id`'s is
    its material: "mapped field <key>" (", as given" under unique_id_mode as_mapped), "primary key <path>,
    ...", or "content hash". Custom variables keep their own names, so they are not listed.

    For `preview`, never on the hot path: it maps the record again (raising InvalidRecord or InexactNumber as
    the mapper does) and asks each compiled source which place it read, so it follows the mapper's precedence.
    Pure, like calling the mapper. It names keys, never values.
    """
    event, plan = mapper._event(data)
    found: dict[str, str] = {}
    for field, source in mapper._field_sources.items():
        if field == "$unique_id":
            if mapper.ids.enabled:
                found[field] = _unique_id_material(mapper, data, plan)
            continue
        if field in event:
            supplier = source.supplier(data)
            assert supplier is not None, f"{field} has a value but no source"
            found[field] = supplier
    return found


def _unique_id_material(mapper: EventMapper, data: dict, plan: _ShapePlan) -> str:
    material = mapper.ids.material(data, may_have_mapped=plan.unique_source)
    if material == "mapped":
        given = ", as given" if mapper.ids.as_mapped else ""  # unique_id_mode: as_mapped sends the value itself
        return f"mapped field {mapper._field_sources['$unique_id'].supplier(data)}{given}"
    if material == "primary key":
        return "primary key " + ", ".join(".".join(path) for path in mapper.ids.pk_paths)
    return "content hash"
