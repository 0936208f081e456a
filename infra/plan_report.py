"""What the grouping decided, where decisions are reviewed: synth, preview, pull requests.

``synth`` prints :func:`summary` per pipeline and writes :func:`report` as
``plan.json`` next to the ASL; ``python -m infra plan-diff BASE.json PR.json``
renders two of them side by side (:func:`diff_markdown`) for the pull-request
comment, the way infracost shows money: what a change does to a run's time
and bill before anyone deploys it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from infra import asl
from infra.errors import UserError
from infra.grouping import Figures
from infra.plan import DeploymentPlan, PipelinePlan


def state_names(definitions: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """The ``--nodes`` value of every Task state -> that state's name."""
    found: dict[str, str] = {}
    for definition in definitions:
        for name, state in asl.iter_states(definition):
            command = state.get("Parameters", {}).get("ContainerOverrides", {}).get("Command")
            if isinstance(command, list) and "--nodes" in command:
                found[command[command.index("--nodes") + 1]] = name
    return found


def _figures(figures: Figures) -> dict[str, float | int]:
    return {
        "seconds": round(figures.seconds, 3),
        "billedJobSeconds": round(figures.billed_job_seconds, 3),
        "tasks": figures.tasks,
    }


def report(
    stack: str, deployment: DeploymentPlan, definitions: Iterable[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """``plan.json``: per pipeline the strategy, the tasks and the model's figures."""
    states = state_names(definitions)
    pipelines: dict[str, Any] = {}
    for name, pipeline in deployment.pipelines.items():
        grouping = pipeline.grouping
        if grouping is None:
            raise ValueError(f"pipeline {name!r} was planned without a grouping")
        pipelines[name] = {
            "grouping": grouping.strategy,
            "orchestration": pipeline.orchestration,
            "jobStartSeconds": grouping.job_start,
            "durationsKnown": grouping.durations_known,
            "nodes": len(pipeline.graph.nodes),
            "tasks": [
                {
                    "name": task.name,
                    "state": states.get(",".join(task.nodes)),
                    "nodes": list(task.nodes),
                    "seconds": round(grouping.seconds[task.name], 3),
                }
                for task in pipeline.tasks.tasks
            ],
            "expected": _figures(grouping.expected),
            "onePerNode": _figures(grouping.one_per_node),
        }
    return {"stack": stack, "pipelines": pipelines}


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def summary(pipeline: PipelinePlan) -> list[str]:
    """Lines ``synth`` and ``pulumi preview`` print for one pipeline: the
    model's verdict beside one task per node's, and the fused tasks."""
    grouping = pipeline.grouping
    if grouping is None:
        return []
    ours, base = grouping.expected, grouping.one_per_node
    basis = "measured durations" if grouping.durations_known else "durations unknown"
    lines = [
        f"grouping {grouping.strategy} ({basis}, {grouping.job_start:g} s start-up "
        f"per job): {ours.tasks} tasks, expected {_duration(ours.seconds)} and "
        f"{ours.billed_job_seconds / 60:.1f} billed job-minutes; one task per node: "
        f"{base.tasks} tasks, {_duration(base.seconds)}, "
        f"{base.billed_job_seconds / 60:.1f} job-minutes"
    ]
    fused = [t for t in pipeline.tasks.tasks if len(t.nodes) > 1]
    if fused:
        shown = ", ".join(f"{t.name} [{len(t.nodes)}]" for t in fused[:8])
        more = f", and {len(fused) - 8} more" if len(fused) > 8 else ""
        lines.append(f"  fused: {shown}{more}")
    return lines


def write(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def load(path: Path) -> dict[str, Any] | None:
    """A ``plan.json``, or ``None`` where there is none (a base branch from
    before it existed, or whose synth failed)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not a plan.json: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("pipelines"), dict):
        raise UserError(f"{path} is not a plan.json written by synth (no 'pipelines')")
    return data


def _change(before: float, after: float) -> str:
    if not before:
        return ""
    percent = 100 * (after - before) / before
    return "" if abs(percent) < 0.05 else f" ({percent:+.0f}%)"


def diff_markdown(base: Mapping[str, Any] | None, pr: Mapping[str, Any]) -> str:
    """Markdown: expected run time, billed job-minutes and tasks per pipeline,
    base branch beside this pull request (and one task per node's)."""
    stack = pr.get("stack", "")
    lines = [
        f"#### kedro-batch plan: stack `{stack}`",
        "",
        "| pipeline | | grouping | tasks | expected run | billed job-minutes |",
        "|---|---|---|---:|---:|---:|",
    ]
    before = (base or {}).get("pipelines", {})
    for name, after in pr["pipelines"].items():
        old = before.get(name)
        one = after["onePerNode"]
        lines.append(
            f"| `{name}` | one task per node | none | {one['tasks']} | "
            f"{_duration(one['seconds'])} | {one['billedJobSeconds'] / 60:.1f} |"
        )
        if old is not None:
            o = old["expected"]
            lines.append(
                f"| | base branch | {old['grouping']} | {o['tasks']} | "
                f"{_duration(o['seconds'])} | {o['billedJobSeconds'] / 60:.1f} |"
            )
        e = after["expected"]
        seconds_change = _change(old["expected"]["seconds"], e["seconds"]) if old else ""
        billed_change = (
            _change(old["expected"]["billedJobSeconds"], e["billedJobSeconds"]) if old else ""
        )
        lines.append(
            f"| | **this pull request** | {after['grouping']} | {e['tasks']} | "
            f"**{_duration(e['seconds'])}**{seconds_change} | "
            f"**{e['billedJobSeconds'] / 60:.1f}**{billed_change} |"
        )
    gone = [name for name in before if name not in pr["pipelines"]]
    lines.append("")
    if gone:
        lines.append(f"No longer deployed: {', '.join(f'`{n}`' for n in gone)}.")
    if base is None:
        lines.append("The base branch has no plan.json to compare with.")
    known = [n for n, p in pr["pipelines"].items() if p.get("durationsKnown")]
    lines.append(
        "Model figures (`jobStartSeconds` per job, then each node's duration): "
        + (
            f"measured durations for {', '.join(f'`{n}`' for n in known)}."
            if known
            else "no measured durations yet (`python -m infra status RUN --durations FILE`)."
        )
    )
    return "\n".join(lines) + "\n"
