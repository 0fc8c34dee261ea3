"""Hostile request bodies found by a probe (schemathesis, hand-made files): each was a 500 before
any check ran, and is now a 400 or 422 problem naming what is wrong, on every route."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import func, select

from api.db import engine_of
from item_bank.models import ResponseUpload
from storage import session_factory, session_scope

# A part whose name ends in an escaped quote: werkzeug finds no name in it (None).
BAD_MULTIPART = (b'--XX\r\nContent-Disposition: form-data; name="file\\"\r\n\r\nabc\r\n'
                 b"--XX--\r\n")
HOSTILE_JSON = {
    "nested 1,000 deep": ("[" * 1000 + "]" * 1000, "json", "nested too deeply"),
    "nested 100 deep": ('{"a": ' + "[" * 100 + "]" * 100 + "}", "json.a" + "[0]" * 63,
                        "nested too deeply"),
    "an integer of 4,400 digits": ('{"username": ' + "9" * 4400 + ', "password": "x"}',
                                   "json.username", "4,400 digits"),
    "a lone surrogate": ('{"username": "ab\\ud800", "password": "x"}', "json.username",
                         "lone UTF-16 surrogate"),
    "a lone low surrogate in a key": ('{"x\\udc00y": 1}', "json.x\\udc00y",
                                      "lone UTF-16 surrogate"),
}


def _routes(app) -> list[tuple[str, str]]:
    """Every route that takes a body, with 1 for each id in its path."""
    out = []
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<[^>]+>", "1", rule.rule)
        out += [(m, path) for m in sorted(rule.methods & {"POST", "PUT", "PATCH"})]
    return out


def _is_problem(r, status: int, field: str | None, phrase: str) -> None:
    body = r.get_json(force=True)
    assert r.status_code == status, (r.status_code, body)
    assert r.mimetype == "application/problem+json"
    assert phrase in body["detail"], body
    if field is not None:
        assert body["errors"][0]["field"] == field, body


def test_hostile_bodies_are_refused_by_name_on_every_route(world) -> None:
    routes = _routes(world.app)
    assert len(routes) > 25
    token = world.token("admin1")
    for method, path in routes:
        for headers in ({}, {"Authorization": f"Bearer {token}"}):
            r = world.client.open(path, method=method, data=BAD_MULTIPART, headers={
                **headers, "Content-Type": "multipart/form-data; boundary=XX"})
            if path.startswith("/api/"):
                _is_problem(r, 400, "multipart", "has no name")
            else:
                assert r.status_code == 400 and b"has no name" in r.data, (path, r.data)
            for body, field, phrase in HOSTILE_JSON.values():
                r = world.client.open(path, method=method, data=body, headers={
                    **headers, "Content-Type": "application/json"})
                if path.startswith("/api/"):
                    _is_problem(r, 400, field, phrase)
                else:
                    assert r.status_code == 400 and phrase.encode() in r.data, (path, r.data)


@pytest.mark.parametrize("case", list(HOSTILE_JSON))
def test_each_hostile_json_body_is_a_400_problem(world, case) -> None:
    body, field, phrase = HOSTILE_JSON[case]
    r = world.client.post("/api/v1/auth/token", data=body,
                          headers={"Content-Type": "application/json"})
    _is_problem(r, 400, field, phrase)


def test_what_is_allowed_still_passes(world) -> None:
    """A surrogate pair is one character (an emoji), a long integer within limits is a number
    the schema judges (422 naming the field), and a NUL deep in a body is still found."""
    r = world.call("post", "/api/v1/items", "assessor1", data=(
        '{"code": "EMO-1", "stem": "Which is a smile? \\ud83d\\ude00", "options": ["a", "b"], '
        '"key": 0, "skill": "algebra"}'), headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["stem"].endswith("\U0001F600")
    r = world.call("post", "/api/v1/items", "assessor1", data=(
        '{"code": "BIG-1", "stem": "s", "options": ["a", "b"], "key": ' + "9" * 999
        + ', "skill": "algebra"}'), headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"].endswith("key")
    deep = '{"config": ' + '{"a": ' * 40 + '"x\\u0000"' + "}" * 40 + "}"
    r = world.call("post", "/api/v1/tests", "assessor1", data=deep,
                   headers={"Content-Type": "application/json"})
    _is_problem(r, 422, "json.config" + ".a" * 40, "NUL character")


def _uploads(world) -> int:
    with session_scope(session_factory(engine_of(world.app))) as session:
        return session.scalar(select(func.count()).select_from(ResponseUpload))


@pytest.mark.parametrize("content, where", [
    ("person_id,item_id,response\nP1,IT-000,1\nP2,IT-0\x0001,0\n", "row 3, column 2 ('item_id')"),
    ("person,IT-000,IT-001\nP1,1,0\nP2,0,1\x00\n", "row 3, column 3 ('IT-001')"),
    ("person,IT-000,IT-0\x0001\nP1,1,0\n", "row 1, column 3 ('IT-0\\\\001')"),
])
def test_a_nul_in_a_response_file_is_refused_naming_row_and_column(world, content,
                                                                    where) -> None:
    before = _uploads(world)
    r = world.call("post", "/api/v1/calibration/uploads", "assessor1",
                   content_type="multipart/form-data",
                   data={"file": (io.BytesIO(content.encode()), "responses.csv")})
    _is_problem(r, 422, "file", where)
    assert "NUL character" in r.get_json()["detail"]
    assert _uploads(world) == before
