"""IAM roles that an AWS service assumes for this account, with one inline policy."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from infra import iam, names


def service_role(
    name: str,
    *,
    service: str,
    description: str,
    account_id: pulumi.Output[str],
    policy: pulumi.Output[iam.Policy],
    opts: pulumi.ResourceOptions,
) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
    """A role ``service`` (e.g. ``states.amazonaws.com``) may assume, and its policy.

    The policy resource is returned too: what uses the role should depend on
    it, since AWS checks permissions when the role is first used.
    """
    role = aws.iam.Role(
        names.fitted(name, names.IAM_ROLE),
        description=description,
        assume_role_policy=account_id.apply(
            lambda account: json.dumps(iam.assume_role(service, account))
        ),
        opts=opts,
    )
    attached = aws.iam.RolePolicy(name, role=role.id, policy=policy.apply(json.dumps), opts=opts)
    return role, attached
