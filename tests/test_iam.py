"""IAM documents: least privilege, checked by parliament and by AWS's action catalogue."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import parliament
import pytest
from parliament import analyze_policy_string

from infra import iam

PARTITION, REGION, ACCOUNT = "aws", "eu-west-1", "123456789012"
BUCKET = "arn:aws:s3:::kedro-batch-prod-data-1a2b3c4"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0b1e7c1e-5a1d-4f0e-9d1a-2b3c4d5e6f70"
REPOSITORY = f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/kedro-batch-prod-repo-1a2b3c4"
LOG_GROUP = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/batch/kedro-batch-prod-1a2b3c4"
QUEUES = [
    f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/kedro-batch-prod-queue-1a2b3c4",
    f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/kedro-batch-prod-gpu-queue-5d6e7f8",
]
DEFINITIONS = [
    f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/kedro-batch-prod-job-1a2b3c4",
    f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/kedro-batch-prod-job-gpu-5d6e7f8",
]

SECRETS = [
    f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:kedro/credentials-AbCdEf",
    f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:shared/api-token-GhIjKl",
]


def sfn_policy(*, logging: bool = True, tracing: bool = True) -> iam.Policy:
    return iam.state_machine_policy(
        partition=PARTITION,
        region=REGION,
        account_id=ACCOUNT,
        job_queue_arns=QUEUES,
        job_definition_arns=DEFINITIONS,
        logging=logging,
        tracing=tracing,
    )


IDENTITY_POLICIES = {
    "job": iam.job_role_policy(BUCKET),
    "job with KMS": iam.job_role_policy(BUCKET, KEY),
    "execution": iam.execution_role_policy(REPOSITORY, LOG_GROUP),
    "execution with secrets": iam.execution_role_policy(REPOSITORY, LOG_GROUP, secret_arns=SECRETS),
    "execution with secrets and their key": iam.execution_role_policy(
        REPOSITORY, LOG_GROUP, secret_arns=SECRETS, secrets_kms_key_arn=KEY
    ),
    "state machine": sfn_policy(),
    "state machine, no logs or tracing": sfn_policy(logging=False, tracing=False),
}


@cache
def actions_without_resource_types() -> frozenset[str]:
    """Actions AWS authorises only against ``*`` (parliament's copy of the catalogue)."""
    catalogue = json.loads(
        (Path(parliament.__file__).parent / "iam_definition.json").read_text(encoding="utf-8")
    )
    return frozenset(
        f"{service['prefix']}:{p['privilege']}"
        for service in catalogue
        for p in service["privileges"]
        if all(r["resource_type"] == "" for r in p["resource_types"])
    )


def statements(policy: iam.Policy) -> list[dict[str, Any]]:
    return policy["Statement"]


@pytest.mark.parametrize("name", IDENTITY_POLICIES)
def test_every_identity_policy_passes_parliament(name: str):
    findings = analyze_policy_string(json.dumps(IDENTITY_POLICIES[name])).findings
    assert [(f.issue, f.detail) for f in findings] == []


@pytest.mark.parametrize("name", IDENTITY_POLICIES)
def test_no_wildcard_actions_and_star_only_where_aws_allows_nothing_else(name: str):
    for statement in statements(IDENTITY_POLICIES[name]):
        assert statement["Effect"] == "Allow"
        assert all("*" not in action for action in statement["Action"])
        if statement["Resource"] == "*":
            assert set(statement["Action"]) <= actions_without_resource_types(), statement


def test_the_catalogue_check_would_catch_a_star_on_a_scoped_action():
    assert "s3:GetObject" not in actions_without_resource_types()
    assert "batch:DescribeJobs" in actions_without_resource_types()


def test_parliament_catches_what_these_policies_avoid():
    overbroad = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "*"}
    ]}  # fmt: skip
    assert analyze_policy_string(json.dumps(overbroad)).findings


def test_the_job_role_reaches_the_data_bucket_and_nothing_else():
    policy = iam.job_role_policy(BUCKET)
    resources = {s["Resource"] for s in statements(policy)}
    assert resources == {BUCKET, f"{BUCKET}/*"}
    actions = {a for s in statements(policy) for a in s["Action"]}
    assert actions == {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucket",
        "s3:GetBucketLocation",
    }


def test_a_kms_key_adds_decrypt_and_generate_data_key_on_that_key_only():
    kms = [s for s in statements(iam.job_role_policy(BUCKET, KEY)) if s["Resource"] == KEY]
    assert [set(s["Action"]) for s in kms] == [{"kms:Decrypt", "kms:GenerateDataKey"}]


def test_the_execution_role_pulls_from_its_repository_and_writes_its_log_group():
    by_sid = {s["Sid"]: s for s in statements(iam.execution_role_policy(REPOSITORY, LOG_GROUP))}
    assert by_sid["PullImage"]["Resource"] == REPOSITORY
    assert by_sid["RegistryLogin"] == {
        "Sid": "RegistryLogin",
        "Effect": "Allow",
        "Action": ["ecr:GetAuthorizationToken"],
        "Resource": "*",
    }
    assert by_sid["WriteJobLogs"]["Resource"] == f"{LOG_GROUP}:log-stream:*"


def test_the_execution_role_reads_exactly_the_job_secrets_and_decrypts_only_through_them():
    assert "ReadJobSecrets" not in {s["Sid"] for s in IDENTITY_POLICIES["execution"]["Statement"]}
    by_sid = {s["Sid"]: s for s in statements(IDENTITY_POLICIES["execution with secrets"])}
    assert by_sid["ReadJobSecrets"]["Action"] == ["secretsmanager:GetSecretValue"]
    assert by_sid["ReadJobSecrets"]["Resource"] == sorted(SECRETS)
    assert "DecryptJobSecrets" not in by_sid  # the AWS managed key needs no grant
    policy = IDENTITY_POLICIES["execution with secrets and their key"]
    decrypt = {s["Sid"]: s for s in statements(policy)}["DecryptJobSecrets"]
    assert (decrypt["Action"], decrypt["Resource"]) == (["kms:Decrypt"], KEY)
    assert decrypt["Condition"] == {
        "StringEquals": {
            "kms:ViaService": [
                "secretsmanager.eu-west-1.amazonaws.com",
                "secretsmanager.us-east-1.amazonaws.com",
            ]
        }
    }


def test_the_state_machine_role_does_what_submit_job_sync_needs():
    by_sid = {s["Sid"]: s for s in statements(sfn_policy())}
    submit = by_sid["SubmitJobs"]
    assert submit["Action"] == ["batch:SubmitJob"]
    for queue in QUEUES:
        assert queue in submit["Resource"]
    for definition in DEFINITIONS:
        assert f"{definition}:*" in submit["Resource"]  # SubmitJob checks name:revision
    assert f"arn:aws:batch:{REGION}:{ACCOUNT}:job/*" in submit["Resource"]
    assert by_sid["StopJobs"]["Resource"] == f"arn:aws:batch:{REGION}:{ACCOUNT}:job/*"
    assert by_sid["WatchJobs"] == {
        "Sid": "WatchJobs",
        "Effect": "Allow",
        "Action": ["batch:DescribeJobs"],
        "Resource": "*",
    }
    assert by_sid["BatchCompletionEvents"]["Resource"] == (
        f"arn:aws:events:{REGION}:{ACCOUNT}:rule/StepFunctionsGetEventsForBatchJobsRule"
    )
    assert set(by_sid["BatchCompletionEvents"]["Action"]) == {
        "events:PutTargets",
        "events:PutRule",
        "events:DescribeRule",
    }


def test_log_delivery_and_tracing_permissions_only_when_used():
    assert {s["Sid"] for s in statements(sfn_policy())} >= {"DeliverExecutionLogs", "Tracing"}
    sids = {s["Sid"] for s in statements(sfn_policy(logging=False, tracing=False))}
    assert not sids & {"DeliverExecutionLogs", "Tracing"}


def test_trust_policies_name_one_service_for_this_account_only():
    trust = iam.assume_role("states.amazonaws.com", ACCOUNT)["Statement"]
    assert trust == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "states.amazonaws.com"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
        }
    ]


def test_the_bucket_policy_denies_every_request_without_tls():
    (statement,) = statements(iam.deny_insecure_transport(BUCKET))
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Resource"] == [BUCKET, f"{BUCKET}/*"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
