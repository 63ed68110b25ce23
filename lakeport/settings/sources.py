"""The source databases ``lakeport capture`` reads (PostgreSQL, logical replication)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr

from lakeport.settings.base import IDENT, Section


class PostgresSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(15432, gt=0, lt=65536)
    database: str = "shop"
    user: str = "lakeport"
    password: SecretStr = SecretStr("")
    connect_timeout: int = Field(5, gt=0)

    def to_libpq(self, **overrides: Any) -> dict[str, Any]:
        """psycopg2 connection keywords (password revealed: never log this)."""
        conf: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "dbname": self.database,
            "user": self.user,
            "password": self.password.get_secret_value(),
            "connect_timeout": self.connect_timeout,
            "application_name": "lakeport",
        }
        conf.update(overrides)
        return conf


class SourceSettings(Section):
    """A source database whose changes ``lakeport capture`` publishes in Debezium's format."""

    name: str = Field(pattern=IDENT, description="logical server name: the topic prefix")
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    tables: list[str] = Field(default_factory=list, description="schema.table; empty: every table in 'public'")
    outbox_table: str | None = "public.outbox"
    events_prefix: str = "events"
    slot: str | None = Field(None, pattern=IDENT)
    publication: str | None = Field(None, pattern=IDENT)
    confirm_every_messages: int = Field(5000, gt=0)
    confirm_every_seconds: float = Field(1.0, gt=0)
    state_dir: str = ".lakeport/capture"

    @property
    def slot_name(self) -> str:
        return self.slot or f"lakeport_{self.name}"

    @property
    def publication_name(self) -> str:
        return self.publication or f"lakeport_{self.name}"
