"""Geometry of the rater-analysis charts: a forest plot of rater severities with their 95%
intervals, and a Wright map (students, criteria, raters and thresholds on one logit ruler).

Like :mod:`reports.charts` (whose :class:`~reports.charts.Frame` maps data to pixels here too),
the functions return plain numbers and strings; the template ``raters/analysis.html`` draws them
as inline SVG with a title, a description and a table of the same values, so the charts need no
JavaScript and have a text alternative. Nothing is estimated here: the values come from the
analysis (:func:`evidence.rater_analysis.analyse_rubric`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from reports.charts import BOTTOM, LEFT, RIGHT, TOP, WIDTH, Frame

#: Mean squares outside this range mark a rater or criterion as misfitting (Linacre's "productive
#: for measurement" range, 0.5 to 1.5).
FIT_RANGE = (0.5, 1.5)
#: Normal quantile of the 95% intervals.
Z95 = 1.959963984540054
#: Pixels for the rater names left of the forest plot, and per rater row.
LABEL_WIDTH = 130.0
#: Width of the forest plot right of the labels (narrower than the other charts, so that the
#: text stays legible when the page is 375 px wide).
FOREST_WIDTH = 420.0
ROW_HEIGHT = 30.0
#: Height of the Wright map, its students' histogram bin width (logits), and the least vertical
#: distance between two labels in one column (pixels).
WRIGHT_HEIGHT = 460.0
WRIGHT_BIN = 0.5
LABEL_GAP = 17.0


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def misfit(entry: Mapping[str, Any]) -> list[str]:
    """Which of ``infit`` and ``outfit`` of ``entry`` fall outside :data:`FIT_RANGE`."""
    low, high = FIT_RANGE
    return [name for name in ("infit", "outfit")
            if (v := _number(entry.get(name))) is not None and not low <= v <= high]


def _whole_range(values: Sequence[float], least: float = 2.0) -> tuple[float, float]:
    """Whole logits around ``values``, at least ``-least .. least``."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    lo = math.floor(min([-least, *finite]))
    hi = math.ceil(max([least, *finite]))
    return float(lo), float(hi)


def _tick_values(lo: float, hi: float) -> list[float]:
    step = 1.0 if hi - lo <= 8 else 2.0
    return [float(v) for v in np.arange(math.ceil(lo / step) * step, hi + 1e-9, step)]


def _label(value: float) -> str:
    text = f"{value:g}"
    return "0" if value == 0 else text.replace("-", "\u2212")


def severity_forest(raters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The raters' severities with their 95% intervals, harshest on top.

    Parameters
    ----------
    raters
        ``{"rater", "severity", "se", "infit", "outfit", "n"}`` per rater (logits; raters
        centred at 0, higher is harsher). Raters without a severity are left out of the drawing.

    Returns
    -------
    dict
        ``width``, ``height`` and ``label_width`` of the SVG; ``plot`` (the plot box, pixels,
        inside the part right of the labels); ``frame`` (x: logits, y: rows); ``x_ticks``
        (pixel, label); ``zero`` (pixel of 0 logits); ``rows``: per rater ``label``, ``y``,
        ``x``, ``x_low``, ``x_high`` (pixels) and ``severity``, ``low``, ``high``, ``misfit``.
    """
    drawn = [r for r in raters if _number(r.get("severity")) is not None]
    drawn.sort(key=lambda r: -float(r["severity"]))
    severity = np.array([float(r["severity"]) for r in drawn])
    se = np.array([_number(r.get("se")) or 0.0 for r in drawn])
    low, high = severity - Z95 * se, severity + Z95 * se
    lo, hi = _whole_range([*low.tolist(), *high.tolist()], least=1.0)
    n = max(len(drawn), 1)
    height = TOP + BOTTOM + ROW_HEIGHT * n
    frame = Frame((lo, hi), (0.0, float(n)), width=FOREST_WIDTH, height=height)
    ys = frame.y(n - np.arange(len(drawn)) - 0.5)
    rows = [{"label": str(r["rater"]), "y": float(y), "x": float(frame.x(s)),
             "x_low": float(frame.x(a)), "x_high": float(frame.x(b)), "severity": float(s),
             "low": float(a), "high": float(b), "se": _number(r.get("se")),
             "misfit": misfit(r)}
            for r, y, s, a, b in zip(drawn, np.atleast_1d(ys), severity, low, high, strict=True)]
    return {"width": LABEL_WIDTH + FOREST_WIDTH, "height": height, "label_width": LABEL_WIDTH,
            "plot": _box(frame), "frame": frame, "rows": rows, "zero": float(frame.x(0.0)),
            "x_ticks": [(float(frame.x(v)), _label(v)) for v in _tick_values(lo, hi)]}


def _box(frame: Frame) -> dict[str, float]:
    return {"left": LEFT, "top": TOP, "right": frame.width - RIGHT,
            "bottom": frame.height - BOTTOM}


def _spread(ys: np.ndarray, top: float, bottom: float, gap: float = LABEL_GAP) -> np.ndarray:
    """Label positions near ``ys`` (pixels) at least ``gap`` apart, kept inside the box as far
    as they fit; the order of the labels is the order of ``ys``."""
    if ys.size == 0:
        return ys
    order = np.argsort(ys, kind="stable")
    sorted_ys = np.maximum(ys[order], top + gap / 2)
    steps = gap * np.arange(ys.size)
    placed = np.maximum.accumulate(sorted_ys - steps) + steps  # push down, keeping the gap
    # then lift the last ones back above the bottom (both sequences keep the gap, so their
    # minimum does too)
    placed = np.minimum(placed, bottom - steps[::-1])
    out = np.empty_like(placed)
    out[order] = placed
    return out


def _markers(entries: Sequence[tuple[str, float]], frame: Frame, column: int) -> list[dict]:
    if not entries:
        return []
    values = np.array([v for _, v in entries])
    ys = frame.y(values)
    box = _box(frame)
    label_ys = _spread(np.atleast_1d(ys), box["top"], box["bottom"])
    x0, x1 = float(frame.x(column)), float(frame.x(column + 1))
    return [{"label": label, "short": _short(label), "value": float(v), "y": float(y),
             "label_y": float(ly),
             "x0": x0 + 4, "x1": x0 + 18, "text_x": x0 + 24, "column_right": x1}
            for (label, v), y, ly in zip(entries, np.atleast_1d(ys), label_ys, strict=True)]


#: Characters of a label drawn in a Wright map column (the table gives it in full).
SHORT_LABEL = 11


def _short(label: str) -> str:
    """A label cut to :data:`SHORT_LABEL` characters; a threshold keeps its step (``k|k+1``)."""
    if len(label) <= SHORT_LABEL:
        return label
    head, _, step = label.rpartition(" ")
    if head and "|" in step:
        keep = max(SHORT_LABEL - len(step) - 2, 1)
        return f"{head[:keep]}\u2026 {step}"
    return label[: SHORT_LABEL - 1] + "\u2026"


def threshold_points(thresholds: Sequence[Any],
                     criteria: Sequence[str] = ()) -> list[tuple[str, float]]:
    """(label, logits) for each threshold of the fit's ``thresholds``.

    Accepts a list of numbers (the shared Andrich thresholds of the rating-scale model, labelled
    ``1|2``, ``2|3`` ... between categories), or a list of mappings with the value under
    ``threshold``, ``estimate``, ``tau`` or ``value``, and optionally ``criterion`` and ``step``
    (or ``category``); partial-credit thresholds are labelled ``criterion k|k+1``.
    """
    points = []
    for k, entry in enumerate(thresholds):
        if isinstance(entry, Mapping):
            value = next((_number(entry[key]) for key in ("threshold", "estimate", "tau", "value")
                          if key in entry), None)
            step = entry.get("step", entry.get("category", k + 1))
            criterion = entry.get("criterion")
        else:
            value, step, criterion = _number(entry), k + 1, None
        if value is None:
            continue
        step = int(step)
        name = f"{step - 1}|{step}"
        points.append((f"{criterion} {name}" if criterion is not None else name, value))
    return points


def wright_map(students: Sequence[Mapping[str, Any]], criteria: Sequence[Mapping[str, Any]],
               raters: Sequence[Mapping[str, Any]], thresholds: Sequence[Any]) -> dict[str, Any]:
    """Students, criteria, raters and thresholds on one vertical logit ruler.

    Parameters
    ----------
    students
        ``{"measure"}`` per student (logits).
    criteria
        ``{"criterion", "difficulty"}`` per criterion.
    raters
        ``{"rater", "severity"}`` per rater.
    thresholds
        The fit's thresholds (see :func:`threshold_points`).

    Returns
    -------
    dict
        ``width``, ``height``, ``plot`` (box), ``frame`` (x: four columns 0..4, y: logits),
        ``y_ticks``, ``columns`` (heading and centre pixel of each), ``bars`` (the students'
        histogram: ``y``, ``height``, ``x``, ``width`` pixels and ``low``, ``high``, ``count``),
        and ``criteria``, ``raters``, ``thresholds``: markers (``label``, ``value``, ``y`` of the
        value and ``label_y`` of its label, pixels).
    """
    measures = np.array([m for s in students if (m := _number(s.get("measure"))) is not None])
    crit = [(str(c["criterion"]), v) for c in criteria
            if (v := _number(c.get("difficulty"))) is not None]
    rat = [(str(r["rater"]), v) for r in raters if (v := _number(r.get("severity"))) is not None]
    thr = threshold_points(thresholds)
    lo, hi = _whole_range([*measures.tolist(), *(v for _, v in crit + rat + thr)])
    frame = Frame((0.0, 4.0), (lo, hi), width=WIDTH, height=WRIGHT_HEIGHT)
    edges = np.arange(lo, hi + WRIGHT_BIN / 2, WRIGHT_BIN)
    counts, _ = np.histogram(np.clip(measures, lo, hi), bins=edges)
    most = max(int(counts.max(initial=0)), 1)
    x0, x1 = float(frame.x(0)), float(frame.x(1))
    bars = [{"x": x0 + 2, "width": float((x1 - x0 - 8) * c / most),
             "y": float(frame.y(b)), "height": float(frame.y(a) - frame.y(b)) - 1,
             "low": float(a), "high": float(b), "count": int(c)}
            for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True) if c]
    columns = [float((frame.x(k) + frame.x(k + 1)) / 2) for k in range(4)]
    return {"width": WIDTH, "height": WRIGHT_HEIGHT, "plot": _box(frame), "frame": frame,
            "y_ticks": [(float(frame.y(v)), _label(v)) for v in _tick_values(lo, hi)],
            "columns": columns, "separators": [float(frame.x(k)) for k in range(1, 4)],
            "bars": bars, "n_students": int(measures.size),
            "criteria": _markers(crit, frame, 1), "raters": _markers(rat, frame, 2),
            "thresholds": _markers(thr, frame, 3)}
