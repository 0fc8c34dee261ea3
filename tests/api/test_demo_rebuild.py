"""Rebuilding the demo from any state it can reach, all or nothing.

The demo is used through the real app first (attempts finished and left in progress, an item
import, a pretest item seeded and answered, a response upload, a calibration run published, an
accommodation, a new account); then ``cat-engine demo`` rebuilds it, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
import json
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, inspect, select
from sqlalchemy.engine import make_url

import api.demo
from api.app import create_app
from api.cli import cli
from api.db import engine_of
from api.demo import DEMO_PASSWORD, build_demo
from evidence.models import Attempt, Response
from item_bank.models import CalibrationRun, Item, ItemStatus, ResponseUpload
from item_bank.services import DELIVERIES
from storage import (
    DatabaseError,
    as_utc,
    make_engine,
    session_factory,
    session_scope,
    utcnow,
)
from storage.accounts import Accommodation, SchoolClass, User
from storage.migrate import current_revision, head_revision

N_ITEMS = 36


@pytest.fixture(autouse=True)
def _no_history(request) -> None:
    """The rebuild's mechanics do not need the demo's weeks of attempts: left out, except where
    the history is what a test looks at."""
    if "history" not in request.node.name:
        request.getfixturevalue("demo_without_history")
NEW_ITEMS_CSV = (
    "item_id,stem,option_1,option_2,option_3,key,rationale,skill,tags,status,model,a,b\r\n"
    "NEW-1,What is 2 + 2?,3,4,5,2,Count.,arithmetic,new,operational,2pl,1.2,-0.5\r\n"
    "NEW-2,What is 3 x 3?,6,9,12,B,Multiply.,arithmetic,new,pretest,,,\r\n"
)


class Client:
    """The app's test client, signed in per username with the demo password."""

    def __init__(self, url: str) -> None:
        DELIVERIES.clear()
        self.app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "test",
                               "HUEY_URL": "immediate"})
        self.client = self.app.test_client()
        self.tokens: dict[str, str] = {}

    def call(self, method: str, path: str, user: str, **kwargs):
        if user not in self.tokens:
            r = self.client.post("/api/v1/auth/token",
                                 json={"username": user, "password": DEMO_PASSWORD})
            assert r.status_code == 200, r.get_json()
            self.tokens[user] = r.get_json()["access_token"]
        headers = {"Authorization": f"Bearer {self.tokens[user]}", **kwargs.pop("headers", {})}
        return self.client.open(f"/api/v1{path}", method=method.upper(), headers=headers,
                                **kwargs)

    def take_test(self, user: str, test_id: int, stop_after: int | None = None) -> dict:
        r = self.call("post", "/attempts", user, json={"test_id": test_id})
        assert r.status_code == 201, r.get_json()
        reply, answered = r.get_json(), 0
        while reply["status"] == "in_progress" and answered != stop_after:
            r = self.call("post", f"/attempts/{reply['id']}/responses", user,
                          json={"item_id": reply["item"]["id"], "response": answered % 2},
                          headers={"Idempotency-Key": uuid.uuid4().hex})
            assert r.status_code == 200, r.get_json()
            reply, answered = r.get_json(), answered + 1
        return reply

    def close(self) -> None:
        engine_of(self.app).dispose()


def _counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    try:
        with session_scope(session_factory(engine)) as session:
            counts = {model.__tablename__: session.scalar(select(func.count()).select_from(model))
                      for model in (Item, User, ResponseUpload, CalibrationRun, Accommodation)}
            # The demo's own history (every student took the check-up weeks ago) is not the
            # visitors': count what was started today.
            today = utcnow() - timedelta(days=1)
            counts["attempts"] = session.scalar(select(func.count()).select_from(Attempt)
                                                .where(Attempt.started_at >= today))
            counts["responses"] = session.scalar(
                select(func.count()).select_from(Response).join(Attempt)
                .where(Attempt.started_at >= today))
            counts["pretest"] = session.scalar(select(func.count()).select_from(Item).where(
                Item.status == ItemStatus.PRETEST))
        tables = inspect(engine).get_table_names()
        counts["stray tables"] = sum(t.startswith("_alembic_tmp") for t in tables)
        counts["at head"] = int(current_revision(engine) == head_revision())
        return counts
    finally:
        engine.dispose()


FRESH = {"items": N_ITEMS, "users": 36, "attempts": 0, "responses": 0, "response_uploads": 0,
         "calibration_runs": 0, "accommodations": 0, "pretest": 0, "stray tables": 0,
         "at head": 1}


def _use_the_demo(url: str) -> None:
    """Everything a visitor can do to the demo, through the API."""
    app = Client(url)
    try:
        test_id = app.call("get", "/tests", "student1").get_json()["items"][0]["id"]
        assert app.take_test("student1", test_id)["status"] == "finished"
        assert app.take_test("student16", test_id, stop_after=3)["status"] == "in_progress"

        r = app.call("post", "/items/import", "assessor1", content_type="multipart/form-data",
                     data={"file": (io.BytesIO(NEW_ITEMS_CSV.encode()), "items.csv")})
        assert r.status_code == 200, r.get_json()
        config = app.call("get", f"/tests/{test_id}", "assessor1").get_json()["config"]
        config["pretest"] = {"items": ["NEW-2"], "positions": [1]}
        r = app.call("patch", f"/tests/{test_id}", "assessor1", json={"config": config})
        assert r.status_code == 200, r.get_json()
        assert app.take_test("student2", test_id)["status"] == "finished"

        codes = [i["code"] for i in app.call("get", "/items?per_page=8", "assessor1")
                 .get_json()["items"]]
        rng = np.random.default_rng(1)
        lines = ["person_id,item_id,response"] + [
            f"P{p},{code},{int(rng.random() < 0.6)}" for p in range(300) for code in codes]
        r = app.call("post", "/calibration/uploads", "assessor1",
                     content_type="multipart/form-data",
                     data={"file": (io.BytesIO("\n".join(lines).encode()), "responses.csv")})
        assert r.status_code == 201, r.get_json()
        r = app.call("post", "/calibration/runs", "assessor1",
                     json={"upload_id": r.get_json()["id"], "model": "rasch"})
        assert r.status_code == 202, r.get_json()
        run = app.call("get", f"/calibration/runs/{r.get_json()['id']}", "assessor1").get_json()
        assert run["status"] == "succeeded", run
        r = app.call("post", f"/calibration/runs/{run['id']}/publish", "assessor1",
                     json={"confirm_unlinked": True})
        assert r.status_code == 200, r.get_json()

        student3 = app.call("get", "/users?role=student&per_page=100", "admin1").get_json()
        student3 = next(u["id"] for u in student3["items"] if u["username"] == "student3")
        r = app.call("put", f"/users/{student3}/accommodation", "admin1",
                     json={"time": "extended", "time_factor": 1.5})
        assert r.status_code == 200, r.get_json()
        r = app.call("post", "/users", "admin1", json={
            "username": "visitor", "display_name": "A visitor", "role": "student",
            "password": "a long enough password"})
        assert r.status_code == 201, r.get_json()
    finally:
        app.close()


def test_a_used_demo_rebuilds(any_db_url: str) -> None:
    engine = make_engine(any_db_url)
    build_demo(engine, n_items=N_ITEMS)
    engine.dispose()
    _use_the_demo(any_db_url)
    used = _counts(any_db_url)
    assert used["attempts"] == 3 and used["responses"] > 10 and used["calibration_runs"] == 1
    assert used["response_uploads"] == 1 and used["pretest"] == 1 and used["users"] == 37

    result = CliRunner().invoke(
        cli, ["--database-url", any_db_url, "demo", "--no-serve", "--items", str(N_ITEMS)])
    assert result.exit_code == 0, result.output
    assert f"Rebuilt: {N_ITEMS} items" in result.output
    assert _counts(any_db_url) == FRESH

    # The rebuilt demo works: it can be used (and rebuilt) again.
    _use_the_demo(any_db_url)
    result = CliRunner().invoke(
        cli, ["--database-url", any_db_url, "demo", "--no-serve", "--items", str(N_ITEMS)])
    assert result.exit_code == 0, result.output
    assert _counts(any_db_url) == FRESH
    if make_url(any_db_url).get_backend_name() == "sqlite":
        folder = Path(make_url(any_db_url).database).parent
        assert [p.name for p in folder.iterdir() if "building" in p.name] == []


def test_a_failure_mid_build_leaves_the_old_demo(any_db_url: str, monkeypatch) -> None:
    engine = make_engine(any_db_url)
    build_demo(engine, n_items=N_ITEMS)
    engine.dispose()
    _use_the_demo(any_db_url)
    before = _counts(any_db_url)

    real = api.demo._add_accounts

    def add_accounts_then_a_duplicate(session, usernames):
        accounts = real(session, usernames)
        session.add(User(username="student1", display_name="twice", role=accounts[0].role,
                         password_hash="!"))
        session.flush()  # the unique username fails here, after the old tables were dropped
        return accounts

    monkeypatch.setattr(api.demo, "_add_accounts", add_accounts_then_a_duplicate)
    engine = make_engine(any_db_url)
    with pytest.raises(DatabaseError, match=r"could not write the demo data .*IntegrityError.*"
                       r"left as it was"):
        build_demo(engine, n_items=N_ITEMS)
    engine.dispose()
    assert _counts(any_db_url) == before
    if make_url(any_db_url).get_backend_name() == "sqlite":
        folder = Path(make_url(any_db_url).database).parent
        assert [p.name for p in folder.iterdir() if "building" in p.name] == []

    # The old demo still serves: the visitor created before can still sign in, and the student
    # left mid-test can go on.
    app = Client(any_db_url)
    try:
        r = app.client.post("/api/v1/auth/token", json={"username": "visitor",
                                                        "password": "a long enough password"})
        assert r.status_code == 200
        attempts = app.call("get", "/attempts", "student16").get_json()["items"]
        assert [a["status"] for a in attempts].count("in_progress") == 1
    finally:
        app.close()


def test_a_demo_broken_by_the_old_rebuild_rebuilds(sqlite_url: str) -> None:
    """The old rebuild could leave ``_alembic_tmp_attempts`` behind; that demo rebuilds too."""
    engine = make_engine(sqlite_url)
    build_demo(engine, n_items=N_ITEMS)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE _alembic_tmp_attempts (id INTEGER)")
    engine.dispose()
    _use_the_demo(sqlite_url)
    engine = make_engine(sqlite_url)
    summary = build_demo(engine, n_items=N_ITEMS)
    engine.dispose()
    assert summary.rebuilt
    assert _counts(sqlite_url) == FRESH


def test_a_file_that_cannot_be_moved_into_place_leaves_the_old_demo(sqlite_url: str,
                                                                    monkeypatch) -> None:
    engine = make_engine(sqlite_url)
    build_demo(engine, n_items=N_ITEMS)
    engine.dispose()
    _use_the_demo(sqlite_url)
    before = _counts(sqlite_url)

    def no_room(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(api.demo.os, "replace", no_room)
    engine = make_engine(sqlite_url)
    with pytest.raises(DatabaseError, match=r"No space left on device.*left as it was"):
        build_demo(engine, n_items=N_ITEMS)
    engine.dispose()
    assert _counts(sqlite_url) == before
    folder = Path(make_url(sqlite_url).database).parent
    assert [p.name for p in folder.iterdir() if "building" in p.name] == []


def test_the_demo_has_a_portfolio_to_look_at(any_db_url: str) -> None:
    """student1's portfolio shows every section from the start: a task with two versions and a
    comment, and a practice app's step log with a hint and a retry."""
    engine = make_engine(any_db_url)
    build_demo(engine, n_items=N_ITEMS, base_url="http://localhost")  # the test client
    engine.dispose()
    app = Client(any_db_url)
    try:
        me = app.call("get", "/me", "student1").get_json()
        portfolio = app.call("get", f"/users/{me['id']}/portfolio", "teacher1").get_json()
        (task,) = portfolio["tasks"]
        assert task["title"] == "Comparing fractions"
        assert [(d["version"], d["final"], d["comments"]) for d in task["drafts"]] == [
            (1, False, 1), (2, True, 0)]
        # the practice app's session (the one with a request for help); the engine's own
        # statements of the demo's attempts are in the log too
        log = portfolio["log"]["entries"]
        session = next(e["registration"] for e in log if e["verb_name"] == "asked")
        entries = [e for e in log if e["registration"] == session]
        assert len(entries) == 8 and {e["verb_name"] for e in entries} == {
            "experienced", "answered", "asked", "completed"}
        totals = portfolio["indicators"]["totals"]
        assert totals["hints"]["log"] == 1 and totals["retries"]["count"] == 1
        # a tool of the class reads the same log by the student's pseudonym
        klass = app.call("get", "/classes", "teacher1").get_json()["items"][0]
        tool = app.call("post", "/xapi/clients", "teacher1",
                        json={"name": "Reader", "class_id": klass["id"]}).get_json()
        agent = {"account": {"homePage": "http://localhost", "name": me["pseudonym"]}}
        statements = app.client.get(
            "/xapi/statements", query_string={"agent": json.dumps(agent)},
            auth=(tool["key"], tool["secret"]), headers={"X-Experience-API-Version": "1.0.3"})
        assert statements.status_code == 200, statements.get_json()
        read = statements.get_json()["statements"]
        assert sum(st.get("context", {}).get("registration") == session for st in read) == 8
    finally:
        app.close()


def test_the_demo_has_a_history_that_reports_stand_on(sqlite_url: str) -> None:
    """Every student took the check-up twice, weeks apart, and the rubric's calibration is
    published (and says it was set by hand): a report shows six skills from answers and rubric
    scores, a trajectory of two attempts, and the class dashboard has every student."""
    from reports.dashboard import class_dashboard
    from reports.report import student_report

    engine = make_engine(sqlite_url)
    build_demo(engine)
    try:
        with session_scope(session_factory(engine)) as session:
            users = {u.username: u for u in session.scalars(select(User))}
            finished = session.scalars(select(Attempt.finished_at)).all()
            assert len(finished) == 2 * 30
            assert min(as_utc(f) for f in finished) < utcnow() - timedelta(days=30)
            report = student_report(session, users["teacher1"], users["student2"].id)
            assert report["status"] == "ok" and len(report["skills"]) == 6
            assert len(report["trajectory"]) == 2
            kinds = {e["kind"] for s in report["skills"] for e in s["evidence"]}
            assert kinds == {"item", "rubric"}
            assert report["not_on_scale"] == []
            klass = session.scalar(select(SchoolClass).where(SchoolClass.name == "Year 8 Maths"))
            board = class_dashboard(session, users["teacher1"], klass.id)
            assert board["n_students"] == 15 and len(board["skills"]) == 6
    finally:
        engine.dispose()
