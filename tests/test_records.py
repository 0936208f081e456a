"""The per-node records a task writes to its log, and reading them back."""

from __future__ import annotations

import io

from kedro_batch_runtime import records


def _log(*lines: str) -> list[str]:
    return "\n".join(lines).splitlines()


def test_a_fused_task_yields_each_nodes_own_span_amid_other_log_lines():
    log = _log(
        records.line("task-start", time=100.0, nodes=["a", "b"]),
        "2026-12-01 INFO some project logging",
        records.line("node-start", time=103.5, node="a"),
        records.line("node-end", time=110.0, node="a", status="SUCCEEDED"),
        records.line("node-start", time=110.0, node="b"),
        "kedro-batch-record {not json",
        records.line("node-end", time=111.0, node="b", status="FAILED", error="ValueError: x"),
        records.line("task-end", time=111.2, status="FAILED"),
    )
    record = records.parse(log)
    assert (record.started, record.finished, record.status) == (100.0, 111.2, "FAILED")
    assert record.nodes == ("a", "b")
    assert record.first_node_started == 103.5
    a, b = record.spans
    assert (a.node, a.seconds, a.status) == ("a", 6.5, "SUCCEEDED")
    assert (b.node, b.seconds, b.status, b.error) == ("b", 1.0, "FAILED", "ValueError: x")


def test_a_node_still_running_when_the_container_died_has_no_end():
    record = records.parse(
        _log(
            records.line("task-start", time=1.0, nodes=["a"]),
            records.line("node-start", time=2.0, node="a"),
        )
    )
    assert record.status is None and record.finished is None
    assert record.span("a") == records.NodeSpan(node="a", started=2.0)
    assert record.span("a").seconds is None


def test_a_retried_attempt_replaces_the_one_before_it():
    record = records.parse(
        _log(
            records.line("task-start", time=1.0, nodes=["a"]),
            records.line("node-start", time=2.0, node="a"),
            records.line("task-start", time=50.0, nodes=["a"]),  # Spot reclaim, second attempt
            records.line("node-start", time=52.0, node="a"),
            records.line("node-end", time=60.0, node="a", status="SUCCEEDED"),
            records.line("task-end", time=60.5, status="SUCCEEDED"),
        )
    )
    assert record.started == 50.0
    assert [(s.started, s.finished) for s in record.spans] == [(52.0, 60.0)]


def test_write_flushes_one_line_and_nodes_of_merges_tasks():
    stream = io.StringIO()
    records.write(stream, "node-start", node="x")
    text = stream.getvalue()
    assert text.startswith(records.PREFIX) and text.endswith("\n") and text.count("\n") == 1
    first = records.parse(_log(records.line("node-start", time=1.0, node="x")))
    second = records.parse(_log(records.line("node-end", time=3.0, node="y", status="SUCCEEDED")))
    merged = records.nodes_of([first, second])
    assert set(merged) == {"x", "y"} and merged["y"].seconds == 0.0
