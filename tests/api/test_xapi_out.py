"""xAPI out against a real LRS (ralph's, started by the test): the engine's and the tools'
statements arrive once each and pseudonymous; an LRS that is down loses nothing; dead letters,
retry, discard, wrong credentials and erasure; on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import json
import os
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from api.db import engine_of
from api.xapi_out import forget_enabled_cache, secret_box
from evidence.models import ForwardStatus, Statement, XapiForward
from evidence.xapi_forwarding import SecretBox, outgoing, send_due
from storage import session_factory, utcnow
from storage.accounts import User
from storage.rights import AuditEntry
from tests.ralph_lrs import SECRET, USER, RalphLrs, Unavailable

V = {"X-Experience-API-Version": "1.0.3"}


@pytest.fixture
def lrs(tmp_path):
    try:
        server = RalphLrs(tmp_path / "ralph")
    except Unavailable as error:
        if os.environ.get("REQUIRE_RALPH") == "1":
            pytest.fail(f"{error} is required (REQUIRE_RALPH=1)", pytrace=False)
        pytest.skip(str(error))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def out_world(world):
    """The API world with the job queue in immediate mode (the sender runs after each commit)
    and a one-second first backoff."""
    world.app.config.update(HUEY_URL="immediate", XAPI_OUT_BACKOFF=1.0, XAPI_OUT_TIMEOUT=5.0)
    forget_enabled_cache()
    yield world
    forget_enabled_cache()


def _configure(world, lrs, user="admin3", **changes):
    body = {"endpoint": lrs.endpoint, "key": USER, "secret": SECRET, **changes}
    reply = world.call("put", f"/api/v1/schools/{world.schools['A']}/lrs", user, json=body)
    assert reply.status_code == 200, reply.get_json()
    return reply.get_json()


def _take_test(world, user="student1", answers=5) -> int:
    r = world.call("post", "/api/v1/attempts", user, json={"test_id": world.test_id})
    assert r.status_code == 201, r.get_json()
    attempt = r.get_json()
    for _ in range(answers):
        if attempt.get("item") is None:
            break
        reply = world.answer(user, attempt["id"], attempt["item"]["id"], 1)
        assert reply.status_code == 200, reply.get_json()
        attempt = reply.get_json()
    return attempt["id"]


def _factory(world):
    return session_factory(engine_of(world.app))


def _stored_ids(world, username="student1") -> list[str]:
    with _factory(world)() as session:
        uid = session.scalar(select(User.id).where(User.username == username))
        return list(session.scalars(select(Statement.id).where(Statement.actor_id == uid)
                                    .order_by(Statement.seq)))


def _forwards(world) -> list[XapiForward]:
    with _factory(world)() as session:
        rows = list(session.scalars(select(XapiForward).order_by(XapiForward.statement_seq)))
        session.expunge_all()
        return rows


def _send(world, *, later: float = 0.0):
    """Run the sender as cron does, ``later`` seconds from now."""
    return send_due(_factory(world), secret_box(world.app.config),
                    now=utcnow() + timedelta(seconds=later), backoff=1.0, timeout=5.0)


def _personal(world, username: str) -> list[str]:
    with _factory(world)() as session:
        user = session.scalar(select(User).where(User.username == username))
        return [user.username, user.display_name]


def test_the_engines_statements_arrive_once_each_and_pseudonymous(out_world, lrs) -> None:
    world = out_world
    view = _configure(world, lrs)
    assert view["has_secret"] is True and "secret" not in view
    assert SECRET not in json.dumps(world.call(
        "get", f"/api/v1/schools/{world.schools['A']}/lrs", "admin3").get_json())
    _take_test(world)
    stored = _stored_ids(world)
    assert len(stored) >= 5
    received = lrs.statements()
    ids = [s["id"] for s in received]
    assert sorted(ids) == sorted(stored)  # every one, each once
    text = json.dumps(received)
    for personal in _personal(world, "student1"):
        assert personal not in text
    with _factory(world)() as session:
        pseudonym = session.scalar(select(User.pseudonym).where(User.username == "student1"))
    assert {s["actor"]["account"]["name"] for s in received} == {pseudonym}
    assert all("name" not in s["actor"] for s in received)
    assert {f.status for f in _forwards(world)} == {ForwardStatus.SENT}
    counts = world.call("get", f"/api/v1/schools/{world.schools['A']}/lrs",
                        "admin3").get_json()["counts"]
    assert counts == {"pending": 0, "sent": len(stored), "dead": 0, "discarded": 0}


def _tool_headers(world) -> dict:
    r = world.call("post", "/api/v1/xapi/clients", "teacher1",
                   json={"name": "Tool", "class_id": world.class_id})
    entry = r.get_json()
    token = base64.b64encode(f"{entry['key']}:{entry['secret']}".encode()).decode()
    return {"Authorization": f"Basic {token}", **V}


def test_statements_from_tools_go_too_without_names_or_emails(out_world, lrs) -> None:
    world = out_world
    _configure(world, lrs)
    with _factory(world)() as session:
        pseudonym = session.scalar(select(User.pseudonym).where(User.username == "student1"))
    statement = {
        "actor": {"objectType": "Agent", "name": "Student One Fullname",
                  "account": {"homePage": "http://localhost", "name": pseudonym}},
        "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
        "object": {"id": "http://tool.example/lesson/1"},
        "context": {"instructor": {"name": "Teacher Person",
                                   "mbox": "mailto:teacher.person@school.example"}},
    }
    r = world.client.post("/xapi/statements", json=statement, headers=_tool_headers(world))
    assert r.status_code == 200, r.get_json()
    sid = r.get_json()[0]
    received = {s["id"]: s for s in lrs.statements()}
    assert sid in received
    text = json.dumps(received[sid])
    for personal in ("Student One Fullname", "Teacher Person", "teacher.person@"):
        assert personal not in text
    instructor = received[sid]["context"]["instructor"]
    assert instructor["account"]["name"].startswith("anon-")
    assert received[sid]["actor"]["account"]["name"] == pseudonym

    # scope "own": what tools send stays in the school
    _configure(world, lrs, scope="own")
    forget_enabled_cache()
    statement.pop("context")
    r = world.client.post("/xapi/statements", json=statement, headers=_tool_headers(world))
    assert r.status_code == 200
    assert r.get_json()[0] not in [s["id"] for s in lrs.statements()]
    with _factory(world)() as session:
        seq = session.scalar(select(Statement.seq).where(Statement.id == r.get_json()[0]))
        assert session.scalar(select(func.count()).select_from(XapiForward)
                              .where(XapiForward.statement_seq == seq)) == 0


def test_an_lrs_that_is_down_loses_nothing_and_gets_each_statement_once(out_world, lrs) -> None:
    world = out_world
    _configure(world, lrs, max_tries=5)
    lrs.stop()
    _take_test(world, answers=4)  # every answer is stored and acknowledged: no 5xx
    stored = _stored_ids(world)
    rows = _forwards(world)
    assert len(rows) == len(stored) and {r.status for r in rows} == {ForwardStatus.PENDING}
    # the first was tried after its commit and put off; the later ones wait behind it (in
    # order), untried
    assert rows[0].tries >= 1 and "did not answer" in rows[0].last_error
    assert all(r.next_try_at > r.last_try_at for r in rows if r.tries)  # backed off

    # cron while it is still down: a try more each, nothing sent
    report = _send(world, later=3600)
    assert report[0].sent == 0 and report[0].failed == len(stored)
    # and now, before the backoff is over: nothing is tried
    before = [r.tries for r in _forwards(world)]
    _send(world)
    assert [r.tries for r in _forwards(world)] == before

    lrs.start()
    report = _send(world, later=7200)
    assert report[0].sent == len(stored)
    ids = [s["id"] for s in lrs.statements()]
    assert sorted(ids) == sorted(stored)

    # a batch sent again (a sender that died before recording it) is not counted twice
    with _factory(world)() as session:
        session.execute(update(XapiForward).values(status=ForwardStatus.PENDING,
                                                   next_try_at=utcnow()))
        session.commit()
    report = _send(world)
    assert report[0].sent == len(stored) and not report[0].errors
    assert sorted(s["id"] for s in lrs.statements()) == sorted(stored)


def test_dead_letters_are_listed_retried_and_discarded(out_world, lrs) -> None:
    world = out_world
    school = world.schools["A"]
    _configure(world, lrs, max_tries=2)
    lrs.stop()
    _take_test(world, answers=2)
    _send(world, later=3600)
    _send(world, later=7200)
    rows = _forwards(world)
    assert rows and {r.status for r in rows} == {ForwardStatus.DEAD}
    dead = world.call("get", f"/api/v1/schools/{school}/lrs/dead-letters", "admin3").get_json()
    assert len(dead["dead_letters"]) == len(rows)
    assert all("did not answer" in d["last_error"] and d["tries"] == 2
               for d in dead["dead_letters"])
    assert world.call("get", f"/api/v1/schools/{school}/lrs/dead-letters",
                      "admin2").status_code == 404
    assert world.call("get", f"/api/v1/schools/{school}/lrs/dead-letters",
                      "teacher1").status_code == 403
    r = world.call("post", f"/api/v1/schools/{school}/lrs/dead-letters/retry", "admin3",
                   json={"ids": [999999]})
    assert r.status_code == 404 and "999999" in r.get_json()["detail"]

    lrs.start()
    first = dead["dead_letters"][0]["id"]
    r = world.call("post", f"/api/v1/schools/{school}/lrs/dead-letters/discard", "admin3",
                   json={"ids": [first]})
    assert r.get_json() == {"count": 1}
    r = world.call("post", f"/api/v1/schools/{school}/lrs/dead-letters/retry", "admin1",
                   json={})
    assert r.get_json() == {"count": len(rows) - 1}  # and the sender ran (immediate mode)
    statuses = {r.id: r.status for r in _forwards(world)}
    assert statuses.pop(first) == ForwardStatus.DISCARDED
    assert set(statuses.values()) == {ForwardStatus.SENT}
    assert len(lrs.statements()) == len(rows) - 1
    with _factory(world)() as session:
        actions = list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert "xapi_forward_discard" in actions and "xapi_forward_retry" in actions
    assert actions.count("xapi_lrs") == 1


def test_wrong_credentials_give_a_dead_letter_with_a_clear_error(out_world, lrs) -> None:
    world = out_world
    _configure(world, lrs, secret="not-the-secret", max_tries=1)
    _take_test(world, answers=1)
    dead = world.call("get", f"/api/v1/schools/{world.schools['A']}/lrs/dead-letters",
                      "admin3").get_json()["dead_letters"]
    assert dead and all("refused the key and secret (401)" in d["last_error"] for d in dead)
    assert lrs.statements() == []
    # the right secret, a retry: they arrive
    _configure(world, lrs, secret=SECRET)
    world.call("post", f"/api/v1/schools/{world.schools['A']}/lrs/dead-letters/retry",
               "admin3", json={})
    assert len(lrs.statements()) == len(dead)


def test_an_erased_students_pending_forwards_are_dropped(out_world, lrs) -> None:
    world = out_world
    _configure(world, lrs)
    lrs.stop()
    _take_test(world, user="student2", answers=2)
    assert _forwards(world)
    r = world.call("post", f"/api/v1/students/{world.users['student2']}/erasure", "admin3",
                   json={"reason": "asked"})
    assert r.status_code == 201, r.get_json()
    r = world.call("post", f"/api/v1/erasures/{r.get_json()['id']}/confirm", "admin1")
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["outcome"]["deleted"]["xapi_forwards_dropped"] >= 2
    assert _forwards(world) == []
    lrs.start()
    _send(world, later=3600)
    assert lrs.statements() == []


def test_bad_settings_are_refused_naming_the_field(world) -> None:
    school = world.schools["A"]
    path = f"/api/v1/schools/{school}/lrs"
    cases = [({"endpoint": "ftp://lrs.example/xAPI/", "key": "k", "secret": "s"}, "endpoint"),
             ({"endpoint": "https://u:p@lrs.example/", "key": "k", "secret": "s"}, "endpoint"),
             ({"endpoint": "https://lrs.example/xAPI/", "key": "k"}, "secret"),
             ({"endpoint": "https://lrs.example/xAPI/", "key": "a:b", "secret": "s"}, "key"),
             ({"endpoint": "https://lrs.example/", "key": "k", "secret": "s",
               "xapi_version": "0.9"}, "xapi_version"),
             ({"endpoint": "https://lrs.example/", "key": "k", "secret": "s",
               "scope": "all"}, "scope"),
             ({"endpoint": "https://lrs.example/", "key": "k", "secret": "s",
               "max_tries": 0}, "max_tries")]
    for body, field_name in cases:
        r = world.call("put", path, "admin3", json=body)
        assert 400 <= r.status_code < 500, (body, r.get_json())
        assert field_name in json.dumps(r.get_json()), (body, r.get_json())
    assert world.call("get", path, "admin3").get_json()["configured"] is False
    assert world.call("get", f"/api/v1/schools/{school}/lrs/dead-letters",
                      "admin3").status_code == 404


def test_a_secret_stored_under_another_key_is_a_clear_error(out_world, lrs) -> None:
    world = out_world
    _configure(world, lrs, max_tries=1)
    world.app.config["XAPI_OUT_KEY"] = "another key entirely"
    _take_test(world, answers=1)
    dead = world.call("get", f"/api/v1/schools/{world.schools['A']}/lrs/dead-letters",
                      "admin3").get_json()["dead_letters"]
    assert dead and all("enter the secret again" in d["last_error"] for d in dead)


def test_what_leaves_has_no_name_and_no_email() -> None:
    box = SecretBox("k")
    body = {"id": "x", "actor": {"objectType": "Agent", "name": "Ann",
                                 "account": {"homePage": "https://s", "name": "p1"}},
            "verb": {"id": "v"}, "stored": "t", "authority": {"name": "cat-engine"},
            "version": "1.0.3",
            "object": {"objectType": "SubStatement",
                       "actor": {"objectType": "Agent", "mbox": "mailto:a@b.c"},
                       "verb": {"id": "v"},
                       "object": {"objectType": "Group", "name": "G",
                                  "member": [{"objectType": "Agent", "name": "Bo",
                                              "openid": "https://id/bo"}]}},
            "context": {"team": {"objectType": "Group", "mbox_sha1sum": "a" * 40}}}
    out = outgoing(body, box)
    text = json.dumps(out)
    for gone in ("Ann", "a@b.c", "Bo", "https://id/bo", "a" * 40, '"G"', "stored",
                 "authority", "version"):
        assert gone not in text
    assert out["actor"] == {"objectType": "Agent", "account": {"homePage": "https://s",
                                                               "name": "p1"}}
    # the same identifier gets the same pseudonym; another key, another one
    again = outgoing(body, box)
    assert again == out
    assert outgoing(body, SecretBox("other")) != out
