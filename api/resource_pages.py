"""Pages for learning resources (teachers, assessors and administrators).

``/resources`` lists them by skill (``?skill=`` one skill, ``?archived=1`` archived ones too)
with a form to add one; ``/resources/<id>/edit`` changes one; ``POST /resources/<id>/archive``
archives or restores it. Forms work without JavaScript. Every check is done again by
:mod:`reports.resources`; its errors name a field, which is put into words here (translated).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from api.db import get_session
from api.staff import for_roles, install_error_pages, not_found, page
from reports import resources as service
from reports.models import LearningResource
from storage.accounts import User
from storage.errors import Invalid, NotFound

bp = Blueprint("resource_pages", __name__)
install_error_pages(bp)

#: A field's problem in words (the service names the field; its English message is for the API).
FIELD_WORDS = {
    "title": _l("Give the resource a title (at most 200 characters)."),
    "url": _l("Give a web address that starts with http:// or https://."),
    "skill": _l("Choose a skill of the item bank."),
    "level_min": _l("Enter a level from -6 to 6, or leave it empty; the lowest level must not "
                    "be above the highest."),
    "level_max": _l("Enter a level from -6 to 6, or leave it empty; the lowest level must not "
                    "be above the highest."),
    "description": _l("The description is too long: at most 5,000 characters."),
}


def _refusal() -> tuple[str, str]:
    return (_("Only staff may see learning resources"),
            _("Learning resources are kept by teachers, assessors and administrators. "
              "Students find them among the next steps of their report."))


def staff_only(view):
    """Teachers, assessors and administrators (others: sign in, or a 403 page)."""
    return for_roles(*service.WRITERS, refusal=_refusal)(view)


def _form() -> dict[str, str]:
    return {name: request.form.get(name, "") for name in service.FIELDS}


def _values(form: dict[str, str]) -> dict[str, Any]:
    """The form as the service reads it (empty levels: open)."""
    return {name: (value.strip() or None) if name.startswith("level_") else value
            for name, value in form.items()}


def _list_page(user: User, status: int = 200, form: dict[str, str] | None = None,
               errors: dict[str, str] | None = None) -> Response:
    db = get_session()
    show_archived = request.args.get("archived") == "1"
    skills = service.known_skills(db)
    skill = request.args.get("skill") or None
    if skill not in skills:
        skill = None
    rows = db.scalars(service.resources_query(skill=skill,
                                              archived=None if show_archived else False)).all()
    return page("resources/list.html", status, user=user, resources=rows, skills=skills,
                skill=skill, show_archived=show_archived, form=form or {}, errors=errors or {})


def _edit_page(user: User, resource: LearningResource, status: int = 200,
               form: dict[str, str] | None = None,
               errors: dict[str, str] | None = None) -> Response:
    if form is None:
        form = {"title": resource.title, "url": resource.url, "skill": resource.skill,
                "description": resource.description or "",
                "level_min": "" if resource.level_min is None else f"{resource.level_min:g}",
                "level_max": "" if resource.level_max is None else f"{resource.level_max:g}"}
    return page("resources/edit.html", status, user=user, resource=resource,
                skills=service.known_skills(get_session()), form=form, errors=errors or {})


def _problem(error: Invalid) -> dict[str, str]:
    field = error.field if error.field in FIELD_WORDS else "form"
    return {field: str(FIELD_WORDS[field]) if field in FIELD_WORDS else str(error)}


@bp.get("/resources")
@staff_only
def resources(user: User) -> Response:
    """Learning resources by skill, with the form to add one."""
    return _list_page(user)


@bp.post("/resources")
@staff_only
def add_resource(user: User) -> Response:
    """Add a resource; problems are shown beside their fields, nothing is kept."""
    db = get_session()
    form = _form()
    try:
        resource = service.create_resource(db, user, _values(form))
    except Invalid as error:
        db.rollback()
        return _list_page(user, 422, form, _problem(error))
    db.commit()
    flash(_("The resource %(title)s is added.", title=resource.title))
    return redirect(url_for("resource_pages.resources"), 303)


def _resource(resource_id: int) -> LearningResource | None:
    try:
        return service.get_resource(get_session(), resource_id)
    except NotFound:
        return None


@bp.get("/resources/<int:resource_id>/edit")
@staff_only
def edit_resource(user: User, resource_id: int) -> Response:
    """The form to change a resource."""
    resource = _resource(resource_id)
    if resource is None:
        return not_found(user, _("There is no learning resource %(id)d.", id=resource_id))
    return _edit_page(user, resource)


@bp.post("/resources/<int:resource_id>/edit")
@staff_only
def save_resource(user: User, resource_id: int) -> Response:
    """Save the changed resource."""
    db = get_session()
    resource = _resource(resource_id)
    if resource is None:
        return not_found(user, _("There is no learning resource %(id)d.", id=resource_id))
    form = _form()
    try:
        service.update_resource(db, resource, _values(form))
    except Invalid as error:
        db.rollback()
        return _edit_page(user, _resource(resource_id), 422, form, _problem(error))
    db.commit()
    flash(_("The resource %(title)s is saved.", title=resource.title))
    return redirect(url_for("resource_pages.resources"), 303)


@bp.post("/resources/<int:resource_id>/archive")
@staff_only
def archive_resource(user: User, resource_id: int) -> Response:
    """Archive a resource (``restore=1``: put it back)."""
    db = get_session()
    resource = _resource(resource_id)
    if resource is None:
        return not_found(user, _("There is no learning resource %(id)d.", id=resource_id))
    restore = request.form.get("restore") == "1"
    service.set_archived(resource, not restore)
    db.commit()
    if restore:
        flash(_("The resource %(title)s is back in use.", title=resource.title))
    else:
        flash(_("The resource %(title)s is archived: it is no longer suggested.",
                title=resource.title))
    return redirect(url_for("resource_pages.resources", archived=1 if restore else None), 303)
