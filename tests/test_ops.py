"""Day-2 commands: ``run``, ``status``, ``redrive`` (``infra/ops.py``).

Two layers. The pure core (definition -> task states, history -> node rows,
rows -> durations) is tested on histories written in the shapes AWS
records, including ones moto never produces (aborted siblings, retries,
redrives, Batch reasons and exit codes). The commands are tested end to end
through ``python -m infra``'s ``main`` against a moto *server* on 127.0.0.1
that executes the example project's real compiled definitions, Batch jobs
included (``tests/moto_sfn.py``), over HTTP with ``--endpoint-url``.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from kedro_batch_runtime import records
from rich.console import Console

from infra import asl, ops, progress
from infra.__main__ import main
from infra.config import parse
from infra.errors import UserError
from infra.graph import PipelineGraph
from infra.kedro_project import load_project
from tests import browser, moto_sfn

ROOT = Path(__file__).resolve().parent.parent
# moto's .sync task-token watcher thread raises after a task has finished (a
# moto bug, see test_moto_execution.py); the executions are unaffected.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ACCOUNT = "123456789012"


# --- a history in AWS's shapes ---------------------------------------------------


def machine(*tasks: tuple[str, str], sync: bool = True) -> dict[str, Any]:
    """A definition in the compiler's shape: (state, comma-separated nodes) per task."""
    resource = asl.SUBMIT_JOB_SYNC if sync else asl.SUBMIT_JOB

    def task(nodes: str) -> dict[str, Any]:
        command = ["kedro-batch-task", "--nodes", nodes]
        return {
            "Type": "Task",
            "Resource": resource,
            "Parameters": {"ContainerOverrides": {"Command": command}},
            "End": True,
        }

    first, *rest = tasks
    states: dict[str, Any] = {first[0]: task(first[1])}
    if rest:
        states[first[0]]["Next"] = "Fan"
        del states[first[0]]["End"]
        states["Fan"] = {
            "Type": "Parallel",
            "Branches": [{"StartAt": s, "States": {s: task(n)}} for s, n in rest],
            "End": True,
        }
    return {"StartAt": first[0], "States": states}


def job(job_id: str, status: str, started: float | None, stopped: float | None, **extra: Any):
    """A Batch job description as Step Functions passes it on (PascalCase)."""
    description: dict[str, Any] = {"JobId": job_id, "JobName": job_id, "Status": status}
    if started is not None:
        description["StartedAt"] = int((T0 + timedelta(seconds=started)).timestamp() * 1000)
    if stopped is not None:
        description["StoppedAt"] = int((T0 + timedelta(seconds=stopped)).timestamp() * 1000)
    description["Container"] = {
        "LogStreamName": f"kedro/default/{job_id}",
        "LogConfiguration": {"LogDriver": "awslogs", "Options": {"awslogs-group": "/kb/jobs"}},
        **extra.pop("container", {}),
    }
    description.update(extra)
    return description


@dataclass
class History:
    events: list[dict[str, Any]]

    @classmethod
    def started(cls) -> History:
        return cls([{"id": 1, "type": "ExecutionStarted", "previousEventId": 0, "timestamp": T0}])

    def add(self, kind: str, prev: int, at: float, **details: Any) -> int:
        event_id = len(self.events) + 1
        self.events.append(
            {
                "id": event_id,
                "type": kind,
                "previousEventId": prev,
                "timestamp": T0 + timedelta(seconds=at),
                **details,
            }
        )
        return event_id

    def enter(self, state: str, at: float, prev: int = 1) -> int:
        entered = self.add("TaskStateEntered", prev, at, stateEnteredEventDetails={"name": state})
        scheduled = self.add("TaskScheduled", entered, at)
        return self.add("TaskStarted", scheduled, at)

    def succeed(self, state: str, last: int, description: dict[str, Any], at: float) -> int:
        output = json.dumps(description)
        done = self.add("TaskSucceeded", last, at, taskSucceededEventDetails={"output": output})
        return self.add("TaskStateExited", done, at, stateExitedEventDetails={"name": state})

    def fail(self, last: int, at: float, error: str, cause: str) -> int:
        details = {"error": error, "cause": cause}
        return self.add("TaskFailed", last, at, taskFailedEventDetails=details)

    def end(self, kind: str, at: float) -> None:
        self.add(kind, len(self.events), at)


def rows_by_name(rows: list[ops.NodeRow]) -> dict[str, ops.NodeRow]:
    return {r.name: r for r in rows}


# --- the pure core ---------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> PipelineGraph:
    return load_project(ROOT / "example").pipelines["__default__"]


@pytest.mark.parametrize("mode", asl.MODES)
def test_task_states_are_the_nodes_of_the_compiled_definition(example: PipelineGraph, mode: str):
    definition = asl.build_definition(example, job_queue="q", job_definition="d", mode=mode)
    tasks = ops.task_states(definition)
    assert sorted(n for t in tasks for n in t.nodes) == sorted(example.node_names)
    assert {t.sync for t in tasks} == {mode == "structured"}  # barriers are not nodes


def test_a_successful_run_has_run_times_and_log_links_from_the_job():
    definition = machine(("prep", "a.prep"), ("left", "b.left,b.more"), ("right", "c.right"))
    h = History.started()
    last = h.enter("prep", 0)
    prev = h.succeed("prep", last, job("j1", "SUCCEEDED", 30, 90), 95)
    left, right = h.enter("left", 96, prev), h.enter("right", 96, prev)
    h.succeed("left", left, job("j2", "SUCCEEDED", 120, 180), 185)
    h.succeed("right", right, job("j3", "SUCCEEDED", 100, 110), 115)
    h.end("ExecutionSucceeded", 186)
    rows = rows_by_name(ops.node_rows(definition, h.events, execution_status="SUCCEEDED"))
    assert {r.status for r in rows.values()} == {"SUCCEEDED"}
    # Run time is the job's (queueing excluded), not the state's.
    assert rows["a.prep"].seconds(T0) == 60
    assert rows["a.prep"].log_group == "/kb/jobs"  # awslogs-group of the job definition
    assert rows["a.prep"].log_link("eu-west-1") == (
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1"
        "#logsV2:log-groups/log-group/$252Fkb$252Fjobs/log-events/kedro$252Fdefault$252Fj1"
    )
    # Two nodes in one task share its job; durations split its time evenly.
    assert rows["b.left"].job_id == rows["b.more"].job_id == "j2"
    measured = ops.measured_durations(list(rows.values()))
    assert measured == {"a.prep": 60.0, "b.left": 30.0, "b.more": 30.0, "c.right": 10.0}


def test_a_failure_names_the_node_its_reason_and_what_did_not_run():
    definition = machine(("prep", "a.prep"), ("left", "b.left"), ("right", "c.right"))
    definition["States"]["after"] = machine(("after", "d.after"))["States"]["after"]
    h = History.started()
    prev = h.succeed("prep", h.enter("prep", 0), job("j1", "SUCCEEDED", 1, 2), 3)
    left, right = h.enter("left", 4, prev), h.enter("right", 4, prev)
    failed = job(
        "j2",
        "FAILED",
        10,
        20,
        StatusReason="Essential container in task exited",
        container={"ExitCode": 1},
    )
    h.fail(left, 21, "States.TaskFailed", json.dumps(failed))
    h.add("TaskStateAborted", right, 22)  # the sibling branch, stopped
    h.end("ExecutionFailed", 22)
    rows = rows_by_name(ops.node_rows(definition, h.events, execution_status="FAILED"))
    assert rows["b.left"].status == "FAILED"
    assert rows["b.left"].cause == "Essential container in task exited (exit code 1)"
    assert rows["b.left"].log_stream == "kedro/default/j2"
    assert rows["c.right"].status == "CANCELLED"
    assert rows["d.after"].status == "NOT_RUN"
    assert rows["a.prep"].status == "SUCCEEDED"
    assert ops.measured_durations(list(rows.values())) == {"a.prep": 1.0}


def test_a_task_failing_after_the_execution_ended_was_cancelled():
    """moto's order: the Parallel fails, then the stopped siblings report TaskFailed."""
    definition = machine(("first", "a.first"), ("left", "b.left"), ("right", "c.right"))
    h = History.started()
    prev = h.succeed("first", h.enter("first", 0), job("j1", "SUCCEEDED", 0, 1), 1)
    left, right = h.enter("left", 2, prev), h.enter("right", 2, prev)
    h.fail(left, 3, "States.TaskFailed", json.dumps(job("j2", "FAILED", 2, 3)))
    h.end("ExecutionFailed", 4)
    h.fail(right, 5, "States.TaskFailed", "terminated")
    rows = rows_by_name(ops.node_rows(definition, h.events, execution_status="FAILED"))
    assert (rows["b.left"].status, rows["c.right"].status) == ("FAILED", "CANCELLED")
    assert rows["b.left"].cause == ops.NO_REASON  # no reason given: say where to look


def test_a_retried_submission_counts_only_its_last_attempt():
    definition = machine(("prep", "a.prep"))
    h = History.started()
    last = h.enter("prep", 0)
    failed = h.fail(last, 1, "Batch.AWSBatchException", "Too Many Requests")
    scheduled = h.add("TaskScheduled", failed, 3)
    h.succeed("prep", h.add("TaskStarted", scheduled, 3), job("j1", "SUCCEEDED", 4, 9), 10)
    h.end("ExecutionSucceeded", 10)
    (row,) = ops.node_rows(definition, h.events, execution_status="SUCCEEDED")
    assert (row.status, row.cause, row.seconds(T0)) == ("SUCCEEDED", None, 5)


def test_a_redriven_execution_shows_the_latest_attempt_and_keeps_what_succeeded():
    definition = machine(("prep", "a.prep"), ("left", "b.left"), ("right", "c.right"))
    h = History.started()
    prev = h.succeed("prep", h.enter("prep", 0), job("j1", "SUCCEEDED", 0, 1), 1)
    left, right = h.enter("left", 2, prev), h.enter("right", 2, prev)
    h.succeed("right", right, job("j3", "SUCCEEDED", 2, 3), 3)
    h.fail(left, 4, "States.TaskFailed", json.dumps(job("j2", "FAILED", 2, 4)))
    h.end("ExecutionFailed", 5)
    before = rows_by_name(ops.node_rows(definition, h.events, execution_status="FAILED"))
    assert before["b.left"].status == "FAILED"
    h.add("ExecutionRedriven", len(h.events), 100, executionRedrivenEventDetails={})
    h.succeed("left", h.enter("left", 101, len(h.events)), job("j4", "SUCCEEDED", 110, 150), 151)
    h.end("ExecutionSucceeded", 152)
    after = rows_by_name(ops.node_rows(definition, h.events, execution_status="SUCCEEDED"))
    assert {r.status for r in after.values()} == {"SUCCEEDED"}
    assert (after["b.left"].job_id, after["b.left"].seconds(T0)) == ("j4", 40)
    assert after["c.right"].job_id == "j3"


def test_batch_tells_queued_from_running_while_step_functions_waits():
    definition = machine(("prep", "a.prep"))
    h = History.started()
    started = h.enter("prep", 0)
    submitted = json.dumps({"JobId": "j1", "JobName": "prep"})
    h.add("TaskSubmitted", started, 1, taskSubmittedEventDetails={"output": submitted})
    (row,) = ops.node_rows(definition, h.events, execution_status="RUNNING")
    assert (row.status, row.job_id) == ("RUNNING", "j1")
    runnable = {"jobId": "j1", "status": "RUNNABLE"}
    (row,) = ops.node_rows(definition, h.events, execution_status="RUNNING", jobs={"j1": runnable})
    assert row.status == "QUEUED"
    running = {
        "jobId": "j1",
        "status": "RUNNING",
        "startedAt": int(T0.timestamp() * 1000) + 5000,
        "container": {"logStreamName": "kedro/default/j1"},  # DescribeJobs spelling
    }
    (row,) = ops.node_rows(definition, h.events, execution_status="RUNNING", jobs={"j1": running})
    assert (row.status, row.seconds(T0 + timedelta(seconds=65))) == ("RUNNING", 60)
    assert "$252Faws$252Fbatch$252Fjob" in str(row.log_link("eu-west-1"))  # the default group


def test_a_task_left_unfinished_by_an_ended_execution_was_cancelled():
    definition = machine(("prep", "a.prep"))
    h = History.started()
    h.enter("prep", 0)
    h.end("ExecutionAborted", 10)
    (row,) = ops.node_rows(definition, h.events, execution_status="ABORTED")
    assert row.status == "CANCELLED"


def exact_history(*states: str) -> History:
    """Exact mode: each submit-* state only submits its job."""
    h = History.started()
    prev = 1
    for i, state in enumerate(states):
        last = h.enter(state, i, prev)
        output = json.dumps({"JobId": f"j{i}", "JobName": state})
        done = h.add("TaskSucceeded", last, i, taskSucceededEventDetails={"output": output})
        prev = h.add("TaskStateExited", done, i, stateExitedEventDetails={"name": state})
    return h


def test_exact_mode_outcomes_come_from_batch():
    definition = machine(
        ("submit-a", "a"), ("submit-b", "b"), ("submit-c", "c"), ("submit-d", "d"), sync=False
    )
    h = exact_history("submit-a", "submit-b", "submit-c", "submit-d")
    h.end("ExecutionFailed", 60)
    ms = int(T0.timestamp() * 1000)
    jobs: dict[str, dict[str, Any]] = {
        "j0": {"jobId": "j0", "status": "SUCCEEDED", "startedAt": ms, "stoppedAt": ms + 7000},
        "j1": {
            "jobId": "j1",
            "status": "FAILED",
            "startedAt": ms,
            "stoppedAt": ms + 1000,
            "statusReason": "Host EC2 (instance i-1) terminated.",
        },
        # Never started: Batch failed it because a job it depends on failed.
        "j2": {"jobId": "j2", "status": "FAILED", "statusReason": "Dependent Job failed"},
    }
    rows = rows_by_name(ops.node_rows(definition, h.events, execution_status="FAILED", jobs=jobs))
    assert [rows[n].status for n in "abcd"] == ["SUCCEEDED", "FAILED", "CANCELLED", "CANCELLED"]
    assert rows["b"].cause == "Host EC2 (instance i-1) terminated."
    assert rows["a"].seconds(T0) == 7
    # Without Batch, a successful execution still proves every job succeeded.
    h = exact_history("submit-a")
    h.end("ExecutionSucceeded", 5)
    (row,) = ops.node_rows(
        machine(("submit-a", "a"), sync=False), h.events, execution_status="SUCCEEDED"
    )
    assert row.status == "SUCCEEDED"


def test_summarised_cause_replaces_the_job_description_by_its_reason():
    described = job("j9", "FAILED", 1, 2, StatusReason="OutOfMemoryError: Container killed")
    cause = f"Kedro node(s) train.fit failed. {json.dumps(described)}"
    assert ops.summarise_cause(cause) == (
        "Kedro node(s) train.fit failed. OutOfMemoryError: Container killed"
    )
    assert ops.summarise_cause("x" * 1000, limit=50).endswith("…")


def test_measured_durations_are_valid_config(tmp_path: Path):
    rows = [
        ops.NodeRow("a", "s", 1, "SUCCEEDED", T0, T0 + timedelta(seconds=0.2)),
        ops.NodeRow("b", "s", 1, "SUCCEEDED", T0, T0 + timedelta(seconds=42.26)),
        ops.NodeRow("c", "s", 1, "FAILED", T0, T0 + timedelta(seconds=5)),
    ]
    measured = ops.measured_durations(rows)
    assert measured == {"a": 1.0, "b": 42.3}  # at least 1 s; failed nodes are not measured
    as_json, as_yaml = tmp_path / "d.json", tmp_path / "d.yaml"
    ops.write_durations(as_json, measured)
    ops.write_durations(as_yaml, measured)
    # What `pulumi config set kedro-batch:durations "$(cat d.json)"` stores, the config reads.
    assert parse({"durations": as_json.read_text()}).durations == measured
    assert parse({"durations": yaml.safe_load(as_yaml.read_text())}).durations == measured


@given(st.text(max_size=200))
def test_execution_names_are_valid_run_ids_whatever_the_pipeline(pipeline: str):
    name = ops.execution_name(pipeline, now=T0, token="abc123")
    assert ops.EXECUTION_NAME.fullmatch(name), name
    assert name.endswith("-20260301T120000Z-abc123")


def test_execution_names_read_well():
    assert ops.execution_name("__default__", now=T0, token="a1b2c3") == (
        "default-20260301T120000Z-a1b2c3"
    )
    assert ops.execution_name("x" * 100, now=T0).startswith("x" * 56 + "-2026")
    with pytest.raises(UserError, match="--name"):
        ops.check_execution_name("my run")


def test_stack_outputs_pick_the_state_machine():
    arn = f"arn:aws:states:eu-west-1:{ACCOUNT}:stateMachine:m"
    outputs = {"stateMachineArns": {"__default__": arn, "train": arn + "2"}}
    assert ops.state_machine_arn(outputs, "dev", None) == ("__default__", arn)
    assert ops.state_machine_arn(outputs, "dev", "train") == ("train", arn + "2")
    assert ops.state_machine_arn({"stateMachines": {"x": arn}}, "dev", None) == ("x", arn)
    with pytest.raises(UserError, match=r"no pipeline 'nope' \(deployed: __default__, train\)"):
        ops.state_machine_arn(outputs, "dev", "nope")
    with pytest.raises(UserError, match="several pipelines"):
        ops.state_machine_arn({"stateMachineArns": {"a": arn, "b": arn}}, "dev", None)
    # consoleUrls.stateMachines holds URLs, not ARNs: no state machines exported.
    with pytest.raises(UserError, match="exports no stateMachineArns"):
        ops.state_machine_arn({"stateMachines": {"a": "https://x"}}, "dev", None)


def test_arns_are_checked_before_any_call():
    with pytest.raises(UserError, match="that is a state machine"):
        ops.check_execution_arn(f"arn:aws:states:eu-west-1:{ACCOUNT}:stateMachine:m")
    with pytest.raises(UserError, match="not a state machine ARN"):
        ops.check_state_machine_arn("m")


def test_progress_off_a_terminal_prints_one_line_per_change():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with progress.Progress(console, "run") as shown:
        shown.update([progress.Row("a", "NOT_RUN"), progress.Row("b", "RUNNING")])
        shown.update([progress.Row("a", "NOT_RUN"), progress.Row("b", "RUNNING")])
        shown.update([progress.Row("a", "RUNNING"), progress.Row("b", "FAILED", 3.0, "https://l")])
    assert out.getvalue().splitlines() == [
        "b: running",
        "a: running",
        "b: failed after 3.0s (logs: https://l)",
    ]


# --- the commands against a moto server ----------------------------------------------


@dataclass
class Deployed:
    endpoint: str
    machines: dict[str, str]  # mode -> state machine ARN
    waiting: str  # a state machine that waits a minute: its executions stay RUNNING
    sfn: Any

    def cli(self, *args: str) -> int:
        return main([*args, "--endpoint-url", self.endpoint, "--interval", "0.2"])


@pytest.fixture(scope="module")
def deployed(example: PipelineGraph) -> Iterator[Deployed]:
    with pytest.MonkeyPatch.context() as env, moto_sfn.moto_server() as endpoint:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.delenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", raising=False)
        kw = {"endpoint_url": endpoint, "region_name": moto_sfn.REGION}
        sfn = boto3.client("stepfunctions", **kw)
        queue, jobdef = moto_sfn.batch_environment(
            boto3.client("batch", **kw), boto3.client("iam", **kw), boto3.client("ec2", **kw)
        )
        role = f"arn:aws:iam::{ACCOUNT}:role/sfn"
        # Jobs log where Batch logs by default; tests put records there.
        boto3.client("logs", **kw).create_log_group(logGroupName=ops.DEFAULT_LOG_GROUP)
        machines: dict[str, str] = {}
        # Fused tasks: one per namespace, as grouping: namespace deploys them.
        by_namespace: dict[str, list[str]] = {}
        for node in example.nodes:
            by_namespace.setdefault(node.namespace or node.name, []).append(node.name)
        grouped = asl.build_definition(
            example,
            job_queue=queue,
            job_definition=jobdef,
            groups=list(by_namespace.values()),
            pipeline_name="__default__",
        )
        machines["grouped"] = sfn.create_state_machine(
            name="kedro-batch-dev-grouped",
            definition=json.dumps(grouped),
            roleArn=role,
            tags=[{"key": "kedro-batch:pipeline", "value": "__default__"}],
        )["stateMachineArn"]
        for mode in asl.MODES:
            definition = asl.build_definition(
                example,
                job_queue=queue,
                job_definition=jobdef,
                mode=mode,
                pipeline_name="__default__",
            )
            machines[mode] = sfn.create_state_machine(
                name=f"kedro-batch-dev-{mode}-0a1b2c3",
                definition=json.dumps(definition),
                roleArn=role,
                tags=[{"key": "kedro-batch:pipeline", "value": "__default__"}],
            )["stateMachineArn"]
        # The example split into parts (child state machines), as a big pipeline is.
        # moto names every child execution "None", so a part runs once per machine:
        # one set of machines for the run that succeeds, one for the run that fails.
        with pytest.MonkeyPatch.context() as small:
            small.setattr(asl, "SPLIT_BYTES", 8_000)
            parts = asl.build_machines(
                example, job_queue=queue, job_definition=jobdef, pipeline_name="__default__"
            )
        assert len(parts) > 2
        for use in ("split", "split-failing"):
            arns: dict[str, str] = {}
            for part in parts:  # parts first: their parent needs their ARNs
                arns[part.key] = sfn.create_state_machine(
                    name=f"kedro-batch-dev-{use}{'-' + part.key if part.key else ''}",
                    definition=json.dumps(part.definition(arns)),
                    roleArn=role,
                    tags=[{"key": "kedro-batch:pipeline", "value": "__default__"}],
                )["stateMachineArn"]
            machines[use] = arns[""]
        wait = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}}
        waiting = sfn.create_state_machine(name="waits", definition=json.dumps(wait), roleArn=role)[
            "stateMachineArn"
        ]
        yield Deployed(endpoint, machines, waiting, sfn)


def executions(deployed: Deployed, mode: str) -> set[str]:
    listed = deployed.sfn.list_executions(stateMachineArn=deployed.machines[mode])
    return {e["executionArn"] for e in listed["executions"]}


@pytest.fixture(scope="module")
def succeeded(deployed: Deployed) -> str:
    started = deployed.sfn.start_execution(
        stateMachineArn=deployed.machines["structured"], name="succeeded", input='{"params": {}}'
    )
    assert moto_sfn.wait(deployed.sfn, started["executionArn"])["status"] == "SUCCEEDED"
    return started["executionArn"]


def fail(deployed: Deployed, mode: str, name: str) -> str:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # read when each job runs
        started = deployed.sfn.start_execution(stateMachineArn=deployed.machines[mode], name=name)
        assert moto_sfn.wait(deployed.sfn, started["executionArn"])["status"] == "FAILED"
    return started["executionArn"]


@pytest.fixture(scope="module")
def failed(deployed: Deployed) -> str:
    """Structured: the first fan-out fails. (moto may let a sibling branch go on.)"""
    return fail(deployed, "structured", "failed")


@pytest.fixture(scope="module")
def failed_split(deployed: Deployed) -> str:
    return fail(deployed, "split-failing", "failed-split")


@pytest.fixture(scope="module")
def failed_exact(deployed: Deployed) -> str:
    """Exact: every job is submitted before the barrier fails, so every one fails."""
    return fail(deployed, "exact", "failed-exact")


def table_rows(out: str) -> dict[str, str]:
    """node -> status, from the printed table."""
    cells = [line.split("│") for line in out.splitlines() if line.count("│") == 4]
    return {c[1].strip(): c[2].strip() for c in cells}


def first_nodes(example: PipelineGraph) -> set[str]:
    return {n.name for n in example.nodes if not example.parents[n.name]}


@pytest.mark.parametrize("mode", [*asl.MODES, "split"])
def test_run_follow_starts_the_execution_and_exits_0_when_it_succeeds(
    deployed: Deployed, example: PipelineGraph, mode: str, capsys: pytest.CaptureFixture[str]
):
    before = executions(deployed, mode)
    code = deployed.cli(
        "run",
        "--state-machine-arn",
        deployed.machines[mode],
        "--params",
        "train.model.alpha=0.5,n=3",
        "--follow",
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    (arn,) = executions(deployed, mode) - before
    assert out.strip() == arn  # stdout is the ARN alone: ARN=$(python -m infra run ...)
    described = deployed.sfn.describe_execution(executionArn=arn)
    assert json.loads(described["input"]) == {
        "params": {"train": {"model": {"alpha": 0.5}}, "n": 3}
    }
    # Named after the pipeline (from the machine's tag), and a valid run id.
    assert ops.EXECUTION_NAME.fullmatch(described["name"])
    assert described["name"].startswith("default-")
    assert f"{len(example.nodes)} nodes: {len(example.nodes)} succeeded" in err
    for node in example.node_names:
        assert f"{node}: succeeded" in err  # one line per change off a terminal


def test_run_follow_exits_1_and_names_the_failed_node(
    deployed: Deployed, example: PipelineGraph, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    code = deployed.cli("run", "--state-machine-arn", deployed.machines["structured"], "--follow")
    _, err = capsys.readouterr()
    assert code == 1
    named = [n for n in first_nodes(example) if f"node {n} failed" in err]
    assert named, err
    assert "logs: https://eu-west-1.console.aws.amazon.com/cloudwatch/" in err
    assert "failed: States.TaskFailed: Kedro node(s)" in err


def test_status_tables_the_nodes_of_a_failed_execution(
    deployed: Deployed, failed: str, example: PipelineGraph, capsys
):
    code = deployed.cli("status", failed)
    out, _ = capsys.readouterr()
    assert code == 1
    rows = table_rows(out)
    assert set(rows) == set(example.node_names)
    failed_nodes = {n for n, s in rows.items() if s == "failed"}
    assert failed_nodes and failed_nodes <= first_nodes(example)
    later = set(example.node_names) - first_nodes(example)
    assert {rows[n] for n in later} == {"not run"}
    for node in failed_nodes:
        assert f"node {node} failed" in out


def test_status_durations_writes_what_the_next_deploy_reads(
    deployed: Deployed, succeeded: str, example: PipelineGraph, tmp_path: Path, capsys
):
    target = tmp_path / "durations.json"
    assert deployed.cli("status", succeeded, "--durations", str(target)) == 0
    measured = parse({"durations": target.read_text()}).durations
    assert set(measured) == set(example.node_names)
    assert "pulumi config set kedro-batch:durations" in capsys.readouterr().out


def test_status_of_an_exact_run_reads_each_nodes_fate_from_batch(
    deployed: Deployed, failed_exact: str, example: PipelineGraph, tmp_path: Path, capsys
):
    assert deployed.cli("status", failed_exact, "--durations", str(tmp_path / "d.json")) == 2
    out, err = capsys.readouterr()
    for node in example.node_names:  # moto fails every job, and each one started
        assert f"node {node} failed" in out
    assert "nothing to write" in err  # --durations: no node succeeded
    assert not (tmp_path / "d.json").exists()


def test_redrive_refuses_a_succeeded_execution(deployed: Deployed, succeeded: str, capsys):
    assert deployed.cli("redrive", succeeded) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "succeeded, so there is nothing to redrive" in err


def test_redrive_refuses_a_running_execution(deployed: Deployed, capsys):
    arn = deployed.sfn.start_execution(stateMachineArn=deployed.waiting, name="waiting")[
        "executionArn"
    ]
    try:
        assert deployed.cli("redrive", arn) == 2
        assert "is running; wait until it ends" in capsys.readouterr().err
    finally:
        deployed.sfn.stop_execution(executionArn=arn)


def test_redrive_of_a_failed_execution_reaches_redrive_execution(
    deployed: Deployed, failed: str, capsys
):
    """moto 5.2.5 has no RedriveExecution (HTTP 500): the call is made and reported."""
    assert deployed.cli("redrive", failed) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "does not implement RedriveExecution" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("status", f"arn:aws:states:eu-west-1:{ACCOUNT}:execution:kedro:nope"),
            "no such execution",
        ),
        (("status", "not-an-arn"), "is not an execution ARN"),
        (
            ("redrive", f"arn:aws:states:eu-west-1:{ACCOUNT}:stateMachine:m"),
            "that is a state machine",
        ),
        (("run", "--state-machine-arn", "m"), "not a state machine ARN"),
        (
            (
                "run",
                "--state-machine-arn",
                "arn:aws:states:eu-west-1:1:stateMachine:m",
                "--params",
                "a",
            ),
            "--params",
        ),
        (
            ("run", "--state-machine-arn", f"arn:aws:states:eu-west-1:{ACCOUNT}:stateMachine:gone"),
            "no such state machine",
        ),
    ],
)
def test_user_errors_exit_2_with_one_line(deployed: Deployed, args, message: str, capsys):
    assert deployed.cli(*args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert message in err


def fake_pulumi(tmp_path: Path, outputs: dict[str, Any]) -> Path:
    """A ``pulumi`` on PATH that prints ``outputs`` for stack dev and fails otherwise."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$PWD $*" >> {tmp_path}/calls\n'
        'if [ "$5" = dev ]; then\n'
        f"  echo '{json.dumps(outputs)}'\n"
        "else\n"
        "  echo \"error: no stack named '$5' found\" >&2; exit 255\n"
        "fi\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return bin_dir


def test_run_reads_the_state_machine_from_the_stack_outputs(
    deployed: Deployed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    bin_dir = fake_pulumi(
        tmp_path, {"stateMachineArns": {"__default__": deployed.machines["exact"]}}
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    before = executions(deployed, "exact")
    assert deployed.cli("run", "--stack", "dev") == 0
    assert len(executions(deployed, "exact") - before) == 1
    assert (tmp_path / "calls").read_text().split() == [
        str(ROOT),
        "stack",
        "output",
        "--json",
        "--stack",
        "dev",
    ]
    assert "status" in capsys.readouterr().err  # how to follow it
    assert deployed.cli("run", "--stack", "dev", "--pipeline", "nope") == 2
    assert "no pipeline 'nope' (deployed: __default__)" in capsys.readouterr().err
    assert deployed.cli("run", "--stack", "prod") == 2
    assert "no stack named 'prod' found" in capsys.readouterr().err


def test_run_without_pulumi_or_arn_says_to_pass_the_arn(
    deployed: Deployed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert deployed.cli("run", "--stack", "dev") == 2
    assert "pass --state-machine-arn" in capsys.readouterr().err


def test_an_unreachable_endpoint_is_a_user_error(capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    arn = f"arn:aws:states:eu-west-1:{ACCOUNT}:execution:m:x"
    env = {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}
    with pytest.MonkeyPatch.context() as m:
        for key, value in env.items():
            m.setenv(key, value)
        assert main(["status", arn, "--endpoint-url", f"http://127.0.0.1:{port}"]) == 2
    assert f"cannot reach http://127.0.0.1:{port}" in capsys.readouterr().err


def test_missing_credentials_are_a_user_error(deployed: Deployed, tmp_path: Path, capsys):
    with pytest.MonkeyPatch.context() as m:
        for key in list(os.environ):
            if key.startswith("AWS_"):
                m.delenv(key)
        m.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
        m.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
        m.setenv("AWS_EC2_METADATA_DISABLED", "true")
        assert deployed.cli("status", f"arn:aws:states:eu-west-1:{ACCOUNT}:execution:m:x") == 2
    assert "no AWS credentials found" in capsys.readouterr().err


def test_the_real_cli_prints_one_line_and_no_traceback(deployed: Deployed):
    arn = f"arn:aws:states:eu-west-1:{ACCOUNT}:execution:kedro:missing"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t"}
    done = subprocess.run(
        [sys.executable, "-m", "infra", "status", arn, "--endpoint-url", deployed.endpoint],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: reading execution") and "no such execution" in done.stderr


def test_status_of_a_split_pipeline_finds_the_failed_node_inside_its_part(
    deployed: Deployed, failed_split: str, example: PipelineGraph, tmp_path: Path, capsys
):
    page = tmp_path / "split.html"
    assert deployed.cli("status", failed_split, "--timeline", str(page)) == 1
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert set(rows) == set(example.node_names)  # parts not started are "not run"
    failed_nodes = {n for n, s in rows.items() if s == "failed"}
    assert failed_nodes and failed_nodes <= first_nodes(example)
    for node in failed_nodes:
        assert f"node {node} failed" in out
    # The timeline has a row for every task, wherever its part is, with its status.
    drawn = dict(
        re.findall(r'<g class="row[^"]*" data-task="([^"]+)" data-status="(\w+)"', page.read_text())
    )
    assert set(drawn) == set(example.node_names)
    assert {n for n, s in drawn.items() if s == "FAILED"} == failed_nodes


def test_a_redrive_reruns_the_whole_part_of_a_failed_node():
    rows = [
        ops.NodeRow("a", "s1", 1, "SUCCEEDED", part="run-part-1"),
        ops.NodeRow("b", "s2", 1, "FAILED", part="run-part-1"),
        ops.NodeRow("c", "s3", 1, "SUCCEEDED", part="run-part-2"),
        ops.NodeRow("d", "s4", 1, "NOT_RUN", part="run-part-3"),
        ops.NodeRow("e", "s5", 1, "SUCCEEDED"),
    ]
    assert ops.rerun_on_redrive(rows) == ["a", "b", "d"]


# --- per-node records in the jobs' CloudWatch log streams ------------------------------


def execution_jobs(deployed: Deployed, arn: str) -> list[dict[str, Any]]:
    """Batch's description of every node job an execution ran, read from its history."""
    ids: set[str] = set()
    for event in deployed.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]:
        for key in ("taskSucceededEventDetails", "taskFailedEventDetails"):
            text = event.get(key, {}).get("output") or event.get(key, {}).get("cause")
            try:
                described = json.loads(text or "")
            except json.JSONDecodeError:
                continue
            if isinstance(described, dict) and described.get("JobId"):
                ids.add(described["JobId"])
    batch = boto3.client("batch", endpoint_url=deployed.endpoint, region_name=moto_sfn.REGION)
    jobs = batch.describe_jobs(jobs=sorted(ids))["jobs"]
    return [j for j in jobs if "--nodes" in j["container"]["command"]]


def job_nodes(job: dict[str, Any]) -> list[str]:
    command = job["container"]["command"]
    return command[command.index("--nodes") + 1].split(",")


def node_seconds(example: PipelineGraph) -> dict[str, float]:
    """A distinct duration per node: an even split of a task's time could not produce them."""
    return {n: 2.0 + 1.5 * i for i, n in enumerate(sorted(example.node_names))}


STARTUPS = (20.0, 30.0, 50.0)  # seconds from submission to the first node, job by job


def put_records(
    deployed: Deployed,
    job: dict[str, Any],
    startup: float,
    seconds: dict[str, float],
    fail: str | None = None,
) -> None:
    """The lines the runtime writes, into the log stream Batch names for the job."""
    created = job["createdAt"] / 1000
    nodes = job_nodes(job)
    lines = [(created + 2, records.line("task-start", time=created + 2, nodes=nodes))]
    lines.append((created + 3, "INFO kedro.framework.session: Kedro project demand_forecast"))
    t = created + startup
    for node in nodes:
        lines.append((t, records.line("node-start", time=t, node=node)))
        if node == fail:
            lines += [
                (t + 1, "Traceback (most recent call last):"),
                (t + 1, "ValueError: boom in " + node),
                (t + 1, records.line("node-end", time=t + 1, node=node, status="FAILED",
                                     error="ValueError: boom in " + node)),
                (t + 1, records.line("task-end", time=t + 1, status="FAILED")),
            ]  # fmt: skip
            break
        t += seconds[node]
        lines.append((t, records.line("node-end", time=t, node=node, status="SUCCEEDED")))
    else:
        lines.append((t, records.line("task-end", time=t, status="SUCCEEDED")))
    logs = boto3.client("logs", endpoint_url=deployed.endpoint, region_name=moto_sfn.REGION)
    stream = job["container"]["logStreamName"]
    logs.create_log_stream(logGroupName=ops.DEFAULT_LOG_GROUP, logStreamName=stream)
    logs.put_log_events(
        logGroupName=ops.DEFAULT_LOG_GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": int(at * 1000), "message": text} for at, text in lines],
    )


@pytest.fixture(scope="module")
def recorded(deployed: Deployed, example: PipelineGraph) -> tuple[str, list[dict[str, Any]]]:
    """A successful run of fused tasks whose jobs wrote their records."""
    started = deployed.sfn.start_execution(
        stateMachineArn=deployed.machines["grouped"], name="recorded", input='{"params": {}}'
    )
    assert moto_sfn.wait(deployed.sfn, started["executionArn"])["status"] == "SUCCEEDED"
    jobs = execution_jobs(deployed, started["executionArn"])
    assert len(jobs) < len(example.nodes)  # fused
    for i, job in enumerate(jobs):
        put_records(deployed, job, STARTUPS[i % len(STARTUPS)], node_seconds(example))
    return started["executionArn"], jobs


def test_status_durations_are_each_nodes_own_and_the_start_up_is_measured(
    deployed: Deployed, recorded, example: PipelineGraph, tmp_path: Path, capsys
):
    arn, jobs = recorded
    target = tmp_path / "durations.json"
    assert deployed.cli("status", arn, "--durations", str(target)) == 0
    out = capsys.readouterr().out
    # Each node's own time from its task's records: not its task's time split evenly.
    assert parse({"durations": target.read_text()}).durations == node_seconds(example)
    waits = sorted(STARTUPS[i % len(STARTUPS)] for i in range(len(jobs)))
    median = waits[len(waits) // 2] if len(waits) % 2 else sum(waits[len(waits) // 2 - 1 :][:2]) / 2
    assert f"pulumi config set kedro-batch:jobStartSeconds {round(median)}" in out
    assert f"median of {len(jobs)} jobs" in out
    assert "note" not in out  # every job's records were read


def test_status_timeline_draws_the_execution_from_awss_records(
    deployed: Deployed, recorded, example: PipelineGraph, tmp_path: Path, capsys
):
    arn, jobs = recorded
    page_file = tmp_path / "timeline.html"
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"pipelines": {"__default__": {"expected": {"seconds": 95.5}}}}))
    assert deployed.cli("status", arn, "--timeline", str(page_file), "--plan", str(plan)) == 0
    assert f"timeline written to {page_file}" in capsys.readouterr().out
    with browser.page() as page:
        shown = browser.open_timeline(page, page_file, tmp_path / "status.png")
    assert set(shown["rows"]) == {",".join(job_nodes(j)) for j in jobs}
    assert shown["nodes"] == {n: "SUCCEEDED" for n in example.node_names}
    assert "recorded" in shown["header"] and "1m36s" in shown["header"]  # the model's 95.5 s
    assert "__default__" in shown["header"]  # from the state machine's pipeline tag


def test_a_failed_fused_task_names_its_node_and_cause_and_what_never_started(
    deployed: Deployed, example: PipelineGraph, tmp_path: Path, capsys
):
    arn = fail(deployed, "grouped", "failed-grouped")
    failed_nodes: dict[str, str] = {}
    for i, job in enumerate(execution_jobs(deployed, arn)):
        nodes = job_nodes(job)
        culprit = nodes[min(1, len(nodes) - 1)] if job["status"] == "FAILED" else None
        put_records(deployed, job, STARTUPS[i % 3], node_seconds(example), fail=culprit)
        if culprit:
            failed_nodes[culprit] = ",".join(nodes)
    assert failed_nodes
    page_file = tmp_path / "failed.html"
    assert deployed.cli("status", arn, "--timeline", str(page_file)) == 1
    out = capsys.readouterr().out
    rows = table_rows(out)
    for node, task in failed_nodes.items():
        assert rows[node] == "failed"
        assert f"node {node} failed: ValueError: boom in {node}" in out
        after = task.split(",")[task.split(",").index(node) + 1 :]
        assert all(rows[n] == "not run" for n in after)  # never started in the fused task
        before = task.split(",")[: task.split(",").index(node)]
        assert all(rows[n] == "succeeded" for n in before)
    node = next(iter(failed_nodes))
    with browser.page() as page:
        shown = browser.open_timeline(page, page_file, tmp_path / "failed.png")
        browser.check_failure_mark(page, node, f"ValueError: boom in {node}")
        tail = page.locator("ol.failures pre.tail").first.inner_text()
    assert "Traceback (most recent call last):" in tail  # the job's log, from GetLogEvents
    assert shown["rows"][failed_nodes[node]] == "FAILED"


def test_without_records_nodes_keep_their_jobs_times_with_a_note(
    deployed: Deployed, succeeded: str, capsys
):
    assert deployed.cli("status", succeeded) == 0
    out = capsys.readouterr().out
    assert "jobs' logs hold no kedro-batch records" in out
    assert "their nodes show their jobs' times" in out


def test_unreadable_logs_are_one_note_not_an_error(deployed: Deployed):
    from botocore.stub import Stubber

    logs = boto3.client("logs", endpoint_url=deployed.endpoint, region_name=moto_sfn.REGION)
    reader = ops.LogReader(logs)
    assert reader.read([("/no/such/group", "s")]) == {}
    assert reader.error == "log group /no/such/group does not exist"
    denied = ops.LogReader(boto3.client("logs", region_name=moto_sfn.REGION))
    with Stubber(denied.client) as stub:
        stub.add_client_error("filter_log_events", "AccessDeniedException", "not allowed")
        assert denied.read([(ops.DEFAULT_LOG_GROUP, "s")]) == {}
    assert denied.error is not None and "AccessDeniedException" in denied.error


def test_status_plan_errors_name_the_file(
    deployed: Deployed, succeeded: str, tmp_path: Path, capsys
):
    bad = tmp_path / "plan.json"
    bad.write_text("{not json")
    assert (
        deployed.cli(
            "status", succeeded, "--timeline", str(tmp_path / "t.html"), "--plan", str(bad)
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--plan {bad} is not JSON" in err
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"pipelines": {"train": {"expected": {"seconds": 3}}}}))
    assert (
        deployed.cli(
            "status", succeeded, "--timeline", str(tmp_path / "t.html"), "--plan", str(other)
        )
        == 2
    )
    assert "has no pipeline '__default__' (it has train)" in capsys.readouterr().err
    assert deployed.cli("status", succeeded, "--plan", str(other)) == 2
    assert "--plan only feeds --timeline" in capsys.readouterr().err
