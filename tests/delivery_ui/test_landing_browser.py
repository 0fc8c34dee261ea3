"""The landing page in a real Chromium: the sign-in form is there, labelled, and works."""

from __future__ import annotations

import pytest

from api.app import create_app
from tests.conftest import LiveServer, migrated_with_user, save_screenshot

pytestmark = pytest.mark.browser


@pytest.fixture
def server(sqlite_url):
    migrated_with_user(sqlite_url, "student1", "demo-password", "student", "Student 1")
    app = create_app({"DATABASE_URL": sqlite_url, "SECRET_KEY": "browser-test"})
    with LiveServer(app) as live:
        yield live


def test_sign_in_form_is_found_by_its_labels(page, server) -> None:
    page.goto(server.url + "/")
    assert page.title().startswith("Sign in")
    username = page.get_by_label("Username")
    password = page.get_by_label("Password")
    assert username.is_visible() and password.is_visible()
    assert password.get_attribute("type") == "password"
    assert page.get_by_role("button", name="Sign in").is_visible()
    save_screenshot(page, "landing-sign-in")


def test_sign_in_with_the_keyboard(page, server) -> None:
    page.goto(server.url + "/")
    focused = []
    for _ in range(3):  # skip link, brand link, then the username field
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id || document.activeElement.text"))
    assert focused[-1] == "username", focused
    page.keyboard.type("student1")
    page.keyboard.press("Tab")
    page.keyboard.type("demo-password")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/my-tests")  # students land on their tests
    assert page.get_by_role("heading", name="My tests").is_visible()
    assert page.get_by_role("status").inner_text() == "Signed in as Student 1."
    save_screenshot(page, "landing-signed-in")


def test_wrong_password_shows_an_alert_and_keeps_the_username(page, server) -> None:
    page.goto(server.url + "/")
    page.get_by_label("Username").fill("student1")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    assert "do not match an account" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Username").input_value() == "student1"
    save_screenshot(page, "landing-sign-in-error")


def test_too_many_failures_lock_the_form_with_a_message(page, sqlite_url) -> None:
    """The 429 page: the form again, the message as an alert (in the chosen language), the
    username kept, accessible and readable at 375 px."""
    from axe_playwright_python.sync_playwright import Axe

    migrated_with_user(sqlite_url, "student1", "demo-password", "student", "Student 1")
    app = create_app({"DATABASE_URL": sqlite_url, "SECRET_KEY": "browser-test",
                      "SIGN_IN_RATE_LIMIT": "2 per 10 minutes"})
    with LiveServer(app) as live:
        page.set_viewport_size({"width": 375, "height": 800})
        for password in ("wrong", "wrong", "demo-password"):
            page.goto(live.url + "/")
            page.get_by_label("Username").fill("student1")
            page.get_by_label("Password").fill(password)
            with page.expect_response(lambda r: r.url.endswith("/sign-in")) as reply:
                page.get_by_role("button", name="Sign in").click()
        assert reply.value.status == 429
        assert 500 <= int(reply.value.headers["retry-after"]) <= 600
        alert = page.get_by_role("alert").inner_text()
        assert alert == "Too many failed sign-ins. Please wait 10 minutes and try again."
        assert page.get_by_label("Username").input_value() == "student1"
        assert page.evaluate("document.documentElement.scrollWidth <= 375")
        violations = Axe().run(page).response["violations"]
        assert [v["id"] for v in violations if v["impact"] in ("serious", "critical")] == []
        save_screenshot(page, "landing-sign-in-locked-375")
        page.context.add_cookies([{"name": "lang", "value": "es", "url": live.url}])
        page.goto(live.url + "/")
        page.get_by_label("Nombre de usuario").fill("student1")
        page.get_by_label("Contraseña").fill("demo-password")
        page.get_by_role("button", name="Iniciar sesión").click()
        assert page.get_by_role("alert").inner_text().startswith(
            "Demasiados intentos fallidos de iniciar sesión. Espere 10 minutos")
        save_screenshot(page, "landing-sign-in-locked-es")
