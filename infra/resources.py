"""Per-node Batch resources: profiles resolved, merged per task, validated.

Pure functions on settings and the planned pipelines; no Pulumi. Everything a
user can get wrong here is a ``UserError`` raised before any resource exists.

Selection (stack config, all optional):

- ``profiles``: name -> ``{vcpu, memory, gpu, timeout, retries}``; a missing
  setting inherits from the profile named ``default``, else from
  :data:`BUILTIN` (1 vCPU, 2048 MiB, 2 h per attempt, 2 retries).
- ``tagProfiles``: Kedro tag -> profile; ``nodeProfiles``: node -> profile.

Precedence is default < tag < node: a node named in ``nodeProfiles`` gets
exactly that profile. A node whose tags select *several* profiles gets the
largest value of each setting across them, the same rule as for a task of
several nodes: the job must be big enough for everything it runs (a task's
timeout is the sum of its nodes', since they run one after another). A merged
size that is not a valid Fargate size is rounded up to the smallest valid
one (a profile the user wrote must itself be valid; merged ones are ours).

Retries live in the job definition's retry strategy (infrastructure failures
only), not in ``SubmitJob``: a ``RetryStrategy`` override replaces the whole
strategy, ``evaluateOnExit`` included, so a task that overrode only the
attempts would retry its own code's failures. Fargate ephemeral storage
(``ephemeralStorage``, GiB) cannot be overridden at all: ``SubmitJob``'s
container overrides carry command, environment, instance type and resource
requirements only. Tasks whose retries or storage differ from the default
therefore get a job definition of their own (a :class:`JobClass`); vCPU,
memory and timeout travel as per-task overrides.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Literal

from kedro_batch_runtime.settings import ENV_BUCKET, ENV_DATASET_ACCESS, ENV_INTERMEDIATES

from infra.asl import JobSpec
from infra.config import NAMESPACE, Profile, Settings
from infra.errors import UserError
from infra.graph import NodeInfo, PipelineGraph
from infra.kedro_project import QUIET_KEDRO_ENV
from infra.tracking import Tracking

if TYPE_CHECKING:
    from infra.plan import PipelinePlan

Platform = Literal["FARGATE", "EC2"]

DEFAULT_PROFILE = "default"

# Fargate's task sizes: vCPU -> the memory values (MiB) it runs with.
FARGATE_SIZES: dict[float, tuple[int, ...]] = {
    0.25: (512, 1024, 2048),
    0.5: tuple(range(1024, 4096 + 1, 1024)),
    1.0: tuple(range(2048, 8192 + 1, 1024)),
    2.0: tuple(range(4096, 16384 + 1, 1024)),
    4.0: tuple(range(8192, 30720 + 1, 1024)),
    8.0: tuple(range(16384, 61440 + 1, 4096)),
    16.0: tuple(range(32768, 122880 + 1, 8192)),
}
FARGATE_MAX_VCPU = max(FARGATE_SIZES)
MAX_TIMEOUT = 14 * 24 * 3600  # the longest a profile may set (config.py)
FARGATE_MAX_MEMORY = max(FARGATE_SIZES[FARGATE_MAX_VCPU])
FARGATE_DEFAULT_STORAGE = 20  # GiB of ephemeral storage a Fargate task gets unless told


@dataclass(frozen=True, slots=True)
class Resources:
    """What one Batch job asks for."""

    vcpu: float
    memory: int  # MiB
    gpu: int
    timeout: int  # seconds per attempt
    retries: int  # attempts after the first, on infrastructure failures
    ephemeral_storage: int = 0  # GiB of Fargate task storage; 0: FARGATE_DEFAULT_STORAGE

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def requirements(self) -> dict[str, str]:
        """Batch ``resourceRequirements`` as ``{Type: Value}``."""
        result = {"VCPU": _number(self.vcpu), "MEMORY": str(self.memory)}
        if self.gpu:
            result["GPU"] = str(self.gpu)
        return result

    def union(self, other: Resources) -> Resources:
        """The larger of each setting: enough for both."""
        return Resources(
            **{f.name: max(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)}
        )

    def overlay(self, profile: Profile) -> Resources:
        """This, with the settings ``profile`` sets."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(
            (f.name, getattr(profile, f.name))
            for f in fields(profile)
            if getattr(profile, f.name) is not None
        )
        return Resources(
            vcpu=float(values["vcpu"]),
            memory=int(values["memory"]),
            gpu=int(values["gpu"]),
            timeout=int(values["timeout"]),
            retries=int(values["retries"]),
            ephemeral_storage=int(values["ephemeral_storage"]),
        )


BUILTIN = Resources(vcpu=1.0, memory=2048, gpu=0, timeout=2 * 3600, retries=2)


@dataclass(frozen=True, slots=True, order=True)
class JobClass:
    """Tasks that can share one job definition: same platform, retry strategy and
    Fargate ephemeral storage (0: Fargate's default)."""

    gpu: bool
    attempts: int
    ephemeral_storage: int = 0


@dataclass(frozen=True, slots=True)
class Selection:
    """Why a node uses a profile: ``via`` is e.g. ``tag 'large'``."""

    profile: str
    via: str


@dataclass(frozen=True)
class ResourcePlan:
    """Resources of every task of every deployed pipeline, and the job classes they need."""

    platform: Platform  # of the CPU compute environments
    default: Resources
    tasks: Mapping[str, Mapping[str, Resources]]  # pipeline -> task name -> resources

    @property
    def default_class(self) -> JobClass:
        return self.job_class(self.default)

    def job_class(self, resources: Resources) -> JobClass:
        return JobClass(
            gpu=resources.gpu > 0,
            attempts=resources.attempts,
            ephemeral_storage=resources.ephemeral_storage,
        )

    @property
    def job_classes(self) -> tuple[JobClass, ...]:
        """The default class first, then the others tasks use, in a stable order."""
        used = {self.job_class(r) for per_task in self.tasks.values() for r in per_task.values()}
        return (self.default_class, *sorted(used - {self.default_class}))

    @property
    def needs_gpu(self) -> bool:
        return any(c.gpu for c in self.job_classes)

    def base(self, job_class: JobClass) -> Resources:
        """What the job definition of ``job_class`` declares; tasks override the rest.

        The default profile, made to fit: GPU definitions run on EC2 (whole
        vCPUs) with at least one GPU.
        """
        gpu = job_class.gpu
        return Resources(
            vcpu=float(math.ceil(self.default.vcpu)) if gpu else self.default.vcpu,
            memory=self.default.memory,
            gpu=max(1, self.default.gpu) if gpu else 0,
            timeout=self.default.timeout,
            retries=job_class.attempts - 1,
            ephemeral_storage=job_class.ephemeral_storage,
        )

    def job_specs(
        self,
        pipeline: str,
        queue: Callable[[JobClass], str | None],
        definition: Callable[[JobClass], str | None],
    ) -> dict[str, JobSpec]:
        """Per-task SubmitJob settings; only what differs from the defaults is set.

        ``queue`` and ``definition`` give the ARN for a job class, or ``None``
        for the pipeline-wide default passed to the compiler.
        """
        specs: dict[str, JobSpec] = {}
        for task, resources in self.tasks[pipeline].items():
            job_class = self.job_class(resources)
            base = self.base(job_class)
            requirements = resources.requirements()
            specs[task] = JobSpec(
                job_queue=queue(job_class),
                job_definition=definition(job_class),
                resource_requirements=(requirements if requirements != base.requirements() else {}),
                timeout=resources.timeout if resources.timeout != base.timeout else None,
            )
        return specs


ENV_KEDRO = "KEDRO_ENV"  # Kedro's own: the configuration environment to run with
# The data bucket's name is known only once it exists; the longest S3 allows
# stands in for it wherever the environment is measured before then.
LONGEST_BUCKET = "x" * 63
# Likewise the stack's name (Pulumi allows 100 characters).
LONGEST_STACK = "x" * 100


def job_environment(
    settings: Settings,
    bucket: str = LONGEST_BUCKET,
    tracking: Tracking | None = None,
    stack: str = LONGEST_STACK,
) -> dict[str, str]:
    """The environment every job definition gives its containers (``tracking``:
    the shared MLflow run's, when the project tracks with kedro-mlflow)."""
    return {
        **settings.environment,
        ENV_BUCKET: bucket,
        ENV_INTERMEDIATES: settings.intermediates,
        **QUIET_KEDRO_ENV,
        **({ENV_KEDRO: settings.kedro_env} if settings.kedro_env else {}),
        **(
            {ENV_DATASET_ACCESS: json.dumps(dict(settings.dataset_access), sort_keys=True)}
            if settings.dataset_access
            else {}
        ),
        **(tracking.environment(stack) if tracking else {}),
    }


def platform_of(settings: Settings) -> Platform:
    return "FARGATE" if settings.compute_type.startswith("FARGATE") else "EC2"


def plan_resources(settings: Settings, pipelines: Mapping[str, PipelinePlan]) -> ResourcePlan:
    """Resolve, merge and validate resources for every task; ``UserError`` if invalid."""
    check_profiles(settings, {name: plan.graph for name, plan in pipelines.items()})
    default = default_resources(settings)
    platform = platform_of(settings)
    tasks = {
        pipeline: {
            task.name: normalise(
                task_resources(settings, plan.graph, task.nodes, default), platform
            )
            for task in plan.tasks.tasks
        }
        for pipeline, plan in pipelines.items()
    }
    return ResourcePlan(platform=platform, default=normalise(default, platform), tasks=tasks)


def task_resources(
    settings: Settings, graph: PipelineGraph, nodes: Iterable[str], default: Resources
) -> Resources:
    """What a job running ``nodes`` one after another needs: the largest of each
    setting, except the timeout, which adds up (each node keeps its own
    allowance; capped at the longest timeout a profile may set)."""
    each = [node_resources(settings, graph.node(n), default) for n in nodes]
    merged = _union(each)
    return _replace(merged, timeout=min(sum(r.timeout for r in each), MAX_TIMEOUT))


def check_profiles(settings: Settings, graphs: Mapping[str, PipelineGraph]) -> None:
    """``UserError`` for a profile that no job could run with, or a
    ``nodeProfiles`` entry naming no deployed node."""
    _check_node_profiles(settings, graphs)
    default = default_resources(settings)
    usage = _first_users(settings, graphs)
    for name in settings.profiles:
        _validate_profile(settings, name, default, usage.get(name))


def billing_weight(resources: Resources, platform: Platform, default: Resources) -> float:
    """What a job of ``resources`` bills per second, relative to a default job:
    its vCPUs once made a size ``platform`` runs."""
    return normalise(resources, platform).vcpu / normalise(default, platform).vcpu


def default_resources(settings: Settings) -> Resources:
    """:data:`BUILTIN` with the ``default`` profile's settings on top."""
    profile = settings.profiles.get(DEFAULT_PROFILE)
    return BUILTIN.overlay(profile) if profile else BUILTIN


def selections(settings: Settings, node: NodeInfo) -> list[Selection]:
    """The profiles ``node`` uses, by precedence: its own, else its tags' (sorted)."""
    if node.name in settings.node_profiles:
        return [Selection(settings.node_profiles[node.name], f"{NAMESPACE}:nodeProfiles")]
    return [
        Selection(settings.tag_profiles[tag], f"tag {tag!r}")
        for tag in sorted(node.tags)
        if tag in settings.tag_profiles
    ]


def node_resources(settings: Settings, node: NodeInfo, default: Resources) -> Resources:
    chosen = [default.overlay(settings.profiles[s.profile]) for s in selections(settings, node)]
    return _union(chosen) if chosen else default


def normalise(resources: Resources, platform: Platform) -> Resources:
    """The smallest size ``platform`` runs that covers ``resources``.

    GPU jobs always run on EC2. On EC2, vCPUs are whole and ephemeral storage
    is the instance's (a profile inherited from a Fargate default drops it).
    On Fargate the (vCPU, memory) pair must be one of Fargate's sizes: vCPU is
    raised until the memory fits, then memory is raised to the next size of
    that vCPU.
    """
    if resources.gpu or platform == "EC2":
        vcpu = float(max(1, math.ceil(resources.vcpu)))
        return _replace(resources, vcpu=vcpu, ephemeral_storage=0)
    # Validated profiles are within Fargate's caps, so some size always fits.
    vcpu = next(
        v for v, ms in FARGATE_SIZES.items() if v >= resources.vcpu and ms[-1] >= resources.memory
    )
    memory = next(m for m in FARGATE_SIZES[vcpu] if m >= resources.memory)
    return _replace(resources, vcpu=vcpu, memory=memory)


# --- validation -----------------------------------------------------------------


def _check_node_profiles(settings: Settings, graphs: Mapping[str, PipelineGraph]) -> None:
    deployed = {n.name for graph in graphs.values() for n in graph.nodes}
    for node in settings.node_profiles:
        if node not in deployed:
            hint = difflib.get_close_matches(node, sorted(deployed), n=1)
            fix = f"did you mean {hint[0]!r}?" if hint else "use fully-qualified node names"
            raise UserError(
                f"invalid config {NAMESPACE}:nodeProfiles: node {node!r} is not in any deployed "
                f"pipeline ({', '.join(graphs)}); {fix}"
            )


def _first_users(
    settings: Settings, graphs: Mapping[str, PipelineGraph]
) -> dict[str, tuple[str, str]]:
    """Profile -> (node, via) of its first user, to name in error messages."""
    users: dict[str, tuple[str, str]] = {}
    for graph in graphs.values():
        for node in graph.nodes:
            for s in selections(settings, node):
                users.setdefault(s.profile, (node.name, s.via))
    return users


def _validate_profile(
    settings: Settings, name: str, default: Resources, user: tuple[str, str] | None
) -> None:
    resources = default if name == DEFAULT_PROFILE else default.overlay(settings.profiles[name])
    if name == DEFAULT_PROFILE:
        where = " (the default for every node)"
    elif user:
        where = f" (node {user[0]!r}, via {user[1]})"
    else:
        where = ""
    own = resources if name == DEFAULT_PROFILE else settings.profiles[name]
    problem = _problem(resources, settings) or _storage_problem(own, resources, settings)
    if problem:
        raise UserError(f"invalid config {NAMESPACE}:profiles: profile {name!r}{where}: {problem}")


def _problem(r: Resources, settings: Settings) -> str | None:
    """What is wrong with ``r`` on the platform it would run on, if anything."""
    if r.vcpu > settings.max_vcpus:
        return (
            f"{_number(r.vcpu)} vCPU is more than {NAMESPACE}:maxVcpus ({settings.max_vcpus}), "
            "so its jobs could never start; lower vcpu or raise maxVcpus"
        )
    if r.gpu or platform_of(settings) == "EC2":
        if r.vcpu != int(r.vcpu):
            where = "GPU jobs run on EC2, which" if r.gpu else "EC2"
            return f"{where} takes whole vCPUs, not {_number(r.vcpu)}; use 1 or more"
        return None
    if r.vcpu > FARGATE_MAX_VCPU:
        return f"Fargate runs at most {_number(FARGATE_MAX_VCPU)} vCPU, not {_number(r.vcpu)}"
    if r.memory > FARGATE_MAX_MEMORY:
        return f"Fargate runs at most {FARGATE_MAX_MEMORY} MiB (120 GiB), not {r.memory}"
    if r.vcpu not in FARGATE_SIZES:
        choices = [_number(v) for v in FARGATE_SIZES]
        return (
            f"Fargate does not support {_number(r.vcpu)} vCPU; "
            f"use {', '.join(choices[:-1])} or {choices[-1]}"
        )
    memories = FARGATE_SIZES[r.vcpu]
    if r.memory not in memories:
        return (
            f"Fargate does not run {_number(r.vcpu)} vCPU with {r.memory} MiB; "
            f"it takes {_memory_choices(memories)}"
        )
    return None


def _storage_problem(own: Profile | Resources, r: Resources, settings: Settings) -> str | None:
    """``ephemeralStorage`` set where it cannot apply (by the profile itself)."""
    if not own.ephemeral_storage or not (r.gpu or platform_of(settings) == "EC2"):
        return None
    runs = "GPU jobs run on EC2" if r.gpu else f"{NAMESPACE}:computeType {settings.compute_type}"
    return (
        f"ephemeralStorage sizes a Fargate task's disk, and {runs}, where the instance's "
        "volume holds the task's files: remove it (or size the volume with a launch template)"
    )


# --- helpers --------------------------------------------------------------------


def _union(items: Iterable[Resources]) -> Resources:
    result: Resources | None = None
    for r in items:
        result = r if result is None else result.union(r)
    if result is None:
        raise ValueError("a task runs at least one node")
    return result


def _replace(r: Resources, **changes: float) -> Resources:
    values = {f.name: getattr(r, f.name) for f in fields(r)}
    values.update(changes)
    return Resources(**values)


def _number(value: float) -> str:
    """``1.0`` -> ``"1"``, ``0.25`` -> ``"0.25"``: how Batch and people write vCPUs."""
    return str(int(value)) if value == int(value) else str(value)


def _memory_choices(memories: tuple[int, ...]) -> str:
    if len(memories) <= 3:
        return f"{', '.join(map(str, memories[:-1]))} or {memories[-1]} MiB"
    step = memories[1] - memories[0]
    return f"{memories[0]}-{memories[-1]} MiB in steps of {step}"
