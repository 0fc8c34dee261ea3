"""Next steps per skill gap (placeholder: the helper "nextsteps" replaces this module)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session


def next_steps(session: Session, report: dict[str, Any], *, now: datetime | None = None
               ) -> dict[str, list[dict[str, Any]]]:
    """Suggestions per skill not yet mastered (none until the module lands)."""
    return {}
