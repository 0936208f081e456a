"""Data a project keeps on local disk, deployed: staged datasets and absolute paths.

Fixture projects go through ``synth`` and ``local-run`` as a user's would: a
Spark project (its datasets cannot open ``s3://``: staged through each
task's disk, folders and versions included, with pandas reading what Spark
wrote straight from the bucket), a hand-written dataset that gives its path
to Pillow, and a catalog of absolute paths (moved into the bucket; no task
sees another's output on this machine's disk).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from infra.local_run import Options, local_run

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "projects"
SPARK = FIXTURES / "spark_staged"
CUSTOM = FIXTURES / "custom_local_file"
ABSOLUTE = FIXTURES / "absolute_paths"
ABSOLUTE_ROOT = "/tmp/kedro-batch-absolute-paths"  # as written in its catalog
NO_ENV = {"kedroEnv": ""}  # fixture projects have no conf/dev
VERSION = re.compile(r"^\d{4}-\d\d-\d\dT\d\d\.\d\d\.\d\d\.\d{3}Z$")


def synth(project: Path, out: Path, *config: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "true"}
    overrides = [arg for c in ("kedroEnv=", *config) for arg in ("-c", c)]
    return subprocess.run(
        [sys.executable, "-m", "infra", "synth", "--project-dir", str(project), *overrides,
         "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def run(project: Path, keep: Path) -> tuple[dict, str]:
    out = StringIO()
    options = Options(overrides={"projectDir": str(project), **NO_ENV}, keep=keep)
    report = local_run(options, console=Console(file=out, width=200))
    assert "error" not in report, out.getvalue()
    return report, out.getvalue()


def written(report: dict, keep: Path) -> dict[str, Path]:
    """Dataset -> where its data is in the kept copy of the bucket."""
    return {d["name"]: keep / d["uri"].split("/", 3)[3] for d in report["datasets"]}


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


# --- synth --------------------------------------------------------------------------


def test_synth_lists_staged_datasets_with_the_reason_and_adds_java_for_spark(tmp_path):
    spark = synth(SPARK, tmp_path / "spark")
    assert spark.returncode == 0, spark.stderr
    reason = "spark.SparkDataset: Spark reads s3:// as s3a://, needs hadoop-aws"
    assert (
        "  staged through the task's disk (3):\n"
        f"    daily@spark: {reason}\n"
        f"    raw_events: {reason}\n"
        f"    top_days@spark: {reason}\n"
    ) in spark.stdout
    assert "daily@pandas" not in spark.stdout  # pandas reads the same folder directly
    custom = synth(CUSTOM, tmp_path / "custom", 'datasetAccess={"canvas": "direct"}')
    assert custom.returncode == 0, custom.stderr
    not_s3 = "custom_files.datasets.LocalImageDataset: not known to open s3:// paths"
    assert (
        "  staged through the task's disk (4):\n"
        f"    inbox: partitions.IncrementalDataset of {not_s3}\n"
        f"    seed: {not_s3}\n"
        f"    thumbnail: {not_s3}\n"
        f"    tiles: partitions.PartitionedDataset of {not_s3}\n"
    ) in custom.stdout
    images = {
        run_: next(
            r["inputs"]["buildArgs"]
            for r in json.loads((tmp_path / run_ / "resources.json").read_text())
            if r["type"] == "docker-build:index:Image"
        )
        for run_ in ("spark", "custom")
    }
    assert images == {
        "spark": {"REQUIREMENTS": "requirements.txt", "JAVA": "1"},
        "custom": {"REQUIREMENTS": "requirements.txt"},
    }


@pytest.mark.parametrize(
    ("access", "message"),
    [
        (
            '{"tile": "stage"}',
            "error: invalid config kedro-batch:datasetAccess: 'tile' is not a dataset of the "
            "deployed pipelines (__default__); did you mean 'tiles'?",
        ),
        (
            '{"{name}_stats": "stage", "params": "direct"}',
            "error: invalid config kedro-batch:datasetAccess: 'params' is not a dataset",
        ),
    ],
)
def test_a_dataset_access_key_that_names_no_dataset_exits_2(tmp_path, access, message):
    result = synth(CUSTOM, tmp_path, f"datasetAccess={access}")
    assert result.returncode == 2
    # The error is the last line (the first synth of a project says first
    # that it builds the project's environment).
    assert result.stderr.strip().splitlines()[-1].startswith(message)
    assert "Traceback" not in result.stderr


# --- local-run ----------------------------------------------------------------------


def test_a_custom_local_file_dataset_runs_staged_folders_and_versions_included(tmp_path):
    report, _ = run(CUSTOM, tmp_path / "bucket")
    assert {n["status"] for n in report["nodes"]} == {"SUCCEEDED"}
    found = written(report, tmp_path / "bucket")
    assert files(found["tiles"]) == [
        "row0/tile0.png",
        "row0/tile1.png",
        "row1/tile0.png",
        "row1/tile1.png",
    ]
    thumbnail = found["thumbnail"]  # .../thumbnail.gif/<run version>/thumbnail.gif
    assert VERSION.match(thumbnail.parent.name) and thumbnail.is_file()
    stats = pd.read_csv(found["tile_stats"])
    assert stats.to_dict("list") == {
        "tile": ["row0/tile0", "row0/tile1", "row1/tile0", "row1/tile1"],
        "red_pixels": [16, 0, 0, 0],
        "thumbnail": ["2x2"] * 4,
    }
    # The node that confirmed the staged IncrementalDataset saw both images,
    # and its checkpoint reached the bucket beside them: the next run on AWS
    # starts after the newest (on the task's disk alone it would be lost).
    inbox = pd.read_csv(found["inbox_report"])
    assert inbox.to_dict("list") == {"image": ["2026-11-30", "2026-12-01"], "width": [2, 3]}
    bucket_inbox = tmp_path / "bucket" / "data" / "01_raw" / "inbox"
    assert files(bucket_inbox) == ["2026-11-30.png", "2026-12-01.png", "CHECKPOINT"]
    assert (bucket_inbox / "CHECKPOINT").read_text(encoding="utf-8") == "2026-12-01"


@pytest.mark.skipif(shutil.which("java") is None, reason="Spark needs Java on this machine")
def test_a_spark_project_runs_staged_and_pandas_reads_what_spark_wrote(tmp_path):
    report, _ = run(SPARK, tmp_path / "bucket")
    assert {n["status"] for n in report["nodes"]} == {"SUCCEEDED"}
    found = written(report, tmp_path / "bucket")
    # Spark's folders, uploaded whole: unversioned under the run, versioned in a version folder.
    assert "runs/" in found["daily@spark"].as_posix()
    assert any(name.endswith(".parquet") for name in files(found["daily@spark"]))
    top = found["top_days@spark"]
    assert VERSION.match(top.parent.name) and "_SUCCESS" in files(top)
    report_csv = pd.read_csv(found["report"])
    assert report_csv.to_dict("list") == {
        "day": ["2026-01-01", "2026-01-02", "2026-01-03"],
        "amount": [15, 7, 21],
        "top": [True, False, True],
    }


def _relocated(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the absolute-paths fixture whose absolute root is private to this test."""
    project, disk = tmp_path / "project", tmp_path / "disk"
    shutil.copytree(ABSOLUTE, project)
    catalog = project / "conf" / "base" / "catalog.yml"
    catalog.write_text(catalog.read_text().replace(ABSOLUTE_ROOT, str(disk)))
    (disk / "raw").mkdir(parents=True)
    (disk / "raw" / "numbers.csv").write_text("value\n1\n2\n3\n4\n")
    return project, disk


@pytest.mark.parametrize(
    ("path", "culprits", "fix"),
    [
        # doubled would be written where the project's summary.csv goes.
        ("out/doubled.csv", "datasets 'doubled' (/data/08_reporting/summary.csv) and 'summary'",
         "change one of the paths"),
        ("raw/numbers.csv", "dataset 'raw_numbers' of pipeline '__default__' (/runs/",
         "move it out of a top-level runs/ folder"),
    ],
)  # fmt: skip
def test_synth_refuses_absolute_paths_that_clash_in_the_bucket(tmp_path, path, culprits, fix):
    project, _ = _relocated(tmp_path)
    catalog = project / "conf" / "base" / "catalog.yml"
    moved = "/data/08_reporting/summary.csv" if path.startswith("out") else "/runs/numbers.csv"
    catalog.write_text(catalog.read_text().replace(f"{tmp_path / 'disk'}/{path}", moved))
    synthesized = synth(project, tmp_path / "synth")
    assert synthesized.returncode == 2, synthesized.stderr
    # (a first synth also says it builds the project's environment)
    line = synthesized.stderr.strip().splitlines()[-1]
    assert "Traceback" not in synthesized.stderr
    assert line.startswith(f"error: {culprits}") and fix in line
    assert not (tmp_path / "synth" / "resources.json").exists()


def test_absolute_paths_move_into_the_bucket_and_never_cross_tasks_on_local_disk(tmp_path):
    project, disk = _relocated(tmp_path)
    # What a task would find if data crossed on this machine's disk: stale numbers.
    (disk / "out").mkdir()
    stale = "value\n1000\n"
    (disk / "out" / "doubled.csv").write_text(stale)
    synthesized = synth(project, tmp_path / "synth")
    assert synthesized.returncode == 0, synthesized.stderr
    place = str(disk).lstrip("/")
    bucket = "s3://<bucket>"
    assert (
        "  absolute paths moved into the bucket (3):\n"
        f"    doubled: {disk}/out/doubled.csv -> {bucket}/runs/<run id>/{place}/out/doubled.csv\n"
        f"    model: {disk}/models/model.pkl -> "
        f"{bucket}/{place}/models/model.pkl/<version>/model.pkl\n"
        f"    raw_numbers: {disk}/raw/numbers.csv -> {bucket}/{place}/raw/numbers.csv\n"
    ) in synthesized.stdout

    report, output = run(project, tmp_path / "bucket")
    keep = tmp_path / "bucket"
    assert re.search(r"bucket kedro-batch-dev-data: 1 input files", output)
    assert (keep / place / "raw" / "numbers.csv").read_text() == "value\n1\n2\n3\n4\n"
    found = written(report, keep)
    assert found["doubled"] == keep / "runs" / report["run_id"] / place / "out" / "doubled.csv"
    assert pd.read_csv(found["doubled"])["value"].tolist() == [2, 4, 6, 8]
    model = found["model"]
    assert model.parent.parent == keep / place / "models" / "model.pkl"
    assert pickle.loads(model.read_bytes()) == {"mean": 5.0}
    summary = pd.read_csv(io.StringIO(found["summary"].read_text()))
    assert summary.to_dict("records") == [{"total": 20, "mean": 5.0}]  # not the stale 1000
    # Nothing was written to (or read from) this machine's disk.
    assert (disk / "out" / "doubled.csv").read_text() == stale
    assert not (disk / "models").exists()
