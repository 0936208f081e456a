"""What a task's records say about its nodes, for ``local-run`` and ``status`` alike.

Batch (and ``local-run``'s process table) know a job's own start and stop;
the runtime's records (:mod:`kedro_batch_runtime.records`) know each node's.
:func:`node_outcome` combines the two into one node's status and times, so a
fused task's nodes get their own, a node that never started is ``NOT_RUN``,
and a job whose log could not be read falls back to the job's times (said
by ``measured=False``). :func:`job_start_seconds` is the measured start-up
time the cost model calls ``jobStartSeconds``.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from kedro_batch_runtime.records import TaskRecord

# A task still going: its nodes may still start.
_ACTIVE = frozenset({"RUNNING", "QUEUED", "PENDING"})


@dataclass(frozen=True, slots=True)
class NodeOutcome:
    status: str
    started: float | None
    finished: float | None
    error: str | None = None
    measured: bool = False  # times are the node's own (from its records), not its job's


def node_outcome(
    node: str,
    task_status: str,
    record: TaskRecord | None,
    job_started: float | None,
    job_finished: float | None,
) -> NodeOutcome:
    """One node of a task: its status and times, from the task's record where it has one.

    ``task_status`` is the job's (``SUCCEEDED``, ``FAILED``, ``RUNNING``,
    ``QUEUED``, ``CANCELLED``, ...). A node the record shows finished has
    its own outcome; one started but unfinished is running, or went down
    with its task; one that never started waits (``QUEUED``) in a running
    task and is ``NOT_RUN`` in an ended one. Without a record, or with one
    that lacks a node of a task that succeeded (a log cut short), the job's
    times and status stand.
    """
    span = record.span(node) if record is not None else None
    if record is None or (span is None and task_status == "SUCCEEDED"):
        return NodeOutcome(task_status, job_started, job_finished)
    if span is None:
        status = "QUEUED" if task_status in _ACTIVE else "NOT_RUN"
        return NodeOutcome(status, None, None, measured=True)
    if span.finished is not None:
        return NodeOutcome(
            span.status or task_status, span.started, span.finished, span.error, measured=True
        )
    if task_status in _ACTIVE:
        return NodeOutcome("RUNNING", span.started, None, measured=True)
    # The container ended under it (killed, out of memory, Spot reclaim...).
    return NodeOutcome(task_status, span.started, job_finished, measured=True)


def job_start_seconds(tasks: Iterable[tuple[float | None, TaskRecord | None]]) -> float | None:
    """Median seconds from a job's submission to its first ``node-start``.

    ``tasks`` are (submission time, record) per job. That span is what every
    job pays before doing work: queueing, placement, image pull, container
    start and Kedro's own start. Jobs without both ends are left out.
    """
    waits = [
        record.first_node_started - submitted
        for submitted, record in tasks
        if submitted is not None and record is not None and record.first_node_started is not None
    ]
    return statistics.median(waits) if waits else None


__all__ = ["NodeOutcome", "job_start_seconds", "node_outcome"]
