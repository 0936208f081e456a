"""Which availability zones the created VPC's subnets go in.

Zone names (``us-east-1a``) are shuffled per account; zone IDs (``use1-az1``)
name the same place in every account, and AWS documents Fargate's gaps by ID:
it runs only in some zones of a few regions. The VPC takes the first two
zones (in the account's name order) where Fargate runs, or the zone IDs the
stack names in ``kedro-batch:availabilityZoneIds``.
"""

from __future__ import annotations

from collections.abc import Sequence

from infra.config import NAMESPACE
from infra.errors import UserError

# Regions where Fargate runs in some zones only (Amazon ECS developer guide,
# "AWS Fargate Regions"), by zone ID.
FARGATE_ONLY_IN: dict[str, frozenset[str]] = {
    "us-west-1": frozenset({"usw1-az1", "usw1-az3"}),
    "ap-northeast-1": frozenset({"apne1-az1", "apne1-az2", "apne1-az4"}),
    "ca-central-1": frozenset({"cac1-az1", "cac1-az2"}),
    "cn-north-1": frozenset({"cnn1-az1", "cnn1-az2"}),
}
# Zones without Fargate (nor current Nitro instance types) in other regions.
FARGATE_NOT_IN = frozenset({"use1-az3"})
ZONES = 2  # subnets of the created VPC


def choose_zones(
    region: str, names: Sequence[str], ids: Sequence[str], wanted: Sequence[str] = ()
) -> list[str]:
    """The zone IDs for the VPC's subnets, from the region's available zones.

    ``names`` and ``ids`` are what ``ec2:DescribeAvailabilityZones`` returns,
    pairwise; ``wanted`` are configured zone IDs, used as they are once known
    to exist here.
    """
    available = [zone for _, zone in sorted(zip(names, ids, strict=True))]
    if wanted:
        unknown = [z for z in wanted if z not in available]
        if unknown:
            raise UserError(
                f"invalid config {NAMESPACE}:availabilityZoneIds: {', '.join(unknown)} is not "
                f"an available zone of {region}; choose from {', '.join(available)}"
            )
        return list(wanted)
    allowed = FARGATE_ONLY_IN.get(region)
    usable = [z for z in available if z not in FARGATE_NOT_IN and (allowed is None or z in allowed)]
    if len(usable) < ZONES:
        raise UserError(
            f"{region} has fewer than {ZONES} available zones where Fargate runs "
            f"({', '.join(usable) or 'none'}); set {NAMESPACE}:subnetIds to your own subnets"
        )
    return usable[:ZONES]
