"""Settings for data quality (expectations declared next to each table) and for alerting."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, model_validator

from lakeport.settings.base import Section

Expect = Literal["not_null", "unique", "between", "in_set", "references", "columns", "row_count", "total"]
ARROW_KINDS = ("string", "integer", "float", "decimal", "boolean", "timestamp", "date", "binary", "any")


class QualityRule(Section):
    """One expectation on a table, e.g. ``{expect: between, column: total, min: 0}``.

    ``layer`` defaults to silver for CDC tables (current state) and to bronze for event tables.
    ``references`` checks that every non-null ``column`` is a key of ``silver.<table>``
    (``key``: that table's key column; default its configured key)."""

    expect: Expect
    column: str | None = None
    columns: list[str] = Field(default_factory=list)
    types: dict[str, Literal[ARROW_KINDS]] = Field(default_factory=dict)  # type: ignore[valid-type]
    min: float | None = None
    max: float | None = None
    values: list[Any] = Field(default_factory=list)
    table: str | None = None
    key: str | None = None
    query: str | None = Field(None, description="total: SQL over the lake giving the expected sum of 'column'")
    layer: Literal["bronze", "silver", "gold"] | None = None
    severity: Literal["warn", "error"] = "error"
    name: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="default: derived")

    @model_validator(mode="after")
    def _fields_for_kind(self) -> QualityRule:
        needs: dict[str, list[str]] = {
            "between": ["column"],
            "in_set": ["column", "values"],
            "references": ["column", "table"],
            "columns": ["types"],
            "total": ["column", "query"],
        }
        missing = [f for f in needs.get(self.expect, []) if not getattr(self, f)]
        if self.expect in ("not_null", "unique") and not (self.column or self.columns):
            missing.append("column")
        if self.expect == "between" and self.min is None and self.max is None:
            missing.append("min or max")
        if missing:
            raise ValueError(f"expect '{self.expect}' needs {', '.join(missing)}")
        return self

    @property
    def targets(self) -> list[str]:
        return [self.column] if self.column else list(self.columns)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.expect == "columns":
            return "schema"
        return f"{self.expect}_{'_'.join(self.targets) or 'table'}"


class QualitySettings(Section):
    docs_dir: str = Field(".lakeport/quality", description="Great Expectations project and Data Docs")
    sample_keys: int = Field(5, ge=0, le=100, description="failing keys kept per expectation")
    row_count_tolerance: float = Field(
        0.0, ge=0, lt=1, description="bronze rows may fall short of offsets advanced by this fraction"
    )
    default_rules: bool = Field(True, description="key not-null/unique, schema and row-count rules for every table")


class LogNotifierConfig(Section):
    type: Literal["log"] = "log"


class WebhookNotifierConfig(Section):
    """Slack-compatible JSON (``{"text": …}`` plus blocks); Mattermost and Teams accept it too."""

    type: Literal["webhook"]
    url: SecretStr
    timeout_seconds: float = Field(10.0, gt=0)


class SmtpNotifierConfig(Section):
    type: Literal["smtp"]
    host: str
    port: int = Field(25, gt=0, lt=65536)
    sender: str
    recipients: list[str] = Field(min_length=1)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    ssl: bool = False
    timeout_seconds: float = Field(10.0, gt=0)


NotifierConfig = Annotated[LogNotifierConfig | WebhookNotifierConfig | SmtpNotifierConfig, Field(discriminator="type")]


class AlertSettings(Section):
    notifiers: list[NotifierConfig] = Field(default_factory=lambda: [LogNotifierConfig(type="log")])  # type: ignore[arg-type]
    repeat_after_minutes: float = Field(
        240.0, gt=0, description="a check still failing pages again only after this long"
    )
    console_hint: str = Field("lakeport", description="command prefix shown in alerts (how to see more)")

    def secrets(self) -> list[str]:
        out = []
        for n in self.notifiers:
            if isinstance(n, WebhookNotifierConfig):
                out.append(n.url.get_secret_value())
            if isinstance(n, SmtpNotifierConfig) and n.password is not None:
                out.append(n.password.get_secret_value())
        return out
