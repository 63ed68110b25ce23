"""Settings for what may reach the lake: per-column rules (drop, hash, mask) and the salt they use."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ColumnRule(BaseModel):
    """``{column: email, action: hash}``: applied to the decoded rows before they are written.

    ``drop`` removes the column; ``hash`` replaces each value by the hex SHA-256 of salt + value (joins
    still work: equal values hash equally); ``mask`` keeps the last ``keep_last`` characters and
    replaces the rest with ``*``."""

    model_config = ConfigDict(extra="forbid")

    column: str
    action: Literal["drop", "hash", "mask"]
    keep_last: int = Field(4, ge=0)


class SecuritySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hash_salt: SecretStr = Field(SecretStr(""), description="salt of 'hash' column rules (a secret)")
    keep_raw_dead_letters: bool = Field(
        False, description="tables with column rules: keep dead letters' raw values (they may hold the protected data)"
    )
