"""NT10 thresholds, rapid-guess flags and response-time effort against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.response_time import (
    NT10,
    ThresholdRule,
    nt_thresholds,
    rapid_guess_flags,
    response_time_effort,
    thresholds_from_times,
)

NAN = math.nan


def test_nt10_is_a_tenth_of_the_mean_capped_at_10_s_and_floored_at_1_s():
    # means 45 s -> 4.5 s; 250 s -> 25 s capped to 10 s; 6 s -> 0.6 s floored to 1 s
    thresholds = nt_thresholds([45.0, 250.0, 6.0], [30, 30, 30])
    assert thresholds.tolist() == pytest.approx([4.5, 10.0, 1.0])


def test_items_with_too_few_times_fall_back_to_the_floor_or_a_given_default():
    # 19 times (< 20) and none at all: the floor; 20 times: the normative value
    assert nt_thresholds([45.0, NAN, 45.0], [19, 0, 20]).tolist() == pytest.approx([1.0, 1.0, 4.5])
    rule = ThresholdRule(min_responses=5, fallback=3.0, floor=0.5, cap=8.0, fraction=0.15)
    assert nt_thresholds([100.0, 20.0, 2.0, 50.0], [5, 5, 5, 4], rule).tolist() == pytest.approx(
        [8.0, 3.0, 0.5, 3.0]
    )


def test_thresholds_from_a_sparse_matrix_use_each_items_own_times():
    rule = ThresholdRule(min_responses=3)
    times = np.array(
        [
            [40.0, 12.0, NAN],
            [50.0, NAN, 2.0],
            [60.0, 18.0, 3.0],
            [NAN, 15.0, NAN],
        ]
    )
    # item 1: mean 50 -> 5 s; item 2: mean 15 -> 1.5 s; item 3: 2 times < 3 -> fallback (floor 1)
    assert thresholds_from_times(times, rule).tolist() == pytest.approx([5.0, 1.5, 1.0])


def test_flags_and_rte_by_hand():
    thresholds = np.array([5.0, 1.5, 1.0])
    times = np.array(
        [
            [4.9, 1.5, 0.2],  # rapid, not (equal is not below), rapid -> RTE 1/3
            [30.0, 20.0, NAN],  # no flags over two timed responses -> RTE 1
            [NAN, NAN, NAN],  # nothing timed -> RTE NaN
            [0.0, NAN, 9.0],  # a 0 s answer is rapid -> RTE 1/2
        ]
    )
    flags = rapid_guess_flags(times, thresholds)
    assert flags.tolist() == [
        [True, False, True],
        [False, False, False],
        [False, False, False],
        [True, False, False],
    ]
    rte = response_time_effort(times, thresholds)
    assert rte[[0, 1, 3]].tolist() == pytest.approx([1 / 3, 1.0, 0.5])
    assert math.isnan(rte[2])


def test_bad_input_names_what_is_wrong():
    with pytest.raises(CalibrationError, match=r"times\[1, 0\] is -2.0"):
        rapid_guess_flags(np.array([[1.0], [-2.0]]), [1.0])
    with pytest.raises(CalibrationError, match="one value per item"):
        rapid_guess_flags(np.ones((2, 3)), [1.0, 1.0])
    with pytest.raises(CalibrationError, match="floor"):
        ThresholdRule(floor=12.0)
    with pytest.raises(CalibrationError, match="fraction"):
        ThresholdRule(fraction=0.0)
    with pytest.raises(CalibrationError, match="min_responses"):
        ThresholdRule(min_responses=0)
    assert NT10.describe() == {
        "fraction": 0.1,
        "cap_seconds": 10.0,
        "floor_seconds": 1.0,
        "min_responses": 20,
        "fallback_seconds": 1.0,
    }
