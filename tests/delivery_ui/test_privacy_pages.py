"""The privacy note and consent pages: with the test client, then in Chromium."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.accounts import School, User
from storage.rights import Consent, PrivacyNote, StudentGroup
from tests.conftest import save_screenshot
from tests.delivery_ui.conftest import StudentWorld, csrf_of
from tests.delivery_ui.test_resource_pages import _serious, _sign_in


def _publish(world: StudentWorld, **form: str):
    admin = world.client_for("admin1")
    page = admin.get("/admin/privacy").get_data(as_text=True)
    data = {"title": "What we keep", "body": "- your answers\n- your drafts", "keep": "1",
            "csrf_token": csrf_of(page), **form}
    return admin, admin.post("/admin/privacy", data=data)


def test_the_note_is_published_and_read_by_anyone_from_every_footer(
        student_world: StudentWorld) -> None:
    world = student_world
    anonymous = world.app.test_client()
    assert "has not been published yet" in anonymous.get("/privacy").get_data(as_text=True)
    _, r = _publish(world, days_attempts="abc")
    assert r.status_code == 422 and "whole number of days" in r.get_data(as_text=True)
    _, r = _publish(world, days_attempts="365", title="")
    assert r.status_code == 422 and "Write a title." in r.get_data(as_text=True)
    _, r = _publish(world, days_attempts="365")
    assert r.status_code == 303
    _publish(world, body="Version two")
    html = anonymous.get("/privacy").get_data(as_text=True)
    assert "Version 2" in html and "Version two" in html and 'id="versions"' in html
    first = anonymous.get("/privacy?version=1").get_data(as_text=True)
    assert "<li>your answers</li>" in first and "This is an earlier version." in first
    assert "365 days" in first
    assert anonymous.get("/privacy?version=7").status_code == 404
    for user in (None, "student1", "teacher1", "assessor1"):
        home = world.client_for(user).get("/").get_data(as_text=True)
        assert 'href="/privacy"' in home, user
    assert world.client_for("teacher1").get("/admin/privacy").status_code == 403
    with world.db() as session:
        assert [n.retention for n in session.scalars(
            select(PrivacyNote).order_by(PrivacyNote.version))] == [{"attempts": 365}, {}]


def test_consents_on_the_admin_and_student_pages(student_world: StudentWorld) -> None:
    world = student_world
    sid = world.ids["users"]["student1"]
    admin = world.client_for("admin1")
    page = admin.get(f"/admin/students/{sid}/privacy").get_data(as_text=True)
    assert "Research: <strong>not given</strong>" in page
    r = admin.post(f"/admin/students/{sid}/privacy", data={
        "purpose": "demographics", "granted": "1", "note": "form signed by a parent",
        "csrf_token": csrf_of(page)})
    assert r.status_code == 303
    page = admin.get(f"/admin/students/{sid}/privacy").get_data(as_text=True)
    assert "Group information: <strong>given</strong>" in page
    r = admin.post(f"/admin/students/{sid}/groups", data={
        "variable": ["home_language", ""], "value": ["es", ""], "csrf_token": csrf_of(page)})
    assert r.status_code == 303
    assert admin.get(f"/admin/students/{world.ids['users']['teacher1']}/privacy"
                     ).status_code == 404
    # the student sees it, and may not change it until the school allows students to
    student = world.client_for("student1")
    mine = student.get("/my-privacy").get_data(as_text=True)
    assert "home_language: es" in mine and 'id="ask-school"' in mine
    r = student.post("/my-privacy", data={"purpose": "demographics", "granted": "0",
                                          "csrf_token": csrf_of(mine)})
    assert r.status_code == 403
    with world.db() as session:
        school = School(name="North", students_may_consent=True)
        session.add(school)
        session.flush()
        session.get(User, sid).school_id = school.id
    mine = student.get("/my-privacy").get_data(as_text=True)
    assert 'id="toggle-demographics"' in mine
    r = student.post("/my-privacy", data={"purpose": "demographics", "granted": "0",
                                          "csrf_token": csrf_of(mine)})
    assert r.status_code == 303
    with world.db() as session:
        assert session.scalars(select(StudentGroup)).all() == []  # withdrawn: deleted
        assert [c.granted for c in session.scalars(select(Consent).order_by(Consent.id))] == [
            True, False]


@pytest.mark.browser
def test_the_privacy_pages_in_chromium(sqlite_world: StudentWorld, live, page) -> None:
    world = sqlite_world
    _sign_in(page, live.url, "admin1", world.password)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live.url + "/admin/privacy")
    page.get_by_label("Title").fill("Your data: what we keep")
    page.get_by_label("The note").fill("We keep **your answers** to teach you.\n\n- answers")
    page.get_by_label("Test attempts and answers").fill("730")
    with page.expect_navigation():
        page.get_by_role("button", name="Publish").click()
    assert page.locator("h1").inner_text() == "Your data: what we keep"
    assert page.locator("#retention").inner_text() == "Test attempts and answers: 730 days"
    assert _serious(page) == []
    save_screenshot(page, "privacy-note")
    sid = world.ids["users"]["student1"]
    page.goto(f"{live.url}/admin/students/{sid}/privacy")
    page.locator("#note-research").fill("signed form")
    with page.expect_navigation():
        page.get_by_role("button", name="Give Research").click()
    assert "given" in page.locator("#consent-research h3").inner_text()
    assert _serious(page) == []
    save_screenshot(page, "privacy-student-consents")
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= 375")
    page.context.clear_cookies()
    _sign_in(page, live.url, "student1", world.password)
    page.goto(live.url + "/my-privacy")
    assert "given" in page.locator("#consent-research h3").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth <= 375")
    assert _serious(page) == []
    save_screenshot(page, "privacy-mine-375")
    page.context.add_cookies([{"name": "lang", "value": "es", "url": live.url}])
    page.goto(live.url + "/my-privacy")
    assert page.locator("h1").inner_text() == "Mi privacidad"
    assert _serious(page) == []
