"""Execute a kedro-batch state machine on this machine.

A small interpreter for the subset of the Amazon States Language that the
compiler emits (Pass, Choice, Task, Parallel, Fail, Succeed; ``Parameters``,
``ResultSelector``, ``ResultPath``, ``Retry``, ``Catch``; the intrinsics
``States.Format``, ``States.JsonToString`` and ``States.StringToJson``) with
Batch replaced by :class:`LocalBatch`, which honours ``DependsOn``. Anything
outside that subset is refused by name rather than half-interpreted.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

TASK_FAILED = "States.TaskFailed"


class ExecutionFailed(Exception):
    """The state machine failed: what ``DescribeExecution`` would report."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


class StateError(Exception):
    """An error raised by a state, matched by ``Retry`` and ``Catch``."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(error)
        self.error = error
        self.cause = cause


# --- paths and intrinsic functions ----------------------------------------

_SEGMENT = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]")


def _walk(path: str, root: Any) -> Any:
    value = root
    for name, index in _SEGMENT.findall(path):
        if name:
            if not isinstance(value, dict) or name not in value:
                raise StateError("States.Runtime", f"path {path!r} not found in the input")
            value = value[name]
        else:
            value = value[int(index)]
    return value


def read_path(path: str, data: Any, context: Mapping[str, Any]) -> Any:
    """Evaluate a reference path (``$.a.b``, ``$$.Execution.Name``) or intrinsic."""
    if path.startswith("States."):
        return _intrinsic(path, data, context)
    if path.startswith("$$"):
        return _walk(path[2:], context)
    if not path.startswith("$"):
        raise StateError("States.Runtime", f"unsupported path {path!r}")
    return _walk(path[1:], data)


def _set_path(data: Any, path: str | None, value: Any) -> Any:
    """Apply ``ResultPath``: ``None`` discards the result, ``$`` replaces the input."""
    if path is None:
        return data
    if path == "$":
        return value
    result = copy.deepcopy(data) if isinstance(data, dict) else {}
    target = result
    names = [n for n, _ in _SEGMENT.findall(path[1:])]
    for name in names[:-1]:
        target = target.setdefault(name, {})
    target[names[-1]] = value
    return result


def _split_args(text: str) -> list[str]:
    args, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(text):
        ch = text[i]
        if quoted and ch == "\\":
            i += 2
            continue
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and ch == ",":
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    args.append(text[start:].strip())
    return [a for a in args if a]


def _argument(arg: str, data: Any, context: Mapping[str, Any]) -> Any:
    if arg.startswith("'"):
        return re.sub(r"\\(.)", r"\1", arg[1:-1])
    if arg.startswith(("$", "States.")):
        return read_path(arg, data, context)
    return json.loads(arg)


def _intrinsic(expr: str, data: Any, context: Mapping[str, Any]) -> Any:
    match = re.fullmatch(r"(States\.\w+)\((.*)\)", expr.strip(), re.DOTALL)
    if not match:
        raise StateError("States.Runtime", f"malformed intrinsic {expr!r}")
    name, raw = match.groups()
    args = [_argument(a, data, context) for a in _split_args(raw)]
    if name == "States.JsonToString":
        return json.dumps(args[0], separators=(",", ":"))
    if name == "States.StringToJson":
        return json.loads(args[0])
    if name == "States.Format":
        template, values = args[0], iter(args[1:])
        return re.sub(r"\{\}", lambda _m: _format_value(next(values)), template)
    raise StateError("States.Runtime", f"intrinsic {name} is not supported locally")


def _format_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def evaluate(template: Any, data: Any, context: Mapping[str, Any]) -> Any:
    """Evaluate a ``Parameters``/``ResultSelector`` template."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = read_path(value, data, context)
            else:
                out[key] = evaluate(value, data, context)
        return out
    if isinstance(template, list):
        return [evaluate(v, data, context) for v in template]
    return template


# --- Batch on this machine ---------------------------------------------------


@dataclass
class Job:
    """A submitted job, as ``DescribeJobs`` would tell of it."""

    job_id: str
    name: str
    params: dict[str, Any]
    depends_on: list[str]
    status: str = "SUBMITTED"
    status_reason: str = ""
    exit_code: int | None = None
    done: threading.Event = field(default_factory=threading.Event)
    created: float = field(default_factory=time.time)  # Batch's createdAt: submission

    def description(self) -> dict[str, Any]:
        return {
            "JobId": self.job_id,
            "JobName": self.name,
            "Status": self.status,
            "StatusReason": self.status_reason,
            "DependsOn": [{"JobId": d} for d in self.depends_on],
            "Container": {
                "Command": self.params.get("ContainerOverrides", {}).get("Command", []),
                "ExitCode": self.exit_code,
            },
        }


# Runs one job's container command; returns (exit code, reason when failed).
JobRunner = Callable[[Job], tuple[int, str]]


class LocalBatch:
    """SubmitJob/DescribeJobs semantics with jobs run by ``runner``.

    A job starts once every job it depends on has succeeded and fails without
    running ("Dependent Job failed") when one of them fails, as on Batch. At
    most ``max_parallel`` jobs run at once; waiting jobs hold no worker.
    """

    def __init__(
        self, runner: JobRunner, max_parallel: int, on_cancel: Callable[[], None] = lambda: None
    ) -> None:
        self._runner = runner
        self._on_cancel = on_cancel
        self._cancelled = ""
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="job")
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)

    def submit(self, params: dict[str, Any]) -> Job:
        depends = [d["JobId"] for d in params.get("DependsOn", [])]
        with self._lock:
            job = Job(
                job_id=f"local-{next(self._ids):05d}",
                name=params["JobName"],
                params=params,
                depends_on=depends,
            )
            self._jobs[job.job_id] = job
            unknown = [d for d in depends if d not in self._jobs]
        if unknown:
            raise StateError("Batch.ClientException", f"unknown dependencies {unknown}")
        self._schedule(job)
        return job

    def _schedule(self, job: Job) -> None:
        parents = [self._jobs[d] for d in job.depends_on]
        with self._lock:
            if job.status != "SUBMITTED":
                return
            if self._cancelled:
                self._finish(job, "FAILED", self._cancelled, None)
                return
            if any(p.status == "FAILED" for p in parents):
                self._finish(job, "FAILED", "Dependent Job failed", None)
                return
            if not all(p.status == "SUCCEEDED" for p in parents):
                return
            job.status = "RUNNABLE"
        self._pool.submit(self._run, job)

    def _run(self, job: Job) -> None:
        with self._lock:
            if job.status != "RUNNABLE":  # cancelled while queued
                return
            job.status = "RUNNING"
        try:
            code, reason = self._runner(job)
        except Exception as exc:  # a runner bug must not leave dependants waiting
            code, reason = -1, f"local runner error: {exc}"
        with self._lock:
            self._finish(job, "SUCCEEDED" if code == 0 else "FAILED", reason if code else "", code)

    def _finish(self, job: Job, status: str, reason: str, code: int | None) -> None:
        job.status, job.status_reason, job.exit_code = status, reason, code
        job.done.set()
        waiting = [j for j in self._jobs.values() if job.job_id in j.depends_on]
        for child in waiting:
            threading.Thread(target=self._schedule, args=(child,), daemon=True).start()

    def wait(self, job: Job) -> dict[str, Any]:
        job.done.wait()
        if job.status != "SUCCEEDED":
            raise StateError(TASK_FAILED, json.dumps(job.description()))
        return job.description()

    def cancel(self, reason: str) -> None:
        """Stop everything, as Step Functions does when a branch fails."""
        with self._lock:
            if self._cancelled:
                return
            self._cancelled = reason
            queued = [j for j in self._jobs.values() if j.status in ("SUBMITTED", "RUNNABLE")]
            for job in queued:
                self._finish(job, "FAILED", reason, None)
        self._on_cancel()

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


# --- the interpreter ----------------------------------------------------------

SUBMIT_JOB = "arn:aws:states:::batch:submitJob"
SUBMIT_JOB_SYNC = SUBMIT_JOB + ".sync"
START_EXECUTION_SYNC = "arn:aws:states:::states:startExecution.sync:2"


class Interpreter:
    """Runs one execution of a definition against :class:`LocalBatch`."""

    def __init__(
        self,
        definition: Mapping[str, Any],
        batch: LocalBatch,
        context: Mapping[str, Any],
        sleep: Callable[[float], None] = time.sleep,
        machines: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.definition = definition
        self.batch = batch
        self.context = context
        self.sleep = sleep
        # ARN -> definition of the machines a split pipeline starts.
        self.machines = machines or {}

    def run(self, execution_input: Any) -> Any:
        try:
            return self._machine(self.definition, execution_input)
        except StateError as exc:
            raise ExecutionFailed(exc.error, exc.cause) from None

    def _machine(self, machine: Mapping[str, Any], data: Any) -> Any:
        name = machine["StartAt"]
        while True:
            state = machine["States"][name]
            try:
                data, follow = self._state(name, state, data)
            except StateError as exc:
                handler = _catcher(state, exc)
                if handler is None:
                    raise
                data = _set_path(
                    data, handler.get("ResultPath", "$"), {"Error": exc.error, "Cause": exc.cause}
                )
                follow = handler["Next"]
            if follow is None:
                return data
            name = follow

    def _state(self, name: str, state: Mapping[str, Any], data: Any) -> tuple[Any, str | None]:
        kind = state["Type"]
        if kind == "Fail":
            error = state.get("Error") or read_path(state["ErrorPath"], data, self.context)
            cause = state.get("Cause")
            if "CausePath" in state:
                cause = read_path(state["CausePath"], data, self.context)
            raise ExecutionFailed(error, cause or "")
        if kind == "Succeed":
            return data, None
        if kind == "Choice":
            for rule in state.get("Choices", ()):
                if self._matches(rule, data):
                    return data, rule["Next"]
            if "Default" not in state:
                raise StateError("States.NoChoiceMatched", f"no choice matched in {name}")
            return data, state["Default"]
        if kind == "Pass":
            result = (
                evaluate(state["Parameters"], data, self.context)
                if "Parameters" in state
                else state.get("Result", data)
            )
            return _set_path(data, state.get("ResultPath", "$"), result), _next(state)
        if kind == "Parallel":
            result = self._with_retry(state, lambda: self._parallel(state, data))
        elif kind == "Task":
            params = evaluate(state.get("Parameters", {}), data, self.context)
            result = self._with_retry(state, lambda: self._task(state["Resource"], params))
        else:
            raise StateError("States.Runtime", f"state type {kind} is not supported locally")
        if "ResultSelector" in state:
            result = evaluate(state["ResultSelector"], result, self.context)
        return _set_path(data, state.get("ResultPath", "$"), result), _next(state)

    def _task(self, resource: str, params: dict[str, Any]) -> Any:
        if resource == START_EXECUTION_SYNC:
            return self._child(params)
        if resource not in (SUBMIT_JOB, SUBMIT_JOB_SYNC):
            raise StateError("States.Runtime", f"resource {resource} is not supported locally")
        job = self.batch.submit(params)
        if resource == SUBMIT_JOB_SYNC:
            return self.batch.wait(job)
        return {"JobId": job.job_id, "JobName": job.name}

    def _child(self, params: dict[str, Any]) -> Any:
        """``startExecution.sync:2``: run the child machine to its end, here."""
        arn = params["StateMachineArn"]
        if arn not in self.machines:
            raise StateError("StepFunctions.StateMachineDoesNotExistException", arn)
        name = f"{self.context['Execution']['Name']}-{arn.rsplit(':', 1)[-1]}"
        context = {**self.context, "Execution": {**self.context["Execution"], "Name": name}}
        child = Interpreter(self.machines[arn], self.batch, context, self.sleep, self.machines)
        try:
            output = child.run(params.get("Input", {}))
        except ExecutionFailed as exc:
            described = {"Status": "FAILED", "Error": exc.error, "Cause": exc.cause}
            raise StateError(TASK_FAILED, json.dumps(described)) from None
        return {"Status": "SUCCEEDED", "Output": output}

    def _parallel(self, state: Mapping[str, Any], data: Any) -> list[Any]:
        branches = state["Branches"]
        results: list[Any] = [None] * len(branches)
        errors: list[BaseException] = []

        def branch(i: int) -> None:
            try:
                results[i] = self._machine(branches[i], copy.deepcopy(data))
            except (StateError, ExecutionFailed) as exc:
                errors.append(exc)
                # Step Functions stops the sibling branches (and their jobs).
                self.batch.cancel("Cancelled: a parallel branch failed")

        threads = [
            threading.Thread(target=branch, args=(i,), daemon=True) for i in range(len(branches))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            first = errors[0]
            # A Fail state inside a branch fails the Parallel with its error.
            raise StateError(first.error, first.cause)  # type: ignore[attr-defined]
        return results

    def _with_retry(self, state: Mapping[str, Any], attempt: Callable[[], Any]) -> Any:
        tries: dict[int, int] = {}
        while True:
            try:
                return attempt()
            except StateError as exc:
                index, rule = next(
                    (
                        (i, r)
                        for i, r in enumerate(state.get("Retry", ()))
                        if _error_matches(r["ErrorEquals"], exc.error)
                    ),
                    (None, None),
                )
                if rule is None or index is None:
                    raise
                tries[index] = tries.get(index, 0) + 1
                if tries[index] > rule.get("MaxAttempts", 3):
                    raise
                delay = rule.get("IntervalSeconds", 1) * rule.get("BackoffRate", 2.0) ** (
                    tries[index] - 1
                )
                delay = min(delay, rule.get("MaxDelaySeconds", delay))
                if rule.get("JitterStrategy") == "FULL":
                    delay = random.uniform(0, delay)
                self.sleep(delay)

    def _matches(self, rule: Mapping[str, Any], data: Any) -> bool:
        if "And" in rule:
            return all(self._matches(r, data) for r in rule["And"])
        if "Or" in rule:
            return any(self._matches(r, data) for r in rule["Or"])
        if "Not" in rule:
            return not self._matches(rule["Not"], data)
        try:
            value = read_path(rule["Variable"], data, self.context)
            present = True
        except StateError:
            value, present = None, False
        if "IsPresent" in rule:
            return present == rule["IsPresent"]
        if "StringEquals" in rule:
            return present and value == rule["StringEquals"]
        if "BooleanEquals" in rule:
            return present and value is rule["BooleanEquals"]
        raise StateError("States.Runtime", f"Choice rule {sorted(rule)} is not supported locally")


def _next(state: Mapping[str, Any]) -> str | None:
    return None if state.get("End") else state["Next"]


def _error_matches(names: list[str], error: str) -> bool:
    if error in names:
        return True
    # States.ALL matches every error except States.Runtime (ASL spec).
    return "States.ALL" in names and error != "States.Runtime"


def _catcher(state: Mapping[str, Any], exc: StateError) -> Mapping[str, Any] | None:
    return next(
        (c for c in state.get("Catch", ()) if _error_matches(c["ErrorEquals"], exc.error)), None
    )
