"""Plumbing shared by the staff pages (assessment team, teachers): who may see a page, message
pages, form errors, and the handlers for expired forms and an unreachable database."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import (
    Blueprint,
    Response,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from werkzeug.exceptions import BadRequest

from api.db import get_session
from api.pages import current_user, safe_next
from storage.accounts import Role, User


def page(template: str, status: int = 200, **context: Any) -> Response:
    """Render a staff page (never cached: it shows the bank or students as they are now)."""
    response = make_response(render_template(template, **context), status)
    response.headers["Cache-Control"] = "no-store"
    return response


def message(title: str, text: str, status: int, user: User | None) -> Response:
    """A page that only says what happened (403, 404, 503...)."""
    return page("student/message.html", status, layout="base.html", title=title, text=text,
                user=user)


def not_found(user: User, text: str | None = None) -> Response:
    """404 with a message page."""
    return message(_("Not found"), text or _("There is nothing here that you may see."), 404,
                   user)


def to_sign_in() -> Response:
    """To the sign-in page, coming back to the page asked for (GET) afterwards."""
    back = request.full_path.rstrip("?") if request.method == "GET" else None
    flash(_("Please sign in to continue."))
    return redirect(url_for("pages.index", next=safe_next(back)),
                    303 if request.method == "POST" else 302)


def for_roles(*roles: Role, refusal: Callable[[], tuple[str, str]]) -> Callable:
    """Views for signed-in users with one of ``roles``, who are passed in as the first argument.

    Others are sent to sign in (and come back); a signed-in user with another role gets a 403
    message page whose title and text ``refusal()`` gives.
    """

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @wraps(view)
        def wrapper(**values: Any) -> Response:
            user = current_user()
            if user is None:
                return to_sign_in()
            if user.role not in roles:
                title, text = refusal()
                return message(title, text, 403, user)
            return view(user, **values)

        return wrapper

    return decorate


def form_int(name: str, errors: dict[str, str], *, low: int, high: int, default: int | None = None,
             required: bool = True) -> int | None:
    """A whole number from the form (or query) field ``name`` in ``low..high``; a problem is
    recorded in ``errors[name]`` and ``None`` returned."""
    raw = (request.values.get(name) or "").strip()
    if not raw:
        if default is not None or not required:
            return default
        errors[name] = _("Enter a whole number.")
        return None
    if not (raw.isascii() and raw.isdecimal() and len(raw) < 10) or not low <= int(raw) <= high:
        errors[name] = _("Enter a whole number from %(low)d to %(high)d.", low=low, high=high)
        return None
    return int(raw)


def install_error_pages(bp: Blueprint) -> None:
    """Expired forms (CSRF) and database failures end on a message page, never a server error."""

    @bp.errorhandler(BadRequest)
    def _bad_request(_error: BadRequest) -> Response:
        user = current_user()
        if user is None:
            return to_sign_in()
        return message(_("Please try again"),
                       _("The form had expired. Go back, reload the page and send it again."),
                       400, user)

    @bp.errorhandler(SQLAlchemyError)
    def _database_error(error: SQLAlchemyError) -> Response:
        get_session().rollback()
        if isinstance(error, IntegrityError):  # a race lost to another request's commit
            return message(_("Someone else was quicker"),
                           _("A change saved at the same moment conflicts with this one, so "
                             "nothing of it was saved. Reload the page and try again."), 409,
                           current_user())
        return message(_("Please try again in a moment"),
                       _("The database is not available just now. Nothing was changed."), 503,
                       None)
