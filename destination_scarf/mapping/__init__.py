"""Turn one Airbyte record's `data` into one Scarf event's NDJSON line.

- `encoder.py`: `compile_mapper` and the per-stream `EventMapper`, the hot path (and, for people, the plan a
  sync logs and `preview`'s sources of one record's fields);
- `rules.py`: the user's field mappings, their validation, and which source feeds each Scarf field;
- `values.py`: values as text, flattening, headers, and the exactness and depth checks;
- `variables.py`: custom variables;
- `unique_ids.py`: deterministic `$unique_id`s;
- `timeparse.py`: event times, parsed and written as Scarf wants them;
- `artifacts.py`: package and tracking pixel names turned into ids, from a table the sync reads.

Nothing here puts a record value into an error message: records carry personal data (IP addresses, user agents)
and errors end up in logs. `InvalidRecord` names the field and a reason only; the one exception is a package or
tracking pixel name that names no single artifact (artifacts.py): a name of the user's own catalogue, capped and
escaped. Nothing here imports the CDK or calls Scarf.
"""

from destination_scarf.mapping.encoder import EventMapper, compile_mapper
from destination_scarf.mapping.rules import FieldRule, MappingConfig, validate_rules
from destination_scarf.mapping.values import MAX_DEPTH, ExactFloat, InexactNumber, InvalidRecord, read_exactly
from destination_scarf.options import SCARF_FIELDS

__all__ = [
    "MAX_DEPTH",
    "SCARF_FIELDS",
    "EventMapper",
    "ExactFloat",
    "FieldRule",
    "InexactNumber",
    "InvalidRecord",
    "MappingConfig",
    "compile_mapper",
    "read_exactly",
    "validate_rules",
]
