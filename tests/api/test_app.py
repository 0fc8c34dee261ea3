"""The application factory and the sign-in flow, through Flask's test client."""

from __future__ import annotations

import re

import pytest

from api.app import create_app
from tests.conftest import migrated_with_user


@pytest.fixture
def app(any_db_url: str):
    migrated_with_user(any_db_url, "ana", "right-password", "teacher", "Ana Lima")
    app = create_app({"TESTING": True, "DATABASE_URL": any_db_url, "SECRET_KEY": "test"})
    yield app
    app.extensions["cat_engine_db"]["engine"].dispose()


def _csrf(client) -> str:
    html = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_factory_takes_test_config_over_environment(monkeypatch, sqlite_url) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///ignored.db")
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "SECRET_KEY": "k"})
    assert app.testing
    assert str(app.extensions["cat_engine_db"]["engine"].url) == sqlite_url


def test_factory_reads_environment(monkeypatch, sqlite_url) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("SECRET_KEY", "from-env")
    app = create_app()
    assert app.config["SECRET_KEY"] == "from-env"
    assert str(app.extensions["cat_engine_db"]["engine"].url) == sqlite_url


def test_secret_key_is_generated_once_and_kept(tmp_path, sqlite_url) -> None:
    first = create_app({"DATABASE_URL": sqlite_url}).config["SECRET_KEY"]
    second = create_app({"DATABASE_URL": sqlite_url}).config["SECRET_KEY"]
    assert first == second and len(first) == 64
    key_file = tmp_path / "instance" / "secret_key"
    assert key_file.read_text() == first
    assert key_file.stat().st_mode & 0o077 == 0


def test_landing_page_has_a_labelled_sign_in_form(app) -> None:
    response = app.test_client().get("/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<label for="username">Username</label>' in html
    assert '<label for="password">Password</label>' in html
    assert 'id="username" name="username"' in html
    assert 'id="password" name="password" type="password"' in html
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_sign_in_and_out(app) -> None:
    client = app.test_client()
    token = _csrf(client)
    response = client.post(
        "/sign-in", data={"username": "ana", "password": "right-password", "csrf_token": token}
    )
    assert response.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "Welcome, Ana Lima" in page and "(teacher)" in page
    token = _csrf(client)
    client.post("/sign-out", data={"csrf_token": token})
    assert "Sign in" in client.get("/").get_data(as_text=True)


def test_wrong_password_re_renders_with_the_username_kept(app) -> None:
    client = app.test_client()
    token = _csrf(client)
    response = client.post(
        "/sign-in", data={"username": "ana", "password": "nope", "csrf_token": token}
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "do not match an account" in html
    assert 'value="ana"' in html


def test_missing_fields_are_named_next_to_the_fields(app) -> None:
    client = app.test_client()
    response = client.post("/sign-in", data={"csrf_token": _csrf(client)})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'id="username-error">Enter your username.' in html
    assert 'id="password-error">Enter your password.' in html


def test_form_post_without_csrf_token_is_refused(app) -> None:
    client = app.test_client()
    client.get("/")
    response = client.post("/sign-in", data={"username": "ana", "password": "right-password"})
    assert response.status_code == 400
    assert "Welcome" not in client.get("/").get_data(as_text=True)


def test_healthz_reports_database(app) -> None:
    assert app.test_client().get("/healthz").json == {"status": "ok", "database": "ok"}


def test_healthz_reports_unreachable_database(tmp_path) -> None:
    app = create_app(
        {"DATABASE_URL": f"sqlite:///{tmp_path}/missing-dir/x.db", "SECRET_KEY": "k"}
    )
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["database"] == "unreachable"


def test_sign_in_on_an_unmigrated_database_says_so(empty_sqlite_url) -> None:
    app = create_app({"DATABASE_URL": empty_sqlite_url, "SECRET_KEY": "k"})
    client = app.test_client()
    response = client.post(
        "/sign-in", data={"username": "a", "password": "b", "csrf_token": _csrf(client)}
    )
    assert response.status_code == 400
    assert "database is not ready" in response.get_data(as_text=True)


def test_a_bad_report_setting_stops_the_app_at_start(monkeypatch) -> None:
    """A mastery-model setting that is no positive number names itself when the app starts,
    rather than failing every report later."""
    monkeypatch.setenv("REPORT_HALF_LIFE_DAYS", "half a year")
    with pytest.raises(ValueError, match="REPORT_HALF_LIFE_DAYS must be a number"):
        create_app({"TESTING": True, "DATABASE_URL": "sqlite://"})
    monkeypatch.setenv("REPORT_HALF_LIFE_DAYS", "90")
    monkeypatch.setenv("REPORT_MASTERED_AT", "0.05")
    with pytest.raises(ValueError, match="REPORT_NOT_MASTERED_AT must be below"):
        create_app({"TESTING": True, "DATABASE_URL": "sqlite://"})
    monkeypatch.setenv("REPORT_MASTERED_AT", "0.95")
    app = create_app({"TESTING": True, "DATABASE_URL": "sqlite://"})
    assert app.config["REPORT_SETTINGS"].half_life_days == 90.0
    assert app.config["REPORT_SETTINGS"].mastered_at == 0.95
