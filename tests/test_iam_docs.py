"""The IAM policies users attach to run ``pulumi preview`` and ``pulumi up`` (docs/iam/)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from parliament import analyze_policy_string

from infra.config import REPO_ROOT

DOCS = REPO_ROOT / "docs" / "iam"

# What each resource type the program registers needs to be created and deleted.
CREATE_DELETE = {
    "aws:s3/bucket:Bucket": ["s3:CreateBucket", "s3:DeleteBucket"],
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": ["s3:PutBucketOwnershipControls"],
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": ["s3:PutBucketPublicAccessBlock"],
    "aws:s3/bucketPolicy:BucketPolicy": ["s3:PutBucketPolicy", "s3:DeleteBucketPolicy"],
    "aws:s3/bucketVersioning:BucketVersioning": ["s3:PutBucketVersioning"],
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": [
        "s3:PutEncryptionConfiguration"
    ],
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": [
        "s3:PutLifecycleConfiguration"
    ],
    "aws:ecr/repository:Repository": ["ecr:CreateRepository", "ecr:DeleteRepository"],
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": ["ecr:PutLifecyclePolicy"],
    "docker-build:index:Image": ["ecr:PutImage", "ecr:CompleteLayerUpload"],
    "aws:ec2/vpc:Vpc": ["ec2:CreateVpc", "ec2:DeleteVpc"],
    "aws:ec2/internetGateway:InternetGateway": [
        "ec2:CreateInternetGateway",
        "ec2:AttachInternetGateway",
    ],
    "aws:ec2/routeTable:RouteTable": ["ec2:CreateRouteTable", "ec2:CreateRoute"],
    "aws:ec2/subnet:Subnet": ["ec2:CreateSubnet", "ec2:DeleteSubnet"],
    "aws:ec2/routeTableAssociation:RouteTableAssociation": ["ec2:AssociateRouteTable"],
    "aws:ec2/vpcEndpoint:VpcEndpoint": ["ec2:CreateVpcEndpoint", "ec2:DeleteVpcEndpoints"],
    "aws:ec2/securityGroup:SecurityGroup": ["ec2:CreateSecurityGroup"],
    "aws:batch/computeEnvironment:ComputeEnvironment": ["batch:CreateComputeEnvironment"],
    "aws:batch/jobQueue:JobQueue": ["batch:CreateJobQueue", "batch:DeleteJobQueue"],
    "aws:batch/jobDefinition:JobDefinition": ["batch:RegisterJobDefinition"],
    "aws:iam/role:Role": ["iam:CreateRole", "iam:DeleteRole", "iam:PassRole"],
    "aws:iam/rolePolicy:RolePolicy": ["iam:PutRolePolicy", "iam:DeleteRolePolicy"],
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ["iam:AttachRolePolicy"],
    "aws:iam/instanceProfile:InstanceProfile": ["iam:CreateInstanceProfile"],
    "aws:iam/serviceLinkedRole:ServiceLinkedRole": ["iam:CreateServiceLinkedRole"],
    "aws:cloudwatch/logGroup:LogGroup": ["logs:CreateLogGroup", "logs:DeleteLogGroup"],
    "aws:sfn/stateMachine:StateMachine": [
        "states:CreateStateMachine",
        "states:UpdateStateMachine",
        "states:ValidateStateMachineDefinition",
        "logs:CreateLogDelivery",
    ],
    "aws:scheduler/schedule:Schedule": ["scheduler:CreateSchedule"],
    "aws:cloudwatch/eventRule:EventRule": ["events:PutRule"],
    "aws:cloudwatch/eventTarget:EventTarget": ["events:PutTargets"],
    "aws:sns/topic:Topic": ["sns:CreateTopic"],
    "aws:sns/topicSubscription:TopicSubscription": ["sns:Subscribe"],
    "aws:sns/topicPolicy:TopicPolicy": ["sns:SetTopicAttributes"],
}
# Invokes the program makes during preview and up, and the action each calls.
INVOKES = {
    "aws:index/getCallerIdentity:getCallerIdentity": "sts:GetCallerIdentity",
    "aws:index/getAvailabilityZones:getAvailabilityZones": "ec2:DescribeAvailabilityZones",
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": "ecr:GetAuthorizationToken",
    "aws:ec2/getSubnet:getSubnet": "ec2:DescribeSubnets",
}
ACCEPTED = {
    # Writing the bucket policy is part of deploying the bucket.
    "RESOURCE_POLICY_PRIVILEGE_ESCALATION",
}


def policy(name: str) -> dict:
    return json.loads((DOCS / f"{name}-policy.json").read_text(encoding="utf-8"))


def allowed(document: dict) -> set[str]:
    return {a for s in document["Statement"] if s["Effect"] == "Allow" for a in s["Action"]}


@pytest.mark.parametrize("name", ["preview", "deploy"])
def test_the_documented_policies_pass_parliament(name):
    findings = analyze_policy_string(json.dumps(policy(name))).findings
    assert [(f.issue, f.detail) for f in findings if f.issue not in ACCEPTED] == []


def test_preview_may_validate_changed_definitions_and_make_the_programs_lookups():
    actions = allowed(policy("preview"))
    assert "states:ValidateStateMachineDefinition" in actions
    assert set(INVOKES.values()) <= actions
    assert not any(re.match(r"\w+:(Create|Delete|Put|Update)", a) for a in actions)


# Every resource type the program can register: schedules, notifications, a
# GPU profile on EC2 Spot, and the user's own subnets.
PROGRAM = """
import json
from infra.mocks import SynthMocks
from infra.synth import synthesize
calls = []
call = SynthMocks.call
SynthMocks.call = lambda self, args: (calls.append(args.token), call(self, args))[1]
types = set()
for overrides in (
    {"schedule": json.dumps({"cron": "0 6 * * ? *"}),
     "notifications": json.dumps({"email": "team@example.com"})},
    {"computeType": "SPOT", "profiles": json.dumps({"gpu": {"gpu": 1}}),
     "nodeProfiles": json.dumps({"train.fit_ridge_model": "gpu"}),
     "subnetIds": json.dumps(["subnet-0aaa1111"]), "serviceLinkedRoles": "true"},
):
    types |= {r["type"] for r in synthesize("dev", overrides).resources}
print(json.dumps({"types": sorted(types), "calls": sorted(set(calls))}))
"""


@pytest.fixture(scope="module")
def registered() -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=REPO_ROOT, capture_output=True, text=True,
        check=True, timeout=600,
        env={**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "true"},
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_deploy_may_create_and_delete_every_resource_the_program_registers(registered):
    actions = allowed(policy("deploy"))
    kinds = [t for t in registered["types"] if not t.startswith("kedro-batch:")]
    assert set(kinds) <= set(CREATE_DELETE), set(kinds) - set(CREATE_DELETE)
    for kind in kinds:
        assert set(CREATE_DELETE[kind]) <= actions, kind


def test_both_policies_cover_every_lookup_the_program_makes(registered):
    free = {"aws:index/getRegion:getRegion", "aws:index/getPartition:getPartition"}
    looked_up = set(registered["calls"]) - free  # answered by the provider, no AWS call
    assert looked_up <= set(INVOKES), looked_up - set(INVOKES)
    for name in ("preview", "deploy"):
        assert {INVOKES[c] for c in looked_up} <= allowed(policy(name)), name


def test_readme_and_the_preview_workflow_list_what_preview_needs():
    for path in (REPO_ROOT / "README.md", REPO_ROOT / ".github" / "workflows" / "preview.yml"):
        text = path.read_text(encoding="utf-8")
        assert "states:ValidateStateMachineDefinition" in text, path
        assert "docs/iam/preview-policy.json" in text, path


LINKED = """
import json
from infra.synth import synthesize
for overrides in ({}, {"serviceLinkedRoles": "true"},
                  {"serviceLinkedRoles": "true", "computeType": "SPOT"}):
    run = synthesize("dev", overrides).resources
    roles = [r for r in run if r["type"] == "aws:iam/serviceLinkedRole:ServiceLinkedRole"]
    environments = [r for r in run if r["type"].endswith("computeEnvironment:ComputeEnvironment")]
    print(json.dumps({"roles": roles, "environments": environments}))
"""


def test_service_linked_roles_for_a_new_account_come_first_and_stay():
    proc = subprocess.run(
        [sys.executable, "-c", LINKED], cwd=REPO_ROOT, capture_output=True, text=True,
        check=True, timeout=600,
        env={**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "true"},
    )  # fmt: skip
    default, fargate, spot = (json.loads(line) for line in proc.stdout.strip().splitlines()[-3:])
    assert default["roles"] == []  # most accounts have them: IAM would refuse a second
    for run, services in (
        (fargate, {"batch.amazonaws.com", "ecs.amazonaws.com"}),
        (spot, {"batch.amazonaws.com", "ecs.amazonaws.com", "spot.amazonaws.com"}),
    ):
        assert {r["inputs"]["awsServiceName"] for r in run["roles"]} == services
        assert all(r["options"]["retainOnDelete"] for r in run["roles"])
        for environment in run["environments"]:
            assert {r["name"] for r in run["roles"]} <= set(environment["options"]["dependsOn"])
    granted = next(
        s for s in policy("deploy")["Statement"] if s["Action"] == ["iam:CreateServiceLinkedRole"]
    )
    assert sorted(granted["Condition"]["StringEquals"]["iam:AWSServiceName"]) == sorted(services)
