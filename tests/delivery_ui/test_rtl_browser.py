"""Right to left in a real browser: a student whose browser asks for Arabic takes a test whose
items have Arabic versions. The pages say ``<html lang="ar" dir="rtl">``, the start form
preselects Arabic, the item shows its Arabic text with each option's radio button at the inline
start (the right), axe finds nothing serious, and screenshots are kept for a person to look at."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from sqlalchemy import select

from item_bank.models import Item
from item_bank.translations import set_translation
from tests.api.conftest import PASSWORD
from tests.conftest import save_screenshot

DESKTOP = {"width": 1280, "height": 900}


def _arabic(j: int) -> dict:
    return {"stem": f"السؤال {j}: ما ناتج جمع {j} و 1؟",
            "options": [f"العدد {j}", f"العدد {j + 1}", f"العدد {j + 2}", f"العدد {j + 3}"],
            "rationale": "أضف واحدًا."}


@pytest.fixture
def arabic_bank(sqlite_world):
    with sqlite_world.db() as session:
        for item in session.scalars(select(Item).where(Item.code.like("IT-%"))):
            set_translation(session, item, "ar", **_arabic(int(item.code[3:])))
    return sqlite_world


def _serious(page) -> list[dict]:
    return [v for v in Axe().run(page).response["violations"]
            if v["impact"] in ("serious", "critical")]


def test_an_arabic_item_page_reads_right_to_left(arabic_bank, live, browser) -> None:
    context = browser.new_context(viewport=DESKTOP, locale="ar")  # Accept-Language: ar
    page = context.new_page()
    try:
        page.goto(live.url + "/")
        assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") \
            == ["ar", "rtl"]
        page.fill("#username", "student1")
        page.fill("#password", PASSWORD)
        with page.expect_navigation():
            page.locator("form button[type=submit]").first.click()
        page.goto(live.url + "/my-tests")
        chosen = page.locator("select[name=language]")
        assert chosen.count() == 1
        assert chosen.input_value() == "ar"  # the page's language, offered by the test
        assert sorted(chosen.locator("option").all_inner_texts()) == ["English", "العربية"]
        assert _serious(page) == []
        save_screenshot(page, "rtl-my-tests-ar")
        with page.expect_navigation():
            page.locator("form[action$='/start'] button[type=submit]").click()
        page.wait_for_selector("#question-heading")

        assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") \
            == ["ar", "rtl"]
        group = page.get_by_role("radiogroup")
        assert group.get_attribute("lang") == "ar" and group.get_attribute("dir") == "rtl"
        stem = page.locator("#stem").inner_text()
        assert stem.startswith("السؤال"), stem
        assert page.evaluate("getComputedStyle(document.querySelector('#stem')).direction") \
            == "rtl"
        options = page.locator("label.option")
        assert options.count() == 4
        for k in range(4):
            radio = options.nth(k).locator("input").bounding_box()
            text = options.nth(k).locator("span").bounding_box()
            label = options.nth(k).bounding_box()
            # inline start on the right: the radio button right of its text, near the right edge
            assert radio["x"] > text["x"] + text["width"] - 1, (k, radio, text)
            assert label["x"] + label["width"] - (radio["x"] + radio["width"]) < 40, (radio, label)
            assert options.nth(k).locator("span").inner_text().startswith("العدد")
        # the site header's brand at the inline start too: right of the navigation
        brand = page.locator(".brand").bounding_box()
        nav = page.locator(".site-nav").bounding_box()
        assert brand["x"] > nav["x"], (brand, nav)
        assert _serious(page) == [], _serious(page)
        path = save_screenshot(page, "rtl-item-ar")
        assert path.stat().st_size > 10_000
    finally:
        context.close()


def test_an_english_page_stays_left_to_right(arabic_bank, live, browser) -> None:
    context = browser.new_context(viewport=DESKTOP, locale="en-GB")
    page = context.new_page()
    try:
        page.goto(live.url + "/")
        assert page.evaluate("[document.documentElement.lang, document.documentElement.dir]") \
            == ["en", "ltr"]
        page.fill("#username", "student1")
        page.fill("#password", PASSWORD)
        with page.expect_navigation():
            page.locator("form button[type=submit]").first.click()
        page.goto(live.url + "/my-tests")
        assert page.locator("select[name=language]").input_value() == "en"
        with page.expect_navigation():
            page.locator("form[action$='/start'] button[type=submit]").click()
        option = page.locator("label.option").first
        radio, text = option.locator("input").bounding_box(), option.locator("span").bounding_box()
        assert radio["x"] < text["x"]
        assert page.get_by_role("radiogroup").get_attribute("dir") == "ltr"
    finally:
        context.close()
