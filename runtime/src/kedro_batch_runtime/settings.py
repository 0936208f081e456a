"""What one task of a run is told through its environment.

The state machine sets the per-execution values (run id, start time,
runtime parameters) in ``ContainerOverrides.Environment``; the job
definition sets the per-deployment ones (pipeline, bucket, intermediates
mode). A local run sets the same variables. Reading them in one place keeps
the contract in one place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from kedro_batch_runtime.access import ACCESSES
from kedro_batch_runtime.layout import DataLayout, run_version

ENV_RUN_ID = "KEDRO_BATCH_RUN_ID"
ENV_RUN_STARTED = "KEDRO_BATCH_RUN_STARTED"
ENV_PARAMS = "KEDRO_BATCH_PARAMS"
ENV_PIPELINE = "KEDRO_BATCH_PIPELINE"
ENV_BUCKET = "KEDRO_BATCH_BUCKET"
ENV_INTERMEDIATES = "KEDRO_BATCH_INTERMEDIATES"
# kedro-batch:datasetAccess, as the deployment validated it: a JSON object of
# dataset name or factory pattern -> "stage" | "direct".
ENV_DATASET_ACCESS = "KEDRO_BATCH_DATASET_ACCESS"
# Set by the job definition only when the project tracks with kedro-mlflow:
# every task then logs into one MLflow run (kedro_batch_runtime.mlflow_run).
ENV_MLFLOW_TRACKING_URI = "KEDRO_BATCH_MLFLOW_TRACKING_URI"
ENV_STACK = "KEDRO_BATCH_STACK"

# The runtime parameter that carries the run id into the project's
# configuration: ``${runtime_params:kedro_batch_run_id, local}``.
RUN_ID_PARAM = "kedro_batch_run_id"

Intermediates = Literal["persist", "group", "error"]
INTERMEDIATES: tuple[Intermediates, ...] = ("persist", "group", "error")


class RunConfigError(Exception):
    """The task's environment or the deployment does not fit the project."""


@dataclass(frozen=True)
class RunSettings:
    """One execution of a deployed pipeline, as seen by each of its tasks."""

    run_id: str
    version: str  # Kedro version string shared by every task of the run
    params: Mapping[str, Any] = field(default_factory=dict)
    pipeline: str = "__default__"
    bucket: str | None = None
    intermediates: Intermediates = "persist"
    access: Mapping[str, str] = field(default_factory=dict)  # kedro-batch:datasetAccess
    mlflow_tracking_uri: str | None = None
    stack: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> RunSettings:
        run_id = _required(environ, ENV_RUN_ID)
        if "/" in run_id or run_id in {".", ".."}:
            raise RunConfigError(f"{ENV_RUN_ID}={run_id!r} cannot be part of an S3 key")
        started = _required(environ, ENV_RUN_STARTED)
        try:
            version = run_version(started)
        except ValueError as exc:
            raise RunConfigError(
                f"{ENV_RUN_STARTED}={started!r} is not an ISO-8601 time with a zone "
                f"(e.g. 2026-11-26T22:34:40.123Z): {exc}"
            ) from None
        intermediates = environ.get(ENV_INTERMEDIATES) or "persist"
        if intermediates not in INTERMEDIATES:
            raise RunConfigError(
                f"{ENV_INTERMEDIATES}={intermediates!r}; expected one of {', '.join(INTERMEDIATES)}"
            )
        return cls(
            run_id=run_id,
            version=version,
            params=_params(environ.get(ENV_PARAMS) or "{}"),
            pipeline=environ.get(ENV_PIPELINE) or "__default__",
            bucket=environ.get(ENV_BUCKET) or None,
            intermediates=cast(Intermediates, intermediates),
            access=_access(environ.get(ENV_DATASET_ACCESS) or "{}"),
            mlflow_tracking_uri=environ.get(ENV_MLFLOW_TRACKING_URI) or None,
            stack=environ.get(ENV_STACK) or None,
        )

    @property
    def runtime_params(self) -> dict[str, Any]:
        """What the session gets as ``runtime_params`` (``kedro run --params``)."""
        return {**self.params, RUN_ID_PARAM: self.run_id}

    def layout(self, needed_by: str) -> DataLayout:
        if not self.bucket:
            raise RunConfigError(
                f"{ENV_BUCKET} is not set, but {needed_by} must move into the data bucket; "
                "set it to the deployment's data bucket name"
            )
        return DataLayout(self.bucket, self.run_id)


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise RunConfigError(f"{name} is not set; kedro-batch-task runs one task of a run")
    return value


def _access(raw: str) -> dict[str, str]:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RunConfigError(f"{ENV_DATASET_ACCESS} is not valid JSON: {exc}") from None
    if not isinstance(value, dict) or not all(v in ACCESSES for v in value.values()):
        raise RunConfigError(
            f"{ENV_DATASET_ACCESS} must be a JSON object of dataset -> "
            f"{' or '.join(ACCESSES)}, got {raw[:80]!r}"
        )
    return value


def _params(raw: str) -> dict[str, Any]:
    """Runtime parameters from JSON, with dotted keys nested.

    ``{"train.model.alpha": 0.5}`` means what ``kedro run --params
    train.model.alpha=0.5`` means; left dotted, Kedro would add a new
    top-level key and silently keep the old value.
    """
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RunConfigError(f"{ENV_PARAMS} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RunConfigError(f"{ENV_PARAMS} must be a JSON object, got {raw[:80]!r}")
    return _nest(value)


def _nest(params: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in params.items():
        tree = _nest(value) if isinstance(value, dict) else value
        for part in reversed(key.split(".")):
            tree = {part: tree}
        _merge(result, tree)
    return result


def _merge(target: dict[str, Any], source: Mapping[str, Any]) -> None:
    """Deep merge; on a conflict between a value and a mapping, ``source`` wins."""
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value
