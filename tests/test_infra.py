"""The Pulumi program under Pulumi's mocks: what each resource receives.

Each stack (``Pulumi.dev.yaml``, ``Pulumi.prod.yaml``) and a few variants of
dev are synthesized once (:func:`infra.synth.synthesize`), each in its own
process since Pulumi's runtime state is process-wide; the tests then read what
was registered: inputs, ``retainOnDelete``, ``ignoreChanges``, and the stack
outputs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from parliament import analyze_policy_string
from statelint.linter import Linter

from infra.asl import iter_states
from infra.components.batch import EC2_RETRY_ON, FARGATE_RETRY_ON
from infra.components.image import CACHE_TAG, RUNTIME_INSTALL, TAG_PREFIX, build_inputs
from infra.components.orchestration import PIPELINE_TAG
from infra.config import REPO_ROOT
from infra.errors import UserError
from infra.mocks import SynthMocks, physical_name
from infra.synth import stack_config

Run = dict[str, Any]

KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/0b1e7c1e-5a1d-4f0e-9d1a-2b3c4d5e6f70"
SUBNETS = ["subnet-0aaa1111", "subnet-0bbb2222"]

# name -> (stack file, config overrides)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "dev": ("dev", {}),
    "prod": ("prod", {}),
    # EC2 Spot with on-demand overflow, the user's network, a KMS key, a GPU node.
    "ec2": (
        "dev",
        {
            "kedro-batch:computeType": "SPOT",
            "kedro-batch:onDemandFallback": True,
            "kedro-batch:instanceTypes": ["c6i", "m6i"],
            "kedro-batch:subnetIds": SUBNETS,
            "kedro-batch:securityGroupIds": ["sg-0ccc3333"],
            "kedro-batch:kmsKeyArn": KMS_KEY,
            "kedro-batch:forceDestroy": False,
            "kedro-batch:sfnLogLevel": "OFF",
            "kedro-batch:profiles": {"gpu": {"vcpu": 4, "memory": 16384, "gpu": 1}},
            "kedro-batch:nodeProfiles": {"train.fit_ridge_model": "gpu"},
        },
    ),
    # Fargate on-demand in the user's private subnets (they bring a NAT).
    "private": (
        "dev",
        {
            "kedro-batch:computeType": "FARGATE",
            "kedro-batch:subnetIds": SUBNETS,
            "kedro-batch:assignPublicIp": False,
        },
    ),
    # Large scratch disks for `large` nodes; one dataset staged by config.
    "storage": (
        "dev",
        {
            "kedro-batch:profiles": {"scratch": {"ephemeralStorage": 50}},
            "kedro-batch:tagProfiles": {"large": "scratch"},
            "kedro-batch:datasetAccess": {"model_input": "stage"},
        },
    ),
    "invalid": (
        "dev",
        {
            "kedro-batch:profiles": {"large": {"vcpu": 3, "memory": 8192}},
            "kedro-batch:tagProfiles": {"large": "large"},
        },
    ),
}
STACKS = ("dev", "prod")
DEPLOYED = ("dev", "prod", "ec2", "private", "storage")


def synthesize(variant: str) -> Run:
    stack, overrides = VARIANTS[variant]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run.json"
        proc = subprocess.run(
            [sys.executable, "-m", "tests.test_infra", stack, json.dumps(overrides), str(out)],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(out.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    # More processes than cores only makes each slower (imports are CPU-bound).
    with ThreadPoolExecutor(min(len(VARIANTS), os.cpu_count() or 1)) as pool:
        return dict(zip(VARIANTS, pool.map(synthesize, VARIANTS), strict=True))


# --- reading a run ------------------------------------------------------------------


def of_type(run: Run, type_: str) -> list[dict[str, Any]]:
    return [r for r in run["resources"] if r["type"] == type_]


def region(run: Run) -> str:
    return str(run["outputs"]["jobQueueArns"]["cpu"].split(":")[3])


def one(run: Run, type_: str) -> dict[str, Any]:
    (found,) = of_type(run, type_)
    return found


def inputs(run: Run, type_: str) -> dict[str, Any]:
    return one(run, type_)["inputs"]


def named(run: Run, type_: str, suffix: str) -> dict[str, Any]:
    (found,) = [r for r in of_type(run, type_) if r["name"].endswith(suffix)]
    return found


def config(variant: str, key: str, default: Any = None) -> Any:
    """A ``kedro-batch:`` setting of a variant as written, or ``default``."""
    raw = stack_config(*VARIANTS[variant]).get(f"kedro-batch:{key}")
    if raw is None:
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def definitions(run: Run) -> dict[str, dict[str, Any]]:
    return {
        m["inputs"]["tags"][PIPELINE_TAG]: json.loads(m["inputs"]["definition"])
        for m in of_type(run, "aws:sfn/stateMachine:StateMachine")
    }


def tasks(definition: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for _name, state in iter_states(definition):
        if state["Type"] == "Task":
            yield state


def task_of(definition: dict[str, Any], node: str) -> dict[str, Any]:
    """The Task state whose job runs ``node`` (alone, or fused with others)."""
    (found,) = [
        t
        for t in tasks(definition)
        if node in t["Parameters"]["ContainerOverrides"]["Command"][-1].split(",")
    ]
    return found


def submitted(definition: dict, params: dict, field: str) -> str:
    """The queue or job definition a Task submits to: its own, or the run context's."""
    if field in params:
        return params[field]
    context = definition["States"]["StartRun"]["Parameters"]
    return context[params[f"{field}.$"].removeprefix("$.")]


def container(job_definition: dict[str, Any]) -> dict[str, Any]:
    return json.loads(job_definition["inputs"]["containerProperties"])


def arn_of(run: Run, registration: dict[str, Any], suffix: str = "") -> str:
    """The ARN the mocks gave a resource (job definitions: without revision)."""
    name = physical_name(registration["name"], registration["inputs"])
    arn = SynthMocks(region(run)).arn(registration["type"], name)
    assert arn, registration["type"]
    return arn + suffix


def id_of(registration: dict[str, Any]) -> str:
    name = physical_name(registration["name"], registration["inputs"])
    return SynthMocks.resource_id(registration["type"], name)


# --- validation -----------------------------------------------------------------------


def test_a_bad_profile_stops_the_program_before_any_resource_with_one_message(runs):
    run = runs["invalid"]
    assert run["error"] == (
        "invalid config kedro-batch:profiles: profile 'large' (node "
        "'features.aggregate_weekly_demand', via tag 'large'): Fargate does not support 3 vCPU; "
        "use 0.25, 0.5, 1, 2, 4, 8 or 16"
    )
    assert run["created"] == []


# --- image ----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_the_repository_scans_on_push_and_only_the_cache_tag_moves(runs, stack):
    repo = inputs(runs[stack], "aws:ecr/repository:Repository")
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    assert repo["imageTagMutabilityExclusionFilters"] == [
        {"filter": CACHE_TAG, "filterType": "WILDCARD"}
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_the_lifecycle_keeps_the_last_builds_and_expires_untagged_images(runs, stack):
    policy = json.loads(inputs(runs[stack], "aws:ecr/lifecyclePolicy:LifecyclePolicy")["policy"])
    untagged, builds = policy["rules"]
    assert untagged["selection"]["tagStatus"] == "untagged"
    assert builds["selection"] == {
        "tagStatus": "tagged",
        "tagPrefixList": [TAG_PREFIX],
        "countType": "imageCountMoreThan",
        "countNumber": config(stack, "keepImages"),
    }
    assert [r["rulePriority"] for r in policy["rules"]] == [1, 2]


@pytest.mark.parametrize("stack", STACKS)
def test_the_image_is_built_for_amd64_with_the_runtime_and_ecr_cache(runs, stack):
    run = runs[stack]
    image = inputs(run, "docker-build:index:Image")
    url = run["outputs"]["imageRef"].split("@")[0]
    assert image["platforms"] == ["linux/amd64"]
    assert image["push"] is True
    assert image["buildOnPreview"] is False
    assert image["context"] == {
        "location": "example",
        "named": {"runtime": {"location": "runtime"}},
    }
    assert image["dockerfile"] == {"location": "build/.image/Dockerfile"}
    assert image["buildArgs"] == {"REQUIREMENTS": "requirements.txt"}
    (tag,) = image["tags"]
    assert tag.startswith(f"{url}:{TAG_PREFIX}")
    assert image["registries"] == [{"address": url, "username": "AWS", "password": "synth"}]
    cache = f"{url}:{CACHE_TAG}"
    assert image["cacheFrom"] == [{"registry": {"ref": cache}}]
    ((kind, to),) = [item for c in image["cacheTo"] for item in c.items()]
    assert kind == "registry"
    assert (to["ref"], to["imageManifest"], to["ociMediaTypes"], to["mode"]) == (
        cache,
        True,
        True,
        "max",
    )


# Image inputs and where the tag covers them: BuildSettings, the tag itself,
# or the repository (registries: its address and user; a new repository holds
# no tags). An input added without a place here could rebuild under an old tag.
IMAGE_INPUTS_IN_TAG = {
    "context": "context, named_contexts",
    "dockerfile": "dockerfile",
    "buildArgs": "build_args",
    "platforms": "platforms",
    "push": "push",
    "buildOnPreview": "build_on_preview",
    "cacheFrom": "cache_tag",
    "cacheTo": "cache_tag, cache_mode, cache_image_manifest, cache_oci_media_types",
    "tags": "the tag",
    "registries": "the repository",
    "network": "never set: the provider's constant default",
}


@pytest.mark.parametrize("stack", STACKS)
def test_every_input_of_the_image_is_covered_by_its_tag(runs, stack):
    assert set(inputs(runs[stack], "docker-build:index:Image")) <= set(IMAGE_INPUTS_IN_TAG)


def test_the_default_dockerfile_is_staged_beside_its_ignore_file():
    dockerfile = build_inputs(REPO_ROOT / "example").dockerfile
    assert dockerfile.read_bytes() == (REPO_ROOT / "infra/Dockerfile").read_bytes()
    # BuildKit's Dockerfile-specific ignore file: <Dockerfile>.dockerignore beside it.
    ignore = dockerfile.with_name("Dockerfile.dockerignore")
    assert ignore.read_bytes() == (REPO_ROOT / "infra/.dockerignore").read_bytes()


def test_the_build_tag_follows_the_content_and_skips_ignored_files(tmp_path):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "requirements.txt").write_text("kedro\n")
    (project / "src" / "nodes.py").write_text("x = 1\n")
    first = build_inputs(project).tag
    (project / "data").mkdir()
    (project / "data" / "big.csv").write_text("ignored\n")
    assert build_inputs(project).tag == first
    (project / "src" / "nodes.py").write_text("x = 2\n")
    assert build_inputs(project).tag != first


def test_the_default_image_gets_java_for_spark_and_a_new_tag(tmp_path):
    (tmp_path / "requirements.txt").write_text("kedro\npandas\n")
    plain = build_inputs(tmp_path)
    assert plain.build_args == {"REQUIREMENTS": "requirements.txt"}
    spark = build_inputs(tmp_path, java=True)  # the plan found Spark datasets
    assert spark.build_args == {"REQUIREMENTS": "requirements.txt", "JAVA": "1"}
    assert spark.tag != plain.tag  # tags are immutable: new content, new tag
    (tmp_path / "requirements.txt").write_text("kedro-datasets[spark-local]>=9\n")
    assert build_inputs(tmp_path).java
    (tmp_path / "requirements.txt").write_text("kedro\npyspark==4.0.1\n")
    assert build_inputs(tmp_path).java
    dockerfile = (REPO_ROOT / "infra" / "Dockerfile").read_text()
    assert "ARG JAVA=" in dockerfile and "default-jre-headless" in dockerfile
    (tmp_path / "Dockerfile").write_text(
        "FROM python:3.11-slim\n"
        "RUN --mount=type=bind,from=runtime,target=/tmp/runtime,rw pip install /tmp/runtime\n"
    )
    assert not build_inputs(tmp_path, java=True).java  # its own Dockerfile decides


def test_a_project_with_its_own_dockerfile_uses_it_and_its_ignore_file(tmp_path):
    (tmp_path / "Dockerfile").write_text(f"FROM python:3.11-slim\n{RUNTIME_INSTALL}\n")
    (tmp_path / ".dockerignore").write_text("secrets/\n")
    first = build_inputs(tmp_path)
    assert first.dockerfile == tmp_path / "Dockerfile"
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text("x")
    assert build_inputs(tmp_path).tag == first.tag


def test_a_project_without_requirements_or_dockerfile_is_refused(tmp_path):
    with pytest.raises(UserError, match=re.escape("neither requirements.txt nor src/")):
        build_inputs(tmp_path)


# --- Batch ----------------------------------------------------------------------------


def test_the_mock_image_reference_is_shaped_like_pulumi_docker_build(runs):
    # pulumi-docker-build's ``ref``: the pushed tag with the build's digest.
    (tag,) = inputs(runs["dev"], "docker-build:index:Image")["tags"]
    new_resource = SynthMocks().new_resource
    args = type(
        "Args", (), {"typ": "docker-build:index:Image", "name": "i", "inputs": {"tags": [tag]}}
    )
    _, outputs = new_resource(args)
    assert re.fullmatch(re.escape(tag) + "@sha256:[0-9a-f]{64}", outputs["ref"])
    assert outputs["ref"].endswith("@" + outputs["digest"])


@pytest.mark.parametrize("variant", DEPLOYED)
def test_job_definitions_run_the_pushed_image_by_digest(runs, variant):
    run = runs[variant]
    (tag,) = inputs(run, "docker-build:index:Image")["tags"]
    repository = tag.rsplit(":", 1)[0]
    for job in of_type(run, "aws:batch/jobDefinition:JobDefinition"):
        props = container(job)
        assert props["image"] == run["outputs"]["imageRef"]
        # repo@sha256:<digest>, never a tag: the form Batch and ECS document.
        assert re.fullmatch(re.escape(repository) + "@sha256:[0-9a-f]{64}", props["image"])
        assert props["command"] == ["kedro-batch-task", "--help"]
        assert job["inputs"]["deregisterOnNewRevision"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_the_container_environment_names_bucket_intermediates_and_kedro_env(runs, stack):
    run = runs[stack]
    for job in of_type(run, "aws:batch/jobDefinition:JobDefinition"):
        env = {e["name"]: e["value"] for e in container(job)["environment"]}
        assert env == {
            "KEDRO_BATCH_BUCKET": run["outputs"]["bucketName"],
            "KEDRO_BATCH_INTERMEDIATES": "persist",
            "KEDRO_ENV": config(stack, "kedroEnv"),
            "DO_NOT_TRACK": "1",
            "KEDRO_DISABLE_TELEMETRY": "true",
        }


def test_ephemeral_storage_is_a_job_definition_of_its_own_and_access_reaches_the_runtime(runs):
    run = runs["storage"]
    default = named(run, "aws:batch/jobDefinition:JobDefinition", "-job")
    scratch = named(run, "aws:batch/jobDefinition:JobDefinition", "-job-50gib")
    # SubmitJob cannot override ephemeral storage: it lives in the definition.
    assert container(scratch)["ephemeralStorage"] == {"sizeInGiB": 50}
    assert "ephemeralStorage" not in container(default)
    definition = definitions(run)["__default__"]
    large = task_of(definition, "train.fit_ridge_model")["Parameters"]
    assert submitted(definition, large, "JobDefinition") == arn_of(run, scratch, ":1")
    small = task_of(definition, "ingest.clean_products")["Parameters"]
    assert submitted(definition, small, "JobDefinition") == arn_of(run, default, ":1")
    for job in (default, scratch):
        env = {e["name"]: e["value"] for e in container(job)["environment"]}
        assert json.loads(env["KEDRO_BATCH_DATASET_ACCESS"]) == {"model_input": "stage"}


@pytest.mark.parametrize("stack", STACKS)
def test_fargate_job_definitions_log_to_their_group_with_a_public_ip(runs, stack):
    run = runs[stack]
    log_group = named(run, "aws:cloudwatch/logGroup:LogGroup", "-jobs")
    assert log_group["inputs"]["retentionInDays"] == config(stack, "logRetentionDays")
    roles = {r["name"]: arn_of(run, r) for r in of_type(run, "aws:iam/role:Role")}
    for job in of_type(run, "aws:batch/jobDefinition:JobDefinition"):
        props = container(job)
        assert job["inputs"]["platformCapabilities"] == ["FARGATE"]
        assert props["fargatePlatformConfiguration"] == {"platformVersion": "LATEST"}
        assert props["networkConfiguration"] == {"assignPublicIp": "ENABLED"}
        assert props["logConfiguration"]["logDriver"] == "awslogs"
        assert props["logConfiguration"]["options"]["awslogs-group"].startswith(
            log_group["inputs"]["namePrefix"]
        )
        assert props["logConfiguration"]["options"]["awslogs-region"] == region(run)
        assert props["jobRoleArn"] == roles[f"kedro-batch-{stack}-job"]
        assert props["executionRoleArn"] == roles[f"kedro-batch-{stack}-execution"]


def test_private_subnets_get_no_public_ip(runs):
    (job,) = of_type(runs["private"], "aws:batch/jobDefinition:JobDefinition")
    assert container(job)["networkConfiguration"] == {"assignPublicIp": "DISABLED"}


@pytest.mark.parametrize("variant", DEPLOYED)
def test_retries_are_for_infrastructure_failures_only(runs, variant):
    for job in of_type(runs[variant], "aws:batch/jobDefinition:JobDefinition"):
        strategy = job["inputs"]["retryStrategy"]
        *retry, last = strategy["evaluateOnExits"]
        assert len(strategy["evaluateOnExits"]) <= 5  # Batch's limit
        assert last == {"action": "EXIT", "onReason": "*"}
        fargate = job["inputs"]["platformCapabilities"] == ["FARGATE"]
        assert [r["onStatusReason"] for r in retry] == list(
            FARGATE_RETRY_ON if fargate else EC2_RETRY_ON
        )
        assert all(r["action"] == "RETRY" and set(r) == {"action", "onStatusReason"} for r in retry)
        assert strategy["attempts"] >= 1


def test_spot_reclaims_are_retried_on_both_platforms():
    assert "Host EC2*" in EC2_RETRY_ON
    assert "Your Spot Task was interrupted*" in FARGATE_RETRY_ON
    for reasons in (EC2_RETRY_ON, FARGATE_RETRY_ON):
        assert "CannotPullContainerError*" in reasons
        # Batch's pattern alphabet: letters, digits, . : space, and a trailing *.
        assert all(r[:-1].replace(".", "").replace(" ", "").isalnum() for r in reasons)


@pytest.mark.parametrize("stack", STACKS)
def test_the_default_job_definition_carries_the_default_profile(runs, stack):
    job = named(runs[stack], "aws:batch/jobDefinition:JobDefinition", f"{stack}-fargate-job")
    requirements = {r["type"]: r["value"] for r in container(job)["resourceRequirements"]}
    default = config(stack, "profiles")["default"] if stack == "prod" else {}
    assert requirements == {
        "VCPU": str(default.get("vcpu", 1)),
        "MEMORY": str(default.get("memory", 2048)),
    }
    assert job["inputs"]["timeout"] == {"attemptDurationSeconds": default.get("timeout", 7200)}
    assert job["inputs"]["retryStrategy"]["attempts"] == default.get("retries", 2) + 1


@pytest.mark.parametrize("stack", STACKS)
def test_compute_environments_are_auto_named_and_leave_desired_vcpus_to_batch(runs, stack):
    run = runs[stack]
    environments = of_type(run, "aws:batch/computeEnvironment:ComputeEnvironment")
    for ce in environments:
        assert "name" not in ce["inputs"] and "namePrefix" not in ce["inputs"]
        assert ce["options"]["ignoreChanges"] == ["computeResources.desiredVcpus"]
        assert ce["inputs"]["type"] == "MANAGED"
        assert ce["inputs"]["computeResources"]["maxVcpus"] == config(stack, "maxVcpus")
    queue = inputs(run, "aws:batch/jobQueue:JobQueue")
    by_arn = {arn_of(run, ce): ce["inputs"]["computeResources"]["type"] for ce in environments}
    order = sorted(queue["computeEnvironmentOrders"], key=lambda o: o["order"])
    fallback = config(stack, "onDemandFallback", False)
    expected = ["FARGATE_SPOT", "FARGATE"] if fallback else ["FARGATE_SPOT"]
    assert [by_arn[o["computeEnvironment"]] for o in order] == expected


@pytest.mark.parametrize("variant", DEPLOYED)
def test_queues_and_job_definitions_carry_their_platform_in_their_names(runs, variant):
    # Switching computeType between Fargate and EC2 then creates new ones
    # before deleting the old (a queue's platform cannot change); stacks
    # deployed before keep theirs through an alias to the old name.
    run = runs[variant]
    for kind in ("aws:batch/jobQueue:JobQueue", "aws:batch/jobDefinition:JobDefinition"):
        for resource in of_type(run, kind):
            fargate = "FARGATE" in json.dumps(resource["inputs"]) or any(
                "fargate" in arn for arn in _environment_types(run, resource)
            )
            platform = "-fargate-" if fargate else "-ec2-"
            assert platform in resource["name"], resource["name"]
            (alias,) = resource["options"]["aliases"]
            assert alias == resource["name"].replace(platform, "-", 1)
    fargate_names = {r["name"] for r in of_type(runs["dev"], "aws:batch/jobQueue:JobQueue")}
    ec2_names = {r["name"] for r in of_type(runs["ec2"], "aws:batch/jobQueue:JobQueue")}
    assert not fargate_names & ec2_names


def _environment_types(run: Run, queue: dict[str, Any]) -> list[str]:
    """The compute types of a queue's compute environments (lower case)."""
    types = {
        arn_of(run, ce): ce["inputs"]["computeResources"]["type"].lower()
        for ce in of_type(run, "aws:batch/computeEnvironment:ComputeEnvironment")
    }
    orders = queue["inputs"].get("computeEnvironmentOrders") or []
    return [types[o["computeEnvironment"]] for o in orders]


def test_without_a_gpu_profile_there_is_no_gpu_queue_and_no_ec2(runs):
    for stack in STACKS:
        assert list(runs[stack]["outputs"]["jobQueueArns"]) == ["cpu"]
        assert not of_type(runs[stack], "aws:iam/instanceProfile:InstanceProfile")


def test_ec2_spot_uses_an_instance_profile_and_price_capacity_optimised_allocation(runs):
    run = runs["ec2"]
    profile = one(run, "aws:iam/instanceProfile:InstanceProfile")
    (attachment,) = of_type(run, "aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert attachment["inputs"]["policyArn"] == (
        "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"
    )
    environments = {
        ce["name"].removeprefix("kedro-batch-dev-"): ce["inputs"]["computeResources"]
        for ce in of_type(run, "aws:batch/computeEnvironment:ComputeEnvironment")
    }
    assert set(environments) == {"spot", "ec2", "gpu-spot", "gpu-ec2"}
    for name, compute in environments.items():
        assert compute["instanceRole"] == arn_of(run, profile)
        assert compute["subnets"] == SUBNETS
        assert compute["securityGroupIds"] == ["sg-0ccc3333"]
        assert compute["minVcpus"] == 0
        assert compute["allocationStrategy"] == (
            "SPOT_PRICE_CAPACITY_OPTIMIZED" if name.endswith("spot") else "BEST_FIT_PROGRESSIVE"
        )
        gpu = name.startswith("gpu")
        assert compute["instanceTypes"] == (["g4dn", "g5", "g6"] if gpu else ["c6i", "m6i"])
        assert compute["ec2Configurations"] == [
            {"imageType": "ECS_AL2023_NVIDIA" if gpu else "ECS_AL2023"}
        ]
    assert set(run["outputs"]["jobQueueArns"]) == {"cpu", "gpu"}


def test_gpu_nodes_go_to_the_gpu_queue_with_a_gpu_job_definition(runs):
    run = runs["ec2"]
    gpu_job = named(run, "aws:batch/jobDefinition:JobDefinition", "-job-gpu")
    assert gpu_job["inputs"]["platformCapabilities"] == ["EC2"]
    assert "fargatePlatformConfiguration" not in container(gpu_job)
    assert {"type": "GPU", "value": "1"} in container(gpu_job)["resourceRequirements"]
    definition = definitions(run)["__default__"]
    fit = task_of(definition, "train.fit_ridge_model")["Parameters"]
    assert submitted(definition, fit, "JobQueue") == run["outputs"]["jobQueueArns"]["gpu"]
    assert submitted(definition, fit, "JobDefinition") == arn_of(run, gpu_job, ":1")
    assert fit["ContainerOverrides"]["ResourceRequirements"] == [
        {"Type": "GPU", "Value": "1"},
        {"Type": "MEMORY", "Value": "16384"},
        {"Type": "VCPU", "Value": "4"},
    ]
    other = task_of(definition, "train.predict_holdout")["Parameters"]
    assert submitted(definition, other, "JobQueue") == run["outputs"]["jobQueueArns"]["cpu"]


# --- storage --------------------------------------------------------------------------


@pytest.mark.parametrize("variant", DEPLOYED)
def test_the_data_bucket_is_versioned_encrypted_private_and_tls_only(runs, variant):
    run = runs[variant]
    assert inputs(run, "aws:s3/bucketVersioning:BucketVersioning")["versioningConfiguration"] == {
        "status": "Enabled"
    }
    blocks = inputs(run, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert blocks == {
        "bucket": run["outputs"]["bucketName"],
        "blockPublicAcls": True,
        "blockPublicPolicy": True,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
    }
    assert inputs(run, "aws:s3/bucketOwnershipControls:BucketOwnershipControls")["rule"] == {
        "objectOwnership": "BucketOwnerEnforced"
    }
    (rule,) = inputs(
        run,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    )["rules"]
    if variant == "ec2":
        assert rule == {
            "applyServerSideEncryptionByDefault": {
                "sseAlgorithm": "aws:kms",
                "kmsMasterKeyId": KMS_KEY,
            },
            "bucketKeyEnabled": True,
        }
    else:
        assert rule == {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}
    policy = json.loads(inputs(run, "aws:s3/bucketPolicy:BucketPolicy")["policy"])
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    bucket_arn = f"arn:aws:s3:::{run['outputs']['bucketName']}"
    assert deny["Resource"] == [bucket_arn, f"{bucket_arn}/*"]


@pytest.mark.parametrize("stack", STACKS)
def test_run_data_expires_with_its_old_versions_and_unfinished_uploads(runs, stack):
    days = config(stack, "runDataExpirationDays")
    (rule,) = inputs(
        runs[stack], "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
    )["rules"]
    assert rule["status"] == "Enabled"
    assert rule["filter"] == {"prefix": "runs/"}
    assert rule["expiration"] == {"days": days}
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": days}
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": min(days, 7)}


def test_dev_data_is_destroyed_with_the_stack_and_prod_data_is_kept(runs):
    bucket_types = [r for r in runs["prod"]["resources"] if r["type"].startswith("aws:s3/")]
    assert len(bucket_types) == 7
    assert all(r["options"]["retainOnDelete"] for r in bucket_types)
    assert not inputs(runs["prod"], "aws:s3/bucket:Bucket").get("forceDestroy")
    assert inputs(runs["dev"], "aws:s3/bucket:Bucket")["forceDestroy"] is True
    assert not any(r["options"]["retainOnDelete"] for r in runs["dev"]["resources"])


@pytest.mark.parametrize("variant", DEPLOYED)
def test_bucket_settings_are_written_one_at_a_time(runs, variant):
    # S3 answers concurrent configuration writes to one bucket with 409
    # OperationAborted: each setting waits for the one before it.
    run = runs[variant]
    chain = [
        "aws:s3/bucket:Bucket",
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketPolicy:BucketPolicy",
        "aws:s3/bucketVersioning:BucketVersioning",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    ]
    assert sorted(r["type"] for r in run["resources"] if r["type"].startswith("aws:s3/")) == sorted(
        chain
    )
    for before, after in pairwise(chain):
        assert one(run, before)["name"] in one(run, after)["options"]["dependsOn"], after


# --- network --------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_the_minimal_vpc_has_two_public_subnets_an_s3_endpoint_and_no_nat(runs, stack):
    run = runs[stack]
    subnets = [s["inputs"] for s in of_type(run, "aws:ec2/subnet:Subnet")]
    assert len(subnets) == 2
    assert len({s["availabilityZoneId"] for s in subnets}) == 2
    assert all(s["mapPublicIpOnLaunch"] for s in subnets)
    (route,) = inputs(run, "aws:ec2/routeTable:RouteTable")["routes"]
    assert route == {
        "cidrBlock": "0.0.0.0/0",
        "gatewayId": id_of(one(run, "aws:ec2/internetGateway:InternetGateway")),
    }
    table = id_of(one(run, "aws:ec2/routeTable:RouteTable"))
    associations = of_type(run, "aws:ec2/routeTableAssociation:RouteTableAssociation")
    assert {a["inputs"]["subnetId"] for a in associations} == {
        id_of(s) for s in of_type(run, "aws:ec2/subnet:Subnet")
    }
    assert {a["inputs"]["routeTableId"] for a in associations} == {table}
    endpoint = inputs(run, "aws:ec2/vpcEndpoint:VpcEndpoint")
    assert endpoint["serviceName"] == f"com.amazonaws.{region(run)}.s3"
    assert endpoint["vpcEndpointType"] == "Gateway"
    assert endpoint["routeTableIds"] == [table]
    group = inputs(run, "aws:ec2/securityGroup:SecurityGroup")
    assert not group.get("ingress")
    assert group["egress"] == [
        {
            "protocol": "-1",
            "fromPort": 0,
            "toPort": 0,
            "cidrBlocks": ["0.0.0.0/0"],
            "description": "AWS APIs and package indexes",
        }
    ]
    assert not of_type(run, "aws:ec2/natGateway:NatGateway")
    assert not of_type(run, "aws:ec2/eip:Eip")


def test_configured_subnets_are_used_as_they_are(runs):
    for variant in ("ec2", "private"):
        run = runs[variant]
        assert not of_type(run, "aws:ec2/vpc:Vpc")
        for ce in of_type(run, "aws:batch/computeEnvironment:ComputeEnvironment"):
            assert ce["inputs"]["computeResources"]["subnets"] == SUBNETS
    # Without securityGroupIds: an egress-only group in the subnets' own VPC.
    group = inputs(runs["private"], "aws:ec2/securityGroup:SecurityGroup")
    assert group["vpcId"] == "vpc-synth" and not group.get("ingress")
    assert not of_type(runs["ec2"], "aws:ec2/securityGroup:SecurityGroup")


# --- Step Functions -------------------------------------------------------------------


@pytest.mark.parametrize("variant", DEPLOYED)
def test_one_standard_state_machine_per_pipeline_passes_statelint(runs, variant):
    run = runs[variant]
    machines = of_type(run, "aws:sfn/stateMachine:StateMachine")
    assert {m["inputs"]["tags"][PIPELINE_TAG] for m in machines} == set(
        run["outputs"]["stateMachineArns"]
    )
    for machine in machines:
        assert machine["inputs"]["type"] == "STANDARD"
        assert machine["inputs"]["tags"] == {PIPELINE_TAG: machine["inputs"]["tags"][PIPELINE_TAG]}
        assert Linter.validate(json.loads(machine["inputs"]["definition"])) == []


@pytest.mark.parametrize("stack", STACKS)
def test_tasks_submit_to_the_deployed_queue_and_job_definition(runs, stack):
    run = runs[stack]
    queue = run["outputs"]["jobQueueArns"]["cpu"]
    revisions = {
        arn_of(run, j, ":1") for j in of_type(run, "aws:batch/jobDefinition:JobDefinition")
    }
    for definition in definitions(run).values():
        for task in tasks(definition):
            assert task["Resource"] == "arn:aws:states:::batch:submitJob.sync"
            assert submitted(definition, task["Parameters"], "JobQueue") == queue
            assert submitted(definition, task["Parameters"], "JobDefinition") in revisions
            # Retries live in the job definition; an override would drop evaluateOnExit.
            assert "RetryStrategy" not in task["Parameters"]


def test_prod_tasks_get_the_resources_their_tags_select(runs):
    run = runs["prod"]
    profiles = config("prod", "profiles")
    definition = definitions(run)["__default__"]
    four_attempts = named(run, "aws:batch/jobDefinition:JobDefinition", "-job-4-attempts")
    large = task_of(definition, "train.fit_ridge_model")["Parameters"]
    assert large["ContainerOverrides"]["ResourceRequirements"] == [
        {"Type": "MEMORY", "Value": str(profiles["large"]["memory"])},
        {"Type": "VCPU", "Value": str(profiles["large"]["vcpu"])},
    ]
    assert large["Timeout"] == {"AttemptDurationSeconds": profiles["large"]["timeout"]}
    assert submitted(definition, large, "JobDefinition") == arn_of(run, four_attempts, ":1")
    assert four_attempts["inputs"]["retryStrategy"]["attempts"] == profiles["large"]["retries"] + 1
    small = task_of(definition, "ingest.clean_products")["Parameters"]
    assert small["ContainerOverrides"]["ResourceRequirements"] == [
        {"Type": "MEMORY", "Value": "1024"},
        {"Type": "VCPU", "Value": "0.5"},
    ]
    plain = task_of(definition, "ingest.clean_sales")["Parameters"]
    assert "ResourceRequirements" not in plain["ContainerOverrides"]
    assert "Timeout" not in plain


@pytest.mark.parametrize("variant", DEPLOYED)
def test_state_machines_log_to_their_own_group_and_trace_as_configured(runs, variant):
    run = runs[variant]
    level = config(variant, "sfnLogLevel", "ERROR")
    groups = {
        g["name"]: g
        for g in of_type(run, "aws:cloudwatch/logGroup:LogGroup")
        if g["inputs"]["namePrefix"].startswith("/aws/vendedlogs/states/")
    }
    for machine in of_type(run, "aws:sfn/stateMachine:StateMachine"):
        logging = machine["inputs"]["loggingConfiguration"]
        assert logging["level"] == level
        assert logging["includeExecutionData"] is False
        if level == "OFF":
            assert "logDestination" not in logging
            assert not groups
        else:
            group = groups[f"{machine['name']}-sfn"]
            assert logging["logDestination"] == arn_of(run, group) + ":*"
            assert group["inputs"]["retentionInDays"] == config(variant, "logRetentionDays", 30)
        tracing = config(variant, "tracing", False)
        assert machine["inputs"]["tracingConfiguration"] == {"enabled": tracing}


# --- IAM ------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", DEPLOYED)
def test_every_role_policy_passes_parliament(runs, variant):
    policies = of_type(runs[variant], "aws:iam/rolePolicy:RolePolicy")
    assert len(policies) == 3
    for policy in policies:
        findings = analyze_policy_string(policy["inputs"]["policy"]).findings
        assert [(f.issue, f.detail) for f in findings] == [], policy["name"]


@pytest.mark.parametrize("variant", DEPLOYED)
def test_roles_trust_one_service_for_this_account(runs, variant):
    services = {}
    for role in of_type(runs[variant], "aws:iam/role:Role"):
        (statement,) = json.loads(role["inputs"]["assumeRolePolicy"])["Statement"]
        services[role["name"].rsplit("-", 1)[-1]] = statement["Principal"]["Service"]
    assert services["sfn"] == "states.amazonaws.com"
    assert services["job"] == services["execution"] == "ecs-tasks.amazonaws.com"


@pytest.mark.parametrize("variant", DEPLOYED)
def test_the_state_machine_role_covers_exactly_the_deployed_queues_and_definitions(runs, variant):
    run = runs[variant]
    policy = json.loads(named(run, "aws:iam/rolePolicy:RolePolicy", "-sfn")["inputs"]["policy"])
    (submit,) = [s for s in policy["Statement"] if s["Action"] == ["batch:SubmitJob"]]
    queues = set(run["outputs"]["jobQueueArns"].values())
    jobs = of_type(run, "aws:batch/jobDefinition:JobDefinition")
    expected = (
        queues
        | {arn_of(run, j) for j in jobs}
        | {arn_of(run, j, ":*") for j in jobs}
        | {f"arn:aws:batch:{region(run)}:123456789012:job/*"}
    )
    assert set(submit["Resource"]) == expected


def test_the_job_role_reaches_only_the_data_bucket_and_its_key(runs):
    run = runs["ec2"]
    policy = json.loads(named(run, "aws:iam/rolePolicy:RolePolicy", "-job")["inputs"]["policy"])
    bucket = f"arn:aws:s3:::{run['outputs']['bucketName']}"
    assert {s["Resource"] for s in policy["Statement"]} == {bucket, f"{bucket}/*", KMS_KEY}


# --- outputs --------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_outputs_give_operators_what_they_need(runs, stack):
    outputs = runs[stack]["outputs"]
    where = region(runs[stack])
    assert set(outputs) == {
        "bucketName",
        "imageRef",
        "jobQueueArns",
        "stateMachineArns",
        "consoleUrls",
        "startExecutionCommands",
    }
    assert outputs["bucketName"].startswith(f"kedro-batch-{stack}-data-")
    assert set(outputs["stateMachineArns"]) == set(config(stack, "pipelines", ["__default__"]))
    for pipeline, arn in outputs["stateMachineArns"].items():
        assert arn.startswith(f"arn:aws:states:{where}:")
        assert outputs["startExecutionCommands"][pipeline] == (
            f"aws stepfunctions start-execution --region {where} --state-machine-arn {arn} "
            """--input '{"params": {}}'"""
        )
        url = outputs["consoleUrls"]["stateMachines"][pipeline]
        assert url.startswith(f"https://{where}.console.aws.amazon.com/states/home")
        assert url.endswith(arn.replace(":", "%3A"))
    assert outputs["consoleUrls"]["bucket"] == (
        f"https://{where}.console.aws.amazon.com/s3/buckets/{outputs['bucketName']}?region={where}"
    )


# --- runner (in a subprocess per stack) -------------------------------------------------


def _main(stack: str, overrides: str, out: str) -> None:
    from infra.synth import synthesize

    created: list[str] = []  # every registration reaches the mocks, components included
    new_resource = SynthMocks.new_resource

    def counting(self: SynthMocks, args: Any) -> Any:
        created.append(args.typ)
        return new_resource(self, args)

    SynthMocks.new_resource = counting  # type: ignore[method-assign]
    try:
        synthesis = synthesize(stack, json.loads(overrides))
        result: Run = {"resources": synthesis.resources, "outputs": synthesis.outputs}
    except UserError as exc:
        result = {"error": str(exc), "created": created}
    Path(out).write_text(json.dumps(result), encoding="utf-8")


if __name__ == "__main__":
    _main(*sys.argv[1:4])
