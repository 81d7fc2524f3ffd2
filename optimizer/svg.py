"""The shared pieces of the self-contained HTML reports: the page style, escaping, and small
inline-SVG plotting primitives.

Pure string building: no script, nothing loaded from outside. A :class:`Frame` maps data to
pixels (a linear x axis, a linear or log-10 y axis); the helpers draw the plot box, the
ticks with their grid lines, the axis titles and a labelled reference line. Every text that
comes from data goes through :func:`esc`.
"""

from __future__ import annotations

import html as htmllib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

#: Colours for one series each, told apart with colour-vision deficiencies (Okabe-Ito).
PALETTE: tuple[str, ...] = (
    "#0072b2",
    "#d55e00",
    "#009e73",
    "#cc79a7",
    "#e69f00",
    "#56b4e9",
    "#7f3c8d",
    "#8c6d31",
)

#: The page's base style (fonts, body, headings); each report adds its own rules after it.
PAGE_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328;
  margin: 0; background: #f6f8fa; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 32px 48px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 12px; }
h2 { font-size: 18px; margin: 28px 0 10px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
"""


def esc(text: object) -> str:
    """``text`` escaped for HTML and SVG, quotes included."""
    return htmllib.escape(str(text), quote=True)


def nice_step(span: float, count: int = 6) -> float:
    """A 1, 2 or 5 times a power of ten that cuts ``span`` into about ``count`` parts."""
    raw = span / count
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)


def ticks(lo: float, hi: float, integer: bool = False) -> list[float]:
    """Round values from ``lo`` to ``hi`` at a :func:`nice_step` (whole numbers if asked)."""
    step = nice_step(hi - lo)
    if integer:
        step = max(1.0, round(step))
    first = math.ceil(lo / step - 1e-9) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def log_ticks(lo: float, hi: float, most: int = 12) -> list[float]:
    """Ticks for a log axis over ``[lo, hi]``: 1, 2 and 5 times the powers of ten; only the
    powers (or every other, or fifth, power) when that would make more than ``most`` ticks;
    evenly spaced :func:`ticks` when the range is too narrow to hold three of those."""
    first, last = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    nice = [m * 10.0**e for e in range(first, last + 1) for m in (1, 2, 5)]
    if sum(1 for v in nice if lo <= v <= hi) < 3:
        return [v for v in ticks(lo, hi) if v > 0]
    for mantissas, every in (((1, 2, 5), 1), ((1,), 1), ((1,), 2), ((1,), 5)):
        values = [
            m * 10.0**e
            for e in range(first, last + 1)
            if e % every == 0
            for m in mantissas
            if lo * (1 - 1e-9) <= m * 10.0**e <= hi * (1 + 1e-9)
        ]
        if len(values) <= most:
            return values
    return values


@dataclass(frozen=True)
class Frame:
    """The plot's pixel box and data ranges: maps data to SVG coordinates."""

    width: int = 960
    height: int = 340
    left: int = 70
    right: int = 24
    top: int = 16
    bottom: int = 50
    x_min: float = 0.0
    x_max: float = 1.0
    y_min: float = 0.9
    y_max: float = 1.2
    log_y: bool = False

    def x(self, value: float) -> float:
        span = self.width - self.left - self.right
        return self.left + span * (value - self.x_min) / (self.x_max - self.x_min)

    def y(self, value: float) -> float:
        span = self.height - self.top - self.bottom
        if self.log_y:
            lo, hi = math.log10(self.y_min), math.log10(self.y_max)
            return self.top + span * (hi - math.log10(value)) / (hi - lo)
        return self.top + span * (self.y_max - value) / (self.y_max - self.y_min)

    @property
    def x_end(self) -> int:
        """The right edge of the plot area, in pixels."""
        return self.width - self.right

    @property
    def y_end(self) -> int:
        """The bottom edge of the plot area, in pixels."""
        return self.height - self.bottom


def open_svg(f: Frame, label: str) -> list[str]:
    """The ``<svg>`` start tag (``label`` is its accessible name) and the plot area's box."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{f.width}" height="{f.height}" '
        f'viewBox="0 0 {f.width} {f.height}" role="img" '
        f'aria-label="{esc(label)}">',
        f'<rect x="{f.left}" y="{f.top}" width="{f.width - f.left - f.right}" '
        f'height="{f.height - f.top - f.bottom}" fill="#fff" stroke="#d0d7de"/>',
    ]


def _speedup_label(value: float) -> str:
    return f"{value:.2f}x"


def axis_ticks(
    f: Frame,
    x_ticks: Sequence[float] | None = None,
    y_ticks: Sequence[float] | None = None,
    y_fmt: Callable[[float], str] = _speedup_label,
) -> list[str]:
    """Tick marks and values under the x axis, grid lines and values along the y axis.

    ``x_ticks`` defaults to whole numbers from ``x_min`` to ``x_max`` (pass ``[]`` for none);
    ``y_ticks`` to :func:`ticks` (or :func:`log_ticks` on a log axis) over the y range.
    """
    xs = ticks(f.x_min, f.x_max, integer=True) if x_ticks is None else x_ticks
    if y_ticks is None:
        y_ticks = log_ticks(f.y_min, f.y_max) if f.log_y else ticks(f.y_min, f.y_max)
    base_y = f.y_end
    out = []
    for xv in xs:
        x = f.x(xv)
        out.append(
            f'<line x1="{x:.1f}" y1="{base_y}" x2="{x:.1f}" y2="{base_y + 5}" stroke="#59636e"/>'
            f'<text x="{x:.1f}" y="{base_y + 18}" text-anchor="middle">{xv:g}</text>'
        )
    for yv in y_ticks:
        y = f.y(yv)
        out.append(
            f'<line x1="{f.left}" y1="{y:.1f}" x2="{f.x_end}" y2="{y:.1f}" '
            'stroke="#eaeef2"/>'
            f'<text x="{f.left - 8}" y="{y + 4:.1f}" text-anchor="end">{esc(y_fmt(yv))}</text>'
        )
    return out


def axis_labels(f: Frame, x_label: str, y_label: str) -> list[str]:
    """The axis titles: centred under the x axis, and turned up along the y axis."""
    mid_x = (f.left + f.width - f.right) / 2
    mid_y = (f.top + f.height - f.bottom) / 2
    return [
        f'<text x="{mid_x:.1f}" y="{f.height - 10}" text-anchor="middle">{esc(x_label)}</text>',
        f'<text x="16" y="{mid_y:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 16 {mid_y:.1f})">{esc(y_label)}</text>',
    ]


def hline(f: Frame, value: float, label: str, x_right: float | None = None) -> str:
    """A dashed reference line across the plot at y = ``value``, labelled at its right end."""
    y = f.y(value)
    right = f.x(f.x_max) if x_right is None else x_right
    return (
        f'<line x1="{f.left}" y1="{y:.1f}" x2="{right:.1f}" y2="{y:.1f}" '
        'stroke="#59636e" stroke-width="1.2" stroke-dasharray="6 4"/>'
        f'<text x="{right - 4:.1f}" y="{y - 5:.1f}" text-anchor="end">{esc(label)}</text>'
    )
