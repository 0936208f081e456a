"""Day-2 operations on a deployed stack: ``run``, ``status``, ``redrive``.

Everything a user does after ``pulumi up`` without opening the console:
start a pipeline with runtime parameters, watch it node by node, find out
which node failed and where its logs are, re-run only what failed, and feed
measured node durations back into the next deployment.

The pure core turns what AWS returns into node rows:
:func:`task_states` reads the nodes of each Task state from the definition
(contract 4: ``--nodes`` then the comma-separated node names),
:func:`node_rows` replays an execution history (plus, optionally, Batch job
descriptions) into one row per node, and :func:`measured_durations` turns
rows into the ``kedro-batch:durations`` mapping. A pipeline split into
parts (child state machines) is read part by part, so its nodes show up
wherever they run. The shell around it calls boto3 and turns every AWS or
connection error into a ``UserError``.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kedro_batch_runtime import records
from kedro_batch_runtime.records import TaskRecord
from rich.console import Console

from infra import asl, progress, timeline, timeline_html
from infra.config import NAMESPACE, REPO_ROOT
from infra.errors import UserError
from infra.measured import job_start_seconds, node_outcome
from infra.mlflow_reconcile import reconcile
from infra.output_paths import checked
from infra.overrides import params_length
from infra.synth import PIPELINE_TAG

# Stack outputs that map pipeline name -> state machine ARN, preferred first.
STATE_MACHINE_OUTPUTS = ("stateMachineArns", "stateMachines")
DEFAULT_LOG_GROUP = "/aws/batch/job"  # where Batch logs unless the job definition says otherwise
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
MAX_EXECUTION_NAME = 80
EXECUTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
POLL_SECONDS = 5.0  # GetExecutionHistory refills at 5 calls/s per account: stay far below
MIN_DURATION = 1.0  # seconds; kedro-batch:durations wants positive numbers
NO_REASON = "the Batch job failed without a status reason; see its logs"

_EXECUTION_END = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionTimedOut": "TIMED_OUT",
    "ExecutionAborted": "ABORTED",
}
_TASK_FAILURES = {
    "TaskFailed": "taskFailedEventDetails",
    "TaskTimedOut": "taskTimedOutEventDetails",
    "TaskSubmitFailed": "taskSubmitFailedEventDetails",
    "TaskStartFailed": "taskStartFailedEventDetails",
}
_QUEUED_JOB = frozenset({"SUBMITTED", "PENDING", "RUNNABLE", "STARTING"})
START_CHILD = "arn:aws:states:::states:startExecution"  # parts of a split pipeline


# --- the definition ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskState:
    """A Task state that runs Kedro nodes, or a part (child state machine) that does."""

    state: str
    nodes: tuple[str, ...]
    sync: bool  # waits for its job (structured); else only submits it (exact)
    child: str | None = None  # a part's state machine ARN (split pipelines); no nodes here


def task_states(definition: Mapping[str, Any]) -> list[TaskState]:
    """The node-running Task states and parts, in the order the definition lists them.

    Barrier jobs (no ``--nodes``) are not nodes and are left out.
    """
    found: list[TaskState] = []

    def walk(machine: Mapping[str, Any]) -> None:
        for name, state in machine.get("States", {}).items():
            resource = str(state.get("Resource", ""))
            parameters = state.get("Parameters", {})
            if state.get("Type") == "Task" and resource.startswith(START_CHILD):
                child = parameters.get("StateMachineArn")
                found.append(TaskState(name, (), True, child if isinstance(child, str) else None))
            elif state.get("Type") == "Task":
                command = parameters.get("ContainerOverrides", {}).get("Command", [])
                if "--nodes" in command[:-1]:
                    nodes = tuple(command[command.index("--nodes") + 1].split(","))
                    found.append(TaskState(name, nodes, resource.endswith(".sync")))
            for branch in state.get("Branches", ()):
                walk(branch)

    walk(definition)
    return found


def task_key(state: Mapping[str, Any]) -> str | None:
    """A node-running Task state's identity: its ``--nodes`` element (contract 4)."""
    command = state.get("Parameters", {}).get("ContainerOverrides", {}).get("Command", [])
    return command[command.index("--nodes") + 1] if "--nodes" in command[:-1] else None


def task_precedence(
    definition: Mapping[str, Any], machines: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, frozenset[str]]:
    """Task -> the tasks the state machine makes it wait for (tasks by :func:`task_key`).

    Structured: a Task state starts once everything before it in its
    sequence has ended, i.e. the last tasks of each branch of a preceding
    ``Parallel`` (so precedence the layout added counts: it is what the run
    enforced). Exact: the jobs its ``DependsOn`` names, through barrier jobs.
    ``machines`` (state machine ARN -> definition) lets a split pipeline's
    parts be read where the parent starts them.
    """
    found: dict[str, frozenset[str]] = {}
    submitted: dict[str, tuple[str | None, list[str]]] = {}  # $.jobs key -> (task, its deps)

    def walk(machine: Mapping[str, Any], before: frozenset[str]) -> frozenset[str]:
        states = machine.get("States", {})
        name, seen = machine.get("StartAt"), set()
        while name in states and name not in seen:
            seen.add(name)
            state = states[name]
            resource = str(state.get("Resource", ""))
            if state.get("Type") == "Parallel":
                ends = [walk(branch, before) for branch in state.get("Branches", ())]
                before = frozenset().union(*ends) or before
            elif state.get("Type") == "Task" and resource.startswith(START_CHILD):
                child = (machines or {}).get(
                    str(state.get("Parameters", {}).get("StateMachineArn"))
                )
                before = walk(child, before) if child is not None else before
            elif state.get("Type") == "Task" and not resource.endswith(".sync"):
                # Exact mode submits; the job waits for what DependsOn names.
                path = str(state.get("ResultPath") or "")
                if path.startswith("$.jobs."):
                    deps = state.get("Parameters", {}).get("DependsOn", [])
                    keys = [str(d.get("JobId.$", "")).split(".")[2] for d in deps]
                    submitted[path.removeprefix("$.jobs.")] = (task_key(state), keys)
            elif state.get("Type") == "Task" and (key := task_key(state)) is not None:
                found[key] = before
                before = frozenset({key})
            name = None if state.get("End") else state.get("Next") or state.get("Default")
        return before

    walk(definition, frozenset())

    def tasks(job: str) -> frozenset[str]:
        task, deps = submitted.get(job, (None, []))
        return frozenset({task}) if task else frozenset().union(*map(tasks, deps))

    for task, deps in submitted.values():
        if task is not None:
            found[task] = frozenset().union(*map(tasks, deps))
    return found


# --- Batch job descriptions ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What matters of a Batch job description, from either spelling.

    Step Functions hands Batch results over in PascalCase (``Container``),
    ``DescribeJobs`` answers in camelCase (``container``); both are read.
    """

    job_id: str | None = None
    status: str | None = None
    reason: str | None = None
    started: datetime | None = None
    stopped: datetime | None = None
    log_group: str | None = None
    log_stream: str | None = None
    created: datetime | None = None  # submitted to Batch
    attempts: int = 0  # Batch's own attempts (retried Spot reclaims, start-up failures)


def _pick(mapping: Any, key: str) -> Any:
    if not isinstance(mapping, Mapping):
        return None
    if key in mapping:
        return mapping[key]
    return mapping.get(key[:1].lower() + key[1:])


def job_facts(description: Mapping[str, Any]) -> JobFacts:
    container = _pick(description, "Container") or {}
    attempts = _pick(description, "Attempts") or []
    last = _pick(attempts[-1], "Container") if attempts else None
    stream = _pick(container, "LogStreamName") or _pick(last, "LogStreamName")
    options = _pick(_pick(container, "LogConfiguration"), "Options") or {}
    group = next((v for k, v in options.items() if k.lower() == "awslogs-group"), None)
    reason = _pick(description, "StatusReason")
    detail = _pick(container, "Reason") or _pick(last, "Reason")
    exit_code = _pick(container, "ExitCode")
    if exit_code is None:
        exit_code = _pick(last, "ExitCode")
    parts = [p for p in (reason, detail if detail != reason else None) if p]
    text = ": ".join(parts)
    if exit_code is not None:
        text = f"{text} (exit code {exit_code})" if text else f"exit code {exit_code}"
    return JobFacts(
        job_id=_pick(description, "JobId"),
        status=_pick(description, "Status"),
        reason=text or None,
        started=_time(_pick(description, "StartedAt")),
        stopped=_time(_pick(description, "StoppedAt")),
        log_group=group if stream else None,
        log_stream=stream,
        created=_time(_pick(description, "CreatedAt")),
        attempts=len(attempts),
    )


def _time(value: Any) -> datetime | None:
    """A timestamp as boto3 (datetime), JSON (ISO string) or Batch (epoch ms) gives it."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000, UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        return None


def summarise_cause(cause: str | None, limit: int = 400) -> str:
    """A failure cause in one line, naming the Kedro nodes where it can.

    Step Functions puts the whole Batch job description (several KB of JSON)
    into the cause of a failed ``.sync`` task; the reader wants the nodes (the
    ``--nodes`` element of its command) and the job's status reason. A failed
    part of a split pipeline carries its child execution's error and cause.
    """
    text = cause or ""
    start = text.find("{")
    if start >= 0:
        described = _json(text[start:])
        if isinstance(described, Mapping) and _pick(described, "JobId"):
            command = _pick(_pick(described, "Container"), "Command") or []
            head = text[:start]
            if "--nodes" in command[:-1]:
                head = f"{head}Kedro node(s) {command[command.index('--nodes') + 1]} failed: "
            text = f"{head}{job_facts(described).reason or NO_REASON}"
        elif isinstance(described, Mapping) and _pick(described, "Cause"):
            inner = f"{_pick(described, 'Error')}: {_pick(described, 'Cause')}"
            return summarise_cause(f"{text[:start]}{inner}", limit)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def log_url(region: str, group: str, stream: str) -> str:
    """The CloudWatch console page of one log stream.

    The console's fragment encodes each name twice and then writes ``%`` as
    ``$`` (``/`` becomes ``$252F``).
    """

    def encode(name: str) -> str:
        return quote(quote(name, safe=""), safe="").replace("%", "$")

    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{encode(group)}/log-events/{encode(stream)}"
    )


def execution_url(execution_arn: str) -> str:
    region = arn_region(execution_arn) or "us-east-1"
    return (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{execution_arn}"
    )


# --- history -> rows -----------------------------------------------------------


@dataclass
class NodeRow:
    """One Kedro node of an execution."""

    name: str
    state: str  # the Task state that runs it
    task_size: int  # nodes in that task (they share its job and its time)
    status: str = "NOT_RUN"  # SUCCEEDED FAILED RUNNING QUEUED CANCELLED NOT_RUN
    started: datetime | None = None
    finished: datetime | None = None
    job_id: str | None = None
    log_group: str | None = None
    log_stream: str | None = None
    cause: str | None = None
    part: str | None = None  # the parent's state that runs this node's part, if split
    task_nodes: tuple[str, ...] = ()  # every node of its task, in order
    submitted: datetime | None = None  # its job's submission (Batch createdAt)
    attempts: int = 1  # of its task: Step Functions' retries and Batch's attempts
    measured: bool = False  # started/finished are the node's own, from its task's records

    @property
    def task_key(self) -> str:
        """Its task's identity: the ``--nodes`` element of the task's command."""
        return ",".join(self.task_nodes) or self.name

    def seconds(self, now: datetime) -> float | None:
        if self.started is None:
            return None
        end = self.finished or (now if self.status in ("RUNNING", "QUEUED") else None)
        return None if end is None else max(0.0, (end - self.started).total_seconds())

    def log_link(self, region: str) -> str | None:
        if not self.log_stream:
            return None
        return log_url(region, self.log_group or DEFAULT_LOG_GROUP, self.log_stream)


@dataclass
class _TaskRun:
    """The latest attempt of one Task state, while replaying the history."""

    status: str = "RUNNING"
    entered: datetime | None = None
    exited: datetime | None = None
    job: JobFacts = field(default_factory=JobFacts)
    submitted_only: bool = False  # exact mode: SubmitJob returned, the job's fate is in Batch
    confirmed: bool = False  # Batch told us the job's status
    cause: str | None = None
    child_arn: str | None = None  # the part's execution (split pipelines)
    tries: int = 0  # TaskScheduled events: a first try, then Step Functions' retries
    submitted: datetime | None = None  # when Step Functions submitted the job


def node_rows(
    definition: Mapping[str, Any],
    events: Sequence[Mapping[str, Any]],
    *,
    execution_status: str,
    jobs: Mapping[str, Mapping[str, Any]] | None = None,
    parts: Mapping[str, Sequence[NodeRow]] | None = None,
) -> list[NodeRow]:
    """One row per node, from the definition, the history and (optionally) Batch.

    Task events (Scheduled, Submitted, Succeeded, Failed...) do not name their
    state: each points at the previous event of the same state through
    ``previousEventId``, back to ``TaskStateEntered``, which does. The last
    entry of a state wins, so a redriven execution shows its latest attempt
    and keeps the states the redrive did not re-run. A task failing after
    the execution has ended (a sibling branch stopped by a failure) is
    cancelled, not failed. ``jobs`` (job ID -> ``DescribeJobs`` entry) adds
    what Step Functions does not know: queued vs running, and the outcome of
    jobs that exact mode only submits. ``parts`` (part state -> the rows of
    its child execution, see :func:`part_executions`) puts a split
    pipeline's nodes where their part runs.
    """
    tasks = task_states(definition)
    runs, final = _replay(tasks, events)
    for attempt in runs.values():
        described = (jobs or {}).get(attempt.job.job_id or "")
        if described is not None:
            _apply_job(attempt, job_facts(described))
    status = final or execution_status
    rows: list[NodeRow] = []
    for task in tasks:
        if task.child is not None:
            for row in (parts or {}).get(task.state, ()):
                row.part = row.part or task.state
                rows.append(row)
            continue
        rows.extend(_row(node, task, runs.get(task.state), status) for node in task.nodes)
    return rows


def part_executions(
    definition: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
) -> dict[str, tuple[str, str | None]]:
    """Part state -> (its state machine ARN, its latest child execution ARN or ``None``)."""
    tasks = [t for t in task_states(definition) if t.child is not None]
    runs, _ = _replay(tasks, events)
    return {
        t.state: (str(t.child), runs[t.state].child_arn if t.state in runs else None) for t in tasks
    }


def _replay(
    tasks: Sequence[TaskState], events: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, _TaskRun], str | None]:
    """The latest attempt of each task state, and how the execution ended (if it has)."""
    states = {t.state: t for t in tasks}
    runs: dict[str, _TaskRun] = {}
    owner: dict[int, str] = {}  # event id -> the state it belongs to
    ended = False
    final: str | None = None
    for event in sorted(events, key=lambda e: int(e["id"])):
        kind = event["type"]
        if kind == "ExecutionRedriven":
            ended, final = False, None
            continue
        if kind in _EXECUTION_END:
            ended, final = True, _EXECUTION_END[kind]
            continue
        if kind == "TaskStateEntered":
            name = event["stateEnteredEventDetails"]["name"]
            if name in states:
                owner[int(event["id"])] = name
                runs[name] = _TaskRun(entered=_time(event["timestamp"]))
            continue
        name = owner.get(int(event.get("previousEventId") or 0))
        if name is None:
            continue
        owner[int(event["id"])] = name
        run = runs[name]
        if kind == "TaskScheduled":
            run.status, run.cause = "RUNNING", None  # a first try, or a retry
            run.tries += 1
        elif kind == "TaskSubmitted":
            run.submitted = _time(event["timestamp"])
            output = _json(event.get("taskSubmittedEventDetails", {}).get("output"))
            if isinstance(output, Mapping) and _pick(output, "JobId"):
                run.job = JobFacts(job_id=_pick(output, "JobId"))
            if isinstance(output, Mapping) and _pick(output, "ExecutionArn"):
                run.child_arn = _pick(output, "ExecutionArn")
        elif kind == "TaskSucceeded":
            output = _json(event.get("taskSucceededEventDetails", {}).get("output"))
            if isinstance(output, Mapping):
                facts = job_facts(output)
                run.job = facts if facts.job_id else run.job
                run.child_arn = _pick(output, "ExecutionArn") or run.child_arn
            if states[name].sync:
                run.status = "SUCCEEDED"
            else:
                run.status, run.submitted_only = "QUEUED", True
        elif kind in _TASK_FAILURES:
            details = event.get(_TASK_FAILURES[kind], {})
            described = _json(details.get("cause"))
            if isinstance(described, Mapping) and _pick(described, "ExecutionArn"):
                run.child_arn = _pick(described, "ExecutionArn")  # a failed part
            if isinstance(described, Mapping) and _pick(described, "JobId"):
                # A failed .sync job: the cause is the job description.
                run.job = job_facts(described)
                run.cause = run.job.reason or NO_REASON
            else:
                error = details.get("error") or kind
                run.cause = summarise_cause(f"{error}: {details.get('cause') or ''}")
            run.status = "CANCELLED" if ended else "FAILED"
        elif kind == "TaskStateAborted":
            run.status = "CANCELLED"
        elif kind == "TaskStateExited":
            run.exited = _time(event["timestamp"])
    return runs, final


def _apply_job(run: _TaskRun, facts: JobFacts) -> None:
    """Batch knows more than Step Functions about jobs not yet finished there."""
    run.job = JobFacts(
        job_id=facts.job_id or run.job.job_id,
        status=facts.status,
        reason=facts.reason or run.job.reason,
        started=facts.started or run.job.started,
        stopped=facts.stopped or run.job.stopped,
        log_group=facts.log_group or run.job.log_group,
        log_stream=facts.log_stream or run.job.log_stream,
        created=facts.created or run.job.created,
        attempts=facts.attempts or run.job.attempts,
    )
    if run.status not in ("RUNNING", "QUEUED") or facts.status is None:
        return  # Step Functions' verdict on a finished task stands
    run.confirmed = True
    if facts.status == "SUCCEEDED":
        run.status = "SUCCEEDED"
    elif facts.status == "FAILED":
        # A job that never started failed because a job it depends on did.
        run.status = "FAILED" if facts.started else "CANCELLED"
        run.cause = (facts.reason or NO_REASON) if facts.started else "a job it needs failed"
    elif facts.status == "RUNNING":
        run.status = "RUNNING"
    elif facts.status in _QUEUED_JOB:
        run.status = "QUEUED"


def _row(node: str, task: TaskState, run: _TaskRun | None, execution: str) -> NodeRow:
    row = NodeRow(name=node, state=task.state, task_size=len(task.nodes), task_nodes=task.nodes)
    if run is None:
        return row
    status = run.status
    if status in ("RUNNING", "QUEUED") and execution in TERMINAL and not run.confirmed:
        # Exact mode's barrier succeeds only once every job has succeeded.
        ok = execution == "SUCCEEDED" and run.submitted_only
        status = "SUCCEEDED" if ok else "CANCELLED"
    row.status = status
    row.started = run.job.started or run.entered
    row.finished = run.job.stopped or (
        run.exited if status in ("SUCCEEDED", "FAILED", "CANCELLED") else None
    )
    row.job_id = run.job.job_id
    row.log_group, row.log_stream = run.job.log_group, run.job.log_stream
    row.cause = run.cause if status in ("FAILED", "CANCELLED") else None
    row.submitted = run.job.created or run.submitted or run.entered
    row.attempts = max(run.tries, 1) + max(run.job.attempts - 1, 0)
    return row


def rerun_on_redrive(rows: Sequence[NodeRow]) -> list[str]:
    """The nodes a redrive runs again: every node of a task that did not succeed whole,
    and the whole of its part.

    Redrive re-runs the failed Task state, i.e. its whole job, so a fused
    task's nodes that had succeeded run again too; and it re-runs the
    parent's failed part state, which starts a new child execution of that
    part: its nodes that had succeeded run again as well.
    """
    broken_parts = {r.part for r in rows if r.part and r.status != "SUCCEEDED"}
    broken_tasks = {(r.part, r.state) for r in rows if r.status != "SUCCEEDED"}
    return [r.name for r in rows if (r.part, r.state) in broken_tasks or r.part in broken_parts]


def with_records(rows: Sequence[NodeRow], found: Mapping[str, TaskRecord]) -> list[NodeRow]:
    """Rows with each node's own status and times, from its job's records (job ID -> record).

    A fused task's nodes then show when each really ran, a node that never
    started is ``NOT_RUN``, and a failed node's cause is its own exception.
    Rows whose job has no record keep their job's times (``measured`` false).
    """
    result = []
    for row in rows:
        record = found.get(row.job_id or "")
        if record is None:
            result.append(row)
            continue
        outcome = node_outcome(
            row.name, row.status, record, _epoch(row.started), _epoch(row.finished)
        )
        failed = outcome.status in ("FAILED", "CANCELLED")
        result.append(
            replace(
                row,
                status=outcome.status,
                started=_from_epoch(outcome.started),
                finished=_from_epoch(outcome.finished),
                cause=(outcome.error or row.cause) if failed else None,
                measured=outcome.measured,
            )
        )
    return result


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def measured_durations(rows: Sequence[NodeRow]) -> dict[str, float]:
    """Seconds per succeeded node, for ``kedro-batch:durations``.

    Each node's own run time, from its task's records (rows through
    :func:`with_records`). Where a job's log could not be read, its run
    time (Batch ``startedAt`` to ``stoppedAt``, else the state's) stands in,
    split evenly across its nodes. At least :data:`MIN_DURATION`, rounded
    to 0.1 s.
    """
    found: dict[str, float] = {}
    for row in rows:
        if row.status != "SUCCEEDED" or row.started is None or row.finished is None:
            continue
        seconds = (row.finished - row.started).total_seconds()
        if not row.measured:
            seconds /= max(row.task_size, 1)
        found[row.name] = max(MIN_DURATION, round(seconds, 1))
    return found


def measured_job_start(snapshot: Snapshot) -> tuple[float | None, int]:
    """Median seconds from a job's submission to its first node, and over how many jobs."""
    tasks = {
        r.job_id: (_epoch(r.submitted), snapshot.records.get(r.job_id))
        for r in snapshot.jobs
        if r.job_id
    }
    counted = [t for t in tasks.values() if t[0] is not None and t[1] and t[1].first_node_started]
    return job_start_seconds(counted), len(counted)


def write_durations(path: Path, durations: Mapping[str, float]) -> None:
    """JSON (one line, ready for ``pulumi config set``) or YAML by file suffix."""
    data = dict(sorted(durations.items()))
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(data, default_flow_style=False, sort_keys=True)
    else:
        text = json.dumps(data) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# --- names, ARNs, stack outputs --------------------------------------------------


def execution_name(pipeline: str, now: datetime | None = None, token: str | None = None) -> str:
    """``<pipeline>-<UTC time>-<random>``: readable, unique, a valid run id.

    It becomes the Kedro run id and part of S3 keys, so only
    ``[A-Za-z0-9_-]``; Step Functions allows 80 characters.
    """
    now = now or datetime.now(UTC)
    token = token or secrets.token_hex(3)
    suffix = f"-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{token}"
    slug = re.sub(r"[^A-Za-z0-9]+", "-", pipeline).strip("-") or "run"
    return slug[: MAX_EXECUTION_NAME - len(suffix)].rstrip("-") + suffix


def check_execution_name(name: str) -> str:
    if not EXECUTION_NAME.fullmatch(name):
        raise UserError(
            f"--name {name!r}: use 1 to 80 letters, digits, '-' or '_' (it becomes the Kedro "
            "run id and part of S3 keys)"
        )
    return name


def arn_region(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] or None if len(parts) > 3 and parts[0] == "arn" else None


def check_execution_arn(arn: str) -> str:
    parts = arn.split(":")
    if len(parts) >= 8 and parts[0] == "arn" and parts[2] == "states" and parts[5] == "execution":
        return arn
    hint = " (that is a state machine; pass one of its executions)" if "stateMachine" in arn else ""
    raise UserError(
        f"{arn!r} is not an execution ARN{hint}; it looks like "
        "arn:aws:states:REGION:ACCOUNT:execution:MACHINE:NAME, as `python -m infra run` prints"
    )


def check_state_machine_arn(arn: str) -> str:
    parts = arn.split(":")
    if len(parts) == 7 and parts[0] == "arn" and (parts[2], parts[5]) == ("states", "stateMachine"):
        return arn
    raise UserError(
        f"--state-machine-arn {arn!r} is not a state machine ARN; it looks like "
        "arn:aws:states:REGION:ACCOUNT:stateMachine:NAME (`pulumi stack output stateMachineArns`)"
    )


def stack_outputs(stack: str) -> dict[str, Any]:
    """``pulumi stack output --json`` of ``stack``, read with the Pulumi CLI."""
    exe = shutil.which("pulumi")
    if exe is None:
        raise UserError(
            f"the pulumi CLI is not installed, so stack {stack!r}'s state machines are unknown; "
            "pass --state-machine-arn ARN (from `pulumi stack output stateMachineArns`)"
        )
    command = [exe, "stack", "output", "--json", "--stack", stack]
    try:
        done = subprocess.run(
            command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"`pulumi stack output --stack {stack}` did not run: {exc}") from None
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        raise UserError(
            f"`pulumi stack output --stack {stack}` failed: {lines[-1] if lines else 'no output'}"
            "; check the stack name and `pulumi login`, or pass --state-machine-arn"
        )
    outputs = _json(done.stdout)
    if not isinstance(outputs, dict):
        raise UserError(f"`pulumi stack output --json --stack {stack}` did not print a JSON object")
    return outputs


def state_machine_arn(
    outputs: Mapping[str, Any], stack: str, pipeline: str | None
) -> tuple[str, str]:
    """(pipeline, ARN) from a stack's outputs; the only or ``__default__`` pipeline by default."""
    machines: Mapping[str, Any] | None = None
    for key in STATE_MACHINE_OUTPUTS:
        value = outputs.get(key)
        if isinstance(value, Mapping) and all(
            isinstance(v, str) and v.startswith("arn:") for v in value.values()
        ):
            machines = value
            break
    if not machines:
        raise UserError(
            f"stack {stack!r} exports no {STATE_MACHINE_OUTPUTS[0]}; deploy it first "
            "(pulumi up) or pass --state-machine-arn"
        )
    names = ", ".join(sorted(machines))
    if pipeline is None:
        if len(machines) == 1:
            pipeline = next(iter(machines))
        elif "__default__" in machines:
            pipeline = "__default__"
        else:
            raise UserError(
                f"stack {stack!r} deploys several pipelines ({names}); pick one with --pipeline"
            )
    if pipeline not in machines:
        raise UserError(
            f"stack {stack!r} has no pipeline {pipeline!r} (deployed: {names}); pass one of these "
            f"to --pipeline, or add it to {NAMESPACE}:pipelines and run pulumi up"
        )
    return pipeline, str(machines[pipeline])


# --- AWS -------------------------------------------------------------------------


@dataclass(frozen=True)
class Aws:
    """Where to reach AWS: ``--region`` and ``--endpoint-url`` (both optional)."""

    region: str | None = None
    endpoint_url: str | None = None

    def client(self, service: str, arn: str | None = None) -> Any:
        import boto3
        from botocore.config import Config

        # The resource's own region beats the profile's default.
        region = self.region or (arn_region(arn) if arn else None)
        config = Config(retries={"mode": "standard"}, connect_timeout=10, read_timeout=60)
        with aws_errors("connecting to AWS", self):
            # A session of its own: credentials are looked up now, not reused from
            # whatever the process resolved earlier.
            session = boto3.session.Session()
            return session.client(
                service, region_name=region, endpoint_url=self.endpoint_url, config=config
            )


_CODE_HINTS = {
    "ExecutionDoesNotExist": "no such execution; check the ARN (`python -m infra run` prints it)",
    "StateMachineDoesNotExist": "no such state machine; run `pulumi up`, or check the ARN",
    "ExecutionAlreadyExists": "an execution of that name exists; choose another --name",
    "ExecutionNotRedrivable": "it cannot be redriven",
    "ExecutionLimitExceeded": "too many running executions; wait, or stop some",
    "InvalidArn": "not a valid ARN",
    "InvalidName": "not a valid execution name",
    "InvalidExecutionInput": "the input is not accepted; check --params",
    "UnrecognizedClientException": "AWS rejected the credentials; refresh them (aws sso login)",
    "InvalidClientTokenId": "AWS rejected the credentials; refresh them (aws sso login)",
    "InvalidSignatureException": "AWS rejected the credentials; check the secret key",
    "ExpiredToken": "the credentials have expired; refresh them (aws sso login)",
    "ExpiredTokenException": "the credentials have expired; refresh them (aws sso login)",
    "AccessDeniedException": "not allowed; your role lacks this Step Functions permission",
    "AccessDenied": "not allowed; your role lacks this permission",
}


@contextmanager
def aws_errors(what: str, aws: Aws) -> Iterator[None]:
    """Turn botocore errors into one-line ``UserError``s naming the fix."""
    from botocore import exceptions as bx

    where = f" at {aws.endpoint_url}" if aws.endpoint_url else ""
    try:
        yield
    except bx.NoCredentialsError:
        raise UserError(
            f"{what}: no AWS credentials found; log in (aws sso login, AWS_PROFILE, "
            "aws configure) or, in CI, assume a role with OIDC"
        ) from None
    except bx.NoRegionError:
        raise UserError(f"{what}: no AWS region; pass --region or set AWS_REGION") from None
    except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError) as exc:
        raise UserError(
            f"{what}: cannot reach {exc.kwargs.get('endpoint_url') or 'AWS'}; check "
            "--endpoint-url, --region and the network"
        ) from None
    except bx.ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = " ".join(str(error.get("Message") or "").split())
        if message.startswith("<") or not message:
            message = f"HTTP {status or code}"
        hint = _CODE_HINTS.get(code)
        if hint is None and (status or 0) >= 500:
            hint = f"the service{where} failed or does not implement {exc.operation_name}"
        said = f"{code}: {message[:240]}" if code and code not in message else message[:240]
        raise UserError(f"{what}: {hint} ({said})" if hint else f"{what}: {said}") from None
    except bx.ParamValidationError as exc:
        raise UserError(f"{what}: {' '.join(str(exc).split())}") from None
    except bx.BotoCoreError as exc:
        raise UserError(f"{what}: {' '.join(str(exc).split())}") from None


class History:
    """An execution's history, fetched incrementally.

    Pages come newest first and fetching stops at the first event already
    seen, so following a long run costs one call per poll, not the whole
    history (up to 25,000 events) every few seconds.
    """

    def __init__(self, sfn: Any, execution_arn: str) -> None:
        self.sfn, self.execution_arn = sfn, execution_arn
        self._events: dict[int, dict[str, Any]] = {}

    def refresh(self) -> list[dict[str, Any]]:
        token: str | None = None
        while True:
            request: dict[str, Any] = {
                "executionArn": self.execution_arn,
                "reverseOrder": True,
                "maxResults": 1000,
            }
            if token:
                request["nextToken"] = token
            page = self.sfn.get_execution_history(**request)
            overlap = False
            for event in page.get("events", []):
                overlap |= int(event["id"]) in self._events
                self._events.setdefault(int(event["id"]), event)
            token = page.get("nextToken")
            if overlap or not token:
                break
        return [self._events[i] for i in sorted(self._events)]


@dataclass
class Snapshot:
    """An execution as last read: its description and node rows.

    ``jobs`` are the rows as Step Functions and Batch tell them (every node
    of a task with its job's status and times); ``records`` (job ID -> what
    its log says) turn them into ``rows``, each node with its own.
    """

    execution: dict[str, Any]
    jobs: list[NodeRow]
    now: datetime
    records: Mapping[str, TaskRecord] = field(default_factory=dict)
    rows: list[NodeRow] = field(init=False)

    def __post_init__(self) -> None:
        self.rows = with_records(self.jobs, self.records)

    @property
    def status(self) -> str:
        return str(self.execution["status"])

    @property
    def region(self) -> str:
        return arn_region(str(self.execution["executionArn"])) or "us-east-1"

    def display_rows(self) -> list[progress.Row]:
        return [
            progress.Row(r.name, r.status, r.seconds(self.now), r.log_link(self.region))
            for r in self.rows
        ]


class LogReader:
    """Each job's records, read from its CloudWatch log stream.

    Optional like Batch: a refusal or a missing log group becomes one note,
    and the nodes of jobs without records keep their jobs' times. Only the
    record lines are fetched (``FilterLogEvents`` with the records' prefix
    as a quoted term, up to 100 streams a call), and a stream whose task
    has ended (``task-end`` seen) is never read again.
    """

    PATTERN = f'"{records.PREFIX.strip()}"'  # quoted: the term has hyphens

    def __init__(self, client: Any) -> None:
        self.client = client
        self.error: str | None = None
        self._ended: dict[tuple[str, str], TaskRecord] = {}

    def read(self, streams: Sequence[tuple[str, str]]) -> dict[tuple[str, str], TaskRecord]:
        """(log group, stream) -> its record, for the streams that have records."""
        from botocore import exceptions as bx

        found = {s: r for s in streams if (r := self._ended.get(s)) is not None}
        groups: dict[str, list[str]] = {}
        for group, stream in streams:
            if (group, stream) not in found:
                groups.setdefault(group, []).append(stream)
        for group, names in sorted(groups.items()):
            if self.error is not None:
                break
            lines: dict[str, list[str]] = {}
            try:
                for i in range(0, len(names), 100):
                    pages = self.client.get_paginator("filter_log_events").paginate(
                        logGroupName=group,
                        logStreamNames=names[i : i + 100],
                        filterPattern=self.PATTERN,
                    )
                    for page in pages:
                        for event in page.get("events", []):
                            lines.setdefault(event["logStreamName"], []).append(event["message"])
            except bx.ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code == "ResourceNotFoundException":
                    self.error = f"log group {group} does not exist"
                else:
                    self.error = " ".join(str(exc).split())[:200]
            except bx.BotoCoreError as exc:
                self.error = " ".join(str(exc).split())[:200]
            for stream, messages in lines.items():
                record = records.parse(messages)
                found[(group, stream)] = record
                if record.finished is not None:
                    self._ended[(group, stream)] = record
        return found

    def tail(self, group: str, stream: str, lines: int = 40) -> str:
        """The last lines of a stream (a failed task's traceback); empty if unreadable."""
        from botocore import exceptions as bx

        try:
            page = self.client.get_log_events(
                logGroupName=group, logStreamName=stream, startFromHead=False, limit=lines
            )
        except (bx.ClientError, bx.BotoCoreError):
            return ""
        return "\n".join(e["message"].rstrip("\n") for e in page.get("events", []))


class Watcher:
    """Reads one execution (its history, its Batch jobs, its parts, its logs) on demand."""

    def __init__(
        self,
        aws: Aws,
        execution_arn: str,
        clients: tuple[Any, Any] | None = None,
        *,
        logs: bool = True,
    ) -> None:
        self.aws, self.arn = aws, check_execution_arn(execution_arn)
        if clients is None:
            clients = (aws.client("stepfunctions", self.arn), aws.client("batch", self.arn))
        self.sfn, self.batch = clients
        # Only the top watcher reads logs: it reads its parts' jobs' too.
        self.logs = LogReader(aws.client("logs", self.arn)) if logs else None
        self.history = History(self.sfn, self.arn)
        self.what = f"reading execution {self.arn}"
        self._definition: dict[str, Any] | None = None
        self._jobs: dict[str, dict[str, Any]] = {}  # job ID -> latest DescribeJobs entry
        self._parts: dict[str, Watcher] = {}  # a split pipeline's child executions
        self._part_definitions: dict[str, dict[str, Any]] = {}  # part machine ARN -> definition
        self.batch_error: str | None = None
        self.unrecorded: list[str] = []  # jobs that ran but whose logs hold no records

    @property
    def definition(self) -> dict[str, Any]:
        """The execution's definition (after a snapshot)."""
        return self._definition or {}

    def machines(self) -> dict[str, dict[str, Any]]:
        """Part state machine ARN -> definition, for the parts seen so far."""
        found = dict(self._part_definitions)
        for part in self._parts.values():
            found.update(part.machines())
        return found

    def snapshot(self) -> Snapshot:
        with aws_errors(self.what, self.aws):
            execution = dict(self.sfn.describe_execution(executionArn=self.arn))
            if self._definition is None:
                machine = self.sfn.describe_state_machine_for_execution(executionArn=self.arn)
                self._definition = json.loads(machine["definition"])
            events = self.history.refresh()
        definition, status = self._definition, execution["status"]
        parts = self._part_rows(definition, events, status)
        rows = node_rows(definition, events, execution_status=status, parts=parts)
        # Batch is asked only about jobs whose fate or logs the history lacks,
        # and never again about a job that has finished. (Parts ask for theirs.)
        wanted = {
            r.job_id
            for r in rows
            if r.job_id
            and r.part is None
            and self._jobs.get(r.job_id, {}).get("status") not in ("SUCCEEDED", "FAILED")
            and (r.status in ("RUNNING", "QUEUED") or not r.log_stream)
        }
        if wanted:
            self._describe_jobs(sorted(wanted))
        if self._jobs:
            rows = node_rows(
                definition, events, execution_status=status, jobs=self._jobs, parts=parts
            )
        return Snapshot(
            execution=execution, jobs=rows, now=datetime.now(UTC), records=self._records(rows)
        )

    def _records(self, rows: Sequence[NodeRow]) -> dict[str, TaskRecord]:
        """Job ID -> its records, for jobs that have started (so have a log stream)."""
        if self.logs is None:
            return {}
        streams = {
            r.job_id: (r.log_group or DEFAULT_LOG_GROUP, r.log_stream)
            for r in rows
            if r.job_id and r.log_stream and r.status not in ("QUEUED", "NOT_RUN")
        }
        read = self.logs.read(sorted(set(streams.values())))
        found = {job: read[s] for job, s in streams.items() if s in read}
        ended = {r.job_id for r in rows if r.status in ("SUCCEEDED", "FAILED")}
        self.unrecorded = sorted((set(streams) & ended) - set(found))
        return found

    def logs_note(self) -> str | None:
        """One line when some nodes' times are their jobs', not their own."""
        if self.logs is not None and self.logs.error:
            return (
                f"could not read the jobs' logs ({self.logs.error}); nodes show their jobs' "
                "times (allow logs:FilterLogEvents and logs:GetLogEvents on the jobs' log group)"
            )
        if self.unrecorded:
            return (
                f"{len(self.unrecorded)} jobs' logs hold no kedro-batch records (an image "
                "built before its runtime wrote them?); their nodes show their jobs' times"
            )
        return None

    def tail(self, row: NodeRow) -> str:
        """The last lines of a row's job log."""
        if self.logs is None or not row.log_stream:
            return ""
        return self.logs.tail(row.log_group or DEFAULT_LOG_GROUP, row.log_stream)

    def _part_rows(
        self, definition: Mapping[str, Any], events: Sequence[Mapping[str, Any]], status: str
    ) -> dict[str, list[NodeRow]]:
        """Rows of each part: from its child execution, or all "not run" before it starts."""
        found: dict[str, list[NodeRow]] = {}
        for state, (machine_arn, child_arn) in part_executions(definition, events).items():
            if child_arn:
                if child_arn not in self._parts:
                    self._parts[child_arn] = Watcher(
                        self.aws, child_arn, (self.sfn, self.batch), logs=False
                    )
                part = self._parts[child_arn]
                found[state] = part.snapshot().jobs
                self._part_definitions.setdefault(machine_arn, part.definition)
                self.batch_error = self.batch_error or part.batch_error
                continue
            if machine_arn not in self._part_definitions:
                with aws_errors(f"reading part {machine_arn}", self.aws):
                    described = self.sfn.describe_state_machine(stateMachineArn=machine_arn)
                self._part_definitions[machine_arn] = json.loads(described["definition"])
            found[state] = node_rows(
                self._part_definitions[machine_arn], [], execution_status=status
            )
        return found

    def _describe_jobs(self, job_ids: Sequence[str]) -> None:
        """Batch's view of some jobs: optional, so a refusal is noted, not fatal."""
        if self.batch_error is not None:
            return
        from botocore import exceptions as bx

        try:
            for i in range(0, len(job_ids), 100):
                for job in self.batch.describe_jobs(jobs=list(job_ids[i : i + 100]))["jobs"]:
                    self._jobs[job["jobId"]] = job
        except (bx.ClientError, bx.BotoCoreError) as exc:
            self.batch_error = " ".join(str(exc).split())[:200]

    def watch(
        self,
        console: Console,
        *,
        follow: bool,
        interval: float = POLL_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Snapshot:
        """One snapshot, or (``follow``) snapshots until the execution ends, shown live."""
        snapshot = self.snapshot()
        if not follow:
            return snapshot
        title = f"{snapshot.execution.get('name', self.arn)} · {self.arn.split(':')[6]}"
        with progress.Progress(console, title, links=True) as shown:
            shown.update(snapshot.display_rows())
            while snapshot.status not in TERMINAL:
                sleep(interval)
                snapshot = self.snapshot()
                shown.update(snapshot.display_rows())
        return snapshot


# --- reports ----------------------------------------------------------------------


def report(
    console: Console,
    snapshot: Snapshot,
    *,
    batch_error: str | None = None,
    logs_note: str | None = None,
) -> None:
    """The node table, the outcome and, for failures, the cause and the logs."""
    execution = snapshot.execution
    rows = snapshot.display_rows()
    started = _time(execution.get("startDate"))
    stopped = _time(execution.get("stopDate"))
    took = ""
    if started:
        took = f", {((stopped or snapshot.now) - started).total_seconds():.0f}s"
    redrives = execution.get("redriveCount") or 0
    title = f"{execution.get('name')} · {snapshot.status.lower()}{took}" + (
        f" · redriven {redrives}x" if redrives else ""
    )
    console.print(progress.table(title, rows, links=console.is_terminal))
    counts: dict[str, int] = {}
    for row in snapshot.rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    summary = ", ".join(f"{n} {progress.word(s)}" for s, n in sorted(counts.items()))
    console.print(f"{len(snapshot.rows)} nodes: {summary}", highlight=False)
    for row in snapshot.rows:
        if row.status == "FAILED":
            console.print(
                f"[bold red]node {row.name} failed[/]: {row.cause or NO_REASON}",
                highlight=False,
                soft_wrap=True,
            )
            link = row.log_link(snapshot.region)
            if link:
                console.print(f"  logs: {link}", highlight=False, soft_wrap=True)
    if snapshot.status in TERMINAL - {"SUCCEEDED"}:
        error = execution.get("error") or snapshot.status
        cause = summarise_cause(execution.get("cause"))
        console.print(
            f"[bold red]{snapshot.status.lower()}[/]: {error}: {cause}",
            highlight=False,
            soft_wrap=True,
        )
    if batch_error:
        console.print(
            f"[yellow]note[/]: could not read the Batch jobs ({batch_error}); queued/running "
            "and exact-mode outcomes come from Step Functions only",
            highlight=False,
        )
    if logs_note:
        console.print(f"[yellow]note[/]: {logs_note}", highlight=False, soft_wrap=True)
    console.print(f"console: {execution_url(str(execution['executionArn']))}", soft_wrap=True)


def outcome(snapshot: Snapshot) -> int:
    """Exit status: 0 succeeded (or still running), 1 failed, timed out or aborted."""
    return 1 if snapshot.status in TERMINAL - {"SUCCEEDED"} else 0


def _follow(watcher: Watcher, console: Console, interval: float) -> int:
    try:
        snapshot = watcher.watch(console, follow=True, interval=interval)
    except KeyboardInterrupt:
        console.print(
            f"stopped following; the execution goes on: python -m infra status {watcher.arn} "
            "--follow",
            soft_wrap=True,
        )
        return 130
    report(console, snapshot, batch_error=watcher.batch_error, logs_note=watcher.logs_note())
    close_mlflow_run(watcher, snapshot, console)
    return outcome(snapshot)


def close_mlflow_run(watcher: Watcher, snapshot: Snapshot, console: Console) -> None:
    """An ended execution leaves its shared MLflow run with its own outcome
    (:mod:`infra.mlflow_reconcile`): a timeout or an abort never reaches a node."""
    if snapshot.status not in TERMINAL:
        return
    line = reconcile(
        snapshot.execution,
        [watcher.definition, *watcher.machines().values()],
        watcher.batch,
        watcher.aws.client("s3", watcher.arn),
    )
    if line:
        console.print(line, highlight=False, soft_wrap=True)


# --- commands -------------------------------------------------------------------


@dataclass
class RunRequest:
    stack: str
    pipeline: str | None
    params: dict[str, Any]
    follow: bool = False
    state_machine_arn: str | None = None
    name: str | None = None
    interval: float = POLL_SECONDS
    aws: Aws = field(default_factory=Aws)


def run(request: RunRequest, out: Console | None = None, err: Console | None = None) -> int:
    """Start an execution; print its ARN (stdout) and, with ``follow``, watch it."""
    out = out or Console()
    err = err or Console(stderr=True)
    if request.state_machine_arn:
        arn = check_state_machine_arn(request.state_machine_arn)
    else:
        outputs = stack_outputs(request.stack)
        pipeline, arn = state_machine_arn(outputs, request.stack, request.pipeline)
    sfn = request.aws.client("stepfunctions", arn)
    if request.state_machine_arn:
        pipeline = request.pipeline or _tagged_pipeline(sfn, arn) or arn.rsplit(":", 1)[-1]
    name = check_execution_name(request.name) if request.name else execution_name(pipeline)
    _check_params_fit(sfn, arn, pipeline, request)
    with aws_errors(f"starting {pipeline!r} ({arn})", request.aws):
        started = sfn.start_execution(
            stateMachineArn=arn, name=name, input=json.dumps({"params": request.params})
        )
    execution_arn = str(started["executionArn"])
    out.print(execution_arn, highlight=False, soft_wrap=True)
    err.print(f"started {pipeline!r} as run {name}", highlight=False)
    if not request.follow:
        err.print(
            f"follow it: python -m infra status {execution_arn} --follow\n"
            f"console: {execution_url(execution_arn)}",
            highlight=False,
            soft_wrap=True,
        )
        return 0
    return _follow(Watcher(request.aws, execution_arn), err, request.interval)


def _check_params_fit(sfn: Any, arn: str, pipeline: str, request: RunRequest) -> None:
    """Refuse parameters Batch would fail every job for, before anything starts.

    The room is the one the state machine's own guard enforces (see
    :func:`infra.asl.params_guard`); a machine deployed without one is not checked.
    """
    with aws_errors(f"reading {pipeline!r} ({arn})", request.aws):
        definition = json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"])
    room = asl.params_room_of(definition)
    size = params_length(request.params)
    if room is not None and size > room:
        raise UserError(
            f"--params take {size:,} characters of JSON, over the {room:,} that every Batch "
            f"job of {pipeline!r} has left in its 8,192 characters of container overrides; "
            "pass fewer or smaller parameters (e.g. a file's path instead of its content)"
        )


def _tagged_pipeline(sfn: Any, arn: str) -> str | None:
    """The pipeline a state machine runs, from the tag the deployment gives it.

    Only names the run (``<pipeline>-<time>-<random>``), so a refusal
    (no ``states:ListTagsForResource``) just falls back to the machine's name.
    """
    from botocore import exceptions as bx

    try:
        tags = sfn.list_tags_for_resource(resourceArn=arn).get("tags", [])
    except (bx.ClientError, bx.BotoCoreError):
        return None
    return next((t["value"] for t in tags if t.get("key") == PIPELINE_TAG), None)


def status(
    execution_arn: str,
    *,
    aws: Aws,
    durations: Path | None = None,
    follow: bool = False,
    interval: float = POLL_SECONDS,
    out: Console | None = None,
    timeline_file: Path | None = None,
    plan: Path | None = None,
) -> int:
    """Print the node table of one execution; optionally write measured durations
    (and the measured job start-up) and the run's timeline."""
    out = out or Console()
    if plan is not None and timeline_file is None:
        raise UserError("--plan only feeds --timeline; add --timeline FILE.html")
    # A bad file or path fails before any call.
    plans = read_plan(plan) if plan is not None else None
    for flag, path in (("--durations", durations), ("--timeline", timeline_file)):
        if path is not None:
            checked(flag, path)
    watcher = Watcher(aws, execution_arn)
    if follow:
        code = _follow(watcher, out, interval)
        if code == 130 or (durations is None and timeline_file is None):
            return code
        snapshot = watcher.snapshot()
    else:
        snapshot = watcher.watch(out, follow=False)
        report(out, snapshot, batch_error=watcher.batch_error, logs_note=watcher.logs_note())
        close_mlflow_run(watcher, snapshot, out)
        code = outcome(snapshot)
    if durations is not None:
        _write_measured(out, snapshot, durations, execution_arn)
    if timeline_file is not None:
        machine = str(snapshot.execution.get("stateMachineArn") or "")
        pipeline = _tagged_pipeline(watcher.sfn, machine) if machine else None
        if pipeline is None and plans is not None and len(plans) == 1:
            pipeline = next(iter(plans))
        pipeline = pipeline or machine.rsplit(":", 1)[-1] or "pipeline"
        expected = expected_seconds(plans, pipeline, plan) if plans is not None else None
        tails = {
            r.job_id: watcher.tail(r) for r in snapshot.jobs if r.job_id and r.status == "FAILED"
        }
        run = timeline_run(
            snapshot,
            pipeline=pipeline,
            precedence=task_precedence(watcher.definition, watcher.machines()),
            tails=tails,
            expected=expected,
        )
        timeline_html.write(timeline_file, run)
        out.print(f"timeline written to {timeline_file}", highlight=False, soft_wrap=True)
    return code


def _write_measured(out: Console, snapshot: Snapshot, path: Path, execution_arn: str) -> None:
    """``--durations``: the file for ``kedro-batch:durations``, and the start-up to set."""
    measured = measured_durations(snapshot.rows)
    if not measured:
        raise UserError(
            f"no node of {execution_arn} has succeeded, so --durations has nothing to write; "
            "use a run that got further"
        )
    write_durations(path, measured)
    shared = sum(
        1 for r in snapshot.rows if r.name in measured and not r.measured and r.task_size > 1
    )
    out.print(
        f"wrote {len(measured)} measured durations to {path}"
        + (f" ({shared} of them a fused task's time split evenly: no records)" if shared else "")
        + f'; use them with: pulumi config set {NAMESPACE}:durations "$(cat {path})"',
        highlight=False,
        soft_wrap=True,
    )
    start, jobs = measured_job_start(snapshot)
    if start is None:
        out.print(
            "no job start-up measured: no job's log holds a node-start record",
            highlight=False,
        )
        return
    out.print(
        f"measured job start-up (submission to first node, median of {jobs} jobs): "
        f"{start:.1f}s; use it with: pulumi config set {NAMESPACE}:jobStartSeconds "
        f"{max(round(start), 0)}",
        highlight=False,
        soft_wrap=True,
    )


def read_plan(path: Path) -> dict[str, Any]:
    """Pipeline -> its entry in ``synth``'s ``plan.json``."""
    hint = "pass the plan.json that `python -m infra synth` wrote (build/<stack>/plan.json)"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"--plan {path}: cannot read it ({exc.strerror}); {hint}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"--plan {path} is not JSON; {hint}") from None
    pipelines = data.get("pipelines") if isinstance(data, dict) else None
    if not isinstance(pipelines, dict) or not pipelines:
        raise UserError(f'--plan {path} has no "pipelines" object; {hint}')
    return pipelines


def expected_seconds(plans: Mapping[str, Any], pipeline: str, path: Path | None) -> float:
    """The model's expected run time of ``pipeline`` in a plan (``expected.seconds``)."""
    if pipeline not in plans:
        raise UserError(
            f"--plan {path} has no pipeline {pipeline!r} (it has {', '.join(sorted(plans))}); "
            "pass the plan of the stack that ran this execution"
        )
    expected = plans[pipeline].get("expected") if isinstance(plans[pipeline], dict) else None
    seconds = expected.get("seconds") if isinstance(expected, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise UserError(
            f"--plan {path}: pipeline {pipeline!r} has no expected.seconds; write it again with "
            "`python -m infra synth`"
        )
    return float(seconds)


def timeline_run(
    snapshot: Snapshot,
    *,
    pipeline: str,
    precedence: Mapping[str, frozenset[str]],
    tails: Mapping[str, str],
    expected: float | None,
) -> timeline.Run:
    """An execution as the timeline draws it: one task per Task state, from AWS's records."""
    tasks: dict[str, timeline.TaskRun] = {}
    for row in snapshot.jobs:
        if row.task_key in tasks:
            continue
        record = snapshot.records.get(row.job_id or "")
        spans = record.spans if record is not None else ()
        waiting = row.status in ("QUEUED", "NOT_RUN")
        started = None if waiting else _epoch(row.started)
        if started is None and not waiting and record is not None:
            started = record.started
        error = next((s.error for s in spans if s.status == "FAILED" and s.error), None)
        tasks[row.task_key] = timeline.TaskRun(
            key=row.task_key,
            label=row.state,
            nodes=row.task_nodes or (row.name,),
            status=row.status,
            submitted=None if row.status == "NOT_RUN" else _epoch(row.submitted),
            started=started,
            finished=None if waiting else _epoch(row.finished),
            spans=spans,
            attempts=row.attempts,
            cause=(error or row.cause) if row.status == "FAILED" else None,
            log_tail=tails.get(row.job_id or "", ""),
            link=row.log_link(snapshot.region),
        )
    execution = snapshot.execution
    started_at = _time(execution.get("startDate")) or snapshot.now
    arn = str(execution["executionArn"])
    return timeline.Run(
        pipeline=pipeline,
        run_id=str(execution.get("name") or arn.rsplit(":", 1)[-1]),
        status=snapshot.status,
        started=started_at.timestamp(),
        finished=_epoch(_time(execution.get("stopDate"))),
        tasks=tuple(tasks.values()),
        precedence=precedence,
        expected_seconds=expected,
        now=snapshot.now.timestamp(),
        source="Step Functions console",
        link=execution_url(arn),
    )


def redrive(
    execution_arn: str,
    *,
    aws: Aws,
    follow: bool = False,
    interval: float = POLL_SECONDS,
    out: Console | None = None,
    err: Console | None = None,
) -> int:
    """Redrive a failed, timed-out or aborted execution: only unsuccessful nodes re-run."""
    out = out or Console()
    err = err or Console(stderr=True)
    watcher = Watcher(aws, execution_arn)
    snapshot = watcher.snapshot()
    arn = watcher.arn
    if snapshot.status == "SUCCEEDED":
        raise UserError(
            f"execution {arn} succeeded, so there is nothing to redrive; start a new run with "
            "python -m infra run"
        )
    if snapshot.status not in TERMINAL:
        raise UserError(
            f"execution {arn} is {snapshot.status.lower()}; wait until it ends "
            f"(python -m infra status {arn} --follow), then redrive"
        )
    if snapshot.execution.get("redriveStatus") == "NOT_REDRIVABLE":
        reason = snapshot.execution.get("redriveStatusReason") or "Step Functions refuses it"
        raise UserError(f"execution {arn} cannot be redriven: {reason}; start a new run instead")
    again = rerun_on_redrive(snapshot.rows)
    with aws_errors(f"redriving {arn}", aws):
        watcher.sfn.redrive_execution(executionArn=arn)
    out.print(arn, highlight=False, soft_wrap=True)
    kept = len(snapshot.rows) - len(again)
    listed = ", ".join(again[:10]) + (f" and {len(again) - 10} more" if len(again) > 10 else "")
    err.print(
        f"redriving {snapshot.execution.get('name')}: {len(again)} nodes to run again "
        f"({listed or 'none'}), {kept} succeeded nodes kept",
        highlight=False,
        soft_wrap=True,
    )
    if not follow:
        return 0
    return _follow(watcher, err, interval)
