"""The teacher's view of one attempt: every answer with the key, the rationale and the time taken,
the estimate after each answer (checked against an EAP computed here in closed form), the stop
reason in plain words, and who may see it."""

from __future__ import annotations

import re
from datetime import timedelta
from html import escape

import numpy as np
import pytest
from axe_playwright_python.sync_playwright import Axe
from sqlalchemy import delete, select, update

from api.wording import stop_reason, stop_reason_text
from evidence.models import Assignment, Attempt, Response
from item_bank.services import delivery_bank
from reports.charts import Frame, theta_trajectory
from storage import as_utc
from storage.accounts import class_members
from tests.conftest import LiveServer, save_screenshot
from tests.delivery_ui.conftest import StudentWorld
from tests.delivery_ui.test_student_views import ITEM, _form, _start

Z95 = 1.959963984540054


def _take(world: StudentWorld, username: str) -> int:
    """Take a whole test as ``username``, answering option 1 (the key) and 0 in turn."""
    client = world.client_for(username)
    attempt_id, html = _start(world, client)
    n = 0
    while ITEM.search(html):
        html = client.post(f"/attempts/{attempt_id}/answer", data=_form(html, response=n % 2),
                           follow_redirects=True).get_data(as_text=True)
        n += 1
    return attempt_id


def _cells(html: str) -> list[list[str]]:
    """The rows of the answers table, each a list of its cells' text."""
    table = re.search(r'<table class="data stack numbers" id="answers">.*?</table>', html,
                      re.S).group(0)
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)[1:]:
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        rows.append([re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", c)).strip() for c in cells])
    return rows


def _eap(a: np.ndarray, b: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """EAP and posterior sd after each of the answers ``u`` to 2PL items (a, b), D = 1, on 61
    points from -4 to 4 with a N(0, 1) prior: the test's estimator, in closed form."""
    q = np.linspace(-4, 4, 61)
    p = 1 / (1 + np.exp(-a[:, None] * (q[None, :] - b[:, None])))
    loglik = np.where(u[:, None] == 1, np.log(p), np.log1p(-p))
    log_post = np.cumsum(loglik, axis=0) - 0.5 * q**2
    w = np.exp(log_post - log_post.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    mean = w @ q
    return mean, np.sqrt((w * (q[None, :] - mean[:, None]) ** 2).sum(axis=1))


def _polyline(html: str, cls: str) -> np.ndarray:
    found = re.search(rf'<polyline class="curve {cls}" points="([^"]+)"', html).group(1)
    return np.array([[float(v) for v in p.split(",")] for p in found.split()])


def test_the_teacher_sees_each_answer_key_rationale_time_and_estimate(
        student_world: StudentWorld) -> None:
    world = student_world
    attempt_id = _take(world, "student2")
    with world.db() as db:
        attempt = db.get(Attempt, attempt_id)
        started = as_utc(attempt.started_at)
        responses = db.scalars(select(Response).where(Response.attempt_id == attempt_id)
                               .order_by(Response.position)).all()
        # Known times: question k answered 10 + 25 k seconds after the previous answer.
        moment, expected_times = started, []
        for k, r in enumerate(responses):
            moment += timedelta(seconds=10 + 25 * k)
            expected_times.append(10 + 25 * k)
            db.execute(update(Response).where(Response.id == r.id).values(answered_at=moment))
        delivery = delivery_bank(db, attempt.snapshot_id)
        code = {r.item_id: delivery.codes[r.item_id] for r in responses}
        given = [(r.position, code[r.item_id], r.choice, r.response, r.scored) for r in responses]
        reason, cut = attempt.stop_reason, delivery.cut_scores["overall"]
        parameters = {c: delivery.items[c]["parameters"] for c in code.values()
                      if delivery.items[c]["parameters"]}
    client = world.client_for("teacher1")
    class_id = world.ids["class_id"]
    html = client.get(f"/teach/classes/{class_id}").get_data(as_text=True)
    link = f'href="/teach/classes/{class_id}/attempts/{attempt_id}"'
    assert link in html  # the class page leads to the teacher's view, not the student's page
    response = client.get(f"/teach/classes/{class_id}/attempts/{attempt_id}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "You answered" not in html and "Back to my tests" not in html
    assert f'href="/teach/classes/{class_id}">Back to class 7A</a>' in html

    rows = _cells(html)
    assert len(rows) == len(given) >= 5
    scored = [g for g in given if g[4]]
    a = np.array([parameters[g[1]]["a"] for g in scored])
    b = np.array([parameters[g[1]]["b"] for g in scored])
    theta, se = _eap(a, b, np.array([g[3] for g in scored]))
    estimates = iter(zip(theta, se, strict=True))
    letters = "ABCD"
    for row, (position, item_code, choice, score, is_scored), seconds in zip(
            rows, given, expected_times, strict=True):
        number, question, answer, right, key, time, estimate = row
        assert number == str(position) and item_code in question
        assert answer.startswith(f"{letters[choice]}. ")
        assert right.startswith("right" if score == 1 else "wrong")
        assert key.startswith("B. " if is_scored else "A. ")  # fixture keys: 1, pretest 0
        assert time == f"{seconds // 60}:{seconds % 60:02d}"
        if is_scored:
            assert "Why: Add one." in question
            t, s = next(estimates)
            assert estimate == f"{t:.2f} ({t - Z95 * s:.2f} to {t + Z95 * s:.2f})"
        else:
            assert "not scored" in right and estimate == "\u2013"

    # The chart draws the same estimates: read the polyline back through the chart's frame.
    box = re.search(r'<svg class="chart" id="trajectory"[^>]*data-x-range="([^"]+)" '
                    r'data-y-range="([^"]+)"', html, re.S)
    frame = Frame(tuple(map(float, box.group(1).split(","))),
                  tuple(map(float, box.group(2).split(","))))
    drawn = _polyline(html, "series-theta")
    assert [round(frame.theta_of(x)) for x in drawn[:, 0]] == [g[0] for g in scored]
    np.testing.assert_allclose([frame.value_of(y) for y in drawn[:, 1]], theta, atol=0.02)
    cut_line = _polyline(html, "series-cut")
    np.testing.assert_allclose([frame.value_of(y) for y in cut_line[:, 1]], cut, atol=0.02)

    # Why it stopped, in plain words, with the engine's code kept for a tooltip.
    words = stop_reason_text(reason)
    assert words and words != reason
    assert f'<span title="{escape(reason)}">{escape(words)}</span>' in html


def test_the_chart_band_is_the_95_percent_interval() -> None:
    theta = np.array([0.3, 0.8, 1.1])
    se = np.array([0.9, 0.6, 0.45])
    chart = theta_trajectory([1, 3, 4], theta, theta - Z95 * se, theta + Z95 * se, 0.5)
    (band,) = chart.areas
    points = np.array([[float(v) for v in p.split(",")] for p in band["points"].split()])
    upper, lower = points[:3], points[3:][::-1]
    frame = chart.frame
    np.testing.assert_allclose([frame.theta_of(x) for x in upper[:, 0]], [1, 3, 4], atol=1e-3)
    np.testing.assert_allclose([frame.value_of(y) for y in upper[:, 1]], theta + Z95 * se,
                               atol=1e-2)
    np.testing.assert_allclose([frame.value_of(y) for y in lower[:, 1]], theta - Z95 * se,
                               atol=1e-2)
    assert frame.y_range == (-3.0, 3.0)
    wide = theta_trajectory([1], [3.5], [2.0], [5.2])
    assert wide.frame.y_range == (-3.0, 6.0) and not [s for s in wide.series
                                                      if s["class"] == "series-cut"]


def test_only_the_class_teacher_and_admins_may_see_the_attempt(
        student_world: StudentWorld) -> None:
    world = student_world
    attempt_id = _take(world, "student2")
    class_id, other_class = world.ids["class_id"], world.ids["other_class_id"]
    path = f"/teach/classes/{class_id}/attempts/{attempt_id}"
    assert world.client_for("admin1").get(path).status_code == 200
    for username in ("student2", "assessor1"):
        refused = world.client_for(username).get(path)
        assert refused.status_code == 403
        assert "Student2 at Maths" not in refused.get_data(as_text=True)
    assert world.client_for("teacher2").get(path).status_code == 404
    assert world.client_for("teacher2").get(
        f"/teach/classes/{other_class}/attempts/{attempt_id}").status_code == 404
    teacher1 = world.client_for("teacher1")
    assert teacher1.get(f"/teach/classes/{class_id}/attempts/99999").status_code == 404
    # The test is no longer assigned to the class: not this teacher's to see.
    with world.db() as db:
        db.execute(update(Attempt).where(Attempt.id == attempt_id).values(assignment_id=None))
        db.execute(delete(Assignment).where(Assignment.class_id == class_id))
    assert teacher1.get(path).status_code == 404


def test_a_student_who_left_the_class_is_not_shown(student_world: StudentWorld) -> None:
    world = student_world
    attempt_id = _take(world, "student2")
    path = f"/teach/classes/{world.ids['class_id']}/attempts/{attempt_id}"
    with world.db() as db:
        db.execute(delete(class_members).where(
            class_members.c.user_id == world.ids["users"]["student2"]))
    response = world.client_for("teacher1").get(path)
    assert response.status_code == 404
    assert "Student2" not in response.get_data(as_text=True)


def test_the_result_page_seen_by_a_teacher_leads_back_to_their_classes(
        student_world: StudentWorld) -> None:
    world = student_world
    attempt_id = _take(world, "student2")
    html = world.client_for("teacher1").get(f"/attempts/{attempt_id}/result") \
        .get_data(as_text=True)
    assert "Back to my tests" not in html and 'href="/teach/classes">Back to my classes' in html


@pytest.mark.parametrize("code, words", [
    ("max_items=25", "reached the maximum of 25 questions"),
    ("max_items=1", "reached the maximum of 1 question"),
    ("se<=0.3", "the result was precise enough (standard error 0.3 or less)"),
    ("classified(ci, cut=0.5)", "the result was clearly above or below the cut score 0.5"),
    ("classified(sprt, cut=-1)", "the result was clearly above or below the cut score \u22121"),
    ("information_left<0.1", "no question left would have made the result much more precise"),
    ("theta_change<0.05", "the estimate had stopped changing (by less than 0.05)"),
    ("bank_exhausted", "no more suitable questions were left"),
    ("time_limit", "the time ran out"),
    ("all(se<=0.3, theta_change<0.01)", "the result was precise enough (standard error 0.3 or "
     "less) and the estimate had stopped changing (by less than 0.01)"),
    ("something_new", "something_new"),
    (None, ""),
])
def test_stop_reasons_in_plain_words(code, words) -> None:
    assert stop_reason_text(code) == words
    assert stop_reason(code).text == words and stop_reason(code).code == (code or "")


@pytest.mark.browser
@pytest.mark.parametrize("language", ["en", "es"])
def test_the_attempt_page_in_a_browser(sqlite_world: StudentWorld, browser, language) -> None:
    attempt_id = _take(sqlite_world, "student2")
    context = browser.new_context(locale="es-ES" if language == "es" else "en-GB")
    page = context.new_page()
    violations = []
    try:
        with LiveServer(sqlite_world.app) as live:
            page.goto(live.url + "/")
            page.locator("#username").fill("teacher1")
            page.locator("#password").fill(sqlite_world.password)
            with page.expect_navigation():
                page.locator("form.card button[type=submit]").click()
            page.goto(f"{live.url}/teach/classes/{sqlite_world.ids['class_id']}")
            with page.expect_navigation():
                page.locator(f'a[href$="/attempts/{attempt_id}"]').click()
            assert page.locator("#answers tbody tr").count() >= 5
            assert page.locator("svg#trajectory polygon.band-theta").count() == 1
            violations += Axe().run(page).response["violations"]
            save_screenshot(page, f"teacher-attempt-{language}")
            page.set_viewport_size({"width": 375, "height": 800})
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"the page is {width}px wide on a 375px screen"
            violations += Axe().run(page).response["violations"]
            save_screenshot(page, f"teacher-attempt-{language}-375")
    finally:
        context.close()
    serious = [f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in violations
               if v["impact"] in ("serious", "critical")]
    assert not serious, serious


def test_an_attempt_under_way_or_out_of_time_shows_the_answers_so_far(
        student_world: StudentWorld) -> None:
    world = student_world
    client = world.client_for("student1")
    attempt_id, html = _start(world, client)
    for _n in range(3):
        html = client.post(f"/attempts/{attempt_id}/answer", data=_form(html),
                           follow_redirects=True).get_data(as_text=True)
    path = f"/teach/classes/{world.ids['class_id']}/attempts/{attempt_id}"
    teacher = world.client_for("teacher1")
    page = teacher.get(path).get_data(as_text=True)
    assert len(_cells(page)) == 3 and "The student has not finished yet." in page
    assert "state-in_progress" in page
    world.move_deadline(attempt_id, -10)
    page = teacher.get(path).get_data(as_text=True)
    assert "state-time_up" in page and ">time ran out<" in page
    assert "The time ran out before the test ended" in page and len(_cells(page)) == 3


def test_the_review_shows_the_items_as_the_student_saw_them(student_world: StudentWorld) -> None:
    """An item edited after the attempt: the review keeps the stem, key and rationale of the
    version that was delivered."""
    from item_bank.models import Item
    from item_bank.services import update_item

    world = student_world
    attempt_id = _take(world, "student2")
    with world.db() as db:
        first = db.scalar(select(Response).where(Response.attempt_id == attempt_id,
                                                 Response.position == 1))
        item = db.get(Item, first.item_id)
        stem = item.stem
        update_item(db, item, {"stem": "Rewritten", "key": 0, "rationale": "New reason."})
    html = world.client_for("teacher1").get(
        f"/teach/classes/{world.ids['class_id']}/attempts/{attempt_id}").get_data(as_text=True)
    _number, question, _answer, _right, key, *_rest = _cells(html)[0]
    assert stem in question and "Why: Add one." in question
    assert "Rewritten" not in html and "New reason." not in html
    assert key.startswith("B. ")


def test_stop_reasons_follow_the_requests_language(sqlite_world: StudentWorld) -> None:
    app = sqlite_world.app
    with app.test_request_context(headers={"Accept-Language": "es"}):
        assert stop_reason_text("se<=0.25") == \
            "el resultado era lo bastante preciso (error típico de 0,25 o menos)"
        assert stop_reason_text("max_items=25") == "se alcanzó el máximo de 25 preguntas"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert stop_reason_text("se<=0.25") == \
            "the result was precise enough (standard error 0.25 or less)"
