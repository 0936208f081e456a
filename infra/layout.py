"""Series-parallel layouts of a task DAG, for Step Functions' fork/join.

Step Functions can only fan out and in through ``Parallel`` states, which
wait for every branch, so a state machine's precedence is always a
series-parallel (SP) order. A DAG that is not SP needs extra precedence, and
every added constraint can delay the run; this module chooses the layout.

A layout is a tree: ``Leaf`` (one task), ``Series`` (children one after
another) or ``Parallel`` (children side by side, joined at the end).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Leaf:
    task: str


@dataclass(frozen=True, slots=True)
class Series:
    parts: tuple[Layout, ...]


@dataclass(frozen=True, slots=True)
class Parallel:
    branches: tuple[Layout, ...]


Layout = Leaf | Series | Parallel


def leaves(layout: Layout) -> list[str]:
    """Tasks of a layout in the order a depth-first walk meets them."""
    if isinstance(layout, Leaf):
        return [layout.task]
    children = layout.parts if isinstance(layout, Series) else layout.branches
    return [t for c in children for t in leaves(c)]


def makespan(layout: Layout, durations: Mapping[str, float]) -> float:
    """Run time of the layout when every task takes its duration."""
    if isinstance(layout, Leaf):
        return durations[layout.task]
    if isinstance(layout, Series):
        return sum(makespan(p, durations) for p in layout.parts)
    return max(makespan(b, durations) for b in layout.branches)


def critical_path(
    tasks: Sequence[str],
    parents: Mapping[str, Collection[str]],
    durations: Mapping[str, float],
) -> float:
    """Length of the DAG's longest path: the best any layout can do."""
    from infra.graph import topological_order

    finish: dict[str, float] = {}
    for t in topological_order(tasks, parents):
        finish[t] = durations[t] + max((finish[p] for p in parents.get(t, ())), default=0.0)
    return max(finish.values(), default=0.0)


def by_levels(tasks: Sequence[str], parents: Mapping[str, Collection[str]]) -> Layout:
    """One ``Parallel`` per dependency level: the layout of Kedro's own guide.

    Every layout this module returns is at least as fast as this one.
    """
    from infra.graph import topological_order

    level: dict[str, int] = {}
    for t in topological_order(tasks, parents):
        level[t] = 1 + max((level[p] for p in parents.get(t, ())), default=-1)
    rows: dict[int, list[str]] = {}
    for t in tasks:
        rows.setdefault(level[t], []).append(t)
    return normalise(Series(tuple(Parallel(tuple(Leaf(t) for t in rows[i])) for i in sorted(rows))))


def normalise(layout: Layout) -> Layout:
    """Flatten Series-in-Series and Parallel-in-Parallel, drop 1-child nodes."""
    if isinstance(layout, Leaf):
        return layout
    if isinstance(layout, Series):
        parts: list[Layout] = []
        for p in (normalise(p) for p in layout.parts):
            parts.extend(p.parts if isinstance(p, Series) else (p,))
        return parts[0] if len(parts) == 1 else Series(tuple(parts))
    branches: list[Layout] = []
    for b in (normalise(b) for b in layout.branches):
        branches.extend(b.branches if isinstance(b, Parallel) else (b,))
    return branches[0] if len(branches) == 1 else Parallel(tuple(branches))


def check(
    layout: Layout, tasks: Sequence[str], parents: Mapping[str, Collection[str]]
) -> None:
    """Raise ``ValueError`` unless the layout runs every task exactly once,
    each only after all of its parents have finished."""
    seen = leaves(layout)
    if sorted(seen) != sorted(tasks):
        raise ValueError("layout does not run every task exactly once")
    before = _predecessors(layout)
    for t in tasks:
        missing = set(parents.get(t, ())) - before[t]
        if missing:
            raise ValueError(f"task {t!r} may start before {sorted(missing)!r}")


def _predecessors(layout: Layout) -> dict[str, set[str]]:
    """For each task, the tasks the layout guarantees have finished first."""
    result: dict[str, set[str]] = {}

    def walk(node: Layout, done: frozenset[str]) -> None:
        if isinstance(node, Leaf):
            result[node.task] = set(done)
        elif isinstance(node, Series):
            acc = set(done)
            for p in node.parts:
                walk(p, frozenset(acc))
                acc.update(leaves(p))
        else:
            for b in node.branches:
                walk(b, done)

    walk(layout, frozenset())
    return result
