"""`${VAR}` references in settings: expanded from the environment, an unset one is a config error."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from target_dativo_iceberg.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: Any, path: str = "") -> Any:
    """Replace `${VAR}` references in strings (recursively); an unset variable is a config error."""
    if isinstance(value, str):

        def _sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ConfigError(f"setting {path or '?'} references ${{{name}}}, which is not set")
            return os.environ[name]

        return _ENV_REF.sub(_sub, value)
    if isinstance(value, Mapping):
        return {k: expand_env(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value
