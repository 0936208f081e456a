"""Command line: ``python -m infra <command>`` (contract 2 of DESIGN.md).

User errors exit with status 2 and one line on stderr naming the culprit
and the fix; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from infra.errors import UserError

if TYPE_CHECKING:
    from infra.ops import Aws


def _override(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", default="dev", help="stack whose Pulumi.<stack>.yaml to use")
    parser.add_argument(
        "--project-dir",
        type=Path,
        help="Kedro project to deploy (overrides kedro-batch:projectDir)",
    )
    parser.add_argument(
        "-c",
        "--config",
        dest="overrides",
        type=_override,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=(
            "override one config key (bare KEY means kedro-batch:KEY; JSON for lists and "
            "objects; an empty VALUE restores the default)"
        ),
    )


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    overrides = dict(args.overrides)
    if args.project_dir is not None:
        overrides["projectDir"] = str(args.project_dir.resolve())
    return overrides


def _synth(args: argparse.Namespace) -> int:
    from infra import asl, plan_report
    from infra.plan import plan
    from infra.synth import stack_settings, synthesize, write

    overrides = _overrides(args)
    # Validate and load first: a bad input fails before anything is registered.
    deployment = plan(stack_settings(args.stack, overrides))
    synthesis = synthesize(args.stack, overrides)
    out = args.out or Path("build") / args.stack
    write(synthesis, out)
    for name, definition in synthesis.definitions.items():
        pipeline = deployment.pipelines[name]
        usage = asl.limits(definition)
        print(
            f"{name}: {len(pipeline.graph.nodes)} nodes in {len(pipeline.tasks.tasks)} tasks "
            f"({pipeline.orchestration}); structure/critical path "
            f"{pipeline.structure_ratio():.2f} at equal durations; {usage.states} states, "
            f"{usage.definition_bytes / 1024:.1f} KiB, ~{usage.history_events} history events"
        )
        for line in plan_report.summary(pipeline):
            print(f"  {line}")
    plan_report.write(
        out / "plan.json",
        plan_report.report(args.stack, deployment, synthesis.machines.values()),
    )
    print(f"wrote {out}/: {len(synthesis.resources)} resources, plan.json")
    return 0


def _plan_diff(args: argparse.Namespace) -> int:
    from infra import plan_report

    pr = plan_report.load(args.pr)
    if pr is None:
        raise UserError(f"no plan.json at {args.pr}; run python -m infra synth first")
    print(plan_report.diff_markdown(plan_report.load(args.base), pr), end="")
    return 0


def _local_run(args: argparse.Namespace) -> int:
    from infra.local_run import Options, local_run, parse_params

    report = local_run(
        Options(
            stack=args.stack,
            overrides=_overrides(args),
            pipeline=args.pipeline,
            params=parse_params(args.params),
            report=args.report,
            keep=args.keep,
            max_parallel=args.max_parallel,
            timeline=args.timeline,
        )
    )
    return 1 if "error" in report else 0


def _aws(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", help="AWS region (default: the ARN's, else your AWS config)")
    parser.add_argument(
        "--endpoint-url", help="AWS endpoint to talk to instead of AWS's (e.g. an emulator)"
    )
    parser.add_argument(
        "--interval",
        type=_seconds,
        default=5.0,
        help="seconds between polls while following (default 5)",
    )


def _connection(args: argparse.Namespace) -> Aws:
    from infra.ops import Aws

    return Aws(region=args.region, endpoint_url=args.endpoint_url)


def _run(args: argparse.Namespace) -> int:
    from infra.local_run import parse_params
    from infra.ops import RunRequest, run

    request = RunRequest(
        stack=args.stack,
        pipeline=args.pipeline,
        params=parse_params(args.params),
        follow=args.follow,
        state_machine_arn=args.state_machine_arn,
        name=args.name,
        interval=args.interval,
        aws=_connection(args),
    )
    return run(request)


def _status(args: argparse.Namespace) -> int:
    from infra.ops import status

    return status(
        args.execution_arn,
        aws=_connection(args),
        durations=args.durations,
        follow=args.follow,
        interval=args.interval,
        timeline_file=args.timeline,
        plan=args.plan,
    )


def _redrive(args: argparse.Namespace) -> int:
    from infra.ops import redrive

    return redrive(
        args.execution_arn,
        aws=_connection(args),
        follow=args.follow,
        interval=args.interval,
    )


def _seconds(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    synth = commands.add_parser("synth", help="run the Pulumi program offline; write ASL, diagrams")
    _common(synth)
    synth.add_argument("--out", type=Path, help="output directory (default build/<stack>/)")
    synth.set_defaults(handler=_synth)
    diff = commands.add_parser(
        "plan-diff",
        help="Markdown: two synth plan.json files side by side (run time, bill, tasks)",
    )
    diff.add_argument("base", type=Path, metavar="BASE.json", help="the base branch's plan.json")
    diff.add_argument("pr", type=Path, metavar="PR.json", help="the pull request's plan.json")
    diff.set_defaults(handler=_plan_diff)
    local = commands.add_parser(
        "local-run", help="run a pipeline end to end here, through its state machine"
    )
    _common(local)
    local.add_argument("--pipeline", help="pipeline to run (default: the stack's first)")
    local.add_argument("--params", help="runtime parameters, k=v,a.b=v (as kedro run --params)")
    local.add_argument("--report", type=Path, help="write a JSON report of the run here")
    local.add_argument("--keep", type=Path, help="copy the bucket's contents to this directory")
    local.add_argument(
        "--max-parallel",
        type=_positive,
        default=os.cpu_count() or 2,
        help="most tasks running at once (default: CPU count)",
    )
    local.add_argument(
        "--timeline",
        type=Path,
        metavar="FILE.html",
        help="write the run's timeline (one self-contained HTML file) here",
    )
    local.set_defaults(handler=_local_run)
    start = commands.add_parser("run", help="run a deployed pipeline on AWS (start an execution)")
    start.add_argument("--stack", default="dev", help="stack whose outputs name the state machine")
    start.add_argument(
        "--pipeline", help="pipeline to run (default: the stack's only or __default__)"
    )
    start.add_argument("--params", help="runtime parameters, k=v,a.b=v (as kedro run --params)")
    start.add_argument("--follow", action="store_true", help="watch it; exit 1 if it fails")
    start.add_argument("--state-machine-arn", help="run this state machine (no pulumi CLI needed)")
    start.add_argument("--name", help="execution name, the Kedro run id (default: generated)")
    _aws(start)
    start.set_defaults(handler=_run)
    show = commands.add_parser("status", help="node by node state of an execution")
    show.add_argument("execution_arn", metavar="EXECUTION_ARN")
    show.add_argument(
        "--durations",
        type=Path,
        metavar="FILE",
        help=(
            "write measured seconds per node (.json or .yaml) for kedro-batch:durations, "
            "and print the measured job start-up for kedro-batch:jobStartSeconds"
        ),
    )
    show.add_argument(
        "--timeline",
        type=Path,
        metavar="FILE.html",
        help="write the execution's timeline (one self-contained HTML file) here",
    )
    show.add_argument(
        "--plan",
        type=Path,
        metavar="FILE",
        help="synth's plan.json: shows the model's expected run time on the timeline",
    )
    show.add_argument("--follow", action="store_true", help="watch it until it ends")
    _aws(show)
    show.set_defaults(handler=_status)
    again = commands.add_parser(
        "redrive", help="re-run only the failed or aborted nodes of an execution"
    )
    again.add_argument("execution_arn", metavar="EXECUTION_ARN")
    again.add_argument("--follow", action="store_true", help="watch it; exit 1 if it fails")
    _aws(again)
    again.set_defaults(handler=_redrive)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
