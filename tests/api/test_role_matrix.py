"""Who may do what: one row per endpoint, one expected status per role, on SQLite and PostgreSQL.

Each row is run for every account of the fixture world in a fresh state of its own, so a
row's outcome never depends on another's. ``anon`` sends no token.

Schools: the students, teachers and classes are in school A. ``admin1`` administers the
district (no school); ``admin3`` school A, so expects what ``admin1`` does except for what only
a district administrator does (creating schools); ``admin2`` school B, to whom school A's
people, classes and everything about them are *not found* (404), while district-wide
operations (the item bank, tests, calibration, rubrics, resources) stay open.
"""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from storage.accounts import Role
from tests.api.conftest import PASSWORD, ApiWorld

ROLES = ("anon", "student1", "student3", "teacher1", "teacher2", "assessor1", "admin1",
         "admin2", "admin3")
ADMINS = ("admin1", "admin2", "admin3")


@dataclass(frozen=True)
class Row:
    method: str
    path: Callable[[ApiWorld, dict], str]
    expected: dict[str, int]
    body: Callable[[ApiWorld, dict], Any] | None = None
    headers: Callable[[ApiWorld, dict], dict] | None = None
    data: Callable[[ApiWorld, dict], dict] | None = None
    setup: Callable[[ApiWorld], dict] | None = None


def _attempt_of_student1(world: ApiWorld) -> dict:
    reply = world.call("post", "/api/v1/attempts", "student1",
                       json={"test_id": world.test_id}).get_json()
    return {"attempt": reply["id"], "item": reply["item"]["id"]}


def _new_item(world: ApiWorld) -> dict:
    reply = world.call("post", "/api/v1/items", "admin1", json={
        "code": f"M-{uuid.uuid4().hex[:8]}", "stem": "Which?", "options": ["a", "b"], "key": 0,
        "skill": "algebra"}).get_json()
    return {"item": reply["id"]}


def _translated_item(world: ApiWorld) -> dict:
    context = _new_item(world)
    reply = world.call("put", f"/api/v1/items/{context['item']}/translations/ar", "admin1",
                       json={"stem": "أيّ؟", "options": ["أ", "ب"]})
    assert reply.status_code == 200, reply.get_json()
    return context


def _csv_file(world: ApiWorld, context: dict) -> dict:
    code = f"CSV-{uuid.uuid4().hex[:8]}"
    text = f"item_id,stem,option_1,option_2,key,skill\n{code},Which?,a,b,1,algebra\n"
    return {"file": (io.BytesIO(text.encode()), "items.csv")}


def _roster_file(world: ApiWorld, context: dict) -> dict:
    from tests.evidence.roster_samples import sample, zipped

    return {"file": [(io.BytesIO(zipped(sample())), "roster.zip")]}


def _responses_file(world: ApiWorld, context: dict) -> dict:
    rows = "".join(f"p{p},IT-{i:03d},{(p + i) % 2}\n" for p in range(12) for i in range(3))
    return {"file": (io.BytesIO(("person_id,item_id,response\n" + rows).encode()), "r.csv")}


def _upload(world: ApiWorld) -> dict:
    reply = world.call("post", "/api/v1/calibration/uploads", "admin1",
                       data=_responses_file(world, {})).get_json()
    return {"upload": reply["id"]}


def _run(world: ApiWorld) -> dict:
    upload = _upload(world)["upload"]
    reply = world.call("post", "/api/v1/calibration/runs", "admin1",
                       json={"upload_id": upload, "model": "rasch"}).get_json()
    return {"run": reply["id"], "upload": upload}


def _item_import(world: ApiWorld) -> dict:
    """A queued large import, as the import endpoint records one (no worker runs it here)."""
    from api.db import engine_of
    from item_bank.models import ItemImport
    from storage import session_factory, session_scope

    with session_scope(session_factory(engine_of(world.app))) as session:
        job = ItemImport(filename="big.csv", mode="create", content=b"item_id\n", n_records=1)
        session.add(job)
        session.flush()
        return {"import": job.id}


def _class_of_teacher1(world: ApiWorld) -> dict:
    reply = world.call("post", "/api/v1/classes", "teacher1",
                       json={"name": f"C-{uuid.uuid4().hex[:6]}"}).get_json()
    return {"class": reply["id"]}


def _assignment_of_teacher1(world: ApiWorld) -> dict:
    klass = _class_of_teacher1(world)["class"]
    reply = world.call("post", f"/api/v1/classes/{klass}/assignments", "teacher1",
                       json={"test_id": world.test_id}).get_json()
    return {"class": klass, "assignment": reply["id"]}


def _task_of_teacher1(world: ApiWorld) -> dict:
    reply = world.call("post", f"/api/v1/classes/{world.class_id}/tasks", "teacher1",
                       json={"title": f"Task {uuid.uuid4().hex[:6]}"}).get_json()
    return {"task": reply["id"]}


def _draft_file(world: ApiWorld, context: dict) -> dict:
    from tests.evidence.samples import pdf

    return {"body": "My work", "files": [(io.BytesIO(pdf()), "essay.pdf")]}


def _drafts_of_student1(world: ApiWorld) -> dict:
    task = _task_of_teacher1(world)["task"]
    ids = []
    for _ in range(2):
        reply = world.call("post", f"/api/v1/tasks/{task}/drafts", "student1",
                           data=_draft_file(world, {})).get_json()
        ids.append(reply["id"])
    return {"task": task, "against": ids[0], "draft": ids[1],
            "sha256": reply["files"][0]["sha256"]}


def _rated_rubric(world: ApiWorld, n_students: int = 0) -> dict:
    """A rubric version with ``n_students`` rated students who have answers (0: no ratings)."""
    from api.db import engine_of
    from evidence.models import Rubric, RubricCriterion, RubricVersion
    from storage import session_factory, session_scope
    from tests.evidence.rubric_world import LEVELS, fill

    with session_scope(session_factory(engine_of(world.app))) as session:
        if n_students:
            rated = fill(session, test_id=world.test_id, class_id=world.class_id,
                         n_students=n_students, rubric_name=f"Defense {uuid.uuid4().hex[:8]}")
            return {"rubric": rated.rubric_id, "version": rated.version_id}
        rubric = Rubric(name=f"Defense {uuid.uuid4().hex[:8]}")
        version = RubricVersion(rubric=rubric, version=1)
        session.add_all([rubric, version, RubricCriterion(
            rubric_version=version, position=0, code="c", name="C", skill="algebra",
            levels=LEVELS)])
        session.flush()
        return {"rubric": rubric.id, "version": version.id}


def _rubric_calibration(world: ApiWorld) -> dict:
    """A draft rubric calibration (stored directly: the matrix is about who, not what)."""
    from api.db import engine_of
    from evidence.models import RubricCalibration
    from storage import session_factory, session_scope

    context = _rated_rubric(world)
    with session_scope(session_factory(engine_of(world.app))) as session:
        calibration = RubricCalibration(rubric_version_id=context["version"], model="gpcm",
                                        criteria={}, raters={}, n_students=0)
        session.add(calibration)
        session.flush()
        return context | {"calibration": calibration.id}


def _defense_rubric(world: ApiWorld, co_teach_teacher2: bool = False) -> dict:
    """A rubric made with the ORM (three criteria, 1-4); optionally teacher2 co-teaches
    student1 (so teacher2 may rate student1's defenses)."""
    from api.db import engine_of
    from storage import session_factory, session_scope
    from tests.evidence.defense_helpers import co_teach, make_rubric

    with session_scope(session_factory(engine_of(world.app))) as session:
        version = make_rubric(session, name=f"R-{uuid.uuid4().hex[:8]}")
        if co_teach_teacher2:
            co_teach(session, world.users["teacher2"], [world.users["student1"]],
                     name=f"Club-{uuid.uuid4().hex[:6]}")
        return {"rubric": version.rubric_id, "criteria": [c.id for c in version.criteria]}


def _defense(world: ApiWorld, raters: tuple[str, ...] = ("teacher1",),
             adjudicator: str | None = None, co_teach_teacher2: bool = False) -> dict:
    context = _defense_rubric(world, co_teach_teacher2)
    reply = world.call("post", f"/api/v1/classes/{world.class_id}/defenses", "teacher1", json={
        "student_id": world.users["student1"], "rubric_id": context["rubric"], "title": "D",
        "raters": [world.users[r] for r in raters],
        "adjudicator": world.users[adjudicator] if adjudicator else None})
    assert reply.status_code == 201, reply.get_json()
    return context | {"defense": reply.get_json()["id"]}


def _sheet_body(world: ApiWorld, context: dict) -> dict:
    return {"scores": {str(c): {"score": 2, "note": ""} for c in context["criteria"]}}


def _submitted_defense(world: ApiWorld) -> dict:
    context = _defense(world)
    r = world.call("post", f"/api/v1/defenses/{context['defense']}/scores", "teacher1",
                   json=_sheet_body(world, context))
    assert r.status_code == 201, r.get_json()
    return context


def _defense_scored_by_teacher2(world: ApiWorld) -> dict:
    context = _defense(world, raters=("teacher2",), co_teach_teacher2=True)
    r = world.call("post", f"/api/v1/defenses/{context['defense']}/scores", "teacher2",
                   json=_sheet_body(world, context))
    assert r.status_code == 201, r.get_json()
    return context


def _report_job(world: ApiWorld) -> dict:
    """A class pack of teacher1's class, queued (no worker runs it here)."""
    reply = world.call("post", f"/api/v1/classes/{world.class_id}/report-pack", "teacher1",
                       json={"language": "en"})
    assert reply.status_code == 202, reply.get_json()
    return {"job": reply.get_json()["id"]}


def _decision_on_student1(world: ApiWorld) -> dict:
    """teacher1's decision on student1's algebra (appealable without evidence)."""
    r = world.call("post", f"/api/v1/students/{world.users['student1']}/skills/algebra/decisions",
                   "teacher1", json={"decision": "not_mastered", "reason": "Gaps in class"})
    assert r.status_code == 201, r.get_json()
    return {"decision": r.get_json()["id"]}


def _appeal_of_student1(world: ApiWorld) -> dict:
    context = _decision_on_student1(world)
    r = world.call("post", f"/api/v1/students/{world.users['student1']}/skills/algebra/appeals",
                   "student1", json={"message": "Please look at my project"})
    assert r.status_code == 201, r.get_json()
    return context | {"appeal": r.get_json()["id"]}


def _lrs_with_dead_letter(world: ApiWorld) -> dict:
    """School A's LRS (nothing listens there) and one dead letter."""
    from sqlalchemy import select, update

    from api.db import engine_of
    from evidence.models import ForwardStatus, XapiForward
    from storage import session_factory

    school = world.schools["A"]
    r = world.call("put", f"/api/v1/schools/{school}/lrs", "admin1", json={
        "endpoint": "http://127.0.0.1:9/xAPI/", "key": "k", "secret": "s"})
    assert r.status_code == 200, r.get_json()
    started = _attempt_of_student1(world)
    reply = world.answer("student1", started["attempt"], started["item"], 1)
    assert reply.status_code == 200, reply.get_json()  # its statement gets a forward row
    with session_factory(engine_of(world.app))() as session:
        first = session.scalar(select(XapiForward.id).order_by(XapiForward.id))
        session.execute(update(XapiForward).where(XapiForward.id == first)
                        .values(status=ForwardStatus.DEAD))
        session.commit()
    return {"dead": first}


def _all(status: int, **overrides: int) -> dict[str, int]:
    return {"anon": 401} | {r: status for r in ROLES if r != "anon"} | overrides


STAFF_ONLY = {"student1": 403, "student3": 403, "teacher1": 403, "teacher2": 403}
NOT_STAFF = {"student1": 403, "student3": 403, "assessor1": 403}  # classes: teachers and admins
ADMIN_ONLY = {r: 403 for r in ROLES if r not in ("anon", *ADMINS)}
OTHER_SCHOOL = {"admin2": 404}  # school A's people and classes, to school B's administrator
STUDENTS = {"student1": 403, "student3": 403}  # rubrics: teachers, assessors and admins

def _resource_body() -> dict:
    return {"title": f"Fractions {uuid.uuid4().hex[:6]}", "url": "https://example.org/f",
            "skill": "algebra", "level_min": -1.0, "level_max": 1.0}


def _resource(world: ApiWorld) -> dict:
    reply = world.call("post", "/api/v1/resources", "admin1", json=_resource_body())
    assert reply.status_code == 201, reply.get_json()
    return {"resource": reply.get_json()["id"]}


def _scored_rubric(world: ApiWorld) -> dict:
    """A rubric scored by two raters in each of the two classes (tests.evidence.rater_samples)."""
    from api.db import engine_of
    from storage import session_factory, session_scope
    from tests.evidence.rater_samples import scored_rubric

    with session_scope(session_factory(engine_of(world.app))) as session:
        built = scored_rubric(session, {"users": world.users, "class_id": world.class_id,
                                        "other_class_id": world.other_class_id},
                              n_students=30, n_raters=3, name=f"Rubric {uuid.uuid4().hex[:8]}")
    return {"rubric": built.rubric_id}


def _fresh_student(world: ApiWorld) -> dict:
    """A student of school A in no class, to erase (each role's request in a fresh state of its
    own): school A's administrator reaches them, school B's does not."""
    from tests.api.rights_helpers import add_user

    name = f"s-{uuid.uuid4().hex[:8]}"
    return {"student": add_user(world, name, Role.STUDENT, school_id=world.schools["A"])}


def _pending_erasure(world: ApiWorld, by: str = "admin1") -> dict:
    """A pending erasure of a fresh student, requested by ``by``."""
    context = _fresh_student(world)
    if by not in world.users:
        from tests.api.rights_helpers import add_user

        add_user(world, by)
    r = world.call("post", f"/api/v1/students/{context['student']}/erasure", by,
                   json={"reason": "Parent's request"})
    assert r.status_code == 201, r.get_json()
    return context | {"erasure": r.get_json()["id"]}


MATRIX: dict[str, Row] = {
    "GET /me": Row("get", lambda w, c: "/api/v1/me", _all(200)),
    "GET /tests": Row("get", lambda w, c: "/api/v1/tests", _all(200)),
    "POST /tests": Row(
        "post", lambda w, c: "/api/v1/tests",
        _all(201, **STAFF_ONLY),
        body=lambda w, c: {"name": f"New {uuid.uuid4().hex[:6]}", "config": {}}),
    "GET /tests/{id}": Row("get", lambda w, c: f"/api/v1/tests/{w.test_id}",
                           _all(200, student3=404)),
    "PATCH /tests/{id}": Row("patch", lambda w, c: f"/api/v1/tests/{w.test_id}",
                             _all(200, **STAFF_ONLY), body=lambda w, c: {"description": "x"}),
    "GET /tests/{id}/exposure": Row("get", lambda w, c: f"/api/v1/tests/{w.test_id}/exposure",
                                    _all(200, **STAFF_ONLY)),
    "POST /attempts": Row(
        "post", lambda w, c: "/api/v1/attempts",
        _all(403, student1=201, student3=404), body=lambda w, c: {"test_id": w.test_id}),
    "GET /attempts": Row("get", lambda w, c: "/api/v1/attempts", _all(200)),
    "GET /attempts/{id}": Row(
        "get", lambda w, c: f"/api/v1/attempts/{c['attempt']}",
        _all(200, student3=404, teacher2=404, **OTHER_SCHOOL), setup=_attempt_of_student1),
    "GET /attempts/{id}/indicators": Row(
        "get", lambda w, c: f"/api/v1/attempts/{c['attempt']}/indicators",
        _all(200, student3=404, teacher2=404, **OTHER_SCHOOL), setup=_attempt_of_student1),
    "POST /attempts/{id}/responses": Row(
        "post", lambda w, c: f"/api/v1/attempts/{c['attempt']}/responses",
        _all(403, student1=200, student3=404),
        body=lambda w, c: {"item_id": c["item"], "response": 1},
        headers=lambda w, c: {"Idempotency-Key": uuid.uuid4().hex},
        setup=_attempt_of_student1),
    # the item bank: assessment teams only
    "GET /items": Row("get", lambda w, c: "/api/v1/items", _all(200, **STAFF_ONLY)),
    "POST /items": Row("post", lambda w, c: "/api/v1/items", _all(201, **STAFF_ONLY),
                       body=lambda w, c: {"code": f"N-{uuid.uuid4().hex[:8]}", "stem": "Why?",
                                          "options": ["a", "b"], "key": 1, "skill": "algebra"}),
    "GET /items/{id}": Row("get", lambda w, c: f"/api/v1/items/{w.items['IT-001']}",
                           _all(200, **STAFF_ONLY)),
    "PATCH /items/{id}": Row("patch", lambda w, c: f"/api/v1/items/{c['item']}",
                             _all(200, **STAFF_ONLY), body=lambda w, c: {"rationale": "new"},
                             setup=_new_item),
    "GET /items/{id}/versions/{n}": Row(
        "get", lambda w, c: f"/api/v1/items/{w.items['IT-001']}/versions/1",
        _all(200, **STAFF_ONLY)),
    "POST /items/{id}/status": Row(
        "post", lambda w, c: f"/api/v1/items/{c['item']}/status", _all(200, **STAFF_ONLY),
        body=lambda w, c: {"status": "retired", "reason": "matrix"}, setup=_new_item),
    "POST /items/{id}/parameter-sets": Row(
        "post", lambda w, c: f"/api/v1/items/{c['item']}/parameter-sets",
        _all(201, **STAFF_ONLY), body=lambda w, c: {"model": "2pl", "a": 1.1, "b": 0.2},
        setup=_new_item),
    "PUT /items/{id}/translations/{language}": Row(
        "put", lambda w, c: f"/api/v1/items/{c['item']}/translations/ar",
        _all(200, **STAFF_ONLY), body=lambda w, c: {"stem": "أيّ؟", "options": ["أ", "ب"]},
        setup=_new_item),
    "GET /items/{id}/translations/{language}": Row(
        "get", lambda w, c: f"/api/v1/items/{c['item']}/translations/ar",
        _all(200, **STAFF_ONLY), setup=_translated_item),
    "DELETE /items/{id}/translations/{language}": Row(
        "delete", lambda w, c: f"/api/v1/items/{c['item']}/translations/ar",
        _all(204, **STAFF_ONLY), setup=_translated_item),
    "POST /items/import": Row("post", lambda w, c: "/api/v1/items/import",
                              _all(200, **STAFF_ONLY), data=_csv_file),
    "GET /items/imports/{id}": Row(
        "get", lambda w, c: f"/api/v1/items/imports/{c['import']}", _all(200, **STAFF_ONLY),
        setup=_item_import),
    "GET /items/export": Row("get", lambda w, c: "/api/v1/items/export?format=csv",
                             _all(200, **STAFF_ONLY)),
    # rubric calibrations: assessment teams only
    "POST /rubrics/{id}/calibrations": Row(
        "post", lambda w, c: f"/api/v1/rubrics/{c['rubric']}/calibrations",
        _all(201, **STAFF_ONLY), body=lambda w, c: {"version": 1},
        setup=lambda w: _rated_rubric(w, 100)),
    "GET /rubrics/{id}/calibrations": Row(
        "get", lambda w, c: f"/api/v1/rubrics/{c['rubric']}/calibrations",
        _all(200, **STAFF_ONLY), setup=_rubric_calibration),
    "GET /rubric-calibrations/{id}": Row(
        "get", lambda w, c: f"/api/v1/rubric-calibrations/{c['calibration']}",
        _all(200, **STAFF_ONLY), setup=_rubric_calibration),
    "POST /rubric-calibrations/{id}/publish": Row(
        "post", lambda w, c: f"/api/v1/rubric-calibrations/{c['calibration']}/publish",
        _all(200, **STAFF_ONLY), setup=_rubric_calibration),
    # calibration: assessment teams only
    "POST /calibration/uploads": Row("post", lambda w, c: "/api/v1/calibration/uploads",
                                     _all(201, **STAFF_ONLY), data=_responses_file),
    "GET /calibration/uploads": Row("get", lambda w, c: "/api/v1/calibration/uploads",
                                    _all(200, **STAFF_ONLY), setup=_upload),
    "GET /calibration/uploads/{id}": Row(
        "get", lambda w, c: f"/api/v1/calibration/uploads/{c['upload']}",
        _all(200, **STAFF_ONLY), setup=_upload),
    "POST /calibration/runs": Row(
        "post", lambda w, c: "/api/v1/calibration/runs", _all(202, **STAFF_ONLY),
        body=lambda w, c: {"upload_id": c["upload"], "model": "rasch"}, setup=_upload),
    "GET /calibration/runs": Row("get", lambda w, c: "/api/v1/calibration/runs",
                                 _all(200, **STAFF_ONLY)),
    "GET /calibration/runs/{id}": Row("get", lambda w, c: f"/api/v1/calibration/runs/{c['run']}",
                                      _all(200, **STAFF_ONLY), setup=_run),
    "GET /calibration/runs/{id}/items": Row(  # queued, no result yet: 409 for those allowed
        "get", lambda w, c: f"/api/v1/calibration/runs/{c['run']}/items",
        _all(409, **STAFF_ONLY), setup=_run),
    "GET /calibration/runs/{id}/scale": Row(  # queued, no result yet: 409 for those allowed
        "get", lambda w, c: f"/api/v1/calibration/runs/{c['run']}/scale",
        _all(409, **STAFF_ONLY), setup=_run),
    "POST /calibration/runs/{id}/publish": Row(
        "post", lambda w, c: f"/api/v1/calibration/runs/{c['run']}/publish",
        _all(409, **STAFF_ONLY), body=lambda w, c: {}, setup=_run),
    # accounts: administrators (teachers may look up students)
    "GET /users": Row("get", lambda w, c: "/api/v1/users", _all(200, **ADMIN_ONLY)),
    "POST /users": Row("post", lambda w, c: "/api/v1/users", _all(201, **ADMIN_ONLY),
                       body=lambda w, c: {"username": f"u{uuid.uuid4().hex[:8]}",
                                          "display_name": "New", "role": "student",
                                          "password": "long enough password"}),
    "GET /users/{id}": Row("get", lambda w, c: f"/api/v1/users/{w.users['student1']}",
                           _all(200, **ADMIN_ONLY, **OTHER_SCHOOL)),
    "PATCH /users/{id}": Row("patch", lambda w, c: f"/api/v1/users/{w.users['student2']}",
                             _all(200, **ADMIN_ONLY, **OTHER_SCHOOL),
                             body=lambda w, c: {"display_name": "S2"}),
    "GET /users/{id}/accommodation": Row(
        "get", lambda w, c: f"/api/v1/users/{w.users['student1']}/accommodation",
        _all(200, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL)),
    "GET /users/{id}/indicators": Row(  # the student, their class's teacher, administrators
        "get", lambda w, c: f"/api/v1/users/{w.users['student1']}/indicators",
        _all(200, student3=404, teacher2=404, assessor1=403, **OTHER_SCHOOL)),
    "GET /users/{id}/portfolio": Row(  # the student, their class's teacher, administrators
        "get", lambda w, c: f"/api/v1/users/{w.users['student1']}/portfolio",
        _all(200, student3=404, teacher2=404, assessor1=403, **OTHER_SCHOOL)),
    # mastery reports as PDF: the report's readers; class packs: the class's teacher and admins
    "GET /students/{id}/report.pdf": Row(
        "get", lambda w, c: f"/api/v1/students/{w.users['student1']}/report.pdf",
        _all(200, student3=404, teacher2=404, assessor1=404, **OTHER_SCHOOL)),
    # the report and its decisions: teachers of the student (and admins) decide, the student
    # appeals, the teacher answers
    "GET /students/{id}/report": Row(
        "get", lambda w, c: f"/api/v1/students/{w.users['student1']}/report",
        _all(200, student3=404, teacher2=404, assessor1=404, **OTHER_SCHOOL)),
    "POST /students/{id}/skills/{skill}/decisions": Row(
        "post", lambda w, c: f"/api/v1/students/{w.users['student1']}/skills/algebra/decisions",
        _all(201, student1=403, student3=403, assessor1=403, teacher2=404, **OTHER_SCHOOL),
        body=lambda w, c: {"decision": "mastered", "reason": "Shown in class"}),
    "POST /students/{id}/skills/{skill}/appeals": Row(
        "post", lambda w, c: f"/api/v1/students/{w.users['student1']}/skills/algebra/appeals",
        _all(403, student1=201, student3=404), setup=_decision_on_student1,
        body=lambda w, c: {"message": "I showed it in my project"}),
    "POST /appeals/{id}/answer": Row(
        "post", lambda w, c: f"/api/v1/appeals/{c['appeal']}/answer",
        _all(200, student1=403, student3=403, assessor1=403, teacher2=404, **OTHER_SCHOOL),
        setup=_appeal_of_student1, body=lambda w, c: {"outcome": "upheld", "reason": "It stands"}),
    "POST /classes/{id}/report-pack": Row(
        "post", lambda w, c: f"/api/v1/classes/{w.class_id}/report-pack",
        _all(202, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL), body=lambda w, c: {"language": "es"}),
    "GET /report-jobs/{id}": Row("get", lambda w, c: f"/api/v1/report-jobs/{c['job']}",
                                 _all(200, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL),
                                 setup=_report_job),
    "GET /report-jobs/{id}/pdf": Row(  # queued, not rendered yet: 409 for those allowed
        "get", lambda w, c: f"/api/v1/report-jobs/{c['job']}/pdf",
        _all(409, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL), setup=_report_job),
    "PUT /users/{id}/accommodation": Row(  # an administrator's act: it changes every class
        "put", lambda w, c: f"/api/v1/users/{w.users['student1']}/accommodation",
        _all(200, **ADMIN_ONLY, **OTHER_SCHOOL), body=lambda w, c: {"time": "extended"}),
    # classes: a teacher's own, and administrators
    "GET /classes": Row("get", lambda w, c: "/api/v1/classes", _all(200, **NOT_STAFF)),
    "POST /classes": Row("post", lambda w, c: "/api/v1/classes", _all(201, **NOT_STAFF, admin1=422,
                                                                    admin2=422, admin3=422),
                         body=lambda w, c: {"name": f"K-{uuid.uuid4().hex[:6]}"}),
    "GET /classes/{id}": Row("get", lambda w, c: f"/api/v1/classes/{w.class_id}",
                             _all(200, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL)),
    "PATCH /classes/{id}": Row("patch", lambda w, c: f"/api/v1/classes/{c['class']}",
                               _all(200, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL),
                               setup=_class_of_teacher1,
                               body=lambda w, c: {"name": f"R-{uuid.uuid4().hex[:6]}"}),
    "DELETE /classes/{id}": Row("delete", lambda w, c: f"/api/v1/classes/{c['class']}",
                                _all(204, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL),
                                setup=_class_of_teacher1),
    # enrolment opens a student's work to a teacher: administrators only, even in one's class
    "POST /classes/{id}/students": Row(
        "post", lambda w, c: f"/api/v1/classes/{c['class']}/students",
        _all(201, **ADMIN_ONLY, **OTHER_SCHOOL), setup=_class_of_teacher1,
        body=lambda w, c: {"user_id": w.users["student3"]}),
    "DELETE /classes/{id}/students/{user_id}": Row(
        "delete", lambda w, c: f"/api/v1/classes/{c['class']}/students/{w.users['student1']}",
        _all(204, **ADMIN_ONLY, **OTHER_SCHOOL), setup=lambda w: _enrolled(w)),
    "GET /access-audit": Row("get", lambda w, c: "/api/v1/access-audit",
                             _all(200, **ADMIN_ONLY)),
    "GET /privacy-note": Row("get", lambda w, c: "/api/v1/privacy-note",
                             dict.fromkeys(ROLES, 200), setup=lambda w: _note(w)),
    "POST /privacy-note": Row("post", lambda w, c: "/api/v1/privacy-note",
                              _all(201, **ADMIN_ONLY, admin2=403, admin3=403),
                              body=lambda w, c: {"title": "Privacy", "body": "What we keep."}),
    "GET /privacy-note/versions": Row("get", lambda w, c: "/api/v1/privacy-note/versions",
                                      dict.fromkeys(ROLES, 200)),
    "GET /privacy-note/versions/{version}": Row(
        "get", lambda w, c: "/api/v1/privacy-note/versions/1", dict.fromkeys(ROLES, 200),
        setup=lambda w: _note(w)),
    "GET /students/{id}/consents": Row(
        "get", lambda w, c: f"/api/v1/students/{w.users['student1']}/consents",
        _all(200, student3=404, teacher1=403, teacher2=403, assessor1=403, admin2=404)),
    "POST /students/{id}/consents": Row(
        "post", lambda w, c: f"/api/v1/students/{w.users['student1']}/consents",
        _all(201, student1=403, student3=404, teacher1=403, teacher2=403, assessor1=403,
             admin2=404),
        body=lambda w, c: {"purpose": "research", "granted": True}),
    "GET /students/{id}/groups": Row(
        "get", lambda w, c: f"/api/v1/students/{w.users['student1']}/groups",
        _all(200, student3=404, teacher1=403, teacher2=403, assessor1=403, admin2=404),
        setup=lambda w: _demographics(w)),
    "PUT /students/{id}/groups": Row(
        "put", lambda w, c: f"/api/v1/students/{w.users['student1']}/groups",
        _all(200, student1=403, student3=403, teacher1=403, teacher2=403, assessor1=403,
             admin2=404),
        setup=lambda w: _demographics(w), body=lambda w, c: {"groups": {"gender": "f"}}),
    "GET /audit": Row("get", lambda w, c: f"/api/v1/audit?subject={w.users['student1']}",
                      _all(200, **ADMIN_ONLY)),
    "GET /classes/{id}/assignments": Row(
        "get", lambda w, c: f"/api/v1/classes/{w.class_id}/assignments",
        _all(200, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL)),
    "POST /classes/{id}/assignments": Row(
        "post", lambda w, c: f"/api/v1/classes/{c['class']}/assignments",
        _all(201, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL), setup=_class_of_teacher1,
        body=lambda w, c: {"test_id": w.test_id}),
    "GET /classes/{id}/attempts": Row(
        "get", lambda w, c: f"/api/v1/classes/{w.class_id}/attempts",
        _all(200, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL)),
    "GET /classes/{id}/dashboard": Row(
        "get", lambda w, c: f"/api/v1/classes/{w.class_id}/dashboard",
        _all(200, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL)),
    "GET /assignments/{id}": Row(
        "get", lambda w, c: f"/api/v1/assignments/{c['assignment']}",
        _all(200, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL), setup=_assignment_of_teacher1),
    "PATCH /assignments/{id}": Row(
        "patch", lambda w, c: f"/api/v1/assignments/{c['assignment']}",
        _all(200, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL), setup=_assignment_of_teacher1,
        body=lambda w, c: {"time_limit_minutes": 30}),
    "DELETE /assignments/{id}": Row(
        "delete", lambda w, c: f"/api/v1/assignments/{c['assignment']}",
        _all(204, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL), setup=_assignment_of_teacher1),
    # tasks: the class's teacher sets them; its students hand in drafts; a draft is its
    # student's, its class teacher's and administrators' to read
    "GET /classes/{id}/tasks": Row(
        "get", lambda w, c: f"/api/v1/classes/{w.class_id}/tasks",
        _all(200, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL)),
    "POST /classes/{id}/tasks": Row(
        "post", lambda w, c: f"/api/v1/classes/{w.class_id}/tasks",
        _all(201, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL),
        body=lambda w, c: {"title": "Poster"}),
    "GET /tasks": Row("get", lambda w, c: "/api/v1/tasks",
                      _all(403, student1=200, student3=200)),
    "GET /tasks/{id}": Row(
        "get", lambda w, c: f"/api/v1/tasks/{c['task']}",
        _all(200, student3=404, teacher2=404, assessor1=404, **OTHER_SCHOOL),
        setup=_task_of_teacher1),
    "PATCH /tasks/{id}": Row(
        "patch", lambda w, c: f"/api/v1/tasks/{c['task']}",
        _all(200, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL), setup=_task_of_teacher1,
        body=lambda w, c: {"title": "Renamed"}),
    "DELETE /tasks/{id}": Row(
        "delete", lambda w, c: f"/api/v1/tasks/{c['task']}",
        _all(204, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL), setup=_task_of_teacher1),
    "GET /tasks/{id}/drafts": Row(
        "get", lambda w, c: f"/api/v1/tasks/{c['task']}/drafts",
        _all(200, student3=404, teacher2=404, assessor1=404, **OTHER_SCHOOL),
        setup=_drafts_of_student1),
    "POST /tasks/{id}/drafts": Row(
        "post", lambda w, c: f"/api/v1/tasks/{c['task']}/drafts",
        _all(403, student1=201, student3=404), setup=_task_of_teacher1, data=_draft_file),
    "GET /drafts/{id}": Row(
        "get", lambda w, c: f"/api/v1/drafts/{c['draft']}",
        _all(200, student3=404, teacher2=404, assessor1=404, **OTHER_SCHOOL),
        setup=_drafts_of_student1),
    "GET /drafts/{id}/diff": Row(
        "get", lambda w, c: f"/api/v1/drafts/{c['draft']}/diff?against={c['against']}",
        _all(200, student3=404, teacher2=404, assessor1=404, **OTHER_SCHOOL),
        setup=_drafts_of_student1),
    "GET /drafts/{id}/comments": Row(
        "get", lambda w, c: f"/api/v1/drafts/{c['draft']}/comments",
        _all(200, student3=404, teacher2=404, assessor1=404, **OTHER_SCHOOL),
        setup=_drafts_of_student1),
    "POST /drafts/{id}/comments": Row(
        "post", lambda w, c: f"/api/v1/drafts/{c['draft']}/comments",
        _all(201, student1=403, student3=403, assessor1=403, teacher2=404, **OTHER_SCHOOL),
        setup=_drafts_of_student1, body=lambda w, c: {"body": "Good."}),
    "GET /files/{sha256}": Row(
        "get", lambda w, c: f"/api/v1/files/{c['sha256']}",
        _all(200, student3=404, teacher2=404, assessor1=404, **OTHER_SCHOOL),
        setup=_drafts_of_student1),
    "GET /xapi/clients": Row("get", lambda w, c: "/api/v1/xapi/clients",
                             _all(200, **NOT_STAFF)),
    "POST /xapi/clients": Row(
        "post", lambda w, c: "/api/v1/xapi/clients",
        _all(201, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL),
        body=lambda w, c: {"name": "Quiz app", "class_id": w.class_id}),
    "GET /xapi/clients/{id}": Row(
        "get", lambda w, c: f"/api/v1/xapi/clients/{c['client']}",
        _all(200, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL), setup=lambda w: _xapi_client(w)),
    "DELETE /xapi/clients/{id}": Row(
        "delete", lambda w, c: f"/api/v1/xapi/clients/{c['client']}",
        _all(204, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL), setup=lambda w: _xapi_client(w)),
    # CAT service clients: district administrators only (admin1); schools' administrators 403.
    "GET /cat/clients": Row("get", lambda w, c: "/api/v1/cat/clients",
                            _all(200, **ADMIN_ONLY, admin2=403, admin3=403)),
    "POST /cat/clients": Row("post", lambda w, c: "/api/v1/cat/clients",
                             _all(201, **ADMIN_ONLY, admin2=403, admin3=403),
                             body=lambda w, c: {"name": "TAO"}),
    "GET /cat/clients/{id}": Row(
        "get", lambda w, c: f"/api/v1/cat/clients/{c['client']}",
        _all(200, **ADMIN_ONLY, admin2=403, admin3=403), setup=lambda w: _cat_client(w)),
    "DELETE /cat/clients/{id}": Row(
        "delete", lambda w, c: f"/api/v1/cat/clients/{c['client']}",
        _all(204, **ADMIN_ONLY, admin2=403, admin3=403), setup=lambda w: _cat_client(w)),
    "GET /rubrics/{id}/rater-analysis": Row(  # teachers: their classes' defenses only;
        # school B's administrator: B's (none to analyse: 409)
        "get", lambda w, c: f"/api/v1/rubrics/{c['rubric']}/rater-analysis",
        _all(200, student1=403, student3=403, admin2=409), setup=lambda w: _scored_rubric(w)),
    "GET /rubrics": Row("get", lambda w, c: "/api/v1/rubrics", _all(200, **STUDENTS)),
    "POST /rubrics": Row("post", lambda w, c: "/api/v1/rubrics", _all(201, **STUDENTS),
                         body=lambda w, c: _rubric_body()),
    "POST /rubrics/import": Row("post", lambda w, c: "/api/v1/rubrics/import",
                                _all(201, **STUDENTS), body=lambda w, c: _rubric_body()),
    "GET /rubrics/{id}": Row("get", lambda w, c: f"/api/v1/rubrics/{c['rubric']}",
                             _all(200, **STUDENTS), setup=lambda w: _rubric(w)),
    "POST /rubrics/{id}/versions": Row(
        "post", lambda w, c: f"/api/v1/rubrics/{c['rubric']}/versions", _all(201, **STUDENTS),
        setup=lambda w: _rubric(w), body=lambda w, c: {"criteria": _rubric_body()["criteria"]}),
    "POST /rubrics/{id}/archive": Row(
        "post", lambda w, c: f"/api/v1/rubrics/{c['rubric']}/archive", _all(200, **STUDENTS),
        setup=lambda w: _rubric(w)),
    "POST /rubrics/{id}/unarchive": Row(
        "post", lambda w, c: f"/api/v1/rubrics/{c['rubric']}/unarchive", _all(200, **STUDENTS),
        setup=lambda w: _rubric(w)),
    "GET /rubrics/{id}/export": Row(
        "get", lambda w, c: f"/api/v1/rubrics/{c['rubric']}/export?format=csv",
        _all(200, **STUDENTS), setup=lambda w: _rubric(w)),
    # learning resources: every staff member reads and writes; students meet them in reports
    "GET /resources": Row("get", lambda w, c: "/api/v1/resources", _all(200, **STUDENTS)),
    "POST /resources": Row("post", lambda w, c: "/api/v1/resources", _all(201, **STUDENTS),
                           body=lambda w, c: _resource_body()),
    "GET /resources/{id}": Row("get", lambda w, c: f"/api/v1/resources/{c['resource']}",
                               _all(200, **STUDENTS), setup=lambda w: _resource(w)),
    "PATCH /resources/{id}": Row(
        "patch", lambda w, c: f"/api/v1/resources/{c['resource']}", _all(200, **STUDENTS),
        setup=lambda w: _resource(w), body=lambda w, c: {"level_max": 1.5}),
    "DELETE /resources/{id}": Row(
        "delete", lambda w, c: f"/api/v1/resources/{c['resource']}", _all(204, **STUDENTS),
        setup=lambda w: _resource(w)),
    # schools: district administrators create them; a school's administrators (and the
    # district's) read and set its settings; another school is not found
    "GET /schools": Row("get", lambda w, c: "/api/v1/schools", _all(200, **ADMIN_ONLY)),
    "POST /schools": Row("post", lambda w, c: "/api/v1/schools",
                         _all(403, admin1=201), body=lambda w, c: {
                             "name": f"School {uuid.uuid4().hex[:6]}"}),
    "GET /schools/{id}": Row("get", lambda w, c: f"/api/v1/schools/{w.schools['A']}",
                             _all(200, **ADMIN_ONLY, **OTHER_SCHOOL)),
    "PATCH /schools/{id}": Row("patch", lambda w, c: f"/api/v1/schools/{w.schools['A']}",
                               _all(200, **ADMIN_ONLY, **OTHER_SCHOOL),
                               body=lambda w, c: {"erasure_delay_days": 21}),
    # xAPI out: a school's LRS and its dead letters, for its administrators and the district's
    "GET /schools/{id}/lrs": Row("get", lambda w, c: f"/api/v1/schools/{w.schools['A']}/lrs",
                                 _all(200, **ADMIN_ONLY, **OTHER_SCHOOL)),
    "PUT /schools/{id}/lrs": Row(
        "put", lambda w, c: f"/api/v1/schools/{w.schools['A']}/lrs",
        _all(200, **ADMIN_ONLY, **OTHER_SCHOOL), body=lambda w, c: {
            "endpoint": "https://lrs.example.org/xAPI/", "key": "k", "secret": "s"}),
    "POST /schools/{id}/lrs/send": Row(
        "post", lambda w, c: f"/api/v1/schools/{w.schools['A']}/lrs/send",
        _all(202, **ADMIN_ONLY, **OTHER_SCHOOL), setup=_lrs_with_dead_letter),
    "GET /schools/{id}/lrs/dead-letters": Row(
        "get", lambda w, c: f"/api/v1/schools/{w.schools['A']}/lrs/dead-letters",
        _all(200, **ADMIN_ONLY, **OTHER_SCHOOL), setup=_lrs_with_dead_letter),
    "POST /schools/{id}/lrs/dead-letters/retry": Row(
        "post", lambda w, c: f"/api/v1/schools/{w.schools['A']}/lrs/dead-letters/retry",
        _all(200, **ADMIN_ONLY, **OTHER_SCHOOL), setup=_lrs_with_dead_letter,
        body=lambda w, c: {"ids": [c["dead"]]}),
    "POST /schools/{id}/lrs/dead-letters/discard": Row(
        "post", lambda w, c: f"/api/v1/schools/{w.schools['A']}/lrs/dead-letters/discard",
        _all(200, **ADMIN_ONLY, **OTHER_SCHOOL), setup=_lrs_with_dead_letter,
        body=lambda w, c: {"ids": [c["dead"]]}),
    # LTI platforms: administrators register them (a school's for their own school)
    "GET /lti/platforms": Row("get", lambda w, c: "/api/v1/lti/platforms",
                              _all(200, **ADMIN_ONLY)),
    "POST /lti/platforms": Row("post", lambda w, c: "/api/v1/lti/platforms",
                               _all(201, **ADMIN_ONLY), body=lambda w, c: {
                                   "name": "Moodle", "issuer": "https://lms.example",
                                   "client_id": uuid.uuid4().hex,
                                   "auth_login_url": "https://lms.example/auth",
                                   "auth_token_url": "https://lms.example/token",
                                   "key_set_url": "https://lms.example/jwks",
                                   "deployment_ids": ["1"]}),
    "POST /auth/token": Row("post", lambda w, c: "/api/v1/auth/token",
                            dict.fromkeys(ROLES, 200),
                            body=lambda w, c: {"username": "student2", "password": PASSWORD}),
    "DELETE /auth/token": Row("delete", lambda w, c: "/api/v1/auth/token", _all(204)),
    # defenses: the class's teacher schedules and manages; assigned raters score; the student
    # reads their own; other teachers and students do not know it exists; assessors are refused.
    "GET /classes/{id}/defenses": Row(
        "get", lambda w, c: f"/api/v1/classes/{w.class_id}/defenses",
        _all(200, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL)),
    "POST /classes/{id}/defenses": Row(
        "post", lambda w, c: f"/api/v1/classes/{w.class_id}/defenses",
        _all(201, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL), setup=_defense_rubric,
        body=lambda w, c: {"student_id": w.users["student1"], "rubric_id": c["rubric"],
                           "title": "D", "raters": [w.users["teacher1"]]}),
    "GET /defenses": Row("get", lambda w, c: "/api/v1/defenses", _all(200, assessor1=403)),
    "GET /users/{id}/defenses": Row(
        "get", lambda w, c: f"/api/v1/users/{w.users['student1']}/defenses",
        _all(200, student3=404, teacher2=404, assessor1=403, **OTHER_SCHOOL), setup=_defense),
    "GET /defenses/{id}": Row(
        "get", lambda w, c: f"/api/v1/defenses/{c['defense']}",
        _all(200, student3=404, teacher2=404, assessor1=403, **OTHER_SCHOOL), setup=_defense),
    "POST /defenses/{id}/raters": Row(
        "post", lambda w, c: f"/api/v1/defenses/{c['defense']}/raters",
        _all(201, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL),
        setup=lambda w: _defense(w, co_teach_teacher2=True),
        body=lambda w, c: {"user_id": w.users["teacher2"]}),
    "DELETE /defenses/{id}/raters/{id}": Row(
        "delete", lambda w, c: f"/api/v1/defenses/{c['defense']}/raters/{w.users['teacher2']}",
        _all(200, **NOT_STAFF, teacher2=403, **OTHER_SCHOOL),
        setup=lambda w: _defense(w, adjudicator="teacher2", co_teach_teacher2=True)),
    "POST /defenses/{id}/scores": Row(
        "post", lambda w, c: f"/api/v1/defenses/{c['defense']}/scores",
        _all(403, teacher1=201, teacher2=404), setup=_defense, body=_sheet_body),
    "POST /defenses/{id}/corrections": Row(
        "post", lambda w, c: f"/api/v1/defenses/{c['defense']}/corrections",
        _all(403, teacher1=201, teacher2=404), setup=_submitted_defense,
        body=lambda w, c: {"criterion_id": c["criteria"][0], "score": 3, "reason": "misread"}),
    "POST /defenses/{id}/adjudications": Row(  # one rater: nothing to settle (409), but the
        # lead teacher gets that far; the rater is not the adjudicator
        "post", lambda w, c: f"/api/v1/defenses/{c['defense']}/adjudications",
        _all(403, teacher1=409), setup=_defense_scored_by_teacher2,
        body=lambda w, c: {"criterion_id": c["criteria"][0], "score": 3, "reason": "x"}),
    "POST /defenses/{id}/cancel": Row(
        "post", lambda w, c: f"/api/v1/defenses/{c['defense']}/cancel",
        _all(200, **NOT_STAFF, teacher2=404, **OTHER_SCHOOL), setup=_defense),
    # learners' rights: the export is the student's own and administrators'; erasure and the
    # purge are administrators' (the purge district administrators'); the requester of an
    # erasure may not confirm it (403), a second administrator does.
    "GET /students/{id}/export": Row(
        "get", lambda w, c: f"/api/v1/students/{w.users['student1']}/export",
        _all(403, student1=200, student3=404, admin1=200, admin2=404, admin3=200)),
    "GET /students/{id}/export.pdf": Row(
        "get", lambda w, c: f"/api/v1/students/{w.users['student1']}/export.pdf",
        _all(403, student1=200, student3=404, admin1=200, admin2=404, admin3=200)),
    "POST /students/{id}/erasure": Row(
        "post", lambda w, c: f"/api/v1/students/{c['student']}/erasure",
        _all(403, admin1=201, admin2=404, admin3=201), setup=_fresh_student,
        body=lambda w, c: {"reason": "asked"}),
    "GET /erasures": Row("get", lambda w, c: "/api/v1/erasures",
                         _all(403, admin1=200, admin2=200, admin3=200)),
    "GET /erasures/{id}": Row("get", lambda w, c: f"/api/v1/erasures/{c['erasure']}",
                              _all(403, admin1=200, admin2=404, admin3=200),
                              setup=_pending_erasure),
    "POST /erasures/{id}/confirm": Row(
        "post", lambda w, c: f"/api/v1/erasures/{c['erasure']}/confirm",
        _all(403, admin1=200, admin2=404, admin3=200),
        setup=lambda w: _pending_erasure(w, "admin_other")),
    "POST /erasures/{id}/cancel": Row(
        "post", lambda w, c: f"/api/v1/erasures/{c['erasure']}/cancel",
        _all(403, admin1=200, admin2=404, admin3=200), setup=_pending_erasure),
    # rosters: administrators; a school's administrator imports their own school only (the
    # dry run of school A's roster answers admin2 with its errors, still a 200)
    "POST /rosters": Row("post", lambda w, c: "/api/v1/rosters", _all(200, **ADMIN_ONLY),
                         data=_roster_file),
    "POST /rosters/apply": Row("post", lambda w, c: "/api/v1/rosters/apply",
                               _all(404, **ADMIN_ONLY), body=lambda w, c: {"token": "unknown"}),
    "POST /retention/purge": Row("post", lambda w, c: "/api/v1/retention/purge",
                                 _all(403, admin1=200), body=lambda w, c: {"dry_run": True}),
}


def _note(world: ApiWorld) -> dict:
    r = world.call("post", "/api/v1/privacy-note", "admin1",
                   json={"title": "Privacy", "body": "What we keep."})
    assert r.status_code == 201, r.get_json()
    return {}


def _demographics(world: ApiWorld) -> dict:
    r = world.call("post", f"/api/v1/students/{world.users['student1']}/consents", "admin1",
                   json={"purpose": "demographics", "granted": True})
    assert r.status_code == 201, r.get_json()
    return {}


def _rubric_body() -> dict:
    levels = [{"score": n, "label": f"L{n}", "descriptor": f"level {n}"} for n in (1, 2)]
    return {"name": f"Rubric {uuid.uuid4().hex[:8]}",
            "criteria": [{"code": "c1", "name": "C1", "skill": "algebra", "levels": levels}]}


def _rubric(world: ApiWorld) -> dict:
    reply = world.call("post", "/api/v1/rubrics", "assessor1", json=_rubric_body())
    assert reply.status_code == 201, reply.get_json()
    return {"rubric": reply.get_json()["id"]}


def _xapi_client(world: ApiWorld) -> dict:
    reply = world.call("post", "/api/v1/xapi/clients", "teacher1",
                       json={"name": "Quiz app", "class_id": world.class_id})
    assert reply.status_code == 201, reply.get_json()
    return {"client": reply.get_json()["id"]}


def _cat_client(world: ApiWorld) -> dict:
    reply = world.call("post", "/api/v1/cat/clients", "admin1", json={"name": "TAO"})
    assert reply.status_code == 201, reply.get_json()
    return {"client": reply.get_json()["id"]}


def _enrolled(world: ApiWorld) -> dict:
    klass = _class_of_teacher1(world)["class"]
    r = world.call("post", f"/api/v1/classes/{klass}/students", "admin1",
                   json={"user_id": world.users["student1"]})
    assert r.status_code == 201, r.get_json()
    return {"class": klass}


def test_every_endpoint_is_in_the_matrix(world: ApiWorld) -> None:
    spec = world.call("get", "/api/v1/openapi.json").get_json()
    documented = {f"{method.upper()} {path.removeprefix('/api/v1')}"
                  for path, operations in spec["paths"].items()
                  for method in operations if method != "parameters"}
    normalise = {}
    for key in MATRIX:
        method, path = key.split(" ", 1)
        normalise[key] = method, path
    in_matrix = {f"{m} {p}" for m, p in normalise.values()}
    shape = {d: d for d in documented}

    def pattern(path: str) -> str:
        return re.sub(r"\{[^}]+\}", "{}", path)

    missing = {d for d in shape if pattern(d) not in {pattern(k) for k in in_matrix}}
    assert not missing, f"endpoints without a role-matrix row: {sorted(missing)}"


@pytest.mark.parametrize("endpoint", sorted(MATRIX))
def test_role_matrix(world: ApiWorld, endpoint: str) -> None:
    row = MATRIX[endpoint]
    seen = {}
    for role in ROLES:
        context = row.setup(world) if row.setup else {}
        kwargs: dict[str, Any] = {}
        if row.body is not None:
            kwargs["json"] = row.body(world, context)
        if row.headers is not None:
            kwargs["headers"] = row.headers(world, context)
        if row.data is not None:
            kwargs["data"] = row.data(world, context)
        response = world.call(row.method, row.path(world, context),
                              None if role == "anon" else role, **kwargs)
        seen[role] = response.status_code
        if response.status_code >= 400:
            assert response.mimetype == "application/problem+json", (role, response.data)
    assert seen == row.expected
