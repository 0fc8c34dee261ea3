"""Geometry of the rater-analysis charts: values read back from the pixels, order, labels."""

from __future__ import annotations

import numpy as np
import pytest

from reports.rater_charts import (
    FIT_RANGE,
    LABEL_GAP,
    Z95,
    _spread,
    misfit,
    severity_forest,
    threshold_points,
    wright_map,
)

RATERS = [
    {"rater": "Ana", "severity": -0.4, "se": 0.2, "infit": 1.0, "outfit": 0.9, "n": 30},
    {"rater": "Ben", "severity": 0.9, "se": 0.3, "infit": 1.7, "outfit": 1.2, "n": 24},
    {"rater": "Cai", "severity": -0.5, "se": 0.25, "infit": 0.8, "outfit": 0.4, "n": 18},
    {"rater": "Dee", "severity": None, "se": None, "infit": None, "outfit": None, "n": 0},
]


def test_forest_rows_read_back_and_run_harshest_first() -> None:
    forest = severity_forest(RATERS)
    frame = forest["frame"]
    rows = forest["rows"]
    assert [r["label"] for r in rows] == ["Ben", "Ana", "Cai"]  # Dee has no severity
    assert [r["y"] for r in rows] == sorted(r["y"] for r in rows)  # top to bottom
    for row, rater in zip(rows, [RATERS[1], RATERS[0], RATERS[2]], strict=True):
        assert frame.theta_of(row["x"]) == pytest.approx(rater["severity"])
        assert frame.theta_of(row["x_low"]) == pytest.approx(rater["severity"] - Z95 * rater["se"])
        assert frame.theta_of(row["x_high"]) == pytest.approx(rater["severity"] + Z95 * rater["se"])
    assert frame.theta_of(forest["zero"]) == pytest.approx(0.0)
    lo, hi = frame.x_range
    assert lo <= -0.5 - Z95 * 0.25 and hi >= 0.9 + Z95 * 0.3 and lo == int(lo) and hi == int(hi)
    assert forest["height"] > 3 * 30 and forest["width"] == forest["label_width"] + 420
    assert rows[0]["misfit"] == ["infit"] and rows[2]["misfit"] == ["outfit"]
    assert rows[1]["misfit"] == []


def test_misfit_uses_the_range_inclusively() -> None:
    low, high = FIT_RANGE
    assert misfit({"infit": low, "outfit": high}) == []
    assert misfit({"infit": high + 0.01, "outfit": low - 0.01}) == ["infit", "outfit"]
    assert misfit({"infit": None, "outfit": float("nan")}) == []


def test_labels_keep_their_order_and_a_gap_inside_the_box() -> None:
    ys = np.array([200.0, 100.0, 101.0, 102.0, 398.0, 399.0])
    placed = _spread(ys, 14.0, 404.0)
    order = np.argsort(ys, kind="stable")
    assert np.all(np.diff(placed[order]) >= LABEL_GAP - 1e-9)
    assert placed.max() <= 404.0 and placed.min() >= 14.0
    assert placed[0] == 200.0  # a label with room stays by its value


def test_threshold_points_from_numbers_and_records() -> None:
    assert threshold_points([-1.0, 0.2, 1.1]) == [("0|1", -1.0), ("1|2", 0.2), ("2|3", 1.1)]
    records = [{"criterion": "clarity", "step": 1, "threshold": -0.5},
               {"criterion": "clarity", "step": 2, "estimate": 0.7}, {"step": 3, "value": None}]
    assert threshold_points(records) == [("clarity 0|1", -0.5), ("clarity 1|2", 0.7)]


def test_wright_map_puts_every_facet_on_one_ruler() -> None:
    rng = np.random.default_rng(3)
    measures = rng.normal(0.3, 1.2, 200)
    students = [{"student_id": f"s{i}", "measure": float(m)} for i, m in enumerate(measures)]
    criteria = [{"criterion": "reasoning", "difficulty": -0.6},
                {"criterion": "clarity", "difficulty": 0.8}]
    wright = wright_map(students, criteria, RATERS, [-1.3, 0.1, 1.2])
    frame = wright["frame"]
    lo, hi = frame.y_range
    assert lo <= measures.min() and hi >= measures.max()
    assert sum(b["count"] for b in wright["bars"]) == 200 == wright["n_students"]
    biggest = max(wright["bars"], key=lambda b: b["count"])
    assert biggest["x"] + biggest["width"] <= frame.x(1)  # bars stay in the students' column
    for bar in wright["bars"]:
        assert frame.value_of(bar["y"]) == pytest.approx(bar["high"])
        inside = np.sum((measures >= bar["low"]) & (measures < bar["high"]))
        assert bar["count"] == inside
    by_label = {m["label"]: m for m in wright["criteria"] + wright["raters"] + wright["thresholds"]}
    assert set(by_label) == {"reasoning", "clarity", "Ana", "Ben", "Cai", "0|1", "1|2", "2|3"}
    for marker in by_label.values():
        assert frame.value_of(marker["y"]) == pytest.approx(marker["value"])
    # Ana (-0.4) and Cai (-0.5) are a few pixels apart: their labels are pushed apart
    assert abs(by_label["Ana"]["label_y"] - by_label["Cai"]["label_y"]) >= LABEL_GAP - 1e-9
    columns = [frame.theta_of(x) for x in wright["columns"]]
    assert columns == pytest.approx([0.5, 1.5, 2.5, 3.5])
