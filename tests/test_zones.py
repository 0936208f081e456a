"""Subnets of the created VPC go where Fargate runs, chosen by zone ID."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from infra.config import REPO_ROOT, parse
from infra.errors import UserError
from infra.mocks import availability_zones
from infra.zones import choose_zones


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("us-east-1", ["use1-az6", "use1-az1"]),  # use1-az3 (us-east-1a here) has no Fargate
        ("us-west-1", ["usw1-az3", "usw1-az1"]),
        ("ap-northeast-1", ["apne1-az4", "apne1-az1"]),
        ("ca-central-1", ["cac1-az2", "cac1-az1"]),  # cac1-az4 has no Fargate
        ("eu-west-1", ["euw1-az1", "euw1-az2"]),
    ],
)
def test_the_first_two_zones_where_fargate_runs(region, expected):
    assert choose_zones(region, *availability_zones(region)) == expected


def test_configured_zone_ids_are_used_once_they_exist_in_the_region():
    names, ids = availability_zones("us-east-1")
    assert choose_zones("us-east-1", names, ids, ["use1-az5", "use1-az4"]) == [
        "use1-az5",
        "use1-az4",
    ]
    with pytest.raises(UserError, match="euw1-az1 is not an available zone of us-east-1"):
        choose_zones("us-east-1", names, ids, ["euw1-az1", "use1-az4"])


def test_zone_ids_are_validated_as_config():
    assert parse({"availabilityZoneIds": '["use1-az1", "use1-az2"]'}).availability_zone_ids == (
        "use1-az1",
        "use1-az2",
    )
    for bad in ('["us-east-1a", "use1-az2"]', '["use1-az1"]', '["use1-az1", "use1-az1"]'):
        with pytest.raises(UserError, match="kedro-batch:availabilityZoneIds"):
            parse({"availabilityZoneIds": bad})


def test_a_region_short_of_fargate_zones_asks_for_subnets():
    with pytest.raises(UserError, match="set kedro-batch:subnetIds"):
        choose_zones("us-west-1", ["us-west-1a", "us-west-1b"], ["usw1-az2", "usw1-az3"])


PROGRAM = """
import json, sys
from infra.synth import synthesize
run = synthesize("dev", json.loads(sys.argv[1]))
print(json.dumps([r["inputs"] for r in run.resources if r["type"] == "aws:ec2/subnet:Subnet"]))
"""


def subnets(overrides: dict) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-c", PROGRAM, json.dumps(overrides)],
        cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=600,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_created_subnets_are_placed_by_zone_id():
    placed = subnets({"aws:region": "us-east-1"})
    assert [s["availabilityZoneId"] for s in placed] == ["use1-az6", "use1-az1"]
    assert all("availabilityZone" not in s for s in placed)
