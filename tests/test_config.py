"""Stack config: typed values, and one clear error per bad key."""

from __future__ import annotations

import pytest

from infra.config import REPO_ROOT, Profile, parse
from infra.errors import UserError


def test_defaults_deploy_the_example_default_pipeline():
    settings = parse({})
    assert settings.project_dir == REPO_ROOT / "example"
    assert settings.pipelines == ("__default__",)
    assert settings.orchestration == "structured"
    assert settings.intermediates == "persist"
    assert settings.compute_type == "FARGATE_SPOT"


def test_values_arrive_as_pulumi_strings():
    settings = parse(
        {
            "kedro-batch:pipelines": '["ingest", "train"]',
            "kedro-batch:maxVcpus": "64",
            "kedro-batch:forceDestroy": "true",
            "kedro-batch:durations": '{"train.fit": 600, "large": 300}',
            "kedro-batch:profiles": (
                '{"large": {"vcpu": 4, "memory": 16384, "retries": 2, "ephemeralStorage": 50}}'
            ),
            "kedro-batch:tagProfiles": '{"large": "large"}',
            "kedro-batch:datasetAccess": '{"features@spark": "direct", "{name}_img": "stage"}',
            "orchestration": "exact",
        }
    )
    assert settings.pipelines == ("ingest", "train")
    assert settings.max_vcpus == 64
    assert settings.force_destroy is True
    assert settings.durations == {"train.fit": 600.0, "large": 300.0}
    assert settings.profiles["large"] == Profile(
        vcpu=4.0, memory=16384, retries=2, ephemeral_storage=50
    )
    assert settings.dataset_access == {"features@spark": "direct", "{name}_img": "stage"}
    assert settings.orchestration == "exact"


def test_a_kms_key_arn_is_accepted_for_the_bucket():
    arn = "arn:aws:kms:eu-west-1:123456789012:key/mrk-0b1e7c1e5a1d4f0e9d1a2b3c4d5e6f70"
    assert parse({"kedro-batch:kmsKeyArn": arn}).kms_key_arn == arn


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("orchestration", "fast", "kedro-batch:orchestration: got 'fast'; expected one of"),
        ("intermediates", "keep", "kedro-batch:intermediates: got 'keep'"),
        ("pipelines", "[]", "kedro-batch:pipelines: expected a list with at least one entry"),
        ("maxVcpus", "lots", "kedro-batch:maxVcpus: got 'lots'; expected a whole number"),
        ("logRetentionDays", "10", "kedro-batch:logRetentionDays: got '10'; CloudWatch accepts"),
        ("durations", '{"a": -1}', "kedro-batch:durations: 'a': got -1"),
        ("profiles", '{"big": {"cpus": 4}}', "profile 'big': unknown setting 'cpus'"),
        ("forceDestroy", "yes", "kedro-batch:forceDestroy: got 'yes'; expected true or false"),
        (
            "maxVcpu",
            "4",
            "unknown config key kedro-batch:maxVcpu; did you mean kedro-batch:maxVcpus",
        ),
        ("tagProfiles", '{"large": "huge"}', "selects unknown profile 'huge'"),
        (
            "profiles",
            '{"big": {"ephemeralStorage": 20}}',
            "profile 'big', ephemeralStorage: got 20; expected a whole number from 21 to 200",
        ),
        ("datasetAccess", '{"model": "copy"}', "datasetAccess: 'model': got 'copy'; expected"),
        ("datasetAccess", '["model"]', "datasetAccess: got '[\"model\"]'; expected an object"),
        # The bucket's key: the job role is granted kms:Decrypt on it, which an alias is not.
        ("kmsKeyArn", "alias/data", "kedro-batch:kmsKeyArn: got 'alias/data'; expected a KMS key"),
        ("kmsKeyArn", "arn:aws:kms:eu-west-1:123456789012:alias/data", "not an alias"),
        ("kmsKeyArn", "0b1e7c1e-5a1d-4f0e-9d1a-2b3c4d5e6f70", "expected a KMS key ARN"),
    ],
)
def test_bad_values_name_the_key_and_the_fix(key: str, value: str, message: str):
    with pytest.raises(UserError) as info:
        parse({f"kedro-batch:{key}": value})
    assert message in str(info.value)
