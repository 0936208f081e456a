"""Where a run's time went: a run's tasks on a shared time axis, as coordinates.

A run is a schedule. This module turns what a run recorded (each task's
submission, container start and end, and its nodes' own spans from the
runtime's records) into the geometry of a Gantt-like picture: one row per
task, its queued span and its running span, its nodes inside, failure marks
with their causes, and the chain of tasks that decided the total. It is
plain data in, plain data out; :mod:`infra.timeline_html` draws it, and
``local-run`` and ``status`` only gather the facts.

Text is laid out in a monospace font whose advance is a known fraction of
its size, so label widths are computed here, not measured in a browser:
every label is cut to the room it has, and none can overlap another.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from kedro_batch_runtime.records import PREFIX, NodeSpan

# Task and node statuses, as ``status`` and ``local-run`` name them.
SUCCEEDED, FAILED, CANCELLED, NOT_RUN = "SUCCEEDED", "FAILED", "CANCELLED", "NOT_RUN"
RUNNING, QUEUED = "RUNNING", "QUEUED"

# Geometry, in CSS pixels. Monospace fonts advance 0.6 em per character
# (DejaVu Sans Mono, Liberation Mono, Menlo, Consolas all do, to 1%).
ADVANCE = 0.6
LABEL_FONT = 11.0  # task labels, status words, axis
NODE_FONT = 10.0  # node labels inside bars, failure tips
LABEL_CHARS = 34  # a task's label column
STATUS_CHARS = 13  # its status column ("failed ↻3", "cancelled")
PAD = 8.0
WIDTH = 1200.0
DENSE_AFTER = 80  # tasks; past this, rows get thinner (and the rows scroll)
ROW = 22.0
DENSE_ROW = 15.0
AXIS = 34.0  # height of the time axis above the rows
MIN_TICK_GAP = 72.0  # px between axis ticks: wider than any tick label
TIP_CHARS = 84  # a failure tip's line length
TIP_TAIL_LINES = 8
TIP_LINE = 13.0
STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
START_SKEW = 2.0  # s: clocks of the orchestrator and the container may disagree this much


@dataclass(frozen=True)
class TaskRun:
    """What one task (one Batch job, or its last attempt) did in a run.

    ``key`` identifies the task: its comma-separated nodes, exactly as its
    command names them (contract 4), so precedence read from a definition
    and facts read from jobs meet on it.
    """

    key: str
    label: str  # the state / job name the user sees in the console
    nodes: tuple[str, ...]
    status: str
    submitted: float | None = None  # epoch seconds: the job was submitted
    started: float | None = None  # its container started
    finished: float | None = None
    spans: tuple[NodeSpan, ...] = ()  # its nodes' own runs, from its records
    attempts: int = 1
    cause: str | None = None  # why it failed, for a failed task
    log_tail: str = ""
    link: str | None = None  # its log stream in a console, where there is one

    @property
    def began(self) -> float | None:
        """When it started running: its container, or its first node if the clocks disagree."""
        return min(
            (t for t in (self.started, *(s.started for s in self.spans)) if t is not None),
            default=None,
        )

    @property
    def ended(self) -> float | None:
        """When it ended (``None`` while it runs): its job, or its last record if later."""
        if self.finished is None:
            return None
        return max([self.finished, *(s.finished for s in self.spans if s.finished is not None)])


@dataclass(frozen=True)
class Run:
    """A run as the timeline needs it; times are epoch seconds."""

    pipeline: str
    run_id: str
    status: str
    started: float
    finished: float | None
    tasks: tuple[TaskRun, ...]
    # Task key -> the tasks it waited for, as the definition enforced it;
    # ``None`` when unknown (then the chain is read from the times alone).
    precedence: Mapping[str, Collection[str]] | None = None
    expected_seconds: float | None = None  # the model's prediction, where known
    now: float | None = None  # for a run still going: where open bars end
    source: str = ""  # "local-run", or the execution ARN
    link: str | None = None  # the execution in a console


@dataclass(frozen=True, slots=True)
class Box:
    x: float
    y: float
    width: float
    height: float

    @property
    def right(self) -> float:
        return self.x + self.width

    @property
    def bottom(self) -> float:
        return self.y + self.height


@dataclass(frozen=True, slots=True)
class NodeBar:
    name: str
    status: str  # SUCCEEDED, FAILED or RUNNING
    box: Box
    label: str  # what fits inside the box ("" when nothing does)
    seconds: float | None


@dataclass(frozen=True)
class Row:
    task: TaskRun
    y: float
    height: float
    label: str  # the task's label, cut to its column
    status_text: str  # a word, never colour alone: "failed", "cancelled ↻2"...
    queued: Box | None  # submitted -> container started
    running: Box | None  # container started -> finished (or now)
    nodes: tuple[NodeBar, ...]
    on_chain: bool


@dataclass(frozen=True)
class Failure:
    """A failed node (or a task that failed before its first node), with its tip."""

    number: int  # 1-based, the anchor of its entry in the list below the picture
    task: TaskRun
    node: str | None
    cause: str
    log_tail: tuple[str, ...]
    mark: Box
    tip: Box
    tip_lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    seconds: float
    label: str


@dataclass(frozen=True)
class Picture:
    run: Run
    width: float
    height: float  # of the rows area (tips included)
    axis_height: float
    plot_left: float
    plot_right: float
    ticks: tuple[Tick, ...]
    rows: tuple[Row, ...]
    failures: tuple[Failure, ...]
    chain: tuple[str, ...]  # task keys, first to last
    chain_seconds: float
    total_seconds: float
    end_x: float  # where the run ended (or now)
    expected_x: float | None
    label_x: float
    status_x: float
    scale: float  # px per second
    nodes: int

    def x(self, seconds: float) -> float:
        """Seconds since the run started -> x."""
        return self.plot_left + seconds * self.scale


# --- text --------------------------------------------------------------------------


def text_width(text: str, size: float) -> float:
    return len(text) * size * ADVANCE


def fit(text: str, chars: int) -> str:
    """``text`` cut to ``chars`` characters, an ellipsis marking the cut."""
    if chars <= 0:
        return ""
    return text if len(text) <= chars else text[: chars - 1] + "…"


def duration_text(seconds: float) -> str:
    """``75`` -> ``1m15s``; ``3600`` -> ``1h``; ``4.25`` -> ``4.2s`` (short, for axes and tips)."""
    if seconds < 0:
        return "-" + duration_text(-seconds)
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    return f"{secs}s"


def _node_label(name: str, room: float) -> str:
    """The node's full name if it fits, else its last part, else that cut."""
    chars = math.floor((room - 4) / (NODE_FONT * ADVANCE))
    if chars < 3:
        return ""
    if len(name) <= chars:
        return name
    short = name.rsplit(".", 1)[-1]
    return fit(short, chars) if chars >= 4 else ""


# --- the chain ------------------------------------------------------------------------


def deciding_chain(
    tasks: Sequence[TaskRun], precedence: Mapping[str, Collection[str]] | None = None
) -> list[str]:
    """The tasks that decided the run's length, first to last.

    From the task that finished last, walk back through the predecessor
    that finished last before it started, until a task waited for nothing.
    Predecessors are the tasks the definition made it wait for
    (``precedence``: DAG edges and any precedence the layout added); without
    it, any task that had finished by then. Tasks that never finished are
    not on it.
    """
    ended = {t.key: t for t in tasks if t.ended is not None}
    if not ended:
        return []
    order = {t.key: i for i, t in enumerate(tasks)}
    current = max(ended.values(), key=lambda t: (t.ended, -order[t.key]))
    chain = [current.key]
    while True:
        began = _first(current.submitted, current.began)
        if precedence is not None and current.key in precedence:
            candidates = [ended[k] for k in precedence[current.key] if k in ended]
        else:
            candidates = [t for t in ended.values() if t.key != current.key]
        if began is not None:
            candidates = [t for t in candidates if (t.ended or 0) <= began + START_SKEW]
        candidates = [t for t in candidates if t.key not in chain]
        if not candidates:
            break
        current = max(candidates, key=lambda t: (t.ended, -order[t.key]))
        chain.append(current.key)
    return chain[::-1]


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


# --- layout ---------------------------------------------------------------------------


def _end(run: Run) -> float:
    """Where the axis ends: the run's end, the last thing seen, or the model's prediction."""
    times = [run.started, run.finished, run.now]
    for task in run.tasks:
        times += [task.finished, task.started, task.submitted]
        times += [s.finished or s.started for s in task.spans]
    end = max(t for t in times if t is not None)
    if run.expected_seconds is not None:
        end = max(end, run.started + run.expected_seconds)
    return end


def _span(run: Run) -> float:
    return max(_end(run) - run.started, 1e-3)


def ticks(seconds: float, plot_width: float) -> list[tuple[float, str]]:
    """Axis ticks (seconds, label) over ``[0, seconds]``: round steps, far enough apart."""
    scale = plot_width / max(seconds, 1e-3)
    step: float = next((s for s in STEPS if s * scale >= MIN_TICK_GAP), 0)
    if not step:  # days: whole multiples of the largest step
        step = STEPS[-1] * math.ceil(MIN_TICK_GAP / (STEPS[-1] * scale))
    count = math.floor(seconds / step + 1e-9)
    return [(i * step, duration_text(i * step)) for i in range(count + 1)]


def status_text(task: TaskRun) -> str:
    words = {
        SUCCEEDED: "succeeded",
        FAILED: "✕ failed",
        CANCELLED: "cancelled",
        NOT_RUN: "not run",
        RUNNING: "running",
        QUEUED: "queued",
    }
    text = words.get(task.status, task.status.lower())
    return f"{text} ↻{task.attempts}" if task.attempts > 1 else text


def layout(run: Run, *, width: float = WIDTH) -> Picture:
    """Coordinates of everything the timeline draws."""
    dense = len(run.tasks) > DENSE_AFTER
    row_h = DENSE_ROW if dense else ROW
    label_x = PAD
    status_x = label_x + LABEL_CHARS * LABEL_FONT * ADVANCE + PAD
    plot_left = status_x + STATUS_CHARS * LABEL_FONT * ADVANCE + PAD
    plot_right = width - PAD
    span = _span(run)
    scale = (plot_right - plot_left) / span
    now = _end(run)

    def x(t: float) -> float:
        return plot_left + (t - run.started) * scale

    chain = deciding_chain(run.tasks, run.precedence)
    on_chain = set(chain)
    order = {t.key: i for i, t in enumerate(run.tasks)}

    def when(task: TaskRun) -> tuple[float, int]:
        first = _first(task.submitted, task.started, *(s.started for s in task.spans))
        return (math.inf if first is None else first, order[task.key])

    rows: list[Row] = []
    failures: list[Failure] = []
    bar_h = row_h - (6 if dense else 8)
    for index, task in enumerate(sorted(run.tasks, key=when)):
        y = index * row_h
        bar_y = y + (row_h - bar_h) / 2
        start = task.began
        queued = None
        if task.submitted is not None and start is not None and start > task.submitted:
            queued = Box(x(task.submitted), bar_y, (start - task.submitted) * scale, bar_h)
        running = None
        if start is not None:
            stop = task.ended if task.ended is not None else now
            running = Box(x(start), bar_y, max(stop - start, 0.0) * scale, bar_h)
        nodes = _node_bars(task, x, scale, bar_y, bar_h, now)
        rows.append(
            Row(
                task=task,
                y=y,
                height=row_h,
                label=fit(("◆ " if task.key in on_chain else "") + task.label, LABEL_CHARS),
                status_text=status_text(task),
                queued=queued,
                running=running,
                nodes=nodes,
                on_chain=task.key in on_chain,
            )
        )
        failures += _failures(task, nodes, running, len(failures))
    rows_height = len(rows) * row_h
    placed = [_place_tip(f, rows_height, width) for f in failures]
    height = max([rows_height, *(f.tip.bottom + PAD for f in placed)])
    chain_tasks = [t for t in run.tasks if t.key in on_chain]
    chain_seconds = 0.0
    if chain_tasks:
        first = min(_first(t.submitted, t.began) or run.started for t in chain_tasks)
        last = max(t.ended or now for t in chain_tasks)
        chain_seconds = last - first
    end = run.finished if run.finished is not None else now
    return Picture(
        run=run,
        width=width,
        height=height,
        axis_height=AXIS,
        plot_left=plot_left,
        plot_right=plot_right,
        ticks=tuple(
            Tick(x(run.started + s), s, text) for s, text in ticks(span, plot_right - plot_left)
        ),
        rows=tuple(rows),
        failures=tuple(placed),
        chain=tuple(chain),
        chain_seconds=chain_seconds,
        total_seconds=end - run.started,
        end_x=x(end),
        expected_x=None if run.expected_seconds is None else x(run.started + run.expected_seconds),
        label_x=label_x,
        status_x=status_x,
        scale=scale,
        nodes=sum(len(t.nodes) for t in run.tasks),
    )


def _node_bars(
    task: TaskRun,
    x: Callable[[float], float],
    scale: float,
    bar_y: float,
    bar_h: float,
    now: float,
) -> tuple[NodeBar, ...]:
    inset = 2.0 if bar_h >= 10 else 1.0
    spans = sorted(task.spans, key=lambda s: s.started)
    bars: list[NodeBar] = []
    for i, span in enumerate(spans):
        stop = span.finished
        if stop is None:  # still running, or the container died under it
            stop = task.ended if task.ended is not None else now
        status = span.status or (RUNNING if task.status in (RUNNING, QUEUED) else FAILED)
        box = Box(
            x(span.started), bar_y + inset, max(stop - span.started, 0.0) * scale, bar_h - 2 * inset
        )
        # A label may use its box, up to where the next node's box begins.
        room = box.width
        if i + 1 < len(spans):
            room = min(room, x(spans[i + 1].started) - box.x)
        seconds = None if span.finished is None else span.finished - span.started
        bars.append(NodeBar(span.node, status, box, _node_label(span.node, room), seconds))
    return tuple(bars)


def _failures(
    task: TaskRun, nodes: Sequence[NodeBar], running: Box | None, before: int
) -> list[Failure]:
    """The failed nodes of a failed task; the task itself when no node failed in it."""
    if task.status != FAILED:
        return []
    # The records are for machines; the reader wants the traceback.
    lines = [line for line in task.log_tail.splitlines() if PREFIX not in line]
    tail = tuple(lines)
    errors = {s.node: s.error for s in task.spans}
    found: list[tuple[str | None, str, Box]] = []
    for bar in nodes:
        if bar.status == FAILED:
            cause = errors.get(bar.name) or task.cause or "failed; see its log"
            found.append((bar.name, cause, bar.box))
    if not found and running is not None:
        cause = task.cause or "the task failed before its first node started"
        found.append((None, cause, running))
    return [
        Failure(before + i + 1, task, node, cause, tail, mark, mark, ())
        for i, (node, cause, mark) in enumerate(found)
    ]


def _wrap(text: str, chars: int, lines: int) -> list[str]:
    words = " ".join(text.split())
    out = [words[i : i + chars] for i in range(0, len(words), chars)] or [""]
    if len(out) > lines:
        out = [*out[: lines - 1], fit(out[lines - 1] + "…", chars)]
    return out


def _place_tip(failure: Failure, rows_height: float, width: float) -> Failure:
    """Where a failure's tip shows: below its mark, or above when the rows end first."""
    who = f"node {failure.node}" if failure.node else f"task {failure.task.label}"
    lines = [*_wrap(f"{who} failed: {failure.cause}", TIP_CHARS, 4)]
    if failure.log_tail:
        lines.append("last log lines:")
        lines += [fit(line.rstrip(), TIP_CHARS) for line in failure.log_tail[-TIP_TAIL_LINES:]]
    tip_w = TIP_CHARS * NODE_FONT * ADVANCE + 2 * PAD
    tip_h = len(lines) * TIP_LINE + PAD
    x = min(max(failure.mark.x, PAD), width - PAD - tip_w)
    y = failure.mark.bottom + 4
    if y + tip_h > rows_height and failure.mark.y - 4 - tip_h >= 0:
        y = failure.mark.y - 4 - tip_h
    return Failure(
        failure.number,
        failure.task,
        failure.node,
        failure.cause,
        failure.log_tail,
        failure.mark,
        Box(x, y, tip_w, tip_h),
        tuple(lines),
    )


__all__ = [
    "Box",
    "Failure",
    "NodeBar",
    "Picture",
    "Row",
    "Run",
    "TaskRun",
    "Tick",
    "deciding_chain",
    "duration_text",
    "fit",
    "layout",
    "status_text",
    "text_width",
    "ticks",
]
