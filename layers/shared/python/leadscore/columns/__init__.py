"""A team's own columns: the custom schema a bundle can be trained on instead of
the real-estate feature contract (`leadscore.features`).

- `schema`: the schema file (columns, kinds, missing tokens, directions, wording, HighLevel
  field keys) and its numpy-only transform from raw values to the model's inputs;
- `reasons`: reasons in the schema's own words;
- `csv_reader`: the one CSV reader (exports as spreadsheets save them, streamed);
- `labels`: the one label parser (converted / not converted / unresolved).

Modules inside ``leadscore`` import from the submodule that owns a name.
"""

from leadscore.columns.reasons import column_reason
from leadscore.columns.schema import ColumnSpec, Encoded, Schema, SchemaError

__all__ = ["ColumnSpec", "Encoded", "Schema", "SchemaError", "column_reason"]
