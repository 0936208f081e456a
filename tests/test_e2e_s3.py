"""End to end: the example, deployed task by task, gives what ``kedro run`` gives.

Every task of the example's ``__default__`` pipeline runs as its own
``kedro-batch-task`` process, in topological order, each in a fresh copy of
the project without ``data/``, against a moto S3 server holding only the raw
inputs. Two runs with different run ids, start times and parameters go
concurrently; each must equal a plain ``kedro run`` with its parameters,
dataset by dataset (data compared, not bytes), and leave the other intact.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
import pytest

from infra.datasets import task_graph_for
from infra.graph import DatasetInfo, PipelineGraph, TaskGraph, topological_order
from infra.kedro_project import load_project
from tests.batch_tasks import S3Endpoint, kedro_run, moto_s3, run_task, task_env

EXAMPLE = Path(__file__).resolve().parent.parent / "example"
BUCKET = "kb-example"
ALPHA = 0.5  # train.model.alpha of the second run (the example's default is 1.0)


@dataclass(frozen=True)
class Run:
    run_id: str
    started: str
    version: str  # what the runtime must derive from ``started``
    params: Mapping[str, Any] = field(default_factory=dict)


RUN_A = Run("run-a", "2026-11-26T22:34:40.123Z", "2026-11-26T22.34.40.123Z")
RUN_B = Run(
    "run-b",
    "2026-11-26T23:34:41.456+01:00",
    "2026-11-26T22.34.41.456Z",
    {"train": {"model": {"alpha": ALPHA}}},
)
RUN_GROUP = Run("run-group", "2026-11-26T22:40:00.000Z", "2026-11-26T22.40.00.000Z")


@pytest.fixture(scope="module")
def graph() -> PipelineGraph:
    return load_project(EXAMPLE).pipelines["__default__"]


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reference")
    return {
        "default": kedro_run(EXAMPLE, root / "default"),
        "alpha": kedro_run(EXAMPLE, root / "alpha", "--params", f"train.model.alpha={ALPHA}"),
    }


@pytest.fixture(scope="module")
def s3():
    with moto_s3(BUCKET) as endpoint:
        endpoint.upload_tree(BUCKET, EXAMPLE, "data/01_raw")
        yield endpoint


def execute(
    tasks: TaskGraph, run: Run, s3: S3Endpoint, workdir: Path, intermediates: str
) -> list[Path]:
    """Run every task in topological order; returns the task working directories."""
    env = task_env(
        run_id=run.run_id,
        started=run.started,
        bucket=BUCKET,
        endpoint=s3,
        params=run.params,
        intermediates=intermediates,
    )
    workdirs = []
    for i, name in enumerate(topological_order(tasks.names, tasks.parents)):
        workdir = workdir / run.run_id / f"task-{i:02d}"
        done = run_task(EXAMPLE, workdir, tasks.task(name).nodes, env)
        assert done.returncode == 0, f"task {name} of {run.run_id} failed:\n{done.stderr}"
        workdirs.append(workdir)
    return workdirs


def read(data: bytes, filepath: str) -> Any:
    suffix = PurePosixPath(filepath).suffix
    if suffix == ".csv":
        return pd.read_csv(io.BytesIO(data))
    if suffix == ".parquet":
        return pd.read_parquet(io.BytesIO(data))
    return pickle.loads(data)


def assert_same(actual: Any, expected: Any, name: str) -> None:
    if isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(actual, expected, obj=name)
    else:
        assert actual == expected, name


def persisted_outputs(graph: PipelineGraph) -> list[DatasetInfo]:
    written = graph.producers()
    return [d for d in graph.datasets.values() if d.in_catalog and d.name in written]


def expected_key(dataset: DatasetInfo, run: Run) -> str:
    """The data layout rule, spelled out independently of the runtime's code."""
    assert dataset.filepath is not None
    if dataset.versioned:
        return f"{dataset.filepath}/{run.version}/{PurePosixPath(dataset.filepath).name}"
    return f"runs/{run.run_id}/{dataset.filepath}"


def reference_file(reference: Path, dataset: DatasetInfo) -> Path:
    assert dataset.filepath is not None
    path = reference / dataset.filepath
    if dataset.versioned:
        (path,) = path.glob(f"*/{path.name}")  # the one version kedro run wrote
    return path


def assert_run_equals_reference(
    graph: PipelineGraph, s3: S3Endpoint, run: Run, reference: Path
) -> dict[str, Any]:
    outputs = {}
    for dataset in persisted_outputs(graph):
        key = expected_key(dataset, run)
        data = s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
        outputs[dataset.name] = read(data, key)
        expected = read(reference_file(reference, dataset).read_bytes(), key)
        assert_same(outputs[dataset.name], expected, f"{dataset.name} of {run.run_id}")
    return outputs


def crossing_memory(graph: PipelineGraph) -> set[str]:
    consumed = graph.consumers()
    return {name for name in graph.producers() if name in consumed} - {
        d.name for d in graph.datasets.values() if d.in_catalog
    }


def test_concurrent_runs_equal_kedro_run_and_keep_apart(graph, references, s3, tmp_path):
    tasks = task_graph_for(graph, "persist")
    assert len(tasks.tasks) == len(graph.nodes)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(execute, tasks, run, s3, tmp_path, "persist") for run in (RUN_A, RUN_B)
        ]
        workdirs = [w for f in futures for w in f.result()]

    a = assert_run_equals_reference(graph, s3, RUN_A, references["default"])
    b = assert_run_equals_reference(graph, s3, RUN_B, references["alpha"])
    assert (a["demand_model"]["alpha"], b["demand_model"]["alpha"]) == (1.0, ALPHA)
    assert not a["next_week_forecast"].equals(b["next_week_forecast"])

    for run in (RUN_A, RUN_B):
        assert set(s3.keys(BUCKET, f"runs/{run.run_id}/memory/")) == {
            f"runs/{run.run_id}/memory/{name}.pickle" for name in crossing_memory(graph)
        }
    shared = [k for k in s3.keys(BUCKET) if not k.startswith("runs/")]
    raw = [f"data/01_raw/{p.name}" for p in sorted((EXAMPLE / "data" / "01_raw").glob("*.csv"))]
    versioned = [
        expected_key(d, r) for d in persisted_outputs(graph) if d.versioned for r in (RUN_A, RUN_B)
    ]
    assert sorted(shared) == sorted(raw + versioned)
    # Nothing reached a task's own disk.
    assert not [w for w in workdirs if (w / EXAMPLE.name / "data").exists()]


def test_group_mode_fuses_memory_and_equals_kedro_run(graph, references, s3, tmp_path):
    tasks = task_graph_for(graph, "group")
    assert len(tasks.tasks) < len(graph.nodes)
    execute(tasks, RUN_GROUP, s3, tmp_path, "group")
    assert_run_equals_reference(graph, s3, RUN_GROUP, references["default"])
    assert s3.keys(BUCKET, f"runs/{RUN_GROUP.run_id}/memory/") == []
