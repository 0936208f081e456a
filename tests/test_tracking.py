"""MLflow tracking at plan time: detection, the tracking URI, and what AWS cannot use."""

from __future__ import annotations

import json

import pytest
from kedro_batch_runtime.mlflow_run import marker, status_of
from parliament import analyze_policy_string

from infra import iam
from infra.config import parse
from infra.errors import UserError
from infra.tracking import MlflowFacts, detect, requirement_names, resolve

ARN = "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-tracking-server/team"
WITH_KEDRO_MLFLOW = MlflowFacts(
    requirements=frozenset({"kedro", "kedro-mlflow"}),
    requirements_file="requirements.txt",
    config_files=("conf/base/mlflow.yml",),
    uri="https://mlflow.example.com",
    env="local",
)


def facts(**changes: object) -> MlflowFacts:
    return MlflowFacts(**{**WITH_KEDRO_MLFLOW.__dict__, **changes})


def test_requirement_names_are_canonical_and_skip_options_and_comments():
    text = (
        "# deps\nkedro>=1.7,<2\nKedro_MLflow[extra]==2.0.3  # tracking\n-r other.txt\n"
        "--index-url https://x\nsagemaker.mlflow ; python_version>'3'\n\n"
    )
    assert requirement_names(text) == {"kedro", "kedro-mlflow", "sagemaker-mlflow"}


@pytest.mark.parametrize(
    ("changes", "on", "reason"),
    [
        ({}, True, "kedro-mlflow in requirements.txt"),
        (
            {"requirements": frozenset(), "config_files": (), "hook_in_settings": True},
            True,
            "settings.py registers kedro-mlflow's hook",
        ),
        ({"requirements": frozenset()}, True, "conf/base/mlflow.yml configures kedro-mlflow"),
        ({"hook_disabled": True}, False, "settings.py disables kedro-mlflow's hooks"),
        ({"requirements": frozenset({"kedro"}), "config_files": ()}, False, "no kedro-mlflow"),
    ],
)
def test_detection_names_its_evidence(changes: dict, on: bool, reason: str):
    detection = detect(facts(**changes))
    assert detection.on is on
    assert reason in detection.reason


def test_projects_without_kedro_mlflow_get_no_tracking():
    assert resolve(MlflowFacts(requirements=frozenset({"kedro"})), None) is None
    # ... even with a stack URI: nothing in the project would log to it.
    assert resolve(MlflowFacts(), "https://mlflow.example.com") is None


def test_the_stack_setting_overrides_mlflow_yml():
    from_yml = resolve(facts(), None)
    assert from_yml is not None
    assert (from_yml.uri, from_yml.source, from_yml.kind) == (
        "https://mlflow.example.com",
        "conf/base/mlflow.yml",
        "http",
    )
    override = resolve(facts(), "https://other.example.com/mlflow")
    assert override is not None
    assert (override.uri, override.source) == (
        "https://other.example.com/mlflow",
        "kedro-batch:mlflowTrackingUri",
    )
    assert override.environment("prod") == {
        "KEDRO_BATCH_MLFLOW_TRACKING_URI": "https://other.example.com/mlflow",
        "KEDRO_BATCH_STACK": "prod",
    }


@pytest.mark.parametrize(
    ("uri", "override", "message"),
    [
        (None, None, "'mlruns' (from kedro-mlflow's default) is a store on the machine"),
        ("mlruns", None, "'mlruns' (from conf/base/mlflow.yml) is a store on the machine"),
        (None, "file:///tmp/mlruns", "'file:///tmp/mlruns' (from kedro-batch:mlflowTrackingUri)"),
        (None, "sqlite:///mlflow.db", "is a store on the machine that logs"),
        (None, "https://me:s3cr3t@mlflow.example.com", "contains credentials"),
        (None, "arn:aws:sagemaker:eu-west-1:1234:mlflow-tracking-server/x", "is not a SageMaker"),
        (None, "arn:aws:sagemaker:eu-west-1:123456789012:mlflow-app/app-1", "mlflow-app"),
        (None, ARN, "add sagemaker-mlflow to requirements.txt"),
    ],
)
def test_what_cannot_work_on_aws_is_refused_with_the_fix(uri, override, message):
    with pytest.raises(UserError) as info:
        resolve(facts(uri=uri), override)
    assert message in str(info.value)
    assert "s3cr3t" not in str(info.value)  # never echo a credential
    if "store on the machine" in message:
        assert "kedro-batch:mlflowTrackingUri" in str(info.value)


def test_mlflow_yml_without_kedro_mlflow_in_the_image_is_refused():
    with pytest.raises(UserError, match=r"requirements\.txt does not list kedro-mlflow"):
        resolve(facts(requirements=frozenset({"kedro"})), None)


def test_a_sagemaker_server_with_its_plugin_and_a_project_dockerfile_are_accepted():
    plugin = facts(requirements=frozenset({"kedro-mlflow", "sagemaker-mlflow"}))
    tracking = resolve(plugin, ARN)
    assert tracking is not None and tracking.sagemaker_arn == ARN
    # A project's own Dockerfile: what it installs is not ours to check.
    own = resolve(facts(requirements=frozenset(), requirements_file=None), ARN)
    assert own is not None and own.kind == "sagemaker"


def test_a_loopback_server_is_a_warning_not_an_error():
    tracking = resolve(facts(uri="http://127.0.0.1:5000"), None)
    assert tracking is not None
    assert "loopback" in tracking.warnings[0]
    assert resolve(facts(), None).warnings == ()  # type: ignore[union-attr]


def test_the_artifact_store_key_takes_s3_uris_only():
    assert parse({"mlflowArtifactStore": "s3://team-mlflow/artifacts/"}).mlflow_artifact_store == (
        "s3://team-mlflow/artifacts"
    )
    with pytest.raises(UserError, match="kedro-batch:mlflowArtifactStore: got 'team-mlflow'"):
        parse({"mlflowArtifactStore": "team-mlflow"})


def test_job_role_reaches_the_tracking_server_and_artifact_store_only():
    statements = iam.mlflow_statements(
        server_arn=ARN, artifact_store="s3://team-mlflow/artifacts", partition="aws"
    )
    policy = iam.job_role_policy("arn:aws:s3:::data", None, statements)
    assert analyze_policy_string(json.dumps(policy)).findings == []
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["TrackWithMlflow"]["Resource"] == ARN
    assert "sagemaker-mlflow:CreateRun" in by_sid["TrackWithMlflow"]["Action"]
    assert "sagemaker-mlflow:DeleteExperiment" not in by_sid["TrackWithMlflow"]["Action"]
    assert by_sid["ReadWriteMlflowArtifacts"]["Resource"] == "arn:aws:s3:::team-mlflow/artifacts/*"
    assert by_sid["ListMlflowArtifacts"]["Resource"] == "arn:aws:s3:::team-mlflow"
    assert iam.mlflow_statements(server_arn=None, artifact_store=None, partition="aws") == []


def test_the_shared_run_status_is_the_executions():
    nodes = ["prepare", "mean", "spread"]
    done = [marker("prepare"), marker("mean")]
    assert status_of(done, [], nodes) == "RUNNING"
    assert status_of([*done, marker("spread")], [], nodes) == "FINISHED"
    assert status_of(done, [marker("spread")], nodes) == "FAILED"
    assert len({marker(n) for n in ["a.b", "a_b", "-x", "é" * 120]}) == 4
