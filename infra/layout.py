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


def check(layout: Layout, tasks: Sequence[str], parents: Mapping[str, Collection[str]]) -> None:
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


# --- structure: search for a fast SP layout --------------------------------


def structure(
    tasks: Sequence[str],
    parents: Mapping[str, Collection[str]],
    durations: Mapping[str, float] | None = None,
    *,
    budget_seconds: float = 1.0,
) -> Layout:
    import time

    names, par, chi, dur = _index(tasks, parents, durations)
    search = _Search(names, par, chi, dur, time.perf_counter() + budget_seconds)
    _, layout = search.solve(list(range(len(names))), 0)
    return layout


def _index(tasks, parents, durations):
    import heapq

    from infra.graph import topological_order

    order = list(tasks)
    position = {t: i for i, t in enumerate(order)}
    if len(position) != len(order):
        raise ValueError("tasks must be unique")
    plist = []
    for t in order:
        ps = set(parents.get(t, ()))
        unknown = ps - position.keys()
        if unknown:
            raise ValueError(f"task {t!r} depends on unknown {sorted(unknown)!r}")
        plist.append(sorted(position[p] for p in ps))
    clist = [[] for _ in order]
    for c, ps in enumerate(plist):
        for p in ps:
            clist[p].append(c)
    missing = [len(ps) for ps in plist]
    heap = [i for i, k in enumerate(missing) if k == 0]
    heapq.heapify(heap)
    topo = []
    while heap:
        v = heapq.heappop(heap)
        topo.append(v)
        for c in clist[v]:
            missing[c] -= 1
            if missing[c] == 0:
                heapq.heappush(heap, c)
    if len(topo) != len(order):
        topological_order(order, parents)  # raises CycleError naming a cycle
    rank = {v: r for r, v in enumerate(topo)}
    names = [order[v] for v in topo]
    par = [tuple(sorted(rank[p] for p in plist[v])) for v in topo]
    chi = [tuple(sorted(rank[c] for c in clist[v])) for v in topo]
    if durations is None:
        dur = [1.0] * len(names)
    else:
        dur = [float(durations[t]) for t in names]
    return names, par, chi, dur


_INF = float("inf")


class _Search:
    def __init__(self, names, par, chi, dur, deadline, width=4):
        self.names = names
        self.par = par
        self.chi = chi
        self.dur = dur
        self.deadline = deadline
        self.width = width
        self.memo = {}
        self.maxdepth = 0
        self.calls = 0

    def solve(self, nodes, depth):
        if len(nodes) == 1:
            v = nodes[0]
            return self.dur[v], Leaf(self.names[v])
        key = frozenset(nodes)
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        self.maxdepth = max(self.maxdepth, depth)
        self.calls += 1
        result = self._solve(nodes, depth)
        self.memo[key] = result
        return result

    def _solve(self, nodes, depth):
        loc = {v: i for i, v in enumerate(nodes)}
        m = len(nodes)
        P = [[loc[p] for p in self.par[v] if p in loc] for v in nodes]
        C = [[loc[c] for c in self.chi[v] if c in loc] for v in nodes]
        comps = _components(m, P)
        if len(comps) > 1:
            subs = [self.solve([nodes[i] for i in comp], depth + 1) for comp in comps]
            return max(c for c, _ in subs), _parallel([l for _, l in subs])
        cuts = _complete_cuts(m, P, C)
        if cuts:
            bounds = [0, *cuts, m]
            subs = [self.solve(nodes[a:b], depth + 1) for a, b in zip(bounds, bounds[1:])]
            return sum(c for c, _ in subs), _series([l for _, l in subs])
        return self._prime(nodes, P, C, depth)

    def _prime(self, nodes, P, C, depth):
        import time

        m = len(nodes)
        d = [self.dur[v] for v in nodes]
        es = [0.0] * m
        ef = [0.0] * m
        for i in range(m):
            s = max((ef[p] for p in P[i]), default=0.0)
            es[i] = s
            ef[i] = s + d[i]
        bl = [0.0] * m
        for i in range(m - 1, -1, -1):
            bl[i] = d[i] + max((bl[c] for c in C[i]), default=0.0)
        cp = max(ef)
        keys = [ef, es, [cp - bl[i] + d[i] for i in range(m)], [cp - bl[i] for i in range(m)]]
        seen = set()
        cands = []
        orders = []
        for f, key in enumerate(keys):
            order = sorted(range(m), key=lambda i: (key[i], i))
            orders.append(order)
            pre = []
            x = 0.0
            for i in order:
                x = max(x, ef[i])
                pre.append(x)
            suf = [0.0] * (m + 1)
            x = 0.0
            for k in range(m - 1, -1, -1):
                x = max(x, bl[order[k]])
                suf[k] = x
            h = 0
            for k in range(1, m):
                h ^= _ZOBRIST[order[k - 1]]
                if h in seen:
                    continue
                seen.add(h)
                cands.append((pre[k - 1] + suf[k], abs(2 * k - m), f, k))
        cands.sort()
        width = self.width if time.perf_counter() < self.deadline else 1
        best = _INF
        best_layout = None
        for lb, _, f, k in cands[:width]:
            if lb >= best:
                break
            inside = sorted(orders[f][:k])
            outside = sorted(orders[f][k:])
            ca, la = self.solve([nodes[i] for i in inside], depth + 1)
            cb, lb2 = self.solve([nodes[i] for i in outside], depth + 1)
            if ca + cb < best:
                best = ca + cb
                best_layout = _series([la, lb2])
        return best, best_layout


import random as _random

_rng = _random.Random(0)
_ZOBRIST = [_rng.getrandbits(64) for _ in range(1 << 16)]


def _components(m, P):
    root = list(range(m))

    def find(x):
        while root[x] != x:
            root[x] = root[root[x]]
            x = root[x]
        return x

    for i in range(m):
        for p in P[i]:
            a, b = find(i), find(p)
            if a != b:
                if a < b:
                    root[b] = a
                else:
                    root[a] = b
    groups = {}
    for i in range(m):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def _complete_cuts(m, P, C):
    remaining = [len(ps) for ps in P]
    maxA = set()
    minB = {i for i in range(m) if not P[i]}
    x = 0
    cuts = []
    for v in range(m - 1):
        minB.discard(v)
        for p in P[v]:
            if p in maxA:
                x -= 1
                maxA.discard(p)
                x -= sum(1 for c in C[p] if c in minB)
        maxA.add(v)
        for c in C[v]:
            remaining[c] -= 1
            if remaining[c] == 0:
                minB.add(c)
                x += sum(1 for p in P[c] if p in maxA)
        if x == len(maxA) * len(minB):
            cuts.append(v + 1)
    return cuts


def _series(parts):
    flat = []
    for p in parts:
        flat.extend(p.parts if isinstance(p, Series) else (p,))
    return flat[0] if len(flat) == 1 else Series(tuple(flat))


def _parallel(branches):
    flat = []
    for b in branches:
        flat.extend(b.branches if isinstance(b, Parallel) else (b,))
    return flat[0] if len(flat) == 1 else Parallel(tuple(flat))
