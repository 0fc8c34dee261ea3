"""Classes, enrolments, assignments and accommodations."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("classes", __name__, description="Classes, enrolments, assignments and accommodations")
