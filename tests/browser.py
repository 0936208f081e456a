"""Headless Chromium (Debian's ``chromium``) for tests that look at what a person sees.

Driven with Playwright's Python API against the system browser: nothing is
downloaded. A test using it is skipped only where Chromium is truly absent
and this is not CI: with ``CI=true`` a missing browser fails the test
(``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# Flags that work on a machine without a GPU, a sandbox or a network.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 900}


def chromium() -> str:
    """The browser's path; skips (fails in CI) when it is not installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium)")
    pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")


@contextmanager
def page(viewport: dict[str, int] | None = None) -> Iterator[Any]:
    """A fresh page in a fresh profile; ``page.requests`` lists every URL it asked for."""
    executable = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="chromium-") as home:
        context = playwright.chromium.launch_persistent_context(
            home,
            executable_path=executable,
            headless=True,
            args=FLAGS,
            viewport=viewport or VIEWPORT,
        )
        try:
            opened = context.new_page()
            requests: list[str] = []
            opened.on("request", lambda request: requests.append(request.url))
            opened.requests = requests
            yield opened
        finally:
            context.close()


def inside_viewport(page: Any, locator: Any) -> bool:
    """Scrolled into view, is the element's box non-empty and inside the viewport?"""
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    size = page.viewport_size
    return bool(
        box
        and box["width"] > 0
        and box["height"] > 0
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= size["width"]
        and box["y"] + box["height"] <= size["height"]
    )


def screenshot(page: Any, path: Path) -> Path:
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000  # a real picture, not a blank page
    return path


def open_timeline(page: Any, path: Path, shot: Path) -> dict[str, Any]:
    """Open a timeline page, check what every timeline shows, and return what it shows.

    Checks: nothing is fetched but the file itself; the first row and the
    deciding chain's first bar are visible inside the viewport, with text;
    the chain's rows are marked in words (``◆``), not by colour alone.
    Returns ``rows`` (task key -> status), ``nodes`` (node -> status, for
    every node bar), ``chain`` (task keys) and the ``header`` text.
    """
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    assert [u for u in page.requests if not u.startswith("file:")] == []
    first = page.locator("svg.rows g.row").first
    assert inside_viewport(page, first.locator("text.label"))
    assert first.locator("text.label").text_content().strip()
    chain = page.locator("svg.rows g.row.chain")
    assert chain.count() >= 1
    assert inside_viewport(page, chain.first.locator("rect.running"))
    assert chain.first.locator("text.label").text_content().startswith("◆ ")
    shown = page.evaluate(
        """() => ({
            rows: Object.fromEntries([...document.querySelectorAll('svg.rows g.row')]
                .map(g => [g.dataset.task, g.dataset.status])),
            nodes: Object.fromEntries([...document.querySelectorAll('svg.rows g.nodebar')]
                .map(g => [g.dataset.node, g.dataset.status])),
            chain: [...document.querySelectorAll('svg.rows g.row.chain')]
                .map(g => g.dataset.task),
            header: document.querySelector('header').innerText,
        })"""
    )
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, shot)
    return shown


def check_failure_mark(page: Any, node: str, cause: str) -> None:
    """The failed node's mark is visible; focusing it (keyboard) shows its cause."""
    mark = page.locator(f'a.failmark[data-node="{node}"]')
    assert mark.count() == 1
    tip = page.locator(f"#ft-{mark.get_attribute('id').removeprefix('fm-')}")
    assert not tip.is_visible()
    assert inside_viewport(page, mark.locator("rect"))
    mark.focus()
    assert tip.is_visible() and cause in tip.text_content()
    tip_box, size = tip.bounding_box(), page.viewport_size
    assert tip_box and tip_box["x"] >= 0 and tip_box["x"] + tip_box["width"] <= size["width"]
    listed = page.locator("ol.failures li", has_text=node)
    assert listed.count() == 1 and cause in listed.inner_text()
