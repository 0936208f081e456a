"""Per-node records: what a task's log says about the nodes it ran.

A Batch job may run several Kedro nodes (a fused task), and Batch only knows
the job's own start and stop. The runtime therefore writes one line per event
to the task's stderr, which is the job's CloudWatch log stream on AWS and the
task's log file in ``local-run``:

    kedro-batch-record {"event":"task-start","time":1764560000.1,"nodes":["a","b"]}
    kedro-batch-record {"event":"node-start","time":1764560003.4,"node":"a"}
    kedro-batch-record {"event":"node-end","time":1764560009.0,"node":"a","status":"SUCCEEDED"}
    kedro-batch-record {"event":"node-start","time":1764560009.0,"node":"b"}
    kedro-batch-record {"event":"node-end","time":1764560011.2,"node":"b","status":"FAILED",
                        "error":"ValueError: ..."}  (one line in the log)
    kedro-batch-record {"event":"task-end","time":1764560011.3,"status":"FAILED"}

Times are epoch seconds. ``task-start`` is written as soon as the container's
command runs (before Kedro is imported), so the time from a job's submission
to its first ``node-start`` is everything the job paid before doing work:
queueing, container start-up and Kedro's own start. Measured durations,
``jobStartSeconds`` and the timeline are all read from these lines with
:func:`parse`, wherever the lines come from; a line that is not a record is
ignored, so the project's own logging can interleave freely.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

PREFIX = "kedro-batch-record "
Status = Literal["SUCCEEDED", "FAILED"]


@dataclass(frozen=True, slots=True)
class NodeSpan:
    """One node's run inside a task; ``finished`` is ``None`` while it runs
    (or when the container died under it)."""

    node: str
    started: float
    finished: float | None = None
    status: Status | None = None
    error: str | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


@dataclass(frozen=True)
class TaskRecord:
    """Everything one task attempt's log says, in the order it happened."""

    started: float | None = None  # the container's command began
    finished: float | None = None
    status: Status | None = None
    nodes: tuple[str, ...] = ()  # what it was asked to run
    spans: tuple[NodeSpan, ...] = field(default_factory=tuple)

    def span(self, node: str) -> NodeSpan | None:
        return next((s for s in self.spans if s.node == node), None)

    @property
    def first_node_started(self) -> float | None:
        return min((s.started for s in self.spans), default=None)


def line(event: str, **fields: Any) -> str:
    """One record line (without the newline); ``time`` defaults to now."""
    fields.setdefault("time", time.time())
    return PREFIX + json.dumps({"event": event, **fields}, separators=(",", ":"))


def write(stream: TextIO, event: str, **fields: Any) -> None:
    """Write one record and flush: a killed container must not lose it."""
    stream.write(line(event, **fields) + "\n")
    stream.flush()


def parse(lines: Iterable[str]) -> TaskRecord:
    """The task record in ``lines`` (a log, any other lines ignored).

    A log holding several attempts of one job (a retried Spot reclaim) yields
    the last attempt: the one whose outcome counts.
    """
    started: float | None = None
    finished: float | None = None
    status: Status | None = None
    nodes: tuple[str, ...] = ()
    spans: dict[str, NodeSpan] = {}
    for text in lines:
        record = _record(text)
        if record is None:
            continue
        event, when = record["event"], float(record["time"])
        if event == "task-start":
            started, finished, status, spans = when, None, None, {}
            nodes = tuple(str(n) for n in record.get("nodes", ()))
        elif event == "task-end":
            finished, status = when, _status(record.get("status"))
        elif event == "node-start" and "node" in record:
            spans[str(record["node"])] = NodeSpan(node=str(record["node"]), started=when)
        elif event == "node-end" and "node" in record:
            name = str(record["node"])
            begun = spans.get(name)
            spans[name] = NodeSpan(
                node=name,
                started=begun.started if begun else when,
                finished=when,
                status=_status(record.get("status")),
                error=record.get("error"),
            )
    return TaskRecord(
        started=started,
        finished=finished,
        status=status,
        nodes=nodes,
        spans=tuple(sorted(spans.values(), key=lambda s: s.started)),
    )


def _record(text: str) -> dict[str, Any] | None:
    at = text.find(PREFIX)
    if at < 0:
        return None
    try:
        value = json.loads(text[at + len(PREFIX) :])
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or "event" not in value or "time" not in value:
        return None
    try:
        float(value["time"])
    except (TypeError, ValueError):
        return None
    return value


def _status(value: Any) -> Status | None:
    return value if value in ("SUCCEEDED", "FAILED") else None


def nodes_of(records: Sequence[TaskRecord]) -> dict[str, NodeSpan]:
    """Node -> its span, over the tasks of a run (later tasks win)."""
    found: dict[str, NodeSpan] = {}
    for record in records:
        for span in record.spans:
            found[span.node] = span
    return found


__all__ = ["PREFIX", "NodeSpan", "Status", "TaskRecord", "line", "nodes_of", "parse", "write"]
