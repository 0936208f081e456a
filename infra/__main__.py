"""kedro-batch: check, run and operate a Kedro project deployed to AWS Batch.

Offline: `synth` writes the state machines and resources `pulumi up` would
deploy; `local-run` runs a pipeline end to end here, through its state machine.
On AWS: `run`, `status` and `redrive`. Mistakes exit with status 2 and one
line naming the culprit and the fix (add --verbose for the full traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from infra.errors import UserError

if TYPE_CHECKING:
    from infra.datasets import MovedDataset
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
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="on a mistake in the project, print the full traceback too",
    )


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    overrides = dict(args.overrides)
    if args.project_dir is not None:
        overrides["projectDir"] = str(args.project_dir.resolve())
    return overrides


def _synth(args: argparse.Namespace) -> int:
    from infra import asl, plan_report
    from infra.components.image import build_inputs, describe
    from infra.datasets import moved_datasets
    from infra.kedro_project import loaded
    from infra.plan import plan
    from infra.synth import clear, stack_settings, synthesize, write

    overrides = _overrides(args)
    out = args.out or Path("build") / args.stack
    # A failed synth must not leave the last one's files to be taken for its own.
    clear(out)
    # Validate and load first: a bad input fails before anything is registered.
    deployment = plan(stack_settings(args.stack, overrides))
    print(loaded(deployment.project))
    left_out = deployment.project.left_out.warning()
    if left_out:
        print(f"warning: {left_out}", file=sys.stderr)
    synthesis = synthesize(args.stack, overrides)
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
        if deployment.settings.intermediates != "error":
            for line in _data_lines(
                moved_datasets(pipeline.graph, deployment.settings.dataset_access)
            ):
                print(f"  {line}")
    settings = deployment.settings
    build = build_inputs(
        deployment.project.path,
        build_on_preview=settings.build_on_preview,
        java=deployment.uses_spark,
    )
    print(describe(build))
    tracking = deployment.tracking
    print(tracking.describe() if tracking else "MLflow tracking: off")
    for warning in tracking.warnings if tracking else ():
        print(f"warning: {warning}", file=sys.stderr)
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


def _data_lines(moved: Sequence[MovedDataset]) -> list[str]:
    """What ``synth`` says about local data: what is staged and why, and where
    absolute paths go (relative ones mirror the project, as documented)."""
    from kedro_batch_runtime.access import Access
    from kedro_batch_runtime.layout import DataLayout

    layout = DataLayout("<bucket>", "<run id>")
    staged = [m for m in moved if m.decision.access is Access.STAGE]
    absolute = [m for m in moved if m.absolute]
    lines = []
    if staged:
        lines.append(f"staged through the task's disk ({len(staged)}):")
        lines += [f"  {m.name}: {m.decision.reason}" for m in staged]
    if absolute:
        lines.append(f"absolute paths moved into the bucket ({len(absolute)}):")
        lines += [
            f"  {m.name}: {m.filepath} -> {m.location(layout, '<version>')}" for m in absolute
        ]
    return lines


def _local_run(args: argparse.Namespace) -> int:
    from infra.local_run import Interrupted, Options, local_run, parse_params

    try:
        report = local_run(
            Options(
                stack=args.stack,
                overrides=_overrides(args),
                pipeline=args.pipeline,
                params=parse_params(args.params),
                report=args.report,
                keep=args.keep,
                max_parallel=args.max_parallel,
                logs=args.logs,
                timeline=args.timeline,
            )
        )
    except Interrupted as exc:
        print(
            f"interrupted ({exc}): task processes ended, embedded S3 stopped, "
            "temporary files removed",
            file=sys.stderr,
        )
        return 128 + exc.signum  # what a shell reports for a process ended by that signal
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
        "--logs",
        type=Path,
        help="keep each task's log here (<job name>.log; the report links them)",
    )
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
    if getattr(args, "verbose", False):
        from infra.kedro_project import VERBOSE_ENV

        os.environ[VERBOSE_ENV] = "1"  # the project loader's subprocess reads it
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:  # before local-run's own handling, or another command
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as exc:
        if getattr(args, "verbose", False):
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
