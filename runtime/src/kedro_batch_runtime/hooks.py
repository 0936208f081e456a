"""The Kedro hook that makes one task behave as its share of one ``kedro run``.

Installed with kedro-batch-runtime, it is registered in every KedroSession
through the ``kedro.hooks`` entry point, so a deployed project needs no
change to its ``settings.py``. It stays inert until ``kedro-batch-task``
activates it for one task: a plain ``kedro run`` in an environment where
the runtime happens to be installed is unaffected.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl

from kedro_batch_runtime import records, staging
from kedro_batch_runtime.catalog import plan_catalog
from kedro_batch_runtime.credentials import task_credentials
from kedro_batch_runtime.settings import RunSettings

if TYPE_CHECKING:
    from kedro_batch_runtime.mlflow_run import SharedRun

DISTRIBUTION = "kedro-batch-runtime"  # what DISABLE_HOOKS_FOR_PLUGINS would name
# kedro-mlflow's distribution name as Kedro compares it: ``kedro_mlflow`` since
# its 0.14 wheels, ``kedro-mlflow`` before.
KEDRO_MLFLOW_NAMES = ("kedro_mlflow", "kedro-mlflow")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Task:
    run: RunSettings
    nodes: tuple[str, ...]
    # Staged datasets live here, on the container's disk (Fargate: its
    # ephemeral storage; TMPDIR moves it); removed when the task ends.
    scratch: tempfile.TemporaryDirectory[str]
    # The credentials secret's document (KEDRO_BATCH_CREDENTIALS): never shown.
    credentials: str | None = field(default=None, repr=False)
    mlflow: SharedRun | None = None


class KedroBatchHooks:
    """Moves the task's data and gives it its credentials (``after_context_created``),
    stages what cannot use ``s3://`` itself through a scratch folder (download
    before the first load, upload after each save, and what ``confirm`` wrote
    into a staged input back when the task succeeds), and times its nodes (a
    :mod:`~kedro_batch_runtime.records` line as each starts and ends)."""

    def __init__(self) -> None:
        self._task: _Task | None = None
        self._started: dict[str, float] = {}  # running nodes -> monotonic start
        self._saved: dict[str, set[str]] = {}
        self._staged: dict[str, staging.Staged] = {}
        self._fresh: set[str] = set()  # scratch paths that hold this run's data
        self._downloaded: dict[str, staging.Snapshot] = {}  # staged inputs as fetched
        self._confirmed: set[str] = set()  # staged datasets this task's nodes confirm

    def activate(
        self,
        run: RunSettings,
        nodes: Sequence[str],
        credentials: str | None = None,
        mlflow: SharedRun | None = None,
    ) -> None:
        """Act for one task; ``credentials`` is the credentials secret's document,
        ``mlflow`` the execution's shared MLflow run when the project tracks with it."""
        self.deactivate()
        scratch = tempfile.TemporaryDirectory(prefix="kedro-batch-scratch-")
        self._task = _Task(run, tuple(nodes), scratch, credentials, mlflow)

    def deactivate(self) -> None:
        if self._task is not None:
            self._task.scratch.cleanup()
        self._task = None
        self._started.clear()
        self._saved.clear()
        self._staged.clear()
        self._fresh.clear()
        self._downloaded.clear()
        self._confirmed.clear()

    # tryfirst: the shared MLflow run must be active before kedro-mlflow's
    # own after_context_created looks for one (pluggy otherwise calls the
    # plugins' implementations in an order no one chose).
    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        # Runs before the session builds its catalog from this loader.
        if self._task is None:
            return
        from kedro.framework.project import pipelines

        run = self._task.run
        if run.pipeline not in pipelines:
            return  # the session reports the unknown pipeline in Kedro's words
        loader = context.config_loader
        plan = plan_catalog(
            _config(loader, "catalog"),
            pipelines[run.pipeline].nodes,
            self._task.nodes,
            run,
            scratch=self._task.scratch.name,
        )
        loader["credentials"] = task_credentials(
            _config(loader, "credentials"), self._task.credentials, plan.config, plan.credentials
        )
        loader["catalog"] = plan.config
        self._staged = {s.dataset: s for s in plan.staged}
        self._confirmed = {
            name
            for node in pipelines[run.pipeline].nodes
            if node.name in self._task.nodes
            for name in node.confirms
            if name in self._staged
        }
        for move in plan.moves:
            staged = self._staged.get(move.dataset)
            via = f" (staged through {staged.local})" if staged else ""
            logger.info("dataset %s: %s -> %s%s", move.dataset, move.source, move.target, via)
        for name in plan.left_local:
            logger.warning(
                "dataset %s: local path outside the project, left on this machine's disk", name
            )
        if self._task.mlflow is not None:
            self._task.mlflow.start(context, [n.name for n in pipelines[run.pipeline].nodes])

    # A node's run spans loading its inputs to saving its outputs; Kedro's
    # node hooks only wrap the function call, and a failing load or save
    # must still be pinned on the node.

    @hook_impl
    def before_dataset_loaded(self, dataset_name: str, node: Any) -> None:
        self._start(node)
        self._fetch(dataset_name)

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        self._start(node)
        # confirm() reads the dataset's own files (an IncrementalDataset lists
        # its partitions to checkpoint the last): they must be on this disk
        # even where the node does not load it.
        for name in node.confirms:
            self._fetch(name)

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        if not node.outputs:
            self._finish(node)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, node: Any) -> None:
        staged = self._staged.get(dataset_name)
        if staged is not None:
            copied = staging.upload(staged)
            self._fresh.add(staged.local)
            logger.info(
                "dataset %s: uploaded %d file(s), %d bytes, to %s",
                dataset_name, copied.files, copied.bytes, staged.remote,
            )  # fmt: skip
        if self._task is not None and node.name in self._started:
            saved = self._saved.setdefault(node.name, set())
            saved.add(dataset_name)
            if saved >= set(node.outputs):
                self._finish(node)

    @hook_impl
    def after_pipeline_run(self) -> None:
        # Only a task that succeeded: a failed one runs again whole (Batch's
        # retries, a redrive) and must read the same partitions again.
        for name in sorted(self._confirmed & self._downloaded.keys()):
            staged = self._staged[name]
            copied = staging.write_back(staged, self._downloaded[name])
            logger.info(
                "dataset %s: confirmed, wrote back %d file(s), %d bytes, to %s",
                name, copied.files, copied.bytes, staged.remote,
            )  # fmt: skip

    def running(self) -> tuple[str, float] | None:
        """The node that started and has not finished, and its seconds so far."""
        name = next(iter(self._started), None)
        return None if name is None else (name, time.monotonic() - self._started[name])

    def failed(self, node: str, exc: BaseException) -> None:
        """Record that ``node`` failed (the task is ending with its error)."""
        if self._task is not None and node in self._started:
            del self._started[node]
            self._saved.pop(node, None)
            error = f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:1000]
            records.write(sys.stderr, "node-end", node=node, status="FAILED", error=error)

    def _fetch(self, dataset_name: str) -> None:
        staged = self._staged.get(dataset_name)
        if staged is not None and staged.local not in self._fresh:
            copied = staging.download(staged)
            self._fresh.add(staged.local)
            self._downloaded[dataset_name] = staging.snapshot(staged.local)
            logger.info(
                "dataset %s: downloaded %d file(s), %d bytes, from %s",
                dataset_name, copied.files, copied.bytes, copied.source,
            )  # fmt: skip

    def _start(self, node: Any) -> None:
        if self._task is not None and node.name not in self._started:
            self._started[node.name] = time.monotonic()
            logger.info("node %s: started", node.name)
            records.write(sys.stderr, "node-start", node=node.name)

    def _finish(self, node: Any) -> None:
        if self._task is not None and node.name in self._started:
            seconds = time.monotonic() - self._started.pop(node.name)
            self._saved.pop(node.name, None)
            logger.info("node %s: finished in %.2fs", node.name, seconds)
            records.write(sys.stderr, "node-end", node=node.name, status="SUCCEEDED")


def disable_plugin_hooks(distributions: Sequence[str]) -> None:
    """Keep these plugins' hooks out of the sessions created from now on.

    Kedro registers every installed plugin's hooks in every session and
    drops those its project settings list in ``DISABLE_HOOKS_FOR_PLUGINS``;
    this adds to that list for this process only (call it after
    ``bootstrap_project``, which loads the project's settings).
    """
    from kedro.framework.project import settings

    current = tuple(settings.DISABLE_HOOKS_FOR_PLUGINS)
    added = tuple(d for d in distributions if d not in current)
    if added:
        settings.set("DISABLE_HOOKS_FOR_PLUGINS", current + added)


def _config(loader: Any, key: str) -> dict[str, Any]:
    try:
        return dict(loader[key])
    except MissingConfigException:
        return {}


hooks = KedroBatchHooks()
