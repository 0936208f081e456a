"""Credentials and secrets: the task side (``kedro_batch_runtime.credentials``).

The fixture ``credentials_one_node`` reads credentials in one node only
(``check_quota``, through ``api_quota: credentials: api``). Tasks run as
Batch runs them: a fresh copy of the project as the image holds it (no
``conf/local`` contents, no credentials files), against a moto S3 server.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pulumi
import pytest
import yaml
from kedro.pipeline import Node
from kedro_batch_runtime import cli, records
from kedro_batch_runtime.catalog import plan_catalog
from kedro_batch_runtime.credentials import (
    ENV_CREDENTIALS,
    parse_document,
    referenced,
    task_credentials,
)
from kedro_batch_runtime.settings import RunConfigError, RunSettings
from moto import mock_aws
from parliament import analyze_policy_string
from rich.console import Console

from infra.components.image import build_inputs
from infra.components.secrets import _warn_customer_key
from infra.config import REPO_ROOT, parse
from infra.errors import UserError
from infra.graph import DatasetInfo, PipelineGraph
from infra.kedro_project import load_project
from infra.local_run import Options, local_run
from infra.mocks import REGION, SynthMocks
from infra.resources import job_environment
from infra.secrets import SecretRef, credentials_needed, local_credentials_document
from infra.synth import stack_config
from tests.batch_tasks import S3Endpoint, moto_s3, run_task, task_env

PROJECT = Path(__file__).parent / "fixtures" / "projects" / "credentials_one_node"
DOCUMENT = (PROJECT / "conf" / "local" / "credentials.yml").read_text(encoding="utf-8")
PLANTED_USER = "kb-fixture-user-5c1e9a"  # api.user in the fixture's credentials.yml
PLANTED_TOKEN = "kb-planted-token-0d41f7"  # what FIXTURE_API_TOKEN holds in these tests
BUCKET = "kb-credentials"
STARTED = "2026-11-26T22:34:40.123Z"


def digest(user: str, token: str) -> str:
    """What the fixture's ApiQuotaDataset reports for these credentials."""
    return hashlib.sha256(f"{user}:{token}".encode()).hexdigest()[:16]


# --- the catalog plan keeps references, never values ---------------------------

CONF: dict[str, dict[str, Any]] = {
    "api_quota": {"type": "my.ApiDataset", "endpoint": "https://x", "credentials": "api"},
    "local_in": {
        "type": "pandas.CSVDataset",
        "filepath": "data/01_raw/in.csv",
        "credentials": "fs",
    },
    "{name}_remote": {
        "type": "pandas.CSVDataset",
        "filepath": "s3://other/{name}.csv",
        "credentials": "other_s3",
    },
    "parts": {
        "type": "partitions.PartitionedDataset",
        "path": "s3://other/parts",
        "dataset": {"type": "pandas.CSVDataset", "credentials": "inner"},
    },
    "local_parts": {
        "type": "partitions.PartitionedDataset",
        "path": "data/01_raw/parts",
        "dataset": {"type": "pandas.CSVDataset", "credentials": "fs"},
    },
    "unused": {"type": "pandas.CSVDataset", "filepath": "s3://x/u.csv", "credentials": "unused"},
}
PIPELINE = [
    Node(
        lambda a, b, c, d: (a, a),
        ["local_in", "api_quota", "parts", "local_parts"],
        ["x_remote", "y"],
        name="n1",
    ),
    Node(lambda y: y, "y", "z", name="n2"),
]
RUN = RunSettings(run_id="r1", version="2026-11-26T22.34.40.123Z", bucket="b")


def test_plan_keeps_credentials_as_references_and_drops_them_where_data_moves():
    plan = plan_catalog(CONF, PIPELINE, {"n1"}, RUN, scratch="/scratch")
    # Moved into the bucket: read with the job role, its own credentials dropped.
    assert plan.config["local_in"]["filepath"] == "s3://b/data/01_raw/in.csv"
    assert "credentials" not in plan.config["local_in"]
    assert plan.config["local_parts"]["path"] == "s3://b/data/01_raw/parts"
    assert plan.config["local_parts"]["dataset"] == {"type": "pandas.CSVDataset"}  # nested too
    # Left where the catalog says: the reference stays for the session to resolve.
    assert plan.config["api_quota"] == CONF["api_quota"]
    assert plan.credentials == {
        "api_quota": ("api",),
        "parts": ("inner",),  # nested entries count too
        "x_remote": ("other_s3",),  # through the factory pattern
    }
    assert plan_catalog(CONF, PIPELINE, {"n2"}, RUN, scratch="/scratch").credentials == {}


def test_referenced_follows_kedros_rule():
    assert referenced(CONF) == ("api", "fs", "other_s3", "inner", "unused")
    assert referenced(CONF["local_parts"]) == ("fs",)
    assert referenced({"credentials": {"key": "inline"}}) == ()  # inline values: no reference


# --- one task's credentials ------------------------------------------------------


def test_a_task_gets_what_its_datasets_need_and_stand_ins_for_the_rest(monkeypatch):
    monkeypatch.setenv("FIXTURE_API_TOKEN", PLANTED_TOKEN)
    credentials = task_credentials({"fs": {"a": 1}}, DOCUMENT, CONF, {"api_quota": ["api"]})
    assert credentials["api"] == {"user": PLANTED_USER, "token": PLANTED_TOKEN}
    assert credentials["fs"] == {"a": 1}  # the project's own entries stay
    # Kedro resolves every reference of the catalog: unused ones get {}.
    assert credentials["other_s3"] == credentials["unused"] == {}


def test_the_document_wins_over_the_project_and_hides_underscored_keys(monkeypatch):
    monkeypatch.setenv("FIXTURE_API_TOKEN", PLANTED_TOKEN)
    document = DOCUMENT + "_shared: {user: x}\n"
    credentials = task_credentials({"api": {"user": "old"}}, document, {}, {})
    assert credentials["api"]["user"] == PLANTED_USER
    assert "_shared" not in credentials


def test_json_documents_work_too():
    document = '{"api": {"user": "u", "token": "t"}}'
    assert task_credentials({}, document, {}, {"api_quota": ["api"]})["api"]["token"] == "t"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            None,
            r"dataset 'api_quota' needs credentials 'api', and this task was given no "
            r"credentials \(KEDRO_BATCH_CREDENTIALS is not set\): set "
            r"kedro-batch:credentialsSecret",
        ),
        ("db: {user: u}\n", r"does not have; add an entry 'api' to the secret's document"),
        (
            DOCUMENT,
            r"has but cannot resolve: environment variable FIXTURE_API_TOKEN is not set "
            r"\(kedro-batch:secretEnv sets it from a secret\)",
        ),
    ],
)
def test_missing_credentials_name_the_dataset_the_entry_and_the_fix(monkeypatch, document, message):
    monkeypatch.delenv("FIXTURE_API_TOKEN", raising=False)
    with pytest.raises(RunConfigError, match=message):
        task_credentials({}, document, CONF, {"api_quota": ["api"]})


def test_an_unresolvable_entry_no_dataset_needs_is_left_out_without_its_value(monkeypatch, caplog):
    monkeypatch.delenv("FIXTURE_API_TOKEN", raising=False)
    with caplog.at_level(logging.WARNING):
        credentials = task_credentials({}, DOCUMENT, {"x": {"credentials": "api"}}, {})
    assert credentials["api"] == {}  # a stand-in: no dataset of this task uses it
    assert "credentials 'api' of the credentials secret left out" in caplog.text
    assert PLANTED_USER not in caplog.text


@pytest.mark.parametrize("text", [f"api: {{user: {PLANTED_USER}, token: [", f"- {PLANTED_USER}"])
def test_a_malformed_document_is_refused_without_showing_its_text(text):
    with pytest.raises(RunConfigError, match=ENV_CREDENTIALS) as error:
        parse_document(text)
    assert PLANTED_USER not in str(error.value)


# --- the command, as Batch runs it -------------------------------------------------


@pytest.fixture(scope="module")
def s3():
    with moto_s3(BUCKET) as endpoint:
        endpoint.upload_tree(BUCKET, PROJECT, "data/01_raw")
        yield endpoint


def _run(s3: S3Endpoint, tmp_path: Path, run_id: str, node: str, **extra: str):
    env = task_env(run_id=run_id, started=STARTED, bucket=BUCKET, endpoint=s3)
    env.pop("FIXTURE_API_TOKEN", None)
    env.update(extra)
    return run_task(PROJECT, tmp_path / run_id / node, [node], env)


def test_tasks_that_use_no_credentials_run_without_any(s3, tmp_path):
    for node in ("double", "summarise"):
        done = _run(s3, tmp_path, "no-creds", node)
        assert done.returncode == 0, done.stderr[-3000:]
    needing = _run(s3, tmp_path, "no-creds", "check_quota")
    assert needing.returncode == cli.EXIT_USAGE
    last = needing.stderr.strip().splitlines()[-1]
    assert "dataset 'api_quota' needs credentials 'api'" in last
    assert "kedro-batch:credentialsSecret" in last
    assert "Traceback" not in needing.stderr
    assert records.parse(needing.stderr.splitlines()).status == "FAILED"


def test_the_secret_document_and_a_secret_variable_reach_the_one_node_that_needs_them(s3, tmp_path):
    secrets = {ENV_CREDENTIALS: DOCUMENT, "FIXTURE_API_TOKEN": PLANTED_TOKEN}
    logs = ""
    for node in ("double", "check_quota"):
        done = _run(s3, tmp_path, "with-creds", node, **secrets)
        assert done.returncode == 0, done.stderr[-3000:]
        logs += done.stdout + done.stderr
    body = s3.client().get_object(
        Bucket=BUCKET, Key="runs/with-creds/data/08_reporting/api_quota.csv"
    )["Body"]
    report = pd.read_csv(io.BytesIO(body.read()))
    assert report["credentials_sha256"].tolist() == [digest(PLANTED_USER, PLANTED_TOKEN)]
    assert PLANTED_USER not in logs and PLANTED_TOKEN not in logs


# --- the stack settings -------------------------------------------------------------

SECRET_ARN = "arn:aws:secretsmanager:eu-west-2:210987654321:secret:shared/api-AbCdEf"


@pytest.mark.parametrize(
    ("text", "secret", "value_from"),
    [
        ("my-project/credentials", "my-project/credentials", "{arn}"),
        ("api:token", "api", "{arn}:token::"),
        ("api::AWSPREVIOUS", "api", "{arn}::AWSPREVIOUS:"),
        (SECRET_ARN, SECRET_ARN, "{arn}"),
        (f"{SECRET_ARN}:token::", SECRET_ARN, "{arn}:token::"),
    ],
)
def test_secret_references_take_batchs_selector(text, secret, value_from):
    ref = SecretRef.parse(text)
    assert ref.secret == secret
    assert ref.value_from("ARN") == value_from.format(arn="ARN")
    assert ref.region == ("eu-west-2" if ref.is_arn else None)


def test_secret_settings_are_parsed_and_checked():
    settings = parse(
        {
            "credentialsSecret": "my-project/credentials",
            "secretEnv": json.dumps({"FIXTURE_API_TOKEN": f"{SECRET_ARN}:token::"}),
            "secretsKmsKeyArn": "arn:aws:kms:eu-west-2:210987654321:key/1234abcd-12ab",
        }
    )
    assert settings.credentials_secret == SecretRef("my-project/credentials")
    assert settings.secret_env == {"FIXTURE_API_TOKEN": SecretRef(SECRET_ARN, "token")}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"credentialsSecret": "no spaces"}, r"'no spaces' is not a secret name"),
        ({"credentialsSecret": "arn:aws:ssm:eu-west-1:1:parameter/x"}, r"not a Secrets Manager"),
        ({"credentialsSecret": "x:k:AWSCURRENT:v1"}, r"a version stage or a version id, not both"),
        ({"secretEnv": '{"AWS_SECRET_ACCESS_KEY": "x"}'}, r"would replace the job role's AWS"),
        ({"secretEnv": '{"KEDRO_BATCH_CREDENTIALS": "x"}'}, r"is set by kedro-batch, Kedro or"),
        ({"secretEnv": '{"API-TOKEN": "x"}'}, r"'API-TOKEN' is not an environment variable name"),
        ({"secretEnv": '["x"]'}, r"expected an object of environment variable -> secret"),
        ({"secretsKmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:alias/x"}, r"not an alias"),
        ({"secretsKmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/x"}, r"no secret uses it"),
        (
            {"secretEnv": json.dumps({f"VAR_{i}": f"a/{'x' * 200}" for i in range(60)})},
            r"60 secrets take up to .* characters of the job definition",
        ),
    ],
)
def test_bad_secret_settings_name_the_key_and_the_fix(raw, message):
    with pytest.raises(UserError, match=message):
        parse(raw)


# --- planning: names only, and a refusal before anything exists ----------------------


def test_the_loader_records_credentials_names_and_never_reads_them(monkeypatch):
    monkeypatch.delenv("FIXTURE_API_TOKEN", raising=False)  # the credentials file needs it
    graph = load_project(PROJECT).pipelines["__default__"]
    assert graph.datasets["api_quota"].credentials == ("api",)
    assert graph.datasets["numbers"].credentials == ()


def test_moved_datasets_need_no_credentials():
    info = {
        "api_quota": DatasetInfo("api_quota", True, "x.Api", credentials=("api",)),
        "raw": DatasetInfo(
            "raw", True, "pandas.CSVDataset", "data/raw.csv", "file", False, ("fs",)
        ),
    }
    graph = PipelineGraph("p", (), {}, info)
    assert credentials_needed(graph, "persist") == {"api": ["api_quota"]}
    assert credentials_needed(graph, "error") == {"api": ["api_quota"], "fs": ["raw"]}


def synth(tmp_path: Path, *overrides: str, env: dict[str, str] | None = None):
    args = [sys.executable, "-m", "infra", "synth", "--project-dir", str(PROJECT)]
    args += ["-c", "kedroEnv=", *(f"-c{o}" for o in overrides), "--out", str(tmp_path / "out")]
    environ = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "true", **(env or {})}
    environ.pop("FIXTURE_API_TOKEN", None)
    environ.update(env or {})
    return subprocess.run(
        args, cwd=REPO_ROOT, env=environ, capture_output=True, text=True, check=False
    )


def test_synth_refuses_credentials_no_job_would_get_in_one_line(tmp_path):
    done = synth(tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "need Kedro credentials 'api' (datasets api_quota)" in line
    assert (
        "(cd credentials_one_node && aws secretsmanager create-secret --name "
        "credentials_one_node/credentials --secret-string file://conf/local/credentials.yml) "
        "&& pulumi config set kedro-batch:credentialsSecret credentials_one_node/credentials"
    ) in line
    assert not (tmp_path / "out" / "resources.json").exists()


def test_jobs_get_secrets_by_full_arn_and_only_the_execution_role_reads_them(tmp_path):
    done = synth(
        tmp_path,
        "credentialsSecret=credentials_one_node/credentials",
        "secretEnv=" + json.dumps({"FIXTURE_API_TOKEN": f"{SECRET_ARN}:token::"}),
        "secretsKmsKeyArn=arn:aws:kms:eu-west-2:210987654321:key/1234abcd-12ab",
        env={"FIXTURE_API_TOKEN": PLANTED_TOKEN},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    resources = json.loads((tmp_path / "out" / "resources.json").read_text())
    (job,) = [r for r in resources if r["type"] == "aws:batch/jobDefinition:JobDefinition"]
    container = json.loads(job["inputs"]["containerProperties"])
    region = stack_config("dev").get("aws:region", REGION)
    credentials_arn = SynthMocks(region).secret({"name": "credentials_one_node/credentials"})["arn"]
    assert re.fullmatch(
        r"arn:aws:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+-\w{6}", credentials_arn
    )
    assert container["secrets"] == [
        {"name": "FIXTURE_API_TOKEN", "valueFrom": f"{SECRET_ARN}:token::"},
        {"name": ENV_CREDENTIALS, "valueFrom": credentials_arn},
    ]
    assert ENV_CREDENTIALS not in {e["name"] for e in container["environment"]}
    policies = {
        r["name"].rsplit("-", 1)[-1]: json.loads(r["inputs"]["policy"])
        for r in resources
        if r["type"] == "aws:iam/rolePolicy:RolePolicy"
    }
    readers = {
        role: s["Resource"]
        for role, policy in policies.items()
        for s in policy["Statement"]
        if "secretsmanager:GetSecretValue" in s["Action"]
    }
    assert readers == {"execution": sorted([SECRET_ARN, credentials_arn])}
    for role, policy in policies.items():
        findings = analyze_policy_string(json.dumps(policy)).findings
        assert [(f.issue, f.detail) for f in findings] == [], role
    (decrypt,) = [s for s in policies["execution"]["Statement"] if s["Action"] == ["kms:Decrypt"]]
    assert decrypt["Condition"] == {
        "StringEquals": {
            "kms:ViaService": sorted(
                {f"secretsmanager.{r}.amazonaws.com" for r in ("eu-west-2", region)}
            )
        }
    }
    # Names and ARNs only: no value anywhere in what synth writes.
    for path in (tmp_path / "out").iterdir():
        text = path.read_text()
        assert PLANTED_TOKEN not in text and PLANTED_USER not in text, path


# --- local-run: the project's local credentials, as an emulated secret ---------------


def local_run_in(tmp_path: Path, monkeypatch, **overrides: str) -> tuple[dict, str, str]:
    """Run the fixture with local-run; returns the report, the console and the task logs."""
    out = io.StringIO()
    report = local_run(
        Options(overrides={"projectDir": str(PROJECT), "kedroEnv": "", **overrides},
                keep=tmp_path / "bucket", logs=tmp_path / "logs", max_parallel=2),
        console=Console(file=out, width=200),
    )  # fmt: skip
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
    return report, out.getvalue(), logs


def test_local_run_gives_the_tasks_the_projects_local_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("FIXTURE_API_TOKEN", PLANTED_TOKEN)
    secret_env = json.dumps({"FIXTURE_API_TOKEN": "credentials_one_node/api-token"})
    report, console, logs = local_run_in(tmp_path, monkeypatch, secretEnv=secret_env)
    assert {n["name"]: n["status"] for n in report["nodes"]} == {
        "double": "SUCCEEDED", "summarise": "SUCCEEDED", "check_quota": "SUCCEEDED"
    }  # fmt: skip
    assert "kedro-batch:credentialsSecret is not set" in console  # pulumi up would refuse
    (quota,) = (tmp_path / "bucket").rglob("api_quota.csv")
    assert pd.read_csv(quota)["credentials_sha256"].tolist() == [
        digest(PLANTED_USER, PLANTED_TOKEN)
    ]
    assert logs.count("task-end") == 3
    kept = "".join(
        p.read_text(errors="replace") for p in (tmp_path / "bucket").rglob("*") if p.is_file()
    )
    for text in (json.dumps(report), console, logs, kept):
        assert PLANTED_TOKEN not in text and PLANTED_USER not in text


def test_local_run_without_a_secret_variable_fails_only_the_node_that_needs_it(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("FIXTURE_API_TOKEN", raising=False)
    secret_env = json.dumps({"FIXTURE_API_TOKEN": "credentials_one_node/api-token"})
    report, console, _ = local_run_in(
        tmp_path,
        monkeypatch,
        secretEnv=secret_env,
        credentialsSecret="credentials_one_node/credentials",
        grouping="none",  # one job per node: the node that needs the secret fails alone
    )
    statuses = {n["name"]: n["status"] for n in report["nodes"]}
    assert statuses["double"] == "SUCCEEDED" and statuses["check_quota"] == "FAILED"
    assert "not set in this shell: FIXTURE_API_TOKEN" in console
    assert "environment variable FIXTURE_API_TOKEN is not set" in console  # the task's last line
    assert "kedro-batch:credentialsSecret is not set" not in console


def test_a_variable_only_this_shell_has_does_not_reach_a_task_but_environment_does(
    tmp_path, monkeypatch
):
    # On AWS a job sees its definition's environment and secrets, never the
    # deploying shell's: local-run keeps the tasks to the same.
    monkeypatch.setenv("FIXTURE_API_TOKEN", PLANTED_TOKEN)
    report, console, _ = local_run_in(tmp_path / "shell", monkeypatch, grouping="none")
    statuses = {n["name"]: n["status"] for n in report["nodes"]}
    assert statuses["double"] == "SUCCEEDED" and statuses["check_quota"] == "FAILED"
    assert "environment variable FIXTURE_API_TOKEN is not set" in console
    plain = json.dumps({"FIXTURE_API_TOKEN": PLANTED_TOKEN})  # not secret in this test
    report, _, _ = local_run_in(tmp_path / "plain", monkeypatch, environment=plain)
    assert {n["status"] for n in report["nodes"]} == {"SUCCEEDED"}


def test_environment_is_checked_and_reaches_every_job_definition():
    settings = parse({"environment": json.dumps({"DATA_ROOT": "s3://x/y", "DEBUG": True})})
    assert settings.environment == {"DATA_ROOT": "s3://x/y", "DEBUG": "true"}
    assert job_environment(settings)["DATA_ROOT"] == "s3://x/y"
    for bad, why in (
        ({"KEDRO_BATCH_BUCKET": "b"}, "set by kedro-batch"),
        ({"AWS_REGION": "eu-west-1"}, "job role"),
        ({"1X": "y"}, "not an environment variable name"),
    ):
        with pytest.raises(UserError, match=why):
            parse({"environment": json.dumps(bad)})
    with pytest.raises(UserError, match="also in kedro-batch:secretEnv"):
        parse({"environment": '{"T": "x"}', "secretEnv": '{"T": "my/secret"}'})


def test_the_emulated_secret_is_what_kedro_run_reads_unresolved(tmp_path):
    project = tmp_path / "p"
    (project / "conf" / "base").mkdir(parents=True)
    (project / "conf" / "local" / "credentials").mkdir(parents=True)
    (project / "conf" / "base" / "credentials.yml").write_text(
        "db: {user: base}\napi: {user: base}\n"
    )
    (project / "conf" / "local" / "credentials" / "api.yml").write_text(
        "api:\n  token: ${oc.env:T}\n"
    )
    (project / "conf" / "local" / ".credentials.yml").write_text("hidden: {x: 1}\n")
    document = local_credentials_document(project, None)
    assert document is not None
    assert yaml.safe_load(document) == {"db": {"user": "base"}, "api": {"token": "${oc.env:T}"}}
    assert local_credentials_document(project, "prod") == "db:\n  user: base\napi:\n  user: base\n"
    assert local_credentials_document(tmp_path / "none", None) is None


def test_no_credentials_file_kedro_could_read_enters_the_image(tmp_path):
    project = tmp_path / "p"
    shutil.copytree(PROJECT, project)
    tag = build_inputs(project).tag
    for secret in ("conf/base/credentials.json", "conf/prod/credentials/db.yml", "conf/x.yml"):
        (project / secret).parent.mkdir(parents=True, exist_ok=True)
        (project / secret).write_text("db: {password: hunter2}\n")
    (project / "conf" / "local" / "credentials.yml").write_text("api: {user: other}\n")
    assert build_inputs(project).tag != tag  # conf/x.yml is config: it does enter
    (project / "conf" / "x.yml").unlink()
    assert build_inputs(project).tag == tag


def test_a_customer_managed_key_without_secrets_kms_key_arn_is_a_warning(monkeypatch):
    warned: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", warned.append)
    _warn_customer_key("my/creds", "")
    _warn_customer_key("my/creds", "arn:aws:kms:eu-west-1:123456789012:alias/aws/secretsmanager")
    assert warned == []
    _warn_customer_key("my/creds", "arn:aws:kms:eu-west-1:123456789012:key/abcd")
    (message,) = warned
    assert "secret my/creds is encrypted with the customer-managed KMS key" in message
    assert "kedro-batch:secretsKmsKeyArn" in message


def test_the_readme_one_liner_stores_what_the_task_reads(monkeypatch):
    """``aws secretsmanager create-secret --secret-string file://conf/local/credentials.yml``
    stores the file's text; ECS injects ``GetSecretValue``'s string for the full ARN."""
    monkeypatch.setenv("FIXTURE_API_TOKEN", PLANTED_TOKEN)
    with mock_aws():
        client = boto3.client("secretsmanager", region_name="eu-west-1")
        client.create_secret(Name="credentials_one_node/credentials", SecretString=DOCUMENT)
        arn = client.describe_secret(SecretId="credentials_one_node/credentials")["ARN"]
        mocked = SynthMocks("eu-west-1").secret({"name": "credentials_one_node/credentials"})
        assert arn.rsplit("-", 1)[0] == mocked["arn"].rsplit("-", 1)[0]  # same shape
        injected = client.get_secret_value(SecretId=arn)["SecretString"]
    credentials = task_credentials({}, injected, {}, {"api_quota": ["api"]})
    assert credentials["api"] == {"user": PLANTED_USER, "token": PLANTED_TOKEN}
