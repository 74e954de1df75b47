"""Self-contained HTML pages with inline SVG charts: no scripts, no fonts, no network.

A page must open from an S3 link or a laptop's disk years later, so charts are drawn as
SVG by this module instead of a charting library or a CDN script. Every drawn mark (line,
bar, point) carries ``data-mark``, and every chart is an ``svg.chart``: the browser test
checks that each chart has marks with a real, non-empty rendered geometry.

Every text that reaches a page goes through `html.escape`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2")
WIDTH, HEIGHT = 640, 300
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 56, 16, 28, 44
SLANT_ABOVE, SLANTED_MARGIN_BOTTOM, SLANTED_MARGIN_LEFT = 10, 110, 110

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;
max-width:1040px;color:#111827;padding:0 16px}
h1{font-size:1.5rem;margin-bottom:4px}h2{font-size:1.15rem;margin-top:28px;
border-bottom:1px solid #e5e7eb;padding-bottom:4px}.sub{color:#6b7280;margin-top:0}
table{border-collapse:collapse;margin:8px 0;font-size:.9rem}
th,td{border:1px solid #e5e7eb;padding:4px 8px;text-align:right}
th{background:#f9fafb}td:first-child,th:first-child{text-align:left}
.charts{display:flex;flex-wrap:wrap;gap:16px}.note{color:#4b5563;font-size:.9rem}
.bad{color:#b91c1c;font-weight:600}.good{color:#047857;font-weight:600}
.warn{color:#b45309;font-weight:600}svg.chart{background:#fff;border:1px solid #e5e7eb}
svg.chart text{font-size:11px;fill:#374151}
"""


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: object, digits: int = 3) -> str:
    """A table cell: numbers rounded, missing values as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.{digits}f}"
    return esc(value)


def page(title: str, sections: Sequence[str], subtitle: str = "") -> str:
    body = "\n".join(sections)
    sub = f'<p class="sub">{esc(subtitle)}</p>' if subtitle else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>\n"
        f"<body><h1>{esc(title)}</h1>{sub}\n{body}\n</body></html>\n"
    )


def section(title: str, *parts: str, note: str = "") -> str:
    text = f'<p class="note">{esc(note)}</p>' if note else ""
    return f"<section><h2>{esc(title)}</h2>{text}{''.join(parts)}</section>"


def paragraph(text: str, css_class: str = "") -> str:
    attr = f' class="{esc(css_class)}"' if css_class else ""
    return f"<p{attr}>{esc(text)}</p>"


def charts(*svgs: str) -> str:
    return f'<div class="charts">{"".join(svgs)}</div>'


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], caption: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{fmt(c)}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw),
               default=raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _range(values: Sequence[float], fixed: tuple[float, float] | None) -> tuple[float, float]:
    if fixed is not None:
        return fixed
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


class _Frame:
    """Data coordinates -> pixel coordinates, and the axes drawn around them."""

    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float],
                 bottom_margin: int = MARGIN_BOTTOM, left_margin: int = MARGIN_LEFT) -> None:
        self.x0, self.x1 = x_range
        self.y0, self.y1 = y_range
        self.left, self.right = left_margin, WIDTH - MARGIN_RIGHT
        self.top, self.bottom = MARGIN_TOP, HEIGHT - bottom_margin

    def x(self, value: float) -> float:
        return self.left + (value - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def y(self, value: float) -> float:
        return self.bottom - (value - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)

    def axes(self, x_label: str, y_label: str, x_ticks: bool = True) -> str:
        parts = [f'<line x1="{self.left}" y1="{self.bottom}" x2="{self.right}" '
                 f'y2="{self.bottom}" stroke="#9ca3af"/>',
                 f'<line x1="{self.left}" y1="{self.top}" x2="{self.left}" '
                 f'y2="{self.bottom}" stroke="#9ca3af"/>']
        for tick in _ticks(self.y0, self.y1):
            py = self.y(tick)
            parts.append(f'<line x1="{self.left - 4}" y1="{py:.1f}" x2="{self.right}" '
                         f'y2="{py:.1f}" stroke="#f3f4f6"/>'
                         f'<text x="{self.left - 6}" y="{py + 4:.1f}" '
                         f'text-anchor="end">{tick:g}</text>')
        if x_ticks:
            for tick in _ticks(self.x0, self.x1):
                px = self.x(tick)
                parts.append(f'<text x="{px:.1f}" y="{self.bottom + 16}" '
                             f'text-anchor="middle">{tick:g}</text>')
        parts.append(f'<text x="{(self.left + self.right) / 2:.1f}" y="{HEIGHT - 6}" '
                     f'text-anchor="middle">{esc(x_label)}</text>')
        parts.append(f'<text transform="translate(14,{(self.top + self.bottom) / 2:.1f}) '
                     f'rotate(-90)" text-anchor="middle">{esc(y_label)}</text>')
        return "".join(parts)


def _legend(labels: Sequence[str]) -> str:
    items = []
    x = MARGIN_LEFT
    for i, label in enumerate(labels):
        color = PALETTE[i % len(PALETTE)]
        items.append(f'<rect x="{x}" y="8" width="10" height="10" fill="{color}"/>'
                     f'<text x="{x + 14}" y="17">{esc(label)}</text>')
        x += 24 + 7 * len(label)
    return "".join(items)


def _svg(title: str, body: str) -> str:
    return (f'<svg class="chart" role="img" aria-label="{esc(title)}" '
            f'width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}"><title>{esc(title)}</title>{body}</svg>')


def line_chart(
    title: str, series: Sequence[Series], *, x_label: str, y_label: str,
    x_range: tuple[float, float] | None = None, y_range: tuple[float, float] | None = None,
    diagonal: bool = False,
) -> str:
    """Lines with a point per value; ``diagonal`` adds the y = x reference (calibration)."""
    frame = _Frame(_range([x for s in series for x in s.xs], x_range),
                   _range([y for s in series for y in s.ys], y_range))
    parts = [frame.axes(x_label, y_label), _legend([s.label for s in series])]
    if diagonal:
        lo, hi = max(frame.x0, frame.y0), min(frame.x1, frame.y1)
        parts.append(f'<line x1="{frame.x(lo):.1f}" y1="{frame.y(lo):.1f}" '
                     f'x2="{frame.x(hi):.1f}" y2="{frame.y(hi):.1f}" stroke="#9ca3af" '
                     'stroke-dasharray="4 4"/>')
    for i, s in enumerate(series):
        color = PALETTE[i % len(PALETTE)]
        points = [(frame.x(x), frame.y(y)) for x, y in zip(s.xs, s.ys, strict=True)
                  if math.isfinite(x) and math.isfinite(y)]
        if len(points) > 1:
            path = " ".join(f"{'M' if j == 0 else 'L'}{px:.1f},{py:.1f}"
                            for j, (px, py) in enumerate(points))
            parts.append(f'<path data-mark="line" d="{path}" fill="none" stroke="{color}" '
                         'stroke-width="2"/>')
        parts.extend(f'<circle data-mark="point" cx="{px:.1f}" cy="{py:.1f}" r="3" '
                     f'fill="{color}"/>' for px, py in points)
    return _svg(title, "".join(parts))


def bar_chart(
    title: str, categories: Sequence[str], series: Sequence[Series], *, y_label: str,
    x_label: str = "", y_range: tuple[float, float] | None = None,
) -> str:
    """Grouped bars, one group per category; a series' ``ys`` align with ``categories``."""
    values = [y for s in series for y in s.ys]
    low, high = _range([*values, 0.0], y_range)
    # Many categories (features) get slanted labels and the room they need below the axis.
    slanted = len(categories) > SLANT_ABOVE
    frame = _Frame((0.0, float(max(len(categories), 1))), (min(low, 0.0), high),
                   bottom_margin=SLANTED_MARGIN_BOTTOM if slanted else MARGIN_BOTTOM,
                   left_margin=SLANTED_MARGIN_LEFT if slanted else MARGIN_LEFT)
    parts = [frame.axes(x_label, y_label, x_ticks=False), _legend([s.label for s in series])]
    group = (frame.right - frame.left) / max(len(categories), 1)
    width = group * 0.8 / max(len(series), 1)
    for c, category in enumerate(categories):
        cx = frame.left + group * c
        label_x, label_y = cx + group / 2, frame.bottom + 14
        placement = (f'transform="rotate(-40 {label_x:.1f} {label_y:.1f})" text-anchor="end"'
                     if slanted else 'text-anchor="middle"')
        parts.append(f'<text x="{label_x:.1f}" y="{label_y:.1f}" {placement}>'
                     f'{esc(category)}</text>')
        for i, s in enumerate(series):
            value = s.ys[c]
            if not math.isfinite(value):
                continue
            top, base = frame.y(max(value, 0.0)), frame.y(min(value, 0.0))
            parts.append(f'<rect data-mark="bar" x="{cx + group * 0.1 + i * width:.1f}" '
                         f'y="{top:.1f}" width="{width:.1f}" height="{max(base - top, 0.5):.1f}" '
                         f'fill="{PALETTE[i % len(PALETTE)]}"><title>{esc(s.label)} '
                         f'{esc(category)}: {value:.4g}</title></rect>')
    return _svg(title, "".join(parts))
