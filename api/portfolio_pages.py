"""The portfolio page: a student's attempts, indicators, tasks with drafts, and step log.

Teachers open it from their class (``/teach/classes/<c>/students/<s>/portfolio``: only what
belongs to that class; another teacher's class or student is *not found*, as on the other
teacher pages); students open their own from "My tests" (``/my-portfolio``), without the
staff-only fields (figures, rapid guesses, person fit, flags). The data come from
:mod:`evidence.portfolio`; this module only puts them into words. The log is filtered with GET
parameters ``task_id`` and ``verb`` and paged back with ``before``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from flask import Blueprint, Response, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext

from api.db import get_session
from api.staff import for_roles, form_int, install_error_pages, not_found, page
from api.student_pages import BANDS, band_of
from api.teacher_pages import ATTEMPT_STATUS_NAMES, DECISION_NAMES, teachers_only
from api.wording import stop_reason
from evidence.attempts import BAND_CODES
from evidence.portfolio import MAX_VERB_LENGTH, portfolio
from evidence.scope import StudentScope, student_scope
from evidence.statements import ADL_VERBS
from rights.audit_log import record_read
from storage import as_utc
from storage.accounts import Role, User
from storage.errors import Invalid, NotFound
from storage.rights import AuditAction

bp = Blueprint("portfolio_page", __name__)
install_error_pages(bp)

#: Each indicator's help text (the definitions of :data:`evidence.indicators.DEFINITIONS`).
HELP = {
    "time_on_task": _l("The sum of the times taken to answer each question (from the moment "
                       "it was shown to the answer), beside the time from the start of each "
                       "attempt to its end."),
    "response_time_effort": _l(
        "The share of answers that are not rapid guesses. An answer is a rapid guess when it "
        "came faster than the question's threshold: a tenth of the average time everyone took "
        "on that question, at most 10 seconds and at least 1 second (1 second for a question "
        "with fewer than 20 timed answers). Below 0.9 (9 answers in 10) it is flagged: the "
        "answers may not show what the student can do."),
    "hints": _l("How many hints were asked for while answering, and requests for help recorded "
                "in the step log."),
    "retries": _l("Answers to an activity beyond the first, in the same session of a learning "
                  "tool."),
    "person_fit": _l(
        "How well the pattern of right and wrong answers fits the student's level (lz*, "
        "Snijders 2001). Below \N{MINUS SIGN}1.645 it is flagged: easy questions missed and "
        "hard ones answered, which guessing, copying or a misunderstood question can cause. "
        "Given only from 10 scored right-or-wrong answers."),
}
FLAG_TEXT = {
    "low_effort": _l("Many answers came too fast to have been read (response-time effort "
                     "below 0.9)."),
    "person_misfit": _l("The pattern of right and wrong answers is unusual for this level "
                        "(person fit below \N{MINUS SIGN}1.645)."),
}


def _refusal() -> tuple[str, str]:
    return (_("Only students have a portfolio here"),
            _("Teachers open a student's portfolio from their class."))


def _filters(errors: dict[str, str]) -> dict[str, Any]:
    task_id = form_int("task_id", errors, low=1, high=2**31 - 1, required=False)
    before = form_int("before", errors, low=1, high=2**31 - 1, required=False)
    verb = (request.args.get("verb") or "").strip() or None
    if verb is not None and (len(verb) > MAX_VERB_LENGTH or "\x00" in verb):
        errors["verb"] = _("Choose one of the verbs offered.")
        verb = None
    return {"task_id": task_id, "verb": verb, "before": before}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "\N{EN DASH}"
    seconds = round(seconds)
    if seconds < 60:
        return _("%(num)d s", num=seconds)
    if seconds < 3600:
        return _("%(min)d min %(sec)d s", min=seconds // 60, sec=seconds % 60)
    return _("%(hours)d h %(min)d min", hours=seconds // 3600, min=seconds % 3600 // 60)


def _attempt_rows(attempts: list[dict[str, Any]], staff: bool) -> list[dict[str, Any]]:
    rows = []
    for a in attempts:
        row = dict(a)
        row["test"] = SimpleNamespace(name=a["test_name"], description="",
                                      translations=a["test_translations"])
        row["status_name"] = ATTEMPT_STATUS_NAMES.get(a["state"], a["state"])
        row["when"] = as_utc(a["finished_at"] or a["started_at"])
        row["reason"] = stop_reason(a["stop_reason"])
        if staff:
            if a["theta"] is not None and a["state"] not in ("in_progress", "time_up"):
                row["band"] = BANDS[band_of(a["theta"])]
            row["decision_name"] = DECISION_NAMES.get(a["mastery"]) if a["mastery"] else None
            row["flag_texts"] = [FLAG_TEXT[f] for f in a.get("flags", []) if f in FLAG_TEXT]
        else:
            result = a.get("result") or {}
            level = result.get("level")
            row["band"] = BANDS[BAND_CODES.index(level)] if level in BAND_CODES else None
            decision = (result.get("mastery") or {}).get("decision")
            row["decision_name"] = DECISION_NAMES.get(decision) if decision else None
        rows.append(row)
    return rows


#: The ADL verbs (http://adlnet.gov/expapi/verbs/...) in the reader's language, in the context
#: "step log" (a verb there is not the status of the same name: "completó", not "completado");
#: other verbs show the name their statement gives them.
VERB_LABELS = {
    ADL_VERBS + "answered": lazy_pgettext("step log", "answered"),
    ADL_VERBS + "asked": lazy_pgettext("step log", "asked for help"),
    ADL_VERBS + "attempted": lazy_pgettext("step log", "attempted"),
    ADL_VERBS + "attended": lazy_pgettext("step log", "attended"),
    ADL_VERBS + "commented": lazy_pgettext("step log", "commented"),
    ADL_VERBS + "completed": lazy_pgettext("step log", "completed"),
    ADL_VERBS + "exited": lazy_pgettext("step log", "left"),
    ADL_VERBS + "experienced": lazy_pgettext("step log", "worked on"),
    ADL_VERBS + "failed": lazy_pgettext("step log", "did not pass"),
    ADL_VERBS + "initialized": lazy_pgettext("step log", "started"),
    ADL_VERBS + "interacted": lazy_pgettext("step log", "used"),
    ADL_VERBS + "launched": lazy_pgettext("step log", "opened"),
    ADL_VERBS + "mastered": lazy_pgettext("step log", "mastered"),
    ADL_VERBS + "passed": lazy_pgettext("step log", "passed"),
    ADL_VERBS + "progressed": lazy_pgettext("step log", "made progress on"),
    ADL_VERBS + "responded": lazy_pgettext("step log", "responded to"),
    ADL_VERBS + "resumed": lazy_pgettext("step log", "resumed"),
    ADL_VERBS + "scored": lazy_pgettext("step log", "was scored on"),
    ADL_VERBS + "shared": lazy_pgettext("step log", "shared"),
    ADL_VERBS + "suspended": lazy_pgettext("step log", "paused"),
    ADL_VERBS + "terminated": lazy_pgettext("step log", "finished"),
}


def verb_label(verb_id: str, fallback: str) -> str:
    """A verb as the reader reads it: the ADL verbs in their language, others by ``fallback``
    (the name the statement gives)."""
    label = VERB_LABELS.get(verb_id)
    return str(label) if label is not None else fallback


def _render(user: User, scope: StudentScope, class_id: int | None) -> Response:
    db = get_session()
    errors: dict[str, str] = {}
    filters = _filters(errors)
    try:
        data = portfolio(db, scope, **filters)
    except Invalid as error:
        errors[error.field or "task_id"] = (
            _("Choose one of the tasks offered.") if error.field == "task_id" else
            _("Choose one of the verbs offered."))
        filters = {"task_id": None, "verb": None, "before": None}
        data = portfolio(db, scope, **filters)
    staff = scope.staff
    if class_id is not None:
        here = url_for("portfolio_page.teacher_portfolio", class_id=class_id,
                       student_id=scope.student.id)
    else:
        here = url_for("portfolio_page.my_portfolio")
    older = None
    if data["log"]["older"] is not None:
        args = {k: v for k, v in (("task_id", filters["task_id"]), ("verb", filters["verb"]))
                if v is not None}
        older = (url_for("portfolio_page.teacher_portfolio", class_id=class_id,
                         student_id=scope.student.id, before=data["log"]["older"], **args)
                 if class_id is not None else
                 url_for("portfolio_page.my_portfolio", before=data["log"]["older"], **args))
    for entry in data["log"]["entries"]:
        entry["timestamp"] = as_utc(entry["timestamp"])
        entry["verb_name"] = verb_label(entry["verb"], entry["verb_name"])
    for verb in data["log"]["verbs"]:
        verb["name"] = verb_label(verb["id"], verb["name"])
    for task in data["tasks"]:
        task["due_at"] = as_utc(task["due_at"])
        for draft in task["drafts"]:
            draft["submitted_at"] = as_utc(draft["submitted_at"])
            draft["href"] = (
                url_for("teacher.task_student", class_id=class_id or task["class_id"],
                        task_id=task["id"], student_id=scope.student.id)
                if staff else url_for("student.task_page", task_id=task["id"]))
    totals = data["indicators"]["totals"]
    record_read(db, user, scope.student.id, AuditAction.PORTFOLIO_READ, object_type="portfolio",
                object_id="" if class_id is None else f"class-{class_id}",
                detail={"format": "page"})
    return page("portfolio.html", 422 if errors else 200, user=user, data=data,
                student=data["student"], staff=staff, class_id=class_id, here=here,
                attempts=_attempt_rows(data["attempts"], staff), totals=totals,
                duration=_duration, help=HELP, filters=filters, errors=errors, older=older)


@bp.get("/teach/classes/<int:class_id>/students/<int:student_id>/portfolio")
@teachers_only
def teacher_portfolio(user: User, class_id: int, student_id: int) -> Response:
    """A student's portfolio as the teacher of ``class_id`` sees it (that class's evidence)."""
    try:
        scope = student_scope(get_session(), user, student_id, class_id)
    except NotFound:
        return not_found(user, _("There is no such student in your classes."))
    return _render(user, scope, class_id)


@bp.get("/my-portfolio")
@for_roles(Role.STUDENT, refusal=_refusal)
def my_portfolio(user: User) -> Response:
    """The student's own portfolio."""
    return _render(user, student_scope(get_session(), user, user.id), None)
