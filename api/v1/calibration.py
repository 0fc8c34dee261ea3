"""Calibration runs: uploads, runs, review, publication."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("calibration", __name__, description="Calibration runs: uploads, runs, review, publication")
