"""The feature contract and its two readers.

- `contract`: the 20 feature names in model order, categories, defaults (docs/FEATURES.md);
- `nested`: a scoring request's ``features`` object -> 20 values in [0, 1];
- `vector`: a caller's ready-made ``feature_vector`` -> 20 values;
- `flat`: flat CRM key/value pairs (HighLevel custom fields) -> the nested request.

The names below are the package's public API; modules inside ``leadscore`` import from the
submodule that owns a name.
"""

from leadscore.features.contract import (
    FEATURE_DIRECTIONS,
    FEATURE_INDEX,
    FEATURE_NAMES,
    N_FEATURES,
    SECTIONS,
    ExtractedFeatures,
)
from leadscore.features.flat import (
    FLAT_FIELDS,
    extract_flat_features,
    flat_error_path,
    flat_to_nested,
    parse_number_text,
)
from leadscore.features.nested import extract_features, extract_many
from leadscore.features.vector import parse_feature_vector

__all__ = [
    "FEATURE_DIRECTIONS",
    "FEATURE_INDEX",
    "FEATURE_NAMES",
    "FLAT_FIELDS",
    "N_FEATURES",
    "SECTIONS",
    "ExtractedFeatures",
    "extract_features",
    "extract_flat_features",
    "extract_many",
    "flat_error_path",
    "flat_to_nested",
    "parse_feature_vector",
    "parse_number_text",
]
