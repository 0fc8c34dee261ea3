"""The database as the web application sees it: one engine per app, one session per request."""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from storage import make_engine, session_factory

EXTENSION = "cat_engine_db"


def init_app(app: Flask) -> None:
    """Create the engine from ``app.config["DATABASE_URL"]`` and close sessions after requests."""
    engine = make_engine(app.config.get("DATABASE_URL"))
    app.extensions[EXTENSION] = {"engine": engine, "sessions": session_factory(engine)}
    app.teardown_appcontext(_close_session)


def get_session() -> Session:
    """The request's session, opened on first use.

    Commit explicitly; whatever is left uncommitted is rolled back at teardown.
    """
    if "db_session" not in g:
        g.db_session = current_app.extensions[EXTENSION]["sessions"]()
    return g.db_session


def engine_of(app: Flask):
    """The app's engine (for the command line and tests)."""
    return app.extensions[EXTENSION]["engine"]


def _close_session(_exc: BaseException | None) -> None:
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.rollback()
        session.close()
