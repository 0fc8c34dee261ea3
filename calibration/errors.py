"""Errors of the calibration package: ``ValueError`` subclasses that name rows and items."""

from __future__ import annotations


class CalibrationError(ValueError):
    """Base class of calibration errors about the input."""


class ResponseDataError(CalibrationError):
    """Response data that cannot be used: names the rows, columns or items at fault."""
