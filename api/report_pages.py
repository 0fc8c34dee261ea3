"""The mastery report pages: a student's report for their teachers
(``/teach/students/<id>/report``) and for the student themself (``/my-report``).

They lay out :func:`reports.report.student_report` and compute no figure: per skill the estimate
and its 95% interval against the cut score (an inline SVG bar, the figures as text beside it),
the probability of mastery, the model's suggestion beside the teacher's decision, whether the
skill's own score adds value (in words), the flags in words with what drives them, and the
evidence table with each piece's weight and shift. Only the bar's pixel positions are worked out
here (layout, not figures).

Forms, without JavaScript, each POST then redirect to the report (errors re-render it, shown
beside the field, status 422): the teacher records a decision per skill and answers open
appeals; the student appeals a skill's decision. The rules live in :mod:`reports.decisions`;
another teacher's student is *not found*, as in the API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from api.dashboard_pages import DECISION_WORDS
from api.db import get_session
from api.staff import for_roles, install_error_pages, message, not_found, page
from api.teacher_pages import teachers_only
from api.v1.reports import skill_entry
from reports import decisions as service
from reports.models import DECISIONS
from reports.report import student_report
from rights.audit_log import record_read
from storage.accounts import Role, User
from storage.errors import Conflict, Forbidden, Invalid, NotFound
from storage.rights import AuditAction

bp = Blueprint("report_pages", __name__)
install_error_pages(bp)

#: How an answer to an appeal may end, in words.
OUTCOME_WORDS = {"upheld": _l("upheld: the decision stands"),
                 "revised": _l("revised: a new decision")}
#: The flags of a skill, in words (the figures and what drives each are added on the page).
FLAG_WORDS = {
    "rapid_guess": _l("Rapid guesses"), "person_misfit": _l("Unexpected answer pattern"),
    "rater_disagreement": _l("Raters disagreed"),
    "too_little_evidence": _l("Too little evidence"),
    "not_on_scale": _l("Rubric scores not on the scale"), "no_cut_score": _l("No cut score"),
}
#: The SVG bar's width, its margins and its theta range at least (logits).
BAR_WIDTH, BAR_MARGIN, BAR_RANGE = 320, 12, (-3.0, 3.0)


def _student_refusal() -> tuple[str, str]:
    return _("For students"), _("This page shows a student their own report.")


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _bars(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Pixel positions of each skill's interval, estimate and cut on one common axis."""
    values = [v for s in report["skills"]
              for v in (*s["interval95"], s["cut_score"]) if v is not None]
    low = min([BAR_RANGE[0], *values])
    high = max([BAR_RANGE[1], *values])
    span = BAR_WIDTH - 2 * BAR_MARGIN

    def x(value: float | None) -> float | None:
        return None if value is None else round(BAR_MARGIN + span * (value - low) / (high - low),
                                                1)

    return {s["skill"]: {"low": x(s["interval95"][0]), "high": x(s["interval95"][1]),
                         "theta": x(s["theta"]), "cut": x(s["cut_score"]), "zero": x(0.0),
                         "axis_low": low, "axis_high": high}
            for s in report["skills"] if None not in s["interval95"]}


def _render(user: User, report: dict[str, Any], *, status: int = 200,
            errors: dict[str, str] | None = None, values: dict[str, str] | None = None
            ) -> Response:
    staff = report["viewer_role"] != "student"
    here = (url_for("report_pages.teacher_report", student_id=report["student_id"]) if staff
            else url_for("report_pages.my_report"))
    return page("reports/report.html", status, user=user, report=report, staff=staff,
                here=here, when=_when, bars=_bars(report), bar_width=BAR_WIDTH,
                decision_words=DECISION_WORDS, outcome_words=OUTCOME_WORDS,
                flag_words=FLAG_WORDS, decisions=DECISIONS, errors=errors or {},
                values=values or {})


def _words(error: Exception, field: str | None) -> str:
    """A service's refusal in the page's language."""
    if isinstance(error, Conflict):
        return (_("This appeal was answered already.") if field == "appeal_id" else
                _("An appeal on this decision is already waiting for an answer."))
    text = str(error)
    if "longer than" in text:
        return _("This is too long: at most %(n)d characters.", n=service.MAX_TEXT)
    if field == "reason":
        return _("A reason is required.") if "required" in text else text
    if field == "message":
        return _("A message is required.") if "required" in text else text
    if field == "outcome":
        return _("Choose whether the decision stands or is revised.")
    if field == "decision":
        if "already" in text:
            return _("The appealed decision is already this one: choose another, or uphold it.")
        if "only with" in text:
            return _("Choose a new decision only when you revise it.")
        return _("Choose a decision.")
    return text


def _form_errors(error: Exception, key: str, fields: tuple[str, ...]) -> dict[str, str]:
    """A service's refusal as an error beside the field it names (else beside the form)."""
    field = getattr(error, "field", None)
    return {f"{key}-{field if field in fields else 'form'}": _words(error, field)}


@bp.get("/teach/students/<int:student_id>/report")
@teachers_only
def teacher_report(user: User, student_id: int) -> Response:
    """A student's mastery report as their teacher (or an administrator) sees it."""
    try:
        report = student_report(get_session(), user, student_id)
    except NotFound:
        return not_found(user, _("There is no report of this student that you may see."))
    record_read(get_session(), user, student_id, AuditAction.REPORT_READ,
                object_type="report", detail={"format": "page"})
    return _render(user, report)


@bp.post("/teach/students/<int:student_id>/report/decisions")
@teachers_only
def record_decision(user: User, student_id: int) -> Response:
    """Record the teacher's decision on one skill (with a reason), then back to the report."""
    session = get_session()
    try:
        report = student_report(session, user, student_id)
    except NotFound:
        return not_found(user, _("There is no report of this student that you may see."))
    skill = request.form.get("skill", "")
    decision, reason = request.form.get("decision") or None, request.form.get("reason", "")
    index = next((i for i, s in enumerate(report["skills"]) if s["skill"] == skill), None)
    key = f"skill-{index}"
    try:
        service.record_decision(session, user, student_id, skill, decision, reason,
                                suggestion=skill_entry(report, skill))
    except (Invalid, Conflict) as error:
        session.rollback()
        return _render(user, report, status=422,
                       errors=_form_errors(error, key, ("decision", "reason")),
                       values={f"{key}-decision": decision or "", f"{key}-reason": reason})
    except NotFound as error:
        session.rollback()
        return not_found(user, str(error))
    session.commit()
    flash(_("Your decision on %(skill)s is recorded.", skill=skill))
    return redirect(url_for("report_pages.teacher_report", student_id=student_id,
                            _anchor=f"skill-{index}" if index is not None else "history"), 303)


@bp.post("/teach/appeals/<int:appeal_id>/answer")
@teachers_only
def answer_appeal(user: User, appeal_id: int) -> Response:
    """Answer an open appeal (upheld or revised, with a reason), then back to the report."""
    session = get_session()
    try:
        appealed = service.get_appeal(session, user, appeal_id)
        report = student_report(session, user, appealed.student_id)
    except NotFound:
        return not_found(user, _("There is no such appeal of your students."))
    outcome = request.form.get("outcome") or None
    decision = request.form.get("decision") or None
    reason = request.form.get("reason", "")
    key = f"appeal-{appeal_id}"
    try:
        service.answer_appeal(session, user, appeal_id, outcome, reason,
                              decision if outcome == "revised" else None,
                              suggestion=skill_entry(report, appealed.skill))
    except (Invalid, Conflict) as error:
        session.rollback()
        return _render(user, report, status=422,
                       errors=_form_errors(error, key, ("outcome", "reason", "decision")),
                       values={f"{key}-outcome": outcome or "", f"{key}-reason": reason,
                               f"{key}-decision": decision or ""})
    student_id = appealed.student_id
    session.commit()
    flash(_("Your answer to the appeal on %(skill)s is recorded.", skill=appealed.skill))
    return redirect(url_for("report_pages.teacher_report", student_id=student_id,
                            _anchor="history"), 303)


@bp.get("/my-report")
@for_roles(Role.STUDENT, refusal=_student_refusal)
def my_report(user: User) -> Response:
    """The student's own mastery report (the student view)."""
    report = student_report(get_session(), user, user.id)
    record_read(get_session(), user, user.id, AuditAction.REPORT_READ, object_type="report",
                detail={"format": "page"})
    return _render(user, report)


@bp.post("/my-report/appeals")
@for_roles(Role.STUDENT, refusal=_student_refusal)
def appeal(user: User) -> Response:
    """The student appeals the decision on one of their skills, then back to the report."""
    session = get_session()
    report = student_report(session, user, user.id)
    skill, text = request.form.get("skill", ""), request.form.get("message", "")
    index = next((i for i, s in enumerate(report["skills"]) if s["skill"] == skill), None)
    key = f"skill-{index}"
    try:
        service.appeal(session, user, skill, text, suggestion=skill_entry(report, skill))
    except (Invalid, Conflict) as error:
        session.rollback()
        return _render(user, report, status=422,
                       errors=_form_errors(error, key, ("message",)),
                       values={f"{key}-message": text})
    except (NotFound, Forbidden) as error:
        session.rollback()
        return message(_("Not found"), str(error), 404, user)
    session.commit()
    flash(_("Your appeal on %(skill)s is sent to your teacher.", skill=skill))
    return redirect(url_for("report_pages.my_report", _anchor=f"skill-{index}"), 303)
