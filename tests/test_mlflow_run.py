"""The shared MLflow run of an execution: created once, resumed, and ended with its status.

Against moto's S3 (the markers and the conditional write) and an MLflow
store on disk; the end-to-end path through kedro-mlflow is in test_mlflow.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
import s3fs
from kedro_batch_runtime.mlflow_run import SharedRun, marker
from kedro_batch_runtime.settings import RunSettings
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

NODES = ("prepare", "mean", "spread")
BUCKET = "kedro-batch-test-data"


@pytest.fixture(scope="module")
def fs() -> Iterator[s3fs.S3FileSystem]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    filesystem = s3fs.S3FileSystem(
        key="local", secret="local", client_kwargs={"endpoint_url": f"http://{host}:{port}"}
    )
    filesystem.mkdir(BUCKET)
    try:
        yield filesystem
    finally:
        server.stop()


@pytest.fixture
def experiment(tmp_path: Path) -> Iterator[str]:
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        yield MlflowClient().create_experiment("shared")
    finally:
        while mlflow.active_run():
            mlflow.end_run()


def task(fs: s3fs.S3FileSystem, run_id: str, *nodes: str) -> SharedRun:
    settings = RunSettings(
        run_id=run_id, version="v", bucket=BUCKET, mlflow_tracking_uri="x", stack="dev"
    )
    return SharedRun(settings, nodes, fs)


def runs(experiment: str) -> list:
    return MlflowClient().search_runs([experiment], run_view_type=ViewType.ALL)


def test_parallel_first_tasks_share_one_run_and_the_loser_deletes_its_own(fs, experiment):
    first, second = task(fs, "race", "mean"), task(fs, "race", "spread")
    # `second` looked for the run before `first` recorded it, so it creates one too.
    reads = []
    real_read = second._read

    def stale_first_read(key: str) -> str | None:
        reads.append(key)
        return None if len(reads) == 1 else real_read(key)

    second._read = stale_first_read  # type: ignore[method-assign]
    first.attach(experiment, NODES)
    mlflow.end_run()
    second.attach(experiment, NODES)
    assert first.run_id == second.run_id
    found = {r.info.run_id: r for r in runs(experiment)}
    assert len(found) == 2
    winner = found[first.run_id]
    assert winner.info.lifecycle_stage == "active"
    assert winner.info.run_name == "race"
    assert winner.data.tags["kedro_batch.run_id"] == "race"
    assert winner.data.tags["kedro_batch.pipeline"] == "__default__"
    assert winner.data.tags["kedro_batch.stack"] == "dev"
    (loser,) = [r for r in found.values() if r.info.run_id != first.run_id]
    assert loser.info.lifecycle_stage == "deleted"


def status(run_id: str) -> str:
    return MlflowClient().get_run(run_id).info.status


def test_success_failure_and_redrive_leave_the_executions_status(fs, experiment):
    prepare = task(fs, "redrive", "prepare")
    prepare.attach(experiment, NODES)
    assert mlflow.active_run().info.run_id == prepare.run_id
    assert prepare.finish(succeeded=True) == "RUNNING"  # two nodes still to run
    assert mlflow.active_run() is None  # MLflow's exit handler has nothing to end

    spread = task(fs, "redrive", "spread")
    spread.attach(experiment, NODES)
    assert spread.finish(succeeded=False) == "FAILED"
    mean = task(fs, "redrive", "mean")
    mean.attach(experiment, NODES)  # resuming must not hide the failure
    assert status(mean.run_id) == "FAILED"
    assert mean.finish(succeeded=True) == "FAILED"

    redriven = task(fs, "redrive", "spread")  # the failed task runs again
    redriven.attach(experiment, NODES)
    assert status(redriven.run_id) == "RUNNING"
    assert redriven.finish(succeeded=True) == "FINISHED"
    assert status(redriven.run_id) == "FINISHED"
    assert len(runs(experiment)) == 1


def test_a_late_stale_writer_cannot_leave_the_wrong_status(fs, experiment):
    nodes = ("prepare", "mean")
    first, second = task(fs, "stale", "prepare"), task(fs, "stale", "mean")
    second.attach(experiment, nodes)  # (each task is its own process on Batch)
    mlflow.end_run("RUNNING")
    first.attach(experiment, nodes)
    # `first` read the markers before `second` wrote its own, and writes after.
    readings = []
    real_status = first._status

    def stale_first_reading() -> str:
        readings.append(1)
        return "RUNNING" if len(readings) == 1 else real_status()

    first._status = stale_first_reading  # type: ignore[method-assign]
    second.fs.pipe_file(f"{second.prefix}/SUCCEEDED/{marker('mean')}", b"")
    assert first.finish(succeeded=True) == "FINISHED"
    assert status(first.run_id) == "FINISHED"
