"""An API to test against: a migrated database with users, a small calibrated bank, a test
assigned to a class, and helpers to sign in and call the API as any role.

Schools: every student, teacher and the assessor, and both classes, are in school A ("North
School"); ``admin1`` administers the district (no school), ``admin2`` school B ("South
School", which holds no one else) and ``admin3`` school A."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from werkzeug.security import generate_password_hash

from api.app import create_app
from api.db import engine_of
from evidence.models import Assignment
from item_bank.models import ItemStatus
from item_bank.services import (
    DELIVERIES,
    add_parameter_set,
    change_status,
    create_item,
    save_test,
)
from storage import make_engine, session_factory, session_scope
from storage.accounts import Role, School, SchoolClass, User
from storage.migrate import upgrade

PASSWORD = "correct horse battery"
SKILLS = ("algebra", "geometry", "statistics")
TEST_CONFIG = {
    "start": {"theta": 0.0},
    "estimator": {"method": "eap"},
    "selection": {"method": "mfi"},
    "stopping": {"se": 0.4, "max_items": 12, "min_items": 4},
    "pretest": {"items": ["PRE-1", "PRE-2"], "positions": [2, 4]},
}


@dataclass
class ApiWorld:
    """The app, its test client, and ids of what was built."""

    app: Any
    client: Any
    users: dict[str, int] = field(default_factory=dict)
    test_id: int = 0
    class_id: int = 0
    other_class_id: int = 0
    items: dict[str, int] = field(default_factory=dict)
    schools: dict[str, int] = field(default_factory=dict)
    _tokens: dict[str, str] = field(default_factory=dict)

    def token(self, username: str) -> str:
        if username not in self._tokens:
            r = self.client.post("/api/v1/auth/token",
                                 json={"username": username, "password": PASSWORD})
            assert r.status_code == 200, r.get_json()
            self._tokens[username] = r.get_json()["access_token"]
        return self._tokens[username]

    def call(self, method: str, path: str, user: str | None = None, **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if user is not None:
            headers["Authorization"] = f"Bearer {self.token(user)}"
        return self.client.open(path, method=method.upper(), headers=headers, **kwargs)

    def answer(self, user: str, attempt_id: int, item_id: int, response: int,
               key: str | None = None):
        return self.call("post", f"/api/v1/attempts/{attempt_id}/responses", user,
                         json={"item_id": item_id, "response": response},
                         headers={"Idempotency-Key": key or uuid.uuid4().hex})


def build_world(url: str, n_items: int = 60, seed: int = 7) -> dict[str, Any]:
    """Fill a fresh database; returns the ids made."""
    engine = make_engine(url)
    upgrade(engine)
    rng = np.random.default_rng(seed)
    ids: dict[str, Any] = {"users": {}, "items": {}}
    # A cheap hash: the fixture signs in hundreds of times; real accounts use scrypt.
    password_hash = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    with session_scope(session_factory(engine)) as session:
        people = {"student1": Role.STUDENT, "student2": Role.STUDENT, "student3": Role.STUDENT,
                  "teacher1": Role.TEACHER, "teacher2": Role.TEACHER,
                  "assessor1": Role.ASSESSOR, "admin1": Role.ADMIN,
                  "admin2": Role.ADMIN, "admin3": Role.ADMIN}
        north, south = School(name="North School"), School(name="South School")
        session.add_all([north, south])
        session.flush()
        school_of = {"admin1": None, "admin2": south.id}
        users = {}
        for name, role in people.items():
            users[name] = User(username=name, display_name=name.title(), role=role,
                               password_hash=password_hash,
                               school_id=school_of.get(name, north.id))
            session.add(users[name])
            session.flush()  # ids in the order above, whatever the unit of work prefers
        ids["schools"] = {"A": north.id, "B": south.id}
        for j in range(n_items):
            item = create_item(
                session, code=f"IT-{j:03d}", stem=f"Question {j}: what is {j} + 1?",
                options=[str(j), str(j + 1), str(j + 2), str(j + 3)], key=1,
                rationale="Add one.", skill=SKILLS[j % 3], content_tags=[f"topic{j % 5}"],
            )
            session.flush()
            add_parameter_set(session, item, {"model": "2pl", "a": float(rng.uniform(0.8, 2.0)),
                                              "b": float(rng.normal())}, source="import")
            change_status(session, item, ItemStatus.OPERATIONAL, reason="fixture")
            ids["items"][item.code] = item.id
        for code in ("PRE-1", "PRE-2"):
            item = create_item(session, code=code, stem=f"New question {code}",
                               options=["yes", "no"], key=0, skill="algebra",
                               status=ItemStatus.PRETEST)
            session.flush()
            ids["items"][code] = item.id
        test = save_test(session, None, name="Maths", description="Adaptive maths",
                         config=TEST_CONFIG, cut_scores={"overall": 0.0, "algebra": 0.5})
        klass = SchoolClass(name="7A", teacher=users["teacher1"], school_id=north.id,
                            students=[users["student1"], users["student2"]])
        other = SchoolClass(name="7B", teacher=users["teacher2"], school_id=north.id,
                            students=[users["student3"]])
        session.add_all([klass, other])
        session.flush()
        session.add(Assignment(class_id=klass.id, test_id=test.id))
        session.flush()
        ids |= {"test_id": test.id, "class_id": klass.id, "other_class_id": other.id,
                "users": {n: u.id for n, u in users.items()}}
    engine.dispose()
    return ids


@pytest.fixture(scope="session")
def _world_templates(tmp_path_factory: pytest.TempPathFactory):
    """Filled databases built once per run; each test gets a copy (a file copy on SQLite,
    ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL), which is ~50x faster than refilling."""
    built: dict[str, tuple[str, dict]] = {}
    admin = None

    def get(kind: str) -> tuple[str, dict]:
        nonlocal admin
        if kind in built:
            return built[kind]
        if kind == "sqlite":
            path = tmp_path_factory.mktemp("world") / "world.sqlite3"
            built[kind] = (str(path), build_world(f"sqlite:///{path}"))
        else:
            base = os.environ["TEST_DATABASE_URL"]
            admin = admin or create_engine(base, isolation_level="AUTOCOMMIT")
            name = f"cat_world_{uuid.uuid4().hex[:10]}"
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(base).set(database=name).render_as_string(hide_password=False)
            built[kind] = (name, build_world(url))
        return built[kind]

    yield get
    if admin is not None:
        with admin.connect() as connection:
            for kind, (name, _ids) in built.items():
                if kind == "postgresql":
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _fill_from_template(url: str, templates) -> dict:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        source, ids = templates("sqlite")
        shutil.copyfile(source, parsed.database)
        return ids
    template, ids = templates("postgresql")
    admin = create_engine(os.environ["TEST_DATABASE_URL"], isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{parsed.database}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{parsed.database}" TEMPLATE "{template}"'))
    finally:
        admin.dispose()
    return ids


@pytest.fixture
def world(any_db_url: str, _world_templates) -> ApiWorld:
    """An app over a filled database of each kind (SQLite, PostgreSQL)."""
    ids = _fill_from_template(any_db_url, _world_templates)
    DELIVERIES.clear()
    app = create_app({"TESTING": True, "DATABASE_URL": any_db_url, "SECRET_KEY": "test"})
    world = ApiWorld(app=app, client=app.test_client(), users=ids["users"],
                     test_id=ids["test_id"], class_id=ids["class_id"],
                     other_class_id=ids["other_class_id"], items=ids["items"],
                     schools=ids["schools"])
    yield world
    engine_of(app).dispose()


@pytest.fixture
def demo_without_history(monkeypatch) -> None:
    """Demo builds without the weeks of attempts every student takes (60 attempts through the
    services per build), for tests of something else."""
    import api.demo

    monkeypatch.setattr(api.demo, "DEMO_ATTEMPT_DAYS", ())
