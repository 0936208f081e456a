"""Benchmark of the Step Functions layout: how much slower than the DAG allows.

Run from the repository root: ``python benchmarks/compiler.py [--quick]``.

For every seeded corpus it prints, for ``structure`` and for ``by_levels``,
the increase of the layout's makespan over the DAG's critical path (the best
any schedule can do) and ``structure``'s compile time. A second table gives
the Step Functions footprint of whole compiled pipelines (the example project
and layered DAGs up to 5,000 nodes) in both modes: compile time, state
machines, largest definition, and the most history events and state payload
of one execution. The corpus generators are plain functions so that other
benchmarks can import them.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra import asl  # noqa: E402 (needs the path above)
from infra.graph import NodeInfo, PipelineGraph  # noqa: E402
from infra.layout import by_levels, check, critical_path, makespan, structure  # noqa: E402


@dataclass(frozen=True)
class Dag:
    """One benchmark input: tasks in a topological order, edges, durations."""

    tasks: list[str]
    parents: dict[str, list[str]]
    durations: dict[str, float]


def layered_dag(n: int, max_layer: int, rng: random.Random) -> Dag:
    """A Kedro-like pipeline: layers of 1..``max_layer`` nodes, each node after
    the first layer reading 1-2 outputs of the previous three layers, with
    lognormal(0, 1) run times (most nodes quick, a few slow)."""
    layers: list[list[str]] = []
    tasks: list[str] = []
    while len(tasks) < n:
        size = min(rng.randint(1, max_layer), n - len(tasks))
        layer = [f"n{len(tasks) + i:05d}" for i in range(size)]
        layers.append(layer)
        tasks.extend(layer)
    parents: dict[str, list[str]] = {}
    for i, layer in enumerate(layers):
        pool = [t for lay in layers[max(0, i - 3) : i] for t in lay]
        for t in layer:
            parents[t] = sorted(rng.sample(pool, min(len(pool), rng.randint(1, 2)))) if pool else []
    durations = {t: rng.lognormvariate(0.0, 1.0) for t in tasks}
    return Dag(tasks, parents, durations)


def random_sp_dag(n: int, rng: random.Random, transitive: float = 0.0) -> Dag:
    """A random series-parallel DAG of ``n`` tasks, built by random series and
    parallel composition, plus roughly ``transitive * n`` redundant edges (an
    exact layout must see through them), with lognormal(0, 1) run times."""
    counter = iter(range(n))
    # A part is (tasks, sources, sinks); compose with an explicit stack so that
    # large ``n`` cannot exhaust Python's recursion limit.
    parents: dict[str, set[str]] = {}

    def build(size: int) -> tuple[list[str], list[str], list[str]]:
        work: list[tuple[int, str | None, int]] = [(size, None, 0)]
        done: list[tuple[list[str], list[str], list[str]]] = []
        while work:
            size, kind, arity = work.pop()
            if kind is None:
                if size == 1:
                    t = f"s{next(counter):05d}"
                    parents[t] = set()
                    done.append(([t], [t], [t]))
                    continue
                arity = rng.randint(2, min(4, size))
                cuts = sorted(rng.sample(range(1, size), arity - 1))
                sizes = [b - a for a, b in zip([0, *cuts], [*cuts, size], strict=True)]
                work.append((size, rng.choice(("series", "parallel")), arity))
                work.extend((s, None, 0) for s in reversed(sizes))
                continue
            parts = [done.pop() for _ in range(arity)][::-1]
            if kind == "parallel":
                done.append(
                    (
                        [t for p in parts for t in p[0]],
                        [t for p in parts for t in p[1]],
                        [t for p in parts for t in p[2]],
                    )
                )
            else:
                for before, after in pairwise(parts):
                    for child in after[1]:
                        parents[child].update(before[2])
                done.append(([t for p in parts for t in p[0]], parts[0][1], parts[-1][2]))
        return done[0]

    tasks, _, _ = build(n)
    if transitive and n > 2:
        ancestors: dict[str, set[str]] = {}
        for t in tasks:  # built in a topological order
            ancestors[t] = set(parents[t]).union(*(ancestors[p] for p in parents[t]))
        for _ in range(int(transitive * n)):
            child = rng.choice(tasks)
            extra = sorted(ancestors[child] - parents[child])
            if extra:
                parents[child].add(rng.choice(extra))
    durations = {t: rng.lognormvariate(0.0, 1.0) for t in tasks}
    return Dag(tasks, {t: sorted(ps) for t, ps in parents.items()}, durations)


def random_dag(n: int, rng: random.Random, max_parents: int = 3) -> Dag:
    """Not Kedro-like: each task reads 0-``max_parents`` outputs of any
    earlier task, so edges span the whole DAG (robustness, not a target)."""
    tasks = [f"r{i:05d}" for i in range(n)]
    parents = {
        t: sorted({tasks[rng.randrange(i)] for _ in range(rng.randint(0, max_parents))})
        if i
        else []
        for i, t in enumerate(tasks)
    }
    durations = {t: rng.lognormvariate(0.0, 1.0) for t in tasks}
    return Dag(tasks, parents, durations)


@dataclass(frozen=True)
class Corpus:
    name: str
    graphs: Callable[[], Iterator[Dag]]


def corpora(quick: bool) -> list[Corpus]:
    def layered(n: int, max_layer: int, count: int, seed: int) -> Callable[[], Iterator[Dag]]:
        def gen() -> Iterator[Dag]:
            rng = random.Random(seed)
            for _ in range(count):
                yield layered_dag(n, max_layer, rng)

        return gen

    def sp(n: int, count: int, seed: int) -> Callable[[], Iterator[Dag]]:
        def gen() -> Iterator[Dag]:
            rng = random.Random(seed)
            for _ in range(count):
                yield random_sp_dag(n, rng, transitive=0.3)

        return gen

    def anywhere(n: int, count: int, seed: int) -> Callable[[], Iterator[Dag]]:
        def gen() -> Iterator[Dag]:
            rng = random.Random(seed)
            for _ in range(count):
                yield random_dag(n, rng)

        return gen

    scale = 5 if quick else 1
    return [
        Corpus("layered n=40 (layers 1-6)", layered(40, 6, 100 // scale, 40)),
        Corpus("layered n=200 (layers 1-12)", layered(200, 12, 100 // scale, 200)),
        Corpus("layered n=2000 (layers 1-12)", layered(2000, 12, 5 if not quick else 2, 2000)),
        Corpus("random SP n=60 (+transitive)", sp(60, 100 // scale, 60)),
        Corpus("random SP n=1000 (+transitive)", sp(1000, 10 // (2 if quick else 1), 1000)),
        Corpus("random long-edge DAG n=200", anywhere(200, 20 // scale, 201)),
    ]


def _increase(value: float, best: float) -> float:
    """Percent over the critical path; rounding noise (sums in another
    order) shows as 0, not -0.00."""
    percent = 100 * (value / best - 1)
    return 0.0 if abs(percent) < 1e-9 else percent


def _pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile: a value some graph actually had."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def run(quick: bool) -> None:
    header = (
        f"{'corpus':32} {'layout':10} {'graphs':>6} {'median %':>9} {'p90 %':>8} "
        f"{'worst %':>8} {'ms med':>8} {'ms max':>8}"
    )
    print(header)
    print("-" * len(header))
    for corpus in corpora(quick):
        over: dict[str, list[float]] = {"structure": [], "by_levels": []}
        ms: list[float] = []
        for dag in corpus.graphs():
            cp = critical_path(dag.tasks, dag.parents, dag.durations)
            start = time.perf_counter()
            layout = structure(dag.tasks, dag.parents, dag.durations)
            ms.append(1000 * (time.perf_counter() - start))
            check(layout, dag.tasks, dag.parents)
            over["structure"].append(_increase(makespan(layout, dag.durations), cp))
            levels = by_levels(dag.tasks, dag.parents)
            over["by_levels"].append(_increase(makespan(levels, dag.durations), cp))
        for name, values in over.items():
            times = (
                f"{statistics.median(ms):8.1f} {max(ms):8.1f}"
                if name == "structure"
                else f"{'':8} {'':8}"
            )
            print(
                f"{corpus.name:32} {name:10} {len(values):6d} {statistics.median(values):9.2f} "
                f"{_pct(values, 0.9):8.2f} {max(values):8.2f} {times}"
            )


QUEUE = "arn:aws:batch:eu-west-1:123456789012:job-queue/kedro-batch-prod-queue-1a2b3c4"
JOBDEF = "arn:aws:batch:eu-west-1:123456789012:job-definition/kedro-batch-prod-job-5d6e7f8:12"


def _pipeline(dag: Dag) -> tuple[PipelineGraph, dict[str, float]]:
    """The DAG as a Kedro pipeline with Kedro-like node names (namespace.name),
    and its durations by node name."""
    name = {t: f"ns{i % 7}.process_{t}" for i, t in enumerate(dag.tasks)}
    graph = PipelineGraph(
        name="bench",
        nodes=tuple(NodeInfo(name[t]) for t in dag.tasks),
        parents={name[t]: frozenset(name[p] for p in dag.parents[t]) for t in dag.tasks},
    )
    return graph, {name[t]: d for t, d in dag.durations.items()}


def footprint(quick: bool) -> None:
    from infra.kedro_project import load_project

    header = (
        f"{'pipeline':28} {'mode':10} {'nodes':>6} {'compile s':>9} {'machines':>8} "
        f"{'max KiB':>8} {'max events':>10} {'max payload KiB':>15}"
    )
    print()
    print(header)
    print("-" * len(header))
    example = load_project(ROOT / "example").pipelines["__default__"]
    pipelines: list[tuple[str, PipelineGraph, dict[str, float] | None]] = [
        ("example __default__", example, None)
    ]
    for n in (40, 200, 2000) if quick else (40, 200, 2000, 5000):
        layered, node_seconds = _pipeline(layered_dag(n, 12, random.Random(1)))
        pipelines.append((f"layered n={n}", layered, node_seconds))
    for label, graph, durations in pipelines:
        for mode in ("structured", "exact"):
            start = time.perf_counter()
            machines = asl.build_machines(
                graph, job_queue=QUEUE, job_definition=JOBDEF, mode=mode, durations=durations
            )
            seconds = time.perf_counter() - start
            usage = [asl.check_limits(m.template, label) for m in machines]
            print(
                f"{label:28} {mode:10} {len(graph.nodes):6d} {seconds:9.2f} {len(machines):8d} "
                f"{max(u.definition_bytes for u in usage) / 1024:8.0f} "
                f"{max(u.history_events for u in usage):10d} "
                f"{max(u.payload_bytes for u in usage) / 1024:15.1f}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer graphs per corpus")
    args = parser.parse_args(argv)
    run(args.quick)
    footprint(args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
