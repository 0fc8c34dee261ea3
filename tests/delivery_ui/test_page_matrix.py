"""Who may open which page: one row per GET page route of ``app.url_map``, one expected status per
role, on SQLite and PostgreSQL, with the Flask test client.

A page route without a row fails :func:`test_every_page_is_in_the_matrix`, so a new page needs
a rule. The world is built once per module (and database): reading a page changes nothing that
another row looks at. Statuses: 200 (shown), 302 (anonymous: sent to sign in; a few pages send a
signed-in user elsewhere), 403 (the role may not), 404 (not found: another teacher's class or
student, another school's, another student's work), 409 (a result that does not exist yet).

The roles are those of :mod:`tests.api.test_role_matrix`: the students, teachers, classes and
the assessor are in school A; ``admin1`` administers the district, ``admin3`` school A and
``admin2`` school B (to whom school A's people and classes are not found).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from api.app import create_app
from api.db import engine_of
from item_bank.services import DELIVERIES
from tests.api.conftest import PASSWORD, ApiWorld, _world_templates  # noqa: F401
from tests.api.test_role_matrix import (
    ROLES,
    _attempt_of_student1,
    _defense,
    _drafts_of_student1,
    _rated_rubric,
    _report_job,
    _resource,
    _run,
    _scored_rubric,
)
from tests.delivery_ui.conftest import csrf_of

SIGNED_IN = [r for r in ROLES if r != "anon"]
ADMINS = ("admin1", "admin2", "admin3")


@dataclass
class PageWorld:
    """The app, one signed-in test client per role, and the ids the rows' paths use."""

    app: Any
    api: ApiWorld
    ids: dict[str, Any]
    clients: dict[str, Any]


def _database(kind: str, templates, tmp_path_factory) -> tuple[str, Callable[[], None]]:
    """A copy of the filled fixture world of ``kind``, and how to drop it."""
    if kind == "sqlite":
        source, _ids = templates("sqlite")
        path = tmp_path_factory.mktemp("pages") / "pages.sqlite3"
        shutil.copyfile(source, path)
        return f"sqlite:///{path}", lambda: None
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL is required (REQUIRE_POSTGRES=1) but TEST_DATABASE_URL is "
                        "unset", pytrace=False)
        pytest.skip("PostgreSQL (TEST_DATABASE_URL) unavailable")
    template, _ids = templates("postgresql")
    name = f"cat_pages_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(base).set(database=name).render_as_string(hide_password=False), drop


def _sign_in(app, username: str):
    client = app.test_client()
    token = csrf_of(client.get("/").get_data(as_text=True))
    response = client.post("/sign-in", data={"username": username, "password": PASSWORD,
                                             "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def pages(request, _world_templates, tmp_path_factory) -> PageWorld:  # noqa: F811
    """The fixture world with one of everything a page shows, and a client per role."""
    from evidence.models import Assignment
    from storage import session_factory, session_scope

    url, drop = _database(request.param, _world_templates, tmp_path_factory)
    ids: dict[str, Any] = dict(_world_templates(request.param)[1])
    DELIVERIES.clear()
    app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "page-matrix"})
    api = ApiWorld(app=app, client=app.test_client(), users=ids["users"],
                   test_id=ids["test_id"], class_id=ids["class_id"],
                   other_class_id=ids["other_class_id"], items=ids["items"],
                   schools=ids["schools"])
    context: dict[str, Any] = {}
    context |= _attempt_of_student1(api)
    context |= _drafts_of_student1(api)
    context |= {"defense": _defense(api)["defense"]}
    context |= _report_job(api)
    context |= _resource(api)
    context |= _run(api)
    context |= {"rubric": _scored_rubric(api)["rubric"]}
    rated = _rated_rubric(api, 100)
    reply = api.call("post", f"/api/v1/rubrics/{rated['rubric']}/calibrations", "assessor1",
                     json={"version": 1})
    assert reply.status_code == 201, reply.get_json()
    context |= {"cal_rubric": rated["rubric"], "calibration": reply.get_json()["id"]}
    with session_scope(session_factory(engine_of(app))) as session:
        context["assignment"] = session.scalar(select(Assignment.id).where(
            Assignment.class_id == ids["class_id"]).order_by(Assignment.id))
    world = PageWorld(app=app, api=api, ids=ids | context,
                      clients={role: _sign_in(app, role) for role in SIGNED_IN}
                      | {"anon": app.test_client()})
    yield world
    engine_of(app).dispose()
    drop()


def _all(status: int, *groups: dict[str, int], anon: int = 302,
         **overrides: int) -> dict[str, int]:
    """``status`` for every signed-in role, then each of ``groups``, then ``overrides``;
    anonymous visitors are sent to sign in (302) unless ``anon`` says otherwise."""
    expected = {"anon": anon} | dict.fromkeys(SIGNED_IN, status)
    for group in groups:
        expected |= group
    return expected | overrides


#: A student's own pages: staff are refused.
STUDENTS_ONLY = {r: 403 for r in SIGNED_IN if not r.startswith("student")}
#: Rubrics and resources: every staff member.
STAFF = {"student1": 403, "student3": 403}
#: The item bank and calibration: assessment teams (district-wide, every administrator).
BANK = {"student1": 403, "student3": 403, "teacher1": 403, "teacher2": 403}
#: Teacher 1's class 7A (school A) and what is in it: its teacher and school A's and the
#: district's administrators; teacher 2 and school B's administrator do not know it exists.
CLASSES = {"student1": 403, "student3": 403, "assessor1": 403, "teacher2": 404, "admin2": 404}


def _p(template: str) -> Callable[[dict], str]:
    return lambda ids: template.format(**ids, student1=ids["users"]["student1"])


#: route rule -> (path from the world's ids, expected status per role)
MATRIX: dict[str, tuple[Callable[[dict], str], dict[str, int]]] = {
    "/": (
        _p("/"),
        _all(200, anon=200)),
    # learners' rights
    "/admin/audit": (
        _p("/admin/audit"),
        _all(403, admin1=200, admin2=200, admin3=200)),
    "/admin/erasures": (
        _p("/admin/erasures"),
        _all(403, admin1=200, admin2=200, admin3=200)),
    "/admin/privacy": (
        _p("/admin/privacy"),
        _all(403, admin1=200, admin2=200, admin3=200)),
    "/admin/rosters": (
        _p("/admin/rosters"),
        _all(403, admin1=200, admin2=200, admin3=200)),
    "/admin/students/<int:student_id>/privacy": (
        _p("/admin/students/{student1}/privacy"),
        _all(403, admin1=200, admin2=404, admin3=200)),
    "/admin/schools/<int:school_id>/lrs": (
        _p("/admin/schools/{schools[A]}/lrs"),
        _all(403, admin1=200, admin2=404, admin3=200)),
    "/my-privacy": (
        _p("/my-privacy"),
        _all(200, STUDENTS_ONLY)),
    "/privacy": (
        _p("/privacy"),
        _all(200, anon=200)),
    "/sw.js": (  # the service worker and its offline page: the same for everyone
        _p("/sw.js"),
        _all(200, anon=200)),
    "/offline": (
        _p("/offline"),
        _all(200, anon=200)),
    "/students/<int:student_id>/my-data.json": (
        _p("/students/{student1}/my-data.json"),
        _all(403, student1=200, student3=404, admin1=200, admin2=404, admin3=200)),
    "/assess/": (
        _p("/assess/"),
        _all(302, BANK)),
    "/assess/calibration": (
        _p("/assess/calibration"),
        _all(200, BANK)),
    "/assess/calibration/runs/<int:run_id>": (
        _p("/assess/calibration/runs/{run}"),
        _all(200, BANK)),
    "/assess/calibration/runs/<int:run_id>/items/<path:code>": (
        _p("/assess/calibration/runs/{run}/items/IT-001"),
        _all(404, BANK)),
    "/assess/calibration/runs/<int:run_id>/status": (
        _p("/assess/calibration/runs/{run}/status"),
        _all(200, BANK)),
    "/assess/calibration/uploads/<int:upload_id>": (
        _p("/assess/calibration/uploads/{upload}"),
        _all(200, BANK)),
    "/assess/import": (
        _p("/assess/import"),
        _all(200, BANK)),
    "/assess/import/example.csv": (
        _p("/assess/import/example.csv"),
        _all(200, BANK)),
    "/assess/import/template.csv": (
        _p("/assess/import/template.csv"),
        _all(200, BANK)),
    "/assess/items": (
        _p("/assess/items"),
        _all(200, BANK)),
    "/assess/items/<int:item_id>": (
        _p("/assess/items/{item1}"),
        _all(200, BANK)),
    "/assess/items/<int:item_id>/edit": (
        _p("/assess/items/{item1}/edit"),
        _all(200, BANK)),
    "/assess/items/export": (
        _p("/assess/items/export"),
        _all(200, BANK)),
    "/assess/pretest": (
        _p("/assess/pretest"),
        _all(200, BANK)),
    "/assess/simulate": (
        _p("/assess/simulate"),
        _all(200, BANK)),
    "/attempts/<int:attempt_id>": (
        _p("/attempts/{attempt}"),
        _all(200, STUDENTS_ONLY, student3=404)),
    "/attempts/<int:attempt_id>/result": (
        _p("/attempts/{attempt}/result"),
        _all(404, student1=303)),
    "/files/<string:sha256>": (
        _p("/files/{sha256}"),
        _all(200, CLASSES, student1=200, student3=404, assessor1=404)),
    "/healthz": (
        _p("/healthz"),
        _all(200, anon=200)),
    "/my-defenses": (
        _p("/my-defenses"),
        _all(200, STUDENTS_ONLY)),
    "/my-portfolio": (
        _p("/my-portfolio"),
        _all(200, STUDENTS_ONLY)),
    "/my-report": (
        _p("/my-report"),
        _all(200, STUDENTS_ONLY)),
    "/my-tests": (
        _p("/my-tests"),
        _all(200, STUDENTS_ONLY)),
    "/practice/<path:skill>": (
        _p("/practice/algebra"),
        _all(404, STUDENTS_ONLY)),
    "/resources": (
        _p("/resources"),
        _all(200, STAFF)),
    "/resources/<int:resource_id>/edit": (
        _p("/resources/{resource}/edit"),
        _all(200, STAFF)),
    "/rubrics": (
        _p("/rubrics"),
        _all(200, STAFF)),
    "/rubrics/<int:rubric_id>": (
        _p("/rubrics/{rubric}"),
        _all(200, STAFF)),
    "/rubrics/<int:rubric_id>/calibrations": (
        _p("/rubrics/{cal_rubric}/calibrations"),
        _all(200, BANK)),
    "/rubrics/<int:rubric_id>/calibrations/<int:calibration_id>": (
        _p("/rubrics/{cal_rubric}/calibrations/{calibration}"),
        _all(200, BANK)),
    "/rubrics/<int:rubric_id>/export.csv": (
        _p("/rubrics/{rubric}/export.csv"),
        _all(200, STAFF)),
    "/rubrics/<int:rubric_id>/export.json": (
        _p("/rubrics/{rubric}/export.json"),
        _all(200, STAFF)),
    "/rubrics/<int:rubric_id>/raters": (
        _p("/rubrics/{rubric}/raters"),
        _all(200, STAFF, admin2=409)),
    "/rubrics/<int:rubric_id>/versions/new": (
        _p("/rubrics/{rubric}/versions/new"),
        _all(200, STAFF)),
    "/rubrics/import": (
        _p("/rubrics/import"),
        _all(200, STAFF)),
    "/rubrics/new": (
        _p("/rubrics/new"),
        _all(200, STAFF)),
    "/students/<int:student_id>/report.pdf": (
        _p("/students/{student1}/report.pdf"),
        _all(200, CLASSES, student1=200, student3=404, assessor1=404)),
    "/tasks/<int:task_id>": (
        _p("/tasks/{task}"),
        _all(200, STUDENTS_ONLY, student3=404)),
    "/teach/classes": (
        _p("/teach/classes"),
        _all(200, STAFF, assessor1=403)),
    "/teach/classes/<int:class_id>": (
        _p("/teach/classes/{class_id}"),
        _all(200, CLASSES)),
    "/teach/classes/<int:class_id>/assignments/<int:assignment_id>": (
        _p("/teach/classes/{class_id}/assignments/{assignment}"),
        _all(200, CLASSES)),
    "/teach/classes/<int:class_id>/assignments/new": (
        _p("/teach/classes/{class_id}/assignments/new"),
        _all(200, CLASSES)),
    "/teach/classes/<int:class_id>/attempts/<int:attempt_id>": (
        _p("/teach/classes/{class_id}/attempts/{attempt}"),
        _all(200, CLASSES)),
    "/teach/classes/<int:class_id>/dashboard": (
        _p("/teach/classes/{class_id}/dashboard"),
        _all(200, CLASSES)),
    "/teach/classes/<int:class_id>/defenses": (
        _p("/teach/classes/{class_id}/defenses"),
        _all(200, CLASSES)),
    "/teach/classes/<int:class_id>/students/<int:student_id>/accommodation": (
        _p("/teach/classes/{class_id}/students/{student1}/accommodation"),
        _all(200, CLASSES)),
    "/teach/classes/<int:class_id>/students/<int:student_id>/portfolio": (
        _p("/teach/classes/{class_id}/students/{student1}/portfolio"),
        _all(200, CLASSES)),
    "/teach/classes/<int:class_id>/tasks/<int:task_id>": (
        _p("/teach/classes/{class_id}/tasks/{task}"),
        _all(200, CLASSES)),
    "/teach/classes/<int:class_id>/tasks/<int:task_id>/edit": (
        _p("/teach/classes/{class_id}/tasks/{task}/edit"),
        _all(200, CLASSES)),
    "/teach/classes/<int:class_id>/tasks/<int:task_id>/students/<int:student_id>": (
        _p("/teach/classes/{class_id}/tasks/{task}/students/{student1}"),
        _all(200, CLASSES)),
    "/teach/classes/<int:class_id>/tasks/new": (
        _p("/teach/classes/{class_id}/tasks/new"),
        _all(200, CLASSES)),
    "/teach/defenses": (
        _p("/teach/defenses"),
        _all(200, STAFF, assessor1=403)),
    "/teach/defenses/<int:defense_id>/score": (
        _p("/teach/defenses/{defense}/score"),
        _all(200, CLASSES)),
    "/teach/report-jobs/<int:job_id>": (
        _p("/teach/report-jobs/{job}"),
        _all(200, CLASSES)),
    "/teach/report-jobs/<int:job_id>/pdf": (
        _p("/teach/report-jobs/{job}/pdf"),
        _all(303, CLASSES)),
    "/teach/students/<int:student_id>/report": (
        _p("/teach/students/{student1}/report"),
        _all(200, CLASSES)),
    # The 1EdTech CAT service: platforms' bearer tokens only (a signed-in page session is none).
    "/ims/cat/v1p0/openapi.json": (
        _p("/ims/cat/v1p0/openapi.json"),
        _all(200, anon=200)),
    "/ims/cat/v1p0/sections/<string:sectionIdentifier>": (
        _p("/ims/cat/v1p0/sections/some-section"),
        _all(401, anon=401)),
    "/ims/cat/v1p0/sections/<string:sectionIdentifier>/items": (
        _p("/ims/cat/v1p0/sections/some-section/items"),
        _all(401, anon=401)),
    "/lti/jwks.json": (
        _p("/lti/jwks.json"),
        _all(200, anon=200)),
    "/lti/login": (  # no iss, no login_hint: refused, whoever asks
        _p("/lti/login"),
        _all(400, anon=400)),
    "/lti/deep-link/<launch_id>": (
        _p("/lti/deep-link/lti1p3-launch-unknown"),
        _all(404, anon=404)),
    "/xapi/<path:rest>": (
        _p("/xapi/activities"),
        _all(404, anon=404)),
    "/xapi/about": (
        _p("/xapi/about"),
        _all(200, anon=200)),
    "/xapi/statements": (
        _p("/xapi/statements"),
        _all(400, anon=400)),
}


def page_routes(app) -> set[str]:
    """The GET page routes of ``app``: not under /api/, not static files."""
    return {rule.rule for rule in app.url_map.iter_rules()
            if "GET" in rule.methods and not rule.rule.startswith("/api/")
            and rule.endpoint != "static"}


def test_every_page_is_in_the_matrix(pages: PageWorld) -> None:
    routes = page_routes(pages.app)
    assert not routes - set(MATRIX), f"pages without a matrix row: {sorted(routes - set(MATRIX))}"
    assert not set(MATRIX) - routes, f"rows of no page: {sorted(set(MATRIX) - routes)}"


@pytest.mark.parametrize("rule", sorted(MATRIX))
def test_page_matrix(pages: PageWorld, rule: str) -> None:
    path_of, expected = MATRIX[rule]
    ids = pages.ids | {"item1": pages.ids["items"]["IT-001"]}
    path = path_of(ids)
    seen = {}
    for role in ROLES:
        response = pages.clients[role].get(path)
        seen[role] = response.status_code
        if role == "anon" and response.status_code == 302:  # to the sign-in form, and back
            assert urlsplit(response.headers["Location"]).path == "/", response.headers
            assert f"next={path}" in response.headers["Location"]
    assert seen == expected
