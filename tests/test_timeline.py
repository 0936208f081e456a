"""The run timeline's pure core: times -> coordinates, the deciding chain, labels that
never overlap, and the page being self-contained (``infra/timeline.py``,
``infra/timeline_html.py``); the precedence a definition enforces
(``ops.task_precedence``); a task's records -> its nodes' outcomes (``infra/measured.py``).

What a browser makes of the page is in ``test_timeline_browser.py``.
"""

from __future__ import annotations

import itertools
import random
import re
from pathlib import Path

import pytest
from kedro_batch_runtime import records
from kedro_batch_runtime.records import NodeSpan

from infra import asl, ops, timeline, timeline_html
from infra.graph import PipelineGraph
from infra.kedro_project import load_project
from infra.measured import job_start_seconds, node_outcome
from infra.timeline import ADVANCE, LABEL_FONT, NODE_FONT, Run, TaskRun

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_770_000_000.0


def task(key: str, status: str = "SUCCEEDED", **kw) -> TaskRun:
    nodes = tuple(key.split(","))
    return TaskRun(key=key, label=key, nodes=nodes, status=status, **kw)


def ran(key: str, submitted: float, started: float, finished: float, **kw) -> TaskRun:
    """A task whose nodes ran one after another, equally long, from ``started + 1``."""
    nodes = key.split(",")
    step = (finished - started - 1) / len(nodes)
    spans = tuple(
        NodeSpan(n, T0 + started + 1 + i * step, T0 + started + 1 + (i + 1) * step, "SUCCEEDED")
        for i, n in enumerate(nodes)
    )
    return task(
        key,
        submitted=T0 + submitted,
        started=T0 + started,
        finished=T0 + finished,
        spans=spans,
        **kw,
    )


def run_of(*tasks: TaskRun, precedence=None, **kw) -> Run:
    return Run(
        pipeline="__default__",
        run_id="r1",
        status=kw.pop("status", "SUCCEEDED"),
        started=T0,
        finished=kw.pop("finished", None),
        tasks=tasks,
        precedence=precedence,
        **kw,
    )


# --- times -> coordinates --------------------------------------------------------------


def test_times_map_linearly_onto_the_shared_axis():
    a = ran("a", 0, 10, 30)
    b = ran("b,c", 30, 40, 100)
    picture = timeline.layout(run_of(a, b, finished=T0 + 100), width=1000)
    assert picture.x(0) == picture.plot_left and picture.x(100) == pytest.approx(picture.plot_right)
    row_a, row_b = picture.rows
    assert row_a.queued is not None and row_a.running is not None
    assert row_a.queued.x == pytest.approx(picture.x(0))
    assert row_a.queued.right == pytest.approx(picture.x(10))  # queued until the container ran
    assert (row_a.running.x, row_a.running.right) == pytest.approx((picture.x(10), picture.x(30)))
    # A fused task's nodes sit inside its running span, each at its own times.
    (b1, b2) = row_b.nodes
    assert (b1.name, b2.name) == ("b", "c")
    assert b1.box.x == pytest.approx(picture.x(41)) and b2.box.right == pytest.approx(
        picture.x(100)
    )
    assert row_b.running.x <= b1.box.x < b2.box.x < row_b.running.right + 1e-9
    assert row_a.y + row_a.height <= row_b.y  # rows stack, one per task
    assert picture.end_x == pytest.approx(picture.x(100))
    assert picture.total_seconds == 100


def test_rows_follow_the_run_and_tasks_that_never_ran_come_last():
    late, early, never = ran("late", 50, 60, 70), ran("early", 0, 1, 2), task("never", "NOT_RUN")
    picture = timeline.layout(run_of(never, late, early))
    assert [r.task.key for r in picture.rows] == ["early", "late", "never"]
    assert picture.rows[2].running is None and picture.rows[2].status_text == "not run"


def test_the_models_expectation_is_on_the_axis_even_past_the_run():
    picture = timeline.layout(run_of(ran("a", 0, 1, 60), finished=T0 + 60, expected_seconds=90))
    assert picture.expected_x == pytest.approx(picture.plot_right)
    assert picture.end_x < picture.expected_x


def test_a_running_task_extends_to_now():
    going = task("a", "RUNNING", submitted=T0, started=T0 + 5)
    picture = timeline.layout(run_of(going, now=T0 + 20))
    assert picture.rows[0].running.right == pytest.approx(picture.plot_right)
    assert picture.chain == ()  # nothing has finished


@pytest.mark.parametrize("seconds", [1.5, 7, 59, 600, 3 * 3600, 4 * 86400])
def test_ticks_are_round_and_wider_apart_than_their_labels(seconds: float):
    marks = timeline.ticks(seconds, 800)
    assert marks[0] == (0, "0s") and len(marks) >= 2
    steps = {round(b[0] - a[0], 6) for a, b in itertools.pairwise(marks)}
    assert len(steps) <= 1
    scale = 800 / seconds
    for (s1, l1), (s2, _) in itertools.pairwise(marks):
        assert (s2 - s1) * scale >= timeline.MIN_TICK_GAP > len(l1) * LABEL_FONT * ADVANCE
    assert marks[-1][0] <= seconds


def test_durations_read_short():
    assert [timeline.duration_text(s) for s in (0, 4.25, 59, 75, 600, 3600, 5400, 86400)] == [
        "0s",
        "4.2s",
        "59s",
        "1m15s",
        "10m",
        "1h",
        "1h30m",
        "24h",
    ]


# --- the deciding chain ------------------------------------------------------------------


def test_the_chain_walks_back_through_the_predecessor_that_finished_last():
    # a -> c, b -> c, c -> d; e runs alone and ends early.
    tasks = [
        ran("a", 0, 1, 10),
        ran("b", 0, 1, 20),
        ran("e", 0, 1, 5),
        ran("c", 21, 25, 40),
        ran("d", 41, 45, 60),
    ]
    precedence = {
        "a": frozenset(),
        "b": frozenset(),
        "e": frozenset(),
        "c": frozenset({"a", "b"}),
        "d": frozenset({"c"}),
    }
    picture = timeline.layout(run_of(*tasks, precedence=precedence, finished=T0 + 61))
    assert picture.chain == ("b", "c", "d")
    assert picture.chain_seconds == 60  # b's submission to d's end
    assert {r.task.key for r in picture.rows if r.on_chain} == {"b", "c", "d"}
    assert all(r.label.startswith("◆ ") == r.on_chain for r in picture.rows)


def test_precedence_the_layout_added_can_decide_the_chain():
    """Structured mode may make d wait for x although the DAG does not: x decided."""
    tasks = [ran("c", 0, 1, 10), ran("x", 0, 1, 30), ran("d", 31, 32, 40)]
    dag = {"c": frozenset(), "x": frozenset(), "d": frozenset({"c"})}
    enforced = {**dag, "d": frozenset({"c", "x"})}
    assert timeline.deciding_chain(tasks, enforced) == ["x", "d"]
    assert timeline.deciding_chain(tasks, dag) == ["c", "d"]


def test_without_precedence_the_chain_is_read_from_the_times():
    tasks = [ran("a", 0, 1, 10), ran("b", 0, 1, 20), ran("c", 21, 22, 30)]
    assert timeline.deciding_chain(tasks, None) == ["b", "c"]


def test_unfinished_tasks_are_not_on_the_chain():
    tasks = [ran("a", 0, 1, 10), task("b", "RUNNING", submitted=T0 + 11, started=T0 + 12)]
    assert timeline.deciding_chain(tasks, {"a": frozenset(), "b": frozenset({"a"})}) == ["a"]


# --- failures ------------------------------------------------------------------------------


def failed_task(**kw) -> TaskRun:
    spans = (
        NodeSpan("p.ok", T0 + 2, T0 + 3, "SUCCEEDED"),
        NodeSpan("p.bad", T0 + 3, T0 + 4, "FAILED", "ValueError: bad row 7"),
    )
    tail = "\n".join(
        [
            "Traceback (most recent call last):",
            records.line("node-end", time=T0 + 4, node="p.bad", status="FAILED"),
            "ValueError: bad row 7",
        ]
    )
    return task(
        "p.ok,p.bad,p.after",
        "FAILED",
        submitted=T0,
        started=T0 + 1,
        finished=T0 + 4.5,
        spans=spans,
        log_tail=tail,
        **kw,
    )


def test_the_failed_node_is_marked_with_its_cause_and_log_tail():
    picture = timeline.layout(run_of(failed_task(), status="FAILED", finished=T0 + 5))
    (failure,) = picture.failures
    assert (failure.node, failure.cause) == ("p.bad", "ValueError: bad row 7")
    bad = next(n for n in picture.rows[0].nodes if n.name == "p.bad")
    assert failure.mark == bad.box and bad.status == "FAILED"
    assert failure.tip_lines[0] == "node p.bad failed: ValueError: bad row 7"
    # The log tail without the runtime's machine-readable records.
    assert failure.log_tail == ("Traceback (most recent call last):", "ValueError: bad row 7")
    assert "p.after" not in {n.name for n in picture.rows[0].nodes}  # never started
    tip = failure.tip
    assert tip.x >= 0 and tip.right <= picture.width and tip.y >= 0
    assert tip.bottom <= picture.height  # the picture grows to hold it


def test_a_task_failing_before_its_first_node_is_marked_on_its_bar():
    broken = task("a", "FAILED", submitted=T0, started=T0 + 1, finished=T0 + 2, cause="OOM")
    picture = timeline.layout(run_of(broken, status="FAILED"))
    (failure,) = picture.failures
    assert failure.node is None and failure.mark == picture.rows[0].running
    assert failure.cause == "OOM"


def test_statuses_are_words_not_only_colours():
    assert timeline.status_text(task("a", "CANCELLED")) == "cancelled"
    assert timeline.status_text(task("a", "FAILED", attempts=3)) == "✕ failed ↻3"
    assert timeline.status_text(task("a", "NOT_RUN")) == "not run"


# --- 500 tasks: usable, and no label overlaps another ---------------------------------------


def big_run(count: int, seed: int = 7) -> Run:
    """Tasks of one to four nodes with long names, lognormal node times, over about an hour."""
    rnd = random.Random(seed)
    tasks = []
    for i in range(count):
        nodes = [
            f"namespace_{i % 9}.a_rather_long_node_name_{i}_{j}" for j in range(rnd.randint(1, 4))
        ]
        submitted = rnd.uniform(0, 3000)
        started = submitted + rnd.uniform(1, 60)
        t = started + 1
        spans = []
        for n in nodes:
            d = rnd.lognormvariate(2.5, 1.5)
            spans.append(NodeSpan(n, T0 + t, T0 + t + d, "SUCCEEDED"))
            t += d
        tasks.append(
            TaskRun(
                key=",".join(nodes),
                label=nodes[0] + (f"+{len(nodes) - 1}" if len(nodes) > 1 else ""),
                nodes=tuple(nodes),
                status="SUCCEEDED",
                submitted=T0 + submitted,
                started=T0 + started,
                finished=T0 + t + 0.5,
                spans=tuple(spans),
            )
        )
    return run_of(*tasks)


def test_labels_never_overlap_at_500_tasks():
    picture = timeline.layout(big_run(500))
    assert len(picture.rows) == 500
    assert picture.rows[0].height == timeline.DENSE_ROW  # thinner rows; the page scrolls them
    char = LABEL_FONT * ADVANCE
    for before, after in itertools.pairwise(picture.rows):
        assert before.y + before.height <= after.y
    for row in picture.rows:
        assert picture.label_x + len(row.label) * char <= picture.status_x
        assert picture.status_x + len(row.status_text) * char <= picture.plot_left
        ends = []
        for node in row.nodes:
            if node.label:
                width = len(node.label) * NODE_FONT * ADVANCE + 2
                assert width <= node.box.width + 1e-6, (node.name, node.label)
                ends.append((node.box.x, node.box.x + width))
        for (_, end), (start, _) in itertools.pairwise(ends):
            assert end <= start + 1e-6
    # Labels are cut to fit, not dropped: every box with room for a few characters has one.
    roomy = [n for r in picture.rows for n in r.nodes if n.box.width >= 8 * NODE_FONT * ADVANCE]
    assert roomy and all(n.label for n in roomy)


# --- the page ----------------------------------------------------------------------------------


def test_the_page_is_self_contained_and_every_reference_resolves():
    page = timeline_html.html(run_of(failed_task(), ran("b", 5, 6, 9), status="FAILED"))
    assert "<script" not in page and " src=" not in page and "@import" not in page
    assert not re.search(r"url\((?!#)", page)  # patterns only, nothing fetched
    defined = set(re.findall(r'id="([^"]+)"', page))
    assert set(re.findall(r"url\(#([^)]+)\)", page)) <= defined
    assert {h[1:] for h in re.findall(r'href="(#[^"]+)"', page)} <= defined
    # The tip shows on hover and on keyboard focus of its mark, with CSS alone.
    assert "#fm-1:hover ~ #ft-1, #fm-1:focus ~ #ft-1" in page
    assert 'id="failure-1"' in page and "ValueError: bad row 7" in page
    assert "kedro-batch-record" not in page


# --- what a definition enforces ------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> PipelineGraph:
    return load_project(ROOT / "example").pipelines["__default__"]


def closure(precedence: dict[str, frozenset[str]], key: str) -> set[str]:
    seen: set[str] = set()
    todo = list(precedence[key])
    while todo:
        k = todo.pop()
        if k not in seen:
            seen.add(k)
            todo.extend(precedence[k])
    return seen


def test_exact_mode_enforces_the_dag_itself(example: PipelineGraph):
    definition = asl.build_definition(example, job_queue="q", job_definition="d", mode="exact")
    precedence = ops.task_precedence(definition)
    assert precedence == {n: example.parents[n] for n in example.node_names}


def test_structured_mode_enforces_the_dag_and_what_the_layout_adds(example: PipelineGraph):
    definition = asl.build_definition(example, job_queue="q", job_definition="d")
    precedence = ops.task_precedence(definition)
    assert set(precedence) == set(example.node_names)
    for node in example.node_names:
        assert example.parents[node] <= closure(precedence, node)


def test_fused_tasks_and_split_machines_are_read_whole(
    example: PipelineGraph, monkeypatch: pytest.MonkeyPatch
):
    groups = {}
    for node in example.nodes:
        groups.setdefault(node.namespace or node.name, []).append(node.name)
    monkeypatch.setattr(asl, "SPLIT_BYTES", 2_000)
    machines = asl.build_machines(
        example, job_queue="q", job_definition="d", groups=list(groups.values())
    )
    assert len(machines) > 2
    arns = {m.key: f"arn:aws:states:eu-west-1:1:stateMachine:{m.key or 'main'}" for m in machines}
    by_arn = {arns[m.key]: m.definition(arns) for m in machines}
    precedence = ops.task_precedence(by_arn[arns[""]], by_arn)
    assert set(precedence) == {",".join(g) for g in groups.values()}
    # A fused task waits (transitively) for every task holding a parent of its nodes.
    owner = {n: ",".join(g) for g in groups.values() for n in g}
    for key in precedence:
        needed = {owner[p] for n in key.split(",") for p in example.parents[n]} - {key}
        assert needed <= closure(precedence, key)


# --- records -> node outcomes ------------------------------------------------------------------


def fused_record() -> records.TaskRecord:
    return records.parse(
        [
            records.line("task-start", time=100.0, nodes=["a", "b", "c"]),
            records.line("node-start", time=104.0, node="a"),
            records.line("node-end", time=110.0, node="a", status="SUCCEEDED"),
            records.line("node-start", time=110.0, node="b"),
            records.line("node-end", time=111.0, node="b", status="FAILED", error="KeyError: x"),
            records.line("task-end", time=111.5, status="FAILED"),
        ]
    )


def test_a_fused_tasks_nodes_get_their_own_times_and_fates():
    record = fused_record()
    a, b, c = (node_outcome(n, "FAILED", record, 99.0, 112.0) for n in "abc")
    assert (a.status, a.started, a.finished, a.measured) == ("SUCCEEDED", 104.0, 110.0, True)
    assert (b.status, b.error) == ("FAILED", "KeyError: x")
    assert (c.status, c.started, c.finished) == ("NOT_RUN", None, None)  # never started
    # While the task runs, a node not started yet waits, one started runs.
    going = records.parse(
        [
            records.line("task-start", time=1.0, nodes=["a", "b"]),
            records.line("node-start", time=2.0, node="a"),
        ]
    )
    assert node_outcome("a", "RUNNING", going, 1.0, None).status == "RUNNING"
    assert node_outcome("b", "RUNNING", going, 1.0, None).status == "QUEUED"
    # The container died under a running node: it failed, at the job's end.
    died = node_outcome("a", "FAILED", going, 1.0, 9.0)
    assert (died.status, died.started, died.finished) == ("FAILED", 2.0, 9.0)


def test_a_task_failing_before_any_node_blames_the_node_it_was_about_to_run():
    # e.g. the catalog could not be built: credentials missing for the second node
    record = records.parse(
        [
            records.line("task-start", time=1.0, nodes=["a", "b", "c"]),
            records.line("node-start", time=2.0, node="a"),
            records.line("node-end", time=3.0, node="a", status="SUCCEEDED"),
            records.line("task-end", time=4.0, status="FAILED"),
        ]
    )
    a, b, c = (node_outcome(n, "FAILED", record, 1.0, 4.5) for n in "abc")
    assert (a.status, b.status, c.status) == ("SUCCEEDED", "FAILED", "NOT_RUN")
    assert (b.started, b.finished) == (None, 4.5)
    setup = records.parse([records.line("task-start", time=1.0, nodes=["a"])])
    assert node_outcome("a", "FAILED", setup, 1.0, 2.0).status == "FAILED"


def test_without_records_a_node_keeps_its_jobs_times():
    outcome = node_outcome("a", "SUCCEEDED", None, 5.0, 9.0)
    assert (outcome.status, outcome.started, outcome.finished, outcome.measured) == (
        "SUCCEEDED",
        5.0,
        9.0,
        False,
    )


def test_job_start_is_the_median_wait_from_submission_to_the_first_node():
    record = fused_record()  # first node-start at 104
    assert job_start_seconds([(94.0, record), (44.0, record), (100.0, record)]) == 10.0
    assert job_start_seconds([(None, record), (1.0, None)]) is None


def test_an_output_path_that_cannot_be_written_is_refused_up_front(tmp_path: Path):
    from infra.errors import UserError
    from infra.output_paths import checked

    with pytest.raises(UserError, match=r"--timeline .* is a folder"):
        checked("--timeline", tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot create"):
        checked("--timeline", blocker / "sub" / "t.html")
    with pytest.raises(UserError, match=r"--keep .* is not a folder"):
        checked("--keep", blocker, folder=True)
    assert checked("--timeline", tmp_path / "new" / "t.html").parent.is_dir()
