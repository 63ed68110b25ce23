"""Retention gaps: records Kafka deleted (retention, ``DeleteRecords``) before they landed.

A gap is found where the next offset the lake needs is below its partition's log start, at
assignment or while reading (a run of records starting past the position, with the log start
past it too; holes from compaction or transaction markers sit below the log start and are no
gap). It is never silent, whatever ``ingest.on_gap`` says:

1. the gap is recorded in ``ops.retention_gaps`` (topic, partition, first and last missing
   offset, records, table, policy, when), once per range: this happens before anything past the
   gap lands, so a crash cannot hide it;
2. an alert fires through the configured notifiers (deduplicated in ``ops.alerts``);
3. ``on_gap: fail`` (the default) stops the worker with :class:`RetentionGapError`: no offset
   moves, and the next run finds the same gap until an operator decides; ``on_gap: skip`` counts
   the missing records and reads on from the log start.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import pyarrow as pa
import structlog
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import DeltaError, TableNotFoundError

from lakeport.ingestion.errors import TerminalError, TransientError
from lakeport.quality.alerts import Alert, alerter_for
from lakeport.settings import Settings

TABLE = "retention_gaps"
LAYER = "ops"
SCHEMA = pa.schema([
    ("topic", pa.string()), ("partition", pa.int32()), ("first_offset", pa.int64()), ("last_offset", pa.int64()),
    ("records", pa.int64()), ("table_name", pa.string()), ("policy", pa.string()),
    ("detected_at", pa.timestamp("us", tz="UTC")),
])  # fmt: skip
log = structlog.get_logger("lakeport.gaps")


@dataclass(frozen=True)
class Gap:
    """Offsets ``first_offset`` … ``last_offset`` of a partition were deleted before they landed."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    table_name: str
    policy: str
    detected_at: datetime

    @property
    def records(self) -> int:
        return self.last_offset - self.first_offset + 1

    def where(self) -> str:
        return f"{self.topic}[{self.partition}] offsets {self.first_offset}..{self.last_offset}"


class RetentionGapError(TerminalError):
    """``on_gap: fail``: records were deleted from Kafka before they landed; nothing moved."""


class GapKeeper:
    """Records, alerts and applies the policy for the gaps one worker finds."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.policy = settings, settings.ingest.on_gap
        self.uri = settings.lake.table_uri(LAYER, TABLE)
        self.skipped = 0  # records skipped under on_gap: skip, this run

    def found(self, table: str, topic: str, partition: int, *, needed: int, log_start: int) -> int:
        """The gap below ``log_start`` of a partition whose next needed offset is ``needed``:
        recorded and alerted, then raised (``fail``) or counted (``skip``); returns where to read on."""
        gap = Gap(topic=topic, partition=partition, first_offset=needed, last_offset=log_start - 1, table_name=table,
                  policy=self.policy, detected_at=datetime.now(UTC))  # fmt: skip
        self._record(gap)
        self._alert(gap)
        if self.policy == "fail":
            raise RetentionGapError(
                f"retention_gap: {gap.where()} ({gap.records} records) were deleted from Kafka before they landed; "
                f"nothing moved. Recorded in ops.{TABLE}. To land from the log start and keep the gap on record, "
                "set ingest.on_gap: skip",
                table=table, offsets={(topic, partition): (gap.first_offset, gap.last_offset)},
            )  # fmt: skip
        self.skipped += gap.records
        log.warning("retention_gap_skipped", table=table, where=gap.where(), records=gap.records)
        return log_start

    def _record(self, gap: Gap) -> None:
        try:
            self._write_once(gap)
        except (OSError, DeltaError) as exc:  # the lake is down: retried, and nothing moves meanwhile
            raise TransientError(f"recording the retention gap {gap.where()} failed: {exc}", table=gap.table_name) \
                from exc  # fmt: skip

    def _write_once(self, gap: Gap) -> None:
        opts = self.settings.lake.to_object_store() or None
        try:
            seen = DeltaTable(self.uri, storage_options=opts).to_pyarrow_table(columns=["topic", "partition",
                                                                                          "first_offset"])  # fmt: skip
            if (gap.topic, gap.partition, gap.first_offset) in set(zip(*(c.to_pylist() for c in seen.columns),
                                                                       strict=True)):  # fmt: skip
                return  # found again by a later run or another worker: one row per range
        except TableNotFoundError:
            pass
        row = {**asdict(gap), "records": gap.records}
        write_deltalake(self.uri, pa.Table.from_pylist([row], SCHEMA), mode="append", storage_options=opts)

    def _alert(self, gap: Gap) -> None:
        alert = Alert(
            key=f"retention_gap:{gap.topic}[{gap.partition}]:{gap.first_offset}",
            table=gap.table_name,
            rows=gap.records,
            title=f"Kafka deleted {gap.records} records before they landed ({gap.where()})",
            detail=f"policy on_gap: {gap.policy}: "
            + ("ingest stopped, nothing moved" if gap.policy == "fail" else "read on from the log start"),
            link=f"lakeport sql \"SELECT * FROM ops.{TABLE}\"",
        )  # fmt: skip
        try:
            alerter_for(self.settings).evaluate(alert, failing=True, now=gap.detected_at)
        except Exception as exc:  # the record is the proof; a notifier that is down must not hide it
            log.error("retention_gap_alert_failed", error=str(exc), where=gap.where())
