"""Every physical name the program gives AWS is one AWS accepts, however long the
stack and pipeline names are (``infra/names.py``).

A stack with a 48-character name deploys the ``odd_names`` fixture under its
short pipeline and two 66-character ones that share their first 40 characters,
split into parts, with a schedule, failure notifications, EC2 Spot with an
on-demand overflow, a GPU queue and the service-linked roles: every resource
type the program can create. Each resource's physical name (Pulumi's
auto-name, as :func:`infra.mocks.physical_name` mirrors it) is checked against
AWS's limit for its type, from the API references; where botocore's service
model states a limit too, the table must agree with it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from infra import names
from infra.mocks import physical_name
from tests.test_split_deploy import iam_matches

ROOT = Path(__file__).resolve().parent.parent
STACK = "analytics-platform-demand-forecasting-production"  # 48 characters
LONG_PIPELINES = (
    "forecasting.weekly_demand_by_store_and_region_for_the_retail_team",
    "forecasting.weekly_demand_by_store_and_region_for_the_online_team",
)
PIPELINES = ["__default__", *LONG_PIPELINES]
OVERRIDES = {
    "projectDir": "tests/fixtures/projects/odd_names",
    "kedroEnv": "",
    "pipelines": PIPELINES,
    "computeType": "SPOT",
    "onDemandFallback": True,
    "serviceLinkedRoles": True,
    "profiles": {"gpu": {"vcpu": 4, "memory": 16384, "gpu": 1}, "flaky": {"retries": 5}},
    "nodeProfiles": {"été": "gpu", "-h": "flaky"},
    "schedule": [{"cron": "0 6 * * ? *", "pipeline": LONG_PIPELINES[0]}],
    "notifications": {"email": "data-team@example.com"},
}

# Resource type -> (the input that holds its physical name, AWS's maximum length,
# the characters AWS accepts), from each service's API reference and naming rules.
BATCH = r"[A-Za-z0-9][A-Za-z0-9_-]*"  # Batch: letters, numbers, - and _, 128
IAM = r"[\w+=,.@-]+"
LIMITS: dict[str, tuple[str, int, str]] = {
    "aws:s3/bucket:Bucket": ("bucket", 63, r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"),
    "aws:iam/role:Role": ("name", 64, IAM),
    "aws:iam/rolePolicy:RolePolicy": ("name", 128, IAM),
    "aws:iam/instanceProfile:InstanceProfile": ("name", 128, IAM),
    "aws:batch/computeEnvironment:ComputeEnvironment": ("name", 128, BATCH),
    "aws:batch/jobQueue:JobQueue": ("name", 128, BATCH),
    "aws:batch/jobDefinition:JobDefinition": ("name", 128, BATCH),
    "aws:sfn/stateMachine:StateMachine": ("name", 80, r"[A-Za-z0-9_-]+"),
    "aws:cloudwatch/eventRule:EventRule": ("name", 64, r"[.\-_A-Za-z0-9]+"),
    "aws:cloudwatch/eventTarget:EventTarget": ("targetId", 64, r"[.\-_A-Za-z0-9]+"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", 512, r"[.\-_/#A-Za-z0-9]+"),
    "aws:scheduler/schedule:Schedule": ("name", 64, r"[0-9a-zA-Z\-_.]+"),
    "aws:sns/topic:Topic": ("name", 256, r"[A-Za-z0-9_-]+"),
    "aws:ecr/repository:Repository": ("name", 256, r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"),
    "aws:ec2/securityGroup:SecurityGroup": ("name", 255, r"[\x20-\x7e]+"),
}
# What botocore's service models say about the same names (API, operation, member path).
API_MODELS = {
    "aws:iam/role:Role": ("iam", "CreateRole", "RoleName"),
    "aws:iam/rolePolicy:RolePolicy": ("iam", "PutRolePolicy", "PolicyName"),
    "aws:iam/instanceProfile:InstanceProfile": (
        "iam", "CreateInstanceProfile", "InstanceProfileName"
    ),
    "aws:sfn/stateMachine:StateMachine": ("stepfunctions", "CreateStateMachine", "name"),
    "aws:cloudwatch/eventRule:EventRule": ("events", "PutRule", "Name"),
    "aws:cloudwatch/eventTarget:EventTarget": ("events", "PutTargets", "Targets", "Id"),
    "aws:cloudwatch/logGroup:LogGroup": ("logs", "CreateLogGroup", "logGroupName"),
    "aws:scheduler/schedule:Schedule": ("scheduler", "CreateSchedule", "Name"),
    "aws:ecr/repository:Repository": ("ecr", "CreateRepository", "repositoryName"),
}  # fmt: skip
# Types that AWS does not name after an input of ours (IDs, or fixed names).
NAMELESS = {
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/routeTable:RouteTable",
    "aws:ec2/routeTableAssociation:RouteTableAssociation",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/vpc:Vpc",
    "aws:ec2/vpcEndpoint:VpcEndpoint",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/serviceLinkedRole:ServiceLinkedRole",  # AWSServiceRoleFor<service>
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:sns/topicPolicy:TopicPolicy",
    "aws:sns/topicSubscription:TopicSubscription",
    "docker-build:index:Image",
}
# Descriptions AWS limits too, which name the pipeline.
DESCRIPTIONS = {
    "aws:cloudwatch/eventRule:EventRule": 512,
    "aws:scheduler/schedule:Schedule": 512,
    "aws:iam/role:Role": 1000,
}

# Synthesize in a process of its own (Pulumi's runtime is process-wide), with a
# split budget small enough to cut the five-node pipelines into parts.
PROGRAM = """
import json, sys
import infra.asl as asl
asl.SPLIT_BYTES = 3_000
from infra.synth import synthesize
given = json.loads(sys.argv[1])
overrides = {k: v if isinstance(v, str) else json.dumps(v) for k, v in given.items()}
print(json.dumps(synthesize("dev", overrides, name=sys.argv[2]).resources))
"""


@pytest.fixture(scope="module")
def resources() -> list[dict[str, Any]]:
    env = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "true"}
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM, json.dumps(OVERRIDES), STACK],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def physical(resource: dict[str, Any]) -> str:
    return physical_name(resource["name"], resource["inputs"], resource["type"])


def of_type(resources: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [r for r in resources if r["type"] == type_]


def test_every_physical_name_is_within_awss_limits(resources):
    checked: set[str] = set()
    for resource in resources:
        type_ = resource["type"]
        if type_.startswith("kedro-batch:") or type_ in NAMELESS:
            continue
        assert type_ in LIMITS, f"{type_}: add AWS's naming limit to the table"
        field, limit, pattern = LIMITS[type_]
        given = resource["inputs"].get(field)
        name = given if isinstance(given, str) else physical(resource)
        assert len(name) <= limit, f"{type_} {name!r}: {len(name)} > {limit}"
        assert re.fullmatch(pattern, name), f"{type_} {name!r} has characters AWS refuses"
        if type_ in DESCRIPTIONS:
            assert len(resource["inputs"].get("description", "")) <= DESCRIPTIONS[type_]
        checked.add(type_)
    # The stack deployed every kind of named resource the program creates.
    assert checked == set(LIMITS)


def test_the_table_agrees_with_botocores_service_models():
    session = botocore.session.get_session()
    for type_, (service, operation, *path) in API_MODELS.items():
        shape = session.get_service_model(service).operation_model(operation).input_shape
        for member in path:
            shape = shape.members[member]
            shape = getattr(shape, "member", shape)  # into a list
        assert shape.metadata["max"] == LIMITS[type_][1], type_


def test_long_pipeline_names_get_distinct_readable_resources(resources):
    machines = of_type(resources, "aws:sfn/stateMachine:StateMachine")
    own = {
        m["inputs"]["tags"]["kedro-batch:pipeline"]: physical(m)
        for m in machines
        if "kedro-batch:part" not in m["inputs"]["tags"]
    }
    assert sorted(own) == sorted(PIPELINES)
    assert len(set(own.values())) == 3
    assert own["__default__"].startswith("kedro-batch-analytics-platform-deman-__default__-")
    for pipeline in LONG_PIPELINES:
        assert own[pipeline].startswith("kedro-batch-analytics-platform-deman-forecasting-")
    rules = of_type(resources, "aws:cloudwatch/eventRule:EventRule")
    assert len({physical(r) for r in rules}) == 3
    assert all(r["name"].endswith("-failed") for r in rules)


def test_the_state_machine_role_may_start_exactly_the_shortened_parts(resources):
    (policy,) = [
        r for r in of_type(resources, "aws:iam/rolePolicy:RolePolicy") if r["name"].endswith("-sfn")
    ]
    allowed = {s["Sid"]: s for s in json.loads(policy["inputs"]["policy"])["Statement"]}
    machines = of_type(resources, "aws:sfn/stateMachine:StateMachine")
    parts = [m["arn"] for m in machines if "kedro-batch:part" in m["inputs"]["tags"]]
    parents = [m["arn"] for m in machines if "kedro-batch:part" not in m["inputs"]["tags"]]
    assert len(parts) > 3
    for arn in parts:
        assert any(iam_matches(p, arn) for p in allowed["StartParts"]["Resource"]), arn
    for arn in parents:
        assert not any(iam_matches(p, arn) for p in allowed["StartParts"]["Resource"]), arn


def test_names_that_fit_are_kept_and_longer_ones_cut_with_a_stable_hash():
    assert names.fitted("kedro-batch-dev-__default__", 80) == "kedro-batch-dev-__default__"
    long = "kedro-batch-dev-" + "x" * 70
    cut = names.fitted(long, 80)
    assert len(cut) + names.AUTONAME_SUFFIX == 80 and cut == names.fitted(long, 80)
    assert cut.startswith("kedro-batch-dev-xxx") and re.search(r"-[0-9a-f]{8}$", cut)
    assert names.fitted(long + "y", 80) != cut  # same beginning, another name


def test_pipeline_slugs_are_unique_and_unchanged_where_they_were():
    slugs = names.pipeline_slugs(["__default__", "a.b", "a-b", *LONG_PIPELINES])
    assert slugs["__default__"] == "__default__"
    assert slugs["a-b"] == "a-b" and slugs["a.b"].startswith("a-b-")  # the exact name keeps it
    assert len(set(slugs.values())) == 5
    assert all(len(s) <= names.PIPELINE_PART for s in slugs.values())
    # Alone, a long name keeps the slug it always had (its first 40 characters).
    (alone,) = names.pipeline_slugs(LONG_PIPELINES[:1]).values()
    assert alone == "forecasting-weekly_demand_by_store_and_r"


def test_the_deployment_name_is_unchanged_for_existing_stacks():
    assert names.deployment_name("dev") == "kedro-batch-dev"
    assert names.deployment_name("Team_Prod.eu") == "kedro-batch-team-prod-eu"
    assert names.deployment_name(STACK) == "kedro-batch-analytics-platform-deman"
