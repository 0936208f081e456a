"""Deploy-time analysis: what crosses a container boundary, and the task graph.

On the example project (namespaces, dataset factories, MemoryDatasets that
cross modular pipelines, a versioned model), on hand-made graphs (an induced
cycle), and as properties of random pipelines.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kedro_batch_runtime.boundaries import Storage
from kedro_batch_runtime.layout import DataLayout

from infra.datasets import (
    INTERMEDIATES_KEY,
    Role,
    boundary_datasets,
    check_bucket_places,
    check_dataset_access,
    memory_groups,
    moved_datasets,
    task_graph_for,
    uses_spark,
)
from infra.errors import UserError
from infra.graph import (
    DatasetInfo,
    NodeInfo,
    PipelineGraph,
    TaskGraph,
    one_task_per_node,
    topological_order,
)
from infra.kedro_project import load_project

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "projects"

RAW = ["raw_products", "raw_sales", "raw_stores", "raw_promotions"]
MEMORY_CROSSING = {
    "ingest.sales_clean",
    "stores",
    "features.weekly_demand",
    "lag_coverage",
    "train.train_set",
    "train.test_set",
    "model_metrics",
}
LOCAL_CROSSING = {
    "ingest.products_clean",
    "sales_master",
    "features.lag_features",  # from the {namespace}.{name}_features factory
    "features.price_features",
    "model_input",
    "demand_model",
    "holdout_predictions",
    "region_accuracy_report",  # from the {name}_report factory
}
FINAL = {"next_week_forecast", "performance_report"}


@pytest.fixture(scope="module")
def example():
    return load_project(ROOT / "example", ["__default__", "report"]).pipelines


@pytest.fixture(scope="module")
def graph(example) -> PipelineGraph:
    return example["__default__"]


# --- classification -----------------------------------------------------------


def test_example_datasets_at_task_boundaries(graph):
    found = {d.name: d for d in boundary_datasets(graph, one_task_per_node(graph))}
    by = {
        (role, kind): {name for name, d in found.items() if (d.role, d.storage) == (role, kind)}
        for role in Role
        for kind in Storage
    }
    assert by[Role.FREE_INPUT, Storage.LOCAL] == set(RAW)
    assert by[Role.CROSSING, Storage.MEMORY] == MEMORY_CROSSING
    assert by[Role.CROSSING, Storage.LOCAL] == LOCAL_CROSSING
    assert by[Role.FINAL_OUTPUT, Storage.LOCAL] == FINAL
    assert len(found) == len(RAW) + len(MEMORY_CROSSING) + len(LOCAL_CROSSING) + len(FINAL)
    assert not any(name.startswith("params:") or name == "parameters" for name in found)
    stores = found["stores"]
    assert stores.producer == "ingest.clean_stores"
    assert stores.consumers == ("ingest.build_sales_master", "report.summarise_accuracy_by_region")
    assert found["raw_sales"].filepath == "data/01_raw/sales.csv"


def test_only_what_leaves_a_task_is_at_a_boundary(graph):
    tasks = task_graph_for(graph, "group")
    found = {d.name for d in boundary_datasets(graph, tasks) if d.role is Role.CROSSING}
    assert not found & MEMORY_CROSSING
    assert "sales_master" not in found  # written and read inside the fused task
    assert "features.lag_features" in found  # read by profile_lag_coverage's task


# --- persist -----------------------------------------------------------------


def test_persist_is_one_task_per_node(graph):
    assert task_graph_for(graph, "persist") == one_task_per_node(graph)


# --- group -------------------------------------------------------------------


def test_group_fuses_the_example_along_memory_datasets(graph):
    tasks = task_graph_for(graph, "group")
    assert {frozenset(t.nodes) for t in tasks.tasks} == {
        frozenset({"ingest.clean_products"}),
        # clean_stores feeds stores to summarise_accuracy_by_region, which reads
        # holdout_predictions of train, which reads features, which read
        # sales_master of build_sales_master: fused, that group would be a
        # cycle, so everything on it is one task.
        frozenset(
            {
                "ingest.clean_sales",
                "ingest.clean_stores",
                "ingest.build_sales_master",
                "features.aggregate_weekly_demand",
                "features.build_lag_features",
                "features.build_price_features",
                "features.assemble_model_input",
                "train.split_train_test",
                "train.fit_ridge_model",
                "train.predict_holdout",
                "report.summarise_accuracy_by_region",
            }
        ),
        frozenset(
            {
                "features.profile_lag_coverage",
                "train.evaluate_model",
                "report.build_performance_report",
            }
        ),
        frozenset({"report.forecast_next_week"}),
    }
    assert_valid_grouping(graph, tasks)


def test_group_merges_an_induced_cycle():
    # a -> c through a MemoryDataset; a -> b -> c through catalog datasets.
    # Fusing {a, c} would make {a, c} -> b -> {a, c}: a cycle, so b joins.
    graph = make_graph(
        {
            "a": (["raw"], ["m", "x"]),
            "b": (["x"], ["y"]),
            "c": (["m", "y"], ["z"]),
            "d": (["raw"], ["w"]),
        },
        memory={"m"},
    )
    assert memory_groups(graph) == [["a", "c"]]
    tasks = task_graph_for(graph, "group")
    assert [t.nodes for t in tasks.tasks] == [("a", "b", "c"), ("d",)]
    assert dict(tasks.parents) == {tasks.tasks[0].name: frozenset(), "d": frozenset()}
    assert_valid_grouping(graph, tasks)


def test_group_leaves_a_pipeline_without_memory_datasets_alone():
    graph = make_graph({"a": (["raw"], ["x"]), "b": (["x"], ["y"])}, memory=set())
    assert task_graph_for(graph, "group") == one_task_per_node(graph)


def test_group_fuses_default_named_nodes_across_namespaces():
    graph = load_project(FIXTURES / "namespaced_defaults").pipelines["__default__"]
    tasks = task_graph_for(graph, "group")
    assert_valid_grouping(graph, tasks)
    summary = next(t for t in tasks.tasks if any(n.startswith("beta.") for n in t.nodes))
    assert any(n.startswith("alpha.") for n in summary.nodes)


# --- error -------------------------------------------------------------------


def test_error_names_every_offender_with_its_nodes_and_the_fix(graph):
    with pytest.raises(UserError) as raised:
        task_graph_for(graph, "error", env="aws")
    message = str(raised.value)
    assert message.startswith(f"{INTERMEDIATES_KEY} is 'error' and 21 dataset(s)")
    lines = {
        line.split(" ", 4)[3]: line for line in message.splitlines() if line.startswith("  - ")
    }
    assert set(lines) == set(RAW) | MEMORY_CROSSING | LOCAL_CROSSING | FINAL
    assert lines["stores"] == (
        "  - stores (MemoryDataset): written by ingest.clean_stores, "
        "read by ingest.build_sales_master, report.summarise_accuracy_by_region"
    )
    assert lines["raw_sales"] == (
        "  - raw_sales (local path data/01_raw/sales.csv): a free input, read by ingest.clean_sales"
    )
    assert "read by no node" in lines["performance_report"]
    assert "conf/aws/catalog.yml" in message
    assert f"set {INTERMEDIATES_KEY} to persist or group" in message


def test_error_accepts_a_pipeline_whose_boundaries_are_remote():
    graph = make_graph({"a": (["raw"], ["x"]), "b": (["x"], ["y"])}, memory=set())
    assert task_graph_for(graph, "error") == one_task_per_node(graph)


def test_error_accepts_memory_final_outputs():
    graph = make_graph({"a": (["raw"], ["x"]), "b": (["x"], ["m"])}, memory={"m"})
    assert task_graph_for(graph, "error") == one_task_per_node(graph)


# --- refusals in every mode --------------------------------------------------


@pytest.mark.parametrize("mode", ["persist", "group", "error"])
def test_a_memory_dataset_nothing_writes_is_refused(example, mode):
    with pytest.raises(UserError) as raised:
        task_graph_for(example["report"], mode)
    message = str(raised.value)
    assert "pipeline 'report' reads 3 MemoryDataset(s) that none of its nodes writes" in message
    for name in ("stores", "model_metrics", "lag_coverage"):
        assert f"  - {name} (MemoryDataset): a free input" in message


def _with_paths(graph: PipelineGraph, paths: dict[str, tuple[str, str]]) -> PipelineGraph:
    """``graph`` with datasets moved to ``name -> (type, filepath)``."""
    datasets = dict(graph.datasets)
    for name, (type_, filepath) in paths.items():
        datasets[name] = DatasetInfo(name=name, in_catalog=True, type=type_, filepath=filepath)
    return replace(graph, datasets=datasets)


def _local() -> PipelineGraph:
    """a -> b -> c over a Spark input on an absolute path, a custom and a pandas dataset."""
    return _with_paths(
        make_graph({"a": (["raw"], ["x"]), "b": (["x"], ["y"]), "c": (["y"], ["z"])}, {"z"}),
        {
            "raw": ("kedro_datasets.spark.spark_dataset.SparkDataset", "/dbfs/raw/events"),
            "x": ("my_project.datasets.ImageDataset", "data/02_intermediate/x.png"),
            "y": ("kedro_datasets.pandas.csv_dataset.CSVDataset", "data/03_primary/y.csv"),
        },
    )


def test_moved_datasets_say_how_each_local_dataset_reaches_the_bucket():
    moved = {m.name: m for m in moved_datasets(_local(), {"y": "stage"})}
    assert sorted(moved) == ["raw", "x", "y"]  # z: memory; nothing else is local
    assert {n: m.decision.access.value for n, m in moved.items()} == {
        "raw": "stage",
        "x": "stage",
        "y": "stage",
    }
    assert moved["y"].decision.reason == "kedro-batch:datasetAccess 'y'"
    assert (moved["raw"].absolute, moved["raw"].place, moved["raw"].produced) == (
        True,
        "dbfs/raw/events",
        False,
    )
    layout = DataLayout("b", "r1")
    assert moved["x"].location(layout, "V") == "s3://b/runs/r1/data/02_intermediate/x.png"
    assert moved_datasets(_local(), {})[2].decision.access.value == "direct"  # y: pandas
    assert uses_spark([_local()]) and not uses_spark([make_graph({"a": (["r"], ["o"])}, set())])


def test_dataset_access_keys_must_name_a_dataset_that_moves():
    check_dataset_access({"x": "direct", "{name}": "stage"}, [_local()])
    with pytest.raises(UserError, match=r"'xx' is not a dataset .* did you mean 'x'\?"):
        check_dataset_access({"xx": "stage"}, [_local()])
    remote = make_graph({"a": (["raw"], ["x"])}, memory=set())
    with pytest.raises(UserError, match="'raw' matches raw, which kedro-batch does not move"):
        check_dataset_access({"raw": "stage"}, [remote])


def _placed(name: str = "p", **paths: str | tuple[str, bool]) -> PipelineGraph:
    """``read`` reads ``raw`` and writes ``out``; ``use`` reads ``out``: each
    dataset at its path (``(path, versioned)`` for a versioned one)."""
    graph = make_graph({"read": (["raw"], ["out"]), "use": (["out"], ["end"])}, {"end"})
    datasets = dict(graph.datasets)
    for dataset, path in paths.items():
        filepath, versioned = path if isinstance(path, tuple) else (path, False)
        datasets[dataset] = DatasetInfo(
            name=dataset, in_catalog=True, type="pandas.CSVDataset", filepath=filepath,
            versioned=versioned,
        )  # fmt: skip
    return replace(graph, name=name, datasets=datasets)


@pytest.mark.parametrize(
    ("raw", "out"),
    [
        ("data/x.csv", ("/data/x.csv", True)),  # both shared: the same key
        ("/data", ("data/01_raw/x.csv", True)),  # a folder over the other's file
        ("file:///data/01_raw/x.csv", ("data/01_raw", True)),  # a file below the other's folder
    ],
)
def test_a_relative_and_an_absolute_path_on_one_bucket_key_are_refused(raw, out):
    with pytest.raises(UserError) as raised:
        check_bucket_places([_placed(raw=raw, out=out)])
    message = str(raised.value)
    assert message.startswith("datasets ")
    assert "'raw'" in message and "'out'" in message and "without its leading /" in message
    assert "change one of the paths" in message


def test_bucket_keys_clash_across_pipelines_but_run_scoped_data_only_within_one():
    # Free inputs are shared by every pipeline of the deployment (one bucket).
    with pytest.raises(UserError, match=r"'raw' .* and 'raw'"):
        check_bucket_places([_placed("a", raw="/data/x.csv"), _placed("b", raw="data/x.csv")])
    # An unversioned output lives under its run, not beside a free input.
    check_bucket_places([_placed(raw="data/x.csv", out="/data/x.csv")])
    with pytest.raises(UserError):
        check_bucket_places([_placed(raw="s3://b/raw.csv", out="/data/x", end="data/x/y.csv")])
    # Paths of one kind that overlap overlap on the user's disk too: their own layout.
    check_bucket_places([_placed(raw="data/x", out=("data/x/y.csv", True))])
    check_bucket_places([_placed(raw="/data/x.csv", out=("/data/x.csv", True))])


@pytest.mark.parametrize("raw", ["/runs/x.csv", "runs/2026/x.csv", "file:///runs"])
def test_shared_data_under_the_expiring_runs_prefix_is_refused(raw):
    with pytest.raises(UserError) as raised:
        check_bucket_places([_placed(raw=raw)])
    message = str(raised.value)
    assert message.startswith("dataset 'raw' of pipeline 'p'")
    assert "under runs/" in message and "runDataExpirationDays" in message
    # Unversioned outputs are kept per run anyway (runs/<run id>/runs/...).
    check_bucket_places([_placed(raw="data/raw.csv", out="/runs/out.csv")])
    check_bucket_places([_placed(raw="data/raw.csv", out="/runsheets/out.csv")])


@pytest.mark.parametrize("mode", ["persist", "group"])
def test_a_path_climbing_out_of_the_project_is_refused_at_a_task_boundary(mode):
    graph = _with_paths(_local(), {"x": ("pandas.CSVDataset", "../shared/x.csv")})
    with pytest.raises(UserError) as raised:
        task_graph_for(graph, mode)
    assert "  - x (local path ../shared/x.csv): written by a, read by b" in str(raised.value)
    assert "absolute path or an s3:// URL" in str(raised.value)


def test_a_path_climbing_out_of_the_project_inside_one_task_is_fine():
    # a and b are fused by the MemoryDataset m: k never leaves their task.
    graph = make_graph({"a": (["raw"], ["m", "k"]), "b": (["m", "k"], ["out"])}, {"m"})
    graph = _with_paths(graph, {"k": ("pandas.CSVDataset", "../scratch/k.csv")})
    assert [t.nodes for t in task_graph_for(graph, "group").tasks] == [("a", "b")]


def test_unknown_mode_names_the_key(graph):
    with pytest.raises(UserError, match=f"unknown {INTERMEDIATES_KEY} value 'keep'"):
        task_graph_for(graph, "keep")


# --- properties ----------------------------------------------------------------


@st.composite
def pipelines(draw) -> PipelineGraph:
    """Random DAGs: node i writes d<i> (maybe a MemoryDataset), reads earlier ones."""
    size = draw(st.integers(min_value=1, max_value=12))
    memory = {f"d{i}" for i in range(size) if draw(st.booleans())}
    nodes = {}
    for i in range(size):
        reads = draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=3)) if i else set()
        nodes[f"n{i}"] = (["raw", *(f"d{j}" for j in sorted(reads))], [f"d{i}"])
    return make_graph(nodes, memory=memory)


@settings(max_examples=200, deadline=None)
@given(pipelines())
def test_group_never_lets_memory_cross_and_never_cycles(graph):
    tasks = task_graph_for(graph, "group")
    assert_valid_grouping(graph, tasks)
    assert not [
        d
        for d in boundary_datasets(graph, tasks)
        if d.role is Role.CROSSING and d.storage is Storage.MEMORY
    ]


@settings(max_examples=100, deadline=None)
@given(pipelines())
def test_error_refuses_exactly_when_memory_crosses(graph):
    crossing = [
        d
        for d in boundary_datasets(graph, one_task_per_node(graph))
        if d.role is Role.CROSSING and d.storage is Storage.MEMORY
    ]
    if crossing:
        with pytest.raises(UserError) as raised:
            task_graph_for(graph, "error")
        assert all(f"  - {d.name} (MemoryDataset)" in str(raised.value) for d in crossing)
    else:
        assert task_graph_for(graph, "error") == one_task_per_node(graph)


# --- helpers -------------------------------------------------------------------


def make_graph(nodes: dict[str, tuple[list[str], list[str]]], memory: set[str]) -> PipelineGraph:
    """A pipeline of ``name -> (inputs, outputs)`` in topological order.

    Datasets not in ``memory`` are catalog entries on S3.
    """
    written = {out: name for name, (_, outs) in nodes.items() for out in outs}
    datasets = {ds for ins, outs in nodes.values() for ds in (*ins, *outs)}
    return PipelineGraph(
        name="__default__",
        nodes=tuple(
            NodeInfo(name=n, inputs=tuple(i), outputs=tuple(o)) for n, (i, o) in nodes.items()
        ),
        parents={
            n: frozenset(written[i] for i in ins if i in written) for n, (ins, _) in nodes.items()
        },
        datasets={
            ds: DatasetInfo(
                name=ds,
                in_catalog=True,
                type="pandas.CSVDataset",
                filepath=f"s3://bucket/{ds}.csv",
                protocol="s3",
            )
            for ds in datasets - memory
        },
    )


def assert_valid_grouping(graph: PipelineGraph, tasks: TaskGraph) -> None:
    """A partition, acyclic, node dependencies kept, each task's nodes in a valid order."""
    owner = {node: t.name for t in tasks.tasks for node in t.nodes}
    assert sorted(owner) == sorted(graph.node_names)
    assert sum(len(t.nodes) for t in tasks.tasks) == len(graph.nodes)
    topological_order(tasks.names, tasks.parents)  # raises on a cycle
    for t in tasks.tasks:
        position = {node: i for i, node in enumerate(t.nodes)}
        for node in t.nodes:
            for parent in graph.parents[node]:
                if owner[parent] == t.name:
                    assert position[parent] < position[node], (t.name, parent, node)
                else:
                    assert owner[parent] in tasks.parents[t.name], (t.name, parent, node)
