"""What may cross a container boundary, and how (``kedro-batch:intermediates``).

A project that runs with ``kedro run`` keeps MemoryDatasets in one process
and relative paths on one disk. Deployed, every task (one or more nodes)
runs in its own container, so this module looks at each dataset that
leaves a task -- a free input of the pipeline, a dataset one task writes and
another reads, a final output -- and classifies where it lives: ``remote``
(``s3://`` or another remote protocol, or a service), ``local`` (a path on
the container's disk) or ``memory`` (not in the catalog, pattern-aware, or
a ``MemoryDataset``). The classification is :mod:`kedro_batch_runtime.boundaries`,
the very code the container's hook runs, so the preview and the run agree.

The ``intermediates`` modes decide what happens to what would not survive:

``persist`` (default)
    One task per node. In the container, local paths inside the project
    move into the data bucket and MemoryDatasets that cross tasks are
    pickled under the run's prefix (``kedro_batch_runtime.layout`` has the
    rule: free inputs at ``s3://<bucket>/<path>``, versioned outputs in
    their version folder there, unversioned outputs under
    ``s3://<bucket>/runs/<run id>/<path>``, crossing MemoryDatasets at
    ``s3://<bucket>/runs/<run id>/memory/<name>.pickle``). Remote datasets
    are left where they are.
``group``
    Nodes joined by a MemoryDataset run in one task, so no MemoryDataset
    crosses; where fusing would make the task graph cyclic, the groups on
    the cycle are merged further. Local paths move as in ``persist``.
``error``
    Nothing is moved: the deployment is refused, in one message, if any
    dataset leaving a task is local or in memory.

In every mode a MemoryDataset that the pipeline reads but never writes is
refused: no container could provide it (``kedro run`` fails on it too).

Local paths move whether relative (inside the project) or absolute
(``/dbfs/...``, ``/tmp/...``: the container has no such data); a relative
path climbing out of the project (``../shared/x.csv``) has no place in the
image or the bucket, so it is refused where it crosses a task boundary.
Each moved dataset is either read and written at its ``s3://`` location
directly or staged through the task's disk (:mod:`kedro_batch_runtime.access`,
``kedro-batch:datasetAccess``): :func:`moved_datasets` says which, and why.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from posixpath import isabs

import parse
from kedro_batch_runtime.access import ACCESS_KEY, Decision, decide, is_spark_type
from kedro_batch_runtime.boundaries import (
    Storage,
    base_name,
    crossings,
    final_outputs,
    free_inputs,
    storage,
)
from kedro_batch_runtime.layout import (
    RUNS_PREFIX,
    DataLayout,
    bucket_path,
    disk_path,
    versioned_path,
)
from kedro_batch_runtime.settings import INTERMEDIATES

from infra.errors import UserError
from infra.graph import PipelineGraph, TaskGraph, group_tasks, one_task_per_node

INTERMEDIATES_KEY = "kedro-batch:intermediates"


class Role(StrEnum):
    """How a dataset leaves (or enters) a task."""

    FREE_INPUT = "free input"  # read, never written by the pipeline
    CROSSING = "crossing"  # written in one task, read in another
    FINAL_OUTPUT = "final output"  # written, read by no node of the pipeline


@dataclass(frozen=True, slots=True)
class BoundaryDataset:
    """One dataset at a task boundary, classified."""

    name: str
    role: Role
    storage: Storage
    producer: str | None  # the writing node; None for a free input
    consumers: tuple[str, ...]  # reading nodes outside the producer's task
    filepath: str | None = None

    @property
    def survives(self) -> bool:
        """Whether it reaches the other side without kedro-batch moving it.

        A final output kept in memory is not lost to the deployment: ``kedro
        run`` does not keep it either.
        """
        if self.role is Role.FINAL_OUTPUT:
            return self.storage is not Storage.LOCAL
        return self.storage is Storage.REMOTE


def storage_of(graph: PipelineGraph, dataset: str) -> Storage:
    """Where ``dataset`` lives; without catalog facts, Kedro's default: memory."""
    info = graph.datasets.get(dataset)
    if info is None:
        return Storage.MEMORY
    return storage(in_catalog=info.in_catalog, type_name=info.type, filepath=info.filepath)


def boundary_datasets(graph: PipelineGraph, tasks: TaskGraph) -> tuple[BoundaryDataset, ...]:
    """Every dataset that enters or leaves a task of ``tasks``, in pipeline order."""
    task_of = {node: task.name for task in tasks.tasks for node in task.nodes}
    consumers = graph.consumers()

    def classified(
        name: str, role: Role, producer: str | None, readers: Sequence[str]
    ) -> BoundaryDataset:
        info = graph.datasets.get(name)
        return BoundaryDataset(
            name=name,
            role=role,
            storage=storage_of(graph, name),
            producer=producer,
            consumers=tuple(readers),
            filepath=info.filepath if info else None,
        )

    result = [
        classified(name, Role.FREE_INPUT, None, consumers.get(name, ()))
        for name in free_inputs(graph.nodes)
    ]
    result += [
        classified(c.dataset, Role.CROSSING, c.producer, c.consumers)
        for c in crossings(graph.nodes, task_of.__getitem__)
    ]
    producers = graph.producers()
    result += [
        classified(name, Role.FINAL_OUTPUT, producers[name], ())
        for name in final_outputs(graph.nodes)
    ]
    return tuple(result)


def memory_groups(graph: PipelineGraph) -> list[list[str]]:
    """Nodes joined by MemoryDatasets (writer and readers), in pipeline order.

    Nodes that no MemoryDataset joins to another are left out: they stay
    tasks of their own.
    """
    parent = {n.name: n.name for n in graph.nodes}

    def root(node: str) -> str:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for c in crossings(graph.nodes, lambda node: node):  # every producer-consumer edge
        if storage_of(graph, c.dataset) is Storage.MEMORY:
            for consumer in c.consumers:
                parent[root(consumer)] = root(c.producer)
    groups: dict[str, list[str]] = {}
    for n in graph.nodes:
        groups.setdefault(root(n.name), []).append(n.name)
    return [members for members in groups.values() if len(members) > 1]


def task_graph_for(
    graph: PipelineGraph, intermediates: str, *, env: str | None = None
) -> TaskGraph:
    """The tasks that run ``graph`` under ``kedro-batch:intermediates``.

    ``env`` (``kedro-batch:kedroEnv``) only makes the fix in error messages
    name the right configuration folder.
    """
    if intermediates not in INTERMEDIATES:
        raise UserError(
            f"unknown {INTERMEDIATES_KEY} value {intermediates!r}; "
            f"expected one of: {', '.join(INTERMEDIATES)}"
        )
    per_node = one_task_per_node(graph)
    _refuse_unfed_memory(graph, per_node, env)
    if intermediates == "error":
        offenders = [d for d in boundary_datasets(graph, per_node) if not d.survives]
        if offenders:
            raise UserError(_offenders_message(graph.name, offenders, env))
        return per_node
    tasks = group_tasks(graph, memory_groups(graph)) if intermediates == "group" else per_node
    _refuse_paths_out_of_the_project(graph, tasks)
    return tasks


@dataclass(frozen=True, slots=True)
class MovedDataset:
    """A local dataset the runtime moves into the bucket, and how it gets there."""

    name: str
    filepath: str
    place: str  # its path in the bucket (``kedro_batch_runtime.layout.bucket_path``)
    produced: bool  # written by the pipeline (else a free input)
    versioned: bool
    decision: Decision

    @property
    def absolute(self) -> bool:
        return isabs(disk_path(self.filepath))

    def location(self, layout: DataLayout, version: str) -> str:
        """Where a run with ``layout`` and run ``version`` keeps it (the runtime's rule)."""
        uri = layout.local(self.place, produced=self.produced, versioned=self.versioned)
        return versioned_path(uri, version) if self.produced and self.versioned else uri


def moved_datasets(graph: PipelineGraph, overrides: Mapping[str, str]) -> list[MovedDataset]:
    """Every local dataset of ``graph`` that moves into the bucket (modes
    ``persist`` and ``group``), in name order, with how its task reaches it."""
    written = {base_name(name) for name in graph.producers()}
    moved = []
    for name, info in sorted(graph.datasets.items()):
        place = bucket_path(info.filepath) if info.filepath else None
        if place is None or storage_of(graph, name) is not Storage.LOCAL:
            continue
        decision = decide(name, info.type, partition_type=info.partition_type, overrides=overrides)
        produced = base_name(name) in written
        moved.append(
            MovedDataset(name, info.filepath or "", place, produced, info.versioned, decision)
        )
    return moved


def check_bucket_places(graphs: Sequence[PipelineGraph]) -> None:
    """Refuse moved datasets whose bucket locations the move itself makes clash.

    An absolute path loses its leading ``/``, so ``/data/x.csv`` and the
    project's ``data/x.csv`` (or a folder above or below it) would share
    objects that were apart on disk; and a shared location under ``runs/``
    sits in the run prefix that the bucket's lifecycle rule expires (and that
    holds each run's own data). Shared locations (free inputs, versioned
    outputs) are compared across the deployed pipelines, which share the
    bucket; run-scoped ones (unversioned outputs) within a pipeline, whose
    runs they belong to. ``UserError`` naming the datasets and the fix.
    """
    # (scope, place) -> datasets there; (scope, folder) -> datasets below it
    at: dict[tuple[str, str], list[MovedDataset]] = {}
    below: dict[tuple[str, str], list[MovedDataset]] = {}
    for graph in graphs:
        for moved in moved_datasets(graph, {}):
            run_scoped = moved.produced and not moved.versioned
            if not run_scoped and (moved.place + "/").startswith(f"{RUNS_PREFIX}/"):
                raise UserError(
                    f"dataset {moved.name!r} of pipeline {graph.name!r} ({moved.filepath}) "
                    f"would be kept at s3://<bucket>/{moved.place}, under {RUNS_PREFIX}/, where "
                    "runs keep their own data and objects expire after "
                    "kedro-batch:runDataExpirationDays; move it out of a top-level "
                    f"{RUNS_PREFIX}/ folder (e.g. data/{moved.place}) or give it an s3:// path"
                )
            scope = graph.name if run_scoped else ""
            parts = moved.place.split("/")
            folders = ["/".join(parts[:i]) for i in range(1, len(parts))]
            overlapping = [
                *(d for place in [*folders, moved.place] for d in at.get((scope, place), ())),
                *below.get((scope, moved.place), ()),
            ]
            # Overlapping paths of the same kind overlapped on disk too: the project's own.
            clash = next((d for d in overlapping if d.absolute != moved.absolute), None)
            if clash is not None:
                absolute, relative = (clash, moved) if clash.absolute else (moved, clash)
                raise UserError(
                    f"datasets {absolute.name!r} ({absolute.filepath}) and {relative.name!r} "
                    f"({relative.filepath}) would share s3://<bucket>/"
                    f"{min(absolute.place, relative.place, key=len)} (an absolute path moves "
                    "into the bucket without its leading /, beside the project's relative "
                    "paths); change one of the paths so they do not overlap, or give one an "
                    "s3:// path"
                )
            at.setdefault((scope, moved.place), []).append(moved)
            for folder in folders:
                below.setdefault((scope, folder), []).append(moved)


def uses_spark(graphs: Iterable[PipelineGraph]) -> bool:
    """Whether any dataset of ``graphs`` is a Spark type (the image then needs Java)."""
    return any(is_spark_type(d.type) for g in graphs for d in g.datasets.values())


def check_dataset_access(overrides: Mapping[str, str], graphs: Sequence[PipelineGraph]) -> None:
    """Every ``datasetAccess`` key must name (or match) a dataset that moves."""
    names = sorted({name for g in graphs for name in g.datasets})
    moved = {m.name for g in graphs for m in moved_datasets(g, {})}
    deployed = ", ".join(g.name for g in graphs)
    for key in overrides:
        matches = [n for n in names if n == key or ("{" in key and parse.parse(key, n))]
        if not matches:
            hint = difflib.get_close_matches(key, names, n=1)
            fix = f"did you mean {hint[0]!r}?" if hint else "use a dataset name or factory pattern"
            raise UserError(
                f"invalid config {ACCESS_KEY}: {key!r} is not a dataset of the deployed "
                f"pipelines ({deployed}); {fix}"
            )
        if not moved.intersection(matches):
            raise UserError(
                f"invalid config {ACCESS_KEY}: {key!r} matches {', '.join(matches[:3])}, which "
                "kedro-batch does not move into the bucket (in memory, or already remote); it "
                "only chooses how local paths reach the bucket: remove the entry"
            )


def _refuse_paths_out_of_the_project(graph: PipelineGraph, tasks: TaskGraph) -> None:
    outside = [
        d
        for d in boundary_datasets(graph, tasks)
        if d.storage is Storage.LOCAL and d.filepath and bucket_path(d.filepath) is None
    ]
    if outside:
        lines = "\n".join(f"  - {_describe(d)}" for d in outside)
        raise UserError(
            f"pipeline {graph.name!r} has {len(outside)} dataset(s) at a task boundary whose "
            f"path climbs out of the project, where neither the image nor the bucket has "
            f"it:\n{lines}\nFix: move the data inside the project, or give the path "
            "as an absolute path or an s3:// URL."
        )


def _refuse_unfed_memory(graph: PipelineGraph, tasks: TaskGraph, env: str | None) -> None:
    unfed = [
        d
        for d in boundary_datasets(graph, tasks)
        if d.role is Role.FREE_INPUT and d.storage is Storage.MEMORY
    ]
    if unfed:
        lines = "\n".join(f"  - {_describe(d)}" for d in unfed)
        raise UserError(
            f"pipeline {graph.name!r} reads {len(unfed)} MemoryDataset(s) that none of its "
            f"nodes writes, so no task could provide them:\n{lines}\n"
            f"Fix: deploy a pipeline that also runs their producers (kedro-batch:pipelines), "
            f"or give each a catalog entry in {_catalog_file(env)}."
        )


def _offenders_message(pipeline: str, offenders: Sequence[BoundaryDataset], env: str | None) -> str:
    lines = "\n".join(f"  - {_describe(d)}" for d in offenders)
    return (
        f"{INTERMEDIATES_KEY} is 'error' and {len(offenders)} dataset(s) of pipeline "
        f"{pipeline!r} would not survive a container boundary:\n{lines}\n"
        f"Fix: give each a catalog entry on remote storage (e.g. s3://...) in "
        f"{_catalog_file(env)}, or set {INTERMEDIATES_KEY} to persist or group."
    )


def _describe(d: BoundaryDataset) -> str:
    where = "MemoryDataset" if d.storage is Storage.MEMORY else f"{d.storage} path {d.filepath}"
    source = "a free input" if d.producer is None else f"written by {d.producer}"
    sink = f"read by {', '.join(d.consumers)}" if d.consumers else "read by no node"
    return f"{d.name} ({where}): {source}, {sink}"


def _catalog_file(env: str | None) -> str:
    return f"conf/{env or 'base'}/catalog.yml"
