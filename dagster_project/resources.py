"""Thin Dagster resources over the library: every method delegates to ``ingestion``, ``lake``."""

from __future__ import annotations

import time
from typing import Any

import dagster as dg

from lakeport.settings import Settings, load_settings


class LakeResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The lake described by a ``lakeport.yaml`` (empty path: ``$LAKEPORT_CONFIG`` or ./lakeport.yaml)."""

    config_path: str = ""

    def settings(self) -> Settings:
        return load_settings(self.config_path or None)

    def uri(self, layer: str, name: str) -> str:
        return self.settings().lake.table_uri(layer, name)

    def ingest_once(self) -> Any:
        from lakeport.ingestion.worker import Worker

        return Worker(self.settings(), once=True).run()

    def apply_silver(self, name: str) -> dict[str, Any]:
        """Apply one silver table (``orders``, ``orders_history``, ``domain_events``):
        :func:`lake.refresh.refresh_table`'s result."""
        from lakeport.lake.refresh import refresh_table
        from lakeport.lake.tables import silver_tables

        s = self.settings()
        [table] = [t for t in silver_tables(s) if t.name == name]
        return refresh_table(s, table)

    def refresh_gold(self, name: str) -> Any:
        from lakeport.lake.gold import refresh_gold

        return refresh_gold(self.settings(), model=name)

    def table_facts(self, layer: str, name: str) -> dict[str, Any]:
        """Delta version, files, bytes and rows of a table (``exists: False`` if it does not)."""
        from lakeport.lake.tables import open_table

        table = open_table(self.uri(layer, name), self.settings().lake.to_object_store())
        if table is None:
            return {"exists": False}
        adds = table.get_add_actions(flatten=True)
        return {
            "exists": True,
            "version": table.version(),
            "files": adds.num_rows,
            "bytes": sum(v or 0 for v in adds.column("size_bytes").to_pylist()),
            "rows": sum(v or 0 for v in adds.column("num_records").to_pylist()),
        }

    def newest_age_seconds(self, name: str) -> float | None:
        """Seconds since the newest Kafka timestamp landed in ``bronze.<name>`` (None: empty)."""
        import pyarrow.compute as pc

        from lakeport.lake.tables import open_table

        table = open_table(self.uri("bronze", name), self.settings().lake.to_object_store())
        if table is None:
            return None
        newest = pc.max(table.to_pyarrow_dataset().to_table(columns=["_timestamp"])["_timestamp"]).as_py()
        return None if newest is None else max(time.time() - newest.timestamp(), 0.0)

    def check_quality(self, layer: str, name: str) -> Any:
        """Run the quality suite of ``<layer>.<name>`` (results kept, alerts sent): a SuiteResult."""
        from lakeport.quality.run import check

        (result,) = check(self.settings(), table=name, layer=layer)
        return result

    def evaluate_alert(self, alert: Any, *, failing: bool) -> str | None:
        """Page (deduplicated) for a failing check, or send its recovery: see quality.alerts.Alerter."""
        from datetime import UTC, datetime

        from lakeport.quality.run import alerter_for

        return alerter_for(self.settings()).evaluate(alert, failing=failing, now=datetime.now(UTC))

    def maintain(self, action: str, layer: str, name: str, *, dry_run: bool = False) -> Any:
        """``compact``, ``vacuum`` or ``checkpoint`` one table (see :mod:`lake.maintenance`)."""
        from lakeport.lake import maintenance

        s = self.settings()
        uri, opts, orch = s.lake.table_uri(layer, name), s.lake.to_object_store(), s.orchestration
        if action == "compact":
            z_order = s.table(name).z_order if layer == "bronze" else ()
            return maintenance.compact(
                uri, storage_options=opts, target_size=orch.compaction_target_size, z_order=z_order
            )
        floor = None
        if layer == "bronze":  # never vacuum or clean up what a silver table has not applied yet
            from lakeport.lake.refresh import readers_of

            floor = maintenance.unapplied_floor(uri, readers_of(s, name), storage_options=opts)
        if action == "vacuum":
            return maintenance.vacuum(
                uri,
                storage_options=opts,
                retention_hours=orch.vacuum_retention_hours,
                min_retention_hours=orch.vacuum_min_retention_hours,
                dry_run=dry_run,
                keep_from_version=floor,
            )
        return maintenance.checkpoint(uri, storage_options=opts, keep_from_version=floor)


class KafkaResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Kafka as Lakeport sees it: per bronze table, the lake's offsets against the high watermarks."""

    config_path: str = ""

    def lag(self) -> dict[str, dict[str, int]]:
        """table → {"topic[partition]": lag}."""
        from lakeport.ingestion.status import collect

        return {
            s.table: {f"{p.topic}[{p.partition}]": p.lag for p in s.partitions}
            for s in collect(load_settings(self.config_path or None))
        }
