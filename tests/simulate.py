"""A success-path interpreter for the definitions the compiler emits.

It follows ``Next``/``End``, runs ``Parallel`` branches side by side and
Batch tasks for their node's duration, so tests can check what an execution
would do: which nodes run, how often, and when.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Run:
    """Start and finish time of each task, by the node names it runs."""

    spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)
    # exact mode: job key -> (nodes or None for a barrier, dependency keys)
    jobs: dict[str, tuple[str | None, list[str]]] = field(default_factory=dict)


def task_nodes(state: Mapping[str, Any]) -> str | None:
    command = state["Parameters"]["ContainerOverrides"]["Command"]
    if "--nodes" not in command:
        return None
    return command[command.index("--nodes") + 1]


def structured(
    definition: Mapping[str, Any],
    durations: Mapping[str, float],
    machines: Mapping[str, Mapping[str, Any]] | None = None,
) -> Run:
    """``machines``: ARN -> definition of the parts a split pipeline starts."""
    run = Run()
    _machine(definition, 0.0, durations, run, machines or {})
    return run


def _machine(
    machine: Mapping[str, Any],
    start: float,
    durations: Mapping[str, float],
    run: Run,
    machines: Mapping[str, Mapping[str, Any]],
) -> float:
    name = machine["StartAt"]
    clock = start
    while True:
        state = machine["States"][name]
        if state["Type"] == "Task" and "StateMachineArn" in state["Parameters"]:
            part = machines[state["Parameters"]["StateMachineArn"]]
            clock = _machine(part, clock, durations, run, machines)
        elif state["Type"] == "Task":
            nodes = task_nodes(state)
            assert nodes is not None
            finish = clock + sum(durations[n] for n in nodes.split(","))
            run.spans[nodes] = (clock, finish)
            run.runs.append(nodes)
            clock = finish
        elif state["Type"] == "Parallel":
            clock = max(_machine(b, clock, durations, run, machines) for b in state["Branches"])
        elif state["Type"] == "Choice":
            name = state["Default"]
            continue
        elif state["Type"] == "Fail":
            raise AssertionError(f"success path reached Fail state {name}")
        if state.get("End"):
            return clock
        name = state["Next"]


def exact(
    definition: Mapping[str, Any],
    machines: Mapping[str, Mapping[str, Any]] | None = None,
    run: Run | None = None,
) -> Run:
    """Collect the jobs exact mode submits and the DependsOn between them
    (through the parts a split pipeline runs, in order)."""
    run = run or Run()
    name = definition["StartAt"]
    while True:
        state = definition["States"][name]
        if state["Type"] == "Task" and "StateMachineArn" in state["Parameters"]:
            exact((machines or {})[state["Parameters"]["StateMachineArn"]], machines, run)
        elif state["Type"] == "Task":
            deps = [d["JobId.$"].split(".")[2] for d in state["Parameters"].get("DependsOn", [])]
            key = state["ResultPath"].split(".")[-1] if state.get("ResultPath") else "final"
            assert key not in run.jobs, f"job {key} submitted twice"
            for d in deps:
                assert d in run.jobs, f"{name} depends on {d}, not submitted yet"
            run.jobs[key] = (task_nodes(state), deps)
        elif state["Type"] == "Choice":
            name = state["Default"]
            continue
        if state.get("End"):
            return run
        name = state["Next"]


def node_ancestors(run: Run) -> dict[str, set[str]]:
    """For each node job of an exact run, the node jobs it waits for (through barriers)."""
    memo: dict[str, set[str]] = {}

    def nodes_behind(key: str) -> set[str]:
        if key not in memo:
            found: set[str] = set()
            for d in run.jobs[key][1]:
                nodes = run.jobs[d][0]
                found |= {nodes} if nodes is not None else nodes_behind(d)
            memo[key] = found
        return memo[key]

    return {nodes: nodes_behind(k) for k, (nodes, _) in run.jobs.items() if nodes is not None}
