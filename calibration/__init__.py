"""calibration: estimating item parameters from responses, and checking them.

Marginal maximum likelihood by EM (dense and sparse data), fixed-parameter calibration of new items
onto the bank's scale, girth as a second backend, item and person fit, DIF, linking, and rater
measurement (the many-facet Rasch model, :mod:`calibration.raters`). Results are
immutable; publishing them to the bank is a separate, recorded step taken elsewhere.

May import: cat_engine, numpy, scipy, girth and the standard library. No database, no HTTP.
"""

from calibration.em import calibrate, marginal_log_likelihood
from calibration.raters import MFRMResult, Ratings, fit_mfrm, read_ratings
from calibration.result import CalibrationResult

__all__ = ["CalibrationResult", "MFRMResult", "Ratings", "calibrate", "fit_mfrm",
           "marginal_log_likelihood", "read_ratings"]
