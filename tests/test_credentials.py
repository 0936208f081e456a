"""Credentials and secrets: the task side (``kedro_batch_runtime.credentials``).

The fixture ``credentials_one_node`` reads credentials in one node only
(``check_quota``, through ``api_quota: credentials: api``). Tasks run as
Batch runs them: a fresh copy of the project as the image holds it (no
``conf/local`` contents, no credentials files), against a moto S3 server.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
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
    plan = plan_catalog(CONF, PIPELINE, {"n1"}, RUN)
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
    assert plan_catalog(CONF, PIPELINE, {"n2"}, RUN).credentials == {}


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
