"""Cross-check in an independent engine: moto's Step Functions interpreter.

The example's definitions run with Batch emulated by moto: the same Batch
jobs must be submitted, with the same commands, and in exact mode with the
``DependsOn`` DAG of ``node_dependencies``; a failing job fails the
execution with the node named.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from infra import asl
from infra.config import parse
from infra.graph import PipelineGraph, TaskGraph, one_task_per_node
from infra.grouping import group
from infra.kedro_project import load_project
from infra.layout import Layout
from infra.overrides import params_length
from infra.plan import cost_model, node_seconds
from tests import moto_sfn

ROOT = Path(__file__).resolve().parent.parent

# moto's Step Functions engine starts a task-token watcher thread for .sync
# tasks that pops the wrong value off its stack and raises after the task has
# finished; the execution itself is unaffected.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")


@pytest.fixture(scope="module")
def example() -> PipelineGraph:
    return load_project(ROOT / "example").pipelines["__default__"]


def execute(
    graph: PipelineGraph,
    mode: str,
    params: dict | None = None,
    tasks: TaskGraph | None = None,
    layout: Layout | None = None,
    **options,
):
    """Run the definition in moto (``tasks`` and their ``layout``, else one task
    per node; ``options`` for the compiler); return (execution, jobs by node list)."""
    with mock_aws(config=moto_sfn.MOTO_CONFIG), moto_sfn.patched_moto():
        batch = boto3.client("batch", region_name=moto_sfn.REGION)
        iam = boto3.client("iam", region_name=moto_sfn.REGION)
        sfn = boto3.client("stepfunctions", region_name=moto_sfn.REGION)
        ec2 = boto3.client("ec2", region_name=moto_sfn.REGION)
        queue, jobdef = moto_sfn.batch_environment(batch, iam, ec2)
        machines = asl.build_machines(
            graph,
            job_queue=queue,
            job_definition=jobdef,
            mode=mode,
            pipeline_name=graph.name,
            groups=[t.nodes for t in tasks.tasks] if tasks else None,
            layout=layout,
            **options,
        )
        arns: dict[str, str] = {}
        for m in machines:  # parts first: their parent needs their ARNs
            machine = sfn.create_state_machine(
                name=f"kedro-{mode}{'-' + m.key if m.key else ''}",
                definition=json.dumps(m.definition(arns)),
                roleArn="arn:aws:iam::123456789012:role/sfn",
            )
            arns[m.key] = machine["stateMachineArn"]
        started = sfn.start_execution(
            stateMachineArn=arns[""],
            name=f"run-{mode}",
            input=json.dumps({"params": params} if params is not None else {}),
        )
        result = moto_sfn.wait(sfn, started["executionArn"])
        summaries = [
            j
            for status in ("SUCCEEDED", "FAILED", "RUNNING", "RUNNABLE", "PENDING", "SUBMITTED")
            for j in batch.list_jobs(jobQueue=queue, jobStatus=status)["jobSummaryList"]
        ]
        ids = [j["jobId"] for j in summaries]
        jobs = [
            d
            for i in range(0, len(ids), 100)
            for d in batch.describe_jobs(jobs=ids[i : i + 100])["jobs"]
        ]
    return result, jobs


def node_dependencies(jobs: list[dict]) -> dict[str, set[str]]:
    """Node -> the nodes Batch made it wait for (``dependsOn``, through barriers)."""
    by_id = {j["jobId"]: j for j in jobs}

    def node_parents(job: dict) -> set[str]:
        found: set[str] = set()
        for dep in job.get("dependsOn", []):
            parent = by_id[dep["jobId"]]
            nodes = nodes_of(parent)
            found |= {nodes} if nodes else node_parents(parent)
        return found

    return {n: node_parents(j) for j in jobs if (n := nodes_of(j))}


def nodes_of(job: dict) -> str | None:
    command = job["container"]["command"]
    return command[command.index("--nodes") + 1] if "--nodes" in command else None


@pytest.mark.parametrize("mode", asl.MODES)
def test_example_runs_every_node_once_with_its_command(example: PipelineGraph, mode: str):
    result, jobs = execute(example, mode, params={"train": {"model": {"alpha": 0.5}}})
    assert result["status"] == "SUCCEEDED", result
    ran = sorted(n for n in map(nodes_of, jobs) if n)
    assert ran == sorted(example.node_names)
    for job in jobs:
        env = {e["name"]: e["value"] for e in job["container"]["environment"]}
        assert env[asl.ENV_RUN_ID] == f"run-{mode}"
        assert json.loads(env[asl.ENV_PARAMS]) == {"train": {"model": {"alpha": 0.5}}}


def test_exact_mode_hands_batch_the_node_dependencies(example: PipelineGraph):
    result, jobs = execute(example, "exact")
    assert result["status"] == "SUCCEEDED", result
    assert node_dependencies(jobs) == {n: set(ps) for n, ps in example.parents.items()}


def test_empty_input_runs_with_empty_params(example: PipelineGraph):
    result, jobs = execute(example, "structured")
    assert result["status"] == "SUCCEEDED"
    env = {e["name"]: e["value"] for e in jobs[0]["container"]["environment"]}
    assert json.loads(env[asl.ENV_PARAMS]) == {}


def test_failing_job_fails_the_execution_naming_the_node(
    example: PipelineGraph, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    result, _ = execute(example, "structured")
    assert result["status"] == "FAILED"
    assert result["error"] == "States.TaskFailed"
    # The cause is the failed job's description; its command names the node.
    command = json.loads(result["cause"])["Container"]["Command"]
    first = [n.name for n in example.nodes if not example.parents[n.name]]
    assert command[:2] == ["kedro-batch-task", "--nodes"] and command[2] in first


def test_exact_mode_names_the_failed_node_in_the_cause(
    example: PipelineGraph, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    result, _ = execute(example, "exact")
    assert result["status"] == "FAILED"
    assert result["error"] == asl.FAILED_PIPELINE_ERROR
    # Every job fails in moto here, in submission order; the named ones are
    # those Batch failed for their own reason (moto gives none of them the
    # "Dependent Job failed" reason AWS gives their dependants).
    cause = result["cause"]
    assert cause.startswith("Kedro node(s) ") and " failed (" in cause, cause
    named = cause.removeprefix("Kedro node(s) ").split(" failed (")[0].split(", ")
    assert set(named) <= set(example.node_names) and named


def test_split_pipeline_runs_its_parts_as_child_executions(
    example: PipelineGraph, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(asl, "SPLIT_BYTES", 8_000)  # the example, in several parts
    assert len(asl.build_machines(example, job_queue="q", job_definition="d")) > 2
    result, jobs = execute(example, "structured", params={"a": 1})
    assert result["status"] == "SUCCEEDED", result
    assert sorted(n for n in map(nodes_of, jobs) if n) == sorted(example.node_names)
    for job in jobs:  # the parent's run id and params reach every part's jobs
        env = {e["name"]: e["value"] for e in job["container"]["environment"]}
        assert env[asl.ENV_RUN_ID] == "run-structured"
        assert json.loads(env[asl.ENV_PARAMS]) == {"a": 1}


def test_failure_inside_a_part_fails_the_parent_naming_the_node(
    example: PipelineGraph, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(asl, "SPLIT_BYTES", 8_000)
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    result, _ = execute(example, "structured")
    assert result["status"] == "FAILED"
    assert result["error"] == "States.TaskFailed"
    part = json.loads(result["cause"])  # the failed part's execution ...
    assert part["Status"] == "FAILED" and part["Error"] == "States.TaskFailed"
    command = json.loads(part["Cause"])["Container"]["Command"]  # ... and its failed job
    assert command[2] in {n.name for n in example.nodes if not example.parents[n.name]}


def test_exact_mode_split_hands_job_ids_from_part_to_part(
    example: PipelineGraph, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(asl, "SPLIT_PAYLOAD", asl.JOB_ID_BYTES * 5)  # parts of 5 jobs
    assert len(asl.build_machines(example, job_queue="q", job_definition="d", mode="exact")) > 3
    result, jobs = execute(example, "exact")
    assert result["status"] == "SUCCEEDED", result
    assert node_dependencies(jobs) == {n: set(ps) for n, ps in example.parents.items()}


@pytest.mark.parametrize("mode", asl.MODES)
def test_parameters_batch_would_refuse_fail_the_execution_before_any_job(
    example: PipelineGraph, mode: str
):
    room = params_length({"alpha": "x" * 50})
    result, jobs = execute(example, mode, params={"alpha": "x" * 51}, params_room=room)
    assert result["status"] == "FAILED"
    assert result["error"] == asl.PARAMS_TOO_LARGE_ERROR
    assert "8,192 characters of container overrides" in result["cause"]
    assert jobs == []
    result, jobs = execute(example, mode, params={"alpha": "x" * 50}, params_room=room)
    assert result["status"] == "SUCCEEDED", result


# Measured durations that make auto fuse some nodes and keep others apart.
MEASURED = {
    "ingest.clean_sales": 300.0,
    "features.build_lag_features": 200.0,
    "features.build_price_features": 200.0,
    "train.fit_ridge_model": 900.0,
    "report.forecast_next_week": 120.0,
}


@pytest.mark.parametrize("mode", asl.MODES)
@pytest.mark.parametrize("strategy", ["auto", "auto-measured", "namespace"])
def test_every_strategy_runs_every_node_once_after_its_dependencies(
    example: PipelineGraph, mode: str, strategy: str
):
    durations = MEASURED if strategy == "auto-measured" else {}
    settings = parse(
        {"grouping": strategy.split("-")[0], "orchestration": mode, "durations": durations}
    )
    model = cost_model(settings, example, node_seconds(example, durations))
    chosen = group(example, one_task_per_node(example), settings.grouping, model)
    if strategy != "none":
        assert len(chosen.tasks.tasks) < len(example.nodes)
    result, jobs = execute(example, mode, tasks=chosen.tasks, layout=chosen.layout)
    assert result["status"] == "SUCCEEDED", result
    job_of = {n: j for j in jobs if (ns := nodes_of(j)) for n in ns.split(",")}
    ran = [n for j in jobs if (ns := nodes_of(j)) for n in ns.split(",")]
    assert sorted(ran) == sorted(example.node_names)  # each node once
    assert sorted(map(nodes_of, [j for j in jobs if nodes_of(j)])) == sorted(
        ",".join(t.nodes) for t in chosen.tasks.tasks
    )
    for child, parents in example.parents.items():
        for parent in parents:
            if job_of[parent] is job_of[child]:  # Kedro runs them in this order
                nodes = nodes_of(job_of[child]).split(",")
                assert nodes.index(parent) < nodes.index(child)
            elif mode == "structured":  # submitted once the parent's job has finished
                assert job_of[parent]["stoppedAt"] <= job_of[child]["createdAt"]
    if mode == "exact":
        by_name = {t.name: ",".join(t.nodes) for t in chosen.tasks.tasks}
        assert node_dependencies(jobs) == {
            by_name[t]: {by_name[p] for p in ps} for t, ps in chosen.tasks.parents.items()
        }
