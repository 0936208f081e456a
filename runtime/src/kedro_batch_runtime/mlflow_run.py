"""One MLflow run per kedro-batch run, shared by every task.

kedro-mlflow starts an MLflow run in every ``KedroSession`` and ends it when
the session's pipeline ends. A run split into Batch jobs would leave one
MLflow run per job. kedro-mlflow has an answer for orchestrators: when an
MLflow run is already active as its hook starts, it logs into that run and
never ends it. So, in each task, before kedro-mlflow's hook:

1. kedro-mlflow's own configuration (``mlflow.yml`` of the run's Kedro env:
   experiment, credentials, request headers, autologging) is set up as it
   would do, with the deployment's tracking URI;
2. the run's MLflow run is found, or created once: the first task to write
   ``runs/<run id>/mlflow/run.json`` in the data bucket with a conditional
   write (``If-None-Match: *``) wins; a task that lost the race deletes the
   run it created and uses the winner's. Retried and redriven tasks find it;
3. that run is resumed (``mlflow.start_run(run_id=...)``, and
   ``MLFLOW_RUN_ID`` for anything the task starts).

Tasks never end the shared run on their own. Each writes, per node it ran,
a marker ``runs/<run id>/mlflow/<SUCCEEDED|FAILED>/<node hash>`` and then
sets the run's status from all markers: FAILED if any node failed, FINISHED
once every node of the pipeline succeeded, RUNNING otherwise. It sets it,
reads the markers again and sets it again until two readings agree, so the
last task to finish leaves the status the markers say, whatever the order
(S3 lists are strongly consistent). A redriven task first removes its
nodes' FAILED markers, so a redrive that succeeds ends FINISHED.

Imported only when the job definition enables tracking, so projects without
kedro-mlflow never import MLflow.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import fsspec

from kedro_batch_runtime.layout import RUNS_PREFIX
from kedro_batch_runtime.settings import RunConfigError, RunSettings

logger = logging.getLogger(__name__)

FOLDER = "mlflow"
RUN_FILE = "run.json"
SUCCEEDED, FAILED = "SUCCEEDED", "FAILED"
TAG_RUN_ID = "kedro_batch.run_id"
TAG_PIPELINE = "kedro_batch.pipeline"
TAG_STACK = "kedro_batch.stack"
# kedro-mlflow's config patterns, so mlflow.yml resolves as it would.
MLFLOW_PATTERNS = ["mlflow*", "mlflow*/**", "**/mlflow*"]
SETTLE_ROUNDS = 5


def folder(run_id: str) -> str:
    """The run's MLflow folder in the data bucket: its record (``RUN_FILE``) and
    its nodes' markers. Operators read the record too (``python -m infra status``)."""
    return f"{RUNS_PREFIX}/{run_id}/{FOLDER}"


def marker(node: str) -> str:
    """A node's marker name: a short hash, since node names may hold any character."""
    return hashlib.sha256(node.encode()).hexdigest()[:24]


def status_of(succeeded: Iterable[str], failed: Iterable[str], nodes: Iterable[str]) -> str:
    """The shared run's MLflow status from the markers (``succeeded``/``failed``
    are marker names; ``nodes`` every node of the pipeline)."""
    if any(True for _ in failed):
        return "FAILED"
    return "FINISHED" if {marker(n) for n in nodes} <= set(succeeded) else "RUNNING"


class SharedRun:
    """The MLflow run of one kedro-batch run, as one task sees it."""

    def __init__(self, run: RunSettings, nodes: Sequence[str], fs: Any = None) -> None:
        if not run.bucket:
            raise RunConfigError("MLflow tracking needs the data bucket (KEDRO_BATCH_BUCKET)")
        self.run = run
        self.nodes = tuple(nodes)  # what this task runs
        self.prefix = f"{run.bucket}/{folder(run.run_id)}"
        self.fs = fs or fsspec.filesystem("s3")
        self.run_id: str | None = None  # MLflow's, once started
        self._pipeline_nodes: tuple[str, ...] = ()
        self._client: Any = None

    # -- start: from the hook, before kedro-mlflow's ---------------------------------

    def start(self, context: Any, pipeline_nodes: Sequence[str]) -> None:
        """Set up MLflow as kedro-mlflow would, then make the shared run the active one."""
        config = _kedro_mlflow_config(context)
        if self.run.pipeline in config.tracking.disable_tracking.pipelines:
            logger.info("mlflow.yml disables MLflow tracking for pipeline %s", self.run.pipeline)
            return
        config.server.mlflow_tracking_uri = self.run.mlflow_tracking_uri
        _setup(config, context)
        self.attach(config.tracking.experiment._experiment.experiment_id, pipeline_nodes)

    def attach(self, experiment_id: str, pipeline_nodes: Sequence[str]) -> None:
        """Find or create the shared run in ``experiment_id`` and make it active here
        (MLflow's tracking URI already set)."""
        import mlflow
        from mlflow.tracking import MlflowClient

        self._pipeline_nodes = tuple(pipeline_nodes)
        self._client = MlflowClient()
        self.run_id = self._get_or_create(experiment_id)
        # A retry or redrive: this task's nodes have not failed (yet).
        self._remove(f"{self.prefix}/{FAILED}/{marker(n)}" for n in self.nodes)
        mlflow.start_run(run_id=self.run_id)
        os.environ["MLFLOW_RUN_ID"] = self.run_id
        logger.info(
            "MLflow run %s (%s) at %s", self.run_id, self.run.run_id, mlflow.get_tracking_uri()
        )
        self._settle(write_first=False)

    def _get_or_create(self, experiment_id: str) -> str:
        key = f"{self.prefix}/{RUN_FILE}"
        found = self._read(key)
        if found:
            return found
        created = self._client.create_run(
            experiment_id,
            run_name=self.run.run_id,
            tags={
                TAG_RUN_ID: self.run.run_id,
                TAG_PIPELINE: self.run.pipeline,
                **({TAG_STACK: self.run.stack} if self.run.stack else {}),
            },
        ).info.run_id
        body = json.dumps({"run_id": created, "experiment_id": experiment_id}).encode()
        for attempt in range(5):
            try:
                self.fs.pipe_file(key, body, mode="create")  # If-None-Match: *
                return str(created)
            except OSError:
                # 412: another task won. 409: a concurrent write is in flight; retry.
                winner = self._read(key)
                if winner:
                    self._client.delete_run(created)
                    logger.info("MLflow run %s created by another task; using it", winner)
                    return winner
                time.sleep(0.2 * (attempt + 1))
        raise RunConfigError(f"could not record the MLflow run of {self.run.run_id} in s3://{key}")

    def _read(self, key: str) -> str | None:
        try:
            return str(json.loads(self.fs.cat_file(key))["run_id"])
        except FileNotFoundError:
            return None

    # -- finish: from the task, after the session ------------------------------------

    def finish(self, succeeded: bool) -> str | None:
        """Record this task's nodes and leave the run with the status the markers say."""
        if self.run_id is None:
            return None
        status = SUCCEEDED if succeeded else FAILED
        for node in self.nodes:
            self.fs.pipe_file(f"{self.prefix}/{status}/{marker(node)}", b"")
        return self._settle(write_first=True)

    def _settle(self, *, write_first: bool) -> str:
        """Set the status the markers say, until a reading after the write agrees.

        ``write_first=False`` (a task starting) writes only FAILED: the
        resumed run is RUNNING already, and a failure elsewhere must stay.
        """
        import mlflow

        status = self._status()
        if not write_first and status != "FAILED":
            return status
        # End this process's hold on the run (kedro-mlflow may have pushed it
        # again per node) with the status, so MLflow's exit handler cannot
        # mark it FINISHED later.
        while write_first and mlflow.active_run() is not None:
            mlflow.end_run(status)
        for _ in range(SETTLE_ROUNDS):
            self._client.set_terminated(self.run_id, status)
            again = self._status()
            if again == status:
                break
            status = again
        logger.info("MLflow run %s: %s", self.run_id, status)
        return status

    def _status(self) -> str:
        return status_of(
            self._names(SUCCEEDED), self._names(FAILED), self._pipeline_nodes or self.nodes
        )

    def _names(self, status: str) -> list[str]:
        try:
            paths = self.fs.ls(f"{self.prefix}/{status}", detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return [p.rsplit("/", 1)[-1] for p in paths]

    def _remove(self, paths: Iterable[str]) -> None:
        existing = [p for p in paths if self.fs.exists(p)]
        if existing:
            self.fs.rm(existing)
            self.fs.invalidate_cache(self.prefix)


def _kedro_mlflow_config(context: Any) -> Any:
    """``mlflow.yml`` of the context's env, parsed by kedro-mlflow itself."""
    from kedro.config import MissingConfigException
    from kedro_mlflow.config.kedro_mlflow_config import KedroMlflowConfig
    from kedro_mlflow.config.resolvers import resolve_random_name
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("km.random_name"):
        OmegaConf.register_new_resolver("km.random_name", resolve_random_name, use_cache=True)
    loader = context.config_loader
    loader.config_patterns.setdefault("mlflow", MLFLOW_PATTERNS)
    try:
        conf = dict(loader["mlflow"] or {})
    except MissingConfigException:
        conf = {}
    config = KedroMlflowConfig.model_validate(conf)
    if config.tracking.experiment.name == "Default" and "name" not in (
        conf.get("tracking", {}).get("experiment", {})
    ):
        config.tracking.experiment.name = context._package_name  # kedro-mlflow's default
    return config


def _setup(config: Any, context: Any) -> None:
    """kedro-mlflow's setup; the first tasks of a run may race to create the experiment."""
    from mlflow.exceptions import MlflowException

    for attempt in range(3):
        try:
            config.setup(context)
            return
        except MlflowException as exc:
            if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code) or attempt == 2:
                raise
