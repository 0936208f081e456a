"""The timeline page in a real browser (headless Chromium): what the layout promised
is what a person sees.

Runs of real pipelines are rendered in ``test_local_run.py`` (the example, a
failing run) and ``test_ops.py`` (an execution in moto); here, made-up runs
push the page to its limits: 500 tasks, failures near the edges.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from infra import timeline_html
from tests import browser
from tests.test_timeline import big_run, failed_task, ran, run_of


def test_500_tasks_scroll_under_a_fixed_axis_and_no_text_overlaps(tmp_path: Path):
    path = tmp_path / "big.html"
    timeline_html.write(path, big_run(500))
    with browser.page() as page:
        shown = browser.open_timeline(page, path, tmp_path / "big.png")
        assert len(shown["rows"]) == 500
        # The rows scroll inside the chart; the time axis stays in sight.
        page.locator("svg.rows g.row").last.scroll_into_view_if_needed()
        assert browser.inside_viewport(
            page, page.locator("svg.rows g.row").last.locator("text.label")
        )
        axis = page.locator("svg.axis text.tick").first
        assert browser.inside_viewport(page, axis)
        # Measured by the browser, not estimated: no two texts of a row overlap.
        boxes = page.evaluate(
            """() => [...document.querySelectorAll('svg.rows g.row')].map(g =>
                [...g.querySelectorAll('text')].map(t => {
                    const b = t.getBBox(); return [b.x, b.x + b.width, b.y, b.y + b.height];
                }))"""
        )
    assert sum(len(row) for row in boxes) > 1000
    for texts in boxes:
        spans = sorted(texts)
        for (_, end, *_), (start, *_) in itertools.pairwise(spans):
            assert end <= start + 0.5, spans


def test_a_failure_near_the_edge_shows_its_tip_inside_the_page(tmp_path: Path):
    early = ran("a.first", 0, 1, 3)
    late = ran("z.last", 0, 1, 100)  # pushes the failed task to the right edge
    failed = failed_task()
    run = run_of(early, late, failed, status="FAILED", finished=1_770_000_000.0 + 100)
    path = tmp_path / "failed.html"
    timeline_html.write(path, run)
    with browser.page() as page:
        shown = browser.open_timeline(page, path, tmp_path / "failed.png")
        assert shown["rows"][failed.key] == "FAILED"
        assert shown["nodes"]["p.bad"] == "FAILED" and "p.after" not in shown["nodes"]
        browser.check_failure_mark(page, "p.bad", "ValueError: bad row 7")
        row = page.locator(f'g.row[data-task="{failed.key}"] text.status')
        assert row.text_content() == "✕ failed"  # in words, not colour alone
