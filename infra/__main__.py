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

from infra.errors import UserError


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
        help="override one config key (bare KEY means kedro-batch:KEY; JSON for lists/objects)",
    )


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    overrides = dict(args.overrides)
    if args.project_dir is not None:
        overrides["projectDir"] = str(args.project_dir.resolve())
    return overrides


def _synth(args: argparse.Namespace) -> int:
    from infra import asl
    from infra.config import NAMESPACE, parse
    from infra.plan import plan
    from infra.synth import stack_config, synthesize, write

    overrides = _overrides(args)
    config = stack_config(args.stack, overrides)
    # Validate and load first: a bad input fails before anything is registered.
    deployment = plan(parse({k: v for k, v in config.items() if k.startswith(f"{NAMESPACE}:")}))
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
    print(f"wrote {out}/: {len(synthesis.resources)} resources")
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
        )
    )
    return 1 if "error" in report else 0


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
    local.set_defaults(handler=_local_run)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
