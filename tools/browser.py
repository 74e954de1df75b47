"""Open our static pages in a real headless Chromium: measure the charts, take screenshots.

    python -m tools.browser screenshots [--out .build/screenshots]

Uses Debian's /usr/bin/chromium through Playwright (no browser download). Chromium is started
with networking features off: the pages are self-contained and this machine has no internet.
`drawn_charts` reports, for every ``svg.chart`` on a page, how many of its ``data-mark``
elements have a non-empty rendered bounding box: geometry only a browser computes.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
_MEASURE = """
() => Array.from(document.querySelectorAll('svg.chart')).map(svg => {
  const marks = Array.from(svg.querySelectorAll('[data-mark]'));
  const drawn = marks.filter(m => { const b = m.getBBox(); return b.width > 0 || b.height > 0; });
  const box = svg.getBoundingClientRect();
  return {title: svg.getAttribute('aria-label'), marks: marks.length, drawn: drawn.length,
          width: box.width, height: box.height};
})
"""


@dataclass(frozen=True, slots=True)
class ChartGeometry:
    title: str
    marks: int
    drawn: int
    width: float
    height: float

    @property
    def is_drawn(self) -> bool:
        return self.drawn > 0 and self.width > 0 and self.height > 0


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError("chromium is not installed (make browser installs Debian's package)")
    return path


@contextmanager
def browser_page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1100, "height": 900})
        try:
            yield context.new_page()
        finally:
            context.close()


def drawn_charts(page: Any, path: Path) -> list[ChartGeometry]:
    page.goto(path.resolve().as_uri())
    return [ChartGeometry(str(c["title"]), int(c["marks"]), int(c["drawn"]),
                          float(c["width"]), float(c["height"]))
            for c in page.evaluate(_MEASURE)]


def screenshot(page: Any, path: Path, out: Path) -> Path:
    page.goto(path.resolve().as_uri())
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)
    return out


def _sample_pages(folder: Path) -> dict[str, Path]:
    from tools.sample_pages import write_sample_pages

    return write_sample_pages(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    shots = sub.add_parser("screenshots", help="render the sample pages and screenshot them")
    shots.add_argument("--out", type=Path, default=ROOT / ".build" / "screenshots")
    args = parser.parse_args(argv)
    pages = _sample_pages(args.out / "pages")
    with browser_page() as page:
        for name, path in pages.items():
            charts = drawn_charts(page, path)
            undrawn = [c.title for c in charts if not c.is_drawn]
            target = screenshot(page, path, args.out / f"{name}.png")
            print(f"{target}: {len(charts)} charts"
                  + (f", NOT drawn: {', '.join(undrawn)}" if undrawn else ", all drawn"))
            if undrawn or not charts:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
