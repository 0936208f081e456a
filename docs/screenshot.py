"""Render a timeline page to PNG with headless Chromium: ``docs/timeline.png`` in the README.

make demo && venv/bin/python docs/screenshot.py build/demo/timeline.html docs/timeline.png
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import browser  # the same browser set-up as the tests


def main(page_file: Path, png: Path) -> None:
    with browser.page({"width": 1240, "height": 600}) as page:
        page.goto(page_file.resolve().as_uri())
        page.screenshot(path=str(png), full_page=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
