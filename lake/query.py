"""DuckDB over the lake: the delta and httpfs extensions from their wheels, a schema per layer.

``connect()`` gives a connection where every table is a view: ``bronze.<name>`` for each configured
table, ``silver.<name>`` (and ``_history``) for CDC tables, ``ops.dead_letters`` and
``ops.<name>_key_map``. Extensions are loaded from the ``duckdb-extension-*`` wheels, so nothing
is downloaded at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import duckdb
from deltalake import DeltaTable

if TYPE_CHECKING:
    from lakeport.config import LakeSettings, Settings

LAYERS = ("bronze", "silver", "gold", "ops")
OPS_TABLES = ("dead_letters", "quality_results", "alerts")


def _extension(module_name: str) -> Path:
    module = __import__(module_name)
    found = sorted(Path(str(module.__file__)).parent.rglob("*.duckdb_extension"))
    if not found:
        raise RuntimeError(f"no DuckDB extension file in the {module_name} wheel; run `make install`")
    return found[-1]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _s3_secret(con: duckdb.DuckDBPyConnection, lake: LakeSettings) -> None:
    opts = {k.upper(): v for k, v in lake.to_object_store().items()}
    endpoint = urlparse(opts.get("AWS_ENDPOINT_URL", "") or opts.get("ENDPOINT", ""))
    parts = ["TYPE S3"]
    if "AWS_ACCESS_KEY_ID" in opts:
        parts += [
            f"KEY_ID {_quote(opts['AWS_ACCESS_KEY_ID'])}",
            f"SECRET {_quote(opts.get('AWS_SECRET_ACCESS_KEY', ''))}",
        ]
    if "AWS_SESSION_TOKEN" in opts:
        parts.append(f"SESSION_TOKEN {_quote(opts['AWS_SESSION_TOKEN'])}")
    parts.append(f"REGION {_quote(opts.get('AWS_REGION', 'us-east-1'))}")
    if endpoint.netloc:
        parts += [
            f"ENDPOINT {_quote(endpoint.netloc)}",
            "URL_STYLE 'path'",
            f"USE_SSL {'true' if endpoint.scheme == 'https' else 'false'}",
        ]
    con.execute(f"CREATE OR REPLACE SECRET lakeport_s3 ({', '.join(parts)})")


def table_exists(uri: str, lake: LakeSettings) -> bool:
    return DeltaTable.is_deltatable(uri, storage_options=lake.to_object_store() or None)


def attach_view(con: duckdb.DuckDBPyConnection, layer: str, name: str, uri: str, *, version: int | None = None) -> None:
    scan = f"delta_scan({_quote(uri)}" + (f", version => {int(version)}" if version is not None else "") + ")"
    con.execute(f'CREATE OR REPLACE VIEW "{layer}"."{name}" AS SELECT * FROM {scan}')


def connect(settings: Settings | None = None, *, config: str | Path | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with a view per existing lake table (``bronze.orders`` …)."""
    if settings is None:
        from lakeport.config import load_settings

        settings = load_settings(config)
    con = duckdb.connect()
    for module in ("duckdb_extension_httpfs", "duckdb_extension_delta"):
        con.execute(f"LOAD {_quote(str(_extension(module)))}")
    if not settings.lake.is_local:
        _s3_secret(con, settings.lake)
    for layer in LAYERS:
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{layer}"')
    wanted = [("bronze", t.name) for t in settings.tables] + [("ops", n) for n in OPS_TABLES]
    cdc = [t for t in settings.tables if t.key and t.format == "debezium-json"]
    wanted += [("silver", t.name) for t in cdc] + [("silver", f"{t.name}_history") for t in cdc if t.history]
    wanted += [("ops", f"{t.name}_key_map") for t in cdc if t.source_key]
    for layer, name in wanted:
        uri = settings.lake.table_uri(layer, name)
        if table_exists(uri, settings.lake):
            attach_view(con, layer, name, uri)
    return con
