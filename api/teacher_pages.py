"""Pages of teachers (and admins): their classes; a class's students with each one's latest
attempt (status, length, why it stopped, result as a recommendation with its uncertainty); one
attempt reviewed item by item; the tests assigned to a class (window, time limit, attempts
allowed); and a student's time accommodation.

A teacher sees only their own classes: another teacher's class, assignment, student or attempt is
*not found* (404), as in the API, so its existence is not revealed. Students and assessors get a
403 page. The rules live in :mod:`evidence.classes` and :mod:`evidence.review`; the views
check the form (messages naming the field), call one service, commit once and redirect (303).
Times in forms are read and shown in the reader's time zone (the one the footer names).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_babel import format_decimal, get_timezone
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from api.db import get_session
from api.staff import for_roles, form_int, install_error_pages, not_found, page
from api.student_pages import BANDS, band_of
from api.wording import stop_reason
from evidence.attempts import Z95
from evidence.classes import (
    DEFAULT_TIME_FACTOR,
    MAX_TIME_FACTOR,
    MAX_TIME_LIMIT_MINUTES,
    accommodated_student,
    accommodation_of,
    assignment_query,
    attempt_summary,
    class_query,
    create_assignment,
    delete_assignment,
    latest_attempts,
    roster_query,
    set_accommodation,
    update_assignment,
    visible_class,
)
from evidence.drafts import class_task_rows
from evidence.models import Assignment, Attempt
from evidence.review import (
    IN_PROGRESS,
    TIME_UP,
    attempt_review,
    attempt_state,
    class_attempt,
    items_given,
)
from evidence.tasks import class_tasks
from item_bank.models import AdaptiveTest
from reports.charts import theta_trajectory
from storage import as_utc
from storage.accounts import (
    Accommodation,
    Role,
    SchoolClass,
    TimeAccommodation,
    User,
    class_members,
)
from storage.errors import Invalid, NotFound

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
    latest = latest_attempts(db, [s.id for s in students], test_id, klass=klass)
    rows = [student_row(s, latest.get(s.id)) for s in students]
    accommodations = {a.user_id: a for a in db.scalars(select(Accommodation).where(
        Accommodation.user_id.in_([s.id for s in students])))}
    for row in rows:
        row["accommodation"] = accommodations.get(row["student"].id)
    assignments = [{"assignment": a, "opens_at": as_utc(a.opens_at),
                    "closes_at": as_utc(a.closes_at)}
                   for a in db.scalars(assignment_query(klass))]
    tasks = class_task_rows(db, klass.id, db.scalars(class_tasks(klass)).all())
    return page("teacher/class.html", 422 if errors else 200, user=user, klass=klass,
                rows=rows, tests=tests, test_id=test_id, errors=errors,
                chosen=request.args.get("test_id", ""), assignments=assignments, tasks=tasks)


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


# -- assignments: a test for a class, with a window, a time limit and an attempt cap -----------

MAX_ATTEMPTS_ON_FORM = 1000
MAX_NOTE = 500
TIME_NAMES = {
    TimeAccommodation.STANDARD.value: _l("standard: the time limit as set"),
    TimeAccommodation.EXTENDED.value: _l("extra time: the limit multiplied by a factor"),
    TimeAccommodation.NONE.value: _l("no time limit"),
}


def _zone() -> ZoneInfo:
    """The time zone the page shows and reads times in (the reader's, named in the footer)."""
    return ZoneInfo(str(get_timezone()))


def local_input(moment: datetime | None) -> str:
    """A UTC datetime as the value of a ``datetime-local`` input, in the reader's zone."""
    if moment is None:
        return ""
    return as_utc(moment).astimezone(_zone()).strftime("%Y-%m-%dT%H:%M")


def _form_moment(name: str, errors: dict[str, str]) -> datetime | None:
    """A ``datetime-local`` field read in the reader's time zone (empty: ``None``)."""
    raw = (request.form.get(name) or "").strip()
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is not None or not 1900 < moment.year < 9999:
        errors[name] = _("Enter a date and time, for example 2026-09-01 08:00.")
        return None
    return moment.replace(tzinfo=_zone())


def _assignment_form(errors: dict[str, str], with_test: bool, tests: list[AdaptiveTest]
                     ) -> dict[str, Any]:
    """The assignment form's values, checked; problems go to ``errors`` by field."""
    values: dict[str, Any] = {}
    if with_test:
        test_id = form_int("test_id", errors, low=1, high=2**31 - 1)
        if "test_id" in errors or test_id not in {t.id for t in tests}:
            errors["test_id"] = _("Choose one of the tests offered.")
        values["test_id"] = test_id
    values["opens_at"] = _form_moment("opens_at", errors)
    values["closes_at"] = _form_moment("closes_at", errors)
    opens, closes = values["opens_at"], values["closes_at"]
    if opens is not None and closes is not None and closes <= opens:
        errors["closes_at"] = _("The closing time must be after the opening time.")
    values["time_limit_minutes"] = form_int("time_limit_minutes", errors, low=1,
                                            high=MAX_TIME_LIMIT_MINUTES, required=False)
    values["max_attempts"] = form_int("max_attempts", errors, low=1, high=MAX_ATTEMPTS_ON_FORM,
                                      required=False)
    return values


def _active_tests() -> list[AdaptiveTest]:
    return list(get_session().scalars(select(AdaptiveTest).where(AdaptiveTest.is_active)
                                      .order_by(AdaptiveTest.name, AdaptiveTest.id)))


def _assignment_page(user: User, klass: SchoolClass, assignment: Assignment | None,
                     errors: dict[str, str] | None = None, status: int = 200) -> Response:
    form = {name: request.form.get(name, "") for name in (
        "test_id", "opens_at", "closes_at", "time_limit_minutes", "max_attempts")}
    if request.method == "GET" and assignment is not None:
        form = {"test_id": str(assignment.test_id),
                "opens_at": local_input(assignment.opens_at),
                "closes_at": local_input(assignment.closes_at),
                "time_limit_minutes": str(assignment.time_limit_minutes or ""),
                "max_attempts": str(assignment.max_attempts or "")}
    return page("teacher/assignment.html", status, user=user, klass=klass,
                assignment=assignment, tests=_active_tests(), form=form, errors=errors or {},
                max_minutes=MAX_TIME_LIMIT_MINUTES, max_attempts=MAX_ATTEMPTS_ON_FORM)


def _service_errors(error: Invalid, errors: dict[str, str]) -> None:
    """A rule the service enforces that the form did not catch, under the field it names."""
    errors[error.field or "test_id"] = str(error)


def _own_class(user: User, class_id: int) -> SchoolClass | None:
    try:
        return visible_class(get_session(), user, class_id)
    except NotFound:
        return None


def _own_assignment(user: User, klass: SchoolClass, assignment_id: int) -> Assignment | None:
    assignment = get_session().get(Assignment, assignment_id)
    if assignment is None or assignment.class_id != klass.id:
        return None
    return assignment


def _no_class(user: User, class_id: int) -> Response:
    return not_found(user, _("There is no class %(id)d among yours.", id=class_id))


@bp.route("/classes/<int:class_id>/assignments/new", methods=["GET", "POST"])
@teachers_only
def new_assignment(user: User, class_id: int) -> Response:
    """Assign a test to the class, with an optional window, time limit and attempt cap."""
    klass = _own_class(user, class_id)
    if klass is None:
        return _no_class(user, class_id)
    if request.method == "GET":
        return _assignment_page(user, klass, None)
    db = get_session()
    errors: dict[str, str] = {}
    values = _assignment_form(errors, True, _active_tests())
    if not errors:
        try:
            assignment = create_assignment(db, user, klass, **values)
        except Invalid as error:
            _service_errors(error, errors)
    if errors:
        db.rollback()
        return _assignment_page(user, klass, None, errors, 422)
    db.commit()
    flash(_("%(test)s is assigned to class %(name)s.", test=assignment.test.name,
            name=klass.name))
    return redirect(url_for(".class_page", class_id=klass.id) + "#assignments", 303)


@bp.route("/classes/<int:class_id>/assignments/<int:assignment_id>", methods=["GET", "POST"])
@teachers_only
def edit_assignment(user: User, class_id: int, assignment_id: int) -> Response:
    """Change an assignment's window, time limit or attempt cap (the test stays)."""
    klass = _own_class(user, class_id)
    if klass is None:
        return _no_class(user, class_id)
    assignment = _own_assignment(user, klass, assignment_id)
    if assignment is None:
        return not_found(user, _("There is no such assignment in this class."))
    if request.method == "GET":
        return _assignment_page(user, klass, assignment)
    db = get_session()
    errors: dict[str, str] = {}
    values = _assignment_form(errors, False, [])
    if not errors:
        try:
            update_assignment(db, assignment, values)
        except Invalid as error:
            _service_errors(error, errors)
    if errors:
        db.rollback()
        return _assignment_page(user, klass, db.get(Assignment, assignment_id), errors, 422)
    db.commit()
    flash(_("The assignment of %(test)s is saved.", test=assignment.test.name))
    return redirect(url_for(".class_page", class_id=klass.id) + "#assignments", 303)


@bp.post("/classes/<int:class_id>/assignments/<int:assignment_id>/delete")
@teachers_only
def delete_assignment_view(user: User, class_id: int, assignment_id: int) -> Response:
    """Remove an assignment; the attempts made under it are kept."""
    klass = _own_class(user, class_id)
    if klass is None:
        return _no_class(user, class_id)
    assignment = _own_assignment(user, klass, assignment_id)
    if assignment is None:
        return not_found(user, _("There is no such assignment in this class."))
    name = assignment.test.name
    db = get_session()
    delete_assignment(db, assignment)
    db.commit()
    flash(_("%(test)s is no longer assigned to class %(name)s. Attempts already made are kept.",
            test=name, name=klass.name))
    return redirect(url_for(".class_page", class_id=klass.id) + "#assignments", 303)


# -- a student's accommodation -------------------------------------------------------------------


def _class_student(user: User, klass: SchoolClass, student_id: int) -> User | None:
    """The student if enrolled in ``klass`` (whose teacher ``user`` is, or an admin)."""
    db = get_session()
    enrolled = db.scalar(select(func.count()).select_from(class_members).where(
        class_members.c.class_id == klass.id, class_members.c.user_id == student_id))
    if not enrolled:
        return None
    try:
        return accommodated_student(db, user, student_id)
    except NotFound:
        return None


def _accommodation_page(user: User, klass: SchoolClass, student: User,
                        errors: dict[str, str] | None = None, status: int = 200) -> Response:
    if request.method == "GET":
        current = accommodation_of(get_session(), student)
        form = {"time": current["time"].value if hasattr(current["time"], "value")
                else str(current["time"]),
                "time_factor": f"{current['time_factor']:g}", "note": current["note"]}
    else:
        form = {name: request.form.get(name, "").strip()
                for name in ("time", "time_factor", "note")}
    return page("teacher/accommodation.html", status, user=user, klass=klass, student=student,
                form=form, errors=errors or {}, time_names=TIME_NAMES,
                editable=user.role == Role.ADMIN,
                max_factor=MAX_TIME_FACTOR, max_note=MAX_NOTE)


@bp.route("/classes/<int:class_id>/students/<int:student_id>/accommodation",
          methods=["GET", "POST"])
@teachers_only
def accommodation(user: User, class_id: int, student_id: int) -> Response:
    """How time limits apply to a student: as set, with extra time (a factor), or not at all."""
    klass = _own_class(user, class_id)
    if klass is None:
        return _no_class(user, class_id)
    student = _class_student(user, klass, student_id)
    if student is None:
        return not_found(user, _("There is no such student in this class."))
    if request.method == "GET":
        return _accommodation_page(user, klass, student)
    if user.role != Role.ADMIN:  # it changes every class's tests: no single teacher sets it
        return _accommodation_page(user, klass, student, status=403)
    errors: dict[str, str] = {}
    time = request.form.get("time", "").strip()
    if time not in TIME_NAMES:
        errors["time"] = _("Choose one of the options offered.")
    raw = request.form.get("time_factor", "").strip().replace(",", ".")
    factor = DEFAULT_TIME_FACTOR
    if time == TimeAccommodation.EXTENDED.value or raw:
        try:
            factor = float(raw)
        except ValueError:
            factor = float("nan")
        if not 1.0 <= factor <= MAX_TIME_FACTOR:  # false for NaN too
            highest = format_decimal(MAX_TIME_FACTOR)
            errors["time_factor"] = _("Enter a number from 1 to %(high)s, for example 1.5.",
                                      high=highest)
    note = request.form.get("note", "").strip()
    if len(note) > MAX_NOTE:
        errors["note"] = _("Keep the note under %(n)d characters.", n=MAX_NOTE)
    db = get_session()
    if not errors:
        try:
            set_accommodation(db, user, student, time=TimeAccommodation(time),
                              time_factor=factor, note=note)
        except Invalid as error:
            errors[error.field or "time"] = str(error)
    if errors:
        db.rollback()
        return _accommodation_page(user, klass, student, errors, 422)
    db.commit()
    flash(_("The accommodation of %(name)s is saved. It applies to attempts started from now "
            "on.", name=student.display_name or student.username))
    return redirect(url_for(".class_page", class_id=klass.id), 303)
