"""The rubric pages in Chromium: a teacher builds a rubric with the keyboard alone (the form has
no script; tests/delivery_ui/test_rubric_pages.py drives it with plain POSTs), sees it as a
table, adds a version and imports a CSV; axe on every page in English and Spanish, screenshots
at desktop width and at 375 px."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from tests.conftest import LiveServer, save_screenshot
from tests.delivery_ui.conftest import StudentWorld

TEXTS = {
    "en": {"saved": "Version 1 of Oral defense is saved.", "criterion": "Criterion 2: give it "
           "a name.", "nav": "Rubrics", "version2": "Version 2, the latest"},
    "es": {"saved": "La versión 1 de Oral defense está guardada.", "criterion": "Criterio 2: "
           "póngale un nombre.", "nav": "Rúbricas", "version2": "Versión 2, la más reciente"},
}
LEVELS = ("Beginning", "Developing", "Secure", "Excellent")


def _sign_in(page, url: str, username: str, password: str) -> None:
    page.goto(url + "/")
    page.locator("#username").fill(username)
    page.locator("#password").fill(password)
    with page.expect_navigation():
        page.locator("form.card button[type=submit]").click()


def _check(page, violations: list, name: str) -> None:
    violations += [dict(v, page=name) for v in Axe().run(page).response["violations"]]
    save_screenshot(page, name)
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375, name
    violations += [dict(v, page=f"{name}-375") for v in Axe().run(page).response["violations"]]
    save_screenshot(page, f"{name}-375")
    page.set_viewport_size({"width": 1280, "height": 800})


def _tab_to(page, selector: str, limit: int = 200) -> None:
    """Press Tab until the element matching ``selector`` has the focus."""
    target = page.locator(selector)
    for _ in range(limit):
        if target.evaluate("el => el === document.activeElement"):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"{selector} never got the focus by Tab")


def _type_at(page, selector: str, text: str) -> None:
    _tab_to(page, selector)
    page.keyboard.type(text)


@pytest.mark.browser
@pytest.mark.parametrize("language", ["en", "es"])
def test_teacher_builds_versions_and_imports_by_keyboard(sqlite_world: StudentWorld, browser,
                                                         language: str) -> None:
    world = sqlite_world
    texts = TEXTS[language]
    context = browser.new_context(locale="es-ES" if language == "es" else "en-GB",
                                  viewport={"width": 1280, "height": 800})
    page = context.new_page()
    violations: list = []
    try:
        with LiveServer(world.app) as live:
            _sign_in(page, live.url, "teacher1", world.password)
            page.goto(live.url + "/teach/classes")
            page.get_by_role("link", name=texts["nav"], exact=True).click()
            _check(page, violations, f"rubrics-empty-list-{language}")
            page.goto(live.url + "/rubrics/new")
            _check(page, violations, f"rubrics-new-form-{language}")

            # Only the keyboard from here: a name, two criteria, the second one's name missing.
            _type_at(page, "#name", "Oral defense")
            for b, (code, name, skill) in enumerate((("reasoning", "Reasoning", "algebra"),
                                                     ("clarity", "", "geometry"))):
                if name:
                    _type_at(page, f"#c{b}_name", name)
                _type_at(page, f"#c{b}_code", code)
                _tab_to(page, f"#c{b}_skill")
                page.keyboard.type(skill[:3])  # a closed select picks by typed letters
                for j, label in enumerate(LEVELS[:3]):
                    _type_at(page, f"#c{b}_l{j}_label", label)
                    _type_at(page, f"#c{b}_l{j}_descriptor", f"{code} at {label.lower()}")
            _tab_to(page, ".form-actions button:not([name])")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert texts["criterion"] in page.locator("#error-summary").inner_text()
            _check(page, violations, f"rubrics-form-errors-{language}")
            _type_at(page, "#c1_name", "Clarity")
            _tab_to(page, ".form-actions button:not([name])")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert texts["saved"] in page.locator(".flash").inner_text()
            table = page.locator("#rubric-table")
            assert table.locator("tbody tr").count() == 2
            assert "reasoning at secure" in table.locator("tbody tr").first.inner_text()
            _check(page, violations, f"rubrics-rubric-{language}")

            # A new version with a fourth level, started from the first.
            rubric_url = page.url
            page.goto(rubric_url + "/versions/new")
            _tab_to(page, 'button[name="grow"][value="level"]')
            with page.expect_navigation():
                page.keyboard.press("Enter")
            _type_at(page, "#c0_l3_label", "Excellent")
            _type_at(page, "#c0_l3_descriptor", "reasoning at excellent")
            _tab_to(page, ".form-actions button:not([name])")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert texts["version2"] in page.locator(".facts").inner_text()
            _check(page, violations, f"rubrics-rubric-v2-{language}")

            # Import pasted CSV; a bad file first.
            page.goto(live.url + "/rubrics/import")
            _check(page, violations, f"rubrics-import-{language}")
            _type_at(page, "#csv_text", "criterion,criterion_name,skill,score,label,descriptor\n"
                                        "talk,Talk,algebra,1,Low,Mumbles\n"
                                        "talk,Talk,algebra,two,High,Speaks up\n")
            _type_at(page, "#name", "Pasted")
            page.locator("#name").press("Enter")
            page.wait_for_load_state()
            assert "row 3, score" in page.locator("#problems").inner_text()
            _check(page, violations, f"rubrics-import-problems-{language}")
            page.locator("#csv_text").fill(page.locator("#csv_text").input_value()
                                           .replace("two", "2"))
            page.locator("#name").press("Enter")
            page.wait_for_load_state()
            assert page.locator("#rubric-table tbody tr").count() == 1
            page.goto(live.url + "/rubrics")
            assert page.locator("#rubric-list tbody tr").count() == 2
            _check(page, violations, f"rubrics-list-{language}")
    finally:
        context.close()
    assert violations == [], [(v["page"], v["id"], v["help"]) for v in violations]
