"""EventBridge Scheduler schedules that start pipeline runs.

Each ``kedro-batch:schedule`` entry becomes one schedule in its own time zone
(so "06:00 Europe/Paris" stays 06:00 across daylight saving), targeting the
pipeline's state machine with ``{"params": ...}`` as the execution input,
through a role that may only start these state machines.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from infra import iam, names
from infra.components.roles import service_role
from infra.config import Schedule


class PipelineSchedules(pulumi.ComponentResource):
    names: list[pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        schedules: Sequence[Schedule],
        state_machine_arns: Mapping[str, pulumi.Output[str]],
        default_pipeline: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("kedro-batch:index:PipelineSchedules", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account_id = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id
        targets = sorted({s.pipeline or default_pipeline for s in schedules})
        role, policy = service_role(
            f"{name}-scheduler",
            service="scheduler.amazonaws.com",
            description="EventBridge Scheduler: start scheduled Kedro pipeline runs",
            account_id=account_id,
            policy=pulumi.Output.all(*[state_machine_arns[p] for p in targets]).apply(
                lambda arns: iam.scheduler_policy(sorted(arns))
            ),
            opts=child,
        )
        self.names = []
        for i, schedule in enumerate(schedules, start=1):
            pipeline = schedule.pipeline or default_pipeline
            created = aws.scheduler.Schedule(
                names.fitted(f"{name}-schedule-{i}", names.SCHEDULE),
                description=f"Run Kedro pipeline {pipeline!r} at {schedule.expression} "
                f"({schedule.timezone})",
                schedule_expression=schedule.expression,
                schedule_expression_timezone=schedule.timezone,
                flexible_time_window=aws.scheduler.ScheduleFlexibleTimeWindowArgs(mode="OFF"),
                target=aws.scheduler.ScheduleTargetArgs(
                    arn=state_machine_arns[pipeline],
                    role_arn=role.arn,
                    input=json.dumps({"params": dict(schedule.params)}),
                ),
                opts=pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(depends_on=[policy])
                ),
            )
            self.names.append(created.name)
        self.register_outputs({"names": self.names})
