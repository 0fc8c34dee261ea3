"""Pages of the privacy note and consents.

- ``/privacy``: the note in force (or ``?version=n``), readable without signing in and linked
  from every page's footer, with every earlier version.
- ``/admin/privacy``: a district administrator publishes a new version.
- ``/my-privacy``: a student's consents (given or withdrawn here where their school allows it;
  otherwise who to ask) and the download of their data.
- ``/admin/students/<id>/privacy``: an administrator records a student's consents and, with the
  demographics consent, their group variables.

They call :mod:`rights.privacy_note` and :mod:`rights.consent` as the API does; forms POST then
redirect, errors re-render beside the field (422).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_babel import gettext as _

from api.db import get_session
from api.page_sessions import current_user
from api.staff import for_roles, install_error_pages, message, not_found, page
from rights import consent as service
from rights import privacy_note as notes
from rights.retention import KINDS
from storage.accounts import Role, User
from storage.errors import Conflict, Forbidden, Invalid, NotFound

bp = Blueprint("privacy_pages", __name__)
install_error_pages(bp)


def purpose_labels() -> dict[str, tuple[str, str]]:
    """Each purpose's name and what saying yes means, in plain words."""
    return {
        "research": (_("Research"), _(
            "Your answers may be used, without your name, beyond your school's own teaching: "
            "for example to check new questions with the answers of many schools.")),
        "demographics": (_("Group information"), _(
            "Information such as your home language may be kept, to check that the tests are "
            "fair to every group. Without this consent it is neither kept nor shown.")),
    }


def kind_labels() -> dict[str, str]:
    """Each kind of record a note may set a retention period for."""
    return {"statements": _("Step logs"), "attempts": _("Test attempts and answers"),
            "drafts": _("Drafts of tasks"), "rubric_scores": _("Rubric scores"),
            "appeals": _("Appeals"), "decisions": _("Teachers' decisions"),
            "page_sessions": _("Sign-in sessions"), "report_jobs": _("Class report packs")}


@bp.get("/privacy")
def privacy():
    """The privacy note (the one in force, or ``?version=``), for anyone."""
    session = get_session()
    user = current_user()
    wanted = request.args.get("version", "")
    try:
        note = (notes.note_version(session, int(wanted)) if wanted.isdigit()
                else notes.current_note(session))
    except NotFound:
        return message(_("Not found"), _("There is no such version of the privacy note."), 404,
                       user)
    return page("privacy/note.html", user=user, note=note, versions=notes.versions(session),
                kinds=kind_labels())


def _admins() -> tuple[str, str]:
    return _("For administrators"), _("The privacy note is published by an administrator.")


def _note_form(user: User, status: int = 200, errors: dict[str, str] | None = None,
               values: dict[str, Any] | None = None) -> Response:
    session = get_session()
    current = notes.current_note(session)
    if values is None:
        values = ({"title": current.title, "body": current.body,
                   "keep": current.keep_anonymous_responses,
                   **{f"days_{k}": v for k, v in (current.retention or {}).items()}}
                  if current is not None else {"keep": True})
    return page("privacy/publish.html", status, user=user, current=current, errors=errors or {},
                values=values, kinds=kind_labels())


@bp.get("/admin/privacy")
@for_roles(Role.ADMIN, refusal=_admins)
def publish_form(user: User) -> Response:
    """The form for a new version, filled with the one in force."""
    return _note_form(user)


@bp.post("/admin/privacy")
@for_roles(Role.ADMIN, refusal=_admins)
def publish(user: User) -> Response:
    """Publish the new version."""
    form = request.form
    values: dict[str, Any] = {"title": form.get("title", ""), "body": form.get("body", ""),
                              "keep": form.get("keep") == "1"}
    retention: dict[str, int] = {}
    errors: dict[str, str] = {}
    for kind in KINDS:
        text = form.get(f"days_{kind}", "").strip()
        values[f"days_{kind}"] = text
        if text:
            if not text.isdigit() or not 1 <= int(text) <= notes.MAX_DAYS:
                errors[f"days_{kind}"] = _("Enter a whole number of days from 1 to %(most)d, "
                                           "or leave it empty to keep these records.",
                                           most=notes.MAX_DAYS)
            else:
                retention[kind] = int(text)
    session = get_session()
    if not errors:
        try:
            note = notes.publish(session, user, title=values["title"], body=values["body"],
                                 retention=retention, keep_anonymous_responses=values["keep"])
        except Forbidden:
            return message(_("For administrators"), _(
                "The privacy note is published by a district administrator."), 403, user)
        except Invalid as error:
            errors[error.field or "body"] = (
                _("Write a title.") if error.field == "title" else _("Write the note."))
        else:
            session.commit()
            flash(_("Version %(n)d of the privacy note is published.", n=note.version))
            return redirect(url_for("privacy_pages.privacy"), 303)
    session.rollback()
    return _note_form(user, 422, errors, values)


# -- consents ------------------------------------------------------------------------------------


def _consent_page(user: User, student_id: int, template: str, status: int = 200,
                  errors: dict[str, str] | None = None) -> Response:
    session = get_session()
    state = service.consents(session, user, student_id)
    student = session.get(User, student_id)
    groups = None
    if state["current"]["demographics"]["granted"]:
        groups = service.groups(session, user, student_id)
    return page(template, status, user=user, student=student, state=state,
                purposes=purpose_labels(), groups=groups, errors=errors or {},
                note=notes.current_note(session))


def _record(user: User, student_id: int) -> str | None:
    """Record the form's consent; returns an error message for the page, or None."""
    session = get_session()
    try:
        service.record_consent(session, user, student_id, request.form.get("purpose"),
                               request.form.get("granted") == "1",
                               request.form.get("note", ""))
    except Invalid:
        session.rollback()
        return _("Choose one of the purposes offered.")
    session.commit()
    flash(_("The consent is recorded."))
    return None


@bp.get("/my-privacy")
@for_roles(Role.STUDENT, refusal=lambda: (_("For students"), _(
    "Students see and give their consents here.")))
def my_privacy(user: User) -> Response:
    """The student's consents and their data."""
    return _consent_page(user, user.id, "privacy/mine.html")


@bp.post("/my-privacy")
@for_roles(Role.STUDENT, refusal=lambda: (_("For students"), _(
    "Students see and give their consents here.")))
def my_consent(user: User) -> Response:
    """The student gives or withdraws a consent (where the school allows it)."""
    try:
        problem = _record(user, user.id)
    except Forbidden:
        get_session().rollback()
        return message(_("Ask your school"), _(
            "Your school records consents itself: ask your school's administrator."), 403, user)
    if problem:
        return _consent_page(user, user.id, "privacy/mine.html", 422, {"purpose": problem})
    return redirect(url_for("privacy_pages.my_privacy"), 303)


@bp.get("/admin/students/<int:student_id>/privacy")
@for_roles(Role.ADMIN, refusal=_admins)
def student_privacy(user: User, student_id: int) -> Response:
    """A student's consents and group variables, for an administrator."""
    try:
        return _consent_page(user, student_id, "privacy/student.html")
    except NotFound:
        return not_found(user, _("There is no such student among those you administer."))


@bp.post("/admin/students/<int:student_id>/privacy")
@for_roles(Role.ADMIN, refusal=_admins)
def record_student_consent(user: User, student_id: int) -> Response:
    """Record a consent given or withdrawn for the student."""
    try:
        problem = _record(user, student_id)
    except NotFound:
        return not_found(user, _("There is no such student among those you administer."))
    if problem:
        return _consent_page(user, student_id, "privacy/student.html", 422, {"purpose": problem})
    return redirect(url_for("privacy_pages.student_privacy", student_id=student_id), 303)


@bp.post("/admin/students/<int:student_id>/groups")
@for_roles(Role.ADMIN, refusal=_admins)
def record_groups(user: User, student_id: int) -> Response:
    """Set the student's group variables (with the demographics consent)."""
    session = get_session()
    names = request.form.getlist("variable")
    values = request.form.getlist("value")
    chosen = {n.strip(): v for n, v in zip(names, values, strict=False) if n.strip()}
    try:
        service.set_groups(session, user, student_id, chosen)
    except NotFound:
        return not_found(user, _("There is no such student among those you administer."))
    except (Conflict, Invalid) as error:
        session.rollback()
        text = (_("Record the demographics consent first.") if isinstance(error, Conflict)
                else _("A variable's name is letters, digits or underscores; a value at most "
                       "80 characters."))
        return _consent_page(user, student_id, "privacy/student.html", 422 if
                             isinstance(error, Invalid) else 409, {"groups": text})
    session.commit()
    flash(_("The group information is saved."))
    return redirect(url_for("privacy_pages.student_privacy", student_id=student_id), 303)
