"""What the API sends: times with their zone, no caching of personal data, HSTS over HTTPS, an
OpenAPI document that names the error media type actually sent."""

from __future__ import annotations

import http
import re

import pytest

ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?")


def _times(value, path="") -> list[tuple[str, str]]:
    """Every ISO 8601 date-time string in a JSON document, with where it is."""
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _times(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [t for k, v in enumerate(value) for t in _times(v, f"{path}[{k}]")]
    if isinstance(value, str) and ISO_TIME.match(value):
        return [(path, value)]
    return []


def _zoned(text: str) -> bool:
    return text.endswith("Z") or re.search(r"[+-]\d\d:\d\d$", text) is not None


def test_every_time_the_api_sends_has_a_zone(world) -> None:
    """On SQLite (which stores times without a zone) as on PostgreSQL."""
    replies = []

    def call(method, path, user, **kwargs):
        r = world.call(method, path, user, **kwargs)
        assert r.status_code < 300, (path, r.get_json())
        replies.append((f"{method} {path}", r.get_json()))
        return r.get_json()

    attempt = call("post", "/api/v1/attempts", "student1", json={"test_id": world.test_id})
    r = world.answer("student1", attempt["id"], attempt["item"]["id"], 1)
    replies.append(("answer", r.get_json()))
    call("get", f"/api/v1/attempts/{attempt['id']}", "student1")
    call("get", "/api/v1/attempts", "student1")
    call("get", f"/api/v1/classes/{world.class_id}/attempts", "teacher1")
    call("get", "/api/v1/tests", "assessor1")
    call("get", f"/api/v1/tests/{world.test_id}", "assessor1")
    call("patch", f"/api/v1/tests/{world.test_id}", "assessor1", json={"description": "x"})
    call("get", "/api/v1/users", "admin1")
    call("get", f"/api/v1/items/{world.items['IT-001']}", "assessor1")
    seen = [(where, path, t) for where, body in replies for path, t in _times(body)]
    assert len(seen) > 20
    naive = [s for s in seen if not _zoned(s[2])]
    assert not naive, naive


def test_api_replies_are_not_cached_but_the_openapi_document_may_be(world) -> None:
    for path, user in [("/api/v1/me", "student1"), ("/api/v1/attempts", "student1"),
                       ("/api/v1/users", "admin1"), ("/api/v1/nothing-here", None)]:
        r = world.call("get", path, user)
        assert r.headers.get("Cache-Control") == "no-store", (path, r.status_code)
    r = world.client.post("/api/v1/auth/token", json={"username": "student1", "password": "x"})
    assert r.status_code == 401 and r.headers["Cache-Control"] == "no-store"
    r = world.client.get("/api/v1/openapi.json")
    assert r.status_code == 200 and "no-store" not in r.headers.get("Cache-Control", "")
    assert "no-store" not in world.client.get("/sign-in").headers.get("Cache-Control", "")


def test_hsts_is_sent_over_https_only(world) -> None:
    assert "Strict-Transport-Security" not in world.client.get("/sign-in").headers
    r = world.client.get("/sign-in", base_url="https://localhost")
    assert r.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    world.app.config["SESSION_COOKIE_SECURE"] = True  # served over HTTPS, whatever reached us
    assert "Strict-Transport-Security" in world.client.get("/api/v1/openapi.json").headers


def test_behind_a_trusted_proxy_the_forwarded_scheme_counts(any_db_url) -> None:
    from api.app import create_app
    from api.db import engine_of

    plain = create_app({"TESTING": True, "DATABASE_URL": any_db_url, "SECRET_KEY": "t"})
    proxied = create_app({"TESTING": True, "DATABASE_URL": any_db_url, "SECRET_KEY": "t",
                          "CAT_ENGINE_PROXIES": 1})
    forwarded = {"X-Forwarded-Proto": "https"}
    # Without the setting a client cannot claim HTTPS; with it, the proxy's word is taken.
    assert "Strict-Transport-Security" not in plain.test_client().get(
        "/sign-in", headers=forwarded).headers
    assert "Strict-Transport-Security" in proxied.test_client().get(
        "/sign-in", headers=forwarded).headers
    for app in (plain, proxied):
        engine_of(app).dispose()
    with pytest.raises(ValueError, match="CAT_ENGINE_PROXIES"):
        create_app({"DATABASE_URL": any_db_url, "SECRET_KEY": "t", "CAT_ENGINE_PROXIES": "x"})


def test_the_openapi_document_names_problem_json_for_errors(world) -> None:
    spec = world.client.get("/api/v1/openapi.json").get_json()
    errors = [r for name, r in spec["components"]["responses"].items()
              if name == "DEFAULT_ERROR" or http.HTTPStatus[name] >= 400]
    for ops in spec["paths"].values():
        for op in ops.values():
            if isinstance(op, dict):
                errors += [r for code, r in op.get("responses", {}).items() if code[0] in "45"]
    error_types = {t for r in errors for t in r.get("content", {})}
    assert error_types == {"application/problem+json"}, error_types
    assert "UNPROCESSABLE_ENTITY" in spec["components"]["responses"]
    r = world.call("post", "/api/v1/tests", "assessor1", json={"name": 5})
    assert r.status_code == 422 and r.mimetype == "application/problem+json"
