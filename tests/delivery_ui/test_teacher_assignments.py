"""Teachers' pages for assignments (a test for a class, with a window, a time limit and an attempt
cap) and for a student's time accommodation: forms with CSRF, POST-redirect-GET, messages that name
the field, and the effect on what students can start."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from sqlalchemy import func, select

from evidence.models import Assignment, Attempt
from storage import as_utc, utcnow
from storage.accounts import Accommodation, TimeAccommodation
from tests.conftest import LiveServer, save_screenshot
from tests.delivery_ui.conftest import StudentWorld, csrf_of


def _assignments(world: StudentWorld, class_id: int) -> list[Assignment]:
    with world.db() as db:
        return list(db.scalars(select(Assignment).where(Assignment.class_id == class_id)
                               .order_by(Assignment.id)))


def _error(html: str, field: str) -> str:
    found = re.search(rf'<p class="error" id="{field}-error">(.*?)</p>', html, re.S)
    assert found, f"no error shown for {field}"
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', html) or field == "time"
    return found.group(1).strip()


def _local(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


def test_a_teacher_assigns_a_test_and_its_students_can_start_it(
        student_world: StudentWorld) -> None:
    world = student_world
    other = world.ids["other_class_id"]  # 7B: teacher2's, with student3, nothing assigned
    student = world.client_for("student3")
    assert f"/tests/{world.test_id}/start" not in student.get("/my-tests").get_data(as_text=True)
    teacher = world.client_for("teacher2")
    form = teacher.get(f"/teach/classes/{other}/assignments/new")
    assert form.status_code == 200
    html = form.get_data(as_text=True)
    assert f'<option value="{world.test_id}">Maths</option>' in html
    now = utcnow().replace(second=0, microsecond=0)
    response = teacher.post(f"/teach/classes/{other}/assignments/new", data={
        "csrf_token": csrf_of(html), "test_id": str(world.test_id),
        "opens_at": _local(now - timedelta(hours=1)), "closes_at": _local(now + timedelta(days=2)),
        "time_limit_minutes": "20", "max_attempts": "2"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/teach/classes/{other}#assignments"
    page = teacher.get(response.headers["Location"]).get_data(as_text=True)
    assert "Maths is assigned to class 7B." in page and "20 minutes" in page
    (assignment,) = _assignments(world, other)
    assert as_utc(assignment.opens_at) == now - timedelta(hours=1)  # the page's zone is UTC
    assert as_utc(assignment.closes_at) == now + timedelta(days=2)
    assert (assignment.time_limit_minutes, assignment.max_attempts) == (20, 2)
    assert assignment.created_by == world.ids["users"]["teacher2"]
    # The student can start it now, with the time limit set.
    tests = student.get("/my-tests").get_data(as_text=True)
    started = student.post(f"/tests/{world.test_id}/start", data={"csrf_token": csrf_of(tests)})
    assert started.status_code == 303
    (attempt,) = world.attempts("student3")
    assert attempt.assignment_id == assignment.id
    assert as_utc(attempt.deadline) - as_utc(attempt.started_at) == timedelta(minutes=20)


def test_the_window_is_read_in_the_readers_time_zone(student_world: StudentWorld) -> None:
    world = student_world
    other = world.ids["other_class_id"]
    teacher = world.client_for("teacher2")
    teacher.set_cookie("tz", "Europe/Madrid")
    html = teacher.get(f"/teach/classes/{other}/assignments/new").get_data(as_text=True)
    assert "Europe/Madrid" in html
    teacher.post(f"/teach/classes/{other}/assignments/new", data={
        "csrf_token": csrf_of(html), "test_id": str(world.test_id),
        "opens_at": "2026-09-01T08:00", "closes_at": "2027-01-15T17:30"})
    (assignment,) = _assignments(world, other)
    # Summer time (UTC+2) in September, winter time (UTC+1) in January.
    assert as_utc(assignment.opens_at) == datetime(2026, 9, 1, 6, 0, tzinfo=UTC)
    assert as_utc(assignment.closes_at) == datetime(2027, 1, 15, 16, 30, tzinfo=UTC)
    edit = teacher.get(f"/teach/classes/{other}/assignments/{assignment.id}") \
        .get_data(as_text=True)
    assert 'value="2026-09-01T08:00"' in edit and 'value="2027-01-15T17:30"' in edit


def test_form_errors_name_the_field_and_nothing_is_saved(student_world: StudentWorld) -> None:
    world = student_world
    other = world.ids["other_class_id"]
    teacher = world.client_for("teacher2")
    url = f"/teach/classes/{other}/assignments/new"
    token = csrf_of(teacher.get(url).get_data(as_text=True))
    response = teacher.post(url, data={
        "csrf_token": token, "test_id": "", "opens_at": "tomorrow-ish",
        "closes_at": "2026-01-01T10:00", "time_limit_minutes": "0", "max_attempts": "two"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert _error(html, "test_id") == "Choose one of the tests offered."
    assert _error(html, "opens_at").startswith("Enter a date and time")
    assert _error(html, "time_limit_minutes") == "Enter a whole number from 1 to 1440."
    assert _error(html, "max_attempts") == "Enter a whole number from 1 to 1000."
    assert 'value="tomorrow-ish"' in html and 'value="two"' in html  # the form keeps its input
    response = teacher.post(url, data={
        "csrf_token": token, "test_id": "999999", "opens_at": "2026-02-01T10:00",
        "closes_at": "2026-01-01T10:00"})
    html = response.get_data(as_text=True)
    assert _error(html, "test_id") == "Choose one of the tests offered."
    assert _error(html, "closes_at") == "The closing time must be after the opening time."
    assert _assignments(world, other) == []


def test_a_post_without_the_csrf_token_changes_nothing(student_world: StudentWorld) -> None:
    world = student_world
    other = world.ids["other_class_id"]
    teacher = world.client_for("teacher2")
    response = teacher.post(f"/teach/classes/{other}/assignments/new",
                            data={"test_id": str(world.test_id)})
    assert response.status_code == 400
    assert _assignments(world, other) == []


def test_a_teacher_changes_and_removes_an_assignment(student_world: StudentWorld) -> None:
    world = student_world
    class_id = world.ids["class_id"]
    (assignment,) = _assignments(world, class_id)
    teacher = world.client_for("teacher1")
    class_page = teacher.get(f"/teach/classes/{class_id}").get_data(as_text=True)
    url = f"/teach/classes/{class_id}/assignments/{assignment.id}"
    assert f'href="{url}"' in class_page
    html = teacher.get(url).get_data(as_text=True)
    past = utcnow() - timedelta(hours=1)
    response = teacher.post(url, data={"csrf_token": csrf_of(html), "opens_at": "",
                                       "closes_at": _local(past), "time_limit_minutes": "15"})
    assert response.status_code == 303
    (changed,) = _assignments(world, class_id)
    assert changed.time_limit_minutes == 15 and changed.max_attempts is None
    assert as_utc(changed.closes_at) == past.replace(second=0, microsecond=0)
    # The window has closed: the class's students can no longer start the test.
    student = world.client_for("student1")
    assert f"/tests/{world.test_id}/start" not in student.get("/my-tests").get_data(as_text=True)
    response = teacher.post(url + "/delete", data={"csrf_token": csrf_of(html)})
    assert response.status_code == 303
    page = teacher.get(response.headers["Location"]).get_data(as_text=True)
    assert "Maths is no longer assigned to class 7A. Attempts already made are kept." in page
    assert _assignments(world, class_id) == []


def test_others_cannot_see_or_change_the_assignments(student_world: StudentWorld) -> None:
    world = student_world
    class_id = world.ids["class_id"]
    (assignment,) = _assignments(world, class_id)
    url = f"/teach/classes/{class_id}/assignments/{assignment.id}"
    teacher2 = world.client_for("teacher2")
    token = csrf_of(teacher2.get("/teach/classes").get_data(as_text=True))
    assert teacher2.get(url).status_code == 404
    assert teacher2.post(url, data={"csrf_token": token, "time_limit_minutes": "5"}) \
        .status_code == 404
    assert teacher2.post(url + "/delete", data={"csrf_token": token}).status_code == 404
    other = world.ids["other_class_id"]  # teacher2's class, but not this assignment's
    assert teacher2.get(f"/teach/classes/{other}/assignments/{assignment.id}").status_code == 404
    assert world.client_for("student1").get(url).status_code == 403
    assert world.client_for("admin1").get(url).status_code == 200
    (unchanged,) = _assignments(world, class_id)
    assert unchanged.time_limit_minutes is None


def test_an_administrator_sets_a_students_time_accommodation(
        student_world: StudentWorld) -> None:
    world = student_world
    class_id, student_id = world.ids["class_id"], world.ids["users"]["student1"]
    url = f"/teach/classes/{class_id}/students/{student_id}/accommodation"
    # The class teacher reads it but cannot change it: it applies to every class's tests.
    own = world.client_for("teacher1")
    assert f'href="{url}"' in own.get(f"/teach/classes/{class_id}").get_data(as_text=True)
    html = own.get(url).get_data(as_text=True)
    assert 'id="read-only"' in html and "<button type=\"submit\">" not in html
    refused = own.post(url, data={"csrf_token": csrf_of(html), "time": "none"})
    assert refused.status_code == 403
    with world.db() as db:
        assert db.get(Accommodation, student_id) is None
    teacher = world.client_for("admin1")
    html = teacher.get(url).get_data(as_text=True)
    assert 'id="read-only"' not in html
    assert 'id="time-standard" name="time" value="standard" checked' in html
    bad = teacher.post(url, data={"csrf_token": csrf_of(html), "time": "extended",
                                  "time_factor": "5"})
    assert bad.status_code == 422
    assert _error(bad.get_data(as_text=True), "time_factor") == \
        "Enter a number from 1 to 4, for example 1.5."
    bad = teacher.post(url, data={"csrf_token": csrf_of(html), "time": "forever"})
    assert _error(bad.get_data(as_text=True), "time") == "Choose one of the options offered."
    with world.db() as db:
        assert db.scalar(select(func.count()).select_from(Accommodation)) == 0
    done = teacher.post(url, data={"csrf_token": csrf_of(html), "time": "extended",
                                   "time_factor": "2,5", "note": "dyslexia plan"})
    assert done.status_code == 303
    page = teacher.get(done.headers["Location"]).get_data(as_text=True)
    assert "extra time \u00d72.5" in page
    with world.db() as db:
        row = db.get(Accommodation, student_id)
        assert (row.time, row.time_factor, row.note) == \
            (TimeAccommodation.EXTENDED, 2.5, "dyslexia plan")
    # With a 20-minute limit, student1's attempt gets 50 minutes; with "no limit", none.
    world.set_time_limit(20)
    student = world.client_for("student1")
    tests = student.get("/my-tests").get_data(as_text=True)
    student.post(f"/tests/{world.test_id}/start", data={"csrf_token": csrf_of(tests)})
    (attempt,) = world.attempts("student1")
    assert as_utc(attempt.deadline) - as_utc(attempt.started_at) == timedelta(minutes=50)
    teacher.post(url, data={"csrf_token": csrf_of(html), "time": "none"})
    with world.db() as db:
        db.get(Attempt, attempt.id).status = "abandoned"
    tests = student.get("/my-tests").get_data(as_text=True)
    student.post(f"/tests/{world.test_id}/start", data={"csrf_token": csrf_of(tests)})
    assert world.attempts("student1")[-1].deadline is None


def test_only_the_class_teacher_sets_an_accommodation(student_world: StudentWorld) -> None:
    world = student_world
    class_id, student_id = world.ids["class_id"], world.ids["users"]["student1"]
    url = f"/teach/classes/{class_id}/students/{student_id}/accommodation"
    teacher2 = world.client_for("teacher2")
    token = csrf_of(teacher2.get("/teach/classes").get_data(as_text=True))
    assert teacher2.get(url).status_code == 404
    assert teacher2.post(url, data={"csrf_token": token, "time": "none"}).status_code == 404
    other = world.ids["other_class_id"]  # teacher2's class: student1 is not in it
    assert teacher2.get(f"/teach/classes/{other}/students/{student_id}/accommodation") \
        .status_code == 404
    assert world.client_for("student1").get(url).status_code == 403
    with world.db() as db:
        assert db.get(Accommodation, student_id) is None


@pytest.mark.browser
@pytest.mark.parametrize("language", ["en", "es"])
def test_the_forms_in_a_browser(sqlite_world: StudentWorld, browser, language) -> None:
    world = sqlite_world
    class_id, student_id = world.ids["class_id"], world.ids["users"]["student2"]
    context = browser.new_context(locale="es-ES" if language == "es" else "en-GB")
    page = context.new_page()
    violations = []
    try:
        with LiveServer(world.app) as live:
            page.goto(live.url + "/")
            page.locator("#username").fill("teacher1")
            page.locator("#password").fill(world.password)
            with page.expect_navigation():
                page.locator("form.card button[type=submit]").click()
            page.goto(f"{live.url}/teach/classes/{class_id}")
            violations += Axe().run(page).response["violations"]
            page.locator(f'a[href="/teach/classes/{class_id}/assignments/new"]').click()
            page.locator("#time_limit_minutes").fill("0")
            page.locator("#opens_at").fill("2026-09-02T08:00")
            page.locator("#closes_at").fill("2026-09-01T08:00")
            with page.expect_navigation():
                page.locator("form.card button[type=submit]").click()
            assert page.locator("#test_id-error").is_visible()
            assert page.locator("#closes_at-error").is_visible()
            assert page.locator("#time_limit_minutes").get_attribute("aria-invalid") == "true"
            violations += Axe().run(page).response["violations"]
            save_screenshot(page, f"teacher-assignment-errors-{language}")
            page.set_viewport_size({"width": 375, "height": 800})
            assert page.evaluate("document.documentElement.scrollWidth") <= 375
            save_screenshot(page, f"teacher-assignment-errors-{language}-375")
            page.set_viewport_size({"width": 1280, "height": 800})
            page.goto(f"{live.url}/teach/classes/{class_id}")
            assert page.locator("#roster").is_visible()
            violations += Axe().run(page).response["violations"]
            save_screenshot(page, f"teacher-class-assignments-{language}")
            # A teacher reads a student's accommodation; only an administrator changes it.
            page.goto(f"{live.url}/teach/classes/{class_id}/students/{student_id}/accommodation")
            assert page.locator("#read-only").is_visible()
            assert page.locator("#time-extended").is_disabled()
            violations += Axe().run(page).response["violations"]
            page.set_viewport_size({"width": 375, "height": 800})
            assert page.evaluate("document.documentElement.scrollWidth") <= 375
            save_screenshot(page, f"teacher-accommodation-{language}-375")
    finally:
        context.close()
    serious = [f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in violations
               if v["impact"] in ("serious", "critical")]
    assert not serious, serious
