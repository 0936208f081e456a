"""``kedro-batch-task``: the command every Batch job of a deployment runs.

``kedro-batch-task --nodes a.b,c.d`` runs those nodes of the deployed
pipeline in one KedroSession (contract 4 of DESIGN.md: ``--nodes`` is
followed by one comma-separated element); ``kedro-batch-task --barrier``
exits at once (the barrier jobs of exact orchestration). Everything that
changes per run comes from the environment (:mod:`kedro_batch_runtime.settings`).

Exit status: 0 on success, 1 when a node (or the session around it) fails,
naming the node on the last line of stderr, 2 when the environment or the
command line is wrong.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from kedro_batch_runtime import records
from kedro_batch_runtime.credentials import ENV_CREDENTIALS
from kedro_batch_runtime.settings import RunConfigError, RunSettings

PROG = "kedro-batch-task"
EXIT_FAILED = 1
EXIT_USAGE = 2
# kedro-telemetry phones home from every session; a batch job must not.
QUIET_KEDRO_ENV = {"DO_NOT_TRACK": "1", "KEDRO_DISABLE_TELEMETRY": "true"}
ENV_PROJECT_DIR = "KEDRO_BATCH_PROJECT_DIR"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Run Kedro nodes as one task of a kedro-batch run."
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--nodes", help="comma-separated, fully-qualified Kedro node names")
    what.add_argument("--barrier", action="store_true", help="do nothing, successfully")
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help=f"the Kedro project (default: ${ENV_PROJECT_DIR}, else the working directory)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.barrier:
        return 0
    nodes = [n.strip() for n in args.nodes.split(",") if n.strip()]
    log = _logger()
    if not nodes:
        log.error("--nodes names no node")
        return EXIT_USAGE
    # First thing, before Kedro is imported: the container is running now.
    records.write(sys.stderr, "task-start", nodes=nodes)
    code = _main(args, nodes, log)
    if code == 0:
        records.write(sys.stderr, "task-end", status="SUCCEEDED")
    return code


def _fail(log: logging.Logger, code: int, message: str) -> int:
    """End a failed task: its record, then one line naming the culprit, last in the log."""
    records.write(sys.stderr, "task-end", status="FAILED")
    log.error("%s", message)
    return code


def _main(args: argparse.Namespace, nodes: list[str], log: logging.Logger) -> int:
    try:
        run = RunSettings.from_environ(os.environ)
    except RunConfigError as exc:
        return _fail(log, EXIT_USAGE, str(exc))
    project = args.project_dir or Path(os.environ.get(ENV_PROJECT_DIR) or Path.cwd())
    for key, value in QUIET_KEDRO_ENV.items():
        os.environ.setdefault(key, value)
    # Taken out of the environment: the nodes, and whatever they start, need
    # not see the whole credentials document.
    credentials = os.environ.pop(ENV_CREDENTIALS, None) or None
    return run_task(project.resolve(), nodes, run, log, credentials)


def run_task(
    project: Path,
    nodes: list[str],
    run: RunSettings,
    log: logging.Logger,
    credentials: str | None = None,
) -> int:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from kedro_batch_runtime.hooks import hooks

    log.info("run %s, version %s: nodes %s", run.run_id, run.version, ", ".join(nodes))
    hooks.activate(run, nodes, credentials)
    try:
        bootstrap_project(project)
        _check_hook_enabled()
        session = KedroSession.create(project_path=project, runtime_params=run.runtime_params)
        with session:
            session.run(pipeline_names=[run.pipeline], node_names=nodes)
    except RunConfigError as exc:
        return _fail(log, EXIT_USAGE, str(exc))
    except Exception as exc:
        traceback.print_exc()
        running = hooks.running()
        if running:
            hooks.failed(running[0], exc)
        where = (
            f"node {running[0]} failed after {running[1]:.2f}s"
            if running
            else "the task failed before its first node started"
        )
        # One line, so the last line of the job's log always names the culprit.
        message = " ".join(str(exc).split())
        return _fail(log, EXIT_FAILED, f"{where}: {type(exc).__name__}: {message}")
    finally:
        hooks.deactivate()
    return 0


def _check_hook_enabled() -> None:
    from kedro.framework.project import settings

    from kedro_batch_runtime.hooks import DISTRIBUTION

    if DISTRIBUTION in settings.DISABLE_HOOKS_FOR_PLUGINS:
        # Without the hook, data would go where the project's own paths point.
        raise RunConfigError(
            f"the project's settings.py lists {DISTRIBUTION!r} in DISABLE_HOOKS_FOR_PLUGINS, "
            "so its tasks cannot share data; remove it there"
        )


def _logger() -> logging.Logger:
    """The runtime's log lines, on stderr whatever the project's logging config says."""
    log = logging.getLogger("kedro_batch_runtime")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(f"%(asctime)s {PROG}: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log
