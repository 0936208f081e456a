"""``local-run`` under stress: signals, reclaimed tasks, failing nodes, bad output
paths (tests/fixtures/projects/local_run_signals), with real subprocesses."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from kedro_batch_runtime import records
from rich.console import Console

from infra.__main__ import main
from infra.local_interpreter import RECLAIMED, retries
from infra.local_run import Options, local_run

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "tests" / "fixtures" / "projects" / "local_run_signals"
BASE = {"projectDir": str(PROJECT), "kedroEnv": ""}
QUIET = {"DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "true"}


def _processes_in(folder: Path) -> list[int]:
    """Processes working in ``folder`` (tasks run in copies under local-run's temp dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if cwd.is_relative_to(folder):
            found.append(int(entry.name))
    return found


def _wait_for(predicate, what: str, timeout: float = 420.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_the_run_and_leaves_nothing_behind(sig: int, code: int, tmp_path: Path):
    tmp, logs = tmp_path / "tmp", tmp_path / "logs"
    tmp.mkdir()
    env = {**os.environ, **QUIET, "TMPDIR": str(tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra", "local-run", "--project-dir", str(PROJECT),
         "-c", "kedroEnv=", "--params", "sleep=600", "--logs", str(logs)],
        cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def slow_started() -> bool:
            # Its task's log, whatever the grouping named the job running it.
            return any(
                s.node == "slow"
                for log in logs.glob("*.log")
                for s in records.parse(log.read_text().splitlines()).spans
            )

        _wait_for(lambda: slow_started() or proc.poll() is not None, "node slow to start")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        tasks = _processes_in(tmp)
        assert tasks  # the task is running, in its own session: Ctrl-C would not reach it
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted (")
    assert _processes_in(tmp) == []  # no orphaned task keeps running
    assert list(tmp.iterdir()) == []  # the run's temporary folder is gone
    port = int(re.search(r"embedded S3 at http://127\.0\.0\.1:(\d+)", err).group(1))
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_a_reclaimed_task_is_retried_and_the_report_shows_logs_and_param_paths(tmp_path: Path):
    report_file = tmp_path / "new" / "folder" / "report.json"  # created up front
    logs, keep = tmp_path / "logs", tmp_path / "bucket"
    out = StringIO()
    local_run(
        Options(
            overrides=BASE,
            params={"reclaim_marker": str(tmp_path / "reclaimed-once"), "region": "fr"},
            report=report_file,
            keep=keep,
            logs=logs,
        ),
        console=Console(file=out, width=200),
    )
    report = json.loads(report_file.read_text())
    nodes = {n["name"]: n for n in report["nodes"]}
    assert {n["status"] for n in nodes.values()} == {"SUCCEEDED"}, out.getvalue()
    assert nodes["reclaimed"]["attempts"] == 2 and nodes["slow"]["attempts"] == 1
    log = Path(nodes["reclaimed"]["log"])
    assert log == logs / "reclaimed.log"
    text = log.read_text()
    assert text.count('"event":"task-start"') == 2  # both attempts, one log
    assert records.parse(text.splitlines()).status == "SUCCEEDED"
    datasets = {d["name"]: d["uri"] for d in report["datasets"]}
    assert datasets["by_region"].endswith("/data/08_reporting/fr/by_region.csv")
    assert "use --keep" not in out.getvalue()  # it was given


def test_a_nodes_own_error_is_not_retried_and_nothing_stays_pending(tmp_path: Path):
    out = StringIO()
    report = local_run(
        Options(overrides=BASE, params={"fail": True, "sleep": 2}),
        console=Console(file=out, width=200),
    )
    nodes = {n["name"]: n for n in report["nodes"]}
    assert nodes["reclaimed"]["status"] == "FAILED" and nodes["reclaimed"]["attempts"] == 1
    assert nodes["regional"]["status"] == "NOT_RUN"
    text = out.getvalue()
    table = text[text.rindex("┏") : text.rindex("└")]  # the final table
    assert "not run" in table and "pending" not in table


@pytest.mark.parametrize(
    ("flag", "make", "message"),
    [
        ("--report", lambda t: t / "a-file" / "report.json", "cannot create"),
        ("--report", lambda t: t, "is a folder; give a file"),
        ("--keep", lambda t: t / "a-file", "exists and is not a folder"),
        ("--logs", lambda t: t / "a-file" / "logs", "cannot create"),
    ],
)
def test_output_paths_are_checked_before_anything_runs(
    flag: str, make, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    (tmp_path / "a-file").write_text("")
    code = main(["local-run", "--project-dir", str(PROJECT), flag, str(make(tmp_path))])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1
    assert "local-run" not in err.split("error:")[0]  # nothing started


def test_batch_retry_strategy_semantics():
    fargate = {
        "attempts": 3,
        "evaluateOnExits": [
            {"onStatusReason": "Your Spot Task was interrupted*", "action": "RETRY"},
            {"onStatusReason": "CannotPullContainerError*", "action": "RETRY"},
            {"onReason": "*", "action": "EXIT"},
        ],
    }
    reclaimed = RECLAIMED["FARGATE"]
    assert retries(fargate, 1, status_reason=reclaimed)
    assert retries(fargate, 2, status_reason=reclaimed)
    assert not retries(fargate, 3, status_reason=reclaimed)  # attempts counts the first
    own = "Essential container in task exited"
    assert not retries(fargate, 1, status_reason=own, exit_code=1)  # EXIT on any reason
    assert retries({"attempts": 2, "evaluateOnExits": []}, 1, status_reason=own)  # none match
    assert not retries(None, 1, status_reason=reclaimed)  # no strategy: one attempt
    assert not retries({"attempts": 3, "evaluateOnExits": [{"onExitCode": "1", "action": "EXIT"}]},
                       1, status_reason=own, exit_code=1)  # fmt: skip
