"""Accounts (administrators)."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint("users", __name__, description="Accounts (administrators)")
