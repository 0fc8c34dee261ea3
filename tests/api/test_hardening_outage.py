"""A database outage is a 503 problem with Retry-After on every API route, never a 500.

A probe that stopped PostgreSQL under load found 129 of 139 API errors to be 500s (only a
connection found dead was a 503). These tests stop the database in two real ways: an app pointed
at a port where no server listens, and a live PostgreSQL database that stops accepting
connections while the app is using it."""

from __future__ import annotations

import os
import re

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from api.app import create_app
from api.db import engine_of


def _api_routes(app) -> list[tuple[str, str]]:
    out = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            path = re.sub(r"<[^>]+>", "1", rule.rule)
            out += [(m, path) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return out


def _is_unavailable(r, route) -> None:
    assert r.status_code == 503, (route, r.status_code, r.get_data(as_text=True)[:300])
    assert r.mimetype == "application/problem+json", route
    assert int(r.headers["Retry-After"]) >= 1, route
    assert "retry" in r.get_json()["detail"], route


@pytest.mark.postgres
def test_no_server_listening_is_a_503_on_every_api_route(postgres_url) -> None:
    url = make_url(postgres_url).set(host="127.0.0.1", port=1)  # nothing listens on port 1
    app = create_app({"TESTING": True, "SECRET_KEY": "test",
                      "DATABASE_URL": url.render_as_string(hide_password=False)})
    client = app.test_client()
    routes = _api_routes(app)
    assert len(routes) > 40
    reached = 0
    for method, path in routes:
        for headers in ({"Authorization": "Bearer some-token", "Idempotency-Key": "k1"}, {}):
            r = client.open(path, method=method, json={}, headers=headers)
            assert r.status_code != 500, (method, path, r.get_data(as_text=True)[:300])
            if r.status_code == 503:
                _is_unavailable(r, (method, path))
                reached += 1
    assert reached > 40  # every route that needs the database said so
    r = client.post("/api/v1/auth/token", json={"username": "admin1", "password": "x"})
    _is_unavailable(r, "sign in")
    assert r.headers["Retry-After"] == "5"
    assert client.get("/api/v1/openapi.json").status_code == 200
    engine_of(app).dispose()


def test_a_database_that_stops_accepting_connections_is_503_until_it_is_back(world) -> None:
    url = world.app.config["DATABASE_URL"]
    if not url.startswith("postgresql"):
        pytest.skip("SQLite has no server to stop")
    name = make_url(url).database
    assert world.call("get", "/api/v1/attempts", "student1").status_code == 200  # pooled
    world.token("assessor1")
    admin = create_engine(os.environ["TEST_DATABASE_URL"], isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:  # what an outage does: no new connections, and
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            connection.execute(text(  # every open one dropped
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": name})
            statuses = []
            for method, path, kwargs in [
                ("get", "/api/v1/attempts", {}),
                ("get", "/api/v1/attempts", {}),
                ("post", "/api/v1/attempts", {"json": {"test_id": world.test_id}}),
                ("get", "/api/v1/tests", {}),
                ("get", "/api/v1/items", {}),
            ]:
                user = "assessor1" if path.endswith("items") else "student1"
                r = world.call(method, path, user, **kwargs)
                _is_unavailable(r, path)
                statuses.append(r.headers["Retry-After"])
            assert statuses[0] == "1"  # the dead pooled connection: a reset
            assert statuses[1:] == ["5"] * 4  # then the outage itself
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
    finally:
        admin.dispose()
    assert world.call("get", "/api/v1/attempts", "student1").status_code == 200
