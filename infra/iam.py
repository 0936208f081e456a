"""IAM policy documents as plain dicts: least privilege, checked by parliament.

Pure functions of ARNs given as strings; the Pulumi shell wires them through
``Output.apply``. Rules every identity policy here follows: no wildcard
actions, and ``"Resource": "*"`` only for actions that have no resource-level
permissions (per the Service Authorization Reference).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Policy = dict[str, Any]

VERSION = "2012-10-17"

# The managed EventBridge rule Step Functions creates to learn when a Batch job
# it started with ``.sync`` has finished.
BATCH_EVENTS_RULE = "StepFunctionsGetEventsForBatchJobsRule"
PARTS_EVENTS_RULE = "StepFunctionsGetEventsForStepFunctionsExecutionRule"

# Step Functions delivers execution logs through CloudWatch Logs' vended-log
# deliveries; none of these actions supports resource-level permissions.
LOG_DELIVERY_ACTIONS = (
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
)
XRAY_ACTIONS = (
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
)
ECR_PULL_ACTIONS = (
    "ecr:BatchCheckLayerAvailability",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchGetImage",
)


def _policy(*statements: Policy) -> Policy:
    return {"Version": VERSION, "Statement": list(statements)}


def _allow(sid: str, actions: Sequence[str], resources: str | Sequence[str]) -> Policy:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Action": list(actions),
        "Resource": resources if isinstance(resources, str) else list(resources),
    }


def assume_role(service: str, account_id: str) -> Policy:
    """Trust ``service`` (e.g. ``states.amazonaws.com``) acting for this account only.

    ``aws:SourceAccount`` stops another account's use of the service from
    assuming the role (the confused-deputy problem).
    """
    return _policy(
        {
            "Effect": "Allow",
            "Principal": {"Service": service},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        }
    )


def instance_assume_role() -> Policy:
    """Trust EC2, for the ECS agent on Batch-managed instances.

    No ``aws:SourceAccount`` condition: EC2 does not send it for instance
    profiles.
    """
    return _policy(
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    )


def job_role_policy(bucket_arn: str, kms_key_arn: str | None = None) -> Policy:
    """What Kedro nodes may do: read and write the data bucket, nothing else."""
    statements = [
        _allow(
            "ReadWriteObjects",
            ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"),
            f"{bucket_arn}/*",
        ),
        _allow("ListBucket", ("s3:ListBucket", "s3:GetBucketLocation"), bucket_arn),
    ]
    if kms_key_arn:
        statements.append(
            _allow("UseBucketKey", ("kms:Decrypt", "kms:GenerateDataKey"), kms_key_arn)
        )
    return _policy(*statements)


def execution_role_policy(
    repository_arn: str,
    log_group_arn: str,
    *,
    secret_arns: Sequence[str] = (),
    secrets_kms_key_arn: str | None = None,
    dns_suffix: str = "amazonaws.com",
) -> Policy:
    """What ECS needs to start a job: pull our image, write to our log group,
    and read the job definition's ``secrets`` (these full ARNs only).

    ``kms:Decrypt`` on a customer-managed key of those secrets is needed only
    through Secrets Manager (``kms:ViaService`` in the secrets' regions).
    """
    statements = [
        _allow("PullImage", ECR_PULL_ACTIONS, repository_arn),
        # GetAuthorizationToken is account-wide: no resource-level permissions.
        _allow("RegistryLogin", ("ecr:GetAuthorizationToken",), "*"),
        _allow(
            "WriteJobLogs",
            ("logs:CreateLogStream", "logs:PutLogEvents"),
            f"{log_group_arn}:log-stream:*",
        ),
    ]
    if secret_arns:
        statements.append(
            _allow("ReadJobSecrets", ("secretsmanager:GetSecretValue",), sorted(set(secret_arns)))
        )
        if secrets_kms_key_arn:
            regions = sorted({arn.split(":")[3] for arn in secret_arns})
            via = [f"secretsmanager.{region}.{dns_suffix}" for region in regions]
            statements.append(
                {
                    **_allow("DecryptJobSecrets", ("kms:Decrypt",), secrets_kms_key_arn),
                    "Condition": {"StringEquals": {"kms:ViaService": via}},
                }
            )
    return _policy(*statements)


def state_machine_policy(
    *,
    partition: str,
    region: str,
    account_id: str,
    job_queue_arns: Sequence[str],
    job_definition_arns: Sequence[str],
    logging: bool,
    tracing: bool,
    part_machine_names: Sequence[str] = (),
) -> Policy:
    """Exactly what ``arn:aws:states:::batch:submitJob.sync`` needs, plus logs and tracing.

    ``job_definition_arns`` are without revision. SubmitJob is authorised
    against the revisioned ARN (``name:3``), which only ``name:*`` matches;
    the bare name is the form the Service Authorization Reference documents
    (and parliament checks) and grants nothing beyond the same definition.
    SubmitJob and TerminateJob are also authorised against the job
    (``job/<id>``): its ID is unknown until submission, hence ``job/*``.
    DescribeJobs has no resource-level permissions.

    ``part_machine_names`` are name patterns (``<prefix>-part-*``) of the child
    machines a split pipeline starts with ``startExecution.sync:2``: their
    names get a random suffix, and the parent must be allowed to start and
    watch them before they exist.
    """
    batch = f"arn:{partition}:batch:{region}:{account_id}"
    definitions = [form for arn in job_definition_arns for form in (arn, f"{arn}:*")]
    statements = [
        _allow(
            "SubmitJobs",
            ("batch:SubmitJob",),
            [*job_queue_arns, *definitions, f"{batch}:job/*"],
        ),
        _allow("StopJobs", ("batch:TerminateJob",), f"{batch}:job/*"),
        _allow("WatchJobs", ("batch:DescribeJobs",), "*"),
        _allow(
            "BatchCompletionEvents",
            ("events:PutTargets", "events:PutRule", "events:DescribeRule"),
            f"arn:{partition}:events:{region}:{account_id}:rule/{BATCH_EVENTS_RULE}",
        ),
    ]
    if part_machine_names:
        states = f"arn:{partition}:states:{region}:{account_id}"
        statements += [
            _allow(
                "StartParts",
                ("states:StartExecution",),
                [f"{states}:stateMachine:{n}" for n in part_machine_names],
            ),
            # The express-execution form is what the Service Authorization
            # Reference (and parliament) also lists for DescribeExecution;
            # parts are STANDARD machines, so it matches nothing more.
            _allow(
                "WatchParts",
                ("states:DescribeExecution", "states:StopExecution"),
                [
                    form
                    for n in part_machine_names
                    for form in (f"{states}:execution:{n}:*", f"{states}:express:{n}:*:*")
                ],
            ),
            _allow(
                "PartCompletionEvents",
                ("events:PutTargets", "events:PutRule", "events:DescribeRule"),
                f"arn:{partition}:events:{region}:{account_id}:rule/{PARTS_EVENTS_RULE}",
            ),
        ]
    if logging:
        statements.append(_allow("DeliverExecutionLogs", LOG_DELIVERY_ACTIONS, "*"))
    if tracing:
        statements.append(_allow("Tracing", XRAY_ACTIONS, "*"))
    return _policy(*statements)


def deny_insecure_transport(bucket_arn: str) -> Policy:
    """Bucket policy: refuse every request that does not use TLS."""
    return _policy(
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )


def scheduler_policy(state_machine_arns: Sequence[str]) -> Policy:
    """EventBridge Scheduler may start these pipelines' executions, nothing else."""
    return _policy(_allow("StartScheduledRuns", ("states:StartExecution",), state_machine_arns))


def topic_policy(topic_arn: str, rule_arns: Sequence[str]) -> Policy:
    """Only the failure rules of this deployment may publish to its topic."""
    return _policy(
        {
            "Sid": "FailureRulesPublish",
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sns:Publish",
            "Resource": topic_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": list(rule_arns)}},
        }
    )
