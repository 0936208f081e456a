"""Where Batch jobs run: the stack's subnets and security groups.

With ``subnetIds`` configured the jobs run there (with ``securityGroupIds``,
or an egress-only group created in those subnets' VPC). Otherwise a minimal
VPC is created: two public subnets in different availability zones (where
Fargate runs, chosen by zone ID: :mod:`infra.zones`), an
internet gateway, and an S3 gateway endpoint so data traffic stays on the AWS
network at no charge. There is no NAT gateway (about $32/month plus traffic,
for a workload that is idle most of the time): Fargate jobs get a public IP
instead, and the security group admits no inbound traffic at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from infra.zones import choose_zones

VPC_CIDR = "10.42.0.0/16"
SUBNET_CIDRS = ("10.42.0.0/20", "10.42.16.0/20")


class Network(pulumi.ComponentResource):
    """Subnets and security groups for Batch compute environments."""

    subnet_ids: pulumi.Output[list[str]]
    security_group_ids: pulumi.Output[list[str]]
    public_subnets: bool  # jobs need a public IP to reach ECR and S3's APIs

    def __init__(
        self,
        name: str,
        *,
        subnet_ids: Sequence[str] = (),
        security_group_ids: Sequence[str] = (),
        zone_ids: Sequence[str] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("kedro-batch:index:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        if subnet_ids:
            self.public_subnets = False
            self.subnet_ids = pulumi.Output.from_input(list(subnet_ids))
            if security_group_ids:
                self.security_group_ids = pulumi.Output.from_input(list(security_group_ids))
            else:
                vpc_id = aws.ec2.get_subnet_output(id=subnet_ids[0], opts=invoke).vpc_id
                self.security_group_ids = _egress_only(name, vpc_id, child).id.apply(
                    lambda sg: [sg]
                )
        else:
            self.public_subnets = True
            self.subnet_ids, self.security_group_ids = self._minimal_vpc(
                name, child, invoke, zone_ids
            )
        self.register_outputs(
            {"subnet_ids": self.subnet_ids, "security_group_ids": self.security_group_ids}
        )

    @staticmethod
    def _minimal_vpc(
        name: str,
        child: pulumi.ResourceOptions,
        invoke: pulumi.InvokeOutputOptions,
        zone_ids: Sequence[str],
    ) -> tuple[pulumi.Output[list[str]], pulumi.Output[list[str]]]:
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=VPC_CIDR,
            # Fargate resolves ECR and S3 endpoints through the VPC resolver.
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags={"Name": f"{name}-vpc"},
            opts=child,
        )
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, opts=child)
        routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)],
            opts=child,
        )
        region = aws.get_region_output(opts=invoke).region
        available = aws.get_availability_zones_output(state="available", opts=invoke)
        zones = pulumi.Output.all(region, available.names, available.zone_ids).apply(
            lambda a: choose_zones(a[0], a[1], a[2], zone_ids)
        )
        subnets = []
        for i, cidr in enumerate(SUBNET_CIDRS):
            subnet = aws.ec2.Subnet(
                f"{name}-public-{i}",
                vpc_id=vpc.id,
                cidr_block=cidr,
                availability_zone_id=zones[i],
                map_public_ip_on_launch=True,
                tags={"Name": f"{name}-public-{i}"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}-routes",
                subnet_id=subnet.id,
                route_table_id=routes.id,
                opts=child,
            )
            subnets.append(subnet)
        aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=vpc.id,
            service_name=region.apply(lambda r: f"com.amazonaws.{r}.s3"),
            vpc_endpoint_type="Gateway",
            route_table_ids=[routes.id],
            opts=child,
        )
        group = _egress_only(name, vpc.id, child)
        return pulumi.Output.all(*[s.id for s in subnets]), group.id.apply(lambda sg: [sg])


def _egress_only(
    name: str, vpc_id: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> aws.ec2.SecurityGroup:
    """Outbound anywhere (ECR, S3, CloudWatch Logs over HTTPS); nothing inbound."""
    return aws.ec2.SecurityGroup(
        f"{name}-jobs",
        description="kedro-batch jobs: outbound only",
        vpc_id=vpc_id,
        egress=[
            aws.ec2.SecurityGroupEgressArgs(
                protocol="-1",
                from_port=0,
                to_port=0,
                cidr_blocks=["0.0.0.0/0"],
                description="AWS APIs and package indexes",
            )
        ],
        opts=opts,
    )
