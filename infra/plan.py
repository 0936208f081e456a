"""From validated settings to what gets deployed, before any resource exists.

``plan`` loads the Kedro project, checks every deployed pipeline and fixes
the task graph per pipeline: the intermediates mode's tasks, grouped by the
``grouping`` strategy (:mod:`infra.grouping`). Everything that can be wrong
with the user's input is found here, so ``pulumi preview`` and ``synth`` fail
with one clear message before a single resource is registered.
"""

from __future__ import annotations

import difflib
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from infra import asl, overrides
from infra.config import NAMESPACE, Settings, job_start_seconds
from infra.datasets import (
    check_bucket_places,
    check_dataset_access,
    task_graph_for,
    uses_spark,
)
from infra.errors import UserError
from infra.graph import PipelineGraph, TaskGraph
from infra.grouping import Grouping, Model, NodeCost, group
from infra.kedro_project import KedroProject, load_project
from infra.layout import Layout, critical_path, makespan, structure
from infra.resources import (
    Resources,
    billing_weight,
    check_profiles,
    default_resources,
    job_environment,
    node_resources,
    normalise,
    platform_of,
)
from infra.secrets import check_credentials
from infra.tracking import Tracking, resolve


@dataclass(frozen=True)
class PipelinePlan:
    """One deployed pipeline: its graph and the tasks Batch will run."""

    name: str
    graph: PipelineGraph
    tasks: TaskGraph
    orchestration: str
    node_seconds: Mapping[str, float]
    # The grouping strategy's result: the tasks above, their layout and figures.
    grouping: Grouping | None = None
    # What every job definition sets (counted against Batch's overrides limit).
    job_environment: Mapping[str, str] = field(default_factory=dict)

    @cached_property
    def params_room(self) -> int:
        """Characters of runtime-parameter JSON every task can take; ``UserError``
        when a task leaves less than :data:`infra.overrides.PARAMS_RESERVE`."""
        commands = {t.name: asl.node_command(t) for t in self.tasks.tasks}
        return overrides.check_tasks(self.name, commands, self.job_environment)

    @cached_property
    def layout(self) -> Layout | None:
        """The structured layout, computed once: every compile of a deployment
        (the split into machines, each definition) must agree on it."""
        if self.orchestration != "structured":
            return None
        if self.grouping is not None:
            return self.grouping.layout
        return structure(
            self.tasks.names, self.tasks.parents, self.tasks.durations(self.node_seconds)
        )

    def machines(
        self, job_queue: str, job_definition: str, jobs: asl.JobSpecs | None = None
    ) -> list[asl.Machine]:
        """The checked state machines for these queue and job definition ARNs:
        one, or child parts then their parent when one cannot hold the pipeline."""
        machines = asl.build_machines(
            self.graph,
            job_queue=job_queue,
            job_definition=job_definition,
            mode=self.orchestration,
            groups=[t.nodes for t in self.tasks.tasks],
            jobs=jobs,
            pipeline_name=self.name,
            layout=self.layout,
        )
        for machine in machines:
            asl.check_limits(machine.template, self.name)
        return machines

    def definition(
        self, job_queue: str, job_definition: str, jobs: asl.JobSpecs | None = None
    ) -> dict[str, Any]:
        """The pipeline's own machine (with placeholders for any parts)."""
        return self.machines(job_queue, job_definition, jobs)[-1].template

    def structure_ratio(self) -> float:
        """Makespan of the deployed layout over the critical path, at equal
        durations (1.0 in exact mode: Batch follows the DAG itself)."""
        if self.layout is None:
            return 1.0
        ones = {t: 1.0 for t in self.tasks.names}
        cp = critical_path(self.tasks.names, self.tasks.parents, ones)
        return makespan(self.layout, ones) / cp


@dataclass(frozen=True)
class DeploymentPlan:
    settings: Settings
    project: KedroProject
    pipelines: Mapping[str, PipelinePlan]
    tracking: Tracking | None = None  # MLflow: None when the project does not use kedro-mlflow

    @property
    def uses_spark(self) -> bool:
        """Whether a deployed pipeline has Spark datasets: the default image adds Java."""
        return uses_spark(p.graph for p in self.pipelines.values())


def node_seconds(graph: PipelineGraph, durations: Mapping[str, float]) -> dict[str, float]:
    """Expected seconds per node: by node name, else the largest of its tags'.

    A node neither names is taken to run as long as the median measured node
    of the pipeline (1 s when none is measured: all equal), so a partial
    ``durations`` does not make the grouping fuse the unmeasured nodes as if
    they took no time.
    """
    known: dict[str, float] = {}
    for node in graph.nodes:
        by_tag = [durations[t] for t in sorted(node.tags) if t in durations]
        if node.name in durations or by_tag:
            known[node.name] = durations.get(node.name, max(by_tag, default=0.0))
    fallback = statistics.median(known.values()) if known else 1.0
    return {node.name: known.get(node.name, fallback) for node in graph.nodes}


def durations_known(graph: PipelineGraph, durations: Mapping[str, float]) -> bool:
    """Whether ``kedro-batch:durations`` says anything about this pipeline's nodes."""
    return any(n.name in durations or not n.tags.isdisjoint(durations) for n in graph.nodes)


def cost_model(
    settings: Settings,
    graph: PipelineGraph,
    seconds: Mapping[str, float],
    environment: Mapping[str, str] | None = None,
) -> Model:
    """The grouping cost model of one deployed pipeline (``infra.grouping``);
    ``environment`` is the job definitions' (it counts against Batch's limit
    on a job's container overrides, as a fused task's node list does)."""
    platform = platform_of(settings)
    default = default_resources(settings)
    resources = {
        n.name: normalise(node_resources(settings, n, default), platform) for n in graph.nodes
    }

    def weigh(vcpu: float, memory: int) -> float:
        return billing_weight(Resources(vcpu, memory, 0, 0, 0), platform, default)

    def fits_overrides(nodes: Sequence[str]) -> bool:
        command = [*asl.TASK_COMMAND, "--nodes", ",".join(nodes)]
        return overrides.fits(command, pipeline=graph.name, job_environment=environment)

    return Model(
        job_start=job_start_seconds(settings),
        mode=settings.orchestration,
        nodes={
            name: NodeCost(
                seconds=seconds[name],
                vcpu=r.vcpu,
                memory=r.memory,
                job_class=(r.gpu > 0, r.attempts),
            )
            for name, r in resources.items()
        },
        weigh=weigh,
        fits=fits_overrides,
        durations_known=durations_known(graph, settings.durations),
    )


def plan(settings: Settings) -> DeploymentPlan:
    project = load_project(settings.project_dir, settings.pipelines, settings.kedro_env)
    tracking = resolve(project.mlflow, settings.mlflow_tracking_uri)
    graphs = {name: project.pipelines[name] for name in settings.pipelines}
    check_profiles(settings, graphs)
    _check_durations(settings, graphs)
    if settings.intermediates != "error":  # else nothing moves into the bucket
        check_bucket_places(list(graphs.values()))
    environment = job_environment(settings, tracking=tracking)
    pipelines = {}
    for name, graph in graphs.items():
        seconds = node_seconds(graph, settings.durations)
        atoms = task_graph_for(graph, settings.intermediates, env=settings.kedro_env)
        model = cost_model(settings, graph, seconds, environment)
        chosen = group(graph, atoms, settings.grouping, model)
        pipelines[name] = PipelinePlan(
            name=name,
            graph=graph,
            tasks=chosen.tasks,
            orchestration=settings.orchestration,
            node_seconds=seconds,
            grouping=chosen,
            job_environment=environment,
        )
        pipelines[name].params_room  # noqa: B018 (checks every task now, before any resource)
    check_credentials(
        [p.graph for p in pipelines.values()],
        intermediates=settings.intermediates,
        access=settings.dataset_access,
        credentials_secret=settings.credentials_secret,
        project=project.path,
        package=project.package_name,
        env=settings.kedro_env,
    )
    check_dataset_access(settings.dataset_access, [p.graph for p in pipelines.values()])
    _check_schedule_params(settings, pipelines)
    return DeploymentPlan(
        settings=settings, project=project, pipelines=pipelines, tracking=tracking
    )


def _check_durations(settings: Settings, graphs: Mapping[str, PipelineGraph]) -> None:
    """Every ``durations`` key must name a deployed node or one of their tags:
    a typo would silently leave the model guessing."""
    known = {n.name for g in graphs.values() for n in g.nodes}
    tags = {t for g in graphs.values() for n in g.nodes for t in n.tags}
    for key in settings.durations:
        if key not in known and key not in tags:
            hint = difflib.get_close_matches(key, sorted(known | tags), n=1)
            fix = f"did you mean {hint[0]!r}?" if hint else "use fully-qualified node names"
            raise UserError(
                f"invalid config {NAMESPACE}:durations: {key!r} is neither a node nor a tag of "
                f"the deployed pipelines ({', '.join(graphs)}); {fix}"
            )


def _check_schedule_params(settings: Settings, pipelines: Mapping[str, PipelinePlan]) -> None:
    """A schedule's parameters must fit its pipeline's jobs, as ``run``'s must."""
    for i, schedule in enumerate(settings.schedules, start=1):
        pipeline = pipelines[schedule.pipeline or settings.pipelines[0]]
        size = overrides.params_length(schedule.params)
        if size > pipeline.params_room:
            raise UserError(
                f"invalid config {NAMESPACE}:schedule: entry {i}'s params take {size:,} "
                f"characters of JSON, over the {pipeline.params_room:,} the jobs of pipeline "
                f"{pipeline.name!r} have left in Batch's 8,192 characters of container "
                "overrides; pass fewer or smaller parameters"
            )
