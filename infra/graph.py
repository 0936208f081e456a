"""Plain graph model of a Kedro pipeline, and the task graph that Batch runs.

Everything here is plain data: the Kedro loader produces it (possibly in a
subprocess, hence the JSON round trip), and validation, grouping and the ASL
compiler consume it without importing Kedro or Pulumi.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from graphlib import CycleError, TopologicalSorter
from typing import Any, Protocol

from kedro_batch_runtime.boundaries import is_memory_type, is_parameter

MEMORY_DATASET = "kedro.io.memory_dataset.MemoryDataset"


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """What later stages need to know about one dataset of a pipeline.

    ``in_catalog`` follows Kedro's own ``name in catalog`` (explicit entries and
    dataset factory patterns, not the runtime default pattern), so a dataset
    with ``in_catalog=False`` is a MemoryDataset at run time.
    """

    name: str
    in_catalog: bool
    type: str = MEMORY_DATASET
    filepath: str | None = None
    protocol: str | None = None
    versioned: bool = False
    # Names its ``credentials:`` references point to (never their values).
    credentials: tuple[str, ...] = ()
    partition_type: str | None = None  # the ``dataset`` type of a folder dataset's partitions

    @property
    def is_memory(self) -> bool:
        return not self.in_catalog or is_memory_type(self.type)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One Kedro node, by its fully-qualified name (``namespace.name``)."""

    name: str
    namespace: str | None = None
    tags: frozenset[str] = frozenset()
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    func: str = ""


@dataclass(frozen=True)
class PipelineGraph:
    """A registered Kedro pipeline as nodes, dependencies and dataset facts.

    ``nodes`` keep Kedro's own topological order; ``parents`` maps every node
    name to the names of the nodes it depends on (``node_dependencies``).
    """

    name: str
    nodes: tuple[NodeInfo, ...]
    parents: Mapping[str, frozenset[str]]
    datasets: Mapping[str, DatasetInfo] = field(default_factory=dict)

    def node(self, name: str) -> NodeInfo:
        return self._by_name[name]

    @cached_property
    def _by_name(self) -> dict[str, NodeInfo]:
        return {n.name: n for n in self.nodes}

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    def producers(self) -> dict[str, str]:
        """Dataset name -> the node that outputs it (Kedro allows one)."""
        return {out: n.name for n in self.nodes for out in n.outputs}

    def consumers(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for n in self.nodes:
            for ds in n.inputs:
                result.setdefault(ds, []).append(n.name)
        return result

    def free_inputs(self) -> list[str]:
        """Datasets the pipeline reads but no node of it writes."""
        produced = self.producers()
        seen: dict[str, None] = {}
        for n in self.nodes:
            for ds in n.inputs:
                if ds not in produced and not is_parameter(ds):
                    seen.setdefault(ds)
        return list(seen)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "nodes": [
                {
                    "name": n.name,
                    "namespace": n.namespace,
                    "tags": sorted(n.tags),
                    "inputs": list(n.inputs),
                    "outputs": list(n.outputs),
                    "func": n.func,
                }
                for n in self.nodes
            ],
            "parents": {k: sorted(v) for k, v in self.parents.items()},
            "datasets": {
                name: {
                    "in_catalog": d.in_catalog,
                    "type": d.type,
                    "filepath": d.filepath,
                    "protocol": d.protocol,
                    "versioned": d.versioned,
                    "credentials": list(d.credentials),
                    "partition_type": d.partition_type,
                }
                for name, d in self.datasets.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PipelineGraph:
        return cls(
            name=data["name"],
            nodes=tuple(
                NodeInfo(
                    name=n["name"],
                    namespace=n.get("namespace"),
                    tags=frozenset(n.get("tags", ())),
                    inputs=tuple(n.get("inputs", ())),
                    outputs=tuple(n.get("outputs", ())),
                    func=n.get("func", ""),
                )
                for n in data["nodes"]
            ),
            parents={k: frozenset(v) for k, v in data["parents"].items()},
            datasets={
                name: DatasetInfo(
                    name=name, **{**facts, "credentials": tuple(facts.get("credentials", ()))}
                )
                for name, facts in data.get("datasets", {}).items()
            },
        )


class KedroPipelineLike(Protocol):
    """The part of ``kedro.pipeline.Pipeline`` the compiler needs."""

    @property
    def nodes(self) -> list[Any]: ...

    @property
    def node_dependencies(self) -> dict[Any, set[Any]]: ...


def graph_from_pipeline(pipeline: KedroPipelineLike, name: str = "__default__") -> PipelineGraph:
    """Plain graph of an in-memory ``kedro.pipeline.Pipeline`` (no catalog facts)."""
    nodes = tuple(
        NodeInfo(
            name=n.name,
            namespace=getattr(n, "namespace", None),
            tags=frozenset(getattr(n, "tags", ())),
            inputs=tuple(n.inputs),
            outputs=tuple(n.outputs),
            func=getattr(getattr(n, "func", None), "__qualname__", ""),
        )
        for n in pipeline.nodes
    )
    parents = {
        child.name: frozenset(p.name for p in ps)
        for child, ps in pipeline.node_dependencies.items()
    }
    for n in nodes:
        parents.setdefault(n.name, frozenset())
    return PipelineGraph(name=name, nodes=nodes, parents=parents)


@dataclass(frozen=True, slots=True)
class Task:
    """One Batch job: the Kedro nodes it runs, in an order valid for Kedro."""

    name: str
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class TaskGraph:
    """Tasks (one or more Kedro nodes each) and the precedence between them."""

    tasks: tuple[Task, ...]
    parents: Mapping[str, frozenset[str]]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def task(self, name: str) -> Task:
        return next(t for t in self.tasks if t.name == name)

    def children(self) -> dict[str, set[str]]:
        result: dict[str, set[str]] = {t.name: set() for t in self.tasks}
        for child, ps in self.parents.items():
            for p in ps:
                result[p].add(child)
        return result

    def durations(self, node_seconds: Mapping[str, float] | None) -> dict[str, float]:
        """Expected seconds per task: its nodes run one after another."""
        return {t.name: sum((node_seconds or {}).get(n, 1.0) for n in t.nodes) for t in self.tasks}


def topological_order(names: Iterable[str], parents: Mapping[str, Collection[str]]) -> list[str]:
    """Deterministic topological order; raises ``CycleError`` naming a cycle."""
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for name in names:
        sorter.add(name, *sorted(parents.get(name, ())))
    return list(sorter.static_order())


def one_task_per_node(graph: PipelineGraph) -> TaskGraph:
    return TaskGraph(
        tasks=tuple(Task(name=n.name, nodes=(n.name,)) for n in graph.nodes),
        parents={n.name: graph.parents.get(n.name, frozenset()) for n in graph.nodes},
    )


def group_tasks(graph: PipelineGraph, groups: Sequence[Collection[str]]) -> TaskGraph:
    """Task graph where each group of nodes runs as one task.

    Groups must partition the pipeline's nodes. When fusing makes the task
    graph cyclic (A's group feeds B's group and back), the groups on each
    cycle are merged (strongly connected components), so the result is
    always a DAG that respects every node dependency.
    """
    owner: dict[str, int] = {}
    for i, group in enumerate(groups):
        for n in group:
            if n in owner:
                raise ValueError(f"node {n!r} is in two groups")
            owner[n] = i
    missing = [n.name for n in graph.nodes if n.name not in owner]
    for n in missing:
        owner[n] = len(owner) + len(groups)  # a singleton group of its own

    edges: dict[int, set[int]] = {g: set() for g in set(owner.values())}
    for child, ps in graph.parents.items():
        for p in ps:
            if owner[p] != owner[child]:
                edges[owner[p]].add(owner[child])
    component = _strongly_connected(edges)

    order = [n.name for n in graph.nodes]  # Kedro's topological order
    members: dict[int, list[str]] = {}
    for n in order:
        members.setdefault(component[owner[n]], []).append(n)
    names = task_names(graph, list(members.values()))
    tasks = {
        c: Task(name=name, nodes=tuple(ns))
        for (c, ns), name in zip(members.items(), names, strict=True)
    }
    parents: dict[str, set[str]] = {t.name: set() for t in tasks.values()}
    for child, ps in graph.parents.items():
        for p in ps:
            cp, cc = component[owner[p]], component[owner[child]]
            if cp != cc:
                parents[tasks[cc].name].add(tasks[cp].name)
    ordered = sorted(tasks.values(), key=lambda t: order.index(t.nodes[0]))
    return TaskGraph(
        tasks=tuple(ordered),
        parents={k: frozenset(v) for k, v in parents.items()},
    )


def task_names(graph: PipelineGraph, tasks: Sequence[Sequence[str]]) -> list[str]:
    """A name per task that says what it runs: its node's name; for several
    nodes of one namespace ``<namespace>.<count>-nodes``, else
    ``<first>..<last>`` (nodes in Kedro's order). Unique, and never the name
    of a node: state and job names are made from them."""
    taken = set(graph.node_names)
    names = []
    for nodes in tasks:
        if len(nodes) == 1:
            names.append(nodes[0])
            continue
        spaces = [(graph.node(n).namespace or "").split(".") for n in nodes]
        common: list[str] = []
        for parts in zip(*spaces, strict=False):
            if len(set(parts)) != 1 or not parts[0]:
                break
            common.append(parts[0])
        wanted = [f"{nodes[0]}..{nodes[-1]}"]
        if common:
            wanted.insert(0, f"{'.'.join(common)}.{len(nodes)}-nodes")
        name = next((w for w in wanted if w not in taken), None)
        n = 1
        while name is None:
            n += 1
            if f"{wanted[-1]}-{n}" not in taken:
                name = f"{wanted[-1]}-{n}"
        taken.add(name)
        names.append(name)
    return names


def _strongly_connected(edges: Mapping[int, set[int]]) -> dict[int, int]:
    """Tarjan's algorithm, iterative (pipelines can be thousands deep)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    result: dict[int, int] = {}
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[int, Iterable[int]]] = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    result[w] = v
                    if w == v:
                        break
    return result


__all__ = [
    "CycleError",
    "DatasetInfo",
    "KedroPipelineLike",
    "NodeInfo",
    "PipelineGraph",
    "Task",
    "TaskGraph",
    "graph_from_pipeline",
    "group_tasks",
    "is_parameter",
    "one_task_per_node",
    "task_names",
    "topological_order",
]
