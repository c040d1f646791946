"""Target settings: each declared once (`model.py`), by the mechanism in `declare.py`.

`Settings.from_config` is how every part of the target reads its configuration; `config_jsonschema`
is what the SDK validates and `--about` prints.
"""

from target_dativo_iceberg.settings.connections import Connection, NessieConnection, S3Connection
from target_dativo_iceberg.settings.messages import describe_config_errors
from target_dativo_iceberg.settings.model import (
    CATALOG_TYPES,
    VALIDATION_MODES,
    RetrySettings,
    Settings,
    batch_roots,
    config_jsonschema,
)

__all__ = [
    "CATALOG_TYPES",
    "VALIDATION_MODES",
    "Connection",
    "NessieConnection",
    "RetrySettings",
    "S3Connection",
    "Settings",
    "batch_roots",
    "config_jsonschema",
    "describe_config_errors",
]
