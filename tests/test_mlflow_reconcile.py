"""``status`` closes the MLflow run an execution left RUNNING (``infra/mlflow_reconcile.py``).

An execution aborted before its first job leaves the shared MLflow run as
its tasks left it: RUNNING. Against a moto server on 127.0.0.1 (Step
Functions, Batch, S3) and a local MLflow store, ``python -m infra status``
(with and without ``--follow``) finds the run through the execution's job
definition and the run record in the bucket, and sets it FAILED.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from mlflow.tracking import MlflowClient

from infra import asl
from infra.__main__ import main
from infra.mlflow_reconcile import RUN_STATUS, job_definitions, tracking_of
from tests import moto_sfn

BUCKET = "kedro-batch-dev-data-0a1b2c3"
ROLE = "arn:aws:iam::123456789012:role/sfn"


@dataclass
class Stack:
    endpoint: str
    sfn: Any
    s3: Any
    tracked: str  # a state machine whose job definition tracks with MLflow
    untracked: str
    uri: str

    def aborted(self, machine: str, name: str) -> str:
        """An execution stopped before its first job, as a timeout or an abort ends one."""
        arn = self.sfn.start_execution(stateMachineArn=machine, name=name)["executionArn"]
        self.sfn.stop_execution(executionArn=arn, error="Aborted", cause="by a test")
        return arn

    def mlflow_run(self, name: str) -> str:
        """The run the execution's first task would have created and recorded."""
        client = MlflowClient(self.uri)
        experiment = client.get_experiment_by_name("forecast") or client.get_experiment(
            client.create_experiment("forecast")
        )
        run = client.create_run(experiment.experiment_id, run_name=name).info.run_id
        record = {"run_id": run, "experiment_id": experiment.experiment_id}
        self.s3.put_object(
            Bucket=BUCKET, Key=f"runs/{name}/mlflow/run.json", Body=json.dumps(record)
        )
        return run


def machine(queue: str, job_definition: str) -> dict[str, Any]:
    """A wait, then one node's job: stopping during the wait ends it before any node."""
    task = {
        "Type": "Task",
        "Resource": asl.SUBMIT_JOB_SYNC,
        "Parameters": {
            "JobName": "train",
            "JobQueue": queue,
            "JobDefinition": job_definition,
            "ContainerOverrides": {"Command": ["kedro-batch-task", "--nodes", "train"]},
        },
        "End": True,
    }
    return {
        "StartAt": "Capacity",
        "States": {"Capacity": {"Type": "Wait", "Seconds": 600, "Next": "train"}, "train": task},
    }


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    store = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    uri = f"sqlite:///{store}"
    with pytest.MonkeyPatch.context() as env, moto_sfn.moto_server() as endpoint:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        kw = {"endpoint_url": endpoint, "region_name": moto_sfn.REGION}
        sfn, s3, batch = (boto3.client(s, **kw) for s in ("stepfunctions", "s3", "batch"))
        queue, untracked = moto_sfn.batch_environment(
            batch, boto3.client("iam", **kw), boto3.client("ec2", **kw)
        )
        tracked = moto_sfn.job_definition(
            batch,
            "kedro-tracked",
            environment=[
                {"name": "KEDRO_BATCH_BUCKET", "value": BUCKET},
                {"name": "KEDRO_BATCH_MLFLOW_TRACKING_URI", "value": uri},
            ],
        )
        s3.create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": moto_sfn.REGION}
        )
        machines = {
            name: sfn.create_state_machine(
                name=name, definition=json.dumps(machine(queue, jobdef)), roleArn=ROLE
            )["stateMachineArn"]
            for name, jobdef in (("tracked", tracked), ("untracked", untracked))
        }
        yield Stack(endpoint, sfn, s3, machines["tracked"], machines["untracked"], uri)


def status(stack: Stack, arn: str, *flags: str) -> int:
    return main(["status", arn, *flags, "--endpoint-url", stack.endpoint, "--interval", "0.2"])


@pytest.mark.parametrize("follow", [[], ["--follow"]])
def test_status_fails_the_mlflow_run_an_aborted_execution_left_running(
    stack: Stack, follow: list[str], capsys: pytest.CaptureFixture[str]
):
    name = f"aborted{len(follow)}"
    run = stack.mlflow_run(name)
    arn = stack.aborted(stack.tracked, name)
    assert MlflowClient(stack.uri).get_run(run).info.status == "RUNNING"
    assert status(stack, arn, *follow) == 1
    assert MlflowClient(stack.uri).get_run(run).info.status == "FAILED"
    out = capsys.readouterr().out
    assert f"MLflow run {run}: RUNNING -> FAILED (the execution ended ABORTED)" in out
    # Once closed, status says where it stands and changes nothing.
    assert status(stack, arn) == 1
    assert f"MLflow run {run}: FAILED\n" in capsys.readouterr().out


def test_an_execution_without_a_recorded_run_or_without_tracking_says_so_or_nothing(
    stack: Stack, capsys: pytest.CaptureFixture[str]
):
    status(stack, stack.aborted(stack.tracked, "never-started"))
    assert "MLflow: no run was recorded for never-started (no task started)" in (
        capsys.readouterr().out
    )
    status(stack, stack.aborted(stack.untracked, "untracked"))
    assert "MLflow" not in capsys.readouterr().out


def test_the_status_a_run_gets_and_where_its_tracking_is_found():
    assert RUN_STATUS == {
        "SUCCEEDED": "FINISHED",
        "FAILED": "FAILED",
        "TIMED_OUT": "FAILED",
        "ABORTED": "FAILED",
    }
    definition = machine("queue", "arn:aws:batch:eu-west-1:1:job-definition/j:3")
    part = machine("queue", "arn:aws:batch:eu-west-1:1:job-definition/j-gpu:1")
    assert job_definitions([definition, part, definition]) == [
        "arn:aws:batch:eu-west-1:1:job-definition/j:3",
        "arn:aws:batch:eu-west-1:1:job-definition/j-gpu:1",
    ]
    env = [{"name": "KEDRO_BATCH_BUCKET", "value": "b"}]
    assert tracking_of({"containerProperties": {"environment": env}}) is None
    env.append({"name": "KEDRO_BATCH_MLFLOW_TRACKING_URI", "value": "https://mlflow.example.com"})
    found = tracking_of({"containerProperties": {"environment": env}})
    assert found is not None and (found.bucket, found.uri) == ("b", "https://mlflow.example.com")
