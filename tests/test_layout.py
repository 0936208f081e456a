"""Series-parallel layouts: correctness on any DAG, exactness on SP DAGs,
never worse than levels, determinism, and large or deep inputs."""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Mapping, Sequence
from graphlib import CycleError
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra import layout as layout_module
from infra.layout import (
    Layout,
    Leaf,
    Parallel,
    Series,
    by_levels,
    check,
    critical_path,
    leaves,
    makespan,
    normalise,
    structure,
)

Parents = dict[str, list[str]]
Durations = dict[str, float]

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- helpers -----------------------------------------------------------------


@pytest.fixture
def searches(monkeypatch: pytest.MonkeyPatch) -> list[layout_module._Search]:
    """Every layout search ``structure`` starts, to read its work counter.

    Tests bound the work a search does, never the seconds it takes: the
    budget is counted in work, so this is what stays the same on a busy
    machine (timings belong in ``benchmarks/compiler.py``).
    """
    started: list[layout_module._Search] = []

    class Recorded(layout_module._Search):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            started.append(self)

    monkeypatch.setattr(layout_module, "_Search", Recorded)
    return started


def assert_within_budget(
    search: layout_module._Search, parents: Mapping[str, Collection[str]]
) -> None:
    """The search stopped at its work cap: past it, at most one more analysis
    of a piece (at most the whole DAG) runs before it falls back to levels."""
    one_analysis = 12 * (len(parents) + sum(map(len, parents.values())))
    assert search.work <= search.greedy_until + one_analysis


def ancestors(tasks: Sequence[str], parents: Mapping[str, Collection[str]]) -> dict[str, set[str]]:
    """Transitive predecessors (tasks must be given in a topological order)."""
    result: dict[str, set[str]] = {}
    for t in tasks:
        result[t] = set(parents.get(t, ())).union(*(result[p] for p in parents.get(t, ())))
    return result


def layout_before(layout: Layout) -> dict[str, set[str]]:
    """For each task, the tasks the layout runs before it (plain recursion:
    only for the small layouts of property tests)."""
    result: dict[str, set[str]] = {}

    def walk(node: Layout, done: frozenset[str]) -> None:
        if isinstance(node, Leaf):
            result[node.task] = set(done)
        elif isinstance(node, Series):
            acc = set(done)
            for part in node.parts:
                walk(part, frozenset(acc))
                acc.update(leaves(part))
        else:
            for branch in node.branches:
                walk(branch, done)

    walk(layout, frozenset())
    return result


def is_normalised(layout: Layout) -> bool:
    stack = [layout]
    while stack:
        node = stack.pop()
        if isinstance(node, Leaf):
            continue
        children = node.parts if isinstance(node, Series) else node.branches
        if len(children) < 2 or any(isinstance(c, type(node)) for c in children):
            return False
        stack.extend(children)
    return True


def layered(n: int, max_layer: int, rng: random.Random) -> tuple[list[str], Parents, Durations]:
    """The benchmark's Kedro-like corpus: 1-2 parents from the previous three layers."""
    layers: list[list[str]] = []
    tasks: list[str] = []
    while len(tasks) < n:
        size = min(rng.randint(1, max_layer), n - len(tasks))
        layers.append([f"n{len(tasks) + i}" for i in range(size)])
        tasks.extend(layers[-1])
    parents: Parents = {}
    for i, layer in enumerate(layers):
        pool = [t for lay in layers[max(0, i - 3) : i] for t in lay]
        for t in layer:
            parents[t] = rng.sample(pool, min(len(pool), rng.randint(1, 2))) if pool else []
    return tasks, parents, {t: rng.lognormvariate(0.0, 1.0) for t in tasks}


# --- strategies --------------------------------------------------------------

durations_st = st.floats(min_value=0.0, max_value=100.0, allow_nan=False, allow_infinity=False)


@st.composite
def dags(draw: st.DrawFn, max_tasks: int = 40) -> tuple[list[str], Parents, Durations]:
    """Arbitrary DAGs: random edges forward in a hidden order, tasks shuffled."""
    n = draw(st.integers(1, max_tasks))
    density = draw(st.floats(0.0, 0.5))
    rng = random.Random(draw(st.integers(0, 2**32)))
    hidden = [f"t{i}" for i in range(n)]
    parents: Parents = {
        t: [hidden[j] for j in range(i) if rng.random() < density] for i, t in enumerate(hidden)
    }
    tasks = draw(st.permutations(hidden))
    durations = {t: draw(durations_st) for t in hidden}
    return list(tasks), parents, durations


SPTree = str | tuple[str, list["SPTree"]]


def sp_trees(max_leaves: int = 30) -> st.SearchStrategy[SPTree]:
    return st.recursive(
        st.just("leaf"),
        lambda kids: st.tuples(
            st.sampled_from(["series", "parallel"]), st.lists(kids, min_size=2, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def sp_dag(tree: SPTree, prefix: str = "s") -> tuple[list[str], Parents]:
    """The DAG of an SP composition: series joins sinks to sources (tasks in
    a topological order)."""
    tasks: list[str] = []
    parents: Parents = {}

    def build(node: SPTree) -> tuple[list[str], list[str]]:  # sources, sinks
        if isinstance(node, str):
            t = f"{prefix}{len(tasks)}"
            tasks.append(t)
            parents[t] = []
            return [t], [t]
        kind, kids = node
        built = [build(k) for k in kids]
        if kind == "parallel":
            return [s for b in built for s in b[0]], [s for b in built for s in b[1]]
        for (_, sinks), (sources, _) in pairwise(built):
            for child in sources:
                parents[child].extend(sinks)
        return built[0][0], built[-1][1]

    build(tree)
    return tasks, parents


@st.composite
def sp_dags(draw: st.DrawFn) -> tuple[list[str], Parents, Durations]:
    """Random SP DAGs, maybe with redundant (transitive) edges added."""
    tasks, parents = sp_dag(draw(sp_trees()))
    below = ancestors(tasks, parents)
    for child, extra in draw(
        st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), max_size=10)
    ):
        t = tasks[child % len(tasks)]
        candidates = sorted(below[t] - set(parents[t]))
        if candidates:
            parents[t].append(candidates[extra % len(candidates)])
    durations = {t: draw(durations_st) for t in tasks}
    return tasks, parents, durations


# --- properties --------------------------------------------------------------


@FAST
@given(dags())
def test_any_dag_gets_a_valid_normalised_layout_no_slower_than_levels(
    dag: tuple[list[str], Parents, Durations],
) -> None:
    tasks, parents, durations = dag
    layout = structure(tasks, parents, durations)
    check(layout, tasks, parents)
    assert is_normalised(layout) and normalise(layout) == layout
    ours = makespan(layout, durations)
    # (Tolerance: the same sum in another order can differ in the last bit.)
    assert ours <= makespan(by_levels(tasks, parents), durations) * (1 + 1e-12)
    assert ours >= critical_path(tasks, parents, durations) * (1 - 1e-12)


@FAST
@given(dags(max_tasks=25), st.sampled_from([0.0, 1e-4, 0.01]))
def test_tiny_budgets_still_give_valid_layouts(
    dag: tuple[list[str], Parents, Durations], budget: float
) -> None:
    tasks, parents, durations = dag
    layout = structure(tasks, parents, durations, budget_seconds=budget)
    check(layout, tasks, parents)
    assert makespan(layout, durations) <= makespan(by_levels(tasks, parents), durations) * (
        1 + 1e-12
    )


@FAST
@given(sp_dags())
def test_sp_dags_are_laid_out_exactly(dag: tuple[list[str], Parents, Durations]) -> None:
    tasks, parents, durations = dag
    layout = structure(tasks, parents, durations)
    check(layout, tasks, parents)
    assert math.isclose(
        makespan(layout, durations), critical_path(tasks, parents, durations), rel_tol=1e-9
    )
    # Stronger than the makespan: no precedence added at all.
    assert layout_before(layout) == ancestors(tasks, parents)


@FAST
@given(sp_dags(), st.floats(0.0, 1.0))
def test_sp_parts_of_non_sp_dags_are_exact_too(
    dag: tuple[list[str], Parents, Durations], n_seconds: float
) -> None:
    """Next to a non-SP component (an N) the search, not the SP fast path,
    lays the SP component out, and must still add nothing to it."""
    tasks, parents, durations = dag
    n_shape = {"na": [], "nb": [], "nc": ["na", "nb"], "nd": ["nb"]}
    all_tasks = [*tasks, *n_shape]
    all_parents = {**parents, **n_shape}
    all_durations = {**durations, **dict.fromkeys(n_shape, n_seconds)}
    layout = structure(all_tasks, all_parents, all_durations)
    check(layout, all_tasks, all_parents)
    before = layout_before(layout)
    truth = ancestors(tasks, parents)
    assert all(before[t] == truth[t] for t in tasks)
    expected = max(critical_path(tasks, parents, durations), 2 * n_seconds)
    assert makespan(layout, all_durations) <= expected * (1 + 1e-9)


@FAST
@given(dags(max_tasks=30), st.randoms(use_true_random=False))
def test_deterministic_whatever_the_mapping_order(
    dag: tuple[list[str], Parents, Durations], rnd: random.Random
) -> None:
    tasks, parents, durations = dag
    first = structure(tasks, parents, durations)
    keys = list(parents)
    rnd.shuffle(keys)
    reordered = {k: set(reversed(parents[k])) for k in keys}
    seconds = list(durations.items())
    rnd.shuffle(seconds)
    assert structure(tasks, reordered, dict(seconds)) == first
    assert structure(tasks, parents, durations) == first


@FAST
@given(dags(max_tasks=30))
def test_no_durations_means_unit_durations(dag: tuple[list[str], Parents, Durations]) -> None:
    tasks, parents, _ = dag
    ones = dict.fromkeys(tasks, 1.0)
    assert structure(tasks, parents) == structure(tasks, parents, ones)


# --- examples ----------------------------------------------------------------


def test_transitive_edges_do_not_cost_anything() -> None:
    parents = {"a": [], "b": ["a"], "c": ["a", "b"]}
    layout = structure(["a", "b", "c"], parents, {"a": 1.0, "b": 2.0, "c": 3.0})
    assert layout == Series((Leaf("a"), Leaf("b"), Leaf("c")))


def test_the_n_shape_adds_the_cheapest_precedence() -> None:
    # a -> c, b -> c, b -> d is not SP: some precedence must be added. With
    # a long, (a | b) ; (c | d) makes d wait for a at no cost.
    parents = {"a": [], "b": [], "c": ["a", "b"], "d": ["b"]}
    durations = {"a": 10.0, "b": 1.0, "c": 1.0, "d": 1.0}
    layout = structure(list(parents), parents, durations)
    check(layout, list(parents), parents)
    assert makespan(layout, durations) == critical_path(list(parents), parents, durations) == 11.0


def test_long_tasks_steer_the_layout() -> None:
    parents = {"a": [], "b": [], "c": ["a", "b"], "d": ["b"]}
    slow_d = {"a": 1.0, "b": 1.0, "c": 1.0, "d": 10.0}
    layout = structure(list(parents), parents, slow_d)
    assert makespan(layout, slow_d) == 11.0  # d must not wait for a


def test_layered_corpus_quality() -> None:
    """The benchmark's n=40 corpus, smaller: near the critical path."""
    rng = random.Random(40)
    over = []
    for _ in range(30):
        tasks, parents, durations = layered(40, 6, rng)
        layout = structure(tasks, parents, durations)
        check(layout, tasks, parents)
        over.append(makespan(layout, durations) / critical_path(tasks, parents, durations) - 1)
    over.sort()
    assert over[len(over) // 2] <= 0.005
    assert over[int(0.9 * len(over)) - 1] <= 0.05


def test_large_layered_dag_is_bounded_and_close(searches) -> None:
    tasks, parents, durations = layered(2000, 12, random.Random(2000))
    layout = structure(tasks, parents, durations)
    check(layout, tasks, parents)
    cp = critical_path(tasks, parents, durations)
    assert makespan(layout, durations) <= 1.15 * cp
    (search,) = searches
    assert_within_budget(search, parents)


def test_5000_task_chain() -> None:
    tasks = [f"c{i}" for i in range(5000)]
    parents = {t: [tasks[i - 1]] if i else [] for i, t in enumerate(tasks)}
    layout = structure(list(reversed(tasks)), parents)
    assert layout == Series(tuple(Leaf(t) for t in tasks))
    check(layout, tasks, parents)
    assert makespan(layout, dict.fromkeys(tasks, 1.0)) == 5000


def spine(steps: int) -> tuple[list[str], dict[str, list[str]]]:
    """A chain a0 -> a1 -> ... with a side task b_i after every a_i."""
    tasks: list[str] = []
    parents: dict[str, list[str]] = {}
    for i in range(steps):
        tasks += [f"a{i}", f"b{i}"]
        parents[f"a{i}"] = [f"a{i - 1}"] if i else []
        parents[f"b{i}"] = [f"a{i}"]
    return tasks, parents


def test_deep_sp_nesting_is_exact_without_a_search(searches) -> None:
    # A spine with a side task at every step nests Series in Parallel 5,000 deep.
    rng = random.Random(5)
    tasks, parents = spine(2500)
    durations = {t: rng.lognormvariate(0, 1) for t in tasks}
    layout = structure(tasks, parents, durations)
    assert searches == []  # the series-parallel fast path, not the budgeted search
    check(layout, tasks, parents)
    cp = critical_path(tasks, parents, durations)
    assert math.isclose(makespan(layout, durations), cp, rel_tol=1e-9)
    assert is_normalised(layout)  # (== would recurse 5,000 deep in dataclass __eq__)


def test_deep_sp_nesting_with_an_n_stays_bounded(searches) -> None:
    rng = random.Random(6)
    tasks, parents = spine(2500)
    durations = {t: rng.lognormvariate(0, 1) for t in tasks}
    cp = critical_path(tasks, parents, durations)

    # An N near one end: the search cuts the DAG once and lays out the deep
    # SP halves on the fast path, exactly (a regression test of that path).
    near_end = {**parents, "a2400": ["a2399", "b2"]}
    layout = structure(tasks, near_end, durations)
    check(layout, tasks, near_end)
    assert math.isclose(makespan(layout, durations), cp, rel_tol=1e-9)

    # An N deep inside: peeling 600 nested levels off is quadratic, so the
    # work cap cuts in; the result must still be valid, bounded and no
    # slower than levels.
    deep_inside = {**parents, "a1200": ["a1199", "b600"]}
    layout = structure(tasks, deep_inside, durations)
    assert searches[-1].work > searches[-1].window_until  # the cap did cut in
    assert_within_budget(searches[-1], deep_inside)
    check(layout, tasks, deep_inside)
    assert makespan(layout, durations) <= makespan(by_levels(tasks, deep_inside), durations)


def test_5000_task_layered_dag_finishes() -> None:
    tasks, parents, durations = layered(5000, 12, random.Random(5000))
    layout = structure(tasks, parents, durations)
    check(layout, tasks, parents)
    assert makespan(layout, durations) < makespan(by_levels(tasks, parents), durations)


def test_helpers_cope_with_deep_trees() -> None:
    deep: Layout = Leaf("t0")
    for i in range(1, 6000):
        deep = Series((deep, Leaf(f"t{i}"))) if i % 2 else Parallel((Leaf(f"t{i}"), deep))
    names = [f"t{i}" for i in range(6000)]
    assert sorted(leaves(deep)) == sorted(names)
    assert makespan(deep, dict.fromkeys(names, 1.0)) == 3001
    flat = normalise(deep)
    assert sorted(leaves(flat)) == sorted(names)
    chain = [f"t{i}" for i in range(1, 6000, 2)]
    check(deep, names, {t: [chain[j - 1]] if j else [] for j, t in enumerate(chain)})


def test_check_rejects_missing_and_early_tasks() -> None:
    parents = {"a": [], "b": ["a"]}
    with pytest.raises(ValueError, match="exactly once"):
        check(Leaf("a"), ["a", "b"], parents)
    with pytest.raises(ValueError, match="exactly once"):
        check(Series((Leaf("a"), Leaf("a"), Leaf("b"))), ["a", "b"], parents)
    with pytest.raises(ValueError, match="may start before"):
        check(Parallel((Leaf("a"), Leaf("b"))), ["a", "b"], parents)
    with pytest.raises(ValueError, match="may start before"):
        check(Series((Leaf("b"), Leaf("a"))), ["a", "b"], parents)
    check(Series((Leaf("a"), Leaf("b"))), ["a", "b"], parents)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(CycleError):
        structure(["a", "b"], {"a": ["b"], "b": ["a"]})
    with pytest.raises(ValueError, match="unknown"):
        structure(["a"], {"a": ["ghost"]})
    with pytest.raises(ValueError, match="unique"):
        structure(["a", "a"], {})
    with pytest.raises(ValueError, match="durations"):
        structure(["a"], {}, {"a": -1.0})
    with pytest.raises(ValueError, match="no duration"):
        structure(["a", "b"], {}, {"a": 1.0})


def test_edge_cases() -> None:
    assert structure([], {}) == Series(())
    assert structure(["x"], {}) == Leaf("x")
    assert structure(["x", "y"], {}) == Parallel((Leaf("x"), Leaf("y")))
    # Parents of tasks outside ``tasks`` are ignored; zero durations are fine.
    layout = structure(["x", "y"], {"y": ["x"], "other": ["x"]}, {"x": 0.0, "y": 0.0})
    assert layout == Series((Leaf("x"), Leaf("y")))
