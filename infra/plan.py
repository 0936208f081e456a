"""From validated settings to what gets deployed, before any resource exists.

``plan`` loads the Kedro project, checks every deployed pipeline and fixes
the task graph per pipeline. Everything that can be wrong with the user's
input is found here, so ``pulumi preview`` and ``synth`` fail with one clear
message before a single resource is registered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from infra import asl
from infra.config import Settings
from infra.datasets import task_graph_for
from infra.graph import PipelineGraph, TaskGraph
from infra.kedro_project import KedroProject, load_project
from infra.layout import Layout, critical_path, makespan, structure
from infra.tracking import Tracking, resolve


@dataclass(frozen=True)
class PipelinePlan:
    """One deployed pipeline: its graph and the tasks Batch will run."""

    name: str
    graph: PipelineGraph
    tasks: TaskGraph
    orchestration: str
    node_seconds: Mapping[str, float]

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


def node_seconds(graph: PipelineGraph, durations: Mapping[str, float]) -> dict[str, float]:
    """Expected seconds per node: by node name, else the largest of its tags'."""
    result: dict[str, float] = {}
    for node in graph.nodes:
        by_tag = [durations[t] for t in sorted(node.tags) if t in durations]
        result[node.name] = durations.get(node.name, max(by_tag, default=1.0))
    return result


def plan(settings: Settings) -> DeploymentPlan:
    project = load_project(settings.project_dir, settings.pipelines, settings.kedro_env)
    pipelines = {}
    for name in settings.pipelines:
        graph = project.pipelines[name]
        pipelines[name] = PipelinePlan(
            name=name,
            graph=graph,
            tasks=task_graph_for(graph, settings.intermediates, env=settings.kedro_env),
            orchestration=settings.orchestration,
            node_seconds=node_seconds(graph, settings.durations),
        )
    tracking = resolve(project.mlflow, settings.mlflow_tracking_uri)
    return DeploymentPlan(
        settings=settings, project=project, pipelines=pipelines, tracking=tracking
    )
