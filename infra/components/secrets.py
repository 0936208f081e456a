"""The secrets a deployment's jobs get, resolved to the full ARNs Batch wants.

ECS takes a Secrets Manager secret in ``valueFrom`` by its full ARN (random
suffix included), and IAM should grant ``GetSecretValue`` on exactly that
ARN. A name or partial ARN from the stack config is resolved with
``aws.secretsmanager.get_secret``, which reads the secret's metadata
(``DescribeSecret``), never its value: no value reaches ``preview``, state or
outputs. ``preview`` fails there, before anything is created, when a secret
does not exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

import pulumi
import pulumi_aws as aws

from infra.secrets import SecretRef


@dataclass(frozen=True)
class JobSecrets:
    """What the job definitions and their execution role need to know."""

    value_from: pulumi.Output[dict[str, str]]  # environment variable -> valueFrom
    arns: pulumi.Output[list[str]]  # every secret, by full ARN


def resolve_job_secrets(
    refs: Mapping[str, SecretRef],
    *,
    kms_key_arn: str | None,
    opts: pulumi.InvokeOutputOptions,
) -> JobSecrets | None:
    """Full ARNs for ``refs`` (environment variable -> secret); ``None`` without secrets."""
    if not refs:
        return None
    lookups: dict[str, pulumi.Output[aws.secretsmanager.GetSecretResult]] = {}
    for ref in refs.values():
        if ref.secret in lookups:
            continue
        lookups[ref.secret] = (
            # A secret in another region is read in its own region.
            aws.secretsmanager.get_secret_output(arn=ref.secret, region=ref.region, opts=opts)
            if ref.is_arn
            else aws.secretsmanager.get_secret_output(name=ref.secret, opts=opts)
        )
        if kms_key_arn is None:
            lookups[ref.secret].kms_key_id.apply(partial(_warn_customer_key, ref.secret))
    value_from = {
        variable: lookups[ref.secret].arn.apply(ref.value_from) for variable, ref in refs.items()
    }
    return JobSecrets(
        value_from=pulumi.Output.all(**value_from),
        arns=pulumi.Output.all(*(lookup.arn for lookup in lookups.values())).apply(
            lambda arns: sorted(set(arns))
        ),
    )


def _warn_customer_key(secret: str, key: str | None) -> None:
    """Jobs could not start: ECS would be refused ``kms:Decrypt`` on the secret's key."""
    if key and not key.endswith("alias/aws/secretsmanager"):
        pulumi.log.warn(
            f"secret {secret} is encrypted with the customer-managed KMS key {key}: set "
            "kedro-batch:secretsKmsKeyArn to its key ARN, or jobs fail to start "
            "(the execution role may not decrypt it)"
        )
