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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kedro.config import MissingConfigException
from kedro.framework.hooks import hook_impl

from kedro_batch_runtime import records
from kedro_batch_runtime.catalog import plan_catalog
from kedro_batch_runtime.credentials import task_credentials
from kedro_batch_runtime.settings import RunSettings

DISTRIBUTION = "kedro-batch-runtime"  # what DISABLE_HOOKS_FOR_PLUGINS would name
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Task:
    run: RunSettings
    nodes: tuple[str, ...]
    # The credentials secret's document (KEDRO_BATCH_CREDENTIALS): never shown.
    credentials: str | None = field(default=None, repr=False)


class KedroBatchHooks:
    """Moves the task's data and gives it its credentials (``after_context_created``),
    and times its nodes (a :mod:`~kedro_batch_runtime.records` line as each
    starts and ends)."""

    def __init__(self) -> None:
        self._task: _Task | None = None
        self._started: dict[str, float] = {}  # running nodes -> monotonic start
        self._saved: dict[str, set[str]] = {}

    def activate(
        self, run: RunSettings, nodes: Sequence[str], credentials: str | None = None
    ) -> None:
        """Act for one task; ``credentials`` is the credentials secret's document."""
        self._task = _Task(run, tuple(nodes), credentials)
        self._started.clear()
        self._saved.clear()

    def deactivate(self) -> None:
        self._task = None

    @hook_impl
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
            _config(loader, "catalog"), pipelines[run.pipeline].nodes, self._task.nodes, run
        )
        loader["credentials"] = task_credentials(
            _config(loader, "credentials"), self._task.credentials, plan.config, plan.credentials
        )
        loader["catalog"] = plan.config
        for move in plan.moves:
            logger.info("dataset %s: %s -> %s", move.dataset, move.source, move.target)
        for name in plan.left_local:
            logger.warning(
                "dataset %s: local path outside the project, left on this machine's disk", name
            )

    # A node's run spans loading its inputs to saving its outputs; Kedro's
    # node hooks only wrap the function call, and a failing load or save
    # must still be pinned on the node.

    @hook_impl
    def before_dataset_loaded(self, node: Any) -> None:
        self._start(node)

    @hook_impl
    def before_node_run(self, node: Any) -> None:
        self._start(node)

    @hook_impl
    def after_node_run(self, node: Any) -> None:
        if not node.outputs:
            self._finish(node)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, node: Any) -> None:
        if self._task is not None and node.name in self._started:
            saved = self._saved.setdefault(node.name, set())
            saved.add(dataset_name)
            if saved >= set(node.outputs):
                self._finish(node)

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


def _config(loader: Any, key: str) -> dict[str, Any]:
    try:
        return dict(loader[key])
    except MissingConfigException:
        return {}


hooks = KedroBatchHooks()
