"""The item bank: items, versions, status, parameter sets, import and export."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("items", __name__, description="The item bank: items, versions, status, parameter sets, import and export")
