"""Pages served to people: the landing page with its sign-in form, sign-in and sign-out."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from api.db import get_session
from storage.accounts import User, authenticate

bp = Blueprint("pages", __name__)


def current_user() -> User | None:
    """The signed-in user, or ``None``."""
    user_id = session.get("user_id")
    if user_id is None:
        return None
    user = get_session().get(User, user_id)
    return user if user is not None and user.is_active else None


@bp.get("/")
def index():
    """Landing page: the sign-in form, or a welcome for a signed-in user."""
    return render_template("index.html", user=current_user(), username="", errors={})


@bp.post("/sign-in")
def sign_in():
    """Check the credentials; on success start a fresh session, else re-render with the errors."""
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    errors: dict[str, str] = {}
    if not username:
        errors["username"] = "Enter your username."
    if not password:
        errors["password"] = "Enter your password."
    user = None
    if not errors:
        try:
            user = authenticate(get_session(), username, password)
        except SQLAlchemyError:
            errors["form"] = (
                "Sign-in is unavailable: the database is not ready. "
                "Please tell your administrator."
            )
        else:
            if user is None:
                errors["form"] = "That username and password do not match an account."
    if errors:
        return render_template("index.html", user=None, username=username, errors=errors), 400
    session.clear()
    session["user_id"] = user.id
    flash(f"Signed in as {user.display_name or user.username}.")
    return redirect(url_for("pages.index"))


@bp.post("/sign-out")
def sign_out():
    """End the session."""
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("pages.index"))


@bp.get("/healthz")
def healthz():
    """Liveness and database reachability, for load balancers."""
    try:
        get_session().execute(select(1))
    except SQLAlchemyError:
        return {"status": "error", "database": "unreachable"}, 503
    return {"status": "ok", "database": "ok"}
