"""The class dashboard page: who may open it, what it shows in English and Spanish, and how it
reads in Chromium at desktop width and at 375 px (the grid scrolls, the names stay)."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pytest
from axe_playwright_python.sync_playwright import Axe

from api.demo import take_test
from item_bank.models import AdaptiveTest
from storage import utcnow
from storage.accounts import User
from tests.conftest import save_screenshot
from tests.delivery_ui.conftest import StudentWorld


def _attempts(world: StudentWorld) -> None:
    """student1 took the test twice, student2 once (api.demo.take_test answers no pretest)."""
    users = world.ids["users"]
    with world.db() as session:
        test = session.get(AdaptiveTest, world.test_id)
        test.config = {k: v for k, v in test.config.items() if k != "pretest"}
    rng = np.random.default_rng(4)
    with world.db() as session:
        one, two = session.get(User, users["student1"]), session.get(User, users["student2"])
        now = utcnow()
        take_test(session, one, world.test_id, -0.5, now - timedelta(days=12), rng)
        take_test(session, one, world.test_id, 1.5, now - timedelta(days=1), rng)
        take_test(session, two, world.test_id, 0.3, now - timedelta(days=6), rng)


def _url(world: StudentWorld) -> str:
    return f"/teach/classes/{world.ids['class_id']}/dashboard"


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_page_for_its_teacher_and_nobody_else(sqlite_world: StudentWorld) -> None:
    _attempts(sqlite_world)
    # the report pages come from another part of the issue: names link to them once they exist
    sqlite_world.app.add_url_rule("/teach/students/<int:student_id>/report", "report_stub",
                                  lambda student_id: "")
    teacher = sqlite_world.client_for("teacher1")
    html = teacher.get(f"/teach/classes/{sqlite_world.ids['class_id']}").get_data(as_text=True)
    assert f'href="{_url(sqlite_world)}"' in html  # linked from the class page
    reply = teacher.get(_url(sqlite_world))
    assert reply.status_code == 200
    text = _text(reply.get_data(as_text=True))
    assert "Dashboard of class 7A" in text and "Student1" in text and "Student2" in text
    one = sqlite_world.ids["users"]["student1"]
    assert f'<a href="/teach/students/{one}/report">Student1</a>' in reply.get_data(as_text=True)
    assert re.search(r"\d+% [✓✗?] (mastered|not mastered yet|needs more evidence)", text)
    assert "too few to compare (fewer than 5 students)" in text  # one student per group
    teacher.set_cookie("lang", "es")
    text = _text(teacher.get(_url(sqlite_world)).get_data(as_text=True))
    assert "Panel de la clase 7A" in text and "demasiado pocos para comparar" in text
    other = sqlite_world.client_for("teacher2")
    assert other.get(_url(sqlite_world)).status_code == 404
    # a class whose one student has no evidence yet: said so, no empty grid
    reply = other.get(f"/teach/classes/{sqlite_world.ids['other_class_id']}/dashboard")
    assert reply.status_code == 200
    html = reply.get_data(as_text=True)
    assert "No student of this class has evidence yet." in html and "mastery-grid" not in html
    assert sqlite_world.client_for("student1").get(_url(sqlite_world)).status_code == 403


def _serious(page) -> list[str]:
    violations = Axe().run(page).response["violations"]
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
            for v in violations if v["impact"] in ("serious", "critical")]


@pytest.mark.browser
def test_the_page_in_chromium(sqlite_world: StudentWorld, live, page) -> None:
    _attempts(sqlite_world)
    page.goto(live.url + "/")
    page.get_by_label("Username").fill("teacher1")
    page.get_by_label("Password").fill(sqlite_world.password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live.url + f"/teach/classes/{sqlite_world.ids['class_id']}")
    with page.expect_navigation():
        page.get_by_role("link", name="Mastery dashboard").click()
    assert page.locator("h1").inner_text() == "Dashboard of class 7A"
    assert page.locator("#mastery-grid tbody tr").count() == 2
    assert page.locator("#mastery-grid td.cell-none").count() == 0  # both have every skill
    assert _serious(page) == []
    save_screenshot(page, "class-dashboard")
    # a phone: the page does not scroll sideways, the grid does, and the names stay in view
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= 375")
    wrap = page.locator(".grid-wrap")
    assert wrap.evaluate("w => w.scrollWidth > w.clientWidth")
    name = page.locator("#mastery-grid tbody th").first
    left = name.bounding_box()["x"]
    wrap.evaluate("w => { w.scrollLeft = w.scrollWidth; }")
    assert name.bounding_box()["x"] == pytest.approx(left, abs=1)
    assert name.is_visible()
    wrap.evaluate("w => { w.scrollLeft = 0; }")
    assert _serious(page) == []
    save_screenshot(page, "class-dashboard-375")
    # in Spanish
    page.context.add_cookies([{"name": "lang", "value": "es", "url": live.url}])
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live.url + _url(sqlite_world))
    assert page.locator("h1").inner_text() == "Panel de la clase 7A"
    assert _serious(page) == []
    save_screenshot(page, "class-dashboard-es")
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= 375")
    save_screenshot(page, "class-dashboard-es-375")
