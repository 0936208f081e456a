"""``python -m infra local-run``: the deployed definition, run on this machine."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from infra.errors import UserError
from infra.local_run import Options, local_run, parse_params
from tests import browser

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "fixtures" / "projects" / "runtime_tiny"
NAMESPACED = ROOT / "tests" / "fixtures" / "projects" / "namespaced_defaults"
NO_ENV = {"kedroEnv": ""}  # fixture projects have no conf/dev


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "true"}
    return subprocess.run(
        [sys.executable, "-m", "infra", "local-run", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def run_quiet(**kwargs) -> tuple[dict, str]:
    out = StringIO()
    report = local_run(Options(**kwargs), console=Console(file=out, width=120))
    return report, out.getvalue()


@dataclass
class ExampleRun:
    result: subprocess.CompletedProcess[str]
    report: dict
    keep: Path
    timeline: Path


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> ExampleRun:
    """The example, end to end through the CLI, once for every test that reads it."""
    tmp = tmp_path_factory.mktemp("example")
    report_file, keep, page = tmp / "report.json", tmp / "bucket", tmp / "timeline.html"
    result = cli("--stack", "dev", "--report", str(report_file), "--keep", str(keep),
                 "--params", "train.model.alpha=0.5", "--timeline", str(page))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return ExampleRun(result, json.loads(report_file.read_text()), keep, page)


def test_example_runs_end_to_end_with_report_and_kept_outputs(example_run: ExampleRun):
    report, keep = example_run.report, example_run.keep
    assert report["pipeline"] == "__default__"
    assert report["run_id"].startswith("local-")
    assert len(report["nodes"]) == 16
    assert {n["status"] for n in report["nodes"]} == {"SUCCEEDED"}
    for node in report["nodes"]:
        assert node["started"] <= node["finished"]
    written = {d["name"]: d for d in report["datasets"]}
    assert written["performance_report"]["bytes"] > 0
    assert written["demand_model"]["uri"].endswith("/demand_model.pkl")
    assert "memory/train.train_set.pickle" in written["train.train_set"]["uri"]
    kept = keep / written["performance_report"]["uri"].split("/", 3)[3]
    assert kept.is_file()
    assert "alpha,0.5" in kept.read_text()


def test_example_timeline_shows_every_task_its_nodes_and_the_deciding_chain(
    example_run: ExampleRun, tmp_path: Path
):
    report = example_run.report
    with browser.page() as page:
        shown = browser.open_timeline(page, example_run.timeline, tmp_path / "example.png")
    tasks = {n["task"] for n in report["nodes"]}
    assert len(shown["rows"]) == len(tasks) and set(shown["rows"].values()) == {"SUCCEEDED"}
    # Every node is drawn inside its task, from its own records.
    assert shown["nodes"] == {n["name"]: "SUCCEEDED" for n in report["nodes"]}
    assert report["run_id"] in shown["header"] and "16" in shown["header"]
    # The chain runs from a task that waited for nothing to the one that ended last.
    ended = {n["task"]: n["finished"] for n in report["nodes"]}
    last = max(ended, key=ended.__getitem__)
    chain_tasks = {n["task"] for n in report["nodes"] if n["name"] in shown["chain"]}
    assert last in chain_tasks


def test_exact_mode_and_default_node_names_run_too():
    report, _ = run_quiet(
        overrides={"projectDir": str(NAMESPACED), **NO_ENV, "orchestration": "exact"}
    )
    assert {n["status"] for n in report["nodes"]} == {"SUCCEEDED"}
    assert any("__" in n["name"] for n in report["nodes"])


@pytest.fixture(scope="module")
def failed_tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, Path]:
    page = tmp_path_factory.mktemp("failed") / "timeline.html"
    # The model: scale, fit, report in a row, each job paying 2 s of start-up: 14 s.
    durations = {"scale": 2, "summarise": 3, "fit": 5, "report": 1}
    report, output = run_quiet(
        overrides={
            "projectDir": str(TINY),
            **NO_ENV,
            "durations": json.dumps(durations),
            "jobStartSeconds": "2",
            "grouping": "none",  # one job per node, so one timeline row each
        },
        params={"fail": True},
        timeline=page,
    )
    return report, output, page


def test_node_failure_shows_the_log_and_stops_the_server(failed_tiny: tuple[dict, str, Path]):
    report, output, _ = failed_tiny
    statuses = {n["name"]: n["status"] for n in report["nodes"]}
    assert "FAILED" in statuses.values() and "NOT_RUN" in statuses.values()
    failed = [n for n, s in statuses.items() if s == "FAILED"]
    assert f"node {failed[0]} failed" in output
    assert "asked to fail" in output  # the node's own log tail
    assert report["error"]["error"] == "States.TaskFailed"
    port = int(re.search(r"embedded S3 at http://127\.0\.0\.1:(\d+)", output).group(1))
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_a_failed_runs_timeline_marks_the_failed_node_with_its_cause(
    failed_tiny: tuple[dict, str, Path], tmp_path: Path
):
    _, _, page_file = failed_tiny
    with browser.page() as page:
        shown = browser.open_timeline(page, page_file, tmp_path / "failed.png")
        browser.check_failure_mark(page, "summarise", "ValueError: asked to fail")
    assert shown["rows"]["summarise"] == "FAILED" and shown["rows"]["report"] == "NOT_RUN"
    assert shown["nodes"]["summarise"] == "FAILED"
    assert re.search(r"model expected\s+14s", shown["header"])


def test_a_fused_tasks_nodes_have_their_own_times_and_unstarted_ones_did_not_run():
    """``intermediates: group`` fuses scale, summarise and fit (they share a MemoryDataset)."""
    report, _ = run_quiet(
        overrides={"projectDir": str(TINY), **NO_ENV, "intermediates": "group", "grouping": "none"},
        params={"fail": True},
    )
    nodes = {n["name"]: n for n in report["nodes"]}
    fused = [n for n in report["nodes"] if n["task"] == nodes["summarise"]["task"]]
    assert {n["name"] for n in fused} == {"scale", "summarise", "fit"}
    assert (nodes["scale"]["status"], nodes["summarise"]["status"]) == ("SUCCEEDED", "FAILED")
    assert nodes["report"]["status"] == "NOT_RUN"  # its task never ran
    ran = sorted((n for n in fused if n["started"] is not None), key=lambda n: n["started"])
    for before, after in itertools.pairwise(ran):  # one after another, each its own
        assert before["finished"] <= after["started"]
    assert ran[0]["started"] < ran[-1]["started"]
    # A node after the failing one never started: not run, with no times.
    for node in fused:
        if node["started"] is None:
            assert (node["status"], node["finished"]) == ("NOT_RUN", None)


def test_cli_exit_status_is_1_on_failure():
    result = cli("--project-dir", str(TINY), "-c", "kedroEnv=", "--params", "fail=true")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr.split("last log lines")[0]


def test_missing_raw_input_names_the_dataset_and_path(tmp_path: Path):
    project = tmp_path / "tiny"
    shutil.copytree(TINY, project)
    (project / "data" / "01_raw" / "numbers.csv").unlink()
    with pytest.raises(UserError, match=r"raw input 'raw_numbers' is missing: .*numbers\.csv"):
        run_quiet(overrides={"projectDir": str(project), **NO_ENV})


def test_unknown_pipeline_lists_the_registered_ones():
    result = cli("--project-dir", str(TINY), "-c", "kedroEnv=", "--pipeline", "nope")
    assert result.returncode == 2
    assert "pipeline 'nope' is not registered" in result.stderr
    assert "Traceback" not in result.stderr


def test_params_parse_like_kedro():
    assert parse_params("a=1,b.c=x,d=true,e=0.5") == {"a": 1, "b": {"c": "x"}, "d": True, "e": 0.5}
    with pytest.raises(UserError, match="key=value"):
        parse_params("oops")


def test_split_pipeline_runs_its_parts_locally(monkeypatch: pytest.MonkeyPatch):
    from infra import asl

    monkeypatch.setattr(asl, "SPLIT_BYTES", 2_500)
    report, output = run_quiet(overrides={"projectDir": str(TINY), **NO_ENV})
    assert {n["status"] for n in report["nodes"]} == {"SUCCEEDED"}, output


def test_split_exact_pipeline_runs_its_parts_locally(monkeypatch: pytest.MonkeyPatch):
    from infra import asl

    monkeypatch.setattr(asl, "SPLIT_PAYLOAD", asl.JOB_ID_BYTES * 2)
    report, output = run_quiet(
        overrides={"projectDir": str(TINY), **NO_ENV, "orchestration": "exact"}
    )
    assert {n["status"] for n in report["nodes"]} == {"SUCCEEDED"}, output


@pytest.mark.parametrize(
    ("grouping", "measured", "jobs"),
    [
        ("auto", False, 3),  # without durations: alpha's chain becomes one job
        ("auto", True, 1),  # measured, and all short: one job
        ("namespace", False, 2),
        ("none", False, 5),
    ],
)
def test_every_grouping_runs_every_node_once_after_its_dependencies(grouping, measured, jobs):
    from infra.kedro_project import load_project

    graph = load_project(NAMESPACED).pipelines["__default__"]
    overrides = {"projectDir": str(NAMESPACED), **NO_ENV, "grouping": grouping}
    if measured:
        overrides["durations"] = json.dumps(dict.fromkeys(graph.node_names, 1.0))
    report, output = run_quiet(overrides=overrides)
    nodes = {n["name"]: n for n in report["nodes"]}
    assert len(report["nodes"]) == len(nodes) == len(graph.nodes), output
    assert {n["status"] for n in nodes.values()} == {"SUCCEEDED"}, output
    assert len({n["task"] for n in nodes.values()}) == jobs
    for child, parents in graph.parents.items():
        for parent in parents:
            if nodes[parent]["task"] != nodes[child]["task"]:
                assert nodes[parent]["finished"] <= nodes[child]["started"]
