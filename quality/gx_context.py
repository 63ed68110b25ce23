"""The Great Expectations project under ``quality.docs_dir``: suites, validation results and Data
Docs live there as files, so people can browse ``<docs_dir>/gx/uncommitted/data_docs/local_site``.

One file-backed context per process and directory. Every suite is a pandas dataframe asset named
like the table (``silver.orders``) with a whole-dataframe batch; a checkpoint per suite runs the
validation and updates Data Docs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("lakeport.quality")
_contexts: dict[str, Any] = {}
SOURCE = "lakeport"
BATCH = "snapshot"


def context(docs_dir: str) -> Any:
    root = str(Path(docs_dir).resolve())
    if root not in _contexts:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        Path(root).mkdir(parents=True, exist_ok=True)
        ctx = gx.get_context(mode="file", project_root_dir=root)
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        ctx.variables.analytics_enabled = False
        ctx.variables.save()
        _contexts[root] = ctx
    return _contexts[root]


def docs_index(docs_dir: str) -> Path:
    return Path(docs_dir).resolve() / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def _batch_definition(ctx: Any, name: str) -> Any:
    source = ctx.data_sources.add_or_update_pandas(SOURCE)
    try:
        asset = source.get_asset(name)
    except LookupError:
        asset = source.add_dataframe_asset(name)
    try:
        return asset.get_batch_definition(BATCH)
    except (KeyError, LookupError):
        return asset.add_batch_definition_whole_dataframe(BATCH)


def validate(docs_dir: str, name: str, frame: Any, expectations: list[Any], *, index: list[str]) -> list[Any]:
    """Run ``expectations`` on ``frame`` as suite ``name``; the results in the same order."""
    import great_expectations as gx

    ctx = context(docs_dir)
    suite = ctx.suites.add_or_update(gx.ExpectationSuite(name=name, expectations=expectations))
    definition = ctx.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=_batch_definition(ctx, name), suite=suite)
    )
    checkpoint = ctx.checkpoints.add_or_update(
        gx.Checkpoint(
            name=name,
            validation_definitions=[definition],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")],
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": index},
        )
    )
    result = checkpoint.run(batch_parameters={"dataframe": frame})
    (validation,) = result.run_results.values()
    by_id = {r.expectation_config.id: r for r in validation.results}
    ordered = [by_id.get(e.id) for e in suite.expectations]
    if any(r is None for r in ordered):  # fall back to GX's order (same as the suite's)
        return list(validation.results)
    return ordered
