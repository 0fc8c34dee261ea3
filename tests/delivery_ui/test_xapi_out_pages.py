"""The page of a school's learning record store, in Chromium: settings with their errors, the
outbox's counts and the dead letters (retry), without serious axe findings, in English and
Spanish."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from evidence.models import ForwardStatus, XapiForward
from tests.api.conftest import PASSWORD
from tests.conftest import save_screenshot
from tests.delivery_ui.conftest import StudentWorld
from tests.delivery_ui.test_resource_pages import _serious, _sign_in


def _a_dead_letter(world: StudentWorld) -> None:
    """student1 answers once (its statement gets a forward row), which is then given up."""
    client = world.app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": "student1",
                                                    "password": PASSWORD}).get_json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    attempt = client.post("/api/v1/attempts", json={"test_id": world.test_id},
                          headers=headers).get_json()
    reply = client.post(f"/api/v1/attempts/{attempt['id']}/responses",
                        json={"item_id": attempt["item"]["id"], "response": 1},
                        headers={**headers, "Idempotency-Key": "k1"})
    assert reply.status_code == 200, reply.get_json()
    with world.db() as session:
        first = session.scalar(select(XapiForward.id).order_by(XapiForward.id))
        session.execute(update(XapiForward).where(XapiForward.id == first).values(
            status=ForwardStatus.DEAD, tries=8,
            last_error="the LRS refused the key and secret (401): check the school's LRS "
                       "settings"))


@pytest.mark.browser
def test_the_lrs_page_in_chromium(sqlite_world: StudentWorld, live, page) -> None:
    world = sqlite_world
    school = world.ids["schools"]["A"]
    _sign_in(page, live.url, "admin3", world.password)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live.url}/admin/schools/{school}/lrs")
    page.get_by_label("xAPI address of the LRS").fill("ftp://lrs.example.org/")
    page.get_by_label("Key", exact=True).fill("school-a")
    page.get_by_label("Secret", exact=True).fill("s3cret-value")
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    assert "http:// or https://" in page.locator("main").inner_text()
    assert page.get_by_label("Secret", exact=True).input_value() == ""  # never echoed
    page.get_by_label("xAPI address of the LRS").fill("http://127.0.0.1:9/xAPI/")
    page.get_by_label("Secret", exact=True).fill("s3cret-value")
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    assert "is saved" in page.locator("main").inner_text()
    assert "s3cret-value" not in page.content()
    _a_dead_letter(world)
    page.reload()
    assert page.locator("#count-dead").inner_text() == "1"
    assert "refused the key and secret (401)" in page.locator("table").inner_text()
    assert _serious(page) == []
    save_screenshot(page, "xapi-out-lrs")
    page.locator("table input[type=checkbox]").first.check()
    with page.expect_navigation():
        page.get_by_role("button", name="Send again").click()
    assert "1 statement(s) will be sent again" in page.locator("main").inner_text()
    assert page.locator("#count-dead").inner_text() == "0"
    page.set_viewport_size({"width": 375, "height": 800})
    assert _serious(page) == []
    page.context.add_cookies([{"name": "lang", "value": "es", "url": live.url}])
    page.goto(f"{live.url}/admin/schools/{school}/lrs")
    assert page.locator("h1").inner_text().startswith("Almacén de registros de aprendizaje")
    save_screenshot(page, "xapi-out-lrs-es-375")
    page.goto(f"{live.url}/admin/schools/{world.ids['schools']['B']}/lrs")
    assert page.locator("h1").inner_text() != "" and "Almacén" not in page.locator(
        "h1").inner_text()  # another school: not found
