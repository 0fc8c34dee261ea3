"""The student pages in a real Chromium: a whole adaptive test by keyboard, with and without
JavaScript, resuming, double submits, errors, languages, accessibility (axe), page weight and
time limits."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe

from storage import as_utc
from tests.conftest import save_screenshot
from tests.delivery_ui.conftest import StudentWorld

pytestmark = pytest.mark.browser

MAX_TABS = 40
FOCUSED_RADIO = "document.activeElement.name === 'response'"
FOCUSED_SUBMIT = ("document.activeElement.type === 'submit' && "
                  "!!document.activeElement.closest('form.question')")


def _wait_until(page, condition: str, arg=None, timeout: float = 10.0) -> None:
    """Poll ``condition`` (JavaScript) until it is true. (``page.wait_for_function`` compiles
    its predicate with ``eval``, which the pages' Content-Security-Policy rightly forbids.)"""
    deadline = time.monotonic() + timeout
    while not page.evaluate(condition, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {condition}")
        page.wait_for_timeout(50)


def _heading(page) -> str:
    return page.locator("h1").inner_text().strip()


def _tab_to(page, condition: str) -> None:
    """Press Tab until ``condition`` (JavaScript, about document.activeElement) holds."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if page.evaluate(condition):
            return
    raise AssertionError(f"{MAX_TABS} presses of Tab never reached {condition}")


def _focused_text(page) -> str:
    return page.evaluate("document.activeElement.textContent.trim()")


def _sign_in(page, base: str, username: str = "student1", password: str = "") -> None:
    """Sign in with the keyboard alone, from the sign-in page."""
    page.goto(base + "/")
    _tab_to(page, "document.activeElement.id === 'username'")
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def _press_button(page, name: str, navigation: bool = True) -> None:
    _tab_to(page, f"document.activeElement.textContent.trim() === {name!r}")
    if navigation:
        with page.expect_navigation():
            page.keyboard.press("Enter")
    else:
        page.keyboard.press("Enter")


def _answer_by_keyboard(page, js: bool, choice_keys: tuple[str, ...] = ("Space",)) -> None:
    """Choose an option with the keyboard and submit it; wait for what comes next."""
    before = _heading(page)
    _tab_to(page, FOCUSED_RADIO)
    for key in choice_keys:
        page.keyboard.press(key)
    assert page.locator("input[name=response]:checked").count() == 1
    _tab_to(page, FOCUSED_SUBMIT)
    if js:
        page.keyboard.press("Enter")
        _wait_until(page, "h => document.querySelector('h1').textContent.trim() !== h",
                               arg=before)
    else:
        with page.expect_navigation():
            page.keyboard.press("Enter")


def _take_test_by_keyboard(world: StudentWorld, page, base: str, js: bool, name: str) -> None:
    _sign_in(page, base, password=world.password)
    assert page.url.endswith("/my-tests")
    save_screenshot(page, f"student-my-tests-{name}")
    _press_button(page, "Start")
    assert _heading(page) == "Question 1"
    save_screenshot(page, f"student-item-{name}")
    page.evaluate("window.__stayed = true")  # survives only if the page never reloads
    for n in range(1, 4):
        _answer_by_keyboard(page, js, ("Space",) if n % 2 else ("ArrowDown",))
        assert _heading(page) == f"Question {n + 1}"
        if js:
            assert page.evaluate("window.__stayed") is True
            assert page.evaluate("document.activeElement.id") == "question-heading"
            _wait_until(page, "document.getElementById('announcer').textContent"
                                   f".includes('Question {n + 1}')")
            assert page.title().startswith(f"Question {n + 1} ·")
    (attempt,) = world.attempts()
    assert page.url.endswith(f"/attempts/{attempt.id}")
    stem = page.locator("#stem").inner_text()
    assert world.responses(attempt.id) == 3

    # Close the page mid-test; a new one resumes at the same item.
    context = page.context
    page.close()
    page = context.new_page()
    page.goto(base + "/my-tests")
    _tab_to(page, "document.activeElement.textContent.trim() === 'Resume'")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert _heading(page) == "Question 4" and page.locator("#stem").inner_text() == stem

    for _ in range(30):
        if not _heading(page).startswith("Question"):
            break
        _answer_by_keyboard(page, js)
    assert _heading(page) == "Your result"
    assert page.url.endswith(f"/attempts/{attempt.id}/result")
    (attempt,) = world.attempts()
    assert attempt.status.value == "finished"
    assert world.responses(attempt.id) == attempt.result["n_given"]
    text = page.locator("main").inner_text()
    assert "We are 95% sure" in text and "a teacher makes the final decision" in text
    assert page.get_by_role("table").is_visible()
    save_screenshot(page, f"student-result-{name}")
    if js:  # Back leaves the quiz (the address was replaced, never pushed); Forward returns
        page.go_back()
        assert page.url.endswith("/my-tests")
        page.go_forward()
        assert _heading(page) == "Your result"


def test_a_whole_test_by_keyboard_with_javascript(sqlite_world, live, browser) -> None:
    context = browser.new_context()
    try:
        _take_test_by_keyboard(sqlite_world, context.new_page(), live.url, True, "js")
    finally:
        context.close()


def test_a_whole_test_by_keyboard_without_javascript(sqlite_world, live, browser) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        _take_test_by_keyboard(sqlite_world, context.new_page(), live.url, False, "nojs")
    finally:
        context.close()


def _start(world: StudentWorld, page, base: str) -> int:
    _sign_in(page, base, password=world.password)
    _press_button(page, "Start")
    return world.attempts()[-1].id


def test_a_double_submit_is_recorded_once(sqlite_world, live, page) -> None:
    attempt_id = _start(sqlite_world, page, live.url)
    page.get_by_role("radio").first.check()
    statuses = page.evaluate("""async () => {
        const form = document.querySelector('form.question');
        const send = () => fetch(form.action, {method: 'POST',
                                               body: new URLSearchParams(new FormData(form))});
        const replies = await Promise.all([send(), send()]);
        return replies.map(r => r.status);
    }""")
    assert all(status < 500 for status in statuses), statuses
    assert sqlite_world.responses(attempt_id) == 1
    # The ordinary form, sent twice one after the other: the second is a replay.
    page.reload()
    page.get_by_role("radio").first.check()
    form = page.evaluate("Object.fromEntries(new FormData(document.querySelector"
                         "('form.question')))")
    for _ in range(2):
        assert page.request.post(f"{live.url}/attempts/{attempt_id}/answer", form=form).ok
    assert sqlite_world.responses(attempt_id) == 2
    page.reload()
    assert _heading(page) == "Question 3"


@pytest.mark.parametrize("js", [True, False], ids=["js", "nojs"])
def test_a_missing_answer_is_named_next_to_the_question(sqlite_world, live, browser, js) -> None:
    context = browser.new_context(java_script_enabled=js)
    page = context.new_page()
    try:
        attempt_id = _start(sqlite_world, page, live.url)
        _tab_to(page, FOCUSED_SUBMIT)
        if js:
            page.keyboard.press("Enter")
            page.wait_for_selector("#response-error")
            assert page.evaluate("document.activeElement.name") == "response"
            _wait_until(page, "document.getElementById('announcer').textContent"
                                   ".includes('Choose an answer')")
        else:
            with page.expect_navigation() as navigation:
                page.keyboard.press("Enter")
            assert navigation.value.status == 422
        group = page.get_by_role("radiogroup")
        assert group.get_attribute("aria-invalid") == "true"
        assert group.get_attribute("aria-describedby") == "response-error"
        assert page.locator("#response-error").inner_text() == "Choose an answer, then submit it."
        assert _heading(page) == "Question 1"
        assert sqlite_world.responses(attempt_id) == 0
        save_screenshot(page, f"student-item-error-{'js' if js else 'nojs'}")
    finally:
        context.close()


def test_a_signed_out_item_url_comes_back_after_sign_in(sqlite_world, live, browser,
                                                        page) -> None:
    attempt_id = _start(sqlite_world, page, live.url)
    context = browser.new_context()  # another browser: no session
    other = context.new_page()
    try:
        other.goto(f"{live.url}/attempts/{attempt_id}")
        assert "/?next=/attempts/" in other.url
        assert other.get_by_role("status").first.inner_text() == "Please sign in to continue."
        other.get_by_label("Username").fill("student1")
        other.get_by_label("Password").fill(sqlite_world.password)
        with other.expect_navigation():
            other.get_by_role("button", name="Sign in").click()
        assert other.url == f"{live.url}/attempts/{attempt_id}"
        assert _heading(other) == "Question 1"
    finally:
        context.close()


def test_switching_to_spanish(sqlite_world, live, page) -> None:
    _sign_in(page, live.url, password=sqlite_world.password)
    _tab_to(page, "document.activeElement.id === 'language'")
    page.keyboard.press("ArrowDown")  # English -> Español
    assert page.evaluate("document.activeElement.value") == "es"
    _press_button(page, "Change language")
    assert page.evaluate("document.documentElement.lang") == "es"
    assert page.url.endswith("/my-tests") and _heading(page) == "Mis pruebas"
    assert "Las páginas están ahora en español." in page.get_by_role("status").first.inner_text()
    _press_button(page, "Empezar")
    assert _heading(page) == "Pregunta 1"
    assert page.get_by_role("button", name="Enviar respuesta").is_visible()
    assert page.get_by_role("link", name="Mis pruebas").get_attribute("href") == "/my-tests"
    save_screenshot(page, "student-item-es")


def test_the_browser_language_is_the_default(sqlite_world, live, browser) -> None:
    context = browser.new_context(locale="es-ES")
    page = context.new_page()
    try:
        page.goto(live.url + "/")
        assert page.evaluate("document.documentElement.lang") == "es"
        assert _heading(page) == "Iniciar sesión"
        assert page.get_by_label("Nombre de usuario").is_visible()
    finally:
        context.close()


def _serious(page) -> list[str]:
    violations = Axe().run(page).response["violations"]
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
            for v in violations if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("language", ["en", "es"])
def test_axe_finds_nothing_serious_on_any_student_page(sqlite_world, live, browser,
                                                       language) -> None:
    sqlite_world.set_time_limit(30)  # so the item pages carry the countdown and its buttons
    context = browser.new_context(locale="es-ES" if language == "es" else "en-GB")
    page = context.new_page()
    found = {}
    try:
        page.goto(live.url + "/")
        found["sign-in"] = _serious(page)
        _sign_in(page, live.url, password=sqlite_world.password)
        found["my-tests"] = _serious(page)
        page.get_by_role("button", name="Start" if language == "en" else "Empezar").click()
        page.wait_for_selector("#question-heading")
        found["item"] = _serious(page)
        page.locator("form.question button[type=submit]").click()
        page.wait_for_selector("#response-error")
        found["item-with-error"] = _serious(page)
        save_screenshot(page, f"student-item-error-{language}")
        for _ in range(30):
            if not page.locator("form.question").count():
                break
            heading = _heading(page)
            page.get_by_role("radio").nth(1).check()
            page.locator("form.question button[type=submit]").click()
            _wait_until(page, "h => document.querySelector('h1').textContent.trim() !== h",
                                   arg=heading)
        page.wait_for_selector("#result-heading")
        found["result"] = _serious(page)
        save_screenshot(page, f"student-result-{language}")
    finally:
        context.close()
    assert found == {name: [] for name in found}, found
    assert len(found) == 5


@pytest.mark.parametrize("minutes", [30, None], ids=["countdown", "fallback"])
def test_an_item_page_weighs_less_than_50_kb(sqlite_world, live, browser, page,
                                             minutes) -> None:
    # The heaviest item pages: with the countdown, or (untimed) with the fallback module.
    sqlite_world.set_time_limit(minutes)
    attempt_id = _start(sqlite_world, page, live.url)
    # A new context with the same cookies and an empty cache: everything comes over the wire.
    context = browser.new_context(storage_state=page.context.storage_state())
    cold = context.new_page()
    received = []
    cold.on("response", lambda r: received.append(
        len(r.body()) + sum(len(k) + len(v) + 4 for k, v in r.headers.items())))
    try:
        cold.goto(f"{live.url}/attempts/{attempt_id}", wait_until="load")
        assert _heading(cold) == "Question 1"
        timing = cold.evaluate("""() => {
            const nav = performance.getEntriesByType('navigation')[0];
            const resources = performance.getEntriesByType('resource');
            return {navigation: nav.transferSize,
                    resources: resources.map(r => [r.name, r.transferSize])};
        }""")
    finally:
        context.close()
    names = sorted(name.rsplit("/", 1)[1] for name, _size in timing["resources"])
    assert names == ["offline.js", "quiz.js", "site.css", "tz.js"]  # no font, CDN or tracker
    assert all(name.startswith(live.url) for name, _size in timing["resources"])
    total = timing["navigation"] + sum(size for _name, size in timing["resources"])
    assert 3_000 < total <= 50_000, timing
    assert 3_000 < sum(received) <= 50_000, received


def test_the_time_limit_can_be_extended_and_the_countdown_hidden(sqlite_world, live,
                                                                 page) -> None:
    sqlite_world.set_time_limit(10)
    attempt_id = _start(sqlite_world, page, live.url)
    clock = page.locator("#clock")
    first = clock.inner_text()
    assert first in ("10:00", "9:59")
    _wait_until(page, "t => document.getElementById('clock').textContent !== t", arg=first)
    (before,) = sqlite_world.attempts()

    _tab_to(page, "document.activeElement.id === 'more-time'")
    page.keyboard.press("Enter")
    _wait_until(page, "document.getElementById('announcer').textContent"
                           ".includes('You have 5 more minutes.')")
    minutes = int(clock.inner_text().split(":")[0])
    assert minutes == 14  # 10 minutes, less a few seconds, plus 5
    assert page.evaluate("document.activeElement.id") == "more-time"  # focus stays put
    (after,) = sqlite_world.attempts()
    assert as_utc(after.deadline) - as_utc(before.deadline) == timedelta(minutes=5)
    assert "9 times" in page.locator("#extensions-left").inner_text()
    save_screenshot(page, "student-item-timer")

    _tab_to(page, "document.activeElement.id === 'timer-toggle'")
    page.keyboard.press("Enter")
    _wait_until(page, "document.getElementById('timer-toggle').textContent.trim() === "
                           "'Show the countdown'")
    assert not page.locator("#time-left").is_visible()
    page.reload()
    assert not page.locator("#time-left").is_visible()  # the choice holds
    page.get_by_role("button", name="Show the countdown").click()
    _wait_until(page, "document.getElementById('timer-toggle').textContent.trim() === "
                           "'Hide the countdown'")
    assert page.locator("#time-left").is_visible()

    # A minute before the end, a visible and announced warning says how to get more time.
    sqlite_world.move_deadline(attempt_id, 62)
    page.reload()
    _wait_until(page, "!document.getElementById('time-warning').hidden")
    warning = page.locator("#time-warning").inner_text()
    assert warning == "Less than 1 minute left. Choose “More time” if you need it."
    _wait_until(page, "document.getElementById('announcer').textContent"
                           ".includes('Less than 1 minute left.')")


def test_when_the_time_runs_out_the_page_offers_only_the_result(sqlite_world, live,
                                                                 page) -> None:
    """At zero the question and More time go at once, the page then comes back from the server
    with an amber warning and a plain See my result; no answer is asked for."""
    sqlite_world.set_time_limit(10)
    attempt_id = _start(sqlite_world, page, live.url)
    page.get_by_role("radio").first.check()
    page.locator("form.question button[type=submit]").click()
    _wait_until(page, "document.querySelector('h1').textContent.trim() === 'Question 2'")
    sqlite_world.move_deadline(attempt_id, 3)
    page.reload()
    page.evaluate("window.__stayed = true")
    _wait_until(page, "document.querySelector('h1').textContent.trim() === 'The time is up'")
    assert page.evaluate("window.__stayed") is True  # swapped in, not reloaded
    assert page.locator("#more-time").count() == 0 and page.locator("form.question").count() == 0
    warning = page.locator("p.warning")
    assert warning.inner_text() == ("Your answers so far are saved. This question can no "
                                    "longer be answered.")
    assert warning.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(254, 247, 224)"
    assert page.get_by_role("button", name="See my result").is_visible()
    assert _serious(page) == []
    save_screenshot(page, "student-time-up")
    page.set_viewport_size({"width": 375, "height": 700})
    save_screenshot(page, "student-time-up-375")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("button", name="See my result").click()
    page.wait_for_selector("#result-heading")
    text = page.locator("main").inner_text()
    assert "Too early to say" in text and "The time ran out after 1 answer" in text
    assert sqlite_world.responses(attempt_id) == 1
    assert _serious(page) == []
    save_screenshot(page, "student-result-time-up")


def test_the_result_fits_a_375_px_screen(sqlite_world, live, browser) -> None:
    """Every column of the skill table, and the header, within 375 px: nothing cut off."""
    context = browser.new_context(viewport={"width": 375, "height": 800})
    page = context.new_page()
    try:
        _start(sqlite_world, page, live.url)
        for _ in range(30):
            if not page.locator("form.question").count():
                break
            heading = _heading(page)
            page.get_by_role("radio").nth(1).check()
            page.locator("form.question button[type=submit]").click()
            _wait_until(page, "h => document.querySelector('h1').textContent.trim() !== h",
                        arg=heading)
        page.wait_for_selector("#result-heading")
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        cells = page.evaluate("""() => [...document.querySelectorAll('main table th, '
            + 'main table td, header *')].map(e => {
                const r = e.getBoundingClientRect();
                const box = (e.closest('.card') || document.body).getBoundingClientRect();
                return [e.textContent.trim().slice(0, 30), r.left, r.right, box.right];
            })""")
        outside = [c for c in cells if c[1] < 0 or c[2] > min(375, c[3])]  # seen whole
        assert outside == [], outside
        header_rows = page.evaluate("""() => [...document.querySelectorAll('main table thead th')]
            .map(e => Math.round(e.getBoundingClientRect().height))""")
        assert len(set(header_rows)) == 1 and header_rows[0] < 50, header_rows  # one line each
        save_screenshot(page, "student-result-375")
    finally:
        context.close()


def test_a_spanish_reader_sees_the_test_and_its_skills_in_spanish(sqlite_world, live,
                                                                  browser) -> None:
    from sqlalchemy import update

    from item_bank.models import AdaptiveTest

    with sqlite_world.db() as session:
        session.execute(update(AdaptiveTest).values(translations={"es": {
            "name": "Matemáticas", "description": "Matemáticas adaptativas",
            "skills": {"algebra": "Álgebra", "geometry": "Geometría",
                       "statistics": "Estadística"}}}))
    context = browser.new_context(locale="es-ES", viewport={"width": 375, "height": 800})
    page = context.new_page()
    try:
        _sign_in(page, live.url, password=sqlite_world.password)
        assert page.locator("main h3").inner_text() == "Matemáticas"
        boxes = page.evaluate("""() => [...document.querySelectorAll('.site-header > *')]
            .map(e => { const r = e.getBoundingClientRect();
                        return [e.textContent.trim().replace(/\\s+/g, ' '), r.left, r.right,
                                Math.round((r.top + r.bottom) / 2)]; })""")
        # At 375 px, in Spanish: the brand and the student's links (My tests, My report) on
        # one line, signing out on a second at most; nothing runs off the screen.
        centres = [b[3] for b in boxes]
        assert max(centres[:2]) - min(centres[:2]) <= 4, boxes
        assert max(centres) - min(centres) <= 60 and max(b[2] for b in boxes) <= 375, boxes
        assert _serious(page) == []
        save_screenshot(page, "student-my-tests-es-375")
        with page.expect_navigation():
            page.get_by_role("button", name="Empezar").click()
        for _ in range(30):
            if not page.locator("form.question").count():
                break
            heading = _heading(page)
            page.get_by_role("radio").nth(1).check()
            page.locator("form.question button[type=submit]").click()
            _wait_until(page, "h => document.querySelector('h1').textContent.trim() !== h",
                        arg=heading)
        page.wait_for_selector("#result-heading")
        rows = page.locator("table.skills tbody th").all_inner_texts()
        assert rows and set(rows) <= {"Álgebra", "Geometría", "Estadística"}
        assert _serious(page) == []
        save_screenshot(page, "student-result-es-375")
    finally:
        context.close()
