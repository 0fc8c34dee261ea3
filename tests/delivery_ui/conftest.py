"""A school to take tests in: the API tests' world (students, a class, an adaptive test assigned
to it, a small calibrated bank), copied from a template per test, with helpers to look into the
database and to sign in through the pages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from api.app import create_app
from api.db import engine_of
from evidence.models import Assignment, Attempt, Response
from item_bank.services import DELIVERIES
from storage import session_factory, session_scope, utcnow
from tests.api.conftest import (  # noqa: F401  (_world_templates: the API tests' fixture)
    PASSWORD,
    _fill_from_template,
    _world_templates,
)
from tests.conftest import LiveServer

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class StudentWorld:
    """The app over a filled database, and what was built in it."""

    app: Any
    ids: dict[str, Any]
    password: str = PASSWORD
    _sessions: Any = field(default=None, repr=False)

    @property
    def test_id(self) -> int:
        return self.ids["test_id"]

    def db(self):
        """A unit of work on the app's database (commits at the end of the ``with`` block)."""
        if self._sessions is None:
            self._sessions = session_factory(engine_of(self.app))
        return session_scope(self._sessions)

    def responses(self, attempt_id: int | None = None) -> int:
        """How many responses are stored (for one attempt, or in all)."""
        with self.db() as session:
            query = select(func.count(Response.id))
            if attempt_id is not None:
                query = query.where(Response.attempt_id == attempt_id)
            return session.scalar(query)

    def attempts(self, username: str = "student1") -> list[Attempt]:
        with self.db() as session:
            return list(session.scalars(select(Attempt).where(
                Attempt.user_id == self.ids["users"][username]).order_by(Attempt.id)))

    def set_time_limit(self, minutes: int | None, max_attempts: int | None = None) -> None:
        """Give the class's assignment a time limit (and an attempt limit)."""
        with self.db() as session:
            session.execute(update(Assignment).where(Assignment.test_id == self.test_id)
                            .values(time_limit_minutes=minutes, max_attempts=max_attempts))

    def move_deadline(self, attempt_id: int, seconds_from_now: float) -> None:
        with self.db() as session:
            session.execute(update(Attempt).where(Attempt.id == attempt_id).values(
                deadline=utcnow() + timedelta(seconds=seconds_from_now)))

    def client_for(self, username: str | None, **headers: str):
        """A test client, signed in as ``username`` through the sign-in form (or signed out)."""
        client = self.app.test_client()
        if username is not None:
            token = csrf_of(client.get("/").get_data(as_text=True))
            response = client.post("/sign-in", data={"username": username,
                                                     "password": self.password,
                                                     "csrf_token": token}, headers=headers)
            assert response.status_code == 302, response.get_data(as_text=True)
        return client


def csrf_of(html: str) -> str:
    """The CSRF token in a page's forms."""
    return CSRF.search(html).group(1)


def _world(url: str, templates) -> StudentWorld:
    ids = _fill_from_template(url, templates)
    DELIVERIES.clear()  # the bank cache is per process; every copy reuses the same snapshot ids
    app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "student-pages"})
    return StudentWorld(app=app, ids=ids)


@pytest.fixture
def student_world(any_db_url: str, _world_templates) -> StudentWorld:  # noqa: F811
    """The school on each database the product supports (SQLite, PostgreSQL)."""
    world = _world(any_db_url, _world_templates)
    yield world
    engine_of(world.app).dispose()


@pytest.fixture
def sqlite_world(sqlite_url: str, _world_templates) -> StudentWorld:  # noqa: F811
    """The school on SQLite (for the browser tests)."""
    world = _world(sqlite_url, _world_templates)
    yield world
    engine_of(world.app).dispose()


@pytest.fixture
def live(sqlite_world: StudentWorld):
    """The SQLite school served on a free loopback port, for the browser."""
    with LiveServer(sqlite_world.app) as server:
        yield server
