"""Teachers' decisions and students' appeals (placeholder: the helper "decisions" replaces this
module with the service; only :func:`history` is defined here)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session


def history(session: Session, student_id: int) -> dict[str, Any]:
    """Every decision and appeal of the student (none until the service lands)."""
    return {"decisions": [], "appeals": [], "current": {}, "open": {}}
