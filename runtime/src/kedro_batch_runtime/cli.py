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
from typing import Any

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


def _nodes_value_attached(argv: Sequence[str]) -> list[str]:
    """``--nodes NAMES`` as ``--nodes=NAMES``: argparse takes a separate value that
    starts with a dash (``-leading-dash``, ``-h``: valid Kedro node names) for an
    option, and the command form is fixed (contract 4), so the value is attached
    before parsing. Only the first ``--nodes`` is the state machine's."""
    args = list(argv)
    if "--nodes" in args:
        at = args.index("--nodes")
        if at + 1 < len(args):
            args[at : at + 2] = [f"--nodes={args[at + 1]}"]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(_nodes_value_attached(sys.argv[1:] if argv is None else argv))
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

    from kedro_batch_runtime.hooks import KEDRO_MLFLOW_NAMES, disable_plugin_hooks, hooks

    log.info("run %s, version %s: nodes %s", run.run_id, run.version, ", ".join(nodes))
    shared = None
    if run.mlflow_tracking_uri:  # the project tracks with kedro-mlflow: one run for all tasks
        from kedro_batch_runtime.mlflow_run import SharedRun

        shared = SharedRun(run, nodes)
    hooks.activate(run, nodes, credentials, shared)
    try:
        bootstrap_project(project)
        _check_hook_enabled()
        if shared is None:
            # Tracking is off for this deployment: a kedro-mlflow installed
            # anyway must not start a run per task.
            disable_plugin_hooks(KEDRO_MLFLOW_NAMES)
        session = KedroSession.create(project_path=project, runtime_params=run.runtime_params)
        with session:
            session.run(pipeline_names=[run.pipeline], node_names=nodes)
    except RunConfigError as exc:
        return _fail(log, EXIT_USAGE, str(exc))
    except Exception as exc:
        traceback.print_exc()
        if shared is not None:
            _finish_failed(shared, log)
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
    if shared is not None:
        try:
            shared.finish(succeeded=True)
        except Exception as exc:  # the data is saved; the run's record is not
            traceback.print_exc()
            return _fail(
                log, EXIT_FAILED, f"the nodes succeeded but the MLflow run was not updated: "
                f"{type(exc).__name__}: {' '.join(str(exc).split())}",
            )  # fmt: skip
    return 0


def _finish_failed(shared: Any, log: logging.Logger) -> None:
    """Mark the shared MLflow run FAILED; the node's own error stays the task's message."""
    try:
        shared.finish(succeeded=False)
    except Exception as exc:  # the server may be what failed
        log.error("could not mark the MLflow run FAILED: %s: %s", type(exc).__name__, exc)


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
