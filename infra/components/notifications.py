"""Failure notifications: e-mail (SNS) when a pipeline run fails, times out or is aborted.

One EventBridge rule per pipeline matches its state machine's status-change
events; the message names the pipeline (fixed per rule), the execution and
its status, and links to the execution in the console, where the failure
cause names the failed Kedro node. A topic this deployment creates accepts
publications from these rules only; an existing topic (``topicArn``) must
already allow EventBridge to publish.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import partial

import pulumi
import pulumi_aws as aws

from infra import iam, names
from infra.config import Notifications

FAILED_STATUSES = ["FAILED", "TIMED_OUT", "ABORTED"]
FAILED_SUFFIX = "-failed"


def event_pattern(state_machine_arn: str) -> dict[str, object]:
    return {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"status": FAILED_STATUSES, "stateMachineArn": [state_machine_arn]},
    }


def message_template(pipeline: str, console_domain: str) -> str:
    """EventBridge input template: a plain-text e-mail body (a JSON string)."""
    text = (
        f"Kedro pipeline '{pipeline}': run <execution> ended <status>. "
        f"Failed node and cause: https://<region>.{console_domain}/states/home?region=<region>"
        "#/v2/executions/details/<executionArn>"
    )
    return json.dumps(text)


class FailureNotifications(pulumi.ComponentResource):
    topic_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        notifications: Notifications,
        state_machine_arns: Mapping[str, pulumi.Output[str]],
        console_domain: pulumi.Output[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("kedro-batch:index:FailureNotifications", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        topic = None
        if notifications.topic_arn:
            self.topic_arn = pulumi.Output.from_input(notifications.topic_arn)
        else:
            topic = aws.sns.Topic(f"{name}-failures", opts=child)
            self.topic_arn = topic.arn
        if notifications.email:
            aws.sns.TopicSubscription(
                f"{name}-failures-email",
                topic=self.topic_arn,
                protocol="email",
                endpoint=notifications.email,
                opts=child,
            )
        rules = []
        slugs = names.pipeline_slugs(state_machine_arns)
        for pipeline, arn in state_machine_arns.items():
            # The rule's name and the target's ID are both auto-named from it.
            limit = min(names.EVENT_RULE, names.EVENT_TARGET) - len(FAILED_SUFFIX)
            logical = names.fitted(f"{name}-{slugs[pipeline]}", limit) + FAILED_SUFFIX
            rule = aws.cloudwatch.EventRule(
                logical,
                description=f"Kedro pipeline {pipeline!r}: failed, timed-out or aborted runs",
                event_pattern=arn.apply(lambda a: json.dumps(event_pattern(a))),
                opts=child,
            )
            aws.cloudwatch.EventTarget(
                logical,
                rule=rule.name,
                arn=self.topic_arn,
                input_transformer=aws.cloudwatch.EventTargetInputTransformerArgs(
                    input_paths={
                        "execution": "$.detail.name",
                        "executionArn": "$.detail.executionArn",
                        "status": "$.detail.status",
                        "region": "$.region",
                    },
                    input_template=console_domain.apply(partial(message_template, pipeline)),
                ),
                opts=child,
            )
            rules.append(rule.arn)
        if topic is not None:
            aws.sns.TopicPolicy(
                f"{name}-failures",
                arn=topic.arn,
                policy=pulumi.Output.all(topic.arn, *rules).apply(
                    lambda a: json.dumps(iam.topic_policy(a[0], a[1:]))
                ),
                opts=child,
            )
        self.register_outputs({"topic_arn": self.topic_arn})
