"""Step Functions: one STANDARD state machine per deployed pipeline.

Each definition is compiled by :meth:`infra.plan.PipelinePlan.definition`
once the queue and job-definition ARNs are known, with per-task job settings
from the resource plan. The machines share one role that may do exactly what
``batch:submitJob.sync`` needs on these queues and job definitions; each logs
to its own CloudWatch log group.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence

import pulumi
import pulumi_aws as aws

from infra import asl, iam
from infra.config import NAMESPACE, Settings
from infra.plan import PipelinePlan
from infra.resources import JobClass, ResourcePlan

PIPELINE_TAG = f"{NAMESPACE}:pipeline"  # the offline synth finds each definition by it


class PipelineStateMachines(pulumi.ComponentResource):
    """State machines, their log groups and their shared role."""

    arns: dict[str, pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        settings: Settings,
        pipelines: Mapping[str, PipelinePlan],
        resources: ResourcePlan,
        *,
        queues: Mapping[JobClass, pulumi.Output[str]],
        job_definitions: Mapping[JobClass, aws.batch.JobDefinition],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("kedro-batch:index:PipelineStateMachines", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        region = aws.get_region_output(opts=invoke).region
        partition = aws.get_partition_output(opts=invoke).partition
        logging = settings.sfn_log_level != "OFF"

        classes = list(resources.job_classes)
        queue_arns = pulumi.Output.all(*[queues[c] for c in classes])
        definition_arns = pulumi.Output.all(*[job_definitions[c].arn for c in classes])
        definition_prefixes = pulumi.Output.all(*[job_definitions[c].arn_prefix for c in classes])

        role = aws.iam.Role(
            f"{name}-sfn",
            description="Kedro pipelines' state machines: submit and watch Batch jobs",
            assume_role_policy=account_id.apply(
                lambda account: json.dumps(iam.assume_role("states.amazonaws.com", account))
            ),
            opts=child,
        )
        policy = aws.iam.RolePolicy(
            f"{name}-sfn",
            role=role.id,
            policy=pulumi.Output.all(
                partition, region, account_id, queue_arns, definition_prefixes
            ).apply(
                lambda a: json.dumps(
                    iam.state_machine_policy(
                        partition=a[0],
                        region=a[1],
                        account_id=a[2],
                        job_queue_arns=sorted(set(a[3])),
                        job_definition_arns=a[4],
                        logging=logging,
                        tracing=settings.tracing,
                    )
                )
            ),
            opts=child,
        )

        self.arns = {}
        for pipeline, plan in pipelines.items():
            slug = _slug(pipeline)
            destination = None
            if logging:
                log_group = aws.cloudwatch.LogGroup(
                    f"{name}-{slug}-sfn",
                    # The /aws/vendedlogs/ prefix keeps CloudWatch Logs' resource
                    # policy for log delivery from growing with every machine.
                    name_prefix=f"/aws/vendedlogs/states/{name}-{slug}-",
                    retention_in_days=settings.log_retention_days,
                    opts=child,
                )
                destination = log_group.arn.apply(lambda arn: f"{arn}:*")
            definition = pulumi.Output.all(queue_arns, definition_arns).apply(
                _compiler(plan, resources, classes)
            )
            machine = aws.sfn.StateMachine(
                f"{name}-{slug}",
                type="STANDARD",  # .sync integrations need it
                role_arn=role.arn,
                definition=definition,
                logging_configuration=aws.sfn.StateMachineLoggingConfigurationArgs(
                    level=settings.sfn_log_level,
                    include_execution_data=settings.sfn_include_execution_data,
                    log_destination=destination,
                ),
                tracing_configuration=aws.sfn.StateMachineTracingConfigurationArgs(
                    enabled=settings.tracing
                ),
                tags={PIPELINE_TAG: pipeline},
                # The role must carry its permissions before Step Functions checks them.
                opts=pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(depends_on=[policy])
                ),
            )
            self.arns[pipeline] = machine.arn
        self.register_outputs({"arns": self.arns})


def _compiler(
    plan: PipelinePlan, resources: ResourcePlan, classes: Sequence[JobClass]
) -> Callable[[list[list[str]]], str]:
    """The definition, as deployed, once the queue and job-definition ARNs are known."""

    def compile_definition(arns: list[list[str]]) -> str:
        queues, definitions = arns
        jobs = resources.job_specs(
            plan.name,
            queue=_non_default(classes, queues),
            definition=_non_default(classes, definitions),
        )
        return asl.serialise(plan.definition(queues[0], definitions[0], jobs))

    return compile_definition


def _non_default(
    classes: Sequence[JobClass], arns: Sequence[str]
) -> Callable[[JobClass], str | None]:
    """ARN per job class; ``None`` where it is the default class's (the compiler's default)."""
    by_class = dict(zip(classes, arns, strict=True))
    return lambda job_class: None if by_class[job_class] == arns[0] else by_class[job_class]


def _slug(pipeline: str) -> str:
    """A pipeline name as it may appear in resource names."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", pipeline)[:40]
