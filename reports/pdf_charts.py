"""The charts of the PDF reports, as reportlab drawings (:mod:`reportlab.graphics`).

Two charts, drawn from the report's data and computing nothing:

- :func:`skill_intervals`: one row per skill, its estimate (a dot) inside its 95% interval (a
  bar) against its cut score (a dashed tick), on one logit axis;
- :func:`trajectory`: the overall theta after each finished attempt with its 95% interval as a
  band.

Shape and line style carry the meaning (a dot, a bar, a dashed tick, a band), never colour alone;
every figure drawn is printed in the table next to the chart. Text inside a drawing does not wrap,
so labels are shortened with an ellipsis to their room (the tables give them in full).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from reportlab.graphics.charts.axes import XValueAxis, YValueAxis
from reportlab.graphics.shapes import Circle, Drawing, Line, Polygon, PolyLine, Rect, String
from reportlab.lib import colors
from reportlab.pdfbase.pdfmetrics import stringWidth

FONT = "Helvetica"
INK = colors.HexColor("#1f2933")
BAR = colors.HexColor("#9fb3c8")
BAND = colors.HexColor("#d9e2ec")
CUT = colors.HexColor("#b44d12")
ROW = 20.0
#: Least range of a chart's theta axis (logits): a narrow range would exaggerate small gaps.
MIN_RANGE = (-2.0, 2.0)


def fit_text(text: str, width: float, size: float, font: str = FONT) -> str:
    """``text`` shortened with an ellipsis so that it takes at most ``width`` points."""
    if stringWidth(text, font, size) <= width:
        return text
    while text and stringWidth(text + "\u2026", font, size) > width:
        text = text[:-1]
    return text + "\u2026"


def axis_range(values: Sequence[float | None]) -> tuple[float, float]:
    """Whole logits around ``values`` (``None`` skipped), covering at least :data:`MIN_RANGE`."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    lo = min([*finite, MIN_RANGE[0]])
    hi = max([*finite, MIN_RANGE[1]])
    return float(math.floor(lo - 0.25)), float(math.ceil(hi + 0.25))


def _dashed(x1: float, y1: float, x2: float, y2: float, colour=CUT, width: float = 1.4) -> Line:
    return Line(x1, y1, x2, y2, strokeColor=colour, strokeWidth=width, strokeDashArray=[3, 2])


def skill_intervals(skills: Sequence[dict[str, Any]], width: float, *, label_width: float = 110,
                    legend: Sequence[str] = ("estimate", "95% interval", "cut score"),
                    number: Callable[[float], str] = "{:.2f}".format) -> Drawing:
    """Each skill's theta and 95% interval against its cut score, one row per skill.

    Parameters
    ----------
    skills
        The report's ``skills`` entries (``skill``, ``theta``, ``interval95``, ``cut_score``).
    width
        Width of the drawing, points.
    legend
        The words of the legend (translated by the caller): estimate, interval, cut score.
    number
        Formats the axis ticks (the caller's locale).
    """
    values = [v for s in skills for v in (*s["interval95"], s.get("cut_score"))]
    lo, hi = axis_range(values)
    top, bottom = 8.0, 46.0
    height = top + bottom + ROW * len(skills)
    drawing = Drawing(width, height)
    axis = XValueAxis()
    axis.setPosition(label_width, bottom - 6, width - label_width - 10)
    axis.valueMin, axis.valueMax = lo, hi
    axis.valueSteps = [float(v) for v in range(int(lo), int(hi) + 1)]
    axis.labelTextFormat = number
    axis.labels.fontName, axis.labels.fontSize = FONT, 7
    axis.visibleGrid = True
    axis.gridStrokeColor, axis.gridStrokeWidth = colors.HexColor("#e4e7eb"), 0.5
    axis.gridStart, axis.gridEnd = bottom - 6, height - top
    axis.configure([(lo, hi)])
    drawing.add(axis)
    for n, skill in enumerate(skills):
        y = height - top - ROW * (n + 0.5)
        drawing.add(String(label_width - 6, y - 3, fit_text(skill["skill"], label_width - 10, 8),
                           fontName=FONT, fontSize=8, textAnchor="end", fillColor=INK))
        left, right = (axis.scale(v) for v in skill["interval95"])
        drawing.add(Rect(left, y - 3, max(right - left, 0.5), 6, fillColor=BAR,
                         strokeColor=INK, strokeWidth=0.4))
        if skill.get("cut_score") is not None:
            x = axis.scale(skill["cut_score"])
            drawing.add(_dashed(x, y - 8, x, y + 8))
        drawing.add(Circle(axis.scale(skill["theta"]), y, 3.2, fillColor=INK, strokeColor=None))
    _legend(drawing, 4, 8, legend)
    return drawing


def _legend(drawing: Drawing, x: float, y: float, words: Sequence[str]) -> None:
    """Dot = estimate, bar = interval, dashed tick = cut (in that order of ``words``)."""
    estimate, interval, cut = words
    drawing.add(Circle(x + 4, y + 3, 3, fillColor=INK, strokeColor=None))
    x += 12
    drawing.add(String(x, y, estimate, fontName=FONT, fontSize=7, fillColor=INK))
    x += stringWidth(estimate, FONT, 7) + 14
    drawing.add(Rect(x, y, 18, 6, fillColor=BAR, strokeColor=INK, strokeWidth=0.4))
    x += 22
    drawing.add(String(x, y, interval, fontName=FONT, fontSize=7, fillColor=INK))
    x += stringWidth(interval, FONT, 7) + 14
    drawing.add(_dashed(x + 3, y - 3, x + 3, y + 9))
    drawing.add(String(x + 10, y, cut, fontName=FONT, fontSize=7, fillColor=INK))


def trajectory(points: Sequence[dict[str, Any]], width: float, *, height: float = 150,
               x_labels: Sequence[str] = (), y_title: str = "theta",
               number: Callable[[float], str] = "{:.1f}".format) -> Drawing:
    """The overall theta after each attempt (a line with dots) and its 95% band (shaded).

    Parameters
    ----------
    points
        The report's ``trajectory``, oldest first (``theta``, ``interval95``).
    x_labels
        One label per point (the attempt's date, say); thinned when they would overlap.
    y_title
        The vertical axis' title (translated by the caller).
    """
    drawing = Drawing(width, height)
    left, bottom, right, top = 36.0, 22.0, 10.0, 8.0
    n = len(points)
    lo, hi = axis_range([v for p in points for v in p["interval95"]])
    x_axis = XValueAxis()
    x_axis.setPosition(left, bottom, width - left - right)
    x_axis.valueMin, x_axis.valueMax = 0.5, n + 0.5
    x_axis.valueSteps = [float(k) for k in range(1, n + 1)]
    every = max(1, math.ceil(n * 60 / (width - left - right)))  # ~60 pt a label
    labels = list(x_labels) or [str(k) for k in range(1, n + 1)]

    def x_label(value: float) -> str:
        k = round(value) - 1
        return labels[k] if 0 <= k < len(labels) and k % every == 0 else ""

    x_axis.labelTextFormat = x_label
    x_axis.labels.fontName, x_axis.labels.fontSize = FONT, 7
    x_axis.configure([(0.5, n + 0.5)])
    y_axis = YValueAxis()
    y_axis.setPosition(left, bottom, height - bottom - top)
    y_axis.valueMin, y_axis.valueMax = lo, hi
    y_axis.valueSteps = [float(v) for v in range(int(lo), int(hi) + 1)]
    y_axis.labelTextFormat = number
    y_axis.labels.fontName, y_axis.labels.fontSize = FONT, 7
    y_axis.visibleGrid = True
    y_axis.gridStrokeColor, y_axis.gridStrokeWidth = colors.HexColor("#e4e7eb"), 0.5
    y_axis.gridStart, y_axis.gridEnd = left, width - right
    y_axis.configure([(lo, hi)])
    drawing.add(y_axis)
    drawing.add(x_axis)
    xs = [x_axis.scale(k + 1) for k in range(n)]
    upper = [y_axis.scale(p["interval95"][1]) for p in points]
    lower = [y_axis.scale(p["interval95"][0]) for p in points]
    if n == 1:  # a band needs width: a short bar for the one attempt
        xs_band, upper, lower = [xs[0] - 6, xs[0] + 6], upper * 2, lower * 2
    else:
        xs_band = xs
    outline = [c for x, y in zip(xs_band, upper, strict=True) for c in (x, y)]
    outline += [c for x, y in reversed(list(zip(xs_band, lower, strict=True))) for c in (x, y)]
    drawing.add(Polygon(outline, fillColor=BAND, strokeColor=BAR, strokeWidth=0.5))
    ys = [y_axis.scale(p["theta"]) for p in points]
    if n > 1:
        drawing.add(PolyLine([c for xy in zip(xs, ys, strict=True) for c in xy],
                             strokeColor=INK, strokeWidth=1.2))
    for x, y in zip(xs, ys, strict=True):
        drawing.add(Circle(x, y, 2.6, fillColor=INK, strokeColor=None))
    drawing.add(String(4, height - top - 2, y_title, fontName=FONT, fontSize=7, fillColor=INK))
    return drawing
