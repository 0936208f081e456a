"""The timeline as one self-contained HTML file: inline SVG and CSS, no script.

It opens offline, from a CI artifact or an e-mail attachment: nothing is
fetched, no font, no script. Hover and keyboard focus use CSS alone
(``:hover``, ``:focus``, ``:target``, ``<title>``). Statuses never rely on
colour alone: every row says its status in words, failed nodes are
cross-hatched and outlined, cancelled tasks striped, tasks that did not run
drawn as a dashed line, retries counted (``↻2``), and the deciding chain is
outlined in bold and marked ``◆``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from pathlib import Path

from infra.errors import UserError
from infra.timeline import (
    ADVANCE,
    LABEL_FONT,
    NODE_FONT,
    NOT_RUN,
    PAD,
    TIP_LINE,
    Picture,
    Row,
    Run,
    TaskRun,
    duration_text,
    layout,
)

CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 20px; }
body { color: #1b1f24; }
h1 { font-size: 20px; margin: 0 0 8px; }
h2 { font-size: 16px; margin: 22px 0 6px; }
code, pre, .mono { font-family: "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace; }
dl.facts { display: flex; flex-wrap: wrap; gap: 4px 22px; margin: 0 0 10px; }
dl.facts div { display: flex; gap: 6px; }
dl.facts dt { color: #57606a; }
dl.facts dd { margin: 0; font-weight: 600; }
.legend { display: block; margin: 6px 0 10px; }
.chart { border: 1px solid #d0d7de; overflow: auto; max-height: 78vh; }
.axis { position: sticky; top: 0; z-index: 1; background: #fff; display: block; }
svg text { font-family: "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace; }
.tick { font-size: 11px; fill: #57606a; }
.grid { stroke: #eaeef2; }
.bg { fill: transparent; }
.row:nth-child(even) .bg { fill: #f6f8fa; }
.row:hover .bg { fill: #e7f0fb; }
.label { font-size: 11px; fill: #1b1f24; }
.chain .label { font-weight: 700; }
.status { font-size: 11px; fill: #57606a; }
.st-FAILED .status { fill: #a40e26; font-weight: 700; }
.queued { fill: url(#p-queued); stroke: #8c959f; stroke-width: 0.6; }
.running { fill: #d6e6f7; stroke: #5b7fa6; stroke-width: 0.6; }
.st-CANCELLED .running { fill: url(#p-cancelled); stroke: #6e7781; }
.st-FAILED .running { stroke: #a40e26; }
.chain .running, .chain .queued { stroke: #111; stroke-width: 2.2; }
.notrun { stroke: #8c959f; stroke-width: 1.4; stroke-dasharray: 4 4; }
.node { stroke: #1f6f43; stroke-width: 0.6; fill: #a8dcb9; }
.node.n-FAILED { fill: url(#p-failed); stroke: #a40e26; stroke-width: 1.2; }
.node.n-RUNNING { fill: #8fb8e0; stroke: #2f5f8f; }
.nodelabel { font-size: 10px; fill: #0b2e17; pointer-events: none; }
.nodelabel { paint-order: stroke; stroke: #ffffffd0; stroke-width: 2.4px; }
.runend { stroke: #1b1f24; stroke-width: 1; }
.expected { stroke: #8250df; stroke-width: 1.5; stroke-dasharray: 6 3; }
.expected-label { font-size: 11px; fill: #8250df; }
.failmark rect { fill: none; stroke: #a40e26; stroke-width: 2.4; }
.failmark:focus { outline: none; }
.failmark:focus rect, .failmark:hover rect { stroke-width: 3.5; }
.tip { visibility: hidden; pointer-events: none; }
.tip rect { fill: #fff8e6; stroke: #a40e26; stroke-width: 1; }
.tip text { font-size: 10px; fill: #1b1f24; }
.tip .first { font-weight: 700; fill: #a40e26; }
ol.failures li { margin-bottom: 10px; }
ol.failures li:target { outline: 2px solid #a40e26; outline-offset: 4px; }
pre.tail { background: #f6f8fa; padding: 8px; overflow: auto; max-height: 18em; }
pre.tail { margin: 4px 0 0; font-size: 12px; }
.muted { color: #57606a; }
"""

PATTERNS = """
<defs>
<pattern id="p-queued" width="6" height="6" patternUnits="userSpaceOnUse">
<rect width="6" height="6" fill="#f2f4f6"/><circle cx="3" cy="3" r="1" fill="#8c959f"/></pattern>
<pattern id="p-failed" width="8" height="8" patternUnits="userSpaceOnUse">
<rect width="8" height="8" fill="#ffd8d3"/>
<path d="M0,0 L8,8 M8,0 L0,8" stroke="#c2334d" stroke-width="0.9"/></pattern>
<pattern id="p-cancelled" width="7" height="7" patternUnits="userSpaceOnUse"
 patternTransform="rotate(45)"><rect width="7" height="7" fill="#eaeef2"/>
<line x1="0" y1="0" x2="0" y2="7" stroke="#8c959f" stroke-width="2.4"/></pattern>
</defs>
"""


def _n(value: float) -> str:
    """A coordinate, short."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _spent(task: TaskRun) -> list[str]:
    """How long it queued (and started up) and how long it ran, as far as known."""
    began, ended = task.began, task.ended
    found = []
    if task.submitted is not None and began is not None:
        found.append(f"queued {duration_text(began - task.submitted)}")
    if began is not None and ended is not None:
        found.append(f"ran {duration_text(ended - began)}")
    return found


def _task_title(task: TaskRun) -> str:
    parts = [f"{task.label}: {task.status.lower().replace('_', ' ')}"]
    parts += _spent(task)
    if task.attempts > 1:
        parts.append(f"{task.attempts} attempts")
    parts.append(f"nodes: {', '.join(task.nodes)}")
    return "; ".join(parts)


def _row(row: Row, picture: Picture) -> str:
    task = row.task
    classes = f"row st-{task.status}" + (" chain" if row.on_chain else "")
    mid = row.y + row.height / 2 + LABEL_FONT * 0.35
    out = [
        f'<g class="{classes}" data-task="{escape(task.key)}" data-status="{task.status}">',
        f"<title>{escape(_task_title(task))}</title>",
        f'<rect class="bg" x="0" y="{_n(row.y)}" width="{_n(picture.width)}" '
        f'height="{_n(row.height)}"/>',
        f'<text class="label" x="{_n(picture.label_x)}" y="{_n(mid)}">{escape(row.label)}</text>',
        f'<text class="status" x="{_n(picture.status_x)}" y="{_n(mid)}">'
        f"{escape(row.status_text)}</text>",
    ]
    if task.status == NOT_RUN or (row.running is None and row.queued is None):
        y = _n(row.y + row.height / 2)
        out.append(
            f'<line class="notrun" x1="{_n(picture.plot_left)}" y1="{y}" '
            f'x2="{_n(picture.plot_right)}" y2="{y}"/>'
        )
    for name, box in (("queued", row.queued), ("running", row.running)):
        if box is not None:
            out.append(
                f'<rect class="{name}" x="{_n(box.x)}" y="{_n(box.y)}" '
                f'width="{_n(max(box.width, 1.0))}" height="{_n(box.height)}"/>'
            )
    for node in row.nodes:
        box = node.box
        took = "" if node.seconds is None else f", {duration_text(node.seconds)}"
        out.append(
            f'<g class="nodebar" data-node="{escape(node.name)}" data-status="{node.status}">'
            f"<title>{escape(node.name)}: {node.status.lower()}{took}</title>"
            f'<rect class="node n-{node.status}" x="{_n(box.x)}" y="{_n(box.y)}" '
            f'width="{_n(max(box.width, 1.0))}" height="{_n(box.height)}"/>'
        )
        if node.label:
            ty = box.y + box.height / 2 + NODE_FONT * 0.35
            out.append(
                f'<text class="nodelabel" x="{_n(box.x + 2)}" y="{_n(ty)}">'
                f"{escape(node.label)}</text>"
            )
        out.append("</g>")
    out.append("</g>")
    return "\n".join(out)


def _failures_layer(picture: Picture) -> str:
    marks, tips = [], []
    for f in picture.failures:
        box = f.mark
        what = f"node {f.node}" if f.node else f"task {f.task.label}"
        marks.append(
            f'<a class="failmark" id="fm-{f.number}" href="#failure-{f.number}" tabindex="0" '
            f'data-node="{escape(f.node or "")}" data-task="{escape(f.task.key)}">'
            f"<title>{escape(what)} failed: {escape(f.cause)}</title>"
            f'<rect x="{_n(box.x - 1)}" y="{_n(box.y - 1)}" width="{_n(max(box.width, 1) + 2)}" '
            f'height="{_n(box.height + 2)}"/></a>'
        )
        tip = f.tip
        lines = [
            f'<text x="{_n(tip.x + PAD)}" y="{_n(tip.y + PAD / 2 + TIP_LINE * (i + 0.8))}"'
            + (' class="first"' if i == 0 else "")
            + f">{escape(line)}</text>"
            for i, line in enumerate(f.tip_lines)
        ]
        tips.append(
            f'<g class="tip" id="ft-{f.number}"><rect x="{_n(tip.x)}" y="{_n(tip.y)}" '
            f'width="{_n(tip.width)}" height="{_n(tip.height)}" rx="3"/>{"".join(lines)}</g>'
        )
    # Marks before tips, siblings in one group: "#fm-N:hover ~ #ft-N" shows a tip.
    return '<g class="failures">' + "\n".join(marks + tips) + "</g>"


def _axis(picture: Picture) -> str:
    out = [
        f'<svg class="axis" width="{_n(picture.width)}" height="{_n(picture.axis_height)}" '
        f'viewBox="0 0 {_n(picture.width)} {_n(picture.axis_height)}" role="img" '
        'aria-label="time since the run started">'
    ]
    last = len(picture.ticks) - 1
    for i, tick in enumerate(picture.ticks):
        anchor = (
            "start"
            if i == 0
            else "end"
            if i == last and tick.x > picture.plot_right - 30
            else "middle"
        )
        out.append(
            f'<text class="tick" x="{_n(tick.x)}" y="{_n(picture.axis_height - 6)}" '
            f'text-anchor="{anchor}">{escape(tick.label)}</text>'
        )
    run = picture.run
    if picture.expected_x is not None and run.expected_seconds is not None:
        text = f"model: {duration_text(run.expected_seconds)}"
        room = picture.plot_right - picture.expected_x
        anchor = "end" if room < len(text) * LABEL_FONT * ADVANCE else "start"
        shift = -4 if anchor == "end" else 4
        out.append(
            f'<text class="expected-label" x="{_n(picture.expected_x + shift)}" y="12" '
            f'text-anchor="{anchor}">{escape(text)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _legend() -> str:
    items = [
        ('<rect class="queued" x="0" y="3" width="22" height="12"/>', "queued / starting"),
        ('<rect class="running" x="0" y="3" width="22" height="12"/>', "running"),
        ('<rect class="node" x="0" y="3" width="22" height="12"/>', "node"),
        ('<rect class="node n-FAILED" x="0" y="3" width="22" height="12"/>', "failed node"),
        (
            '<rect x="0" y="3" width="22" height="12" fill="url(#p-cancelled)" stroke="#6e7781"/>',
            "cancelled",
        ),
        ('<line class="notrun" x1="0" y1="9" x2="22" y2="9"/>', "not run"),
        (
            '<rect class="running" x="0" y="3" width="22" height="12" stroke="#111" '
            'stroke-width="2.2"/>',
            "◆ deciding chain",
        ),
        ('<line class="expected" x1="11" y1="0" x2="11" y2="18"/>', "model's expected end"),
        ('<text x="2" y="14" font-size="12">↻2</text>', "attempts"),
    ]
    x = 0.0
    parts = []
    for swatch, text in items:
        parts.append(
            f'<g transform="translate({_n(x)},0)">{swatch}'
            f'<text x="28" y="13" font-size="11">{escape(text)}</text></g>'
        )
        x += 28 + len(text) * 11 * ADVANCE + 18
    return (
        f'<svg class="legend" width="{_n(x)}" height="18" role="img" aria-label="legend">'
        + "".join(parts)
        + "</svg>"
    )


def _facts(picture: Picture) -> str:
    run = picture.run
    facts = [
        ("pipeline", f"<code>{escape(run.pipeline)}</code>"),
        ("run", f"<code>{escape(run.run_id)}</code>"),
        ("status", escape(run.status.lower().replace("_", " "))),
        ("started", escape(_utc(run.started))),
        (
            "duration",
            escape(duration_text(picture.total_seconds))
            + ("" if run.finished is not None else " so far"),
        ),
        ("tasks", str(len(run.tasks))),
        ("nodes", str(picture.nodes)),
        (
            "deciding chain",
            f"{len(picture.chain)} tasks, {escape(duration_text(picture.chain_seconds))} "
            f"of {escape(duration_text(picture.total_seconds))}",
        ),
    ]
    if run.expected_seconds is not None:
        facts.append(("model expected", escape(duration_text(run.expected_seconds))))
    else:
        facts.append(("model expected", '<span class="muted">unknown</span>'))
    counts: dict[str, int] = {}
    for task in run.tasks:
        counts[task.status] = counts.get(task.status, 0) + 1
    facts.append(
        (
            "task statuses",
            ", ".join(f"{n} {s.lower().replace('_', ' ')}" for s, n in sorted(counts.items())),
        )
    )
    body = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts)
    return f'<dl class="facts">{body}</dl>'


def _chain_list(picture: Picture) -> str:
    by_key = {t.key: t for t in picture.run.tasks}
    items = []
    for key in picture.chain:
        task = by_key[key]
        bits = _spent(task)
        nodes = ", ".join(task.nodes)
        items.append(
            f"<li><code>{escape(task.label)}</code> "
            f"<span class=muted>({escape('; '.join(bits))}; nodes {escape(nodes)})</span></li>"
        )
    return (
        '<section id="chain"><h2>Deciding chain</h2>'
        "<p class=muted>From the task that finished last, back through the task it waited for "
        "that finished last: shorten these to shorten the run.</p>"
        f"<ol>{''.join(items)}</ol></section>"
    )


def _failure_list(picture: Picture) -> str:
    if not picture.failures:
        return ""
    items = []
    for f in picture.failures:
        what = f"node <code>{escape(f.node)}</code>" if f.node else "the task"
        link = f' · <a href="{escape(f.task.link)}">log stream</a>' if f.task.link else ""
        tail = f'<pre class="tail">{escape(chr(10).join(f.log_tail))}</pre>' if f.log_tail else ""
        items.append(
            f'<li id="failure-{f.number}" tabindex="-1">{what} of task '
            f"<code>{escape(f.task.label)}</code> failed: <strong>{escape(f.cause)}</strong>"
            f"{link}{tail}</li>"
        )
    return (
        '<section id="failures"><h2>Failures</h2>'
        f'<ol class="failures">{"".join(items)}</ol></section>'
    )


def render(picture: Picture) -> str:
    """The whole page for one laid-out run."""
    run = picture.run
    w, h = _n(picture.width), _n(picture.height)
    rows_svg = [
        f'<svg class="rows" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="tasks of run {escape(run.run_id)} on a time axis">',
        PATTERNS,
    ]
    for tick in picture.ticks:
        rows_svg.append(f'<line class="grid" x1="{_n(tick.x)}" y1="0" x2="{_n(tick.x)}" y2="{h}"/>')
    rows_svg += ['<g class="rows-body">', *(_row(r, picture) for r in picture.rows), "</g>"]
    rows_svg.append(
        f'<line class="runend" x1="{_n(picture.end_x)}" y1="0" x2="{_n(picture.end_x)}" y2="{h}">'
        f"<title>run {'ended' if run.finished is not None else 'so far'}: "
        f"{escape(duration_text(picture.total_seconds))}</title></line>"
    )
    if picture.expected_x is not None:
        rows_svg.append(
            f'<line class="expected" x1="{_n(picture.expected_x)}" y1="0" '
            f'x2="{_n(picture.expected_x)}" y2="{h}"><title>model expected '
            f"{escape(duration_text(run.expected_seconds or 0))}</title></line>"
        )
    rows_svg += [_failures_layer(picture), "</svg>"]
    tip_rules = "\n".join(
        f"#fm-{f.number}:hover ~ #ft-{f.number}, #fm-{f.number}:focus ~ #ft-{f.number} "
        "{ visibility: visible; }"
        for f in picture.failures
    )
    source = ""
    if run.link:
        source = f' · <a href="{escape(run.link)}">{escape(run.source or "console")}</a>'
    elif run.source:
        source = f" · {escape(run.source)}"
    title = f"{run.pipeline} · {run.run_id}"
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>Timeline · {escape(title)}</title>",
            f"<style>{CSS}\n{tip_rules}</style></head><body>",
            f"<header><h1>Timeline of <code>{escape(run.pipeline)}</code>{source}</h1>",
            _facts(picture),
            _legend(),
            "</header>",
            f'<div class="chart" style="width:{w}px">',
            _axis(picture),
            *rows_svg,
            "</div>",
            _chain_list(picture),
            _failure_list(picture),
            "<footer class=muted><p>Written by kedro-batch. Times from each task's "
            "records (its log); hover or focus a marked node for its cause.</p></footer>",
            "</body></html>",
        ]
    )


def html(run: Run) -> str:
    """The timeline page of ``run``."""
    return render(layout(run))


def writable(path: Path) -> Path:
    """``path`` checked before a run starts, so a typo does not cost a run."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--timeline {path}: cannot create its folder ({exc.strerror})") from None
    if path.is_dir():
        raise UserError(f"--timeline {path} is a folder; name an .html file in it")
    return path


def write(path: Path, run: Run) -> None:
    try:
        writable(path).write_text(html(run), encoding="utf-8")
    except OSError as exc:
        raise UserError(f"--timeline {path}: cannot write it ({exc.strerror})") from None
