"""What every section of the settings shares: unknown keys are errors, names are identifiers, and
values under a credential-like key are held as ``SecretStr``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr

_SECRET_KEY = re.compile(r"(password|secret|jaas|token|credential|private|api[._-]?key)", re.I)
IDENT = r"^[a-z_][a-z0-9_]*$"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def wrap_secrets(values: Mapping[str, Any]) -> dict[str, str | SecretStr]:
    out: dict[str, str | SecretStr] = {}
    for key, value in values.items():
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        out[str(key)] = SecretStr(text) if is_secret_key(str(key)) else text
    return out


def reveal(values: Mapping[str, str | SecretStr]) -> dict[str, str]:
    return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in values.items()}


def with_secrets(data: Any, field: str) -> Any:
    """``data`` (a section's raw input) with the mapping under ``field`` wrapped by :func:`wrap_secrets`."""
    if isinstance(data, dict) and isinstance(data.get(field), Mapping):
        return {**data, field: wrap_secrets(data[field])}
    return data
