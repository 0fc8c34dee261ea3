"""Calibration against published results on the classic LSAT data.

Data: Section 6 of the Law School Admission Test, 5 items, 1000 examinees (Bock and Lieberman,
1970), as the pattern frequencies distributed with R's ltm (``data(LSAT)``; Bartholomew et al.,
2002). Reference: the 2PL fitted by ltm, ``ltm(LSAT ~ z1, IRT.param = TRUE)`` (Rizopoulos, 2006,
J. Stat. Softw. 17(5)), 21-point Gauss-Hermite quadrature; its printed output:

    log.Lik -2466.653   AIC 4953.307   BIC 5002.384
              Dffclt     Dscrmn
    Item 1 -3.3597341 0.8253715
    Item 2 -1.3696497 0.7229499
    Item 3 -0.2798983 0.8904748
    Item 4 -1.8659189 0.6885502
    Item 5 -3.1235725 0.6574516

with standard errors 0.8669, 0.3073, 0.0997, 0.4341, 0.8700 (difficulties) and 0.2581, 0.1867,
0.2326, 0.1852, 0.2100 (discriminations).
"""

from __future__ import annotations

import numpy as np
import pytest

from calibration import calibrate
from calibration.data import from_wide

# The 30 observed response patterns and their frequencies (the other 2 of 32 never occur).
PATTERNS = [
    ("00000", 3), ("00001", 6), ("00010", 2), ("00011", 11), ("00100", 1), ("00101", 1),
    ("00110", 3), ("00111", 4), ("01000", 1), ("01001", 8), ("01011", 16), ("01101", 3),
    ("01110", 2), ("01111", 15), ("10000", 10), ("10001", 29), ("10010", 14), ("10011", 81),
    ("10100", 3), ("10101", 28), ("10110", 15), ("10111", 80), ("11000", 16), ("11001", 56),
    ("11010", 21), ("11011", 173), ("11100", 11), ("11101", 61), ("11110", 28), ("11111", 298),
]
LTM_B = np.array([-3.3597341, -1.3696497, -0.2798983, -1.8659189, -3.1235725])
LTM_A = np.array([0.8253715, 0.7229499, 0.8904748, 0.6885502, 0.6574516])
LTM_SE_B = np.array([0.8669, 0.3073, 0.0997, 0.4341, 0.8700])
LTM_SE_A = np.array([0.2581, 0.1867, 0.2326, 0.1852, 0.2100])
LTM_LOGLIK, LTM_AIC, LTM_BIC = -2466.653, 4953.307, 5002.384


@pytest.fixture(scope="module")
def lsat():
    rows = [[int(c) for c in pattern] for pattern, count in PATTERNS for _ in range(count)]
    assert len(rows) == 1000
    return from_wide(np.array(rows, dtype=float), item_ids=[f"Item {k}" for k in range(1, 6)])


@pytest.fixture(scope="module")
def fitted(lsat):
    return calibrate(lsat, "2pl", tolerance=1e-6, max_iterations=2000, quadrature=61)


def test_lsat_2pl_log_likelihood_matches_ltm(fitted) -> None:
    assert fitted.converged
    assert fitted.log_likelihood == pytest.approx(LTM_LOGLIK, abs=1e-3)
    assert fitted.aic == pytest.approx(LTM_AIC, abs=2e-3)
    assert fitted.bic == pytest.approx(LTM_BIC, abs=2e-3)


def test_lsat_2pl_parameters_match_ltm(fitted) -> None:
    """About three decimals (measured: slopes within 6e-4, difficulties within 2.3e-3; the
    largest gap is item 5, whose likelihood is flattest, SE of b 0.87). ltm integrates with 21
    Gauss-Hermite points, we with 61 equally spaced ones."""
    np.testing.assert_allclose(fitted.bank.a, LTM_A, atol=1e-3)
    np.testing.assert_allclose(fitted.bank.b, LTM_B, atol=3e-3)


def test_lsat_2pl_standard_errors_match_ltm(fitted) -> None:
    """ltm inverts the numerical Hessian of the marginal log-likelihood; measured here within
    3.5% of its printed standard errors."""
    np.testing.assert_allclose(fitted.se["a"], LTM_SE_A, rtol=0.04)
    np.testing.assert_allclose(fitted.se["b"], LTM_SE_B, rtol=0.04)
