"""The local interpreter honours Parallel, Retry, Catch and DependsOn."""

from __future__ import annotations

import json
import threading
import time

import pytest
from hypothesis import given, settings

from infra import asl
from infra.local_interpreter import (
    ExecutionFailed,
    Interpreter,
    Job,
    LocalBatch,
    StateError,
    read_path,
)
from tests.test_asl import JOBDEF, QUEUE, dags, graph

CONTEXT = {"Execution": {"Name": "run-1", "StartTime": "2026-11-26T22:34:40.123Z"}}


class Recorder:
    """A fake container: records when each job's nodes ran."""

    def __init__(self, fail: set[str] = frozenset(), delay: float = 0.0) -> None:
        self.fail = fail
        self.delay = delay
        self.spans: dict[str, tuple[float, float]] = {}
        self.envs: dict[str, dict[str, str]] = {}
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0

    def __call__(self, job: Job) -> tuple[int, str]:
        overrides = job.params["ContainerOverrides"]
        command = overrides["Command"]
        if "--nodes" not in command:
            return 0, ""
        nodes = command[command.index("--nodes") + 1]
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        start = time.monotonic()
        time.sleep(self.delay)
        with self.lock:
            self.running -= 1
            self.spans[nodes] = (start, time.monotonic())
            self.envs[nodes] = {e["Name"]: e["Value"] for e in overrides["Environment"]}
        return (1, "exit 1") if nodes in self.fail else (0, "")


def run(definition, recorder: Recorder, params=None, max_parallel: int = 4):
    batch = LocalBatch(recorder, max_parallel)
    try:
        return Interpreter(definition, batch, CONTEXT, sleep=lambda _s: None).run(
            {} if params is None else {"params": params}
        )
    finally:
        batch.shutdown()


@settings(max_examples=25, deadline=None)
@given(g=dags(max_nodes=14))
def test_both_modes_run_every_node_once_after_its_parents(g):
    for mode in asl.MODES:
        recorder = Recorder(delay=0.002)
        definition = asl.build_definition(g, job_queue=QUEUE, job_definition=JOBDEF, mode=mode)
        run(definition, recorder)
        assert sorted(recorder.spans) == sorted(g.node_names)
        for node, parents in g.parents.items():
            for p in parents:
                assert recorder.spans[p][1] <= recorder.spans[node][0], (mode, p, node)


def test_params_and_run_id_reach_every_task():
    recorder = Recorder()
    definition = asl.build_definition(
        graph({"a": [], "b": ["a"]}), job_queue=QUEUE, job_definition=JOBDEF
    )
    run(definition, recorder, params={"train": {"alpha": 0.5}})
    for env in recorder.envs.values():
        assert env[asl.ENV_RUN_ID] == "run-1"
        assert env[asl.ENV_PARAMS] == '{"train":{"alpha":0.5}}'
        assert env[asl.ENV_RUN_STARTED] == "2026-11-26T22:34:40.123Z"


def test_max_parallel_bounds_concurrent_jobs():
    recorder = Recorder(delay=0.05)
    wide = graph({f"n{i}": [] for i in range(8)})
    run(
        asl.build_definition(wide, job_queue=QUEUE, job_definition=JOBDEF), recorder, max_parallel=2
    )
    assert recorder.peak == 2


@pytest.mark.parametrize("mode", asl.MODES)
def test_failed_node_fails_the_execution_and_stops_the_rest(mode: str):
    recorder = Recorder(fail={"b"}, delay=0.01)
    g = graph({"a": [], "b": ["a"], "c": ["b"], "d": ["a"]})
    definition = asl.build_definition(g, job_queue=QUEUE, job_definition=JOBDEF, mode=mode)
    with pytest.raises(ExecutionFailed) as info:
        run(definition, recorder)
    assert "c" not in recorder.spans
    if mode == "structured":
        assert info.value.error == "States.TaskFailed"
        assert json.loads(info.value.cause)["Container"]["Command"][2] == "b"
    else:
        assert info.value.error == asl.FAILED_PIPELINE_ERROR
        # Named like structured mode names it: the job Batch failed for its
        # own reason, not the ones failed because it did.
        assert info.value.cause.startswith("Kedro node(s) b failed (exit 1)"), info.value.cause


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        ("Batch.AWSBatchException", "Too Many Requests (Service: AWSBatch; Status Code: 429)"),
        ("Batch.BatchException", "Too Many Requests (Service: Batch, Status Code: 429)"),
        ("Batch.ServerException", "Failed to create shareIdentifier (Status Code: 500)"),
        ("Batch.TooManyRequestsException", "Too Many Requests"),
    ],
)
def test_retry_retries_throttling_and_server_errors_then_succeeds(error, cause):
    attempts = []

    class Flaky(LocalBatch):
        def submit(self, params):
            attempts.append(1)
            if len(attempts) < 3:
                raise StateError(error, cause)
            return super().submit(params)

    batch = Flaky(Recorder(), 2)
    definition = asl.build_definition(graph({"a": []}), job_queue=QUEUE, job_definition=JOBDEF)
    Interpreter(definition, batch, CONTEXT, sleep=lambda _s: None).run({})
    batch.shutdown()
    assert len(attempts) == 3


def test_a_rejected_submission_is_not_retried():
    attempts = []

    class Rejecting(LocalBatch):
        def submit(self, params):
            attempts.append(1)
            raise StateError("Batch.ClientException", "Job definition is inactive")

    batch = Rejecting(Recorder(), 2)
    definition = asl.build_definition(graph({"a": []}), job_queue=QUEUE, job_definition=JOBDEF)
    with pytest.raises(ExecutionFailed) as info:
        Interpreter(definition, batch, CONTEXT, sleep=lambda _s: None).run({})
    batch.shutdown()
    assert info.value.error == "Batch.ClientException"
    assert len(attempts) == 1


def test_intrinsics_used_by_the_compiler():
    data = {"params": {"a": 1}, "error": {"Cause": "boom"}}
    assert read_path("States.JsonToString($.params)", data, CONTEXT) == '{"a":1}'
    assert (
        read_path(r"States.Format('node {} said: {}', 'it\'s', $.error.Cause)", data, CONTEXT)
        == "node it's said: boom"
    )
    assert read_path("$$.Execution.Name", data, CONTEXT) == "run-1"


def test_parameters_too_large_for_batch_fail_before_any_job():
    recorder = Recorder()
    definition = asl.build_definition(
        graph({"a": [], "b": ["a"]}), job_queue=QUEUE, job_definition=JOBDEF, params_room=100
    )
    run(definition, recorder, params={"k": "x" * 80})  # fits
    assert sorted(recorder.spans) == ["a", "b"]
    recorder = Recorder()
    with pytest.raises(ExecutionFailed) as info:
        run(definition, recorder, params={"k": 'x"\\' * 40})  # quotes count twice
    assert info.value.error == asl.PARAMS_TOO_LARGE_ERROR
    assert recorder.spans == {}
