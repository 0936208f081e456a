"""Pulumi mock runtime for offline synth and tests: no cloud, no Pulumi CLI.

Resources echo their inputs plus the computed outputs other resources
consume (``arn``, ``id``, ``name``, image digests), shaped like AWS's, so
that ``apply`` callbacks run on realistic values. Invokes return camelCase
keys, as the engine does.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pulumi

ACCOUNT = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"

# Resource type token -> (ARN service, resource path prefix) for resources
# whose ARN other resources consume.
_ARN_SHAPES: dict[str, tuple[str, str]] = {
    "aws:batch/jobQueue:JobQueue": ("batch", "job-queue/"),
    "aws:batch/jobDefinition:JobDefinition": ("batch", "job-definition/"),
    "aws:batch/computeEnvironment:ComputeEnvironment": ("batch", "compute-environment/"),
    "aws:sfn/stateMachine:StateMachine": ("states", "stateMachine:"),
    "aws:iam/role:Role": ("iam", "role/"),
    "aws:iam/policy:Policy": ("iam", "policy/"),
    "aws:iam/instanceProfile:InstanceProfile": ("iam", "instance-profile/"),
    "aws:s3/bucket:Bucket": ("s3", ""),
    "aws:s3/bucketV2:BucketV2": ("s3", ""),
    "aws:cloudwatch/logGroup:LogGroup": ("logs", "log-group:"),
    "aws:ecr/repository:Repository": ("ecr", "repository/"),
    "aws:sns/topic:Topic": ("sns", ""),
    "aws:kms/key:Key": ("kms", "key/"),
    "aws:scheduler/schedule:Schedule": ("scheduler", "schedule/default/"),
    "aws:cloudwatch/eventRule:EventRule": ("events", "rule/"),
}


# pulumi-aws auto-names S3 buckets in lower case (AutoNameTransform with strings.ToLower).
_LOWER_CASE_NAMES = frozenset({"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"})


def physical_name(logical: str, inputs: dict[str, Any], typ: str = "") -> str:
    """What Pulumi's auto-naming produces: the logical name as it is (underscores
    and all; lower case for a bucket), ``-`` and 7 hex characters (random
    there, derived from the logical name here); with ``namePrefix``, the
    prefix and a unique suffix. pulumi-aws auto-names an EventBridge target's
    ``targetId`` the same way."""
    given = inputs.get("name") or inputs.get("bucket") or inputs.get("roleName")
    if isinstance(given, str) and given:
        return given
    suffix = hashlib.sha1(logical.encode()).hexdigest()
    prefix = inputs.get("namePrefix")
    if isinstance(prefix, str) and prefix:
        # Terraform's prefixed unique ID: a timestamp and a counter, 26 digits.
        return f"{prefix}{int(suffix[:20], 16) % 10**26:026d}"
    base = logical.lower() if typ in _LOWER_CASE_NAMES else logical
    return f"{base}-{suffix[:7]}"


# Zone IDs behind the names a, b, c, ... in one (made-up) account: AWS shuffles
# the mapping per account, so names alone say nothing about where Fargate runs.
_ZONE_IDS = {
    "us-east-1": ("az3", "az6", "az1", "az2", "az4", "az5"),
    "us-west-1": ("az3", "az1"),
    "ap-northeast-1": ("az4", "az1", "az2"),
    "ca-central-1": ("az2", "az4", "az1"),
}
_DIRECTIONS = {"north": "n", "south": "s", "east": "e", "west": "w", "central": "c"}


def availability_zones(region: str) -> tuple[list[str], list[str]]:
    """(names, zone IDs) as ``ec2:DescribeAvailabilityZones`` gives them here,
    IDs spelt as AWS spells them (``use1-az1``, ``apne1-az4``, ``euw1-az2``)."""
    area, direction, number = region.split("-")
    short = "".join(v for k, v in _DIRECTIONS.items() if k in direction)  # northeast: ne
    prefix = f"{area}{short}{number}"
    ids = _ZONE_IDS.get(region, ("az1", "az2", "az3"))
    names = [f"{region}{letter}" for letter in "abcdef"[: len(ids)]]
    return names, [f"{prefix}-{z}" for z in ids]


class SynthMocks(pulumi.runtime.Mocks):
    """Deterministic stand-ins for AWS and Docker resources, in ``region``."""

    def __init__(self, region: str = REGION) -> None:
        super().__init__()
        self.region = region

    def arn(self, typ: str, name: str) -> str | None:
        """The ARN of a resource of type ``typ`` named ``name`` (job definitions: unrevised)."""
        shape = _ARN_SHAPES.get(typ)
        if not shape:
            return None
        service, prefix = shape
        region = "" if service in ("iam", "s3") else self.region
        account = "" if service == "s3" else ACCOUNT
        return f"arn:{PARTITION}:{service}:{region}:{account}:{prefix}{name}"

    @staticmethod
    def resource_id(typ: str, name: str) -> str:
        # A bucket's ID is its name, which the per-concern bucket resources take.
        return name if typ == "aws:s3/bucket:Bucket" else f"{name}-id"

    def secret(self, args: dict[str, Any]) -> dict[str, Any]:
        """A secret's metadata, as ``DescribeSecret`` gives it (never a value).

        A name resolves to a full ARN with Secrets Manager's random suffix; an
        ARN is taken as given.
        """
        arn = args.get("arn")
        if arn:
            name = str(arn).split(":secret:", 1)[1]
        else:
            name = str(args.get("name"))
            suffix = hashlib.sha1(name.encode()).hexdigest()[:6]
            region = args.get("region") or self.region
            arn = f"arn:{PARTITION}:secretsmanager:{region}:{ACCOUNT}:secret:{name}-{suffix}"
        return {
            "arn": arn,
            "id": arn,
            "name": name,
            "description": "",
            "kmsKeyId": "",
            "policy": "",
            "tags": {},
            "region": args.get("region") or self.region,
        }

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        name = physical_name(args.name, inputs, args.typ)
        outputs: dict[str, Any] = {**inputs, "name": inputs.get("name", name)}
        arn = self.arn(args.typ, name)
        if arn:
            if args.typ == "aws:batch/jobDefinition:JobDefinition":
                outputs["arnPrefix"] = arn
                arn += ":1"
                outputs["revision"] = 1
            outputs["arn"] = arn
        if args.typ.startswith("aws:s3/bucket"):
            outputs["bucket"] = name
            outputs["bucketDomainName"] = f"{name}.s3.amazonaws.com"
        if args.typ == "aws:ecr/repository:Repository":
            outputs["repositoryUrl"] = f"{ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com/{name}"
            outputs["registryId"] = ACCOUNT
        if args.typ.startswith("docker-build:index:Image"):
            digest = "sha256:" + hashlib.sha256(repr(sorted(inputs.items())).encode()).hexdigest()
            outputs["digest"] = digest
            # pulumi-docker-build: the first pushed tag with the build's digest.
            tags = inputs.get("tags") or ["image:latest"]
            outputs["ref"] = f"{tags[0]}@{digest}"
        return self.resource_id(args.typ, name), outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        token = args.token
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/synth",
                "userId": "SYNTH",
                "id": ACCOUNT,
            }, []
        if token == "aws:index/getRegion:getRegion":
            region = self.region
            return {"name": region, "region": region, "id": region, "endpoint": ""}, []
        if token == "aws:index/getPartition:getPartition":
            return {"partition": PARTITION, "dnsSuffix": "amazonaws.com", "id": PARTITION}, []
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names, ids = availability_zones(self.region)
            return {"names": names, "zoneIds": ids, "id": self.region}, []
        if token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {
                "authorizationToken": "QVdTOnN5bnRo",
                "userName": "AWS",
                "password": "synth",
                "proxyEndpoint": f"https://{ACCOUNT}.dkr.ecr.{self.region}.amazonaws.com",
                "expiresAt": "2100-01-01T00:00:00Z",
                "registryId": ACCOUNT,
                "id": self.region,
            }, []
        if token == "aws:secretsmanager/getSecret:getSecret":
            return self.secret(args.args), []
        if token == "aws:ec2/getSubnet:getSubnet":
            subnet = str(args.args.get("id", "subnet-synth"))
            return {"id": subnet, "vpcId": "vpc-synth", "availabilityZone": f"{self.region}a"}, []
        return dict(args.args), []
