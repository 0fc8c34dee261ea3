"""Practice in a skill, started from a next step of the student's report: ``/practice/<skill>``.

``GET`` says what practice is (a few questions at the student's level, counted as evidence, no
answers shown) with a Start button; ``POST`` works out the practice items again from the
student's report as it is now (:func:`reports.next_steps.practice_items`, never from the
address) and starts the practice attempt (:func:`evidence.practice.start_practice`), then shows
its first question on the ordinary attempt page. Students only.
"""

from __future__ import annotations

from flask import Blueprint, Response, flash, redirect, url_for
from flask_babel import gettext as _

from api.db import get_session
from api.staff import install_error_pages
from api.student_pages import _message, _page, signed_in
from evidence.practice import start_practice
from item_bank.services import BankError
from reports.next_steps import practice_items
from reports.report import student_report
from storage.accounts import User
from storage.errors import Conflict

bp = Blueprint("practice_pages", __name__)
install_error_pages(bp)


def _codes(user: User, skill: str) -> list[str]:
    """The practice items of ``skill`` for ``user`` now (none when mastered or not reported)."""
    db = get_session()
    report = student_report(db, user, user.id)
    entry = next((s for s in report["skills"] if s["skill"] == skill), None)
    if entry is None or entry["decision"] == "mastered" or entry["theta"] is None:
        return []
    picks = practice_items(db, user.id, {skill: float(entry["theta"])})[skill]
    return [pick.code for pick in picks]


def _nothing(user: User, skill: str) -> Response:
    return _message(_("No practice to suggest"),
                    _("There are no practice questions to suggest in %(skill)s for you now.",
                      skill=skill), 404, user)


@bp.get("/practice/<path:skill>")
@signed_in()
def practice(user: User, skill: str) -> Response:
    """What practice in ``skill`` is, with a Start button."""
    codes = _codes(user, skill)
    if not codes:
        return _nothing(user, skill)
    return _page("student/practice.html", user=user, skill=skill, n_items=len(codes))


@bp.post("/practice/<path:skill>")
@signed_in()
def start(user: User, skill: str) -> Response:
    """Start practice in ``skill`` (or resume it) and show its first question."""
    db = get_session()
    codes = _codes(user, skill)
    if not codes:
        db.rollback()
        return _nothing(user, skill)
    try:
        attempt, _reply, created = start_practice(db, user, skill, codes)
    except (Conflict, BankError):
        db.rollback()
        return _nothing(user, skill)
    db.commit()
    if not created:
        flash(_("Welcome back: you are where you left off."))
    return redirect(url_for("student.attempt", attempt_id=attempt.id), 303)
