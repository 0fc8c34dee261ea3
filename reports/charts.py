"""Geometry of the small SVG charts on the staff pages, computed on the server with numpy.

The functions here return plain numbers and strings (pixel coordinates, tick labels, value tables);
the templates (``assess/charts.html``) lay them out as inline SVG with a title, a description and
a table of values, so no chart needs JavaScript and every chart has a text alternative.

Item curves use the engine's own model functions (:mod:`cat_engine.models`), so a curve shows
exactly what the engine computes; nothing here repeats an IRT formula.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cat_engine import ItemBank
from cat_engine.models import category_probabilities, information

#: Theta range (logits) the item curves cover, and the points they are drawn through.
THETA_RANGE = (-4.0, 4.0)
CURVE_POINTS = 161
#: Thetas the table of values under each item chart lists.
TABLE_THETAS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)

WIDTH, HEIGHT = 520.0, 300.0
LEFT, RIGHT, TOP, BOTTOM = 66.0, 18.0, 14.0, 56.0


@dataclass(frozen=True)
class Frame:
    """The mapping from data to pixels: ``x`` in ``x_range`` and ``y`` in ``y_range`` fill the
    plot area of a ``WIDTH`` x ``HEIGHT`` chart inside its margins (y grows upwards)."""

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    width: float = WIDTH
    height: float = HEIGHT

    def x(self, value: float | np.ndarray) -> float | np.ndarray:
        lo, hi = self.x_range
        span = self.width - LEFT - RIGHT
        return LEFT + (np.asarray(value, dtype=float) - lo) / (hi - lo) * span

    def y(self, value: float | np.ndarray) -> float | np.ndarray:
        lo, hi = self.y_range
        span = self.height - TOP - BOTTOM
        return TOP + span - (np.asarray(value, dtype=float) - lo) / (hi - lo) * span

    def theta_of(self, px: float) -> float:
        """Inverse of :meth:`x` (for tests reading values back from a drawing)."""
        lo, hi = self.x_range
        return lo + (px - LEFT) / (self.width - LEFT - RIGHT) * (hi - lo)

    def value_of(self, py: float) -> float:
        """Inverse of :meth:`y`."""
        lo, hi = self.y_range
        span = self.height - TOP - BOTTOM
        return lo + (TOP + span - py) / span * (hi - lo)


@dataclass
class Chart:
    """Everything a template needs to draw one chart."""

    frame: Frame
    x_ticks: list[tuple[float, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)
    bars: list[dict[str, Any]] = field(default_factory=list)
    areas: list[dict[str, Any]] = field(default_factory=list)

    @property
    def plot(self) -> dict[str, float]:
        """The plot area's box in pixels."""
        return {"left": LEFT, "top": TOP, "right": self.frame.width - RIGHT,
                "bottom": self.frame.height - BOTTOM, "width": self.frame.width,
                "height": self.frame.height}


def _points(frame: Frame, xs: np.ndarray, ys: np.ndarray) -> str:
    px, py = frame.x(xs), frame.y(ys)
    return " ".join(f"{x:.2f},{y:.2f}" for x, y in zip(px, py, strict=True))


def _ticks(lo: float, hi: float, n: int = 5, digits: int = 1) -> list[float]:
    return [round(v, 6) for v in np.linspace(lo, hi, n)] if hi > lo else [lo]


def _y_ticks(top: float, whole: bool) -> list[float]:
    """Ticks from 0 to ``top``: five, or for whole numbers (counts) a step that is whole."""
    if not whole:
        return _ticks(0.0, top, 5)
    for parts in (5, 4, 2, 1):
        step = top / parts
        if step.is_integer():
            return [step * k for k in range(parts + 1)]
    return [0.0, top]


def _label(value: float, digits: int) -> str:
    text = f"{value:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if float(text) == 0 else text.replace("-", "\u2212")


def _axes(chart: Chart, x_values: Sequence[float], y_values: Sequence[float],
          x_digits: int = 0, y_digits: int = 1) -> Chart:
    chart.x_ticks = [(float(chart.frame.x(v)), _label(v, x_digits)) for v in x_values]
    chart.y_ticks = [(float(chart.frame.y(v)), _label(v, y_digits)) for v in y_values]
    return chart


def item_bank_of(parameters: Mapping[str, Any], code: str = "item") -> ItemBank:
    """A one-item engine bank from a parameter set (``model, a, b, c, d, thresholds``)."""
    record = {"item_id": code, **{k: v for k, v in parameters.items() if v is not None}}
    return ItemBank.from_records([record])


def item_curves(parameters: Mapping[str, Any], code: str = "item") -> dict[str, Any]:
    """Response curves and the information curve of one item, ready to draw.

    Parameters
    ----------
    parameters
        The item's active parameters on the bank's logistic scale (D = 1).

    Returns
    -------
    dict
        ``probability`` (a :class:`Chart` with one series per response category, or the
        probability of a correct answer for dichotomous items), ``information`` (a
        :class:`Chart`), ``categories`` (number of categories), ``table`` (rows of theta,
        category probabilities and information at :data:`TABLE_THETAS`), ``peak`` (theta and
        value of maximum information).
    """
    bank = item_bank_of(parameters, code)
    theta = np.linspace(*THETA_RANGE, CURVE_POINTS)
    probs = category_probabilities(bank, np.zeros_like(theta, dtype=np.intp), theta)
    info = information(bank, np.zeros_like(theta, dtype=np.intp), theta)
    k = int(bank.n_categories[0])
    dichotomous = k == 2
    frame = Frame(THETA_RANGE, (0.0, 1.0))
    probability = _axes(Chart(frame), _ticks(*THETA_RANGE, 9), _ticks(0, 1, 5), 0, 3)
    shown = [1] if dichotomous else list(range(k))
    for category in shown:
        probability.series.append({"category": category, "class": f"series-{category % 6}",
                                   "points": _points(frame, theta, probs[:, category])})
    top = float(info.max())
    ceiling = _nice_ceiling(top)
    info_frame = Frame(THETA_RANGE, (0.0, ceiling))
    information_chart = _axes(Chart(info_frame), _ticks(*THETA_RANGE, 9),
                              _ticks(0, ceiling, 5), 0, 3)
    information_chart.series.append({"category": None, "class": "series-info",
                                     "points": _points(info_frame, theta, info)})
    table_theta = np.asarray(TABLE_THETAS)
    table_p = category_probabilities(bank, np.zeros(table_theta.size, dtype=np.intp), table_theta)
    table_i = information(bank, np.zeros(table_theta.size, dtype=np.intp), table_theta)
    table = [{"theta": float(t), "p": [float(table_p[n, c]) for c in shown],
              "information": float(table_i[n])} for n, t in enumerate(table_theta)]
    peak = int(np.argmax(info))
    return {"probability": probability, "information": information_chart, "categories": k,
            "shown": shown, "dichotomous": dichotomous, "table": table,
            "peak": {"theta": float(theta[peak]), "value": top}}


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least ``value``."""
    if not np.isfinite(value) or value <= 0:
        return 1.0
    power = 10.0 ** np.floor(np.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if step * power >= value - 1e-12:
            return float(step * power)
    return float(10 * power)


def line_chart(xs: Sequence[float], series: Sequence[Mapping[str, Any]],
               x_digits: int = 1, y_digits: int = 3) -> Chart:
    """A line chart of one or more series over the same ``xs``.

    ``series`` are mappings with ``values`` (same length as ``xs``) and ``class`` (a CSS class);
    the y axis starts at 0 and ends at a round number above the largest value.
    """
    xs = np.asarray(xs, dtype=float)
    top = max((float(np.nanmax(s["values"])) for s in series if len(s["values"])), default=1.0)
    lo, hi = (float(xs.min()), float(xs.max())) if xs.size else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 1, hi + 1
    frame = Frame((lo, hi), (0.0, _nice_ceiling(top)))
    chart = _axes(Chart(frame), _ticks(lo, hi, 5), _y_ticks(frame.y_range[1], y_digits == 0),
                  x_digits, y_digits)
    for entry in series:
        values = np.asarray(entry["values"], dtype=float)
        chart.series.append({"class": entry["class"], "points": _points(frame, xs, values),
                             "dots": [(float(frame.x(x)), float(frame.y(v)))
                                      for x, v in zip(xs, values, strict=True)]})
    return chart


def histogram(values: Sequence[float], bins: int = 10, upper: float | None = None) -> Chart:
    """A bar chart of how many ``values`` fall in each of ``bins`` equal bins of ``0..upper``
    (by default the largest value); each bar keeps its bin's edges and count."""
    data = np.asarray(values, dtype=float)
    top = upper if upper is not None else (float(data.max()) if data.size else 1.0)
    top = top if top > 0 else 1.0
    counts, edges = np.histogram(data, bins=bins, range=(0.0, top))
    frame = Frame((0.0, top), (0.0, _nice_ceiling(float(counts.max()) if counts.size else 1.0)))
    chart = _axes(Chart(frame), [float(e) for e in edges[:: max(1, bins // 5)]],
                  _y_ticks(frame.y_range[1], True), 2, 0)
    for n, count in enumerate(counts):
        x0, x1 = float(frame.x(edges[n])), float(frame.x(edges[n + 1]))
        y = float(frame.y(count))
        chart.bars.append({"x": x0 + 1, "y": y, "width": max(x1 - x0 - 2, 1.0),
                           "height": float(frame.y(0)) - y, "low": float(edges[n]),
                           "high": float(edges[n + 1]), "count": int(count)})
    return chart


# -- the bank at a glance (assessment pages) ------------------------------------------------------

#: Difficulty bins of the bank's difficulty chart (logits); values outside go to the end bins.
DIFFICULTY_RANGE = (-4.0, 4.0)
DIFFICULTY_BINS = 16


def bank_overview(bank: ItemBank) -> dict[str, Any]:
    """The test information curve and the difficulty distribution of a set of items.

    Parameters
    ----------
    bank : ItemBank
        The items (their active parameters, on the bank's logistic scale).

    Returns
    -------
    dict
        ``information`` (a :class:`Chart` of the summed item information over
        :data:`THETA_RANGE`, computed by :func:`cat_engine.models.information` for every item
        and theta at once), ``difficulty`` (a :class:`Chart` of bars: how many items have their
        location in each of :data:`DIFFICULTY_BINS` bins of :data:`DIFFICULTY_RANGE`; ``b`` for
        dichotomous items, the mean threshold for polytomous ones, clipped into the range),
        ``table`` (theta, information, standard error ``1 / sqrt(information)`` at
        :data:`TABLE_THETAS`), ``peak`` and ``n_items``.
    """
    theta = np.linspace(*THETA_RANGE, CURVE_POINTS)
    items = np.arange(len(bank), dtype=np.intp)
    total = information(bank, items[None, :], theta[:, None]).sum(axis=1)
    frame = Frame(THETA_RANGE, (0.0, _nice_ceiling(float(total.max()))))
    top = frame.y_range[1]
    info_chart = _axes(Chart(frame), _ticks(*THETA_RANGE, 9), _y_ticks(top, top >= 5), 0,
                       0 if top >= 5 else 2)
    info_chart.series.append({"category": None, "class": "series-info",
                              "points": _points(frame, theta, total)})
    location = np.nanmean(bank.thresholds, axis=1)  # column 0 holds b for dichotomous items
    counts, edges = np.histogram(np.clip(location, *DIFFICULTY_RANGE), bins=DIFFICULTY_BINS,
                                 range=DIFFICULTY_RANGE)
    bar_frame = Frame(DIFFICULTY_RANGE, (0.0, _nice_ceiling(float(max(counts.max(), 1)))))
    difficulty = _axes(Chart(bar_frame), _ticks(*DIFFICULTY_RANGE, 9),
                       _y_ticks(bar_frame.y_range[1], True), 0, 0)
    for n, count in enumerate(counts):
        x0, x1 = float(bar_frame.x(edges[n])), float(bar_frame.x(edges[n + 1]))
        y = float(bar_frame.y(count))
        difficulty.bars.append({"x": x0 + 1, "y": y, "width": max(x1 - x0 - 2, 1.0),
                                "height": float(bar_frame.y(0)) - y, "low": float(edges[n]),
                                "high": float(edges[n + 1]), "count": int(count)})
    table_theta = np.asarray(TABLE_THETAS)
    table_info = information(bank, items[None, :], table_theta[:, None]).sum(axis=1)
    peak = int(np.argmax(total))
    return {"information": info_chart, "difficulty": difficulty, "n_items": len(bank),
            "table": [{"theta": float(t), "information": float(i),
                       "se": float(1 / np.sqrt(i)) if i > 0 else None}
                      for t, i in zip(table_theta, table_info, strict=True)],
            "bins": [{"low": b["low"], "high": b["high"], "count": b["count"]}
                     for b in difficulty.bars],
            "peak": {"theta": float(theta[peak]), "value": float(total[peak])}}


def evidence_charts(evidence: Mapping[str, Any]) -> dict[str, Any]:
    """Charts of one calibrated item's observed versus expected scores by ability.

    ``evidence`` is :func:`api.services.calibration_runs.item_evidence`: the model's expected
    score curve, the mean observed score of each ability group (dots on a line), and per DIF
    group the observed means by the same ability groups.

    Returns
    -------
    dict
        ``fit`` (a :class:`Chart`: the model curve, class ``series-model``, and the observed
        means, class ``series-0``, with dots) and ``dif`` (a :class:`Chart` with the model curve
        and one observed series per group, classes ``group_classes``; None without groups).
    """
    top = float(evidence["max_score"]) or 1.0
    frame = Frame(THETA_RANGE, (0.0, top))
    y_digits = 2 if top == 1.0 else 0
    curve = evidence["curve"]
    xs = np.clip(np.asarray(curve["theta"], dtype=float), *THETA_RANGE)

    def model_series() -> dict[str, Any]:
        return {"category": None, "class": "series-model",
                "points": _points(frame, xs, np.asarray(curve["expected"], dtype=float))}

    def observed(bins: Sequence[Mapping[str, Any]], css: str) -> dict[str, Any]:
        bins = [b for b in bins if b["n"] and b["observed"] is not None]
        theta = np.clip(np.array([b["theta"] for b in bins], dtype=float), *THETA_RANGE)
        values = np.array([b["observed"] for b in bins], dtype=float)
        return {"category": None, "class": css, "points": _points(frame, theta, values),
                "dots": [(float(frame.x(x)), float(frame.y(v)))
                         for x, v in zip(theta, values, strict=True)]}

    def chart() -> Chart:
        y_ticks = _ticks(0, 1, 5) if top == 1.0 else _y_ticks(top, top.is_integer())
        return _axes(Chart(frame), _ticks(*THETA_RANGE, 9), y_ticks, 0, y_digits)

    fit = chart()
    fit.series += [model_series(), observed(evidence["bins"], "series-0")]
    dif = None
    classes = [GROUP_CLASSES[k % len(GROUP_CLASSES)]
               for k in range(len(evidence.get("groups") or []))]
    if evidence.get("groups"):
        dif = chart()
        dif.series.append(model_series())
        for css, group in zip(classes, evidence["groups"], strict=True):
            dif.series.append(observed(group["bins"], css))
    return {"fit": fit, "dif": dif, "group_classes": classes}


#: Solid-line classes for the groups of a DIF chart (series-2 is drawn dashed).
GROUP_CLASSES = ("series-0", "series-1", "series-3", "series-4", "series-5")


def theta_trajectory(positions: Sequence[int], theta: Sequence[float], low: Sequence[float],
                     high: Sequence[float], cut_score: float | None = None) -> Chart:
    """The ability estimate after each answer, with its 95% band, over the items of an attempt.

    Parameters
    ----------
    positions
        1-based positions of the scored items in the attempt (pretest items, which do not move
        the estimate, are left out by the caller).
    theta, low, high
        The estimate after each of those answers and its 95% interval (logits), as the engine
        made them (:func:`evidence.review.attempt_review`).
    cut_score
        The test's overall cut score (logits), drawn as a horizontal line when given.

    Returns
    -------
    Chart
        ``series``: the estimate (``series-theta``, a dot per answer) and the cut score
        (``series-cut``); ``areas``: the band as one polygon (``band-theta``). The y axis spans
        whole logits around the band and the cut, at least -3 to 3.
    """
    xs = np.asarray(positions, dtype=float)
    values = np.asarray(theta, dtype=float)
    lows, highs = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    extremes = [-3.0, 3.0, *lows.tolist(), *highs.tolist()]
    if cut_score is not None:
        extremes.append(cut_score)
    y_lo, y_hi = float(np.floor(min(extremes))), float(np.ceil(max(extremes)))
    x_hi = max(float(xs.max()) if xs.size else 1.0, 2.0)
    frame = Frame((1.0, x_hi), (y_lo, y_hi))
    step = max(1, int(np.ceil((x_hi - 1) / 10)))
    chart = _axes(Chart(frame), list(np.arange(1, x_hi + 0.5, step)),
                  list(np.arange(y_lo, y_hi + 0.5, 1.0 if y_hi - y_lo <= 8 else 2.0)), 0, 0)
    if xs.size:
        outline = np.concatenate([xs, xs[::-1]]), np.concatenate([highs, lows[::-1]])
        chart.areas.append({"class": "band-theta", "points": _points(frame, *outline)})
        chart.series.append({"class": "series-theta", "category": None,
                             "points": _points(frame, xs, values),
                             "dots": [(float(frame.x(x)), float(frame.y(v)))
                                      for x, v in zip(xs, values, strict=True)]})
    if cut_score is not None:
        chart.series.append({"class": "series-cut", "category": None,
                             "points": _points(frame, np.array([1.0, x_hi]),
                                               np.array([cut_score, cut_score]))})
    return chart
