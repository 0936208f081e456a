"""AWS Batch: compute environments, job queues, job definitions and their roles.

One CPU queue on the stack's ``computeType`` (Spot first, then on-demand
when ``onDemandFallback``), and a separate EC2 GPU queue only when a resource
profile asks for a GPU (Fargate has none). One job definition per
:class:`~infra.resources.JobClass`: the image by digest, the job and
execution roles, logs, default resources, and a retry strategy that retries
infrastructure failures only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import iam, names
from infra.asl import TASK_COMMAND
from infra.components.roles import service_role
from infra.components.secrets import JobSecrets
from infra.config import Settings
from infra.resources import (
    FARGATE_DEFAULT_STORAGE,
    JobClass,
    ResourcePlan,
    Resources,
    job_environment,
)
from infra.tracking import Tracking

# The job definition's own command: harmless, since every Task state overrides it.
DEFAULT_COMMAND = [*TASK_COMMAND, "--help"]

# Batch status reasons of failures that are the infrastructure's, not the
# node's: worth another attempt. At most five evaluateOnExit entries are
# allowed, the last being "EXIT on anything else", so each platform gets the
# four that can happen on it.
FARGATE_RETRY_ON = (
    "Your Spot Task was interrupted*",  # Fargate Spot reclaimed the capacity
    "CannotPullContainerError*",
    "ResourceInitializationError*",  # ENI, registry auth or log driver setup
    "CannotStartContainerError*",
)
EC2_RETRY_ON = (
    "Host EC2*",  # "Host EC2 (instance i-...) terminated.": Spot reclaim, instance retired
    "Task failed to start*",  # image pull or container start failed on the instance
    "CannotPullContainerError*",
    "CannotStartContainerError*",
)

ECS_INSTANCE_POLICY = "service-role/AmazonEC2ContainerServiceforEC2Role"
SPOT_TYPES = {"FARGATE_SPOT": "FARGATE", "SPOT": "EC2"}  # spot type -> its on-demand fallback


@dataclass(frozen=True)
class NetworkPlacement:
    subnet_ids: pulumi.Input[Sequence[str]]
    security_group_ids: pulumi.Input[Sequence[str]]
    assign_public_ip: bool


class BatchCompute(pulumi.ComponentResource):
    """Queues and job definitions the state machines submit to."""

    queue_arn: pulumi.Output[str]
    gpu_queue_arn: pulumi.Output[str] | None
    job_definitions: dict[JobClass, aws.batch.JobDefinition]

    def __init__(
        self,
        name: str,
        settings: Settings,
        resources: ResourcePlan,
        *,
        network: NetworkPlacement,
        image_ref: pulumi.Input[str],
        repository_arn: pulumi.Input[str],
        bucket: pulumi.Input[str],
        bucket_arn: pulumi.Input[str],
        secrets: JobSecrets | None = None,
        tracking: Tracking | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("kedro-batch:index:BatchCompute", name, None, opts)
        self._name = name
        self._settings = settings
        self._network = network
        self._child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        region = aws.get_region_output(opts=invoke).region
        partition_info = aws.get_partition_output(opts=invoke)
        partition = partition_info.partition

        uses_ec2 = resources.needs_gpu or resources.platform == "EC2"
        self._instance_profile = self._instance_profile_for(partition) if uses_ec2 else None
        spot = settings.compute_type == "SPOT" or (
            resources.needs_gpu and settings.compute_type in SPOT_TYPES
        )
        self._linked_roles = (
            self._service_linked_roles(spot=spot) if settings.service_linked_roles else []
        )

        cpu_type = settings.compute_type
        self.queue_arn = self._queue(name, cpu_type, gpu=False)
        self.gpu_queue_arn = None
        if resources.needs_gpu:
            gpu_type = "SPOT" if cpu_type in SPOT_TYPES else "EC2"
            self.gpu_queue_arn = self._queue(f"{name}-gpu", gpu_type, gpu=True)

        log_group = aws.cloudwatch.LogGroup(
            f"{name}-jobs",
            name_prefix=f"/aws/batch/{name}-",
            retention_in_days=settings.log_retention_days,
            opts=self._child,
        )
        job_role = self._role(
            f"{name}-job",
            "What Kedro nodes may do: read and write the data bucket",
            account_id,
            pulumi.Output.from_input(bucket_arn).apply(
                lambda arn: iam.job_role_policy(
                    arn, settings.kms_key_arn, _mlflow_statements(tracking, settings, arn)
                )
            ),
        )
        secret_arns = secrets.arns if secrets else pulumi.Output.from_input([])
        execution_role = self._role(
            f"{name}-execution",
            "What ECS needs to start a job: pull the image, write its logs, read its secrets",
            account_id,
            pulumi.Output.all(
                repository_arn, log_group.arn, secret_arns, partition_info.dns_suffix
            ).apply(
                lambda a: iam.execution_role_policy(
                    a[0],
                    a[1],
                    secret_arns=a[2],
                    secrets_kms_key_arn=settings.secrets_kms_key_arn,
                    dns_suffix=a[3],
                )
            ),
        )
        container = pulumi.Output.all(
            image=image_ref,
            job_role=job_role.arn,
            execution_role=execution_role.arn,
            log_group=log_group.name,
            region=region,
            environment=pulumi.Output.from_input(bucket).apply(
                lambda name: job_environment(settings, name, tracking, pulumi.get_stack())
            ),
            secrets=secrets.value_from if secrets else {},
        )
        self.job_definitions = {}
        for job_class in resources.job_classes:
            suffix = _class_suffix(job_class, resources.default_class)
            fargate = not job_class.gpu and resources.platform == "FARGATE"
            base = resources.base(job_class)
            self.job_definitions[job_class] = aws.batch.JobDefinition(
                f"{name}-{_platform(fargate)}-job{suffix}",
                type="container",
                platform_capabilities=["FARGATE" if fargate else "EC2"],
                container_properties=container.apply(
                    _container_json(base, fargate=fargate, public_ip=network.assign_public_ip)
                ),
                retry_strategy=aws.batch.JobDefinitionRetryStrategyArgs(
                    attempts=job_class.attempts,
                    evaluate_on_exits=[
                        aws.batch.JobDefinitionRetryStrategyEvaluateOnExitArgs(
                            action="RETRY", on_status_reason=reason
                        )
                        for reason in (FARGATE_RETRY_ON if fargate else EC2_RETRY_ON)
                    ]
                    + [
                        aws.batch.JobDefinitionRetryStrategyEvaluateOnExitArgs(
                            action="EXIT", on_reason="*"
                        )
                    ],
                ),
                timeout=aws.batch.JobDefinitionTimeoutArgs(attempt_duration_seconds=base.timeout),
                propagate_tags=True,
                # Keep earlier revisions ACTIVE: executions started before an
                # update still submit jobs with the revision they were given.
                deregister_on_new_revision=False,
                opts=pulumi.ResourceOptions.merge(
                    self._child, _named_before_platforms(f"{name}-job{suffix}")
                ),
            )
        self.register_outputs(
            {
                "queue_arn": self.queue_arn,
                "gpu_queue_arn": self.gpu_queue_arn,
                "job_definition_arns": [d.arn for d in self.job_definitions.values()],
            }
        )

    def queue_for(self, job_class: JobClass) -> pulumi.Output[str]:
        return self.gpu_queue_arn if job_class.gpu and self.gpu_queue_arn else self.queue_arn

    # -- pieces -------------------------------------------------------------------

    def _queue(self, prefix: str, compute_type: str, *, gpu: bool) -> pulumi.Output[str]:
        """A queue over its compute environments: Spot first, on-demand as overflow.

        Batch moves to the next environment only when the first is at its
        max vCPUs, not when Spot capacity is short; the fallback bounds how
        far a burst can spill onto on-demand prices.
        """
        types = [compute_type]
        if self._settings.on_demand_fallback and compute_type in SPOT_TYPES:
            types.append(SPOT_TYPES[compute_type])
        environments = [
            self._compute_environment(f"{prefix}-{kind.lower().replace('_', '-')}", kind, gpu=gpu)
            for kind in types
        ]
        queue = aws.batch.JobQueue(
            f"{prefix}-{_platform(compute_type.startswith('FARGATE'))}-queue",
            state="ENABLED",
            priority=1,
            compute_environment_orders=[
                aws.batch.JobQueueComputeEnvironmentOrderArgs(
                    order=i + 1, compute_environment=ce.arn
                )
                for i, ce in enumerate(environments)
            ],
            opts=pulumi.ResourceOptions.merge(
                self._child, _named_before_platforms(f"{prefix}-queue")
            ),
        )
        return queue.arn

    def _compute_environment(
        self, name: str, compute_type: str, *, gpu: bool
    ) -> aws.batch.ComputeEnvironment:
        settings = self._settings
        compute: dict[str, Any] = {
            "type": compute_type,
            "max_vcpus": settings.max_vcpus,
            "subnets": self._network.subnet_ids,
            "security_group_ids": self._network.security_group_ids,
        }
        if not compute_type.startswith("FARGATE"):
            assert self._instance_profile is not None
            compute |= {
                "min_vcpus": 0,  # scale to zero between runs
                "instance_role": self._instance_profile.arn,
                "instance_types": list(
                    settings.gpu_instance_types if gpu else settings.instance_types
                ),
                "allocation_strategy": (
                    "SPOT_PRICE_CAPACITY_OPTIMIZED"
                    if compute_type == "SPOT"
                    else "BEST_FIT_PROGRESSIVE"
                ),
                "ec2_configurations": [
                    aws.batch.ComputeEnvironmentComputeResourcesEc2ConfigurationArgs(
                        image_type="ECS_AL2023_NVIDIA" if gpu else "ECS_AL2023"
                    )
                ],
            }
        return aws.batch.ComputeEnvironment(
            name,
            # No `name`: Pulumi auto-names it, so a replacement can be created
            # while the queue still points at the old one.
            type="MANAGED",
            compute_resources=aws.batch.ComputeEnvironmentComputeResourcesArgs(**compute),
            opts=pulumi.ResourceOptions.merge(
                self._child,
                pulumi.ResourceOptions(
                    # Batch scales desired vCPUs itself; do not fight it.
                    ignore_changes=["computeResources.desiredVcpus"],
                    depends_on=self._linked_roles,
                ),
            ),
        )

    def _service_linked_roles(self, *, spot: bool) -> list[pulumi.Resource]:
        """The account-wide roles Batch, ECS and EC2 Spot act through, for a
        brand-new account (``serviceLinkedRoles``): created before the compute
        environments, never deleted by this stack (other workloads use them),
        and refused by IAM where they exist already."""
        services = ["batch.amazonaws.com", "ecs.amazonaws.com"]
        if spot:
            services.append("spot.amazonaws.com")
        return [
            aws.iam.ServiceLinkedRole(
                f"{self._name}-{service.split('.')[0]}-linked-role",
                aws_service_name=service,
                opts=pulumi.ResourceOptions.merge(
                    self._child, pulumi.ResourceOptions(retain_on_delete=True)
                ),
            )
            for service in services
        ]

    def _instance_profile_for(self, partition: pulumi.Output[str]) -> aws.iam.InstanceProfile:
        """For the ECS agent on Batch-managed EC2 instances (AWS's managed policy)."""
        role = aws.iam.Role(
            names.fitted(f"{self._name}-instance", names.IAM_ROLE),
            description="ECS agent on kedro-batch EC2 instances",
            assume_role_policy=json.dumps(iam.instance_assume_role()),
            opts=self._child,
        )
        aws.iam.RolePolicyAttachment(
            f"{self._name}-instance",
            role=role.name,
            policy_arn=partition.apply(lambda p: f"arn:{p}:iam::aws:policy/{ECS_INSTANCE_POLICY}"),
            opts=self._child,
        )
        return aws.iam.InstanceProfile(f"{self._name}-instance", role=role.name, opts=self._child)

    def _role(
        self,
        name: str,
        description: str,
        account_id: pulumi.Output[str],
        policy: pulumi.Output[iam.Policy],
    ) -> aws.iam.Role:
        role, _ = service_role(
            name,
            service="ecs-tasks.amazonaws.com",
            description=description,
            account_id=account_id,
            policy=policy,
            opts=self._child,
        )
        return role


def container_properties(
    *,
    image: str,
    job_role: str,
    execution_role: str,
    log_group: str,
    region: str,
    environment: dict[str, str],
    resources: Resources,
    fargate: bool,
    assign_public_ip: bool,
    secrets: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Batch ``containerProperties`` of a job definition.

    ``secrets`` (environment variable -> full secret ARN, with Batch's
    ``:json-key:stage:id`` if any) are fetched by ECS as the container starts.
    """
    properties: dict[str, Any] = {
        "image": image,
        "command": DEFAULT_COMMAND,
        "jobRoleArn": job_role,
        "executionRoleArn": execution_role,
        "resourceRequirements": [
            {"type": k, "value": v} for k, v in sorted(resources.requirements().items())
        ],
        "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
        **(
            {"secrets": [{"name": k, "valueFrom": v} for k, v in sorted(secrets.items())]}
            if secrets
            else {}
        ),
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group,
                "awslogs-region": region,
                "awslogs-stream-prefix": "kedro",
            },
        },
    }
    if fargate and resources.ephemeral_storage:
        properties["ephemeralStorage"] = {"sizeInGiB": resources.ephemeral_storage}
    if fargate:
        properties |= {
            "fargatePlatformConfiguration": {"platformVersion": "LATEST"},
            "networkConfiguration": {
                "assignPublicIp": "ENABLED" if assign_public_ip else "DISABLED"
            },
            "runtimePlatform": {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"},
        }
    return properties


def _container_json(
    resources: Resources, *, fargate: bool, public_ip: bool
) -> Callable[[dict[str, Any]], str]:
    def render(values: dict[str, Any]) -> str:
        return json.dumps(
            container_properties(
                **values, resources=resources, fargate=fargate, assign_public_ip=public_ip
            )
        )

    return render


def _platform(fargate: bool) -> str:
    """The platform in the logical names of queues and job definitions.

    A queue's platform (Fargate or EC2) is fixed when it is created, and a job
    definition's platform capabilities force a new one. With the platform in
    their names, switching ``computeType`` between Fargate and EC2 creates the
    new queue, compute environments and job definitions first, repoints the
    state machines, then deletes the old ones; ``pulumi preview`` lists each
    as a create and a delete.
    """
    return "fargate" if fargate else "ec2"


def _named_before_platforms(old: str) -> pulumi.ResourceOptions:
    """Stacks deployed before the platform joined the name keep their resources."""
    return pulumi.ResourceOptions(aliases=[pulumi.Alias(name=old)])


def _mlflow_statements(
    tracking: Tracking | None, settings: Settings, bucket_arn: str
) -> list[iam.Policy]:
    if tracking is None:
        return []
    return iam.mlflow_statements(
        server_arn=tracking.sagemaker_arn,
        artifact_store=settings.mlflow_artifact_store,
        partition=bucket_arn.split(":")[1],
    )


def _class_suffix(job_class: JobClass, default: JobClass) -> str:
    """``""`` for the default class, else e.g. ``-gpu``, ``-4-attempts`` or ``-50gib``."""
    suffix = "-gpu" if job_class.gpu else ""
    if job_class.attempts != default.attempts:
        suffix += f"-{job_class.attempts}-attempts"
    if job_class.ephemeral_storage != default.ephemeral_storage:
        suffix += f"-{job_class.ephemeral_storage or FARGATE_DEFAULT_STORAGE}gib"
    return suffix
