"""Rapid guessing from response times: NT10 thresholds, flags, and response-time effort.

Vectorised over items and persons. Times are in seconds.

Thresholds (:func:`nt_thresholds`, the normative threshold method of Wise & Ma 2012)
    An item's threshold is ``fraction`` (10 % for NT10) of the mean response time of everyone who
    answered it, capped at ``cap`` seconds (10 s for NT10) and raised to at least ``floor``
    seconds. The floor is ours: 10 % of a short item's mean (a one-word answer read in 4 s) would
    flag only answers under 0.4 s, which a keyboard can hardly produce, so every item treats an
    answer under ``floor`` (1 s by default) as too fast to have read it. An item with fewer than
    ``min_responses`` response times (20 by default) has no stable mean: it gets ``fallback``
    seconds (the floor unless given), i.e. only answers faster than anyone could read are flagged.

Flags (:func:`rapid_guess_flags`)
    A response is a rapid guess when its time is strictly below its item's threshold; a response
    without a time (NaN) is never flagged.

Response-time effort (:func:`response_time_effort`, Wise & Kong 2005)
    The share of a person's timed responses that are not rapid guesses, in [0, 1]; NaN for a
    person with no timed response. RTE below 0.9 is the usual cue for low effort.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from calibration.errors import CalibrationError

__all__ = [
    "NT10",
    "ThresholdRule",
    "nt_thresholds",
    "rapid_guess_flags",
    "response_time_effort",
    "thresholds_from_times",
]


@dataclass(frozen=True)
class ThresholdRule:
    """Settings of a normative threshold (seconds).

    Parameters
    ----------
    fraction : float
        Share of the item's mean response time (0.10 for NT10).
    cap : float
        Largest threshold (10 s for NT10).
    floor : float
        Smallest threshold (1 s here; see the module notes).
    min_responses : int
        Fewer response times than this and the item gets ``fallback``.
    fallback : float or None
        Threshold of an item with too few times; the floor when None.
    """

    fraction: float = 0.10
    cap: float = 10.0
    floor: float = 1.0
    min_responses: int = 20
    fallback: float | None = None

    def __post_init__(self) -> None:
        for name in ("fraction", "cap", "floor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise CalibrationError(f"{name} must be a number, got {value!r}")
            if not (math.isfinite(value) and value >= 0):
                raise CalibrationError(f"{name} must be a finite number >= 0, got {value!r}")
        if not 0 < self.fraction <= 1:
            raise CalibrationError(f"fraction must be in (0, 1], got {self.fraction!r}")
        if self.floor > self.cap:
            raise CalibrationError(
                f"floor ({self.floor!r} s) must not be above cap ({self.cap!r} s)"
            )
        if isinstance(self.min_responses, bool) or not isinstance(self.min_responses, int) or (
            self.min_responses < 1
        ):
            raise CalibrationError(
                f"min_responses must be an integer >= 1, got {self.min_responses!r}"
            )
        if self.fallback is not None and not (
            isinstance(self.fallback, (int, float))
            and math.isfinite(self.fallback)
            and self.fallback >= 0
        ):
            raise CalibrationError(f"fallback must be a number >= 0 or None, got {self.fallback!r}")

    @property
    def fallback_seconds(self) -> float:
        """The threshold of an item with too few response times."""
        return float(self.floor if self.fallback is None else self.fallback)

    def describe(self) -> dict:
        """The settings as plain data (for reports and help text)."""
        return {
            "fraction": self.fraction,
            "cap_seconds": self.cap,
            "floor_seconds": self.floor,
            "min_responses": self.min_responses,
            "fallback_seconds": self.fallback_seconds,
        }


#: Wise & Ma's NT10 with a 1 s floor and a 20-response minimum.
NT10 = ThresholdRule()


def nt_thresholds(mean_time, n_times, rule: ThresholdRule = NT10) -> np.ndarray:
    """Per-item thresholds from each item's mean response time and number of times.

    Parameters
    ----------
    mean_time : array_like, shape (J,)
        Mean response time of each item over all examinees, seconds (NaN when none).
    n_times : array_like of int, shape (J,)
        How many response times each mean is over.
    rule : ThresholdRule

    Returns
    -------
    ndarray, shape (J,)
        ``clip(fraction * mean, floor, cap)``, or the fallback where ``n_times <
        rule.min_responses``; seconds.
    """
    mean_time = np.asarray(mean_time, dtype=float)
    n_times = np.asarray(n_times)
    if mean_time.shape != n_times.shape or mean_time.ndim != 1:
        raise CalibrationError(
            f"mean_time and n_times must be 1-D of the same shape, got {mean_time.shape} and "
            f"{n_times.shape}"
        )
    enough = (n_times >= rule.min_responses) & np.isfinite(mean_time)
    if (enough & (mean_time < 0)).any():
        j = int(np.flatnonzero(enough & (mean_time < 0))[0])
        raise CalibrationError(f"mean_time[{j}] is negative ({float(mean_time[j])!r} s)")
    normative = np.clip(rule.fraction * np.where(enough, mean_time, 0.0), rule.floor, rule.cap)
    return np.where(enough, normative, rule.fallback_seconds)


def thresholds_from_times(times, rule: ThresholdRule = NT10) -> np.ndarray:
    """Per-item thresholds from a persons x items matrix of times (NaN where not answered).

    Parameters
    ----------
    times : array_like, shape (N, J)
        Seconds; NaN where the person did not answer the item (or no time was recorded).

    Returns
    -------
    ndarray, shape (J,)
        As :func:`nt_thresholds` with each column's mean and count.
    """
    times = _times(times)
    counted = ~np.isnan(times)
    n = counted.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.nansum(times, axis=0) / np.maximum(n, 1), np.nan)
    return nt_thresholds(mean, n, rule)


def rapid_guess_flags(times, thresholds) -> np.ndarray:
    """True where a response time is below its item's threshold.

    Parameters
    ----------
    times : array_like, shape (N, J)
        Seconds, NaN where there is no timed response.
    thresholds : array_like, shape (J,)
        Seconds.

    Returns
    -------
    ndarray of bool, shape (N, J)
        False where the time is NaN.
    """
    times = _times(times)
    thresholds = np.asarray(thresholds, dtype=float)
    if thresholds.shape != (times.shape[1],):
        raise CalibrationError(
            f"thresholds must have one value per item ({times.shape[1]}), got {thresholds.shape}"
        )
    with np.errstate(invalid="ignore"):
        return ~np.isnan(times) & (times < thresholds[None, :])


def response_time_effort(times, thresholds) -> np.ndarray:
    """Each person's RTE: the share of their timed responses that are not rapid guesses.

    Returns
    -------
    ndarray, shape (N,)
        In [0, 1]; NaN for a person with no timed response.
    """
    times = _times(times)
    flags = rapid_guess_flags(times, thresholds)
    timed = (~np.isnan(times)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(timed > 0, 1.0 - flags.sum(axis=1) / np.maximum(timed, 1), np.nan)


def _times(times) -> np.ndarray:
    times = np.asarray(times, dtype=float)
    if times.ndim != 2:
        raise CalibrationError(f"times must be a 2-D array (persons x items), got {times.shape}")
    if np.isinf(times).any() or (times < 0).any():
        row, col = (int(v[0]) for v in np.nonzero(np.isinf(times) | (times < 0)))
        raise CalibrationError(
            f"times[{row}, {col}] is {float(times[row, col])!r}; a response time must be a finite "
            "number of seconds >= 0 (NaN for none)"
        )
    return times
