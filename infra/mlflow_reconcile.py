"""Leave an ended execution's shared MLflow run with the execution's outcome.

The tasks of an execution log into one MLflow run and set its status from
their nodes' outcomes (:mod:`kedro_batch_runtime.mlflow_run`). An execution
that ends outside a node -- a timeout, an abort, capacity that never came, a
task killed before it could record its nodes -- leaves that run RUNNING.
``python -m infra status`` (and ``--follow`` or ``run --follow`` once the
execution ends) closes it: FAILED for a FAILED, TIMED_OUT or ABORTED
execution, FINISHED for a SUCCEEDED one, where it says otherwise.

Everything needed comes from the execution itself: its definition names
the job definitions, whose environment holds the data bucket and the
tracking URI (a project without kedro-mlflow has none: nothing to do), and
the MLflow run's ID is in ``runs/<run id>/mlflow/run.json`` of that bucket,
written by the execution's first task (none: no task started, so there is
no run). Any step may be refused (a permission, an unreachable server):
that is one note, never a failed ``status``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kedro_batch_runtime.mlflow_run import RUN_FILE, folder
from kedro_batch_runtime.settings import ENV_BUCKET, ENV_MLFLOW_TRACKING_URI

from infra.asl import iter_states

# Step Functions' terminal statuses -> the MLflow run status they mean.
RUN_STATUS = {
    "SUCCEEDED": "FINISHED",
    "FAILED": "FAILED",
    "TIMED_OUT": "FAILED",
    "ABORTED": "FAILED",
}
PERMISSIONS = (
    "batch:DescribeJobDefinitions, s3:GetObject on runs/*/mlflow/run.json of the data bucket, "
    "and the tracking server's permission to update runs"
)


@dataclass(frozen=True)
class Tracking:
    """Where an execution's jobs track: the data bucket and the MLflow tracking URI."""

    bucket: str
    uri: str


def job_definitions(definitions: Iterable[Mapping[str, Any]]) -> list[str]:
    """The job definitions the Task states of ``definitions`` submit to, once each."""
    found: dict[str, None] = {}
    for definition in definitions:
        for _, state in iter_states(definition):
            for fields in (state.get("Parameters"), state.get("Arguments")):
                arn = fields.get("JobDefinition") if isinstance(fields, Mapping) else None
                if isinstance(arn, str):
                    found.setdefault(arn)
    return list(found)


def tracking_of(job_definition: Mapping[str, Any]) -> Tracking | None:
    """The tracking a job definition (as ``DescribeJobDefinitions`` gives it) sets
    up, or ``None`` for a project that does not track with kedro-mlflow."""
    environment = job_definition.get("containerProperties", {}).get("environment", [])
    values = {e.get("name"): e.get("value") for e in environment}
    bucket, uri = values.get(ENV_BUCKET), values.get(ENV_MLFLOW_TRACKING_URI)
    return Tracking(bucket, uri) if bucket and uri else None


def reconcile(
    execution: Mapping[str, Any],
    definitions: Iterable[Mapping[str, Any]],
    batch: Any,
    s3: Any,
) -> str | None:
    """Close the execution's MLflow run if it is over; one line to print, or
    ``None`` when the execution is not over or the project does not track."""
    from botocore import exceptions as bx

    status = str(execution.get("status"))
    target = RUN_STATUS.get(status)
    arns = job_definitions(definitions)
    if target is None or not arns:
        return None
    run_id = str(execution.get("name"))
    try:
        described = batch.describe_job_definitions(jobDefinitions=arns[:1])["jobDefinitions"]
        tracking = tracking_of(described[0]) if described else None
        if tracking is None:
            return None
        key = f"{folder(run_id)}/{RUN_FILE}"
        try:
            record = json.loads(s3.get_object(Bucket=tracking.bucket, Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            return f"MLflow: no run was recorded for {run_id} (no task started)"
    except (bx.ClientError, bx.BotoCoreError) as exc:
        return (
            f"note: could not find the execution's MLflow run ({_first(exc)}); allow {PERMISSIONS}"
        )
    return _close(tracking.uri, str(record["run_id"]), target, status)


def _close(uri: str, run_id: str, target: str, execution_status: str) -> str:
    """Set MLflow run ``run_id`` at ``uri`` to ``target`` unless it is there already."""
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=uri)
        current = client.get_run(run_id).info.status
        if current == target:
            return f"MLflow run {run_id}: {target}"
        client.set_terminated(run_id, status=target)
    except Exception as exc:  # MLflow raises its own, requests' and the store's errors
        return (
            f"note: could not set MLflow run {run_id} at {uri} to {target} ({_first(exc)}); "
            "the tracking server needs the credentials the jobs get (MLFLOW_TRACKING_* in "
            "this shell; sagemaker-mlflow installed for a SageMaker server)"
        )
    return f"MLflow run {run_id}: {current} -> {target} (the execution ended {execution_status})"


def _first(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}"
