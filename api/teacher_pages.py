"""Pages of teachers (and admins): their classes, and a class's students with each one's latest
attempt, its status and its result as a recommendation with its uncertainty.

A teacher sees only their own classes: another teacher's class is *not found* (404), as in the
API, so its existence is not revealed. Students and assessors get a 403 page. The rules live in
:mod:`api.services.classes`; the views only call them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from api.charts import theta_trajectory
from api.db import get_session
from api.services.attempts import Z95
from api.services.classes import (
    attempt_summary,
    class_query,
    latest_attempts,
    roster_query,
    visible_class,
)
from api.services.errors import NotFound
from api.services.review import (
    IN_PROGRESS,
    TIME_UP,
    attempt_review,
    attempt_state,
    class_attempt,
    items_given,
)
from api.staff import for_roles, form_int, install_error_pages, not_found, page
from api.student_pages import BANDS, band_of
from api.wording import stop_reason
from evidence.models import Assignment, Attempt
from item_bank.models import AdaptiveTest
from storage import as_utc
from storage.accounts import Role, User

bp = Blueprint("teacher", __name__, url_prefix="/teach")
install_error_pages(bp)

TEACHERS = (Role.TEACHER, Role.ADMIN)
ATTEMPT_STATUS_NAMES = {
    "in_progress": _l("in progress"), "finished": _l("finished"), "abandoned": _l("abandoned"),
    "time_up": _l("time ran out"),
}
DECISION_NAMES = {
    "mastered": _l("mastered"), "not_mastered": _l("not mastered yet"),
    "undecided": _l("too close to tell"),
}


def _refusal() -> tuple[str, str]:
    return (_("Only teachers may see this page"),
            _("These pages are for teachers and administrators."))


def teachers_only(view):
    """Teachers and admins only (others: sign in, or a 403 page)."""
    return for_roles(*TEACHERS, refusal=_refusal)(view)


@bp.get("/classes")
@teachers_only
def classes(user: User) -> Response:
    """The classes the user teaches (all classes, for an administrator)."""
    rows = get_session().scalars(class_query(user)).unique().all()
    return page("teacher/classes.html", user=user, classes=rows)


def natural_key(text: str) -> tuple:
    """A sort key that orders numbers inside names by value: student2 before student10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.casefold())
                 for part in re.split(r"(\d+)", text) if part)


def student_row(student: User, attempt: Attempt | None,
                now: datetime | None = None) -> dict[str, Any]:
    """What the class page shows of one student: their latest attempt, in words and numbers.

    An attempt whose time ran out shows as such (not "in progress"), with the level of the
    answers it has; every attempt shows how many questions were answered and, once over, why
    it stopped, in plain words.
    """
    summary = attempt_summary(attempt)
    row: dict[str, Any] = {"student": student, "attempt": summary}
    if summary is None:
        return row
    summary["test_name"] = attempt.test.name
    state = attempt_state(attempt, now)
    row["state"] = state
    row["status"] = ATTEMPT_STATUS_NAMES.get(state, state)
    row["finished_at"] = as_utc(summary["finished_at"])
    row["started_at"] = as_utc(summary["started_at"])
    row["n_given"], row["n_scored"] = items_given(attempt)
    row["reason"] = stop_reason(summary["stop_reason"])
    theta, se = summary["theta"], summary["se"]
    if state == TIME_UP:  # not finished yet in the database: the last estimate made
        estimates = [e for e in (attempt.state or {}).get("estimates") or () if e]
        theta, se = estimates[-1] if estimates else (None, None)
    if theta is not None and state != IN_PROGRESS:
        row["band"] = BANDS[band_of(theta)]
        row["theta"], row["se"] = theta, se
    decision = (summary.get("mastery") or {}).get("decision")
    if decision:
        row["decision"] = decision
        row["decision_name"] = DECISION_NAMES.get(decision, decision)
    return row


@bp.get("/classes/<int:class_id>")
@teachers_only
def class_page(user: User, class_id: int) -> Response:
    """A class: each student with their latest attempt (at one test, when chosen)."""
    db = get_session()
    try:
        klass = visible_class(db, user, class_id)
    except NotFound:
        return not_found(user, _("There is no class %(id)d among yours.", id=class_id))
    errors: dict[str, str] = {}
    test_id = form_int("test_id", errors, low=1, high=2**31 - 1, required=False)
    assigned = select(Assignment.test_id).where(Assignment.class_id == klass.id)
    tests = db.scalars(select(AdaptiveTest).where(AdaptiveTest.id.in_(assigned))
                       .order_by(AdaptiveTest.name)).all()
    if test_id is not None and test_id not in {t.id for t in tests}:
        errors["test_id"] = _("Choose one of the tests assigned to this class.")
        test_id = None
    students = sorted(db.scalars(roster_query(klass)),
                      key=lambda s: natural_key(s.display_name or s.username))
    latest = latest_attempts(db, [s.id for s in students], test_id)
    rows = [student_row(s, latest.get(s.id)) for s in students]
    return page("teacher/class.html", 422 if errors else 200, user=user, klass=klass,
                rows=rows, tests=tests, test_id=test_id, errors=errors,
                chosen=request.args.get("test_id", ""))


@bp.get("/classes/<int:class_id>/attempts/<int:attempt_id>")
@teachers_only
def attempt_page(user: User, class_id: int, attempt_id: int) -> Response:
    """A teacher's view of one attempt: every item with the student's answer, right or wrong,
    the key, the rationale and the time taken; the estimate after each answer as a chart; why
    the test stopped, in plain words."""
    db = get_session()
    try:
        klass, attempt = class_attempt(db, user, class_id, attempt_id)
    except NotFound:
        return not_found(user, _("There is no such attempt in your classes."))
    review = attempt_review(db, attempt)
    scored = [i for i in review["items"] if i["theta"] is not None]
    chart = theta_trajectory([i["position"] for i in scored], [i["theta"] for i in scored],
                             [i["low"] for i in scored], [i["high"] for i in scored],
                             review["cut_score"])
    summary = attempt_summary(attempt)
    decision = (summary.get("mastery") or {}).get("decision")
    return page("teacher/attempt.html", user=user, klass=klass, attempt=attempt,
                student=attempt.user, review=review, chart=chart,
                state_name=ATTEMPT_STATUS_NAMES.get(review["state"], review["state"]),
                reason=stop_reason(review["stop_reason"]),
                started_at=as_utc(attempt.started_at), finished_at=as_utc(attempt.finished_at),
                decision=decision, decision_name=DECISION_NAMES.get(decision, decision),
                z95=Z95)
