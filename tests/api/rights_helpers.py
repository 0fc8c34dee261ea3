"""Helpers for the export, erasure and retention tests: a second administrator, a school, a
privacy note, and a student with a record of every kind."""

from __future__ import annotations

import io
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Table, func, or_, select
from werkzeug.security import generate_password_hash

from api.db import engine_of
from storage import Base, session_factory, session_scope
from storage.accounts import (
    Accommodation,
    ErasureConfirmation,
    PageSession,
    Role,
    School,
    TimeAccommodation,
    User,
)
from storage.rights import Consent, PrivacyNote, Purpose, StudentGroup
from tests.api.conftest import PASSWORD, ApiWorld


@contextmanager
def db(world: ApiWorld):
    with session_scope(session_factory(engine_of(world.app))) as session:
        yield session


def add_user(world: ApiWorld, username: str, role: Role = Role.ADMIN,
             school_id: int | None = None) -> int:
    with db(world) as session:
        user = User(username=username, display_name=username.title(), role=role,
                    school_id=school_id,
                    password_hash=generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000"))
        session.add(user)
        session.flush()
        world.users[username] = user.id
        return user.id


def add_school(world: ApiWorld, name: str, mode: ErasureConfirmation, days: int = 14,
               members: tuple[str, ...] = ()) -> int:
    with db(world) as session:
        school = School(name=name, erasure_confirmation=mode, erasure_delay_days=days)
        session.add(school)
        session.flush()
        for username in members:
            session.get(User, world.users[username]).school_id = school.id
        return school.id


def publish_note(world: ApiWorld, *, keep: bool, retention: dict[str, int] | None = None,
                 version: int = 1) -> None:
    with db(world) as session:
        session.add(PrivacyNote(version=version, title="Privacy", body="What we keep.",
                                retention=retention or {}, keep_anonymous_responses=keep))


def take_test(world: ApiWorld, user: str) -> int:
    r = world.call("post", "/api/v1/attempts", user, json={"test_id": world.test_id})
    assert r.status_code == 201, r.get_json()
    reply = r.get_json()
    attempt = reply["id"]
    while reply["status"] == "in_progress":
        r = world.answer(user, attempt, reply["item"]["id"], 1)
        assert r.status_code == 200, r.get_json()
        reply = r.get_json()
    return attempt


def fill_history(world: ApiWorld, student: str = "student1") -> dict[str, Any]:
    """A record of every kind about ``student`` (of teacher1's class): a finished attempt,
    two drafts with a file, a defense scored by teacher1, a decision and an appeal, consents,
    a group variable, an accommodation, a page session; teacher1 and admin1 read the report."""
    from tests.api.test_role_matrix import _defense, _sheet_body
    from tests.evidence.samples import pdf

    sid = world.users[student]
    attempt = take_test(world, student)
    r = world.call("post", f"/api/v1/classes/{world.class_id}/tasks", "teacher1",
                   json={"title": "Essay"})
    assert r.status_code == 201, r.get_json()
    task = r.get_json()["id"]
    drafts = []
    for n in range(2):
        r = world.call("post", f"/api/v1/tasks/{task}/drafts", student,
                       data={"body": f"My work {n}",
                             "files": [(io.BytesIO(pdf(f"essay {n}")), f"essay{n}.pdf")]})
        assert r.status_code == 201, r.get_json()
        drafts.append(r.get_json())
    context = _defense(world) if student == "student1" else {}
    if context:
        r = world.call("post", f"/api/v1/defenses/{context['defense']}/scores", "teacher1",
                       json=_sheet_body(world, context))
        assert r.status_code == 201, r.get_json()
    r = world.call("post", f"/api/v1/students/{sid}/skills/algebra/decisions", "teacher1",
                   json={"decision": "not_mastered", "reason": "Gaps in class"})
    assert r.status_code == 201, r.get_json()
    r = world.call("post", f"/api/v1/students/{sid}/skills/algebra/appeals", student,
                   json={"message": "Please look at my project"})
    assert r.status_code == 201, r.get_json()
    for viewer in ("teacher1", "admin1"):
        assert world.call("get", f"/api/v1/students/{sid}/report", viewer).status_code == 200
    with db(world) as session:
        session.add_all([
            Consent(student_id=sid, purpose=Purpose.RESEARCH, granted=True,
                    actor_id=world.users["admin1"], note="signed form"),
            Consent(student_id=sid, purpose=Purpose.DEMOGRAPHICS, granted=True,
                    actor_id=world.users["admin1"], note="signed form"),
            StudentGroup(student_id=sid, variable="home_language", value="es"),
            Accommodation(user_id=sid, time=TimeAccommodation.EXTENDED, time_factor=1.5,
                          note="reading support"),
            PageSession(token_hash=f"{sid:064d}", user_id=sid),
        ])
    return {"attempt": attempt, "task": task, "drafts": drafts, **context}


def personal_rows(session, student_id: int, allowed: dict[str, tuple[str, ...]] | None = None
                  ) -> dict[str, int]:
    """Rows of every table that point at ``student_id`` (directly, or through a parent that
    does) and hold a personal column (``info={"personal": True}``, the pointer included).

    ``allowed``: per table, columns that may stay filled (kept anonymous, on the tombstone).
    """
    allowed = allowed or {}
    tables: dict[str, Table] = dict(Base.metadata.tables)

    def direct(table: Table):
        return [c for c in table.c if c.name in ("student_id", "user_id", "actor_id") or (
            c.info.get("personal")
            and any(fk.column.table.name == "users" for fk in c.foreign_keys))]

    left: dict[str, int] = {}
    for name, table in tables.items():
        personal = [c for c in table.c if c.info.get("personal")]
        if not personal or name == "users":
            continue
        links = direct(table)
        if links:
            where = links[0] == student_id
        else:
            parents = [(fk.parent, fk.column) for fk in table.foreign_keys
                       if direct(fk.column.table)]
            if not parents:
                left[f"{name} (no link to a student: checked by its own test)"] = 0
                continue
            child, parent_key = parents[0]
            parent = parent_key.table
            where = child.in_(select(parent_key).where(direct(parent)[0] == student_id))
        others = [c for c in {*personal, *links} if c.name not in allowed.get(name, ())]
        if not others:
            continue
        condition = select(func.count()).select_from(table).where(where).where(
            or_(*[c.is_not(None) for c in others]))
        count = session.scalar(condition)
        if count:
            left[name] = count
    return left
