"""Compile a Kedro pipeline into an Amazon States Language definition.

Two orchestration modes (contract 3 of DESIGN.md):

``structured``
    One ``batch:submitJob.sync`` Task per task, fan-out/fan-in through nested
    ``Parallel`` states laid out by :func:`infra.layout.structure`. Every node
    is a state in the console, and a redrive re-runs only what failed.
``exact``
    The DAG is handed to Batch: jobs are submitted (plain ``submitJob``) in
    topological order with ``DependsOn`` set to their parents' job IDs, and
    the execution waits (``.sync``) on a final barrier job that depends on
    every sink. Precedence is exactly ``node_dependencies``; the console
    shows submissions, not node runs.

Both emit the task command of contract 4, pass the run id and the
execution's runtime parameters through ``ContainerOverrides.Environment``,
keep state payloads small (Batch results are dropped or trimmed), retry
SubmitJob throttling with full jitter, and fail the execution with a cause
that names the Kedro node.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

from kedro_batch_runtime.settings import ENV_PARAMS, ENV_PIPELINE, ENV_RUN_ID, ENV_RUN_STARTED

from infra.errors import UserError
from infra.graph import (
    KedroPipelineLike,
    PipelineGraph,
    Task,
    TaskGraph,
    graph_from_pipeline,
    group_tasks,
    one_task_per_node,
    topological_order,
)
from infra.layout import Layout, Leaf, Parallel, Series, fold, leaves, structure

Mode = Literal["structured", "exact"]
MODES: tuple[Mode, ...] = ("structured", "exact")

SUBMIT_JOB_SYNC = "arn:aws:states:::batch:submitJob.sync"
SUBMIT_JOB = "arn:aws:states:::batch:submitJob"
START_CHILD = "arn:aws:states:::states:startExecution.sync:2"
DESCRIBE_JOBS = "arn:aws:states:::aws-sdk:batch:describeJobs"
TASK_COMMAND = ("kedro-batch-task",)
BARRIER_COMMAND = ("kedro-batch-task", "--barrier")


# Step Functions and Batch limits (DESIGN.md, "Facts to design around").
MAX_DEFINITION_BYTES = 1_048_576
MAX_HISTORY_EVENTS = 25_000
MAX_PAYLOAD_BYTES = 262_144
MAX_STATE_NAME = 80
MAX_JOB_NAME = 128
MAX_DEPENDS_ON = 20
# A pipeline is split into child machines past these, below the hard limits:
# headroom for SubmitJob retries (each adds history events) and estimates.
SPLIT_BYTES = 1_000_000
SPLIT_EVENTS = 20_000
SPLIT_PAYLOAD = 200_000
JOB_ID_BYTES = 64  # "tN":{"JobId":"<36-character UUID>"} in exact mode's state
# Jobs per DescribeJobs call when exact mode looks for the failed node: a job
# description is up to ~10 KB, and a call's result must stay under 256 KiB.
DESCRIBE_CHUNK = 16
DESCRIBE_BYTES_PER_JOB = 100  # its ID's path, and a 16th of a ~1 KB describing state

# History events per state kind on the success path (Standard workflows).
EVENTS_SYNC_TASK = 6  # Entered, Scheduled, Started, Submitted, Succeeded, Exited
EVENTS_TASK = 5
EVENTS_PARALLEL = 4  # Entered, Started, Succeeded, Exited
EVENTS_PASS = 2
EVENTS_EXECUTION = 2

# SubmitJob is throttled at 50/s per account; wide fan-outs hit it. Step
# Functions names a failed call after the SDK exception it got: Batch's model
# has only ClientException (our request is wrong: never retried) and
# ServerException (HTTP 500); anything unmodelled, HTTP 429
# TooManyRequestsException included, surfaces as the SDK's base class,
# Batch.AWSBatchException (SDK v1) or Batch.BatchException (SDK v2), both seen
# in real executions. The error code itself is listed too, in case it is ever
# surfaced as is. Waits are drawn from 0..1 s, 0..2 s, ... 0..128 s (full
# jitter). Defaults (IntervalSeconds 1, BackoffRate 2.0) are left out: every
# byte is paid per task.
TRANSIENT_BATCH_ERRORS = (
    "Batch.AWSBatchException",
    "Batch.BatchException",
    "Batch.ServerException",
    "Batch.TooManyRequestsException",
)
THROTTLE_RETRY: dict[str, Any] = {
    "ErrorEquals": list(TRANSIENT_BATCH_ERRORS),
    "MaxAttempts": 8,
    "JitterStrategy": "FULL",
}

# Keys of the run context the StartRun state builds (see _Emitter._start).
CONTEXT_QUEUE = "q"
CONTEXT_DEFINITION = "d"
CONTEXT_ENV = "env"
FAILED_PIPELINE_ERROR = "KedroPipelineFailed"
DEPENDENT_FAILED = "Dependent Job failed"  # Batch's reason for a job whose parent failed
PARAMS_TOO_LARGE_ERROR = "KedroBatchParamsTooLarge"
CHECK_PARAMS_STATE = "CheckParams"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """Per-task SubmitJob settings beyond the pipeline-wide queue and definition.

    Retries are not among them: a ``RetryStrategy`` override replaces the job
    definition's whole strategy, ``evaluateOnExit`` included, and would make
    Batch retry a node's own failures. Tasks needing other retries get a job
    definition of their own (``job_definition``).
    """

    job_queue: str | None = None
    job_definition: str | None = None
    resource_requirements: Mapping[str, str] = field(default_factory=dict)  # Type -> Value
    timeout: int | None = None


JobSpecs = Mapping[str, JobSpec] | Callable[[Task], JobSpec]


@dataclass(frozen=True)
class Limits:
    """What a definition costs against the Step Functions quotas."""

    definition_bytes: int
    history_events: int
    payload_bytes: int
    states: int


class Namer:
    """Allocates names that are valid, short enough and unique.

    Kedro names may contain characters neither Batch nor Step Functions
    accept, may be longer than allowed, and two may coincide once cleaned
    (``prep.clean`` and ``prep_clean``). A clash or a cut gets a short hash of
    the original name, so the result stays stable across recompiles. With
    ``ascii_only``, accented letters lose their accents first (``été`` ->
    ``ete``, not ``n_t_``), so names stay readable where only ASCII is allowed.
    """

    def __init__(
        self, limit: int, invalid: str, first_alnum: bool = False, ascii_only: bool = False
    ) -> None:
        self._limit = limit
        self._invalid = re.compile(invalid)
        self._first_alnum = first_alnum
        self._ascii_only = ascii_only
        self._taken: set[str] = set()

    def claim(self, wanted: str) -> str:
        readable = transliterate(wanted) if self._ascii_only else wanted
        clean = self._invalid.sub("_", readable) or "x"
        if self._first_alnum and not clean[0].isalnum():
            clean = "n" + clean
        digest = hashlib.sha1(wanted.encode()).hexdigest()
        candidate = (
            clean if len(clean) <= self._limit else f"{clean[: self._limit - 9]}-{digest[:8]}"
        )
        n = 1
        while candidate in self._taken:
            n += 1
            suffix = f"-{digest[:6]}{n}"
            candidate = clean[: self._limit - len(suffix)] + suffix
        self._taken.add(candidate)
        return candidate


def state_namer() -> Namer:
    # Step Functions tolerates most characters in state names, but names that
    # also work in CloudWatch metrics and X-Ray avoid these.
    return Namer(MAX_STATE_NAME, r"[\s<>{}\[\]?*\"#%\\^|~`$&,;:/]")


def job_namer() -> Namer:
    return Namer(MAX_JOB_NAME, r"[^A-Za-z0-9_-]", first_alnum=True, ascii_only=True)


def transliterate(name: str) -> str:
    """``name`` with accents dropped: NFKD splits ``é`` into ``e`` and a combining
    mark, which goes; letters without an ASCII base (``ß``, ``ø``) stay as they are."""
    return "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))


def task_graph(
    pipeline: KedroPipelineLike | PipelineGraph,
    groups: Sequence[Sequence[str]] | None = None,
) -> TaskGraph:
    graph = pipeline if isinstance(pipeline, PipelineGraph) else graph_from_pipeline(pipeline)
    if not graph.nodes:
        raise UserError(f"pipeline {graph.name!r} has no nodes; there is nothing to deploy")
    return group_tasks(graph, groups) if groups else one_task_per_node(graph)


def build_definition(
    pipeline: KedroPipelineLike | PipelineGraph,
    *,
    job_queue: str,
    job_definition: str,
    mode: str = "structured",
    durations: Mapping[str, float] | None = None,
    groups: Sequence[Sequence[str]] | None = None,
    jobs: JobSpecs | None = None,
    pipeline_name: str | None = None,
    layout: Layout | None = None,
    layout_budget_seconds: float = 1.0,
    params_room: int | None = None,
) -> dict[str, Any]:
    """The ASL definition that runs ``pipeline`` on Batch, as one state machine.

    ``durations`` maps node names to expected seconds and steers the
    structured layout (or pass a ``layout`` computed once); ``groups`` fuses
    nodes into one task each; ``jobs`` gives per-task queue, definition,
    resources and timeout. With ``params_room`` (characters, see
    :mod:`infra.overrides`), the machine fails an execution whose runtime
    parameters would take more, before it submits any job.
    :func:`build_machines` splits what does not fit.
    """
    tasks, emitter = _prepare(
        pipeline, job_queue, job_definition, mode, groups, jobs, pipeline_name, params_room
    )
    if mode == "exact":
        return emitter.exact(tasks)
    layout = layout or _layout(tasks, durations, layout_budget_seconds)
    return emitter.structured(tasks, layout)


@dataclass(frozen=True, slots=True)
class ChildRef:
    """A layout leaf standing for a child state machine (``key``)."""

    key: str


@dataclass(frozen=True)
class Machine:
    """One state machine of a pipeline; ``key`` is ``""`` for the pipeline's own.

    ``template`` holds each child's ARN as :func:`child_placeholder` of its
    key, filled in by :meth:`definition` once the children exist.
    """

    key: str
    template: dict[str, Any]
    children: tuple[str, ...] = ()

    def definition(self, arns: Mapping[str, str]) -> dict[str, Any]:
        values = {child_placeholder(k): arns[k] for k in self.children}
        return cast(dict[str, Any], _substitute(self.template, values))


def child_placeholder(key: str) -> str:
    return f"${{child:{key}}}"


def _substitute(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _substitute(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values) for v in value]
    return values.get(value, value) if isinstance(value, str) else value


def build_machines(
    pipeline: KedroPipelineLike | PipelineGraph,
    *,
    job_queue: str,
    job_definition: str,
    mode: str = "structured",
    durations: Mapping[str, float] | None = None,
    groups: Sequence[Sequence[str]] | None = None,
    jobs: JobSpecs | None = None,
    pipeline_name: str | None = None,
    layout: Layout | None = None,
    layout_budget_seconds: float = 1.0,
    params_room: int | None = None,
) -> list[Machine]:
    """Like :func:`build_definition`, split to stay within Step Functions' limits.

    A structured pipeline whose one machine would pass ``SPLIT_BYTES`` or
    ``SPLIT_EVENTS`` becomes a parent that starts child machines
    (``states:startExecution.sync:2``), each with its own 1 MB definition and
    25,000-event history. The split depends only on the layout and the
    pipeline, never on ARNs, so every compile of a deployment agrees on it.
    Children come first: the parent needs their ARNs.
    """
    tasks, emitter = _prepare(
        pipeline, job_queue, job_definition, mode, groups, jobs, pipeline_name, params_room
    )
    splitter = _Splitter(tasks, emitter.spec)
    if mode == "exact":
        parts = emitter.exact_parts(tasks, splitter.job_cost)
        return parts or [Machine("", emitter.exact(tasks))]
    layout = layout or _layout(tasks, durations, layout_budget_seconds)
    if splitter.fits_whole(tasks, layout):
        return [Machine("", emitter.structured(tasks, layout))]
    parent = splitter.split(layout)
    machines = [
        Machine(key, emitter.structured_child(tasks, part)) for key, part in splitter.children
    ]
    keys = tuple(key for key, _ in splitter.children)
    return [*machines, Machine("", emitter.structured_parent(tasks, parent), keys)]


def _prepare(
    pipeline: KedroPipelineLike | PipelineGraph,
    job_queue: str,
    job_definition: str,
    mode: str,
    groups: Sequence[Sequence[str]] | None,
    jobs: JobSpecs | None,
    pipeline_name: str | None,
    params_room: int | None = None,
) -> tuple[TaskGraph, _Emitter]:
    if mode not in MODES:
        raise UserError(
            f"unknown orchestration mode {mode!r}; set kedro-batch:orchestration to "
            "structured or exact"
        )
    tasks = task_graph(pipeline, groups)
    name = pipeline_name or (pipeline.name if isinstance(pipeline, PipelineGraph) else None)
    return tasks, _Emitter(job_queue, job_definition, _spec_lookup(jobs), name, params_room)


def _layout(tasks: TaskGraph, durations: Mapping[str, float] | None, budget: float) -> Layout:
    return structure(tasks.names, tasks.parents, tasks.durations(durations), budget_seconds=budget)


def _total(costs: list[tuple[int, int]]) -> tuple[int, int]:
    return sum(c[0] for c in costs), sum(c[1] for c in costs)


def _parallel_cost(costs: list[tuple[int, int]]) -> tuple[int, int]:
    size, events = _total(costs)
    return size + 60 + 30 * len(costs), events + EVENTS_PARALLEL


class _Splitter:
    """Cuts a layout into child machines that each fit the split budget.

    Costs are estimated per task from a Task state compiled against
    placeholder ARNs of typical length, and add up over Series and Parallel.
    """

    _QUEUE = "arn:aws:batch:xx-xxxx-1:000000000000:job-queue/" + "x" * 40
    _DEFINITION = "arn:aws:batch:xx-xxxx-1:000000000000:job-definition/" + "x" * 40 + ":1"

    def __init__(self, tasks: TaskGraph, spec: Callable[[Task], JobSpec]) -> None:
        self._tasks = {t.name: t for t in tasks.tasks}

        def sized(task: Task) -> JobSpec:
            # Only whether a task overrides its queue or definition counts, not
            # the ARN itself: the split must not depend on ARN values.
            own = spec(task)
            return replace(
                own,
                job_queue=self._QUEUE if own.job_queue else None,
                job_definition=self._DEFINITION if own.job_definition else None,
            )

        self._scratch = _Emitter(self._QUEUE, self._DEFINITION, sized, None)
        self._memo: dict[int, tuple[int, int]] = {}
        self.children: list[tuple[str, Layout]] = []

    def cost(self, layout: Layout) -> tuple[int, int]:
        """Estimated (definition bytes, history events) of ``layout``'s states."""
        if id(layout) not in self._memo:
            self._memo[id(layout)] = fold(layout, self._leaf_cost, _total, _parallel_cost)
        return self._memo[id(layout)]

    def _leaf_cost(self, leaf: Leaf) -> tuple[int, int]:
        task = self._tasks[leaf.task]
        state = self._scratch._submit(task, SUBMIT_JOB_SYNC, self._scratch._node_command(task))
        state.update({"ResultPath": None, "Next": leaf.task})
        return len(serialise({leaf.task: state})) + len(leaf.task), EVENTS_SYNC_TASK

    def job_cost(self, job: _Job) -> tuple[int, int]:
        """Estimated (definition bytes, history events) of one exact-mode submission,
        with its share of the states that look for a failed node."""
        name, state = self._scratch._exact_submit(job, SUBMIT_JOB)
        state["Next"] = name
        find = DESCRIBE_BYTES_PER_JOB if job.task.nodes else 0
        return len(serialise({name: state})) + len(name) + find, EVENTS_TASK

    def fits_whole(self, tasks: TaskGraph, layout: Layout) -> bool:
        """Whether one machine holds it, measured on the real definition
        (compiled against the placeholder ARNs, so real ones cannot flip it)."""
        usage = limits(self._scratch.structured(tasks, layout))
        return usage.definition_bytes <= SPLIT_BYTES and usage.history_events <= SPLIT_EVENTS

    def fits(self, layout: Layout, *more: Layout) -> bool:
        size = sum(self.cost(p)[0] for p in (layout, *more)) + 2_000  # start and failure states
        events = sum(self.cost(p)[1] for p in (layout, *more)) + 20
        return size <= SPLIT_BYTES and events <= SPLIT_EVENTS

    def split(self, layout: Layout) -> Layout:
        """The parent's layout: every task moved into a child, greedily packed."""
        if isinstance(layout, Leaf):
            return self._child(layout)
        series = isinstance(layout, Series)
        children = layout.parts if isinstance(layout, Series) else layout.branches
        result: list[Layout] = []
        group: list[Layout] = []
        for child in children:
            if group and self.fits(*group, child):
                group.append(child)
                continue
            if group:
                result.append(self._pack(group, series))
            group = [child] if self.fits(child) else []
            if not group:
                result.append(self.split(child))
        if group:
            result.append(self._pack(group, series))
        return Series(tuple(result)) if series else Parallel(tuple(result))

    def _pack(self, group: list[Layout], series: bool) -> Layout:
        body = (
            group[0]
            if len(group) == 1
            else (Series(tuple(group)) if series else Parallel(tuple(group)))
        )
        return self._child(body)

    def _child(self, body: Layout) -> Layout:
        key = f"part-{len(self.children) + 1}"
        self.children.append((key, body))
        return cast(Layout, ChildRef(key))


def _spec_lookup(jobs: JobSpecs | None) -> Callable[[Task], JobSpec]:
    if jobs is None:
        return lambda _task: JobSpec()
    if callable(jobs):
        return jobs
    return lambda task: jobs.get(task.name, JobSpec())


class _Emitter:
    """Builds the states; one instance per definition (it owns the namers)."""

    def __init__(
        self,
        job_queue: str,
        job_definition: str,
        spec: Callable[[Task], JobSpec],
        pipeline: str | None,
        params_room: int | None = None,
    ) -> None:
        self.job_queue = job_queue
        self.job_definition = job_definition
        self.spec = spec
        self.pipeline = pipeline
        self.params_room = params_room
        self.states = state_namer()
        self.job_names = job_namer()
        self.parallels = 0
        self.barrier_count = 0

    # -- shared pieces -----------------------------------------------------

    def _start(self, first: str, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """States that turn the execution input into the run's context.

        Runtime parameters arrive as ``{"params": {...}}``; an empty input is
        fine. The context holds what every task passes to Batch — queue, job
        definition and the container environment (run id, start time, params)
        — once, so each Task state refers to it instead of repeating it: a
        2,000-node pipeline then fits in one definition. Everything else in
        the input is dropped, so state payloads stay small at any size.
        """
        check, default, start = (
            self.states.claim(n) for n in ("ReadInput", "NoParams", "StartRun")
        )
        environment: list[dict[str, str]] = [
            {"Name": ENV_RUN_ID, "Value.$": "$$.Execution.Name"},
            {"Name": ENV_RUN_STARTED, "Value.$": "$$.Execution.StartTime"},
            {"Name": ENV_PARAMS, "Value.$": "States.JsonToString($.params)"},
        ]
        if self.pipeline:
            environment.append({"Name": ENV_PIPELINE, "Value": self.pipeline})
        guard: dict[str, Any] = {}
        present = start
        if self.params_room is not None:
            present, too_large = (
                self.states.claim(n) for n in (CHECK_PARAMS_STATE, "ParamsTooLarge")
            )
            guard = {
                present: params_guard(self.params_room, too_large, start),
                too_large: {
                    "Type": "Fail",
                    "Error": PARAMS_TOO_LARGE_ERROR,
                    "Cause": (
                        f"The runtime parameters take more than the {self.params_room:,} "
                        "characters of JSON every Batch job of this pipeline has left in its "
                        "8,192 characters of container overrides; Batch would fail the jobs. "
                        "Pass fewer or smaller parameters (put large values in a file and pass "
                        "its path)."
                    ),
                },
            }
        return {
            "StartAt": check,
            "States": {
                check: {
                    "Type": "Choice",
                    "Comment": 'Runtime parameters arrive as {"params": {...}}.',
                    "Choices": [{"Variable": "$.params", "IsPresent": True, "Next": present}],
                    "Default": default,
                },
                default: {
                    "Type": "Pass",
                    "Result": {},
                    "ResultPath": "$.params",
                    "Next": start,
                },
                **guard,
                start: {
                    "Type": "Pass",
                    "Parameters": {
                        CONTEXT_QUEUE: self.job_queue,
                        CONTEXT_DEFINITION: self.job_definition,
                        CONTEXT_ENV: environment,
                        **(extra or {}),
                    },
                    "Next": first,
                },
            },
        }

    def _submit(self, task: Task, resource: str, command: Sequence[str]) -> dict[str, Any]:
        spec = self.spec(task)
        overrides: dict[str, Any] = {
            "Command": list(command),
            "Environment.$": f"$.{CONTEXT_ENV}",
        }
        if spec.resource_requirements:
            overrides["ResourceRequirements"] = [
                {"Type": k, "Value": v} for k, v in sorted(spec.resource_requirements.items())
            ]
        params: dict[str, Any] = {"JobName": self.job_names.claim(task.name)}
        if spec.job_queue:
            params["JobQueue"] = spec.job_queue
        else:
            params["JobQueue.$"] = f"$.{CONTEXT_QUEUE}"
        if spec.job_definition:
            params["JobDefinition"] = spec.job_definition
        else:
            params["JobDefinition.$"] = f"$.{CONTEXT_DEFINITION}"
        params["ContainerOverrides"] = overrides
        if spec.timeout:
            params["Timeout"] = {"AttemptDurationSeconds": spec.timeout}
        return {
            "Type": "Task",
            "Resource": resource,
            "Parameters": params,
            "Retry": [dict(THROTTLE_RETRY)],
        }

    def _node_command(self, task: Task) -> list[str]:
        return node_command(task)

    # -- structured --------------------------------------------------------

    def structured(self, tasks: TaskGraph, layout: Layout) -> dict[str, Any]:
        self._new_machine()
        by_name = {t.name: t for t in tasks.tasks}
        body_start, body = self._sequence(layout, by_name, "__end__")
        machine = self._start(body_start)
        machine["Comment"] = _comment(self.pipeline, "structured", len(tasks.tasks))
        machine["States"].update(body)
        return machine

    def structured_child(self, tasks: TaskGraph, layout: Layout) -> dict[str, Any]:
        """A part of a split pipeline: its input is the parent's run context."""
        self._new_machine()
        by_name = {t.name: t for t in tasks.tasks}
        body_start, body = self._sequence(layout, by_name, "__end__")
        count = len(leaves(layout))
        return {
            "Comment": f"Part of {_comment(self.pipeline, 'structured', count)}",
            "StartAt": body_start,
            "States": body,
        }

    def structured_parent(self, tasks: TaskGraph, layout: Layout) -> dict[str, Any]:
        """The machine that runs the parts of a split pipeline, in its layout."""
        self._new_machine()
        body_start, body = self._sequence(layout, {}, "__end__")
        machine = self._start(body_start)
        machine["Comment"] = _comment(self.pipeline, "structured", len(tasks.tasks)) + (
            " Split into child state machines to stay within Step Functions' limits."
        )
        machine["States"].update(body)
        return machine

    def _new_machine(self) -> None:
        # State names are per machine; job names stay unique across them.
        self.states = state_namer()
        self.parallels = 0

    def _sequence(
        self, layout: Layout, tasks: Mapping[str, Task], next_state: str
    ) -> tuple[str, dict[str, Any]]:
        """States for ``layout`` followed by ``next_state`` (``__end__``: End).

        Built back to front so each state knows its successor. Nothing is
        caught: a failed node's Task fails its branch and every enclosing
        Parallel (Step Functions stops the siblings' jobs), and the execution
        fails at that Task, with Batch's job description as the cause (its
        ``Container.Command`` names the nodes). ``RedriveExecution`` then
        resumes exactly there; a Catch would make it resume at a Fail state.
        """
        parts = layout.parts if isinstance(layout, Series) else (layout,)
        states: dict[str, Any] = {}
        names = [self._reserve(p) for p in parts]
        follow = next_state
        for part, name in zip(reversed(parts), reversed(names), strict=True):
            state = self._state(part, tasks)
            _link(state, follow)
            states[name] = state
            follow = name
        # Keep the definition readable: states in execution order.
        return names[0], {n: states[n] for n in names}

    def _reserve(self, part: Layout) -> str:
        if isinstance(part, Leaf):
            return self.states.claim(part.task)
        if isinstance(part, ChildRef):
            return self.states.claim(f"run-{part.key}")
        self.parallels += 1
        return self.states.claim(f"Parallel-{self.parallels}")

    def _part_task(self, key: str) -> dict[str, Any]:
        """Start child machine ``key`` and wait for it (``.sync:2``)."""
        return {
            "Type": "Task",
            "Resource": START_CHILD,
            "Parameters": {
                "StateMachineArn": child_placeholder(key),
                # The part runs with this run's context: its run id is ours.
                "Input": {
                    f"{key}.$": f"$.{key}"
                    for key in (CONTEXT_QUEUE, CONTEXT_DEFINITION, CONTEXT_ENV)
                }
                | {"AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID.$": "$$.Execution.Id"},
            },
            "ResultPath": None,
            "Retry": [
                {
                    "ErrorEquals": ["StepFunctions.ExecutionLimitExceeded"],
                    "MaxAttempts": 8,
                    "MaxDelaySeconds": 60,
                    "JitterStrategy": "FULL",
                }
            ],
        }

    def _state(self, part: Layout, tasks: Mapping[str, Task]) -> dict[str, Any]:
        if isinstance(part, ChildRef):
            return self._part_task(part.key)
        if isinstance(part, Leaf):
            task = tasks[part.task]
            state = self._submit(task, SUBMIT_JOB_SYNC, self._node_command(task))
            # A Batch job description is several KB; nothing downstream needs it.
            state["ResultPath"] = None
            return state
        assert isinstance(part, Parallel)
        branches = []
        for branch in part.branches:
            start, states = self._sequence(branch, tasks, "__end__")
            branches.append({"StartAt": start, "States": states})
        return {
            "Type": "Parallel",
            "Branches": branches,
            # Branch outputs are not needed downstream: keep the input as is.
            "ResultPath": None,
        }

    # -- exact -------------------------------------------------------------

    def exact(self, tasks: TaskGraph) -> dict[str, Any]:
        self._new_machine()
        self.barrier_count = 0
        jobs, sinks = self._exact_jobs(tasks)
        states = [self._exact_submit(job, SUBMIT_JOB) for job in jobs]
        failed = self.states.claim("PipelineFailed")
        find, found = self._find_failed([job.key for job in jobs if job.task.nodes], failed)
        states += self._exact_wait(sinks, find)
        machine = self._start(_chain(states), {"jobs": {}})
        machine["Comment"] = _comment(self.pipeline, "exact", len(tasks.tasks))
        machine["States"].update(dict(states))
        machine["States"].update(found)
        machine["States"][failed] = self._exact_failure()
        return machine

    def exact_parts(
        self, tasks: TaskGraph, cost: Callable[[_Job], tuple[int, int]]
    ) -> list[Machine] | None:
        """Exact mode as consecutive parts of the submission order, or ``None``
        when one machine holds it. Each part submits its jobs and hands on the
        IDs later jobs (and the final wait) depend on; the parent runs the
        parts in order, then waits on the pipeline.

        ``cost`` estimates a job's (definition bytes, history events); the
        job IDs a machine carries count against the 256 KiB payload limit.
        """
        self.barrier_count = 0
        jobs, sinks = self._exact_jobs(tasks)
        chunks: list[list[_Job]] = [[]]
        size = events = 0
        for job in jobs:
            job_size, job_events = cost(job)
            over = (
                size + job_size > SPLIT_BYTES
                or events + job_events > SPLIT_EVENTS
                or (len(chunks[-1]) + 1) * JOB_ID_BYTES > SPLIT_PAYLOAD
            )
            if chunks[-1] and over:
                chunks.append([])
                size = events = 0
            chunks[-1].append(job)
            size, events = size + job_size, events + job_events
        if len(chunks) == 1:
            return None
        defined = {job.key: i for i, chunk in enumerate(chunks) for job in chunk}
        needed_after: list[set[str]] = [set() for _ in chunks]
        for i, chunk in enumerate(chunks):
            for job in chunk:
                for dep in job.deps:
                    for k in range(defined[dep], i):
                        needed_after[k].add(dep)
        for sink in sinks:
            for k in range(defined[sink], len(chunks)):
                needed_after[k].add(sink)
        machines = []
        for i, chunk in enumerate(chunks):
            self._new_machine()
            states = [self._exact_submit(job, SUBMIT_JOB) for job in chunk]
            forward = self.states.claim("HandOn")
            states.append(
                (
                    forward,
                    {
                        "Type": "Pass",
                        "Comment": "Job IDs that later parts and the final wait depend on",
                        "Parameters": {
                            "jobs": {
                                k: {"JobId.$": f"$.jobs.{k}.JobId"} for k in sorted(needed_after[i])
                            }
                        },
                    },
                )
            )
            start = _chain(states)
            machines.append(
                Machine(
                    f"part-{i + 1}",
                    {
                        "Comment": f"Part {i + 1} of "
                        + _comment(self.pipeline, "exact", len(tasks.tasks)),
                        "StartAt": start,
                        "States": dict(states),
                    },
                )
            )
        self._new_machine()
        parent_states: list[tuple[str, dict[str, Any]]] = []
        for i, machine in enumerate(machines):
            name, state = self.states.claim(f"run-{machine.key}"), self._part_task(machine.key)
            state["Parameters"]["Input"]["jobs.$"] = "$.jobs"
            if needed_after[i]:
                state["ResultSelector"] = {
                    f"{k}.$": f"$.Output.jobs.{k}" for k in sorted(needed_after[i])
                }
                state["ResultPath"] = "$.jobs"
            parent_states.append((name, state))
        wait_failed = self.states.claim("PipelineFailed")
        # The parent holds the sinks' job IDs only: a failed sink is named, any
        # other failed node by `python -m infra status`.
        find, found = self._find_failed(list(sinks), wait_failed)
        parent_states += self._exact_wait(sinks, find)
        parent = self._start(_chain(parent_states), {"jobs": {}})
        parent["Comment"] = _comment(self.pipeline, "exact", len(tasks.tasks)) + (
            " Split into child state machines to stay within Step Functions' limits."
        )
        parent["States"].update(dict(parent_states))
        parent["States"].update(found)
        parent["States"][wait_failed] = self._exact_failure()
        keys = tuple(m.key for m in machines)
        return [*machines, Machine("", parent, keys)]

    def _exact_jobs(self, tasks: TaskGraph) -> tuple[list[_Job], list[str]]:
        """Every job exact mode submits, in order (barriers where a job has
        more than MAX_DEPENDS_ON parents), and the keys of the sinks."""
        order = topological_order(tasks.names, tasks.parents)
        by_name = {t.name: t for t in tasks.tasks}
        keys = {name: f"t{i}" for i, name in enumerate(order)}
        jobs: list[_Job] = []
        for name in order:
            task = by_name[name]
            deps = self._barriers(
                jobs, [keys[p] for p in sorted(tasks.parents[name], key=order.index)], name
            )
            jobs.append(_Job(keys[name], task, deps, self._node_command(task)))
        children = tasks.children()
        return jobs, [keys[n] for n in order if not children[n]]

    def _barriers(self, jobs: list[_Job], deps: list[str], label: str) -> list[str]:
        """Job keys standing for ``deps``, at most MAX_DEPENDS_ON of them."""
        while len(deps) > MAX_DEPENDS_ON:
            merged: list[str] = []
            for chunk in _chunks(deps, MAX_DEPENDS_ON):
                self.barrier_count += 1
                key = f"b{self.barrier_count}"
                task = Task(name=f"barrier-{self.barrier_count}-{label}", nodes=())
                jobs.append(_Job(key, task, chunk, list(BARRIER_COMMAND)))
                merged.append(key)
            deps = merged
        return deps

    def _exact_wait(self, sinks: list[str], failed: str) -> list[tuple[str, dict[str, Any]]]:
        """The final wait: a job depending on every sink (through barriers)."""
        barriers: list[_Job] = []
        deps = self._barriers(barriers, list(sinks), "pipeline")
        states = [self._exact_submit(job, SUBMIT_JOB) for job in barriers]
        wait = _Job("done", Task(name="WaitForPipeline", nodes=()), deps, list(BARRIER_COMMAND))
        name, state = self._exact_submit(wait, SUBMIT_JOB_SYNC)
        state["ResultPath"] = None
        state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": failed}]
        return [*states, (name, state)]

    def _find_failed(self, keys: list[str], failed: str) -> tuple[str, dict[str, Any]]:
        """States that describe the run's node jobs (``keys``), a few at a time,
        collecting the FAILED ones Batch did not fail for a dependency: the
        nodes that failed. Then ``failed`` names them. JSONata, as JSONPath
        cannot filter on two fields; any error skips to ``failed``."""
        chunks = list(_chunks(keys, DESCRIBE_CHUNK))
        names = [self.states.claim(f"FindFailedNode-{i + 1}") for i in range(len(chunks))]
        found = self._failed_nodes()
        states: dict[str, Any] = {}
        for name, chunk, follow in zip(names, chunks, [*names[1:], failed], strict=True):
            ids = ", ".join(f"$states.input.jobs.{key}.JobId" for key in chunk)
            states[name] = {
                "Type": "Task",
                "QueryLanguage": "JSONata",
                "Resource": DESCRIBE_JOBS,
                "Arguments": {"Jobs": f"{{% [{ids}] %}}"},
                "Output": found,
                "Retry": [dict(THROTTLE_RETRY)],
                "Catch": [
                    {"ErrorEquals": ["States.ALL"], "Output": "{% $states.input %}", "Next": failed}
                ],
                "Next": follow,
            }
        return (names[0] if names else failed), states

    @staticmethod
    def _failed_nodes() -> str:
        """JSONata: the input, with the failed nodes of this result added to ``failed``."""
        failed = (
            f"$states.result.Jobs[Status = 'FAILED' and $not(StatusReason = '{DEPENDENT_FAILED}')]"
        )
        return (
            "{% $merge([$states.input, {'failed': [$states.input.failed, "
            f"{failed}.{{'node': Container.Command[2], 'reason': StatusReason}}]}}]) %}}"
        )

    def _exact_failure(self) -> dict[str, Any]:
        """Fail naming the failed nodes (and Batch's reason), else as before."""
        failed = "$states.input.failed"
        named = (
            f"'Kedro node(s) ' & $join({failed}.node, ', ') & ' failed (' & "
            f"$join({failed}.reason, '; ') & '), so Batch failed the jobs that depend on "
            "them; `python -m infra status` shows their logs.'"
        )
        unnamed = (
            "'A Kedro node failed, so Batch failed the jobs that depend on it; "
            "`python -m infra status` names it. ' & $string($states.input.error.Cause)"
        )
        return {
            "Type": "Fail",
            "QueryLanguage": "JSONata",
            "Error": FAILED_PIPELINE_ERROR,
            "Cause": f"{{% $count({failed}) > 0 ? {named} : {unnamed} %}}",
        }

    def _exact_submit(self, job: _Job, resource: str) -> tuple[str, dict[str, Any]]:
        task = job.task
        name = self.states.claim(f"submit-{task.name}" if task.nodes else task.name)
        state = self._submit(task, resource, job.command)
        if job.deps:
            state["Parameters"]["DependsOn"] = [{"JobId.$": f"$.jobs.{d}.JobId"} for d in job.deps]
        if resource == SUBMIT_JOB:
            # Only the job ID is kept: DependsOn of later jobs needs it.
            state["ResultSelector"] = {"JobId.$": "$.JobId"}
            state["ResultPath"] = f"$.jobs.{job.key}"
        return name, state


@dataclass(frozen=True, slots=True)
class _Job:
    """One job exact mode submits: a task's nodes, or a barrier."""

    key: str  # where its ID is kept: $.jobs.<key>
    task: Task
    deps: list[str]
    command: list[str]


def node_command(task: Task) -> list[str]:
    """Contract 4: ``--nodes`` then one element, the comma-separated names."""
    return [*TASK_COMMAND, "--nodes", ",".join(task.nodes)]


def params_guard(room: int, too_large: str, next_state: str) -> dict[str, Any]:
    """A JSONata Choice failing executions whose parameters exceed ``room``.

    JSONPath has no string length, so this one state is JSONata (Step
    Functions lets a JSONPath machine set ``QueryLanguage`` per state). It
    counts what :func:`infra.overrides.params_length` counts: the compact
    JSON of ``params``, each quote and backslash once more (the override's
    own JSON escapes them), less the ``{}`` already counted per task.
    """
    params = "$string($states.input.params)"
    size = (
        f"$length({params}) + $count($split({params}, '\"')) + $count($split({params}, '\\\\')) - 4"
    )
    return {
        "Type": "Choice",
        "QueryLanguage": "JSONata",
        "Comment": "Batch fails jobs whose container overrides pass 8,192 characters.",
        "Choices": [{"Condition": f"{{% {size} > {room} %}}", "Next": too_large}],
        "Default": next_state,
    }


def params_room_of(definition: Mapping[str, Any]) -> int | None:
    """The parameter room a definition's guard enforces (``None``: no guard)."""
    state = definition.get("States", {}).get(CHECK_PARAMS_STATE)
    if not state or state.get("QueryLanguage") != "JSONata":
        return None
    match = re.search(r"> (\d+) %}$", state["Choices"][0]["Condition"])
    return int(match.group(1)) if match else None


def _chain(states: list[tuple[str, dict[str, Any]]]) -> str:
    """Link states in order (the last ends); return the first's name."""
    names = [n for n, _ in states]
    for (_, state), follow in zip(states, [*names[1:], "__end__"], strict=True):
        _link(state, follow)
    return names[0]


def _link(state: dict[str, Any], follow: str) -> None:
    if follow == "__end__":
        state["End"] = True
    else:
        state["Next"] = follow


def _chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def _comment(pipeline: str | None, mode: str, tasks: int) -> str:
    what = f"Kedro pipeline {pipeline!r}" if pipeline else "Kedro pipeline"
    return f"{what}: {tasks} Batch tasks, {mode} orchestration. Generated by kedro-batch."


# --- limits -----------------------------------------------------------------


def iter_states(definition: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every state of a definition, Parallel branches included."""
    stack = [definition]
    while stack:
        machine = stack.pop()
        for name, state in machine["States"].items():
            yield name, state
            stack.extend(state.get("Branches", ()))


def serialise(definition: Mapping[str, Any]) -> str:
    """The definition as deployed: compact JSON (it counts against 1 MB)."""
    return json.dumps(definition, separators=(",", ":"))


def limits(definition: Mapping[str, Any]) -> Limits:
    """Estimate quota use of one success-path execution."""
    events = EVENTS_EXECUTION
    states = 0
    payload = 0
    for _name, state in iter_states(definition):
        states += 1
        kind = state["Type"]
        if kind == "Task" and state["Resource"] == DESCRIBE_JOBS:
            continue  # only after a failure
        if kind == "Task":
            sync = ".sync" in state["Resource"]
            events += EVENTS_SYNC_TASK if sync else EVENTS_TASK
            if "ResultSelector" in state:
                # {"tN":{"JobId":"<uuid>"}} accumulates in the state payload.
                payload += len(state["ResultPath"]) + 36 + 16
        elif kind == "Parallel":
            events += EVENTS_PARALLEL
        elif kind in ("Pass", "Choice"):
            events += EVENTS_PASS
    # The Choice and "No params" Pass are alternatives: only one runs.
    events -= EVENTS_PASS
    return Limits(
        definition_bytes=len(serialise(definition).encode()),
        history_events=events,
        payload_bytes=payload + 1024,
        states=states,
    )


def check_limits(definition: Mapping[str, Any], pipeline: str) -> Limits:
    """Raise ``UserError`` naming the limit when a definition cannot deploy."""
    usage = limits(definition)
    remedy = (
        "fuse nodes into fewer tasks (kedro-batch:intermediates group) or deploy smaller "
        "registered pipelines (kedro-batch:pipelines)"
    )
    if usage.definition_bytes > MAX_DEFINITION_BYTES:
        raise UserError(
            f"pipeline {pipeline!r}: the state machine definition is {usage.definition_bytes:,} "
            f"bytes, over Step Functions' {MAX_DEFINITION_BYTES:,}-byte limit; {remedy}"
        )
    if usage.history_events > MAX_HISTORY_EVENTS:
        raise UserError(
            f"pipeline {pipeline!r}: one execution needs about {usage.history_events:,} history "
            f"events, over Step Functions' limit of {MAX_HISTORY_EVENTS:,}; {remedy}"
        )
    if usage.payload_bytes > MAX_PAYLOAD_BYTES:
        raise UserError(
            f"pipeline {pipeline!r}: exact mode would carry {usage.payload_bytes:,} bytes of job "
            f"IDs between states, over the {MAX_PAYLOAD_BYTES:,}-byte limit; use "
            "kedro-batch:orchestration structured, or " + remedy
        )
    return usage
