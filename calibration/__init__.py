"""calibration: estimating item parameters from responses, and checking them.

Marginal maximum likelihood by EM (dense and sparse data), fixed-parameter calibration of new items
onto the bank's scale, girth as a second backend, item and person fit, DIF, and linking. Results are
immutable; publishing them to the bank is a separate, recorded step taken elsewhere.

May import: cat_engine, numpy, scipy, girth and the standard library. No database, no HTTP.
"""

from calibration.em import calibrate, marginal_log_likelihood
from calibration.result import CalibrationResult

__all__ = ["CalibrationResult", "calibrate", "marginal_log_likelihood"]
