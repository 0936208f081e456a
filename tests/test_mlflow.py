"""kedro-mlflow projects end to end: one MLflow run per execution, and what synth deploys.

``local-run`` on the ``mlflow_tracking`` fixture: params logged by one node,
metrics by two nodes in parallel tasks, a model by a third, all in one MLflow
run named by the run id; a second execution gets a second run, and a node
failure leaves it FAILED. Projects without kedro-mlflow deploy as before.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from infra.synth import synthesize

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "projects" / "mlflow_tracking"
ARN = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/team"
JOB_DEFINITION = "aws:batch/jobDefinition:JobDefinition"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


def infra(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "true"}
    return subprocess.run(
        [sys.executable, "-m", "infra", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


def assert_stopped(uri: str) -> None:
    """The tracking server local-run started is gone (its port refuses connections)."""
    parts = urlsplit(uri)
    with pytest.raises(OSError), socket.create_connection((parts.hostname, parts.port), 2):
        pass


def test_each_execution_is_one_mlflow_run_and_a_node_failure_fails_it(tmp_path: Path):
    keep = tmp_path / "keep"
    common = ["--stack", "dev", "--project-dir", str(FIXTURE), "-c", "kedroEnv=", "--keep"]
    first = infra("local-run", *common, str(keep), "--report", str(tmp_path / "1.json"))
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads((tmp_path / "1.json").read_text())
    client = MlflowClient(tracking_uri=f"sqlite:///{keep / 'mlflow' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("mlflow_tracking")  # mlflow.yml's name
    (run,) = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL)
    assert run.info.run_id == report["mlflow"]["run_id"]
    assert run.info.run_name == report["run_id"]
    assert run.info.status == "FINISHED"
    assert run.data.tags["kedro_batch.run_id"] == report["run_id"]
    assert run.data.tags["kedro_batch.pipeline"] == "__default__"
    assert run.data.tags["kedro_batch.stack"] == "dev"
    assert run.data.params["model.alpha"] == "0.5"  # logged by `prepare`
    assert run.data.metrics == {"mean_score": 1.25, "spread_score": 1.5}  # two parallel tasks
    tasks = {n["name"]: n["task"] for n in report["nodes"]}
    assert len({tasks["mean"], tasks["spread"], tasks["train"]}) == 3
    artifact = keep / "mlflow" / "artifacts" / experiment.experiment_id / run.info.run_id
    assert (artifact / "artifacts" / "model.pkl").is_file()  # logged by `train`
    assert f"MLflow run {run.info.run_id}" in first.stderr
    assert_stopped(report["mlflow"]["tracking_uri"])

    second = infra(
        "local-run", *common, str(keep), "--report", str(tmp_path / "2.json"),
        "--params", "fail=true",
    )  # fmt: skip
    assert second.returncode == 1
    failed_report = json.loads((tmp_path / "2.json").read_text())
    runs = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL)
    assert len(runs) == 2
    (failed,) = [r for r in runs if r.info.run_id != run.info.run_id]
    assert failed.info.run_name == failed_report["run_id"] != report["run_id"]
    assert failed.info.status == "FAILED"
    assert failed.data.params["fail"] == "True"
    assert_stopped(failed_report["mlflow"]["tracking_uri"])


def test_synth_refuses_a_local_store_with_the_fix():
    result = infra("synth", "--stack", "dev", "--project-dir", str(FIXTURE), "-c", "kedroEnv=")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "'mlruns' (from kedro-mlflow's default)" in line
    assert "kedro-batch:mlflowTrackingUri" in line


def test_a_sagemaker_server_reaches_the_jobs_environment_and_role(tmp_path: Path):
    project = tmp_path / "project"
    shutil.copytree(FIXTURE, project)
    with (project / "requirements.txt").open("a") as requirements:
        requirements.write("sagemaker-mlflow>=0.5\n")
    synthesis = synthesize(
        "dev",
        {
            "projectDir": str(project),
            "kedroEnv": "",
            "mlflowTrackingUri": ARN,
            "mlflowArtifactStore": "s3://team-mlflow/artifacts",
        },
    )
    (job,) = [r for r in synthesis.resources if r["type"] == JOB_DEFINITION]
    container = json.loads(job["inputs"]["containerProperties"])
    environment = {e["name"]: e["value"] for e in container["environment"]}
    assert environment["KEDRO_BATCH_MLFLOW_TRACKING_URI"] == ARN
    assert environment["KEDRO_BATCH_STACK"] == "dev"
    (policy,) = [
        r for r in synthesis.resources if r["name"].endswith("-job") and r["type"] == ROLE_POLICY
    ]
    by_sid = {s["Sid"]: s for s in json.loads(policy["inputs"]["policy"])["Statement"]}
    assert by_sid["TrackWithMlflow"]["Resource"] == ARN
    assert by_sid["ReadWriteMlflowArtifacts"]["Resource"] == "arn:aws:s3:::team-mlflow/artifacts/*"


def test_projects_without_kedro_mlflow_deploy_exactly_as_before():
    synthesis = synthesize("dev")
    assert "mlflow" not in json.dumps(synthesis.resources).lower()
    (job,) = [r for r in synthesis.resources if r["type"] == JOB_DEFINITION]
    container = json.loads(job["inputs"]["containerProperties"])
    assert {e["name"] for e in container["environment"]} == {
        "DO_NOT_TRACK",
        "KEDRO_BATCH_BUCKET",
        "KEDRO_BATCH_INTERMEDIATES",
        "KEDRO_DISABLE_TELEMETRY",
        "KEDRO_ENV",
    }
    assert not (ROOT / "example" / "mlruns").exists()  # planning never starts kedro-mlflow
