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
