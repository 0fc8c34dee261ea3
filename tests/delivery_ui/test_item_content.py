"""Item stems in Chromium: the demo's "reading a table" items show a real table (header cells,
one row per day, numbers right-aligned) on the student's question page and the assessor's item
page, at desktop width and at 375 px, with nothing serious for axe; stems cannot inject markup."""

from __future__ import annotations

from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from sqlalchemy import select

from api.app import create_app
from api.db import engine_of
from api.demo import DEMO_PASSWORD, build_demo
from evidence.models import Assignment
from item_bank.models import Item
from item_bank.services import DELIVERIES, save_test
from storage import make_engine, session_factory, session_scope
from storage.accounts import SchoolClass
from tests.conftest import LiveServer, save_screenshot

pytestmark = pytest.mark.browser

TABLES_TEST = "Reading tables"
DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 375, "height": 740}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small demo, plus a test of its table items assigned to Year 8 (student1's class)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('content') / 'demo.sqlite3'}"
    engine = make_engine(url)
    build_demo(engine, n_items=36)
    with session_scope(session_factory(engine)) as session:
        test = save_test(session, None, name=TABLES_TEST, description="Tables only",
                         config={"selection": {"method": "mfi"},
                                 "stopping": {"max_items": 3, "min_items": 3}},
                         bank_filter={"skills": ["tables"]}, cut_scores={})
        klass = session.scalar(select(SchoolClass).where(SchoolClass.name == "Year 8 Maths"))
        session.flush()
        session.add(Assignment(class_id=klass.id, test_id=test.id))
        item = session.scalar(select(Item).where(Item.skill == "tables").order_by(Item.id))
        info = {"url": url, "item_id": item.id}
    engine.dispose()
    return info


@pytest.fixture(scope="module")
def live(demo):
    DELIVERIES.clear()
    app = create_app({"TESTING": True, "DATABASE_URL": demo["url"], "SECRET_KEY": "content"})
    with LiveServer(app) as server:
        yield server
    engine_of(app).dispose()


def _sign_in(page, base: str, username: str) -> None:
    page.goto(base + "/")
    page.fill("#username", username)
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation():
        page.locator("form button[type=submit]").first.click()


def _check_table(page, name: str, whole_page: bool = True) -> None:
    """The stem's table as a reader gets it, axe, and screenshots at both widths."""
    stem = page.locator(".stem")
    table = stem.locator("table")
    assert table.count() == 1
    headers = table.locator("thead th")
    assert headers.all_inner_texts() == ["Day", "Number"]
    assert {headers.nth(i).get_attribute("scope") for i in range(2)} == {"col"}
    assert page.get_by_role("columnheader", name="Number").count() == 1
    rows = table.locator("tbody tr")
    assert 3 <= rows.count() <= 7
    days = rows.locator("td:first-child").all_inner_texts()
    assert days[0] == "Monday" and all(d.endswith("day") for d in days)
    assert all(n.isdigit() for n in rows.locator("td:last-child").all_inner_texts())
    align = page.evaluate("getComputedStyle(document.querySelector('.stem tbody td:last-child'))"
                          ".textAlign")
    assert align == "right"
    assert "|" not in stem.inner_text()  # no Markdown left over
    violations = [v for v in Axe().run(page).response["violations"]
                  if v["impact"] in ("serious", "critical")]
    assert violations == [], violations
    save_screenshot(page, f"{name}-desktop")
    page.set_viewport_size(PHONE)
    stem_right = page.evaluate("document.querySelector('.stem').getBoundingClientRect().right")
    assert stem_right <= PHONE["width"], f"the stem reaches {stem_right} px at 375 px"
    assert page.evaluate("(w => w.scrollWidth <= w.clientWidth)"
                         "(document.querySelector('.table-wrap'))"), "the table scrolls at 375 px"
    if whole_page:  # (the staff pages' own tables and navigation are wider than a phone)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page scrolls sideways by {overflow} px at 375 px"
    save_screenshot(page, f"{name}-375px")
    page.set_viewport_size(DESKTOP)


def test_a_table_item_on_the_student_page(live, browser) -> None:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    try:
        _sign_in(page, live.url, "student1")
        page.goto(live.url + "/my-tests")
        card = page.locator("li", has_text=TABLES_TEST).last
        with page.expect_navigation():
            card.get_by_role("button", name="Start").click()
        page.wait_for_selector("#question-heading")
        assert page.get_by_role("radiogroup").count() == 1
        _check_table(page, "item-table-student")
    finally:
        context.close()


def test_a_table_item_on_the_assessor_item_page(live, demo, browser) -> None:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    try:
        _sign_in(page, live.url, "assessor1")
        page.goto(f"{live.url}/assess/items/{demo['item_id']}")
        assert page.locator("h1").inner_text().startswith("Item table-")
        _check_table(page, "item-table-assessor", whole_page=False)
    finally:
        context.close()


def test_a_stem_cannot_inject_markup(demo) -> None:
    """Raw HTML and script links in a stem show as text on both pages."""
    evil = ("<script>alert(1)</script> [x](javascript:alert(1)) <img src=x onerror=alert(2)>"
            "\n\n| a |\n| - |\n| <b>bold</b> |")
    engine = make_engine(demo["url"])
    with session_scope(session_factory(engine)) as session:
        item = session.get(Item, demo["item_id"])
        original = item.stem
        item.stem = evil
    engine.dispose()
    app = create_app({"TESTING": True, "DATABASE_URL": demo["url"], "SECRET_KEY": "content"})
    try:
        client = app.test_client()
        client.post("/sign-in", data={"username": "assessor1", "password": DEMO_PASSWORD,
                                      "csrf_token": _csrf(client)})
        html = client.get(f"/assess/items/{demo['item_id']}").get_data(as_text=True)
        stem = html[html.index('<div class="stem">'):html.index("</section>")]
        assert "<script>" not in stem and "<img" not in stem and "<b>" not in stem
        assert "javascript:" not in stem.replace("[x](javascript:alert(1))", "")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in stem
        assert '<th scope="col">a</th>' in stem and "<td>&lt;b&gt;bold&lt;/b&gt;</td>" in stem
    finally:
        engine_of(app).dispose()
        engine = make_engine(demo["url"])
        with session_scope(session_factory(engine)) as session:
            session.get(Item, demo["item_id"]).stem = original
        engine.dispose()


def _csrf(client) -> str:
    from tests.delivery_ui.conftest import csrf_of

    return csrf_of(client.get("/").get_data(as_text=True))
