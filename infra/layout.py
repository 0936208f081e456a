"""Series-parallel layouts of a task DAG, for Step Functions' fork/join.

Step Functions can only fan out and in through ``Parallel`` states, which
wait for every branch, so a state machine's precedence is always a
series-parallel (SP) order. A DAG that is not SP needs extra precedence, and
every added constraint can delay the run; this module chooses the layout.

A layout is a tree: ``Leaf`` (one task), ``Series`` (children one after
another) or ``Parallel`` (children side by side, joined at the end).

Pipelines can be thousands of nodes deep, so every walk over a layout here is
iterative: a deep tree must not hit Python's recursion limit.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from graphlib import TopologicalSorter
from itertools import accumulate, compress, pairwise
from operator import add
from typing import TypeVar


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
T = TypeVar("T")


def _children(layout: Series | Parallel) -> tuple[Layout, ...]:
    return layout.parts if isinstance(layout, Series) else layout.branches


def leaves(layout: Layout) -> list[str]:
    """Tasks of a layout in the order a depth-first walk meets them."""
    found: list[str] = []
    stack: list[Layout] = [layout]
    while stack:
        node = stack.pop()
        if isinstance(node, Leaf):
            found.append(node.task)
        else:
            stack.extend(reversed(_children(node)))
    return found


def fold(
    layout: Layout,
    leaf: Callable[[Leaf], T],
    series: Callable[[list[T]], T],
    parallel: Callable[[list[T]], T],
) -> T:
    """Evaluate a layout bottom-up, children left to right, without recursion:
    layouts of deep series-parallel DAGs nest thousands of levels."""
    values: list[T] = []
    stack: list[tuple[Layout, bool]] = [(layout, False)]
    while stack:
        node, expanded = stack.pop()
        if isinstance(node, Leaf):
            values.append(leaf(node))
            continue
        children = _children(node)
        if not expanded:
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(children))
            continue
        mine = values[len(values) - len(children) :]
        del values[len(values) - len(children) :]
        values.append(series(mine) if isinstance(node, Series) else parallel(mine))
    return values[0]


def _one_after_another(parts: list[float]) -> float:
    return sum(parts)


def _longest(branches: list[float]) -> float:
    if not branches:
        raise ValueError("a Parallel needs at least one branch")
    return max(branches)


def makespan(layout: Layout, durations: Mapping[str, float]) -> float:
    """Run time of the layout when every task takes its duration."""

    def seconds(leaf: Leaf) -> float:
        return durations[leaf.task]

    return fold(layout, seconds, _one_after_another, _longest)


def critical_path(
    tasks: Sequence[str],
    parents: Mapping[str, Collection[str]],
    durations: Mapping[str, float],
) -> float:
    """Length of the DAG's longest path: the best any layout can do."""
    finish: dict[str, float] = {}
    for t in _topological_order(tasks, parents):
        finish[t] = durations[t] + max((finish[p] for p in parents.get(t, ())), default=0.0)
    return max(finish.values(), default=0.0)


def by_levels(tasks: Sequence[str], parents: Mapping[str, Collection[str]]) -> Layout:
    """One ``Parallel`` per dependency level: the layout of Kedro's own guide.

    Every layout this module returns is at least as fast as this one.
    """
    level: dict[str, int] = {}
    for t in _topological_order(tasks, parents):
        level[t] = 1 + max((level[p] for p in parents.get(t, ())), default=-1)
    rows: dict[int, list[str]] = {}
    for t in tasks:
        rows.setdefault(level[t], []).append(t)
    return normalise(Series(tuple(Parallel(tuple(Leaf(t) for t in rows[i])) for i in sorted(rows))))


def normalise(layout: Layout) -> Layout:
    """Flatten Series-in-Series and Parallel-in-Parallel, drop 1-child nodes."""
    return fold(layout, lambda leaf: leaf, _series, _parallel)


def check(layout: Layout, tasks: Sequence[str], parents: Mapping[str, Collection[str]]) -> None:
    """Raise ``ValueError`` unless the layout runs every task exactly once,
    each only after all of its parents have finished."""
    seen = leaves(layout)
    if sorted(seen) != sorted(tasks):
        raise ValueError("layout does not run every task exactly once")
    first, second = _positions(layout)
    for t in tasks:
        missing = {
            p
            for p in parents.get(t, ())
            if p not in first or not (first[p] < first[t] and second[p] < second[t])
        }
        if missing:
            raise ValueError(f"task {t!r} may start before {sorted(missing)!r}")


def _positions(layout: Layout) -> tuple[dict[str, int], dict[str, int]]:
    """Two linear orders whose intersection is the layout's precedence.

    SP orders have order dimension two: list the branches of every
    ``Parallel`` left to right in one order and right to left in the other,
    and a task precedes another exactly when it does so in both. That makes
    checking an edge O(1) instead of a walk up the tree.
    """
    orders: list[dict[str, int]] = []
    for flip in (False, True):
        position: dict[str, int] = {}
        stack: list[Layout] = [layout]
        while stack:
            node = stack.pop()
            if isinstance(node, Leaf):
                position[node.task] = len(position)
            elif isinstance(node, Series) or not flip:
                stack.extend(reversed(_children(node)))
            else:
                stack.extend(node.branches)
        orders.append(position)
    return orders[0], orders[1]


def _topological_order(names: Iterable[str], parents: Mapping[str, Collection[str]]) -> list[str]:
    """Deterministic topological order; raises ``graphlib.CycleError``.

    The same order as ``infra.graph.topological_order``, kept here so that
    this module stays free of the rest of the package.
    """
    sorter: TopologicalSorter[str] = TopologicalSorter()
    for name in names:
        sorter.add(name, *sorted(parents.get(name, ())))
    return list(sorter.static_order())


def _series(parts: Iterable[Layout]) -> Layout:
    flat: list[Layout] = []
    for p in parts:
        flat.extend(p.parts if isinstance(p, Series) else (p,))
    return flat[0] if len(flat) == 1 else Series(tuple(flat))


def _parallel(branches: Iterable[Layout]) -> Layout:
    flat: list[Layout] = []
    for b in branches:
        flat.extend(b.branches if isinstance(b, Parallel) else (b,))
    return flat[0] if len(flat) == 1 else Parallel(tuple(flat))


# --- structure: a fast SP layout of an arbitrary DAG -------------------------
#
# Vocabulary: a *piece* is a set of tasks, laid out with only the DAG's edges
# inside it (everything outside is already before or after all of it). The
# best layout of a piece is
#   * ``Parallel`` over its weakly connected components, when it has several
#     (each component's best layout restricted to it is no slower);
#   * otherwise a ``Series``. Where every task of a prefix precedes every task
#     of the rest (a *complete cut*, recognisable from the DAG's own edges),
#     cutting there adds no precedence, so it is free and always optimal;
#   * otherwise (a *prime* piece) some precedence must be added: choose a
#     prefix set closed under predecessors, lay out both sides, run them one
#     after the other. Which cut is best is the NP-hard part.
# Series-parallel DAGs never reach a prime piece, so they are laid out exactly
# whatever the durations. Re-analysing what follows each cut is quadratic on
# deep nestings, so SP DAGs (and big SP pieces) take a linear fast path.


@dataclass(frozen=True, slots=True)
class _Dag:
    """Tasks renumbered in a topological order (ties by input order)."""

    names: list[str]
    parents: list[tuple[int, ...]]
    children: list[tuple[int, ...]]
    durations: list[float]

    @classmethod
    def build(
        cls,
        tasks: Sequence[str],
        parents: Mapping[str, Collection[str]],
        durations: Mapping[str, float] | None,
    ) -> _Dag:
        position = {t: i for i, t in enumerate(tasks)}
        if len(position) != len(tasks):
            raise ValueError("tasks must be unique")
        direct: list[list[int]] = []
        for t in tasks:
            given = set(parents.get(t, ()))
            unknown = given - position.keys()
            if unknown:
                raise ValueError(f"task {t!r} depends on unknown tasks {sorted(unknown)!r}")
            direct.append(sorted(position[p] for p in given))
        below: list[list[int]] = [[] for _ in tasks]
        for c, ps in enumerate(direct):
            for p in ps:
                below[p].append(c)
        waiting = [len(ps) for ps in direct]
        ready = [i for i, w in enumerate(waiting) if w == 0]
        order: list[int] = []
        while ready:  # ready is a heap, so ties go by the order of ``tasks``
            v = heapq.heappop(ready)
            order.append(v)
            for c in below[v]:
                waiting[c] -= 1
                if waiting[c] == 0:
                    heapq.heappush(ready, c)
        if len(order) != len(tasks):
            _topological_order(tasks, parents)  # raises CycleError naming a cycle
            raise ValueError("the task graph has a cycle")  # pragma: no cover
        rank = [0] * len(tasks)
        for r, v in enumerate(order):
            rank[v] = r
        names = [tasks[v] for v in order]
        if durations is None:
            seconds = [1.0] * len(names)
        else:
            missing = [t for t in names if t not in durations]
            if missing:
                raise ValueError(f"no duration for {missing[:5]!r}")
            seconds = [float(durations[t]) for t in names]
            bad = [t for t, s in zip(names, seconds, strict=True) if not 0.0 <= s < math.inf]
            if bad:
                raise ValueError(f"durations must be finite and >= 0: {bad[:5]!r}")
        return cls(
            names=names,
            parents=[tuple(sorted(rank[p] for p in direct[v])) for v in order],
            children=[tuple(sorted(rank[c] for c in below[v])) for v in order],
            durations=seconds,
        )


# How ``budget_seconds`` becomes a deterministic amount of work: one unit is
# roughly one task or edge visited while analysing a piece, and this many
# units took about a second in CPython 3.11 on a small 2-core VM. Counting work
# instead of reading a clock keeps the result the same from run to run.
# infra.grouping counts its own search in the same units, layouts included.
UNITS_PER_SECOND = 2_000_000.0

# Shares of the budget: the pilot search first, then window re-optimisation.
# Past ``_GREEDY_SHARE`` even the greedy completion gives way to levels, so
# compile time stays bounded on any input.
_PILOT_SHARE = 0.6
_WINDOW_SHARE = 0.95
_GREEDY_SHARE = 2.5

# Rough cost of the pilot search, in greedy layouts of the whole DAG.
_PILOT_COST = 10.0

# Windows of a Series re-solved together start at this many tasks, and
# double while budget lasts.
_WINDOW_TASKS = 60


@dataclass(frozen=True, slots=True)
class _Breadth:
    """Which cuts of a prime piece a pilot search scores.

    ``overall`` best by lower bound; ``per_order`` best of each of the four
    candidate orders; ``extremes`` adds, per order, the cheapest cut with the
    smallest and with the largest prefix (peeling a few tasks off either end
    of a piece is often what a good layout does).
    """

    overall: int
    per_order: int
    extremes: bool


_PILOT = _Breadth(overall=8, per_order=0, extremes=True)
_WINDOW = _Breadth(overall=16, per_order=4, extremes=True)

# (value, parallel?, groups): a piece's layout is ``Parallel`` or ``Series``
# over the best layouts of the groups; no groups: an exact layout is ready.
_Plan = tuple[float, bool, list[list[int]]]
# A candidate cut: (lower bound, imbalance, order, prefix length, cp of rest).
_Cut = tuple[float, int, int, int, float]


class _Prime:
    """A prime piece with its candidate cuts.

    A cut is a prefix of one of four orders of the piece: by earliest finish,
    earliest start, latest start and latest finish (as in a schedule without
    added precedence). Each order is monotone along edges with ties by
    topological rank, so every prefix is closed under predecessors. The lower
    bound of a cut is the critical path of the prefix plus that of the rest;
    over all cuts the best bound is always among the earliest-finish prefixes,
    but the best *layout* often is not, hence four orders. Bounds are kept as
    plain lists and cuts materialised only when asked for: most prime pieces
    only ever need their first cut.
    """

    __slots__ = ("bounds", "nodes", "orders", "rests")

    def __init__(
        self,
        nodes: list[int],
        orders: list[list[int]],
        bounds: list[list[float]],
        rests: list[list[float]],
    ) -> None:
        self.nodes = nodes
        self.orders = orders
        self.bounds = bounds  # bounds[f][k - 1]: lower bound of cutting order f after k
        self.rests = rests  # critical path of what follows that cut

    def _cut(self, f: int, i: int) -> _Cut:
        return (self.bounds[f][i], abs(2 * i + 2 - len(self.nodes)), f, i + 1, self.rests[f][i])

    def _where(self, f: int, test: Callable[[float], bool]) -> list[_Cut]:
        bounds = self.bounds[f]
        return [self._cut(f, i) for i in compress(range(len(bounds)), map(test, bounds))]

    def first(self) -> _Cut:
        """The greedy's cut: least lower bound among balanced cuts (each side
        at least a quarter of the piece), ties to the most balanced.

        Peeling a task or two off a piece barely moves the lower bound but
        adds their time to the run, and peeling one task at a time makes the
        recursion quadratic. The pilot still scores peels (``extremes``) and
        keeps one where it really is better.
        """
        m = len(self.nodes)
        low = max(1, m // 4)
        lowest = min(min(b[low - 1 : m - low]) for b in self.bounds)
        return min(
            cut
            for f, b in enumerate(self.bounds)
            for cut in self._where(f, lowest.__eq__)
            if low <= cut[3] <= m - low
        )

    def sides(self, cut: _Cut) -> tuple[list[int], list[int]]:
        order, k = self.orders[cut[2]], cut[3]
        nodes = self.nodes
        return [nodes[i] for i in sorted(order[:k])], [nodes[i] for i in sorted(order[k:])]

    def choose(self, breadth: _Breadth, zobrist: list[int]) -> list[_Cut]:
        """Cuts to score, by lower bound (ties: most balanced)."""
        per_order: list[list[_Cut]] = []
        for f, bounds in enumerate(self.bounds):
            keep = min(len(bounds), max(breadth.overall, breadth.per_order))
            threshold = sorted(bounds)[keep - 1]
            per_order.append(sorted(self._where(f, threshold.__ge__)))
        chosen = sorted(c for cuts in per_order for c in cuts)[: breadth.overall]
        chosen.append(self.first())  # so a pilot is never worse than the greedy
        for cuts in per_order:
            chosen.extend(cuts[: breadth.per_order])
            if breadth.extremes:
                ties = [c for c in cuts if c[0] == cuts[0][0]]
                chosen.append(min(ties, key=lambda c: c[3]))
                chosen.append(max(ties, key=lambda c: c[3]))
        # The same prefix set can come from several orders; score it once.
        unique: dict[tuple[int, int], _Cut] = {}
        for cut in sorted(set(chosen)):
            h = 0
            for i in self.orders[cut[2]][: cut[3]]:
                h ^= zobrist[self.nodes[i]]
            unique.setdefault((h, cut[3]), cut)
        return sorted(unique.values())


# What analysing a piece found: components, free series cuts, or a prime piece.
_Split = tuple[bool, list[list[int]]] | _Prime

# A choice for one piece: either groups to lay out (then combine), or a plan
# already known.
_Choice = tuple[bool, list[list[int]]] | _Plan


class _Search:
    """Pilot search over cuts, memoised on the piece, within a work budget.

    ``greedy`` lays a piece out taking, in every prime piece, the balanced
    cut with the smallest lower bound (``_Prime.first``). ``pilot`` scores several
    candidate cuts of a prime piece by the greedy layout of both sides, takes
    the best and recurses with ``pilot`` again; the greedy costs are memoised,
    so sibling candidates share most of the work. Every walk is an explicit
    stack, since pieces can nest thousands deep.
    """

    def __init__(self, dag: _Dag, budget: float) -> None:
        self.dag = dag
        self.dur = dag.durations
        self.work = 0.0
        self.pilot_until = _PILOT_SHARE * budget
        self.window_until = _WINDOW_SHARE * budget
        self.greedy_until = _GREEDY_SHARE * budget
        self.splits: dict[frozenset[int], _Split] = {}
        self.greedy_plans: dict[frozenset[int], _Plan] = {}
        self.pilot_plans: dict[frozenset[int], _Plan] = {}
        self.window_plans: dict[frozenset[int], _Plan] = {}
        # Exact layouts of SP pieces (their plans have no groups), and the
        # size below which it is worth trying that again after a miss.
        self.ready: dict[frozenset[int], Layout] = {}
        self.sp_below = len(dag.names) // 2
        self.seconds = dict(zip(dag.names, dag.durations, strict=True))
        self.local = [-1] * len(dag.names)  # scratch of ``_analyse``
        self.index = {name: i for i, name in enumerate(dag.names)}
        rng = random.Random(0x5EED)
        self.zobrist = [rng.getrandbits(61) for _ in dag.names]

    # -- analysis of one piece ------------------------------------------------

    def split(self, nodes: list[int], key: frozenset[int]) -> _Split:
        found = self.splits.get(key)
        if found is None:
            found = self.splits[key] = self._analyse(nodes)
        return found

    def _analyse(self, nodes: list[int]) -> _Split:
        m = len(nodes)
        # Local numbers in a list as long as the DAG (-1: outside the piece):
        # indexing it is much faster than a dict, and pieces are analysed by
        # the ten thousand.
        loc = self.local
        for i, v in enumerate(nodes):
            loc[v] = i
        try:
            ups = [[j for p in self.dag.parents[v] if (j := loc[p]) >= 0] for v in nodes]
            edges = sum(map(len, ups))
            self.work += 2 * m + 2 * edges
            groups = _components(ups)
            if len(groups) > 1:
                return True, [[nodes[i] for i in g] for g in groups]
            downs = [[j for c in self.dag.children[v] if (j := loc[c]) >= 0] for v in nodes]
        finally:
            for v in nodes:
                loc[v] = -1
        cuts = _complete_cuts(ups, downs)
        if cuts:
            return False, [nodes[a:b] for a, b in pairwise([0, *cuts, m])]

        self.work += 6 * m
        d = [self.dur[v] for v in nodes]
        es = [0.0] * m
        ef = [0.0] * m
        for i in range(m):
            start = 0.0
            for p in ups[i]:
                if ef[p] > start:
                    start = ef[p]
            es[i] = start
            ef[i] = start + d[i]
        tail = [0.0] * m  # longest path after i, excluding i
        bl = [0.0] * m  # longest path from i, including i
        for i in range(m - 1, -1, -1):
            longest = 0.0
            for c in downs[i]:
                if bl[c] > longest:
                    longest = bl[c]
            tail[i] = longest
            bl[i] = longest + d[i]
        # Latest start/finish as keys that are monotone along edges even in
        # floating point: minus the longest path from / after the task.
        keys = [ef, es, [-b for b in bl], [-t for t in tail]]
        orders: list[list[int]] = []
        bounds: list[list[float]] = []
        rests: list[list[float]] = []
        for key in keys:
            order = sorted(range(m), key=key.__getitem__)  # stable: ties by rank
            before = list(accumulate(map(ef.__getitem__, order), max))
            after = list(accumulate(map(bl.__getitem__, reversed(order)), max))
            after.reverse()
            del after[0]
            orders.append(order)
            bounds.append(list(map(add, before, after)))
            rests.append(after)
        return _Prime(nodes, orders, bounds, rests)

    def _sp_piece(self, nodes: list[int]) -> Layout | None:
        """``_sp_layout`` of a piece. Each miss halves the size worth trying,
        so misses cost O(n log n) in all, while SP pieces (say, halves of a
        deep spine that an N made prime) skip a quadratic decomposition."""
        loc = {v: i for i, v in enumerate(nodes)}
        get = loc.get
        ups = [[j for p in self.dag.parents[v] if (j := get(p)) is not None] for v in nodes]
        self.work += 4 * len(nodes) + sum(map(len, ups))
        exact = _sp_layout([self.dag.names[v] for v in nodes], ups)
        if exact is None:
            self.sp_below = len(nodes) // 2
        return exact

    # -- layouts of pieces ----------------------------------------------------

    def evaluate(
        self,
        nodes: list[int],
        plans: dict[frozenset[int], _Plan],
        choose: Callable[[list[int], frozenset[int]], _Choice],
    ) -> float:
        """Value of ``nodes`` under a policy, filling ``plans`` bottom-up."""
        if len(nodes) == 1:
            return self.dur[nodes[0]]
        nodes = list(nodes)  # cached pieces keep the list: never the caller's
        root = frozenset(nodes)
        known = plans.get(root)
        if known is not None:
            return known[0]
        # frame: nodes, key, parallel, groups, group keys, values
        stack: list[list] = [[nodes, root, False, None, None, []]]  # type: ignore[type-arg]
        dur = self.dur
        while stack:
            frame = stack[-1]
            groups: list[list[int]] | None = frame[3]
            if groups is None:
                choice = choose(frame[0], frame[1])
                if len(choice) == 3:
                    plans[frame[1]] = choice
                    stack.pop()
                    continue
                frame[2], groups = choice
                frame[3] = groups
                frame[4] = [frozenset(g) if len(g) > 1 else None for g in groups]
            values: list[float] = frame[5]
            keys: list[frozenset[int] | None] = frame[4]
            pending = None
            while len(values) < len(groups):
                i = len(values)
                k = keys[i]
                if k is None:
                    values.append(dur[groups[i][0]])
                    continue
                known = plans.get(k)
                if known is None:
                    pending = [groups[i], k, False, None, None, []]
                    break
                values.append(known[0])
            if pending is not None:
                stack.append(pending)
                continue
            plans[frame[1]] = (max(values) if frame[2] else sum(values), frame[2], groups)
            stack.pop()
        return plans[root][0]

    def greedy(self, nodes: list[int]) -> float:
        return self.evaluate(nodes, self.greedy_plans, self._greedy_choice)

    def _greedy_choice(self, nodes: list[int], key: frozenset[int]) -> _Choice:
        if _SP_PIECE_TASKS <= len(nodes) <= self.sp_below and key not in self.splits:
            exact = self._sp_piece(nodes)
            if exact is not None:
                self.ready[key] = exact
                return makespan(exact, self.seconds), False, []
        if self.work > self.greedy_until and key not in self.splits:
            # Out of work even for the greedy: dependency levels, linear time.
            rows = _levels(nodes, self.dag.parents)
            return (True, [[v] for v in nodes]) if len(rows) == 1 else (False, rows)
        found = self.split(nodes, key)
        if not isinstance(found, _Prime):
            return found
        if self.work > self.greedy_until:
            return False, _levels(nodes, self.dag.parents)
        return False, list(found.sides(found.first()))

    def pilot(self, nodes: list[int], breadth: _Breadth, until: float) -> float:
        plans = self.pilot_plans if breadth is _PILOT else self.window_plans

        def choice(nodes: list[int], key: frozenset[int]) -> _Choice:
            if key in self.ready:
                return self.greedy_plans[key]
            found = self.split(nodes, key)
            if not isinstance(found, _Prime):
                return found
            if self.work > until:
                self.greedy(nodes)
                return self.greedy_plans[key]
            best = math.inf
            pick: tuple[list[int], list[int]] | None = None
            self.work += 4 * len(nodes)
            for cut in found.choose(breadth, self.zobrist):
                if cut[0] >= best:
                    break  # sorted by lower bound: no later cut can win
                head, rest = found.sides(cut)
                value = self.greedy(head)
                if value + cut[4] >= best:
                    continue
                value += self.greedy(rest)
                if value < best:
                    best, pick = value, (head, rest)
            assert pick is not None
            return False, list(pick)

        return self.evaluate(nodes, plans, choice)

    def best_plan(self, key: frozenset[int]) -> _Plan:
        best: _Plan | None = None
        for plans in (self.window_plans, self.pilot_plans, self.greedy_plans):
            plan = plans.get(key)
            if plan is not None and (best is None or plan[0] < best[0]):
                best = plan
        assert best is not None
        return best

    def build(self, nodes: list[int]) -> Layout:
        """The layout of the best plan found for ``nodes`` (and its groups)."""
        names = self.dag.names
        done: list[Layout] = []
        stack: list[tuple[list[int], bool]] = [(nodes, False)]
        while stack:
            piece, expanded = stack.pop()
            if len(piece) == 1:
                done.append(Leaf(names[piece[0]]))
                continue
            key = frozenset(piece)
            _, parallel, groups = self.best_plan(key)
            if not groups:
                done.append(self.ready[key])
                continue
            if not expanded:
                stack.append((piece, True))
                stack.extend((g, False) for g in reversed(groups))
                continue
            mine = done[len(done) - len(groups) :]
            del done[len(done) - len(groups) :]
            done.append(_parallel(mine) if parallel else _series(mine))
        return done[0]

    # -- local re-optimisation -------------------------------------------------

    def windows(self, layout: Layout, size: int) -> Layout:
        """Re-solve runs of consecutive ``Series`` parts as one piece.

        The top-down search fixes a cut before it knows how both sides will
        be laid out; merging neighbouring parts of the result and solving the
        union again (with a broader search) moves those barriers. A first
        pass only enters the critical branch of each ``Parallel`` (nothing
        else can shorten the run), a second the rest, while budget lasts.
        """
        for critical_only in (True, False):
            if self.work > self.window_until:
                break
            layout = self._window_pass(layout, critical_only, size)
        return layout

    def _window_pass(self, layout: Layout, critical_only: bool, size: int) -> Layout:
        # Costs by id() are valid while ``layout`` (the argument) keeps every
        # subtree alive, that is for this pass.
        costs = _subtree_costs(layout, self.seconds)
        fresh, expanded, keep = 0, 1, 2
        done: list[Layout] = []
        stack: list[tuple[Layout, int]] = [(layout, fresh)]
        while stack:
            node, state = stack.pop()
            if isinstance(node, Leaf) or state == keep:
                done.append(node)
                continue
            if state == fresh:
                if self.work > self.window_until:
                    done.append(node)
                    continue
                if isinstance(node, Series):
                    node = self._window_series(node, costs, size)
                    if isinstance(node, Leaf):
                        done.append(node)
                        continue
                stack.append((node, expanded))
                if isinstance(node, Parallel) and critical_only:
                    value = [self._cost(b, costs) for b in node.branches]
                    top = max(value)
                    stack.extend(
                        (b, fresh if v >= top else keep)
                        for b, v in zip(reversed(node.branches), reversed(value), strict=True)
                    )
                else:
                    stack.extend((c, fresh) for c in reversed(_children(node)))
                continue
            children = _children(node)
            mine = done[len(done) - len(children) :]
            del done[len(done) - len(children) :]
            done.append(_series(mine) if isinstance(node, Series) else _parallel(mine))
        return done[0]

    def _cost(self, node: Layout, costs: Mapping[int, float]) -> float:
        known = costs.get(id(node))
        return makespan(node, self.seconds) if known is None else known

    def _window_series(self, node: Series, costs: Mapping[int, float], size: int) -> Layout:
        parts: list[Layout] = list(node.parts)
        tasks = [_small_leaves(p, self.index, size) for p in parts]
        value = [self._cost(p, costs) for p in parts]
        i = 0
        while i < len(parts) - 1 and self.work <= self.window_until:
            changed = False
            union: list[int] = list(tasks[i] or ())
            for j in range(i + 1, len(parts)):
                more = tasks[j]
                if tasks[i] is None or more is None or len(union) + len(more) > size:
                    break
                union = sorted(union + more)  # a new list: pieces are cached by reference
                old = sum(value[i : j + 1])
                if self.pilot(union, _WINDOW, self.window_until) < old * (1 - 1e-12):
                    solved = self.build(union)
                    new = list(solved.parts) if isinstance(solved, Series) else [solved]
                    parts[i : j + 1] = new
                    tasks[i : j + 1] = [_small_leaves(p, self.index, size) for p in new]
                    value[i : j + 1] = [makespan(p, self.seconds) for p in new]
                    changed = True
                    break
            if not changed:
                i += 1
        return _series(parts)


def _subtree_costs(layout: Layout, seconds: Mapping[str, float]) -> dict[int, float]:
    """Makespan of every subtree, by ``id`` (the tree keeps them all alive)."""
    costs: dict[int, float] = {}
    stack: list[tuple[Layout, bool]] = [(layout, False)]
    while stack:
        node, expanded = stack.pop()
        if isinstance(node, Leaf):
            costs[id(node)] = seconds[node.task]
            continue
        children = _children(node)
        if not expanded:
            stack.append((node, True))
            stack.extend((c, False) for c in reversed(children))
            continue
        mine = [costs[id(c)] for c in children]
        if isinstance(node, Series):
            costs[id(node)] = sum(mine)
        else:
            costs[id(node)] = max(mine, default=0.0)
    return costs


def _small_leaves(layout: Layout, index: Mapping[str, int], limit: int) -> list[int] | None:
    """Task numbers of a layout, or None once there are more than ``limit``."""
    found: list[int] = []
    stack: list[Layout] = [layout]
    while stack:
        node = stack.pop()
        if isinstance(node, Leaf):
            found.append(index[node.task])
            if len(found) > limit:
                return None
        else:
            stack.extend(_children(node))
    return found


def _components(ups: list[list[int]]) -> list[list[int]]:
    """Weakly connected components (local numbers, each sorted, by first)."""
    root = list(range(len(ups)))
    for i, ps in enumerate(ups):
        for p in ps:
            a = i
            while root[a] != a:
                root[a] = root[root[a]]
                a = root[a]
            b = p
            while root[b] != b:
                root[b] = root[root[b]]
                b = root[b]
            if a != b:
                if a < b:
                    root[b] = a
                else:
                    root[a] = b
    groups: dict[int, list[int]] = {}
    for i in range(len(ups)):
        a = i
        while root[a] != a:
            a = root[a]
        groups.setdefault(a, []).append(i)
    return list(groups.values())


def _complete_cuts(ups: list[list[int]], downs: list[list[int]]) -> list[int]:
    """Prefix lengths (in topological order) where every task before the cut
    precedes every task after it.

    Such a cut adds no precedence. It is a prefix of every topological
    order, and it holds exactly when every maximal task of the prefix has an
    edge to every minimal task of the rest (those pairs are covering
    relations, which any DAG with that order must contain). Counting those
    edges incrementally makes the scan linear.
    """
    m = len(ups)
    waiting = [len(ps) for ps in ups]
    top = bytearray(m)  # maximal tasks of the prefix
    bottom = bytearray(not ps for ps in ups)  # minimal tasks of the rest
    tops, bottoms = 0, sum(bottom)
    linked = 0  # edges from tops to bottoms
    cuts: list[int] = []
    for v in range(m - 1):
        bottom[v] = 0
        bottoms -= 1
        for p in ups[v]:
            if top[p]:
                top[p] = 0
                tops -= 1
                linked -= 1 + sum(map(bottom.__getitem__, downs[p]))  # 1: the edge p -> v
        top[v] = 1
        tops += 1
        for c in downs[v]:
            waiting[c] -= 1
            if waiting[c] == 0:
                bottom[c] = 1
                bottoms += 1
                linked += sum(map(top.__getitem__, ups[c]))
        if linked == tops * bottoms:
            cuts.append(v + 1)
    return cuts


def _levels(nodes: list[int], parents: list[tuple[int, ...]]) -> list[list[int]]:
    """Dependency levels of a piece: the cheap fallback once work runs out."""
    inside = set(nodes)
    level: dict[int, int] = {}
    rows: list[list[int]] = []
    for v in nodes:  # sorted by rank, so parents come first
        lv = 1 + max((level[p] for p in parents[v] if p in inside), default=-1)
        level[v] = lv
        if lv == len(rows):
            rows.append([])
        rows[lv].append(v)
    return rows


def _critical_path(dag: _Dag) -> float:
    finish = [0.0] * len(dag.names)
    for v, ps in enumerate(dag.parents):  # numbered in topological order
        finish[v] = dag.durations[v] + max((finish[p] for p in ps), default=0.0)
    return max(finish, default=0.0)


# Pieces of the search from this size get a try of the SP fast path.
_SP_PIECE_TASKS = 256

# Above this many tasks the SP fast path's reachability bitsets (n^2 / 8
# bytes) cost more memory than they save time; the search still lays SP
# DAGs out exactly, only slower (and, if nested thousands deep, within the
# work cap only).
_SP_FAST_PATH_TASKS = 12_000


def _sp_layout(names: Sequence[str], parents: Sequence[Sequence[int]]) -> Layout | None:
    """The exact layout of a series-parallel DAG, or None if it is not SP.

    Tasks are numbered in a topological order; ``parents`` by number.

    The search's decomposition re-analyses the rest of a piece after every
    cut, which is quadratic on deep nestings (a 5,000-task spine with a
    side task at every step). Here instead: drop transitive edges (ancestor
    bitsets), then merge, until nothing changes, a task into its only child
    when it is that child's only parent (series) and tasks with the same
    parents and children (parallel). Those merges keep every group a module
    of the order, and an SP order reduces to one group, whose merge tree is
    the layout.
    """
    n = len(names)
    ancestors = [0] * n
    for v, ps in enumerate(parents):
        reach = 0
        for p in ps:
            reach |= ancestors[p] | (1 << p)
        ancestors[v] = reach
    ups: list[set[int]] = [set() for _ in range(n)]
    downs: list[set[int]] = [set() for _ in range(n)]
    for v, ps in enumerate(parents):
        implied = 0
        for q in ps:
            implied |= ancestors[q]
        for p in ps:
            if not (implied >> p) & 1:
                ups[v].add(p)
                downs[p].add(v)
    del ancestors

    # Merge trees: a task number, or [is_series, parts] (parts in order).
    tree: list[object] = list(range(n))
    alive = [True] * n
    queued = [True] * n
    queue = deque(range(n))
    twins: dict[tuple[frozenset[int], frozenset[int]], int] = {}

    def touch(vs: Iterable[int]) -> None:
        for v in sorted(vs):
            if not queued[v]:
                queued[v] = True
                queue.append(v)

    def join(first: object, second: object, series: bool) -> list[object]:
        parts: list[object] = []
        for t in (first, second):
            if isinstance(t, list) and t[0] is series:
                parts.extend(t[1])
            else:
                parts.append(t)
        return [series, parts]

    remaining = n
    while queue:
        v = queue.popleft()
        queued[v] = False
        if not alive[v]:
            continue
        if len(downs[v]) == 1:
            (c,) = downs[v]
            if len(ups[c]) == 1:  # v -> c in series: c folds into v
                tree[v] = join(tree[v], tree[c], series=True)
                alive[c] = False
                remaining -= 1
                downs[v] = downs[c]
                for x in downs[c]:
                    ups[x].discard(c)
                    ups[x].add(v)
                touch([v, *ups[v], *downs[v]])
                continue
        signature = (frozenset(ups[v]), frozenset(downs[v]))
        u = twins.get(signature)
        if u is not None and u != v and alive[u] and (ups[u], downs[u]) == signature:
            tree[u] = join(tree[u], tree[v], series=False)
            alive[v] = False
            remaining -= 1
            for x in ups[v]:
                downs[x].discard(v)
            for x in downs[v]:
                ups[x].discard(v)
            touch([u, *ups[u], *downs[u]])
            continue
        twins[signature] = v
    if remaining != 1:
        return None

    root = tree[next(v for v in range(n) if alive[v])]
    done: list[tuple[int, Layout]] = []  # (first task, layout)
    stack: list[tuple[object, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if isinstance(node, int):
            done.append((node, Leaf(names[node])))
            continue
        assert isinstance(node, list)
        series, parts = node
        if not expanded:
            stack.append((node, True))
            stack.extend((p, False) for p in reversed(parts))
            continue
        mine = done[len(done) - len(parts) :]
        del done[len(done) - len(parts) :]
        if series:
            done.append((mine[0][0], _series(lay for _, lay in mine)))
        else:
            mine.sort(key=lambda pair: pair[0])  # branches in task order
            done.append((mine[0][0], _parallel(lay for _, lay in mine)))
    return done[0][1]


def structure(
    tasks: Sequence[str],
    parents: Mapping[str, Collection[str]],
    durations: Mapping[str, float] | None = None,
    *,
    budget_seconds: float = 1.0,
) -> Layout:
    """A normalised SP layout of the DAG that runs as fast as we can find.

    ``durations`` (seconds per task; ``None``: all equal) steer which
    precedence to add. The result passes ``check``; series-parallel DAGs
    (transitive edges included) add no precedence at all, so their makespan
    is the critical path; and no layout is slower than ``by_levels``.

    How: an SP DAG is recognised and laid out directly (``_sp_layout``).
    Otherwise a greedy search over series cuts lays the DAG out, a pilot
    search improves on it where the budget allows (``_Search``), and windows
    of the result are re-solved, growing while budget lasts; the better of
    that and ``by_levels`` wins. The budget is counted in work, not wall
    time, so the same input always gives the same layout; ``budget_seconds``
    is roughly the time it buys in CPython. Past it the search degrades to
    the greedy and then to dependency levels, so it never blows up.
    """
    return structure_with_work(tasks, parents, durations, budget_seconds=budget_seconds)[0]


def structure_with_work(
    tasks: Sequence[str],
    parents: Mapping[str, Collection[str]],
    durations: Mapping[str, float] | None = None,
    *,
    budget_seconds: float = 1.0,
) -> tuple[Layout, float]:
    """:func:`structure`'s layout and the work it took, in the units of its
    budget (``budget_seconds`` buys ``UNITS_PER_SECOND`` each): for callers
    that lay out many graphs within one budget of their own."""
    dag = _Dag.build(tasks, parents, durations)
    if not dag.names:
        return Series(()), 0.0
    # Building the DAG and recognising an SP one visit every task and edge a few times.
    work = 4.0 * len(dag.names) + 2.0 * sum(map(len, dag.parents))
    if len(dag.names) <= _SP_FAST_PATH_TASKS:
        exact = _sp_layout(dag.names, dag.parents)
        if exact is not None:
            return exact, work
    search = _Search(dag, max(0.0, budget_seconds) * UNITS_PER_SECOND)
    everything = list(range(len(dag.names)))
    search.greedy(everything)
    # The pilot costs up to ~16 greedy runs; where that cannot fit, windows
    # over the greedy layout improve more per unit of work.
    if _PILOT_COST * search.work <= search.pilot_until:
        search.pilot(everything, _PILOT, search.pilot_until)
    layout = search.build(everything)
    shortest = _critical_path(dag)
    size = _WINDOW_TASKS
    while search.work <= search.window_until and makespan(layout, search.seconds) > shortest:
        layout = search.windows(layout, size)
        if size >= len(dag.names):
            break
        size *= 2
    levels = by_levels(tasks, parents)
    # Only a real gain counts: summing the same durations in another order
    # can differ in the last bit, and levels add precedence the layout avoids.
    ours = makespan(layout, search.seconds)
    if makespan(levels, search.seconds) < ours - 1e-12 * max(1.0, ours):
        return levels, work + search.work
    return layout, work + search.work
