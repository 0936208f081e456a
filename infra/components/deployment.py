"""``KedroBatchDeployment``: everything a Kedro project needs to run on AWS Batch.

Reusable from any Pulumi program: give it a :class:`~infra.plan.DeploymentPlan`
(``infra.plan.plan(settings)``). Everything that can be wrong with the input
(resource profiles, the project's image inputs) is checked before the
component registers, so a bad stack fails before any resource exists.
"""

from __future__ import annotations

from urllib.parse import quote

import pulumi
import pulumi_aws as aws

from infra.components.batch import BatchCompute, NetworkPlacement
from infra.components.image import ProjectImage, build_inputs
from infra.components.network import Network
from infra.components.notifications import FailureNotifications
from infra.components.orchestration import PipelineStateMachines
from infra.components.schedules import PipelineSchedules
from infra.components.secrets import resolve_job_secrets
from infra.components.storage import DataBucket
from infra.plan import DeploymentPlan
from infra.resources import plan_resources
from infra.secrets import job_secrets

CONSOLE_DOMAINS = {
    "aws": "console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}
START_INPUT = '{"params": {}}'


class KedroBatchDeployment(pulumi.ComponentResource):
    """Data bucket, image, network, Batch and one state machine per pipeline."""

    bucket_name: pulumi.Output[str]
    image_ref: pulumi.Output[str]
    job_queue_arns: dict[str, pulumi.Output[str]]
    state_machine_arns: dict[str, pulumi.Output[str]]
    console_urls: pulumi.Output[dict[str, object]]
    start_execution_commands: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, plan: DeploymentPlan, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        settings = plan.settings
        resources = plan_resources(settings, plan.pipelines)
        build = build_inputs(plan.project.path)
        super().__init__("kedro-batch:index:KedroBatchDeployment", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        storage = DataBucket(
            name,
            force_destroy=settings.force_destroy,
            kms_key_arn=settings.kms_key_arn,
            run_data_expiration_days=settings.run_data_expiration_days,
            opts=child,
        )
        image = ProjectImage(
            name,
            build,
            keep_images=settings.keep_images,
            build_on_preview=settings.build_on_preview,
            opts=child,
        )
        network = Network(
            name,
            subnet_ids=settings.subnet_ids,
            security_group_ids=settings.security_group_ids,
            opts=child,
        )
        compute = BatchCompute(
            name,
            settings,
            resources,
            network=NetworkPlacement(
                subnet_ids=network.subnet_ids,
                security_group_ids=network.security_group_ids,
                # Our subnets have no NAT: a public IP is the only way out.
                assign_public_ip=network.public_subnets or bool(settings.assign_public_ip),
            ),
            image_ref=image.ref,
            repository_arn=image.repository_arn,
            bucket=storage.bucket,
            bucket_arn=storage.arn,
            secrets=resolve_job_secrets(
                job_secrets(settings.credentials_secret, settings.secret_env),
                kms_key_arn=settings.secrets_kms_key_arn,
                opts=pulumi.InvokeOutputOptions(parent=self),
            ),
            opts=child,
        )
        machines = PipelineStateMachines(
            name,
            settings,
            plan.pipelines,
            resources,
            queues={c: compute.queue_for(c) for c in resources.job_classes},
            job_definitions=compute.job_definitions,
            opts=child,
        )

        invoke = pulumi.InvokeOutputOptions(parent=self)
        region = aws.get_region_output(opts=invoke).region
        console = aws.get_partition_output(opts=invoke).partition.apply(
            lambda p: CONSOLE_DOMAINS.get(p, CONSOLE_DOMAINS["aws"])
        )
        self.bucket_name = storage.bucket
        self.image_ref = image.ref
        self.job_queue_arns = {"cpu": compute.queue_arn}
        if compute.gpu_queue_arn is not None:
            self.job_queue_arns["gpu"] = compute.gpu_queue_arn
        self.state_machine_arns = machines.arns
        self.console_urls = pulumi.Output.all(
            region, console, storage.bucket, pulumi.Output.all(**machines.arns)
        ).apply(lambda a: _console_urls(a[0], a[1], a[2], a[3]))
        self.start_execution_commands = {
            pipeline: pulumi.Output.all(region, arn).apply(lambda a: start_execution(a[1], a[0]))
            for pipeline, arn in machines.arns.items()
        }
        self.schedule_names: list[pulumi.Output[str]] = []
        if settings.schedules:
            self.schedule_names = PipelineSchedules(
                name,
                settings.schedules,
                machines.arns,
                default_pipeline=settings.pipelines[0],
                opts=child,
            ).names
        self.failure_topic_arn: pulumi.Output[str] | None = None
        if settings.notifications:
            self.failure_topic_arn = FailureNotifications(
                name, settings.notifications, machines.arns, console, opts=child
            ).topic_arn
        self.register_outputs(
            {
                "schedule_names": self.schedule_names,
                "failure_topic_arn": self.failure_topic_arn,
                "bucket_name": self.bucket_name,
                "image_ref": self.image_ref,
                "job_queue_arns": self.job_queue_arns,
                "state_machine_arns": self.state_machine_arns,
                "console_urls": self.console_urls,
                "start_execution_commands": self.start_execution_commands,
            }
        )


def start_execution(state_machine_arn: str, region: str) -> str:
    """A ready-to-paste CLI command that runs a pipeline with no runtime parameters."""
    return (
        f"aws stepfunctions start-execution --region {region} "
        f"--state-machine-arn {state_machine_arn} --input '{START_INPUT}'"
    )


def _console_urls(
    region: str, domain: str, bucket: str, machines: dict[str, str]
) -> dict[str, object]:
    home = f"https://{region}.{domain}"
    states = f"{home}/states/home?region={region}#/statemachines/view"
    return {
        "bucket": f"{home}/s3/buckets/{bucket}?region={region}",
        "stateMachines": {
            pipeline: f"{states}/{quote(arn, safe='')}" for pipeline, arn in machines.items()
        },
    }
