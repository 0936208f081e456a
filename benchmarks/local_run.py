"""Wall time of ``local-run`` against a plain ``kedro run`` of the same project.

    python benchmarks/local_run.py [--stack dev] [--repeat 3] [--max-parallel N]
        [--project-dir DIR] [-c KEY=VALUE]...

``kedro run`` executes every node in one process, in the project's
image-like environment (the one local-run's tasks use, :mod:`infra.task_env`);
``local-run`` executes the deployed state machine: a fresh process and
project copy per task, data
through an embedded S3. The difference divided by the number of tasks is the
per-task overhead a deployment adds (before Batch's own scheduling and
container start-up, which this machine cannot measure).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402

from infra.local_run import Options, local_run  # noqa: E402
from infra.task_env import environ, task_env  # noqa: E402

ENV = {**os.environ, "DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "true"}


def kedro_run(project: Path, env_name: str | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "project"
        shutil.copytree(project, copy)
        python = task_env(project)
        command = [str(python.bin / "kedro"), "run"]
        if env_name:
            command += ["--env", env_name]
        started = time.perf_counter()
        subprocess.run(command, cwd=copy, env=environ(python, ENV), check=True, capture_output=True)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-parallel", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--project-dir", type=Path, help="another Kedro project (e.g. a fixture)")
    parser.add_argument("-c", dest="config", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    from infra.plan import plan
    from infra.synth import stack_settings

    overrides = dict(item.split("=", 1) for item in args.config)
    if args.project_dir:
        overrides["projectDir"] = str(args.project_dir.resolve())
    settings = stack_settings(args.stack, overrides)
    deployment = plan(settings)
    pipeline = deployment.pipelines[settings.pipelines[0]]
    tasks = len(pipeline.tasks.tasks)

    plain = [kedro_run(deployment.project.path, settings.kedro_env) for _ in range(args.repeat)]
    local = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        report = local_run(
            Options(stack=args.stack, overrides=overrides, max_parallel=args.max_parallel),
            console=Console(file=StringIO()),
        )
        local.append(time.perf_counter() - started)
        assert "error" not in report, report["error"]

    plain_s, local_s = statistics.median(plain), statistics.median(local)
    print(
        f"project {deployment.project.package_name}, pipeline {pipeline.name}: "
        f"{len(pipeline.graph.nodes)} nodes in {tasks} tasks, {settings.orchestration}, "
        f"max parallel {args.max_parallel}, {os.cpu_count()} CPUs, median of {args.repeat}"
    )
    print(f"{'kedro run':<28}{plain_s:8.1f} s")
    print(f"{'local-run (state machine)':<28}{local_s:8.1f} s")
    print(f"{'overhead per task':<28}{(local_s - plain_s) / tasks:8.2f} s")


if __name__ == "__main__":
    main()
