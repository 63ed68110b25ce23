"""Sensors: bronze Delta versions moving trigger silver; failed runs raise an alert."""

from __future__ import annotations

import json

import dagster as dg
from dagster import RunFailureSensorContext, SensorEvaluationContext

from lakeport.dagster_project.assets import bronze_key, facts_metadata, gold_key, silver_key
from lakeport.dagster_project.resources import LakeResource
from lakeport.lake.gold import models
from lakeport.lake.tables import silver_tables
from lakeport.quality.alerts import Alert
from lakeport.settings import Settings


def bronze_version_sensor(settings: Settings, silver_job: dg.UnresolvedAssetJobDefinition) -> dg.SensorDefinition:
    observe = settings.orchestration.bronze_mode == "observe"
    downstream: dict[str, list[dg.AssetKey]] = {}
    for t in silver_tables(settings):
        downstream.setdefault(t.source.name, []).append(silver_key(t.name))
    for m in models(settings):  # a gold model is downstream of every table it reads
        for _, table in m.inputs:
            downstream.setdefault(table, []).append(gold_key(m.name))

    @dg.sensor(job=silver_job, minimum_interval_seconds=30, description="bronze version moved → refresh its silver")
    def bronze_versions(context: SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult:
        seen: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
        moved, events = [], []
        for t in settings.tables:
            facts = lake.table_facts("bronze", t.name)
            if facts is None or facts.version == seen.get(t.name):
                continue
            seen[t.name] = facts.version
            moved.append(t.name)
            if observe:  # filled by a long-running `lakeport ingest`: record it as the asset's materialization
                events.append(dg.AssetMaterialization(asset_key=bronze_key(t.name), metadata=facts_metadata(facts)))
        keys = list(dict.fromkeys(k for name in moved for k in downstream.get(name, [])))
        runs = [dg.RunRequest(run_key=f"silver-{context.cursor}-{len(seen)}-{sorted(moved)}", asset_selection=keys)]
        return dg.SensorResult(run_requests=runs if keys else [], asset_events=events, cursor=json.dumps(seen))

    return bronze_versions


def _root_cause(error: object) -> str:
    """The message of the exception the step raised (Dagster wraps it in its own)."""
    while getattr(error, "cause", None) is not None:
        error = error.cause  # type: ignore[attr-defined]
    return str(getattr(error, "message", "")).strip()


def run_failure_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    """A failed run pages (deduplicated per job); the job's next successful run sends the recovery."""
    from datetime import UTC, datetime

    from lakeport.quality.alerts import alerter_for

    def alert(job: str, detail: str, run_id: str) -> Alert:
        return Alert(key=f"run-failed:{job}", title=f"Dagster run of {job} failed", detail=detail,
                     severity="error", link=f"Dagster UI: /runs/{run_id}")  # fmt: skip

    @dg.run_failure_sensor(description="a failed run sends an alert")
    def run_failures(context: RunFailureSensorContext) -> None:
        run = context.dagster_run
        steps = [f"{e.step_key}: {_root_cause(e.step_failure_data.error)}" for e in context.get_step_failure_events()]
        detail = "\n".join([context.failure_event.message or "", *steps[:3]])
        event = alert(run.job_name, detail, run.run_id)
        alerter_for(settings).evaluate(event, failing=True, now=datetime.now(UTC))

    @dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, description="a job succeeding again: recovery")
    def run_recoveries(context: dg.RunStatusSensorContext) -> None:
        run = context.dagster_run
        alerter_for(settings).evaluate(alert(run.job_name, "", run.run_id), failing=False, now=datetime.now(UTC))

    return [run_failures, run_recoveries]
