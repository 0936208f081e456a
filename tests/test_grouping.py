"""``kedro-batch:grouping``: which nodes share a Batch job, and what the model expects."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra import asl
from infra.__main__ import main
from infra.config import JOB_START_SECONDS, job_start_seconds, parse
from infra.datasets import task_graph_for
from infra.errors import UserError
from infra.graph import DatasetInfo, NodeInfo, PipelineGraph, TaskGraph, one_task_per_node
from infra.grouping import Grouping, Model, NodeCost, compare, group
from infra.kedro_project import load_project
from infra.layout import check, critical_path, makespan
from infra.overrides import fits
from infra.plan import plan

ROOT = Path(__file__).resolve().parent.parent
SIMPLE = ("namespace", "none", "memory", "one-job")


def graph_of(
    parents: Mapping[str, Sequence[str]],
    namespaces: Mapping[str, str] | None = None,
    memory: Sequence[str] = (),
) -> PipelineGraph:
    """Nodes in the given (topological) order; node ``n`` writes ``n_out``,
    which its children read; outputs of ``memory`` nodes are MemoryDatasets."""
    nodes = tuple(
        NodeInfo(
            name=n,
            namespace=(namespaces or {}).get(n),
            inputs=tuple(f"{p}_out" for p in ps),
            outputs=(f"{n}_out",),
        )
        for n, ps in parents.items()
    )
    datasets = {
        f"{n}_out": DatasetInfo(f"{n}_out", in_catalog=n not in memory, type="pandas.CSVDataset")
        for n in parents
    }
    return PipelineGraph(
        name="p",
        nodes=nodes,
        parents={n: frozenset(ps) for n, ps in parents.items()},
        datasets=datasets,
    )


def model(
    graph: PipelineGraph,
    seconds: Mapping[str, float] | None = None,
    *,
    known: bool = True,
    mode: str = "structured",
    job_start: float = 60.0,
    classes: Mapping[str, str] | None = None,
    vcpu: Mapping[str, float] | None = None,
    limit: Callable[[Sequence[str]], bool] = lambda nodes: True,
) -> Model:
    return Model(
        job_start=job_start,
        mode=mode,
        nodes={
            n: NodeCost(
                (seconds or {}).get(n, 1.0),
                (vcpu or {}).get(n, 1.0),
                2048 * int((vcpu or {}).get(n, 1.0)),
                (classes or {}).get(n, "cpu"),
            )
            for n in graph.node_names
        },
        weigh=lambda v, _m: v,
        fits=limit,
        durations_known=known,
    )


def run_time(choice: Grouping, seconds: Mapping[str, float], job_start: float) -> float:
    """The deployed machine (tasks and layout as chosen) at these durations."""
    per_task = {t.name: job_start + sum(seconds[n] for n in t.nodes) for t in choice.tasks.tasks}
    if choice.layout is None:
        return critical_path(choice.tasks.names, choice.tasks.parents, per_task)
    return makespan(choice.layout, per_task)


def assert_valid(graph: PipelineGraph, tasks: TaskGraph) -> None:
    """Every node in exactly one task; the tasks' order respects every dependency."""
    owner = {n: t.name for t in tasks.tasks for n in t.nodes}
    assert sorted(owner) == sorted(graph.node_names)
    assert sum(len(t.nodes) for t in tasks.tasks) == len(graph.nodes)
    order = {t: i for i, t in enumerate(_topological(tasks))}
    for child, ps in graph.parents.items():
        for p in ps:
            if owner[p] == owner[child]:
                nodes = tasks.task(owner[child]).nodes
                assert nodes.index(p) < nodes.index(child)
            else:
                assert owner[p] in tasks.parents[owner[child]]
                assert order[owner[p]] < order[owner[child]]


def _topological(tasks: TaskGraph) -> list[str]:
    from infra.graph import topological_order

    return topological_order(tasks.names, tasks.parents)  # raises on a cycle


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 12) -> tuple[PipelineGraph, dict[str, float]]:
    n = draw(st.integers(1, max_nodes))
    names = [f"n{i}" for i in range(n)]
    parents = {
        t: sorted(draw(st.sets(st.sampled_from(names[:i]), max_size=3)) if i else [])
        for i, t in enumerate(names)
    }
    spaces = {t: draw(st.sampled_from(["a", "b", "c.d", ""])) for t in names}
    memory = [t for t in names if draw(st.booleans()) and draw(st.booleans())]
    seconds = {t: draw(st.floats(0.0, 900.0)) for t in names}
    graph = graph_of(parents, {t: s for t, s in spaces.items() if s}, memory)
    return graph, seconds


# --- safe without durations -------------------------------------------------------


@settings(max_examples=150, deadline=None, derandomize=True)
@given(dags(), st.data())
def test_default_without_durations_never_lengthens_a_run_whatever_the_durations(case, data):
    graph, true_seconds = case
    job_start = data.draw(st.floats(0.0, 120.0))
    mode = data.draw(st.sampled_from(asl.MODES))
    atoms = task_graph_for(graph, "persist")
    blind = model(graph, known=False, mode=mode)  # durations unknown: 1 s each
    fused = group(graph, atoms, "auto", blind)
    per_node = group(graph, atoms, "none", blind)
    assert_valid(graph, fused.tasks)
    if fused.layout is not None:
        check(fused.layout, fused.tasks.names, fused.tasks.parents)
    assert (
        run_time(fused, true_seconds, job_start)
        <= run_time(per_node, true_seconds, job_start) * (1 + 1e-9) + 1e-9
    )
    assert fused.expected.billed_job_seconds <= per_node.expected.billed_job_seconds + 1e-9


def test_default_fuses_the_example_chains_and_says_so():
    graph = load_project(ROOT / "example").pipelines["__default__"]
    chosen = group(graph, one_task_per_node(graph), "auto", model(graph, known=False))
    assert chosen.expected.tasks < 16
    assert chosen.expected.seconds < chosen.one_per_node.seconds
    assert (
        chosen.one_per_node == group(graph, one_task_per_node(graph), "none", model(graph)).expected
    )


# --- the search with durations ---------------------------------------------------------


@settings(max_examples=80, deadline=None, derandomize=True)
@given(dags(max_nodes=14), st.sampled_from(asl.MODES))
def test_auto_is_never_slower_than_a_simple_strategy_nor_bills_more_than_none(case, mode):
    graph, seconds = case
    atoms = task_graph_for(graph, "persist")
    results = compare(graph, atoms, model(graph, seconds, mode=mode))
    auto = results["auto"]
    assert_valid(graph, auto.tasks)
    best = min(results[s].expected.seconds for s in SIMPLE)
    assert auto.expected.seconds <= best * (1 + 1e-9) + 1e-9
    none = results["none"].expected
    assert auto.expected.billed_job_seconds <= none.billed_job_seconds * (1 + 1e-9) + 1e-9
    # The figures are the machine's own: recomputing them from its layout agrees.
    assert run_time(auto, seconds, 60.0) == pytest.approx(auto.expected.seconds)


def test_auto_fuses_short_nodes_and_keeps_long_parallel_ones_apart():
    # a -> b -> d and a -> c, then c -> e: b and c run ten minutes each.
    graph = graph_of({"a": [], "b": ["a"], "c": ["a"], "d": ["b"], "e": ["c"]})
    seconds = {"a": 1.0, "b": 600.0, "c": 600.0, "d": 1.0, "e": 1.0}
    chosen = group(graph, one_task_per_node(graph), "auto", model(graph, seconds))
    owner = {n: t.name for t in chosen.tasks.tasks for n in t.nodes}
    assert owner["b"] != owner["c"]  # they run side by side
    assert owner["b"] == owner["d"] and owner["c"] == owner["e"]  # no start-up for d, e
    assert chosen.expected.seconds == pytest.approx(61 + 60 + 601)
    assert chosen.one_per_node.seconds == pytest.approx(61 + 660 + 61)


def test_the_search_is_deterministic():
    graph = load_project(ROOT / "example").pipelines["__default__"]
    seconds = {n: 10.0 + 7 * i % 50 for i, n in enumerate(graph.node_names)}
    first = group(graph, one_task_per_node(graph), "auto", model(graph, seconds))
    again = group(graph, one_task_per_node(graph), "auto", model(graph, seconds))
    assert first.tasks == again.tasks and first.layout == again.layout


# --- constraints every strategy honours --------------------------------------------------


@pytest.mark.parametrize("strategy", ["auto", "namespace"])
def test_a_gpu_node_never_shares_a_task_with_cpu_nodes(strategy):
    graph = graph_of({"a": [], "gpu": ["a"], "b": ["gpu"]}, {"a": "m", "gpu": "m", "b": "m"})
    costs = model(graph, {"a": 1, "gpu": 1, "b": 1}, classes={"gpu": "gpu"})
    chosen = group(graph, one_task_per_node(graph), strategy, costs)
    assert_valid(graph, chosen.tasks)
    gpu_task = next(t for t in chosen.tasks.tasks if "gpu" in t.nodes)
    assert gpu_task.nodes == ("gpu",)
    assert len(chosen.tasks.tasks) == 3  # a and b cannot join: that would be a cycle


@pytest.mark.parametrize("strategy", ["auto", "namespace"])
def test_fused_tasks_stay_within_the_container_overrides_limit(strategy):
    names = [f"ns.{'x' * 300}_{i:02d}" for i in range(40)]
    graph = graph_of({n: names[i - 1 : i] for i, n in enumerate(names)}, dict.fromkeys(names, "ns"))

    def limit(nodes: Sequence[str]) -> bool:
        return fits(["kedro-batch-task", "--nodes", ",".join(nodes)], pipeline="p")

    chosen = group(graph, one_task_per_node(graph), strategy, model(graph, limit=limit))
    assert_valid(graph, chosen.tasks)
    assert all(limit(t.nodes) for t in chosen.tasks.tasks)
    assert 1 < len(chosen.tasks.tasks) < 40  # as few jobs as the limit allows


@pytest.mark.parametrize("strategy", ["auto", "namespace", "none"])
def test_intermediates_group_sets_stay_together(strategy):
    graph = graph_of(
        {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": ["d"]},
        memory=["a"],  # a's output is a MemoryDataset: a, b and c run in one job
    )
    atoms = task_graph_for(graph, "group")
    chosen = group(graph, atoms, strategy, model(graph, {"b": 900, "c": 900, "e": 900}))
    assert_valid(graph, chosen.tasks)
    (together,) = [t for t in chosen.tasks.tasks if "a" in t.nodes]
    assert {"a", "b", "c"} <= set(together.nodes)


def test_profiles_the_model_pays_for():
    # Fusing a 4-vCPU node with 1-vCPU ones bills the whole job at 4 vCPUs.
    graph = graph_of({"a": [], "big": ["a"], "b": ["big"]})
    seconds = {"a": 300.0, "big": 30.0, "b": 300.0}
    chosen = group(graph, one_task_per_node(graph), "auto", model(graph, seconds, vcpu={"big": 4}))
    none = chosen.one_per_node
    assert chosen.expected.billed_job_seconds <= none.billed_job_seconds
    assert none.billed_job_seconds == pytest.approx(360 + 90 * 4 + 360)


# --- namespace: Kedro's semantics ---------------------------------------------------------


def test_namespace_puts_each_example_namespace_in_one_task():
    graph = load_project(ROOT / "example").pipelines["__default__"]
    chosen = group(graph, one_task_per_node(graph), "namespace", model(graph, known=False))
    by_namespace: dict[str, set[str]] = {}
    for n in graph.nodes:
        by_namespace.setdefault(n.namespace.split(".")[0], set()).add(n.name)
    assert sorted(set(t.nodes) for t in chosen.tasks.tasks) == sorted(by_namespace.values())
    assert [t.name for t in chosen.tasks.tasks] == [
        "ingest.4-nodes",
        "features.5-nodes",
        "train.4-nodes",
        "report.3-nodes",
    ]


def test_namespaces_that_depend_on_each_other_merge_and_plain_nodes_stay_alone():
    graph = graph_of(
        {"x.a": [], "y.b": ["x.a"], "x.c": ["y.b"], "solo": ["x.c"], "x.d": ["solo"]},
        {"x.a": "x", "y.b": "y", "x.c": "x", "x.d": "x"},
    )
    chosen = group(graph, one_task_per_node(graph), "namespace", model(graph))
    assert_valid(graph, chosen.tasks)
    tasks = sorted(sorted(t.nodes) for t in chosen.tasks.tasks)
    # x and y feed each other, and x.d depends on solo, which depends on x: all one cycle.
    assert tasks == [["solo", "x.a", "x.c", "x.d", "y.b"]]


# --- config, plan, synth ------------------------------------------------------------------


def test_config_keys_and_defaults():
    assert parse({}).grouping == "auto"
    assert job_start_seconds(parse({})) == JOB_START_SECONDS["FARGATE_SPOT"]
    assert job_start_seconds(parse({"computeType": "EC2"})) == JOB_START_SECONDS["EC2"]
    assert job_start_seconds(parse({"jobStartSeconds": "45"})) == 45.0
    assert parse({"grouping": "namespace"}).grouping == "namespace"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("grouping=sometimes", "kedro-batch:grouping: got 'sometimes'; expected one of"),
        ("jobStartSeconds=-5", "kedro-batch:jobStartSeconds: got '-5'; expected a positive"),
        ("jobStartSeconds=soon", "kedro-batch:jobStartSeconds: got 'soon'"),
        (
            'durations={"train.fit_ridge": 30}',
            "kedro-batch:durations: 'train.fit_ridge' is neither a node nor a tag of the "
            "deployed pipelines (__default__); did you mean 'train.fit_ridge_model'?",
        ),
    ],
)
def test_bad_values_exit_2_naming_the_key(override, message, capsys, tmp_path):
    assert main(["synth", "--stack", "dev", "-c", override, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_plan_groups_by_the_stack_settings():
    settings = parse({"grouping": "namespace", "kedroEnv": "dev"})
    pipeline = plan(settings).pipelines["__default__"]
    assert len(pipeline.tasks.tasks) == 4
    assert pipeline.layout is pipeline.grouping.layout
    durations = {n: 5.0 for n in pipeline.graph.node_names}
    known = plan(parse({"durations": durations, "kedroEnv": "dev"})).pipelines["__default__"]
    assert known.grouping.durations_known
    assert known.grouping.expected.seconds <= pipeline.grouping.expected.seconds


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("synth")
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["synth", "--stack", "dev", "--out", str(out)]) == 0
    return out, buffer.getvalue()


def test_synth_prints_the_choice_and_writes_plan_json(synthesized):
    out, printed = synthesized
    assert "grouping auto (durations unknown, 60 s start-up per job)" in printed
    assert "one task per node: 16 tasks" in printed
    report = json.loads((out / "plan.json").read_text())
    assert report["stack"] == "dev"
    entry = report["pipelines"]["__default__"]
    assert {k: entry[k] for k in ("grouping", "orchestration", "jobStartSeconds")} == {
        "grouping": "auto",
        "orchestration": "structured",
        "jobStartSeconds": 60.0,
    }
    assert entry["durationsKnown"] is False and entry["nodes"] == 16
    assert (
        set(entry["expected"])
        == set(entry["onePerNode"])
        == {
            "seconds",
            "billedJobSeconds",
            "tasks",
        }
    )
    assert entry["expected"]["tasks"] == len(entry["tasks"]) < entry["onePerNode"]["tasks"] == 16
    assert entry["expected"]["seconds"] < entry["onePerNode"]["seconds"]
    definition = json.loads((out / "__default__.asl.json").read_text())
    states = dict(asl.iter_states(definition))
    for task in entry["tasks"]:
        command = states[task["state"]]["Parameters"]["ContainerOverrides"]["Command"]
        assert command[command.index("--nodes") + 1] == ",".join(task["nodes"])
    assert sorted(n for t in entry["tasks"] for n in t["nodes"]) == sorted(
        n for t in entry["tasks"] for n in t["nodes"]
    )
    assert len({t["state"] for t in entry["tasks"]}) == len(entry["tasks"])


def test_plan_diff_puts_base_and_pull_request_side_by_side(synthesized, tmp_path, capsys):
    out, _ = synthesized
    base = json.loads((out / "plan.json").read_text())
    base["pipelines"]["__default__"]["grouping"] = "none"
    base["pipelines"]["__default__"]["expected"] = base["pipelines"]["__default__"]["onePerNode"]
    (tmp_path / "base.json").write_text(json.dumps(base))
    assert main(["plan-diff", str(tmp_path / "base.json"), str(out / "plan.json")]) == 0
    text = capsys.readouterr().out
    assert "| | base branch | none | 16 |" in text
    assert "| | **this pull request** | auto |" in text and "%)" in text
    assert main(["plan-diff", str(tmp_path / "missing.json"), str(out / "plan.json")]) == 0
    assert "The base branch has no plan.json" in capsys.readouterr().out
    assert main(["plan-diff", str(out / "plan.json"), str(tmp_path / "missing.json")]) == 2


def test_state_names_say_what_a_fused_task_runs():
    graph = load_project(ROOT / "example").pipelines["__default__"]
    chosen = group(graph, one_task_per_node(graph), "auto", model(graph, known=False))
    fused = [t for t in chosen.tasks.tasks if len(t.nodes) > 1]
    assert fused
    for task in fused:
        first, last = task.nodes[0], task.nodes[-1]
        namespace = first.split(".")[0]
        assert task.name in (f"{first}..{last}", f"{namespace}.{len(task.nodes)}-nodes")
    definition = asl.build_definition(
        graph,
        job_queue="q",
        job_definition="d",
        groups=[t.nodes for t in chosen.tasks.tasks],
        layout=chosen.layout,
    )
    names = [name for name, state in asl.iter_states(definition) if state["Type"] == "Task"]
    assert len(names) == len(set(names)) == len(chosen.tasks.tasks)
    assert set(names) == {t.name for t in chosen.tasks.tasks}


def test_unknown_strategy_is_refused_before_planning():
    with pytest.raises(UserError, match="kedro-batch:grouping"):
        parse({"grouping": "memory"})


def test_unmeasured_nodes_count_as_the_median_measured_one():
    from infra.plan import durations_known, node_seconds

    graph = graph_of({"a": [], "b": ["a"], "c": ["b"], "d": ["c"]})
    assert node_seconds(graph, {}) == dict.fromkeys("abcd", 1.0)
    assert not durations_known(graph, {})
    seconds = node_seconds(graph, {"a": 10.0, "b": 30.0, "c": 600.0})
    assert seconds == {"a": 10.0, "b": 30.0, "c": 600.0, "d": 30.0}
    assert durations_known(graph, {"a": 10.0})
