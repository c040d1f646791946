"""An OpenLineage run event per target run (optional: `openlineage.transport`, off by default).

Lineage tools (Marquez, DataHub, OpenMetadata, ...) learn from it which tap fed which Iceberg tables,
when, with what outcome and how many rows and bytes. One event is sent when the run ends, built from
the run ledger's row (`runlog.py`): `COMPLETE` for a success or a partial run, `FAIL` with the
(redacted) error for a failure, `ABORT` for a run stopped by a signal. Inputs: the tap (`source`),
as dataset `singer://{source}`; outputs: each table, in namespace `iceberg://{catalog_name}`, with
the rows, bytes and files the run wrote to it.

Transports: `file` (one JSON event per line appended to `openlineage.file`) or `http` (POST to
`openlineage.url`, with `openlineage.api_key` as a bearer token). The client is the
`openlineage-python` package, installed with the `openlineage` extra (`pip install
'dativo-ingest[openlineage]'`); sending is best effort, like the ledger: a failure is a
`lineage_failed` event and never changes the run's outcome.
"""

from __future__ import annotations

import datetime
import typing as t
from typing import Any

if t.TYPE_CHECKING:
    from target_dativo_iceberg.events import EventLog
    from target_dativo_iceberg.settings import Settings

_STATES = {"success": "COMPLETE", "partial": "COMPLETE", "failed": "FAIL", "interrupted": "ABORT"}
PRODUCER = "https://github.com/dativo-io/dativo-ingest"


def transport_config(settings: Settings) -> dict[str, Any]:
    """The OpenLineage client's transport configuration for the `openlineage.*` settings."""
    lineage = settings.openlineage
    needed = "file" if lineage.transport == "file" else "url"
    if not getattr(lineage, needed):
        raise ValueError(f"openlineage.transport {lineage.transport} needs openlineage.{needed}")
    if lineage.transport == "file":
        return {"type": "file", "log_file_path": lineage.file, "append": True}
    auth = {"auth": {"type": "api_key", "apiKey": lineage.api_key}} if lineage.api_key else {}
    return {"type": "http", "url": lineage.url, "endpoint": lineage.endpoint, **auth}


def run_event(row: dict[str, Any], settings: Settings) -> Any:
    """The OpenLineage `RunEvent` of a run ledger row."""
    from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import error_message_run, output_statistics_output_dataset

    run_facets: dict[str, Any] = {}
    if row.get("error"):
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=row["error"], programmingLanguage="python"
        )
    outputs = []
    for table in row["tables"]:
        files = [f for f in row["files"] if f["table"] == table]
        stats = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
            rowCount=sum(f["records"] for f in files),
            size=sum(f["bytes"] for f in files),
            fileCount=len(files),
        )
        outputs.append(
            OutputDataset(
                namespace=f"iceberg://{settings.catalog_name}",
                name=table,
                outputFacets={"outputStatistics": stats},
            )
        )
    source = row.get("source")
    inputs = [InputDataset(namespace=f"singer://{source}", name=s) for s in row["streams"]] if source else []
    lineage = settings.openlineage
    job_name = lineage.job_name or (
        f"{source}-to-target-dativo-iceberg" if source else "target-dativo-iceberg"
    )
    finished: datetime.datetime = row["finished_at"]
    return RunEvent(
        eventType=RunState(_STATES.get(row["status"], "OTHER")),
        eventTime=finished.isoformat(),
        run=Run(runId=row["run_id"], facets=run_facets),
        job=Job(namespace=lineage.namespace or settings.tenant_id, name=job_name),
        producer=PRODUCER,
        inputs=inputs,
        outputs=outputs,
    )


def send(row: dict[str, Any], settings: Settings, events: EventLog) -> None:
    """Send the run's OpenLineage event when `openlineage.transport` is set; never raises."""
    if settings.openlineage.transport == "none":
        return
    try:
        from openlineage.client import OpenLineageClient

        client = OpenLineageClient(config={"transport": transport_config(settings)})
        event = run_event(row, settings)
        client.emit(event)
    except ImportError as exc:
        events.emit(
            "lineage_failed",
            error=f"{exc}; install the openlineage extra: pip install 'dativo-ingest[openlineage]'",
        )
        return
    except Exception as exc:  # lineage never changes the run's outcome
        events.emit("lineage_failed", error=events.redact(f"{type(exc).__name__}: {exc}"))
        return
    events.emit("lineage_sent", transport=settings.openlineage.transport, event_type=event.eventType.value)
