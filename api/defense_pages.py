"""Pages for oral defenses.

Teachers: ``/teach/classes/<c>/defenses`` (a class's defenses with their status, and the form to
schedule one), ``/teach/defenses`` (the defenses a teacher scores or leads, their queue first)
and ``/teach/defenses/<id>/score``: one screen per student, keyboard first. Each criterion is a
radio group (arrow keys move within it) with every level's label and descriptor, and a notes
field; the recording link if any. Before every rater has submitted, a rater sees only their own
sheet; afterwards all scores side by side, disagreements marked in words, a correction form
and, for the adjudicator, the adjudication form. Students: ``/my-defenses``, their defenses and,
once final, the final score per criterion with the level's label and descriptor.

The rules live in :mod:`evidence.defenses`; the views read the form, call one service, commit
once and redirect (303).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from api.db import get_session
from api.staff import for_roles, install_error_pages, message, not_found, page
from api.teacher_pages import _form_moment, natural_key, teachers_only
from evidence import defenses as service
from evidence.classes import roster_query, visible_class
from evidence.models import Defense, Rubric, RubricVersion, Task
from storage.accounts import Role, SchoolClass, User, class_members
from storage.errors import Conflict, Forbidden, Invalid, NotFound

bp = Blueprint("defense_pages", __name__)
install_error_pages(bp)

STATUS_NAMES = {
    service.SCHEDULED: _l("scheduled"), service.SCORING: _l("being scored"),
    service.NEEDS_ADJUDICATION: _l("needs adjudication"), service.FINAL: _l("final"),
    service.CANCELLED: _l("cancelled"),
}


def _students_only():
    return for_roles(Role.STUDENT, refusal=lambda: (
        _("Only students have defenses"), _("This page lists a student's own oral defenses.")))


def _name(user: User) -> str:
    return user.display_name or user.username


def status_name(status: str) -> str:
    """A defense's status in the reader's language."""
    return str(STATUS_NAMES.get(status, status))


# -- a class's defenses --------------------------------------------------------------------------


def _eligible_raters(klass: SchoolClass) -> list[User]:
    """Teachers who may score some student of the class: its teacher, and teachers of a class
    that shares a student with it (the service checks each defense's student)."""
    db = get_session()
    roster = select(class_members.c.user_id).where(class_members.c.class_id == klass.id)
    shared = select(SchoolClass.teacher_id).join(
        class_members, class_members.c.class_id == SchoolClass.id).where(
        class_members.c.user_id.in_(roster))
    users = db.scalars(select(User).where(
        User.role == Role.TEACHER, User.is_active.is_(True),
        (User.id == klass.teacher_id) | User.id.in_(shared))).all()
    return sorted(users, key=lambda u: (u.id != klass.teacher_id, natural_key(_name(u))))


def _rubrics() -> list[Rubric]:
    db = get_session()
    with_versions = select(RubricVersion.rubric_id)
    return list(db.scalars(select(Rubric).where(Rubric.archived_at.is_(None),
                                                Rubric.id.in_(with_versions))
                           .order_by(Rubric.name)))


def _form_id(name: str, errors: dict[str, str], required: bool = True) -> int | None:
    raw = (request.form.get(name) or "").strip()
    if not raw:
        if required:
            errors[name] = _("Choose one.")
        return None
    if not (raw.isascii() and raw.isdecimal() and len(raw) < 10):
        errors[name] = _("Choose one of those listed.")
        return None
    return int(raw)


def _schedule_values(errors: dict[str, str]) -> dict[str, Any]:
    raters = []
    for raw in request.form.getlist("raters"):
        if raw.isascii() and raw.isdecimal() and len(raw) < 10:
            raters.append(int(raw))
    if not raters:
        errors["raters"] = _("Choose at least one rater.")
    return {"student_id": _form_id("student_id", errors),
            "rubric_id": _form_id("rubric_id", errors),
            "task_id": _form_id("task_id", errors, required=False),
            "title": (request.form.get("title") or "").strip(),
            "scheduled_at": _form_moment("scheduled_at", errors),
            "recording_url": (request.form.get("recording_url") or "").strip() or None,
            "raters": raters,
            "adjudicator": _form_id("adjudicator", errors, required=False)}


def _schedule_refusal(error: Invalid) -> tuple[str, str]:
    """The form field a service refusal concerns, and the message in the reader's language."""
    field = (error.field or "").split("[")[0]
    texts = {
        "student_id": _("Choose a student of this class."),
        "rubric_id": _("Choose a rubric that is in use and has criteria."),
        "task_id": _("Choose one of this class's tasks, or none."),
        "title": _("Enter a title of 1 to %(n)d characters.", n=service.MAX_TITLE),
        "recording_url": _("Enter a link that starts with http:// or https://."),
        "raters": _("Each rater must teach a class this student is in (or be this class's "
                    "teacher), and be chosen once."),
        "adjudicator": _("The adjudicator must teach a class this student is in (or be this "
                         "class's teacher), and must not be one of the raters."),
        "scheduled_at": _("Enter a date and time, for example 2026-09-01 08:00."),
    }
    return (field if field in texts else "title"), texts.get(field, str(error))


def _class_page(user: User, klass: SchoolClass, errors: dict[str, str] | None = None,
                form: dict[str, Any] | None = None) -> Response:
    db = get_session()
    rows = [service.defense_summary(db, user, d)
            for d in db.scalars(service.defenses_query(user, class_id=klass.id))]
    students = sorted(db.scalars(roster_query(klass)), key=lambda s: natural_key(_name(s)))
    tasks = db.scalars(select(Task).where(Task.class_id == klass.id,
                                          Task.archived_at.is_(None)).order_by(Task.title)).all()
    form = form or {"raters": [user.id] if user.id == klass.teacher_id else []}
    return page("defenses/class_defenses.html", 422 if errors else 200, user=user, klass=klass,
                rows=rows, students=students, rubrics=_rubrics(), tasks=tasks,
                raters=_eligible_raters(klass), errors=errors or {}, form=form,
                status_name=status_name, max_title=service.MAX_TITLE)


@bp.route("/teach/classes/<int:class_id>/defenses", methods=["GET", "POST"])
@teachers_only
def class_defenses(user: User, class_id: int) -> Response:
    """A class's defenses with their status, and the form to schedule one."""
    db = get_session()
    try:
        klass = visible_class(db, user, class_id)
    except NotFound:
        return not_found(user, _("There is no class %(id)d among yours.", id=class_id))
    if request.method == "GET":
        return _class_page(user, klass)
    errors: dict[str, str] = {}
    values = _schedule_values(errors)
    form = {**request.form.to_dict(), "raters": values["raters"]}
    if errors:
        return _class_page(user, klass, errors, form)
    try:
        defense = service.schedule(db, user, klass.id, values.pop("student_id"),
                                   values.pop("rubric_id"), **values)
    except Invalid as error:
        db.rollback()
        field, text = _schedule_refusal(error)
        return _class_page(user, klass, {field: text}, form)
    db.commit()
    flash(_("The defense %(title)s is scheduled.", title=defense.title))
    return redirect(url_for("defense_pages.score", defense_id=defense.id), 303)


# -- the teacher's defenses ----------------------------------------------------------------------


@bp.get("/teach/defenses")
@teachers_only
def my_defenses(user: User) -> Response:
    """The defenses the teacher scores or leads: their queue first, then all, soonest first."""
    db = get_session()
    queue = [service.defense_summary(db, user, d) for d in service.to_score(db, user)]
    rows = [service.defense_summary(db, user, d)
            for d in db.scalars(service.defenses_query(user))]
    return page("defenses/teacher_defenses.html", user=user, queue=queue, rows=rows,
                status_name=status_name)


def _visible(user: User, defense_id: int) -> Defense | Response:
    try:
        return service.visible_defense(get_session(), user, defense_id)
    except NotFound:
        return not_found(user, _("There is no such defense among yours."))


def _sheet_form(criteria: list, errors: dict[str, str]) -> tuple[dict, dict]:
    """The score sheet from the form: ``{criterion_id: {score, note}}``, and the raw values."""
    sheet: dict[int, dict[str, Any]] = {}
    raw: dict[str, str] = {}
    for criterion in criteria:
        key, note_key = f"score-{criterion.id}", f"note-{criterion.id}"
        value = (request.form.get(key) or "").strip()
        note = request.form.get(note_key) or ""
        raw[key], raw[note_key] = value, note
        if not value:
            errors[key] = _("Choose a level for %(name)s.", name=criterion.name)
            continue
        if not (value.isascii() and value.lstrip("-").isdecimal() and len(value) < 6):
            errors[key] = _("Choose one of the levels of %(name)s.", name=criterion.name)
            continue
        sheet[criterion.id] = {"score": int(value), "note": note}
    return sheet, raw


def _next_to_score(user: User, after: int) -> Defense | None:
    return next((d for d in service.to_score(get_session(), user) if d.id != after), None)


def _score_page(user: User, defense: Defense, errors: dict[str, str] | None = None,
                form: dict[str, str] | None = None, status: int = 200) -> Response:
    db = get_session()
    state = service.defense_state(db, defense)
    view = service.defense_view(db, user, defense, state)
    own = state.rater(user.id)
    names = {r.rater_id: _name(r.rater) for r in defense.raters}
    lead = service.is_lead(user, defense) or user.role == Role.ADMIN
    pending = []
    if (view["open"] and state.adjudicator_id() == user.id and user.role == Role.TEACHER
            and defense.cancelled_at is None):
        pending = [c for c in state.criteria if c.id in state.pending()
                   and user.id not in service.discordant_raters(state.scores_of(c.id))]
    history = [h for h in view.get("history", []) if h["corrects_id"] or h["kind"] ==
               service.ADJUDICATION]
    # Managing raters: the lead teacher or an administrator who does not rate it (a rater
    # would learn from the buttons whether the others have submitted).
    manages = lead and own is None and defense.cancelled_at is None
    assigned = {r.rater_id for r in defense.raters}
    candidates = [u for u in _eligible_raters(defense.school_class) if u.id not in assigned
                  and service.may_rate(db, u, defense.school_class, defense.student_id)
                  ] if manages else []
    return page("defenses/score.html", 422 if errors and status == 200 else status, user=user,
                defense=defense, state=state, view=view, own=own, names=names, lead=lead,
                errors=errors or {}, form=form or {}, pending=pending, history=history,
                criteria={c.id: c for c in state.criteria},
                finals={f["criterion_id"]: f for f in view.get("final", [])},
                disputed=set(view.get("disputed", [])),
                next_defense=_next_to_score(user, defense.id), status_name=status_name,
                rater_ids=[r.rater_id for r in state.raters], manages=manages,
                candidates=candidates,
                all_scores=sorted({int(level["score"]) for c in state.criteria
                                   for level in c.levels}))


@bp.route("/teach/defenses/<int:defense_id>/score", methods=["GET", "POST"])
@teachers_only
def score(user: User, defense_id: int) -> Response:
    """The scoring screen (GET), and the whole score sheet sent from it (POST)."""
    defense = _visible(user, defense_id)
    if isinstance(defense, Response):
        return defense
    if request.method == "GET":
        return _score_page(user, defense)
    db = get_session()
    state = service.defense_state(db, defense)
    errors: dict[str, str] = {}
    sheet, raw = _sheet_form(state.criteria, errors)
    if errors:
        return _score_page(user, defense, errors, raw)
    try:
        service.submit_sheet(db, user, defense, sheet)
    except Forbidden:
        db.rollback()
        return message(_("Not one of your defenses to score"),
                       _("Only the teachers assigned as raters score this defense."), 403, user)
    except Conflict as error:
        db.rollback()
        return _score_page(user, defense, {"sheet": _conflict_text(error, defense)}, raw, 409)
    except Invalid as error:
        db.rollback()
        key = _sheet_field(error)
        return _score_page(user, defense, {key: _("Choose one of the levels listed.")}, raw)
    db.commit()
    flash(_("Your scores for %(name)s are saved.", name=_name(defense.student)))
    return redirect(url_for("defense_pages.score", defense_id=defense.id), 303)


def _sheet_field(error: Invalid) -> str:
    """``scores.12.score`` -> ``score-12`` (the radio group it concerns)."""
    parts = (error.field or "").split(".")
    if len(parts) >= 2 and parts[1].isdecimal():
        return f"{'note' if parts[-1] == 'note' else 'score'}-{parts[1]}"
    return "sheet"


def _conflict_text(error: Conflict, defense: Defense) -> str:
    if defense.cancelled_at is not None:
        return _("This defense is cancelled; it takes no more scores.")
    return _("You have already submitted your scores. To change one, use the correction form "
             "and say why.")


def _redirect_back(defense: Defense) -> Response:
    return redirect(url_for("defense_pages.score", defense_id=defense.id), 303)


@bp.post("/teach/defenses/<int:defense_id>/corrections")
@teachers_only
def correct(user: User, defense_id: int) -> Response:
    """Correct one of the rater's own scores, with a reason (a new record; the old is kept)."""
    defense = _visible(user, defense_id)
    if isinstance(defense, Response):
        return defense
    errors: dict[str, str] = {}
    criterion_id = _form_id("criterion_id", errors)
    raw = (request.form.get("correction_score") or "").strip()
    if not (raw.isascii() and raw.isdecimal() and len(raw) < 6):
        errors["correction_score"] = _("Choose a score.")
    reason = (request.form.get("reason") or "").strip()
    if not reason:
        errors["reason"] = _("Say why you correct the score.")
    form = {"criterion_id": request.form.get("criterion_id", ""), "correction_score": raw,
            "reason": reason}
    if errors:
        return _score_page(user, defense, errors, form)
    db = get_session()
    try:
        service.correct(db, user, defense, criterion_id, int(raw), reason)
    except Forbidden:
        db.rollback()
        return message(_("Not one of your defenses to score"),
                       _("Only the teachers assigned as raters score this defense."), 403, user)
    except Conflict as error:
        db.rollback()
        return _score_page(user, defense, {"correction": _conflict_text(error, defense)}, form,
                           409)
    except Invalid as error:
        db.rollback()
        key = "correction_score" if error.field == "score" else (
            "reason" if error.field == "reason" else "criterion_id")
        return _score_page(user, defense, {key: _("Choose a score among the criterion's "
                                                  "levels, and say why.")}, form)
    db.commit()
    flash(_("Your correction is saved; the score it replaces is kept in the history."))
    return _redirect_back(defense)


@bp.post("/teach/defenses/<int:defense_id>/adjudications")
@teachers_only
def adjudicate(user: User, defense_id: int) -> Response:
    """Settle one criterion on which the raters differ by more than one level, with a reason."""
    defense = _visible(user, defense_id)
    if isinstance(defense, Response):
        return defense
    errors: dict[str, str] = {}
    criterion_id = _form_id("criterion_id", errors)
    key = f"adjudicate-{criterion_id}"
    raw = (request.form.get(key) or "").strip()
    reason = (request.form.get(f"reason-{criterion_id}") or "").strip()
    if not (raw.isascii() and raw.isdecimal() and len(raw) < 6):
        errors[key] = _("Choose a level.")
    if not reason:
        errors[f"reason-{criterion_id}"] = _("Say why you settle on this level.")
    form = {key: raw, f"reason-{criterion_id}": reason}
    if errors:
        return _score_page(user, defense, errors, form)
    db = get_session()
    try:
        service.adjudicate(db, user, defense, criterion_id, int(raw), reason)
    except Forbidden:
        db.rollback()
        return message(_("You do not adjudicate this defense"),
                       _("The adjudicator assigned to it, or the class's teacher when none is, "
                         "settles disagreements; never a rater whose score is disputed."), 403,
                       user)
    except (Conflict, Invalid):
        db.rollback()
        return _score_page(user, defense, {key: _("This criterion needs no adjudication now, "
                                                  "or the level is not one of its levels.")},
                           form, 409)
    db.commit()
    flash(_("Your adjudication is saved."))
    return _redirect_back(defense)


def _managed(user: User, defense_id: int) -> Defense | Response:
    try:
        return service.managed_defense(get_session(), user, defense_id)
    except NotFound:
        return not_found(user, _("There is no such defense among yours."))
    except Forbidden:
        return message(_("Only the class's teacher may change this"),
                       _("A defense's raters are chosen, and a defense is cancelled, by its "
                         "class's teacher or an administrator."), 403, user)


@bp.post("/teach/defenses/<int:defense_id>/raters")
@teachers_only
def add_rater(user: User, defense_id: int) -> Response:
    """Assign another rater, or the adjudicator (lead teacher or administrator)."""
    defense = _managed(user, defense_id)
    if isinstance(defense, Response):
        return defense
    errors: dict[str, str] = {}
    user_id = _form_id("user_id", errors)
    role = request.form.get("role") or service.RATER
    if role not in service.ROLES:
        errors["role"] = _("Choose one of those listed.")
    if errors:
        return _score_page(user, defense, errors, request.form.to_dict())
    db = get_session()
    try:
        service.add_rater(db, user, defense, user_id, role)
    except Invalid:
        db.rollback()
        return _score_page(user, defense, {"user_id": _(
            "This teacher may not score this student: a rater must teach a class the student "
            "is in, or be the class's teacher.")}, request.form.to_dict())
    except Conflict as error:
        db.rollback()
        return _score_page(user, defense, {"user_id": _rater_conflict(error)},
                           request.form.to_dict(), 409)
    db.commit()
    flash(_("%(name)s is assigned.", name=_name(db.get(User, user_id))))
    return _redirect_back(defense)


def _rater_conflict(error: Conflict) -> str:
    text = str(error)
    if "already has an adjudicator" in text or "adjudicated" in text:
        return _("This defense already has an adjudicator, or has been adjudicated.")
    if "blind" in text:
        return _("Every rater has submitted; a new rater would not score blind.")
    if "submitted" in text:
        return _("A rater who has submitted stays a rater.")
    if "only rater" in text:
        return _("A defense needs at least one rater: assign another first.")
    return _("That teacher is already assigned to this defense.")


@bp.post("/teach/defenses/<int:defense_id>/raters/<int:user_id>/remove")
@teachers_only
def remove_rater(user: User, defense_id: int, user_id: int) -> Response:
    """Take a rater (or the adjudicator) off a defense before they have scored."""
    defense = _managed(user, defense_id)
    if isinstance(defense, Response):
        return defense
    db = get_session()
    try:
        service.remove_rater(db, user, defense, user_id)
    except (NotFound, Forbidden, Conflict) as error:
        db.rollback()
        text = _rater_conflict(error) if isinstance(error, Conflict) else _(
            "This teacher cannot be removed from this defense.")
        flash(text, "warning")
        return _redirect_back(defense)
    db.commit()
    flash(_("The rater is removed."))
    return _redirect_back(defense)


@bp.post("/teach/defenses/<int:defense_id>/cancel")
@teachers_only
def cancel(user: User, defense_id: int) -> Response:
    """Cancel a defense (its lead teacher or an administrator); every score is kept."""
    defense = _managed(user, defense_id)
    if isinstance(defense, Response):
        return defense
    db = get_session()
    try:
        service.cancel(db, defense)
    except Conflict:
        db.rollback()
        flash(_("This defense was already cancelled."), "warning")
        return _redirect_back(defense)
    db.commit()
    flash(_("The defense is cancelled. Its scores are kept."))
    return _redirect_back(defense)


# -- students ------------------------------------------------------------------------------------


@bp.get("/my-defenses")
@_students_only()
def student_defenses(user: User) -> Response:
    """The student's own defenses; once final, the final score per criterion with its level."""
    db = get_session()
    views = [service.defense_view(db, user, d)
             for d in db.scalars(service.defenses_query(user))]
    return page("defenses/student_defenses.html", user=user, views=views,
                status_name=status_name)
