"""The pages of learners' rights: a student downloads their data from their report; an
administrator requests an erasure at /admin/erasures, cannot confirm their own request, and a
second administrator confirms it. In Chromium: axe, screenshots at desktop width and 375 px,
English and Spanish."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from storage.accounts import Role, User
from storage.rights import AuditEntry
from tests.conftest import save_screenshot
from tests.delivery_ui.conftest import StudentWorld, csrf_of
from tests.delivery_ui.test_resource_pages import _serious, _sign_in, text_of


def _admin2(world: StudentWorld) -> None:
    with world.db() as session:
        session.add(User(username="admin7", display_name="Admin7", role=Role.ADMIN,
                         password_hash=generate_password_hash(world.password,
                                                              method="pbkdf2:sha256:1000")))


def test_student_downloads_their_data(student_world: StudentWorld) -> None:
    world = student_world
    sid, other = world.ids["users"]["student1"], world.ids["users"]["student2"]
    client = world.client_for("student1")
    report = client.get("/my-report").get_data(as_text=True)
    assert f"/students/{sid}/my-data.json" in report and "Download my data" in report
    r = client.get(f"/students/{sid}/my-data.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert "attachment" in r.headers["Content-Disposition"]
    doc = json.loads(r.data)
    assert doc["profile"]["username"] == "student1" and doc["student_id"] == sid
    assert client.get(f"/students/{other}/my-data.json").status_code == 404
    assert world.client_for("teacher1").get(f"/students/{sid}/my-data.json").status_code == 403
    assert world.client_for("admin1").get(f"/students/{sid}/my-data.json").status_code == 200
    with world.db() as session:
        actors = session.scalars(select(AuditEntry.actor_id).where(
            AuditEntry.action == "export_read")).all()
        assert sorted(actors) == sorted([sid, world.ids["users"]["admin1"]])


def test_request_confirm_and_refusals(student_world: StudentWorld) -> None:
    world = student_world
    _admin2(world)
    sid = world.ids["users"]["student1"]
    admin = world.client_for("admin1")
    page = admin.get("/admin/erasures").get_data(as_text=True)
    assert "No erasure is waiting." in page
    token = csrf_of(page)
    r = admin.post("/admin/erasures", data={"student_id": str(sid), "reason": "",
                                            "csrf_token": token})
    assert r.status_code == 422 and "A reason is required" in text_of(r.get_data(as_text=True))
    r = admin.post("/admin/erasures", data={"student_id": str(world.ids["users"]["teacher1"]),
                                            "reason": "x", "csrf_token": token})
    assert r.status_code == 422 and "staff account" in r.get_data(as_text=True)
    r = admin.post("/admin/erasures", data={"student_id": str(sid), "reason": "Moved away",
                                            "csrf_token": token})
    assert r.status_code == 303
    page = admin.get("/admin/erasures").get_data(as_text=True)
    assert "Another administrator must confirm it." in page and "Moved away" in page
    [erasure_id] = [int(x) for x in __import__("re").findall(r'id="confirm-(\d+)"', page)]
    r = admin.post(f"/admin/erasures/{erasure_id}/confirm", data={"csrf_token": token})
    assert r.status_code == 403 and "different administrator" in r.get_data(as_text=True)
    assert world.client_for("teacher1").get("/admin/erasures").status_code == 403
    second = world.client_for("admin7")
    token2 = csrf_of(second.get("/admin/erasures").get_data(as_text=True))
    r = second.post(f"/admin/erasures/{erasure_id}/confirm", data={"csrf_token": token2})
    assert r.status_code == 303
    page = second.get("/admin/erasures").get_data(as_text=True)
    assert "is erased" in page and "erased on" in page
    with world.db() as session:
        assert session.get(User, sid).erased_at is not None
    # the student's pages: they cannot sign in any more
    client = world.app.test_client()
    token = csrf_of(client.get("/").get_data(as_text=True))
    r = client.post("/sign-in", data={"username": "student1", "password": world.password,
                                      "csrf_token": token})
    assert r.status_code != 302


@pytest.mark.browser
def test_the_pages_in_chromium(sqlite_world: StudentWorld, live, page) -> None:
    world = sqlite_world
    sid = world.ids["users"]["student1"]
    _sign_in(page, live.url, "student1", world.password)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live.url + "/my-report")
    assert page.locator("#export-link").is_visible()
    assert _serious(page) == []
    save_screenshot(page, "my-data-report")
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= 375")
    save_screenshot(page, "my-data-report-375")
    page.context.clear_cookies()
    _sign_in(page, live.url, "admin1", world.password)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live.url}/admin/erasures?student_id={sid}")
    page.get_by_label("Reason").fill("The family asked for it (GDPR art. 17)")
    with page.expect_navigation():
        page.get_by_role("button", name="Request erasure").click()
    assert page.locator("#pending-erasures tbody tr").count() == 1
    assert _serious(page) == []
    save_screenshot(page, "erasures")
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= 375")
    assert _serious(page) == []
    save_screenshot(page, "erasures-375")
    page.context.add_cookies([{"name": "lang", "value": "es", "url": live.url}])
    page.goto(live.url + "/admin/erasures")
    assert page.locator("h1").inner_text() == "Borrados"
    assert _serious(page) == []
    save_screenshot(page, "erasures-es-375")


@pytest.mark.browser
def test_the_audit_log_in_chromium(sqlite_world: StudentWorld, live, page) -> None:
    world = sqlite_world
    _sign_in(page, live.url, "teacher1", world.password)
    page.context.clear_cookies()
    _sign_in(page, live.url, "admin1", world.password)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live.url + "/admin/audit")
    rows = page.locator("#audit-entries tbody tr")
    # newest first: the administrator's sign-in, then the teacher's
    assert rows.count() == 2
    assert "Admin" in rows.nth(0).inner_text() and "Teacher" in rows.nth(1).inner_text()
    page.get_by_label("Action").select_option("sign_in")
    page.get_by_label("By user number").fill(str(world.ids["users"]["teacher1"]))
    with page.expect_navigation():
        page.get_by_role("button", name="Show").click()
    assert page.locator("#audit-entries tbody tr").count() == 1
    assert _serious(page) == []
    save_screenshot(page, "audit-log")
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= 375")
    assert _serious(page) == []
    save_screenshot(page, "audit-log-375")
    page.context.add_cookies([{"name": "lang", "value": "es", "url": live.url}])
    page.goto(live.url + "/admin/audit")
    assert page.locator("h1").inner_text() == "Registro de auditoría"
    assert _serious(page) == []
