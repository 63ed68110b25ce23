"""DuckDB over the lake: the delta and httpfs extensions from their wheels, a schema per layer.

``Lake`` is a DuckDB connection where every table is a view: ``bronze.<name>`` for each configured
table, ``silver.<name>`` (and ``_history``) for CDC tables, ``ops.dead_letters`` and
``ops.<name>_key_map``. Extensions are loaded from the ``duckdb-extension-*`` wheels, so nothing
is downloaded at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import duckdb
from deltalake import DeltaTable

from lakeport.ingestion import dead_letters, gaps
from lakeport.lake import tables
from lakeport.lake.gold_models import models

if TYPE_CHECKING:
    from lakeport.settings import LakeSettings, Settings

LAYERS = ("bronze", "silver", "gold", "ops")
OPS_TABLES = (dead_letters.TABLE, gaps.TABLE, "quality_results", "alerts")


def _extension(module_name: str) -> Path:
    module = __import__(module_name)
    found = sorted(Path(str(module.__file__)).parent.rglob("*.duckdb_extension"))
    if not found:
        raise RuntimeError(f"no DuckDB extension file in the {module_name} wheel; run `make install`")
    return found[-1]


def _s3_secret(con: duckdb.DuckDBPyConnection, lake: LakeSettings) -> None:
    opts = {k.upper(): v for k, v in lake.to_object_store().items()}
    endpoint = urlparse(opts.get("AWS_ENDPOINT_URL", "") or opts.get("ENDPOINT", ""))
    parts = ["TYPE S3"]
    if "AWS_ACCESS_KEY_ID" in opts:
        parts += [
            f"KEY_ID {tables.literal(opts['AWS_ACCESS_KEY_ID'])}",
            f"SECRET {tables.literal(opts.get('AWS_SECRET_ACCESS_KEY', ''))}",
        ]
    if "AWS_SESSION_TOKEN" in opts:
        parts.append(f"SESSION_TOKEN {tables.literal(opts['AWS_SESSION_TOKEN'])}")
    parts.append(f"REGION {tables.literal(opts.get('AWS_REGION', 'us-east-1'))}")
    if endpoint.netloc:
        parts += [
            f"ENDPOINT {tables.literal(endpoint.netloc)}",
            "URL_STYLE 'path'",
            f"USE_SSL {'true' if endpoint.scheme == 'https' else 'false'}",
        ]
    con.execute(f"CREATE OR REPLACE SECRET lakeport_s3 ({', '.join(parts)})")


def table_exists(uri: str, lake: LakeSettings) -> bool:
    return DeltaTable.is_deltatable(uri, storage_options=lake.to_object_store() or None)


def attach_view(con: duckdb.DuckDBPyConnection, layer: str, name: str, uri: str, *, version: int | None = None) -> None:
    scan = f"delta_scan({tables.literal(uri)}" + (f", version => {int(version)}" if version is not None else "") + ")"
    con.execute(f'CREATE OR REPLACE VIEW "{layer}"."{name}" AS SELECT * FROM {scan}')


def lake_tables(settings: Settings) -> list[tuple[str, str]]:
    """Every (layer, name) the configuration can have in the lake, existing or not."""
    wanted: list[tuple[str, str]] = [(t.layer, t.name) for t in tables.lake_tables(settings)]
    wanted += [("ops", n) for n in OPS_TABLES]
    wanted += [("ops", n) for n in tables.ops_tables(settings)]
    wanted += [("gold", m.name) for m in models(settings)]
    return wanted


class Lake:
    """The lake through DuckDB: a view per existing table (``bronze.orders``, ``gold.customer_360`` …).

    ``as_of`` shows every table as it was at that time (tables younger than that are left out);
    ``versions`` pins single tables to a Delta version (``{"silver.orders": 12}``). The table
    ``lakeport.tables`` lists what is attached: layer, name, location, version shown. Use it as a
    context manager, or ``close()`` it; ``con`` is the DuckDB connection itself.

    >>> with Lake(settings) as lake:
    ...     lake.sql("SELECT count(*) FROM silver.orders").fetchall()
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        config: str | Path | None = None,
        as_of: datetime | None = None,
        versions: Mapping[str, int] | None = None,
    ) -> None:
        if settings is None:  # a notebook's convenience: lakeport.yaml or $LAKEPORT_CONFIG
            from lakeport.settings import load_settings

            settings = load_settings(config)
        self.settings = settings
        self.con = _connection(settings, as_of=as_of, versions=versions or {})

    def __enter__(self) -> Lake:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    def sql(self, query: str, *, params: object = None) -> duckdb.DuckDBPyRelation:
        """A relation over the lake: ``.fetchall()``, ``.df()``, ``.arrow()``, or more SQL on it."""
        return self.con.sql(query, params=params)

    def execute(self, query: str, params: object = None) -> duckdb.DuckDBPyConnection:
        """Run a statement; the cursor has ``.description`` and ``.fetchall()``."""
        return self.con.execute(query, params)

    def at_version(self, table: str, version: int) -> str:
        """Attach ``table`` (``layer.name``) as it was at Delta ``version``; returns the view's name
        (``silver.orders_v12``), queryable next to the current ``silver.orders``."""
        layer, name = table.split(".", 1)
        found = self.con.execute("SELECT uri FROM lakeport.tables WHERE layer = ? AND name = ?", [layer, name])
        row = found.fetchone()
        if row is None:
            raise ValueError(f"no table {table} in this connection")
        view = f"{name}_v{int(version)}"
        attach_view(self.con, layer, view, row[0], version=version)
        return f"{layer}.{view}"

    def as_of(self, table: str, when: datetime) -> str:
        """Attach ``table`` as it was at time ``when`` (the version then current); returns the view's name."""
        layer, name = table.split(".", 1)
        version = version_at(self.settings.lake.table_uri(layer, name), when, self.settings.lake)
        if version is None:
            raise ValueError(f"{table} did not exist at {when.isoformat()}")
        return self.at_version(table, version)

    def versions(self, table: str) -> list[dict[str, object]]:
        """The Delta versions of ``table`` (``layer.name``), newest first: version, timestamp,
        operation, metrics."""
        layer, name = table.split(".", 1)
        lake = self.settings.lake
        found = DeltaTable(lake.table_uri(layer, name), storage_options=lake.to_object_store() or None)
        return [
            {
                "version": e.get("version"),
                "timestamp": datetime.fromtimestamp(int(e.get("timestamp", 0)) / 1000, tz=UTC),
                "operation": e.get("operation"),
                "metrics": e.get("operationMetrics", {}),
            }
            for e in found.history()
        ]


def _connection(
    settings: Settings, *, as_of: datetime | None, versions: Mapping[str, int]
) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for module in ("duckdb_extension_httpfs", "duckdb_extension_delta"):
        con.execute(f"LOAD {tables.literal(str(_extension(module)))}")
    con.execute("SET TimeZone = 'UTC'")
    if not settings.lake.is_local:
        _s3_secret(con, settings.lake)
    for layer in (*LAYERS, "lakeport"):
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{layer}"')
    con.execute("CREATE TABLE lakeport.tables (layer VARCHAR, name VARCHAR, uri VARCHAR, version BIGINT)")
    wanted = lake_tables(settings)
    unknown = set(versions) - {f"{layer}.{name}" for layer, name in wanted}
    if unknown:
        raise ValueError(f"unknown table(s) to pin: {', '.join(sorted(unknown))}")
    for layer, name in wanted:
        uri = settings.lake.table_uri(layer, name)
        version = versions.get(f"{layer}.{name}")
        if version is None and as_of is not None:
            version = version_at(uri, as_of, settings.lake)
            if version is None:
                continue
        elif not table_exists(uri, settings.lake):
            continue
        attach_view(con, layer, name, uri, version=version)
        con.execute("INSERT INTO lakeport.tables VALUES (?, ?, ?, ?)", [layer, name, uri, version])
    return con


def version_at(uri: str, when: datetime, lake: LakeSettings) -> int | None:
    """The Delta version of the table at ``uri`` current at ``when`` (None: it did not exist yet)."""
    if not table_exists(uri, lake):
        return None
    table = DeltaTable(uri, storage_options=lake.to_object_store() or None)
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    for entry in table.history():  # newest first
        stamp = datetime.fromtimestamp(entry["timestamp"] / 1000, tz=UTC)
        if stamp <= when:
            return int(entry["version"])
    return None
