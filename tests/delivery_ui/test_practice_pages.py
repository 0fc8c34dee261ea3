"""Practice from a next step: the page, the practice attempt with exactly the suggested items on
the ordinary attempt pages, and its answers reaching the student's and the teacher's report."""

from __future__ import annotations

import re
import uuid

import pytest
from sqlalchemy import select

from evidence.attempts import start_attempt, submit_response
from evidence.models import Assignment, Attempt, AttemptStatus
from item_bank.models import AdaptiveTest, Item
from reports.next_steps import next_steps, practice_items
from reports.report import student_report
from storage.accounts import User
from tests.conftest import save_screenshot
from tests.delivery_ui.conftest import StudentWorld, csrf_of

BASE = "http://localhost"


def _answer_all(session, user: User, attempt_id: int, reply: dict, response: int) -> dict:
    while reply["status"] != "finished":
        reply, _ = submit_response(session, user, attempt_id, reply["item"]["id"], response,
                                   uuid.uuid4().hex, base_url=BASE)
    return reply


def _took_maths_all_wrong(world: StudentWorld) -> None:
    with world.db() as session:
        student = session.get(User, world.ids["users"]["student1"])
        attempt, reply, _ = start_attempt(session, student, world.test_id, base_url=BASE)
        _answer_all(session, student, attempt.id, reply, 0)  # every key is 1


def _expected(world: StudentWorld, skill: str) -> list[str]:
    with world.db() as session:
        student = session.get(User, world.ids["users"]["student1"])
        report = student_report(session, student, student.id)
        theta = next(s["theta"] for s in report["skills"] if s["skill"] == skill)
        return [p.code for p in practice_items(session, student.id, {skill: theta})[skill]]


def test_practice_gives_the_suggested_items_and_feeds_the_reports(student_world) -> None:
    _took_maths_all_wrong(student_world)
    codes = _expected(student_world, "algebra")
    assert len(codes) == 3
    client = student_world.client_for("student1")
    report_page = client.get("/my-report").get_data(as_text=True)
    assert 'href="/practice/algebra">Practice question 1 in algebra</a>' in report_page
    assert re.search(r"expected success \d+% at your level; not seen in the last 30 days",
                     report_page)
    client.set_cookie("lang", "es")
    spanish = client.get("/my-report").get_data(as_text=True)
    assert "Pregunta de práctica 1 de algebra" in spanish
    assert re.search(r"acierto esperado del \d+\s?% a tu nivel", spanish)
    client.set_cookie("lang", "en")
    page = client.get("/practice/algebra")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "3 questions chosen for your level" in html
    started = client.post("/practice/algebra", data={"csrf_token": csrf_of(html)})
    assert started.status_code == 303
    attempt_id = int(re.search(r"/attempts/(\d+)$", started.headers["Location"]).group(1))
    assert client.get(f"/attempts/{attempt_id}").status_code == 200  # the usual item page

    with student_world.db() as session:
        attempt = session.get(Attempt, attempt_id)
        test = session.get(AdaptiveTest, attempt.test_id)
        assert test.name == "Practice: algebra" and test.bank_filter == {"skills": ["algebra"]}
        algebra = set(session.scalars(select(Item.code).where(Item.skill == "algebra",
                                                              Item.code.like("IT-%"))))
        assert algebra - set(attempt.state["withdrawn"]) == set(codes)
        assert session.get(Item, attempt.current_item_id).code in codes
        assignment = session.get(Assignment, attempt.assignment_id)
        assert assignment.class_id == student_world.ids["class_id"]
        assert assignment.closes_at is not None  # not offered in the students' lists
        student = session.get(User, student_world.ids["users"]["student1"])
        reply = {"status": "in_progress", "item": {"id": attempt.current_item_id}}
        given = []
        while reply["status"] != "finished":
            given.append(session.get(Item, reply["item"]["id"]).code)
            reply, _ = submit_response(session, student, attempt_id, reply["item"]["id"], 1,
                                       uuid.uuid4().hex, base_url=BASE)
        assert sorted(given) == sorted(codes)
    assert client.get(f"/attempts/{attempt_id}/result").status_code == 200

    with student_world.db() as session:
        for viewer in ("student1", "teacher1"):
            user = session.get(User, student_world.ids["users"][viewer])
            report = student_report(session, user, student_world.ids["users"]["student1"])
            algebra = next(s for s in report["skills"] if s["skill"] == "algebra")
            practised = [r for r in algebra["evidence"] if r["test_name"] == "Practice: algebra"]
            assert len(practised) == 3, viewer
            if viewer == "teacher1":
                assert {r["source_id"] for r in practised} == set(codes)
                steps = next_steps(session, report)
                if "algebra" in steps:  # the practised items are not suggested again
                    again = {s.get("source_id") for s in steps["algebra"]}
                    assert not again & set(codes)


def test_only_students_practise_and_only_skills_not_mastered(student_world) -> None:
    assert student_world.client_for("teacher1").get("/practice/algebra").status_code == 403
    student = student_world.client_for("student1")
    r = student.get("/practice/algebra")  # no evidence yet: nothing to practise
    assert r.status_code == 404 and "no practice questions to suggest" in r.get_data(
        as_text=True)
    assert student.get("/practice/poetry").status_code == 404


@pytest.mark.browser
def test_the_practice_page_in_chromium(sqlite_world: StudentWorld, live, page) -> None:
    _took_maths_all_wrong(sqlite_world)
    page.goto(live.url + "/")
    page.get_by_label("Username").fill("student1")
    page.get_by_label("Password").fill(sqlite_world.password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    for width, lang in ((1280, "en"), (375, "es")):
        page.set_viewport_size({"width": width, "height": 800})
        page.context.add_cookies([{"name": "lang", "value": lang, "url": live.url}])
        page.goto(live.url + "/practice/geometry")
        assert page.locator("form button[type=submit]").count() >= 1
        save_screenshot(page, f"practice-{lang}-{width}")
    with page.expect_navigation():
        page.get_by_role("button", name="Empezar la práctica").click()
    assert "/attempts/" in page.url
    with sqlite_world.db() as session:
        running = session.scalars(select(Attempt).where(
            Attempt.status == AttemptStatus.IN_PROGRESS)).all()
        assert len(running) == 1
