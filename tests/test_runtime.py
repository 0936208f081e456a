"""The container side: ``kedro-batch-task`` and the rules its hook applies.

Pure pieces (version strings, environment, layout, classification, the
catalog plan) are tested in process; the command itself runs as a process
in a fresh copy of ``runtime_tiny`` (no ``data/``) against a moto S3 server,
one task per node, the way Batch runs it.
"""

from __future__ import annotations

import io
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kedro.io.core import generate_timestamp
from kedro.pipeline import Node
from kedro_batch_runtime import cli, records
from kedro_batch_runtime.access import Access, Decision, decide, override_for
from kedro_batch_runtime.boundaries import (
    Crossing,
    Storage,
    crossings,
    final_outputs,
    free_inputs,
    storage,
)
from kedro_batch_runtime.catalog import PICKLE_TYPE, plan_catalog
from kedro_batch_runtime.datasets import PickleDataset
from kedro_batch_runtime.layout import DataLayout, bucket_path, run_version, versioned_path
from kedro_batch_runtime.settings import RUN_ID_PARAM, RunConfigError, RunSettings
from kedro_batch_runtime.staging import Staged

from tests.batch_tasks import S3Endpoint, moto_s3, run_task, task_env

TINY = Path(__file__).parent / "fixtures" / "projects" / "runtime_tiny"
BUCKET = "kb-tiny"
STARTED = "2026-11-26T22:34:40.123Z"
VERSION = "2026-11-26T22.34.40.123Z"

# --- version strings ---------------------------------------------------------


@pytest.mark.parametrize(
    ("started", "version"),
    [
        (STARTED, VERSION),
        ("2026-11-26T23:34:40.123+01:00", VERSION),  # converted to UTC
        ("2026-11-26T22:34:40.123999Z", VERSION),  # microseconds cut, not rounded
        ("2026-11-26T22:34:40Z", "2026-11-26T22.34.40.000Z"),
    ],
)
def test_run_version_is_the_start_time_in_kedros_format(started, version):
    assert run_version(started) == version


def test_run_version_has_the_shape_kedro_generates():
    shape = re.compile(r"^\d{4}-\d\d-\d\dT\d\d\.\d\d\.\d\d\.\d{3}Z$")
    assert shape.match(generate_timestamp())
    assert shape.match(run_version(STARTED))


def test_run_version_refuses_a_time_without_zone():
    with pytest.raises(ValueError, match="time zone"):
        run_version("2026-11-26T22:34:40.123")


# --- the environment ---------------------------------------------------------

ENV = {"KEDRO_BATCH_RUN_ID": "run-1", "KEDRO_BATCH_RUN_STARTED": STARTED}


def test_settings_defaults():
    run = RunSettings.from_environ(ENV)
    assert (run.run_id, run.version, run.pipeline) == ("run-1", VERSION, "__default__")
    assert (run.bucket, run.intermediates, dict(run.params)) == (None, "persist", {})
    assert run.runtime_params == {RUN_ID_PARAM: "run-1"}


def test_settings_read_every_variable():
    run = RunSettings.from_environ(
        {
            **ENV,
            "KEDRO_BATCH_PARAMS": '{"train": {"model": {"alpha": 0.5}}}',
            "KEDRO_BATCH_PIPELINE": "train",
            "KEDRO_BATCH_BUCKET": "data-bucket",
            "KEDRO_BATCH_INTERMEDIATES": "group",
            "KEDRO_BATCH_DATASET_ACCESS": '{"{name}@spark": "direct", "images": "stage"}',
        }
    )
    assert run.params == {"train": {"model": {"alpha": 0.5}}}
    assert (run.pipeline, run.bucket, run.intermediates) == ("train", "data-bucket", "group")
    assert run.access == {"{name}@spark": "direct", "images": "stage"}


def test_dotted_params_nest_like_kedro_run_params():
    run = RunSettings.from_environ(
        {
            **ENV,
            "KEDRO_BATCH_PARAMS": (
                '{"train.model.alpha": 0.5, "train": {"model": {"target": "units"}}, "seed": 7}'
            ),
        }
    )
    assert run.params == {"train": {"model": {"alpha": 0.5, "target": "units"}}, "seed": 7}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"KEDRO_BATCH_RUN_ID": ""}, "KEDRO_BATCH_RUN_ID is not set"),
        ({"KEDRO_BATCH_RUN_ID": "a/b"}, "KEDRO_BATCH_RUN_ID='a/b'"),
        ({"KEDRO_BATCH_RUN_STARTED": ""}, "KEDRO_BATCH_RUN_STARTED is not set"),
        ({"KEDRO_BATCH_RUN_STARTED": "yesterday"}, "KEDRO_BATCH_RUN_STARTED='yesterday'"),
        ({"KEDRO_BATCH_PARAMS": "{oops"}, "KEDRO_BATCH_PARAMS is not valid JSON"),
        ({"KEDRO_BATCH_PARAMS": "[1]"}, "KEDRO_BATCH_PARAMS must be a JSON object"),
        ({"KEDRO_BATCH_INTERMEDIATES": "keep"}, "KEDRO_BATCH_INTERMEDIATES='keep'"),
        ({"KEDRO_BATCH_DATASET_ACCESS": '{"x": "copy"}'}, "KEDRO_BATCH_DATASET_ACCESS must be"),
        ({"KEDRO_BATCH_DATASET_ACCESS": "{"}, "KEDRO_BATCH_DATASET_ACCESS is not valid JSON"),
    ],
)
def test_settings_errors_name_the_variable(override, message):
    with pytest.raises(RunConfigError, match=re.escape(message)):
        RunSettings.from_environ({**ENV, **override})


def test_command_line(monkeypatch, capsys):
    assert cli.main(["--barrier"]) == 0
    with pytest.raises(SystemExit) as exit_:
        cli.main([])
    assert exit_.value.code == cli.EXIT_USAGE
    monkeypatch.delenv("KEDRO_BATCH_RUN_ID", raising=False)
    assert cli.main(["--nodes", "a.b"]) == cli.EXIT_USAGE
    assert cli.main(["--nodes", ","]) == cli.EXIT_USAGE


@pytest.mark.parametrize(
    "name", ["-leading-dash", "-h", "--two-dashes.and.dots", "été", "a." + "x" * 118]
)
def test_any_kedro_node_name_follows_nodes(name, monkeypatch, capsys):
    """``--nodes`` then one element (contract 4): a name that looks like an option
    is still the value, not a usage error (argparse alone exits 2 on ``-x``)."""
    monkeypatch.delenv("KEDRO_BATCH_RUN_ID", raising=False)  # stop right after parsing
    assert cli.main(["--nodes", f"{name},b.c"]) == cli.EXIT_USAGE
    record = records.parse(capsys.readouterr().err.splitlines())
    assert record.nodes == (name, "b.c")


# --- layout ------------------------------------------------------------------


def test_layout_rule():
    layout = DataLayout("b", "r1")
    assert layout.local("data/01_raw/x.csv", produced=False, versioned=False) == (
        "s3://b/data/01_raw/x.csv"
    )
    assert layout.local("data/06_models/m.pkl", produced=True, versioned=True) == (
        "s3://b/data/06_models/m.pkl"
    )
    assert layout.local("data/03_primary/p.pq", produced=True, versioned=False) == (
        "s3://b/runs/r1/data/03_primary/p.pq"
    )
    assert layout.memory("ns.mem") == "s3://b/runs/r1/memory/ns.mem.pickle"
    assert versioned_path("s3://b/m.pkl", VERSION) == f"s3://b/m.pkl/{VERSION}/m.pkl"


@pytest.mark.parametrize(
    ("path", "place"),
    [
        ("data/01_raw/x.csv", "data/01_raw/x.csv"),
        ("./data//01_raw/../01_raw/x.csv", "data/01_raw/x.csv"),
        ("/mnt/efs/x.csv", "mnt/efs/x.csv"),  # absolute: the disk, mirrored
        ("//dbfs/raw/../x.csv", "dbfs/x.csv"),
        ("file:///tmp/x.csv", "tmp/x.csv"),
        ("/", None),
        ("../shared/x.csv", None),  # out of the project: nothing to mirror
        ("s3://bucket/x.csv", None),
        ("gcs://bucket/x.csv", None),
    ],
)
def test_bucket_path(path, place):
    assert bucket_path(path) == place


# --- classification ----------------------------------------------------------


@pytest.mark.parametrize(
    ("in_catalog", "type_name", "filepath", "expected"),
    [
        (False, None, None, Storage.MEMORY),
        (True, "MemoryDataset", None, Storage.MEMORY),
        (True, "kedro.io.memory_dataset.MemoryDataset", None, Storage.MEMORY),
        (True, "kedro.io.SharedMemoryDataset", None, Storage.MEMORY),
        (True, "pandas.CSVDataset", "data/01_raw/x.csv", Storage.LOCAL),
        (True, "pandas.CSVDataset", "/abs/x.csv", Storage.LOCAL),
        (True, "pandas.CSVDataset", "file:///abs/x.csv", Storage.LOCAL),
        (True, "pandas.CSVDataset", "s3://b/x.csv", Storage.REMOTE),
        (True, "pandas.CSVDataset", "gcs://b/x.csv", Storage.REMOTE),
        (True, "pandas.SQLTableDataset", None, Storage.REMOTE),
    ],
)
def test_storage(in_catalog, type_name, filepath, expected):
    assert storage(in_catalog=in_catalog, type_name=type_name, filepath=filepath) is expected


@pytest.mark.parametrize(
    ("type_name", "access", "reason"),
    [
        ("pandas.CSVDataset", Access.DIRECT, "opens s3:// through fsspec"),
        ("kedro_datasets.pandas.csv_dataset.CSVDataset", Access.DIRECT, "pandas.CSVDataset"),
        ("pickle.PickleDataset", Access.DIRECT, "pickle.PickleDataset"),
        ("spark.SparkDataset", Access.STAGE, "Spark reads s3:// as s3a://"),
        ("kedro_datasets.spark.spark_dataset.SparkDataset", Access.STAGE, "spark.SparkDataset"),
        ("spark.DeltaTableDataset", Access.STAGE, "Spark"),
        ("my_project.datasets.ImageDataset", Access.STAGE, "not known to open s3:// paths"),
        ("pandas.MyOwnDataset", Access.STAGE, "not known"),  # a family is not a blank cheque
    ],
)
def test_access_by_type(type_name, access, reason):
    decision = decide("x", type_name)
    assert decision.access is access
    assert reason in decision.reason


@pytest.mark.parametrize(
    ("partitions", "access"),
    [
        ("pandas.CSVDataset", Access.DIRECT),
        ("my_project.ImageDataset", Access.STAGE),
        (None, Access.STAGE),
    ],
)
def test_folder_datasets_follow_their_partitions(partitions, access):
    decision = decide("x", "partitions.PartitionedDataset", partition_type=partitions)
    assert decision.access is access


def test_access_override_by_name_then_most_specific_pattern():
    overrides = {"{name}": "stage", "{ns}.{name}_spark": "direct", "a.b_spark": "stage"}
    assert override_for("a.b_spark", overrides) == "a.b_spark"
    assert override_for("c.d_spark", overrides) == "{ns}.{name}_spark"
    assert override_for("raw", overrides) == "{name}"
    assert override_for("raw", {"other": "stage"}) is None
    decision = decide("c.d_spark", "spark.SparkDataset", overrides=overrides)
    assert decision == Decision(Access.DIRECT, "kedro-batch:datasetAccess '{ns}.{name}_spark'")


def _f(*args):
    return None


PIPELINE = [
    Node(_f, ["raw", "params:p"], "mem", name="n1"),
    Node(_f, "mem", ["lag_features", "model", "remote_model"], name="n2"),
    Node(_f, ["lag_features", "model", "remote_model", "old_model"], ["out", "abs"], name="n3"),
    Node(_f, "table@pandas", "tail", name="n4"),
    Node(_f, "mem", "table@spark", name="n5"),
]


def test_crossings_free_inputs_and_final_outputs():
    task_of = {"n1": 1, "n2": 2, "n3": 2, "n4": 3, "n5": 2}
    assert crossings(PIPELINE, task_of.__getitem__) == [
        Crossing("mem", "n1", ("n2", "n5")),
        Crossing("table@spark", "n5", ("n4",)),  # transcoding: one dataset
    ]
    assert crossings(PIPELINE, lambda node: 0) == []
    assert free_inputs(PIPELINE) == ["raw", "old_model"]
    assert final_outputs(PIPELINE) == ["out", "abs", "tail"]


# --- the catalog plan ---------------------------------------------------------

CONF: dict[str, dict[str, Any]] = {
    "raw": {"type": "pandas.CSVDataset", "filepath": "data/01_raw/raw.csv"},
    "old_model": {
        "type": "pickle.PickleDataset",
        "filepath": "data/06_models/old.pkl",
        "versioned": True,
    },
    "{name}_features": {"type": "pandas.ParquetDataset", "filepath": "data/04_feature/{name}.pq"},
    "model": {
        "type": "pickle.PickleDataset",
        "filepath": "data/06_models/m.pkl",
        "versioned": True,
    },
    "remote_model": {
        "type": "pickle.PickleDataset",
        "filepath": "s3://models/rm.pkl",
        "versioned": True,
        "credentials": "dev",
    },
    "out": {"type": "pandas.CSVDataset", "filepath": "s3://elsewhere/out.csv"},
    "abs": {"type": "pandas.CSVDataset", "filepath": "/mnt/efs/abs.csv"},
    "table@spark": {"type": "spark.SparkDataset", "filepath": "data/03_primary/table.pq"},
    "table@pandas": {"type": "pandas.ParquetDataset", "filepath": "data/03_primary/table.pq"},
}
RUN = RunSettings(run_id="r1", version=VERSION, bucket="b")


SCRATCH = "/scratch"


def _plan(task, run=RUN):
    return plan_catalog(CONF, PIPELINE, task, run, scratch=SCRATCH)


def _targets(plan):
    return {m.dataset: m.target for m in plan.moves}


def test_plan_moves_free_inputs_to_the_shared_layout_and_persists_crossing_memory():
    plan = _plan({"n1"})
    assert _targets(plan) == {
        "raw": "s3://b/data/01_raw/raw.csv",
        "mem": "s3://b/runs/r1/memory/mem.pickle",
    }
    assert plan.config["mem"] == {"type": PICKLE_TYPE, "filepath": _targets(plan)["mem"]}


def test_plan_moves_outputs_by_the_layout_rule_and_pins_versions():
    plan = _plan({"n2"})
    assert _targets(plan) == {
        "mem": "s3://b/runs/r1/memory/mem.pickle",
        "lag_features": "s3://b/runs/r1/data/04_feature/lag.pq",
        "model": f"s3://b/data/06_models/m.pkl/{VERSION}/m.pkl",
        "remote_model": f"s3://models/rm.pkl/{VERSION}/rm.pkl",  # remote: pinned, not moved
    }
    # The pattern's dataset became an explicit entry; the pattern itself stays.
    assert plan.config["lag_features"]["type"] == "pandas.ParquetDataset"
    assert "{name}_features" in plan.config
    assert plan.config["model"]["versioned"] is False
    # A reference the session resolves: the plan never holds a credential.
    assert plan.config["remote_model"]["credentials"] == "dev"
    assert plan.credentials == {"remote_model": ("dev",)}
    # Entries the task does not touch are the project's own.
    assert plan.config["raw"] == CONF["raw"]


def test_plan_loads_the_latest_version_of_a_versioned_free_input():
    plan = _plan({"n3"})
    assert plan.config["old_model"] == {
        **CONF["old_model"],
        "filepath": "s3://b/data/06_models/old.pkl",
    }
    assert "out" not in _targets(plan)  # remote and unversioned: left alone


def test_plan_moves_absolute_paths_into_the_bucket_like_relative_ones():
    run = RunSettings(run_id="r1", version=VERSION, bucket="b")
    conf = {
        **CONF,
        "raw": {"type": "pandas.CSVDataset", "filepath": "/dbfs/mnt/raw/raw.csv"},
        "model": {**CONF["model"], "filepath": "file:///mnt/models/m.pkl"},
    }
    plan = plan_catalog(conf, PIPELINE, {"n1", "n2", "n3"}, run, scratch=SCRATCH)
    targets = _targets(plan)
    assert targets["raw"] == "s3://b/dbfs/mnt/raw/raw.csv"  # free input: the disk, mirrored
    assert targets["abs"] == "s3://b/runs/r1/mnt/efs/abs.csv"  # unversioned output: this run's
    assert targets["model"] == f"s3://b/mnt/models/m.pkl/{VERSION}/m.pkl"
    assert plan.left_local == ()


def test_plan_leaves_paths_climbing_out_of_the_project_where_they_are():
    conf = {**CONF, "raw": {"type": "pandas.CSVDataset", "filepath": "../shared/raw.csv"}}
    plan = plan_catalog(conf, PIPELINE, {"n1"}, RUN, scratch=SCRATCH)
    assert plan.left_local == ("raw",)
    assert "raw" not in _targets(plan)


def test_plan_in_error_mode_moves_nothing_but_still_pins_versions():
    run = RunSettings(run_id="r1", version=VERSION, bucket="b", intermediates="error")
    plan = _plan({"n1", "n2", "n5"}, run)
    assert _targets(plan) == {
        "model": f"data/06_models/m.pkl/{VERSION}/m.pkl",
        "remote_model": f"s3://models/rm.pkl/{VERSION}/rm.pkl",
    }


@pytest.mark.parametrize("mode", ["group", "error"])
def test_plan_refuses_crossing_memory_unless_persisting(mode):
    run = RunSettings(run_id="r1", version=VERSION, bucket="b", intermediates=mode)
    with pytest.raises(RunConfigError, match=r"MemoryDataset 'mem' \(written by node 'n1'\)"):
        _plan({"n2"}, run)


def test_plan_in_group_mode_moves_local_paths_and_keeps_memory_inside_the_task():
    run = RunSettings(run_id="r1", version=VERSION, bucket="b", intermediates="group")
    targets = _targets(_plan({"n1", "n2", "n5"}, run))
    assert "mem" not in targets
    assert targets["raw"] == "s3://b/data/01_raw/raw.csv"


def test_plan_reads_a_transcoded_dataset_where_its_other_format_was_written():
    written = _targets(_plan({"n5"}))["table@spark"]
    assert written == "s3://b/runs/r1/data/03_primary/table.pq"
    assert _targets(_plan({"n4"}))["table@pandas"] == written


def _staged(plan):
    return {s.dataset: s for s in plan.staged}


def test_plan_stages_spark_through_scratch_and_lets_pandas_read_the_same_place():
    plan = _plan({"n5", "n4"})
    (spark,) = plan.staged
    remote = "s3://b/runs/r1/data/03_primary/table.pq"
    assert spark == Staged("table@spark", f"{SCRATCH}/runs/r1/data/03_primary/table.pq", remote)
    assert plan.config["table@spark"]["filepath"] == spark.local
    assert plan.config["table@pandas"]["filepath"] == remote  # direct: fsspec reads s3://
    assert _targets(plan)["table@spark"] == remote  # the move is still reported


def test_plan_stages_versioned_outputs_in_their_version_folder_and_inputs_at_the_latest():
    run = RunSettings(
        run_id="r1", version=VERSION, bucket="b", access={"model": "stage", "old_model": "stage"}
    )
    staged = _staged(_plan({"n2", "n3"}, run))
    model = f"data/06_models/m.pkl/{VERSION}/m.pkl"
    assert staged["model"] == Staged("model", f"{SCRATCH}/{model}", f"s3://b/{model}")
    assert staged["old_model"] == Staged(
        "old_model",
        f"{SCRATCH}/data/06_models/old.pkl",
        "s3://b/data/06_models/old.pkl",
        latest_version=True,
    )
    config = _plan({"n2", "n3"}, run).config
    assert config["model"]["versioned"] is False  # pinned, as a direct one
    assert config["old_model"]["versioned"] is True  # Kedro finds the one version fetched
    assert "remote_model" not in staged  # on remote storage already: never staged


def test_plan_access_overrides_win_by_name_then_by_the_most_specific_pattern():
    run = RunSettings(
        run_id="r1",
        version=VERSION,
        bucket="b",
        access={"table@spark": "direct", "{name}_features": "stage", "{x}": "direct"},
    )
    staged = _staged(_plan({"n2", "n5"}, run))
    assert set(staged) == {"lag_features"}
    assert staged["lag_features"].local == f"{SCRATCH}/runs/r1/data/04_feature/lag.pq"


def test_plan_stages_custom_types_and_folders_of_them():
    conf = {
        **CONF,
        "raw": {"type": "my_project.datasets.ImageDataset", "filepath": "data/01_raw/img.png"},
        "lag_features": {
            "type": "partitions.PartitionedDataset",
            "path": "data/04_feature/lag",
            "dataset": {"type": "my_project.datasets.ImageDataset"},
        },
        "out": {
            "type": "partitions.PartitionedDataset",
            "path": "data/05_out/parts",
            "dataset": "pandas.CSVDataset",
        },
    }
    plan = plan_catalog(conf, PIPELINE, {"n1", "n2", "n3"}, RUN, scratch=SCRATCH)
    staged = _staged(plan)
    assert set(staged) == {"raw", "lag_features"}
    assert plan.config["lag_features"]["path"] == f"{SCRATCH}/runs/r1/data/04_feature/lag"
    assert plan.config["out"]["path"] == "s3://b/runs/r1/data/05_out/parts"


def test_plan_reads_a_staged_incremental_dataset_without_partitions_as_empty():
    inner = {"type": "my_project.datasets.ImageDataset"}
    conf = {
        **CONF,
        "raw": {
            "type": "kedro_datasets.partitions.IncrementalDataset",
            "path": "data/01_raw/inbox",
            "dataset": inner,
        },
        "lag_features": {
            "type": "partitions.PartitionedDataset",
            "path": "data/04_feature/lag",
            "dataset": inner,
        },
    }
    staged = _staged(plan_catalog(conf, PIPELINE, {"n1", "n2"}, RUN, scratch=SCRATCH))
    assert staged["raw"].empty_when_missing  # its inbox may not have a partition yet
    assert not staged["lag_features"].empty_when_missing  # no partition is an error


def test_plan_in_error_mode_stages_nothing():
    run = RunSettings(run_id="r1", version=VERSION, bucket="b", intermediates="error")
    assert _plan({"n1", "n2", "n5", "n4"}, run).staged == ()


def test_plan_needs_a_bucket_only_to_move_something():
    no_bucket = RunSettings(run_id="r1", version=VERSION)
    with pytest.raises(RunConfigError, match="KEDRO_BATCH_BUCKET is not set, but dataset 'raw'"):
        _plan({"n1"}, no_bucket)
    nothing_moves = RunSettings(run_id="r1", version=VERSION, intermediates="error")
    assert _plan({"n1", "n2", "n5"}, nothing_moves).left_local == ()


def test_pickle_dataset_round_trip(tmp_path):
    dataset = PickleDataset(filepath=str(tmp_path / "x" / "mem.pickle"))
    assert not dataset.exists()
    dataset.save({"a": [1, 2]})
    assert dataset.exists()
    assert dataset.load() == {"a": [1, 2]}


# --- the command, as Batch runs it --------------------------------------------


@pytest.fixture(scope="module")
def s3():
    with moto_s3(BUCKET) as endpoint:
        endpoint.upload_tree(BUCKET, TINY, "data/01_raw")
        yield endpoint


def _read(s3: S3Endpoint, key: str) -> bytes:
    return s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()


def _run(s3, tmp_path, run_id, nodes, project=TINY, **env):
    return run_task(
        project,
        tmp_path / run_id / "-".join(nodes),
        nodes,
        task_env(run_id=run_id, started=STARTED, bucket=BUCKET, endpoint=s3, **env),
    )


def test_tasks_share_data_through_the_bucket_only(s3, tmp_path):
    params = {"scale.factor": 3}
    for node in ("scale", "summarise", "fit", "report"):
        done = _run(s3, tmp_path, "tiny-1", [node], params=params)
        assert done.returncode == 0, done.stderr
        assert f"node {node}: started" in done.stderr
        assert re.search(rf"node {node}: finished in \d+\.\d\ds", done.stderr)
        record = records.parse(done.stderr.splitlines())
        assert record.nodes == (node,) and record.status == "SUCCEEDED"
        (span,) = record.spans
        assert span.node == node and span.status == "SUCCEEDED"
        assert record.started <= span.started <= span.finished <= record.finished
        assert not (tmp_path / "tiny-1" / node / TINY.name / "data").exists()
    assert s3.keys(BUCKET, "runs/tiny-1/") == [
        "runs/tiny-1/data/02_intermediate/summary.csv",
        "runs/tiny-1/data/08_reporting/final.csv",
        "runs/tiny-1/memory/scaled.pickle",
    ]
    model = pickle.loads(_read(s3, f"data/06_models/model.pkl/{VERSION}/model.pkl"))
    assert model == {"mean": 7.5}  # (1 + 2 + 3 + 4) * 3 / 4: the nested parameter reached fit
    report = pd.read_csv(io.BytesIO(_read(s3, "runs/tiny-1/data/08_reporting/final.csv")))
    assert report.to_dict("records") == [
        {"total": 30.0, "rows": 4, "mean": 7.5, "run_label": "tiny-1"}
    ]


def test_a_retried_task_overwrites_its_own_version(s3, tmp_path):
    for attempt in range(2):
        for node in ("scale", "fit"):
            done = _run(s3, tmp_path / str(attempt), "tiny-retry", [node])
            assert done.returncode == 0, done.stderr
    assert [k for k in s3.keys(BUCKET, "data/06_models/") if k.endswith("model.pkl")] == [
        f"data/06_models/model.pkl/{VERSION}/model.pkl"
    ]


def test_a_failing_node_is_named_and_fails_the_task(s3, tmp_path):
    _run(s3, tmp_path, "tiny-fail", ["scale"])
    failed = _run(s3, tmp_path, "tiny-fail", ["summarise"], params={"fail": True})
    assert failed.returncode == cli.EXIT_FAILED
    last = failed.stderr.strip().splitlines()[-1]
    assert re.search(r"node summarise failed after \d+\.\d\ds: ValueError: asked to fail", last)
    record = records.parse(failed.stderr.splitlines())
    assert record.status == "FAILED"
    span = record.span("summarise")
    assert span is not None and span.status == "FAILED"
    assert span.error == "ValueError: asked to fail"


def test_a_failing_load_is_pinned_on_its_node(s3, tmp_path):
    failed = _run(s3, tmp_path, "tiny-no-input", ["summarise"])  # scale never ran
    assert failed.returncode == cli.EXIT_FAILED
    assert "node summarise failed" in failed.stderr.strip().splitlines()[-1]
    assert "scaled.pickle" in failed.stderr


def test_an_unknown_node_fails_before_any_node_starts(s3, tmp_path):
    failed = _run(s3, tmp_path, "tiny-unknown", ["nope"])
    assert failed.returncode == cli.EXIT_FAILED
    assert "failed before its first node started" in failed.stderr
    assert "nope" in failed.stderr.strip().splitlines()[-1]


def test_group_mode_refuses_a_memory_dataset_crossing_the_task(s3, tmp_path):
    failed = _run(s3, tmp_path, "tiny-group", ["fit"], intermediates="group")
    assert failed.returncode == cli.EXIT_USAGE
    assert "MemoryDataset 'scaled' (written by node 'scale')" in failed.stderr


def test_a_disabled_hook_stops_the_task_before_it_runs(s3, tmp_path):
    project = tmp_path / "disabled" / TINY.name
    shutil.copytree(TINY, project)
    settings = project / "src" / "runtime_tiny" / "settings.py"
    settings.write_text('DISABLE_HOOKS_FOR_PLUGINS = ("kedro-batch-runtime",)\n')
    failed = _run(s3, tmp_path, "tiny-disabled", ["scale"], project=project)
    assert failed.returncode == cli.EXIT_USAGE
    assert "DISABLE_HOOKS_FOR_PLUGINS" in failed.stderr.strip().splitlines()[-1]
    assert "node scale: started" not in failed.stderr
