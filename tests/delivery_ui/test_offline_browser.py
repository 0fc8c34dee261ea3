"""A test goes on while the connection is down (Chromium, offline emulation).

The page keeps a fallback module from its last contact with the server and an outbox of answers
in IndexedDB; a service worker keeps the shell, so a page reopened offline goes on too. When the
connection returns, every answer arrives once, in order, and is scored as if given online.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Error as PlaywrightError
from sqlalchemy import select

from evidence.models import Attempt, Response
from tests.conftest import save_screenshot
from tests.delivery_ui.test_student_pages import _heading, _sign_in, _wait_until

pytestmark = pytest.mark.browser


def _answer_online(page, n: int) -> None:
    page.get_by_role("radio").first.check()
    with page.expect_response(lambda r: r.request.method == "POST"):
        page.get_by_role("button", name="Submit answer").click()
    _wait_until(page, "(n) => document.querySelector('h1').textContent.trim() === 'Question ' + n",
                n + 1)


def _answer_offline(page, choice: int) -> tuple[int, int]:
    """Answer the item shown (offline) with option ``choice``; returns (item id, position)."""
    item_id = int(page.locator("form.question input[name=item_id]").input_value())
    position = int(_heading(page).split()[-1])
    page.get_by_role("radio").nth(choice).check()
    page.get_by_role("button", name="Submit answer").click()
    _wait_until(page, "(t) => document.querySelector('h1').textContent.trim() !== t",
                f"Question {position}")
    return item_id, position


def _back_online(page, timeout: float = 20.0) -> None:
    """Wait until the page has sent its outbox and been loaded afresh (no offline notice). The
    reload destroys the page's context mid-poll, so a failed poll is a poll again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            page.evaluate("window.dispatchEvent(new Event('online'))")
            if page.evaluate("!document.querySelector('#offline-notice') && "
                             "!!document.querySelector('form.question, h1')"):
                break
        except PlaywrightError:
            pass  # a navigation in between
        if time.monotonic() > deadline:
            raise AssertionError(f"the outbox was not sent within {timeout} s")
        page.wait_for_timeout(100)
    page.wait_for_load_state("load")


def _stored(world, attempt_id: int) -> list[tuple[int, int, int | None, bool]]:
    with world.db() as session:
        return [(r.position, r.item_id, r.choice, r.offline) for r in session.scalars(
            select(Response).where(Response.attempt_id == attempt_id)
            .order_by(Response.position))]


def test_answers_given_offline_arrive_once_in_order(sqlite_world, live, browser) -> None:
    context = browser.new_context()
    page = context.new_page()
    _sign_in(page, live.url, password=sqlite_world.password)
    with page.expect_navigation():
        page.get_by_role("button", name="Start").click()
    attempt_id = sqlite_world.attempts()[-1].id
    for n in range(1, 4):
        _answer_online(page, n)
    _wait_until(page, "!!(navigator.serviceWorker && navigator.serviceWorker.controller)")
    assert _heading(page) == "Question 4"
    online = _stored(sqlite_world, attempt_id)
    assert [p for p, *_ in online] == [1, 2, 3]

    context.set_offline(True)
    given = []
    for k in range(3):  # the item shown when the connection dropped, then the module's
        given.append((*_answer_offline(page, k % 2), k % 2))
    notice = page.locator("#offline-notice")
    assert "offline" in notice.inner_text() and "kept" in notice.inner_text()
    save_screenshot(page, "offline-item")
    assert _stored(sqlite_world, attempt_id) == online  # nothing reached the server

    page.close()  # closed and opened again while still offline: the service worker's shell
    page = context.new_page()
    page.goto(f"{live.url}/attempts/{attempt_id}")
    _wait_until(page, "!!document.querySelector('form.question')")
    assert _heading(page) == f"Question {given[-1][1] + 1}"
    for k in range(3, 5):
        given.append((*_answer_offline(page, k % 2), k % 2))
    assert [position for _item, position, _choice in given] == [4, 5, 6, 7, 8]
    assert _stored(sqlite_world, attempt_id) == online

    context.set_offline(False)  # Chromium tells the page ("online"); the outbox is sent and
    _back_online(page)          # the page is loaded afresh from the server
    stored = _stored(sqlite_world, attempt_id)
    assert stored[:3] == online
    assert [(item, position, choice) for position, item, choice, _off in stored[3:8]] == given
    assert all(offline for *_rest, offline in stored[3:8])
    outbox = page.evaluate("""() => new Promise(resolve => {
        const open = indexedDB.open('cat-engine-offline');
        open.onsuccess = () => {
            const get = open.result.transaction('outbox').objectStore('outbox').getAll();
            get.onsuccess = () => resolve(get.result.length);
        };
    })""")
    assert outbox == 0

    while "/result" not in page.url:  # the attempt goes on online until it finishes
        heading = _heading(page)
        page.get_by_role("radio").first.check()
        page.get_by_role("button", name="Submit answer").click()
        _wait_until(page, "(t) => document.querySelector('h1').textContent.trim() !== t", heading)
    with sqlite_world.db() as session:
        attempt = session.get(Attempt, attempt_id)
        assert attempt.status.value == "finished"
        positions = list(session.scalars(select(Response.position)
                                         .where(Response.attempt_id == attempt_id)
                                         .order_by(Response.position)))
    assert positions == list(range(1, len(positions) + 1))  # each answer once, in order
    context.close()
