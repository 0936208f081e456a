"""From validated settings to what gets deployed, before any resource exists.

``plan`` loads the Kedro project, checks every deployed pipeline and fixes
the task graph per pipeline. Everything that can be wrong with the user's
input is found here, so ``pulumi preview`` and ``synth`` fail with one clear
message before a single resource is registered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from infra import asl, overrides
from infra.config import NAMESPACE, Settings
from infra.datasets import check_dataset_access, task_graph_for, uses_spark
from infra.errors import UserError
from infra.graph import PipelineGraph, TaskGraph
from infra.kedro_project import KedroProject, load_project
from infra.layout import Layout, critical_path, makespan, structure
from infra.resources import job_environment
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
            params_room=self.params_room,
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
    """Expected seconds per node: by node name, else the largest of its tags'."""
    result: dict[str, float] = {}
    for node in graph.nodes:
        by_tag = [durations[t] for t in sorted(node.tags) if t in durations]
        result[node.name] = durations.get(node.name, max(by_tag, default=1.0))
    return result


def plan(settings: Settings) -> DeploymentPlan:
    project = load_project(settings.project_dir, settings.pipelines, settings.kedro_env)
    tracking = resolve(project.mlflow, settings.mlflow_tracking_uri)
    pipelines = {}
    for name in settings.pipelines:
        graph = project.pipelines[name]
        pipelines[name] = PipelinePlan(
            name=name,
            graph=graph,
            tasks=task_graph_for(graph, settings.intermediates, env=settings.kedro_env),
            orchestration=settings.orchestration,
            node_seconds=node_seconds(graph, settings.durations),
            job_environment=job_environment(settings, tracking=tracking),
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
