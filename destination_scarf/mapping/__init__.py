"""Turn one Airbyte record's `data` into one Scarf event.

- `rules.py`: the user's field mappings, their validation, and which source feeds each Scarf field;
- `encoder.py`: `compile_mapper` and the per-stream `EventMapper`, the hot path;
- `values.py`: values as text, flattening, headers, exactness and depth checks;
- `unique_ids.py`: deterministic `$unique_id`s.

Nothing here puts a record value into an error message: records carry personal data (IP addresses, user agents)
and errors end up in logs. `InvalidRecord` names the field and a reason only. Nothing here imports the CDK.
"""

from destination_scarf.mapping.encoder import EventMapper, compile_mapper
from destination_scarf.mapping.rules import SCARF_FIELDS, FieldRule, MappingConfig, validate_rules
from destination_scarf.mapping.values import MAX_DEPTH, ExactFloat, InexactNumber, InvalidRecord

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
    "validate_rules",
]
