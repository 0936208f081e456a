"""Step Functions: one STANDARD state machine per deployed pipeline.

Each definition is compiled by :meth:`infra.plan.PipelinePlan.definition`
once the queue and job-definition ARNs are known, with per-task job settings
from the resource plan. The machines share one role that may do exactly what
``batch:submitJob.sync`` needs on these queues and job definitions; each logs
to its own CloudWatch log group.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

import pulumi
import pulumi_aws as aws

from infra import asl, iam, names
from infra.components.roles import service_role
from infra.config import NAMESPACE, Settings
from infra.plan import PipelinePlan
from infra.resources import JobClass, ResourcePlan

PIPELINE_TAG = f"{NAMESPACE}:pipeline"  # the offline synth finds each definition by it
PART_TAG = f"{NAMESPACE}:part"  # on the child machines of a split pipeline


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
        # How each pipeline splits into machines is fixed now, from ARN
        # stand-ins that are equal exactly where the real ARNs are.
        stand_ins = (
            _stand_ins([queues[c] for c in classes]),
            _stand_ins([job_definitions[c] for c in classes]),
        )
        parts = {
            pipeline: [m.key for m in _compile(plan, resources, classes, *stand_ins)][:-1]
            for pipeline, plan in pipelines.items()
        }
        slugs = names.pipeline_slugs(pipelines)
        # A part is "<prefix>-part-<n>", auto-named: the role may start "<prefix>-part-*".
        part_prefixes = {
            p: names.fitted(f"{name}-{slugs[p]}", names.STATE_MACHINE - max(map(len, keys)) - 1)
            for p, keys in parts.items()
            if keys
        }
        part_names = [f"{prefix}-part-*" for prefix in part_prefixes.values()]

        role, policy = service_role(
            f"{name}-sfn",
            service="states.amazonaws.com",
            description="Kedro pipelines' state machines: submit and watch Batch jobs",
            account_id=account_id,
            policy=pulumi.Output.all(
                partition, region, account_id, queue_arns, definition_prefixes
            ).apply(
                lambda a: iam.state_machine_policy(
                    partition=a[0],
                    region=a[1],
                    account_id=a[2],
                    job_queue_arns=sorted(set(a[3])),
                    job_definition_arns=a[4],
                    logging=logging,
                    tracing=settings.tracing,
                    part_machine_names=part_names,
                )
            ),
            opts=child,
        )

        self.arns = {}
        for pipeline, plan in pipelines.items():
            slug = slugs[pipeline]
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
            compiled = pulumi.Output.all(queue_arns, definition_arns).apply(
                partial(_compile_all, plan, resources, classes)
            )

            options = pulumi.ResourceOptions.merge(
                # The role must carry its permissions before Step Functions checks them.
                child,
                pulumi.ResourceOptions(depends_on=[policy]),
            )

            def machine(
                logical: str, definition: pulumi.Output[str], tags: dict[str, str]
            ) -> aws.sfn.StateMachine:
                return aws.sfn.StateMachine(
                    logical,
                    type="STANDARD",  # .sync integrations need it
                    role_arn=role.arn,
                    definition=definition,
                    logging_configuration=aws.sfn.StateMachineLoggingConfigurationArgs(
                        level=settings.sfn_log_level,
                        include_execution_data=settings.sfn_include_execution_data,
                        log_destination=destination,  # noqa: B023 (called in this iteration)
                    ),
                    tracing_configuration=aws.sfn.StateMachineTracingConfigurationArgs(
                        enabled=settings.tracing
                    ),
                    tags=tags,
                    opts=options,  # noqa: B023
                )

            part_arns = {
                key: machine(
                    f"{part_prefixes[pipeline]}-{key}",
                    compiled.apply(partial(_template, key)),
                    {PIPELINE_TAG: pipeline, PART_TAG: key},
                ).arn
                for key in parts[pipeline]
            }
            root = pulumi.Output.all(compiled, part_arns).apply(
                lambda a: asl.serialise(_machine(a[0], "").definition(a[1]))
            )
            self.arns[pipeline] = machine(
                names.fitted(f"{name}-{slug}", names.STATE_MACHINE), root, {PIPELINE_TAG: pipeline}
            ).arn
        self.register_outputs({"arns": self.arns})


def _compile(
    plan: PipelinePlan,
    resources: ResourcePlan,
    classes: Sequence[JobClass],
    queues: Sequence[str],
    definitions: Sequence[str],
) -> list[asl.Machine]:
    """The pipeline's machines for these queue and job-definition ARNs (per class)."""
    jobs = resources.job_specs(
        plan.name,
        queue=_non_default(classes, queues),
        definition=_non_default(classes, definitions),
    )
    return plan.machines(queues[0], definitions[0], jobs)


def _compile_all(
    plan: PipelinePlan,
    resources: ResourcePlan,
    classes: Sequence[JobClass],
    arns: list[list[str]],
) -> list[asl.Machine]:
    return _compile(plan, resources, classes, arns[0], arns[1])


def _template(key: str, machines: Sequence[asl.Machine]) -> str:
    """Definition of a part (its template has no placeholders)."""
    return asl.serialise(_machine(machines, key).template)


def _machine(machines: Sequence[asl.Machine], key: str) -> asl.Machine:
    found = [m for m in machines if m.key == key]
    if not found:  # the split is fixed before ARNs are known; it cannot change
        raise AssertionError(f"compiled machines {[m.key for m in machines]} lack {key!r}")
    return found[0]


def _stand_ins(values: Sequence[object]) -> list[str]:
    """Distinct placeholder ARNs, one per distinct value (same Output: same ARN)."""
    seen: dict[int, str] = {}
    return [seen.setdefault(id(v), f"arn:stand-in:{len(seen)}") for v in values]


def _non_default(
    classes: Sequence[JobClass], arns: Sequence[str]
) -> Callable[[JobClass], str | None]:
    """ARN per job class; ``None`` where it is the default class's (the compiler's default)."""
    by_class = dict(zip(classes, arns, strict=True))
    return lambda job_class: None if by_class[job_class] == arns[0] else by_class[job_class]
