"""Granularity: which Kedro nodes share a Batch job (``kedro-batch:grouping``).

Every Batch job pays queueing and start-up (``jobStartSeconds``) before its
first node runs, so one job per short node makes a run slow and its bill
large. This module decides the tasks: plain functions on the task graph left
by ``kedro-batch:intermediates`` (its tasks are the *atoms* here: under
``group``, the nodes joined by MemoryDatasets stay together), no Pulumi, no
Kedro.

The cost model
    A task costs ``jobStartSeconds`` and then its nodes' durations in turn.
    A run takes the makespan of the deployed machine as laid out: the
    structured layout of :func:`infra.layout.structure`, or the DAG's
    critical path in exact mode (Batch follows ``dependsOn`` itself). It
    bills every job from submission to exit, weighted by its vCPUs over the
    default profile's (an upper bound: Fargate bills from the image pull on).
    Tasks are compared by run time, then by billed job-seconds.

Strategies
    ``none``: one task per atom (one per node under ``persist``).
    ``namespace``: Kedro's ``Pipeline.group_nodes_by("namespace")``: one task
    per top-level namespace, a node without one alone; where two groups
    depend on each other they are merged, like ``intermediates: group``.
    ``auto``: without measured durations, only the fusions of
    :func:`safe_fusion`, which never lengthen a run whatever the durations;
    with them, a deterministic search (:func:`search`) from one task per node
    and from the safe fusions, whose results and the other simple strategies
    are refined on the layout they deploy as (:func:`_refine`); the best is
    kept, so it is never slower than any simple strategy and never bills
    more than one task per node.

Constraints every strategy honours: tasks stay acyclic; atoms are never
split; nodes of different job classes (a GPU node and CPU nodes, different
retry strategies) never share a task; a task's command fits Batch's
container-overrides limit (``Model.fits``); a task asks for the largest
vCPU and memory of its nodes, and the model bills it so.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Generator, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Any, Literal, TypeVar

from infra.datasets import memory_groups
from infra.graph import PipelineGraph, TaskGraph, group_tasks
from infra.layout import (
    UNITS_PER_SECOND,
    Layout,
    Leaf,
    Parallel,
    Series,
    critical_path,
    fold,
    makespan,
    normalise,
    structure_with_work,
)

Strategy = Literal["auto", "namespace", "none"]
N = TypeVar("N", bound=Hashable)
GROUPINGS: tuple[Strategy, ...] = ("auto", "namespace", "none")

# Seconds below which two run times count as equal (sums in another order).
_EPS = 1e-6
# How far apart two tasks of a critical path may be for a merge of everything
# between them to be tried.
_WINDOW = 4
# Most cut points tried when splitting one task in two.
_CUTS = 12
# Most of the search's results laid out (each costs one structured layout).
_LAID_OUT = 3
# Most parts of one ``Series`` fused into one task in one pass of
# ``_Fuser.shortest`` (its dynamic programme is quadratic in them).
_SEGMENT = 48
# Share of the budget left after refining one task per node that the search
# on the task graph's critical path may use; laying out and refining its
# results takes the rest.
_SEARCH_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class NodeCost:
    """What the model needs to know about one node."""

    seconds: float
    vcpu: float
    memory: int
    job_class: Hashable  # nodes of different classes never share a job


@dataclass(frozen=True)
class Model:
    """The cost model of one pipeline's deployment."""

    job_start: float
    mode: str  # "structured" or "exact"
    nodes: Mapping[str, NodeCost]
    # Billed weight of a job asking for this many vCPUs and MiB (1.0 for the default).
    weigh: Callable[[float, int], float] = lambda _vcpu, _memory: 1.0
    # Whether a task running these nodes fits Batch's container-overrides limit.
    fits: Callable[[Sequence[str]], bool] = lambda _nodes: True
    durations_known: bool = False


@dataclass(frozen=True, slots=True)
class Figures:
    """The model's verdict on a set of tasks."""

    seconds: float  # expected run time
    billed_job_seconds: float
    tasks: int


@dataclass(frozen=True)
class Grouping:
    """The tasks a strategy chose, their layout and the model's figures."""

    strategy: Strategy
    tasks: TaskGraph
    layout: Layout | None  # None in exact mode
    seconds: Mapping[str, float]  # model seconds per task, start-up included
    expected: Figures
    one_per_node: Figures  # the ``none`` strategy's figures, for comparison
    job_start: float
    durations_known: bool
    # Planning work spent, in units of ``budget_seconds`` (``UNITS_PER_SECOND``
    # a second): what the budget bounds, the same on any machine.
    work: float = 0.0


# --- the atoms and partitions of them -------------------------------------------


class _Atoms:
    """The indivisible units (tasks of the intermediates mode), as integers."""

    def __init__(self, graph: PipelineGraph, atoms: TaskGraph, model: Model) -> None:
        self.model = model
        # A job's weight depends on its (vCPU, memory) only: ask the model once.
        self.weigh = cache(model.weigh)
        index = {name: i for i, name in enumerate(graph.node_names)}
        by_name = {t.name: t for t in atoms.tasks}
        # Atoms numbered in a topological order (Kedro's where it can), so
        # parents have smaller numbers.
        order = _topological(
            list(atoms.names),
            {t: sorted(ps) for t, ps in atoms.parents.items()},
            key=lambda t: min(index[n] for n in by_name[t].nodes),
        )
        position = {t: i for i, t in enumerate(order)}
        self.nodes: list[tuple[str, ...]] = [
            tuple(sorted(by_name[t].nodes, key=index.__getitem__)) for t in order
        ]
        self.first = [index[ns[0]] for ns in self.nodes]
        self.parents = [sorted(position[p] for p in atoms.parents.get(t, ())) for t in order]
        self.children: list[list[int]] = [[] for _ in order]
        for child, ps in enumerate(self.parents):
            for p in ps:
                self.children[p].append(child)
        costs = [[model.nodes[n] for n in ns] for ns in self.nodes]
        self.seconds = [sum(c.seconds for c in cs) for cs in costs]
        self.vcpu = [max(c.vcpu for c in cs) for cs in costs]
        self.memory = [max(c.memory for c in cs) for cs in costs]
        self.job_class: list[Hashable] = [frozenset(c.job_class for c in cs) for cs in costs]
        self.namespace = [_top_namespace(graph, ns[0]) for ns in self.nodes]
        self.count = len(order)

    def node_names(self, members: Iterable[int]) -> list[str]:
        """The nodes of these atoms, in Kedro's order."""
        return [n for a in sorted(members, key=self.first.__getitem__) for n in self.nodes[a]]


def _top_namespace(graph: PipelineGraph, node: str) -> str | None:
    namespace = graph.node(node).namespace
    return namespace.split(".")[0] if namespace else None


class _Partition:
    """Atoms grouped into tasks, with the task graph and what the model needs.

    Task ids are integers that are never reused; ``members`` keep their atoms in
    topological order.
    """

    def __init__(self, atoms: _Atoms, groups: Iterable[Sequence[int]]) -> None:
        self.atoms = atoms
        self.members: dict[int, list[int]] = {}
        self.length: dict[int, float] = {}  # model seconds per task
        self.bill: dict[int, float] = {}  # weighted job-seconds per task
        self.owner = [-1] * atoms.count
        self.next_id = 0
        for group in groups:
            self._new(sorted(group))
        self.parents: dict[int, set[int]] = {t: set() for t in self.members}
        self.children: dict[int, set[int]] = {t: set() for t in self.members}
        for child in range(atoms.count):
            for p in atoms.parents[child]:
                a, b = self.owner[p], self.owner[child]
                if a != b:
                    self.parents[b].add(a)
                    self.children[a].add(b)

    def _new(self, members: list[int]) -> int:
        tid = self.next_id
        self.next_id += 1
        self.members[tid] = members
        self.length[tid] = self.seconds(members)
        self.bill[tid] = self.length[tid] * self.weight(members)
        for a in members:
            self.owner[a] = tid
        return tid

    def copy(self) -> _Partition:
        other = object.__new__(_Partition)
        other.atoms = self.atoms
        other.members = {t: list(ms) for t, ms in self.members.items()}
        other.length = dict(self.length)
        other.bill = dict(self.bill)
        other.owner = list(self.owner)
        other.next_id = self.next_id
        other.parents = {t: set(ps) for t, ps in self.parents.items()}
        other.children = {t: set(cs) for t, cs in self.children.items()}
        return other

    def key(self) -> frozenset[frozenset[int]]:
        return frozenset(frozenset(ms) for ms in self.members.values())

    # -- the model ----------------------------------------------------------

    def seconds(self, members: Iterable[int]) -> float:
        return self.atoms.model.job_start + sum(self.atoms.seconds[a] for a in members)

    def weight(self, members: Iterable[int]) -> float:
        ms = list(members)
        return self.atoms.weigh(
            max(self.atoms.vcpu[a] for a in ms), max(self.atoms.memory[a] for a in ms)
        )

    def billed(self) -> float:
        return sum(self.bill.values())

    def can_share(self, members: Sequence[int]) -> bool:
        """Whether these atoms may run as one task (class and overrides limit)."""
        classes = {self.atoms.job_class[a] for a in members}
        return len(classes) == 1 and self.atoms.model.fits(self.atoms.node_names(members))

    # -- changes --------------------------------------------------------------

    def merge(self, tids: Iterable[int]) -> int:
        group = set(tids)
        members = sorted(a for t in group for a in self.members.pop(t))
        for t in group:
            del self.length[t], self.bill[t]
        parents = {p for t in group for p in self.parents.pop(t)} - group
        children = {c for t in group for c in self.children.pop(t)} - group
        tid = self._new(members)
        self.parents[tid], self.children[tid] = parents, children
        for p in parents:
            self.children[p] -= group
            self.children[p].add(tid)
        for c in children:
            self.parents[c] -= group
            self.parents[c].add(tid)
        return tid

    def split(self, tid: int, parts: Sequence[Sequence[int]]) -> list[int]:
        """Replace a task by parts of it (their internal edges must be acyclic)."""
        old_parents, old_children = self.parents.pop(tid), self.children.pop(tid)
        del self.members[tid], self.length[tid], self.bill[tid]
        new = [self._new(sorted(p)) for p in parts]
        for t in new:
            self.parents[t], self.children[t] = set(), set()
        for p in old_parents:
            self.children[p].discard(tid)
        for c in old_children:
            self.parents[c].discard(tid)
        for t in new:
            for a in self.members[t]:
                for p in self.atoms.parents[a]:
                    self._link(self.owner[p], t)
                for c in self.atoms.children[a]:
                    self._link(t, self.owner[c])
        return new

    def _link(self, parent: int, child: int) -> None:
        if parent != child:
            self.children[parent].add(child)
            self.parents[child].add(parent)


@dataclass
class _Times:
    """Longest paths through a partition: ``head`` ends at a task, ``tail`` starts there."""

    order: list[int]
    position: dict[int, int]
    head: dict[int, float]
    tail: dict[int, float]
    length: float


class _Budget:
    """Work allowed and spent, in units (``UNITS_PER_SECOND`` buy about a second)."""

    def __init__(self, units: float) -> None:
        self.left = units
        self.spent = 0.0

    def spend(self, units: float) -> bool:
        self.left -= units
        self.spent += units
        return self.left > 0

    def part(self, share: float) -> _Budget:
        """A budget of ``share`` of what is left; charge it back with :meth:`spend`."""
        return _Budget(max(0.0, self.left) * share)


def _times(p: _Partition, budget: _Budget | None = None) -> _Times:
    # Kahn's algorithm, the task with the first atom first among the ready
    # (atoms are numbered topologically and each is in one task: no ties).
    members, parents, children, length = p.members, p.parents, p.children, p.length
    waiting = {t: len(ps) for t, ps in parents.items()}
    ready = [(members[t][0], t) for t, n in waiting.items() if not n]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        t = heapq.heappop(ready)[1]
        order.append(t)
        for c in children[t]:
            waiting[c] -= 1
            if not waiting[c]:
                heapq.heappush(ready, (members[c][0], c))
    if len(order) != len(members):
        raise ValueError("the groups depend on each other in a cycle")
    head: dict[int, float] = {}
    longest = 0.0
    for t in order:
        before = 0.0
        for q in parents[t]:
            if head[q] > before:
                before = head[q]
        head[t] = here = length[t] + before
        if here > longest:
            longest = here
    tail: dict[int, float] = {}
    for t in reversed(order):
        after = 0.0
        for c in children[t]:
            if tail[c] > after:
                after = tail[c]
        tail[t] = length[t] + after
    if budget is not None:
        budget.spend(len(order) + sum(map(len, parents.values())))
    return _Times(order, {t: i for i, t in enumerate(order)}, head, tail, longest)


def _topological(
    names: Sequence[N],
    parents: Mapping[N, Iterable[N]],
    key: Callable[[N], Any],
) -> list[N]:
    """Kahn's algorithm, smallest ``key`` first among the ready: deterministic.
    Raises ``ValueError`` on a cycle."""
    waiting = dict.fromkeys(names, 0)
    children: dict[N, list[N]] = {n: [] for n in names}
    for n in names:
        for q in parents.get(n, ()):
            waiting[n] += 1
            children[q].append(n)
    ready = [(key(n), i, n) for i, n in enumerate(names) if not waiting[n]]
    heapq.heapify(ready)
    rank = {n: i for i, n in enumerate(names)}
    order = []
    while ready:
        _, _, n = heapq.heappop(ready)
        order.append(n)
        for c in children[n]:
            waiting[c] -= 1
            if not waiting[c]:
                heapq.heappush(ready, (key(c), rank[c], c))
    if len(order) != len(names):
        raise ValueError("the groups depend on each other in a cycle")
    return order


# --- seeds: the simple strategies, made feasible ---------------------------------


def _pack(atoms: _Atoms, want: Sequence[Hashable]) -> list[list[int]]:
    """Groups as close to ``want`` (a wished group per atom) as the constraints allow.

    Atoms are placed in topological order; an atom joins the latest task of
    its wished group unless that would mix job classes, pass the overrides
    limit or close a cycle between tasks, and then starts a new one. Every
    atom's parents are placed before it, so joining a task only adds edges
    into it: a cycle appears exactly when the task already reaches one of the
    parents' tasks.
    """
    groups: list[list[int]] = []
    owner: list[int] = []
    children: list[set[int]] = []
    latest: dict[tuple[Hashable, Hashable], int] = {}
    for a in range(atoms.count):
        key = (want[a], atoms.job_class[a])
        g = latest.get(key)
        sources = {owner[p] for p in atoms.parents[a]}
        if g is not None:
            candidate = [*groups[g], a]
            if _reaches(children, g, sources - {g}) or not atoms.model.fits(
                atoms.node_names(candidate)
            ):
                g = None
        if g is None:
            g = len(groups)
            groups.append([])
            children.append(set())
            latest[key] = g
        groups[g].append(a)
        owner.append(g)
        for s in sources - {g}:
            children[s].add(g)
    return groups


def _reaches(children: Sequence[set[int]], start: int, targets: set[int]) -> bool:
    if not targets:
        return False
    seen = {start}
    stack = [start]
    while stack:
        for c in children[stack.pop()]:
            if c in targets:
                return True
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return False


def _cycle_safe(atoms: _Atoms, graph: PipelineGraph, want: Sequence[Hashable]) -> list[list[int]]:
    """``want``'s groups, merged where they depend on each other in a cycle
    (``intermediates: group``'s rule); where that merge would break a
    constraint, the groups are packed (:func:`_pack`) instead."""
    wished: dict[Hashable, list[str]] = {}
    for a in range(atoms.count):
        wished.setdefault((want[a], atoms.job_class[a]), []).extend(atoms.nodes[a])
    merged = group_tasks(graph, list(wished.values()))
    atom_of = {n: a for a in range(atoms.count) for n in atoms.nodes[a]}
    groups = [sorted({atom_of[n] for n in t.nodes}) for t in merged.tasks]
    probe = _Partition(atoms, groups)
    if all(probe.can_share(g) for g in groups):
        return groups
    return _pack(atoms, want)


def _namespace_groups(atoms: _Atoms, graph: PipelineGraph) -> list[list[int]]:
    """Kedro's ``group_nodes_by("namespace")``: one group per top-level
    namespace, a node without one alone. An atom (nodes ``intermediates:
    group`` keeps together) counts with its first node's namespace. Unlike
    Kedro's, a node named like a namespace is not put in that namespace."""
    want: list[Hashable] = [
        ("namespace", ns) if ns else ("atom", a) for a, ns in enumerate(atoms.namespace)
    ]
    return _cycle_safe(atoms, graph, want)


def _memory_groups(atoms: _Atoms, graph: PipelineGraph) -> list[list[int]]:
    """kedro-airflow's ``--group-by memory``: nodes joined by MemoryDatasets."""
    atom_of = {n: a for a in range(atoms.count) for n in atoms.nodes[a]}
    want: list[Hashable] = [("atom", a) for a in range(atoms.count)]
    for i, group in enumerate(memory_groups(graph)):
        for n in group:
            want[atom_of[n]] = ("memory", i)
    return _cycle_safe(atoms, graph, want)


def _one_job(atoms: _Atoms) -> list[list[int]]:
    """Everything in one job, as far as the constraints allow."""
    return _pack(atoms, [0] * atoms.count)


# --- the fusions that never lengthen a run -----------------------------------------


def safe_fusion(atoms: _Atoms, layout: Layout | None) -> tuple[list[list[int]], Layout | None]:
    """Fuse only what can never lengthen the run, whatever the durations.

    Structured mode (``layout`` is the one-task-per-atom machine's): two tasks
    that are consecutive leaves of one ``Series`` of the layout become one
    task in that place. Every chain of precedence through the layout that
    contains one of them contains the other right after it (that is what
    consecutive parts of a series are), so each chain through them loses one
    start-up and keeps every second of work, and every other chain is
    unchanged: for any durations and any ``jobStartSeconds`` >= 0, the fused
    layout's makespan is at most the original's. The fused layout is valid
    for the fused task graph because what precedes the second task in the
    layout precedes the first too, and what follows the first follows the
    second.

    Exact mode (``layout`` None; the run is the critical path of the task
    DAG): a task whose only child has it as its only parent is fused with
    that child. Every maximal path through one passes through the other, so
    again each such path loses one start-up and no path gains anything.

    Fusions also require equal vCPU, memory and job class (so the bill only
    loses a start-up too) and a command within the overrides limit. The rule
    is applied until nothing changes (chains collapse into one task).

    ``layout``'s leaves are atom numbers (as strings); so are the returned
    layout's, numbering the returned groups.
    """
    if layout is None:
        return _fuse_exact_chains(atoms), None

    def same_resources(a: list[int], b: list[int]) -> bool:
        first, second = a[0], b[0]
        return (
            atoms.vcpu[first] == atoms.vcpu[second]
            and atoms.memory[first] == atoms.memory[second]
            and atoms.job_class[first] == atoms.job_class[second]
            and atoms.model.fits(atoms.node_names([*a, *b]))
        )

    return _fuse_series([[a] for a in range(atoms.count)], layout, same_resources)


def _fuse_series(
    groups: Sequence[list[int]],
    layout: Layout,
    mergeable: Callable[[list[int], list[int]], bool],
) -> tuple[list[list[int]], Layout]:
    """Merge consecutive leaves of every ``Series`` of ``layout`` (leaves:
    group indices as strings) where ``mergeable`` allows: see
    :func:`safe_fusion` for why that never lengthens the layout's makespan."""
    keyed: dict[str, list[int]] = {str(i): list(g) for i, g in enumerate(groups)}
    counter = 0

    def series(parts: list[Layout]) -> Layout:
        nonlocal counter
        fused: list[Layout] = []
        for part in parts:
            last = fused[-1] if fused else None
            if (
                isinstance(part, Leaf)
                and isinstance(last, Leaf)
                and mergeable(keyed[last.task], keyed[part.task])
            ):
                counter += 1
                key = f"\0fused{counter}"
                keyed[key] = keyed.pop(last.task) + keyed.pop(part.task)
                fused[-1] = Leaf(key)
            else:
                fused.append(part)
        return Series(tuple(fused))

    fused_layout = normalise(
        fold(layout, lambda leaf: leaf, series, lambda bs: Parallel(tuple(bs)))
    )
    order = {leaf: i for i, leaf in enumerate(_leaves(fused_layout))}
    ranked = sorted(keyed.items(), key=lambda kv: order[kv[0]])
    return [sorted(g) for _, g in ranked], _rename(
        fused_layout, {k: str(i) for i, (k, _) in enumerate(ranked)}
    )


def _leaves(layout: Layout) -> list[str]:
    return fold(layout, lambda leaf: [leaf.task], _concat, _concat)


def _concat(lists: list[list[str]]) -> list[str]:
    return [x for xs in lists for x in xs]


def _rename(layout: Layout, names: Mapping[str, str]) -> Layout:
    def leaf(node: Leaf) -> Layout:
        return Leaf(names[node.task])

    def series(parts: list[Layout]) -> Layout:
        return Series(tuple(parts))

    def parallel(branches: list[Layout]) -> Layout:
        return Parallel(tuple(branches))

    return fold(layout, leaf, series, parallel)


def _fuse_exact_chains(atoms: _Atoms) -> list[list[int]]:
    p = _Partition(atoms, [[a] for a in range(atoms.count)])
    changed = True
    while changed:
        changed = False
        for t in sorted(p.members, key=lambda t: p.members[t][0]):
            if t not in p.members or len(p.children[t]) != 1:
                continue
            (c,) = p.children[t]
            if p.parents[c] != {t}:
                continue
            a, b = p.members[t][0], p.members[c][0]
            same = (atoms.vcpu[a], atoms.memory[a], atoms.job_class[a]) == (
                atoms.vcpu[b],
                atoms.memory[b],
                atoms.job_class[b],
            )
            if same and p.can_share([*p.members[t], *p.members[c]]):
                p.merge((t, c))
                changed = True
    return [p.members[t] for t in sorted(p.members, key=lambda t: p.members[t][0])]


# --- the search (durations known) -------------------------------------------------


def search(seeds: Sequence[_Partition], budget: _Budget) -> list[_Partition]:
    """Improve every seed by local moves; deterministic, within ``budget``.

    Each seed gets an equal share of the work. A descent alternates two
    phases until neither changes anything:

    - *run time*: on one critical path of the task graph, merge two tasks at
      most ``_WINDOW`` apart together with every task between them (a convex
      set, so the result stays acyclic: an edge contraction when they are
      adjacent), merge a task with all its children or all its parents
      (sibling merges), or split a task of the path in two (its independent
      parts, or a prefix and suffix of its topological order); the move that
      shortens the critical path most is applied.
    - *bill*: merge adjacent tasks (an edge, or siblings: consecutive
      children of one parent, parents of one child, sources, sinks) wherever
      that saves billed job-seconds and no path through the merged task gets
      longer than the critical path.

    The critical path (a lower bound of the structured layout's makespan) is
    what the descent optimises; the candidates are then judged on the real
    layout by :func:`group`. Merges that keep the critical path can still
    cost the structured layout (a less series-parallel graph needs more added
    precedence), so each descent also hands back where its first run-time
    phase ended, before any merge for the bill.
    """
    share = max(0.0, budget.left) / max(1, len(seeds))
    found: list[_Partition] = []
    for seed in seeds:
        own = _Budget(share)
        found += _descend(seed.copy(), own)
        budget.spend(own.spent)
    return found


def _descend(p: _Partition, budget: _Budget) -> list[_Partition]:
    found: list[_Partition] = []
    while budget.left > 0:
        tm = _times(p, budget)
        if _time_step(p, tm, budget):
            continue
        if not found:
            found.append(p.copy())
        if not _billing_pass(p, tm, budget):
            break
    return [*found, p]


def _critical(p: _Partition, tm: _Times) -> list[int]:
    """One longest path, from a source to a sink."""
    start = max(
        (t for t in tm.order if not p.parents[t]), key=lambda t: (tm.tail[t], -tm.position[t])
    )
    path = [start]
    while p.children[path[-1]]:
        rest = tm.tail[path[-1]] - p.length[path[-1]]
        path.append(
            min(
                (c for c in p.children[path[-1]] if abs(tm.tail[c] - rest) <= _EPS * max(1, rest)),
                key=tm.position.__getitem__,
            )
        )
    return path


def _closure(p: _Partition, tm: _Times, group: set[int], budget: _Budget) -> set[int]:
    """``group`` and every task on a path between two of its tasks (convex, so
    merging it keeps the task graph acyclic)."""
    position = tm.position
    low = min(position[t] for t in group)
    high = max(position[t] for t in group)
    below = _reach(group, p.children, position, low, high)
    above = _reach(group, p.parents, position, low, high)
    budget.spend(len(below) + len(above))
    return group | (below & above)


def _reach(
    starts: set[int],
    edges: Mapping[int, set[int]],
    position: Mapping[int, int],
    low: int,
    high: int,
) -> set[int]:
    """Tasks reachable from ``starts`` along ``edges`` without leaving the
    positions ``low``..``high`` of a topological order (a path between two
    tasks never does)."""
    seen = set(starts)
    stack = list(starts)
    while stack:
        for n in edges[stack.pop()]:
            if n not in seen and low <= position[n] <= high:
                seen.add(n)
                stack.append(n)
    return seen


def _through_merge(p: _Partition, tm: _Times, group: set[int], members: list[int]) -> float:
    """Longest path through the task ``group`` would become."""
    before = max((tm.head[q] for t in group for q in p.parents[t] if q not in group), default=0.0)
    after = max((tm.tail[c] for t in group for c in p.children[t] if c not in group), default=0.0)
    return before + p.seconds(members) + after


def _splits(p: _Partition, t: int) -> list[list[list[int]]]:
    """Ways to split task ``t`` in parts whose own edges are acyclic."""
    members = p.members[t]
    inside = set(members)
    root = {a: a for a in members}

    def find(a: int) -> int:
        while root[a] != a:
            root[a] = root[root[a]]
            a = root[a]
        return a

    for a in members:
        for q in p.atoms.parents[a]:
            if q in inside:
                root[find(a)] = find(q)
    components: dict[int, list[int]] = {}
    for a in members:
        components.setdefault(find(a), []).append(a)
    found = [list(components.values())] if len(components) > 1 else []
    step = max(1, (len(members) - 1) // _CUTS)
    cuts = sorted({*range(1, len(members), step), len(members) - 1})
    found += [[members[:k], members[k:]] for k in cuts if 0 < k < len(members)]
    return found


def _through_split(p: _Partition, tm: _Times, t: int, parts: list[list[int]]) -> float:
    """Longest path through the parts ``t`` would become (parts in a
    topological order of their own edges)."""
    part_of = {a: i for i, part in enumerate(parts) for a in part}
    head: list[float] = []
    for part in parts:
        before = 0.0
        for a in part:
            for q in p.atoms.parents[a]:
                i = part_of.get(q)
                if i is None:
                    before = max(before, tm.head[p.owner[q]])
                elif i != len(head):
                    before = max(before, head[i])
        head.append(before + p.seconds(part))
    tail = [0.0] * len(parts)
    for i in reversed(range(len(parts))):
        after = 0.0
        for a in parts[i]:
            for c in p.atoms.children[a]:
                j = part_of.get(c)
                if j is None:
                    after = max(after, tm.tail[p.owner[c]])
                elif j != i:
                    after = max(after, tail[j])
        tail[i] = after + p.seconds(parts[i])
    return max(h + tl - p.seconds(part) for h, tl, part in zip(head, tail, parts, strict=True))


def _time_step(p: _Partition, tm: _Times, budget: _Budget) -> bool:
    """Apply the move that shortens the critical path most, if any does."""
    path = _critical(p, tm)
    limit = tm.length - _EPS * max(1.0, tm.length)
    moves: list[tuple[float, int, set[int] | tuple[int, list[list[int]]]]] = []
    groups = [
        _closure(p, tm, {x, y}, budget)
        for i, x in enumerate(path)
        for y in path[i + 1 : i + 1 + _WINDOW]
    ]
    # Stars: a task with all its children, or all its parents (they then run
    # one after another in one job, without a start-up each).
    groups += [_closure(p, tm, {x, *p.children[x]}, budget) for x in path if len(p.children[x]) > 1]
    groups += [_closure(p, tm, {x, *p.parents[x]}, budget) for x in path if len(p.parents[x]) > 1]
    for group in groups:
        members = sorted(a for t in group for a in p.members[t])
        through = _through_merge(p, tm, group, members)
        if through < limit and len({p.atoms.job_class[a] for a in members}) == 1:
            moves.append((through, len(moves), group))
    for x in path:
        if len(p.members[x]) > 1:
            for parts in _splits(p, x):
                budget.spend(len(p.members[x]))
                through = _through_split(p, tm, x, parts)
                if through < limit:
                    moves.append((through, len(moves), (x, parts)))
    moves.sort(key=lambda m: (m[0], m[1]))  # the most promising first
    best: tuple[float, float, _Partition] | None = None
    for through, _, move in moves:
        # A move's path through it bounds its critical path from below.
        if (best is not None and through >= best[0]) or budget.left <= 0:
            break
        if isinstance(move, set) and not p.can_share([a for t in move for a in p.members[t]]):
            continue
        q = p.copy()
        budget.spend(len(p.members) + p.atoms.count)  # the copy
        if isinstance(move, set):
            q.merge(move)
        else:
            q.split(*move)
        length = _times(q, budget).length
        if length < limit and (best is None or (length, q.billed()) < best[:2]):
            best = (length, q.billed(), q)
    if best is None:
        return False
    chosen = best[2]
    p.members, p.owner, p.next_id = chosen.members, chosen.owner, chosen.next_id
    p.length, p.bill = chosen.length, chosen.bill
    p.parents, p.children = chosen.parents, chosen.children
    return True


def _billing_pass(p: _Partition, tm: _Times, budget: _Budget) -> bool:
    """Merge neighbours that bill less together, where no path gets longer than
    the critical path; ``True`` if anything merged."""
    pairs: list[tuple[int, int]] = []
    by_position = tm.position.__getitem__
    for t in tm.order:
        pairs += [(t, c) for c in sorted(p.children[t], key=by_position)]
    for t in tm.order:
        for family in (p.children[t], p.parents[t]):
            ordered = sorted(family, key=by_position)
            pairs += list(pairwise(ordered))
    for ends in (
        [t for t in tm.order if not p.parents[t]],
        [t for t in tm.order if not p.children[t]],
    ):
        pairs += list(pairwise(ends))
    merged = False
    limit = tm.length + _EPS * max(1.0, tm.length)
    for x, y in pairs:
        if budget.left <= 0:
            break
        if x not in p.members or y not in p.members or x == y:
            continue
        group = _closure(p, tm, {x, y}, budget)
        members = sorted(a for t in group for a in p.members[t])
        billed = sum(p.length[t] * p.weight(p.members[t]) for t in group)
        if p.seconds(members) * p.weight(members) >= billed - _EPS:
            continue
        if _through_merge(p, tm, group, members) > limit or not p.can_share(members):
            continue
        p.merge(group)
        merged = True
        tm = _times(p, budget)
    return merged


# --- fusing within a layout (durations known, structured mode) ---------------------


@dataclass(frozen=True, slots=True)
class _Block:
    """A subtree of a layout: what it costs and what fusing it into one task needs."""

    layout: Layout  # leaves: keys of ``_Fuser.groups``
    value: float  # makespan, start-ups included
    work: float  # its nodes' seconds, without start-ups
    billed: float  # its jobs' weighted job-seconds
    vcpu: float
    memory: int
    classes: frozenset[Hashable]
    parts: tuple[_Block, ...] = ()  # none: one task


class _Fuser:
    """Fusions a given layout allows, chosen by the makespan and then the bill.

    Replacing a subtree of an SP layout, or consecutive parts of one of its
    ``Series``, by one task that runs all their nodes keeps the layout valid
    for the fused tasks: whatever precedes (follows) one of those tasks in the
    layout precedes (follows) all of them, because it sits outside the
    subtree or segment. So such fusions never need a new layout nor can they
    close a cycle, and the run time of each choice is known exactly; the
    deployed machine's time is then what :func:`_refine` minimises, not the
    critical path of the task graph.

    :meth:`shortest` is a dynamic programme over the layout, bottom-up: a
    ``Series`` is cut into consecutive segments, each run as it is or fused
    (one start-up, then every node of the segment), whichever sums to the
    least time, then the smallest bill; a subtree is fused whole where that
    is faster. No fusion raises the bill (a ``large`` node fused with small
    ones bills them at its size), so neither does refining. :meth:`trimmed`
    then spends the slack the result leaves (every branch of a ``Parallel``
    but the longest, and the longest within its own series) on fusions that
    lower the bill without lengthening the run: neighbours of a series, and
    side branches a ``Parallel`` waits for anyway, packed into as few jobs as
    fit beside the longest.
    """

    def __init__(self, atoms: _Atoms, budget: _Budget) -> None:
        self.atoms = atoms
        self.start = atoms.model.job_start
        self.budget = budget
        self.groups: dict[str, list[int]] = {}

    # -- blocks ----------------------------------------------------------------

    def task(self, members: list[int]) -> _Block:
        atoms = self.atoms
        key = str(len(self.groups))
        self.groups[key] = members
        work = sum(atoms.seconds[a] for a in members)
        vcpu = max(atoms.vcpu[a] for a in members)
        memory = max(atoms.memory[a] for a in members)
        value = self.start + work
        classes = frozenset(atoms.job_class[a] for a in members)
        return _Block(
            Leaf(key), value, work, value * atoms.weigh(vcpu, memory), vcpu, memory, classes
        )

    def combine(self, parts: Sequence[_Block], series: bool) -> _Block:
        if len(parts) == 1:
            return parts[0]
        layouts = tuple(b.layout for b in parts)
        return _Block(
            Series(layouts) if series else Parallel(layouts),
            sum(b.value for b in parts) if series else max(b.value for b in parts),
            sum(b.work for b in parts),
            sum(b.billed for b in parts),
            max(b.vcpu for b in parts),
            max(b.memory for b in parts),
            frozenset().union(*(b.classes for b in parts)),
            tuple(parts),
        )

    def fused_bill(self, work: float, vcpu: float, memory: int) -> float:
        return (self.start + work) * self.atoms.weigh(vcpu, memory)

    def members(self, parts: Sequence[_Block]) -> list[int]:
        """The atoms of ``parts``, sorted."""
        members: list[int] = []
        stack = list(parts)
        while stack:
            block = stack.pop()
            if block.parts:
                stack.extend(block.parts)
            else:
                assert isinstance(block.layout, Leaf)
                members += self.groups[block.layout.task]
        self.budget.spend(len(members))
        return sorted(members)

    def fuse(self, parts: Sequence[_Block]) -> _Block | None:
        """One task running every node of ``parts``, if the overrides limit allows
        (the caller checked the job classes)."""
        members = self.members(parts)
        if not self.atoms.model.fits(self.atoms.node_names(members)):
            return None
        return self.task(members)

    # -- the fastest fusions ------------------------------------------------------

    def shortest(self, layout: Layout, groups: Mapping[str, list[int]]) -> _Block:
        return fold(
            layout,
            lambda leaf: self.task(list(groups[leaf.task])),
            self._series,
            lambda branches: self._whole(self.combine(branches, series=False)),
        )

    def _whole(self, block: _Block) -> _Block:
        """``block``, or one task running all of it where that is faster and
        bills no more."""
        if (
            len(block.parts) > 1
            and len(block.classes) == 1
            and self.start + block.work < block.value - _EPS * max(1.0, block.value)
            and self.fused_bill(block.work, block.vcpu, block.memory) <= block.billed + _EPS
        ):
            return self.fuse(block.parts) or block
        return block

    def _series(self, parts: list[_Block]) -> _Block:
        """The best cut of a series into segments, each fused or left alone
        (segments of at most ``_SEGMENT`` parts)."""
        count = len(parts)
        self.budget.spend(count * min(count, _SEGMENT))
        best: list[tuple[float, float]] = [(0.0, 0.0)]  # value, bill of parts[:j]
        chosen: list[tuple[int, _Block | None]] = [(0, None)]  # segment parts[i:j], fused
        for j in range(1, count + 1):
            last = parts[j - 1]
            choice = (best[j - 1][0] + last.value, best[j - 1][1] + last.billed)
            pick: tuple[int, _Block | None] = (j - 1, None)
            work, vcpu, memory, classes = last.work, last.vcpu, last.memory, last.classes
            billed = last.billed
            for i in range(j - 2, max(-1, j - 1 - _SEGMENT), -1):
                part = parts[i]
                work += part.work
                vcpu, memory = max(vcpu, part.vcpu), max(memory, part.memory)
                classes = classes | part.classes
                if len(classes) > 1:
                    break  # a longer segment mixes job classes too
                billed += part.billed
                bill = self.fused_bill(work, vcpu, memory)
                option = (best[i][0] + self.start + work, best[i][1] + bill)
                if bill > billed + _EPS or not _ahead(option, choice):
                    continue  # never a fusion that raises the bill
                fused = self.fuse(parts[i:j])
                if fused is None:
                    break  # a longer segment's command is longer still
                choice, pick = option, (i, fused)
            best.append(choice)
            chosen.append(pick)
        out: list[_Block] = []
        j = count
        while j > 0:
            i, fused = chosen[j]
            out.append(fused if fused is not None else parts[i])
            j = i
        out.reverse()
        return self._whole(self.combine(out, series=True))

    # -- the cheapest within the time ---------------------------------------------

    def trimmed(self, root: _Block) -> _Block:
        """``root`` with fusions that lower the bill and keep its makespan.

        Each subtree may take as long as its place in the layout allows; a
        coroutine per subtree (on an explicit stack: layouts nest thousands
        deep) asks for its parts in turn, so a series hands the slack its
        first parts leave to the next."""
        stack = [self._trim(root, root.value)]
        result: _Block | None = None
        while stack:
            try:
                # A new coroutine starts with next(); a waiting one gets its part.
                block, allowed = next(stack[-1]) if result is None else stack[-1].send(result)
            except StopIteration as done:
                stack.pop()
                result = done.value
            else:
                stack.append(self._trim(block, allowed))
                result = None
        assert result is not None
        return result

    def _trim(
        self, block: _Block, allowed: float
    ) -> Generator[tuple[_Block, float], _Block, _Block]:
        if not block.parts:
            return block
        if isinstance(block.layout, Parallel):
            branches = []
            for packed in self._packed(block.parts, allowed):
                if packed.parts:  # one branch: trimmed within itself
                    packed = yield packed, allowed
                branches.append(packed)
            return self.combine(branches, series=False)
        slack = allowed - block.value
        parts = block.parts
        out: list[_Block] = []
        i = 0
        while i < len(parts):
            found = self._cheaper_segment(parts, i, slack)
            if found is not None:
                fused, j = found
                slack -= fused.value - sum(p.value for p in parts[i:j])
                out.append(fused)
                i = j
                continue
            trimmed = yield parts[i], parts[i].value + slack
            slack -= trimmed.value - parts[i].value
            out.append(trimmed)
            i += 1
        return self.combine(out, series=True)

    def _cheaper_segment(
        self, parts: Sequence[_Block], i: int, slack: float
    ) -> tuple[_Block, int] | None:
        """The longest segment from ``parts[i]`` that bills less as one task and
        fits in ``slack``: the fused task and where the segment ends."""
        ends: list[int] = []
        work = value = billed = 0.0
        vcpu, memory, classes = parts[i].vcpu, parts[i].memory, parts[i].classes
        for j in range(i, min(len(parts), i + _SEGMENT)):
            part = parts[j]
            work, value, billed = work + part.work, value + part.value, billed + part.billed
            vcpu, memory = max(vcpu, part.vcpu), max(memory, part.memory)
            classes = classes | part.classes
            if len(classes) > 1:
                break
            if (
                j > i
                and self.start + work - value <= slack + _EPS * max(1.0, value)
                and self.fused_bill(work, vcpu, memory) < billed - _EPS
            ):
                ends.append(j + 1)
        self.budget.spend(min(len(parts) - i, _SEGMENT))
        for j in reversed(ends):  # a segment that fails the limit fails longer
            fused = self.fuse(parts[i:j])
            if fused is not None:
                return fused, j
        return None

    def _packed(self, branches: Sequence[_Block], allowed: float) -> list[_Block]:
        """Branches of a ``Parallel`` packed first-fit, largest work first, into
        jobs that bill less and end within ``allowed``: a fused task per job of
        several branches, the branch itself otherwise; in branch order."""
        order = sorted(range(len(branches)), key=lambda b: (-branches[b].work, b))
        bins: list[tuple[list[int], _Block]] = []  # branch indices, their job
        for b in order:
            branch = branches[b]
            for k, (packed, job) in enumerate(bins):
                self.budget.spend(1)
                work = job.work + branch.work
                if (
                    job.classes == branch.classes
                    and len(job.classes) == 1
                    and self.start + work <= allowed + _EPS * max(1.0, allowed)
                    and self.fused_bill(
                        work, max(job.vcpu, branch.vcpu), max(job.memory, branch.memory)
                    )
                    < job.billed + branch.billed - _EPS
                ):
                    fused = self.fuse([job, branch])
                    if fused is not None:
                        bins[k] = ([*packed, b], fused)
                        break
            else:
                bins.append(([b], branch))
        return [job for _, job in sorted(bins, key=lambda kv: min(kv[0]))]

    def result(self, root: _Block) -> tuple[list[list[int]], Layout]:
        """The groups and layout of ``root`` (leaves: group indices as strings)."""
        layout = normalise(root.layout)
        keys = _leaves(layout)
        return [self.groups[k] for k in keys], _rename(
            layout, {k: str(i) for i, k in enumerate(keys)}
        )


def _ahead(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether (run time, bill) ``a`` beats ``b``: faster, or as fast and cheaper."""
    tie = abs(a[0] - b[0]) <= _EPS * max(1.0, b[0])
    return (not tie and a[0] < b[0]) or (tie and a[1] < b[1] - _EPS)


# --- choosing and naming ------------------------------------------------------------


@dataclass
class _Candidate:
    groups: list[list[int]]
    tasks: TaskGraph
    seconds: dict[str, float]
    layout: Layout | None
    figures: Figures


def _task_graph(atoms: _Atoms, graph: PipelineGraph, groups: Sequence[Sequence[int]]) -> TaskGraph:
    return group_tasks(graph, [atoms.node_names(g) for g in groups])


def _evaluate(
    atoms: _Atoms,
    graph: PipelineGraph,
    groups: Sequence[Sequence[int]],
    layout: Layout | None = None,
    budget: _Budget | None = None,
) -> _Candidate:
    """The model's figures for these groups; ``layout`` (leaves: group indices
    as strings) is used as given, else the structured layout is searched (and
    its work charged to ``budget``)."""
    model = atoms.model
    tasks = _task_graph(atoms, graph, groups)
    by_first = {atoms.node_names(g)[0]: (i, g) for i, g in enumerate(groups)}
    ordered = [list(by_first[t.nodes[0]][1]) for t in tasks.tasks]
    probe = _Partition(atoms, ordered)
    seconds = {t.name: probe.seconds(g) for t, g in zip(tasks.tasks, ordered, strict=True)}
    billed = sum(
        seconds[t.name] * probe.weight(g) for t, g in zip(tasks.tasks, ordered, strict=True)
    )
    if budget is not None:
        budget.spend(2 * atoms.count + 2 * len(tasks.tasks))
    if model.mode == "exact":
        run = critical_path(tasks.names, tasks.parents, seconds)
        chosen: Layout | None = None
    else:
        if layout is not None:
            chosen = _rename(layout, {str(by_first[t.nodes[0]][0]): t.name for t in tasks.tasks})
        else:
            chosen, work = structure_with_work(tasks.names, tasks.parents, seconds)
            if budget is not None:
                budget.spend(work)
        run = makespan(chosen, seconds)
    return _Candidate(ordered, tasks, seconds, chosen, Figures(run, billed, len(groups)))


def group(
    graph: PipelineGraph,
    atoms: TaskGraph,
    strategy: Strategy,
    model: Model,
    *,
    budget_seconds: float = 1.0,
) -> Grouping:
    """The tasks that run ``graph`` under ``strategy``, laid out, with figures.

    ``atoms`` is the task graph of the intermediates mode: its tasks are never
    split. ``budget_seconds`` is roughly the CPU time ``auto``'s search may
    use (counted in work, so the result never depends on the machine).
    """
    units = _Atoms(graph, atoms, model)
    singles = [[a] for a in range(units.count)]
    budget = _Budget(budget_seconds * UNITS_PER_SECOND)
    none = _evaluate(units, graph, singles, budget=budget)
    if strategy == "none":
        chosen = none
    elif strategy == "namespace":
        chosen = _evaluate(units, graph, _namespace_groups(units, graph), budget=budget)
    elif not model.durations_known:
        groups, fused = safe_fusion(units, _by_atom(none))
        chosen = _evaluate(units, graph, groups, layout=fused, budget=budget)
    else:
        chosen = _auto(units, graph, none, budget)
    return _grouping(strategy, chosen, none, model, work=budget.spent)


def _grouping(
    strategy: Strategy, chosen: _Candidate, none: _Candidate, model: Model, *, work: float = 0.0
) -> Grouping:
    return Grouping(
        strategy=strategy,
        tasks=chosen.tasks,
        layout=chosen.layout,
        seconds=chosen.seconds,
        expected=chosen.figures,
        one_per_node=none.figures,
        job_start=model.job_start,
        durations_known=model.durations_known,
        work=work,
    )


def _by_atom(none: _Candidate) -> Layout | None:
    """The one-task-per-atom layout with atom numbers for leaves."""
    if none.layout is None:
        return None
    names = {t.name: str(g[0]) for t, g in zip(none.tasks.tasks, none.groups, strict=True)}
    return _rename(none.layout, names)


def _refine(
    atoms: _Atoms, graph: PipelineGraph, candidate: _Candidate, budget: _Budget
) -> _Candidate:
    """``candidate`` improved on its own layout: the fastest fusions the layout
    allows (:class:`_Fuser`), then a new layout of the fused tasks (less work
    than before, often less added precedence), and again while that helps;
    last, the fusions that only lower the bill."""
    best = candidate
    while best.layout is not None and budget.left > 0:
        fused = _fused(atoms, graph, best, budget, trim=False)
        if fused is None or budget.left <= 0:
            break
        relaid = _evaluate(atoms, graph, fused.groups, budget=budget)
        if _better(fused, relaid) is fused:
            best = _better(best, fused)  # the fusions are all this layout allows
            break
        best = relaid
    return _fused(atoms, graph, best, budget, trim=True) or best


def _fused(
    atoms: _Atoms, graph: PipelineGraph, candidate: _Candidate, budget: _Budget, *, trim: bool
) -> _Candidate | None:
    """``candidate`` with the fusions its layout allows (:class:`_Fuser`): the
    fastest, and with ``trim`` those that lower the bill within the run's
    time; None if there are none."""
    if candidate.layout is None:
        return None
    fuser = _Fuser(atoms, budget)
    index = {t.name: str(i) for i, t in enumerate(candidate.tasks.tasks)}
    root = fuser.shortest(
        _rename(candidate.layout, index), dict(zip(index.values(), candidate.groups, strict=True))
    )
    if trim:
        root = fuser.trimmed(root)
    groups, layout = fuser.result(root)
    if len(groups) == len(candidate.groups):
        return None
    return _evaluate(atoms, graph, groups, layout=layout, budget=budget)


def _auto(atoms: _Atoms, graph: PipelineGraph, none: _Candidate, budget: _Budget) -> _Candidate:
    """The best of the simple strategies and of the search from each of them.

    Laying a candidate out is the expensive step, so candidates are laid out
    in order of their critical path (a lower bound of their makespan), and
    only while that bound can beat the best so far; at most ``_LAID_OUT`` of
    the search's results are laid out, but every simple strategy that can
    still win is, so ``auto`` is never slower than any of them. The safe
    fusions need no search: their layout is one task per node's, contracted.
    Each candidate laid out is then refined on its own layout
    (:func:`_refine`), where the run's time is what the machine will take.
    """
    safe_groups, safe_layout = safe_fusion(atoms, _by_atom(none))
    best = _better(none, _evaluate(atoms, graph, safe_groups, layout=safe_layout))
    best = _better(best, _refine(atoms, graph, none, budget))
    simple = [
        [[a] for a in range(atoms.count)],
        safe_groups,
        _namespace_groups(atoms, graph),
        _memory_groups(atoms, graph),
        _one_job(atoms),
    ]
    seeds = [_Partition(atoms, g) for g in simple]
    share = budget.part(_SEARCH_SHARE)
    found = search(seeds[:2], share)
    budget.spend(share.spent)
    done = {seeds[0].key(), seeds[1].key()}  # evaluated above
    limit = none.figures.billed_job_seconds * (1 + 1e-9)
    pools = [(True, seeds[2:]), (False, found)]
    ranked = sorted(
        (_times(p, budget).length, is_simple, i, p)
        for is_simple, pool in pools
        for i, p in enumerate(pool)
        if p.billed() <= limit
    )
    laid_out = 0
    for length, is_simple, _, p in ranked:
        if length > best.figures.seconds * (1 + 1e-9) + _EPS:
            break
        if p.key() in done or (not is_simple and (laid_out >= _LAID_OUT or budget.left <= 0)):
            continue
        done.add(p.key())
        laid_out += not is_simple
        groups = [p.members[t] for t in sorted(p.members, key=lambda t: p.members[t][0])]
        laid = _evaluate(atoms, graph, groups, budget=budget)
        best = _better(best, _refine(atoms, graph, laid, budget))
    return best


def _better(best: _Candidate, candidate: _Candidate) -> _Candidate:
    """The faster, then the cheaper (equal within float noise)."""
    a, b = candidate.figures, best.figures
    tie = abs(a.seconds - b.seconds) <= _EPS * max(1.0, b.seconds)
    if (not tie and a.seconds < b.seconds) or (
        tie and a.billed_job_seconds < b.billed_job_seconds - _EPS
    ):
        return candidate
    return best


def compare(
    graph: PipelineGraph, atoms: TaskGraph, model: Model, *, budget_seconds: float = 1.0
) -> dict[str, Grouping]:
    """Every strategy the model can judge, for benchmarks and reviews: ``auto``,
    ``namespace``, ``none``, ``memory`` (kedro-airflow's ``--group-by memory``)
    and ``one-job`` (everything in as few jobs as the constraints allow)."""
    units = _Atoms(graph, atoms, model)
    none = _evaluate(units, graph, [[a] for a in range(units.count)])
    result = {
        "auto": group(graph, atoms, "auto", model, budget_seconds=budget_seconds),
        "namespace": group(graph, atoms, "namespace", model),
        "none": group(graph, atoms, "none", model),
    }
    for name, groups in (
        ("memory", _memory_groups(units, graph)),
        ("one-job", _one_job(units)),
    ):
        result[name] = _grouping("none", _evaluate(units, graph, groups), none, model)
    return result
