"""The portfolio page and its JSON: sections, filters, paging, roles, staff-only fields, size;
and in Chromium (teacher and student, English and Spanish, 375 px, keyboard, axe)."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from sqlalchemy import delete, event, func, select

from api.db import engine_of
from evidence.models import (
    Attempt,
    Draft,
    DraftComment,
    DraftFile,
    Statement,
    StatementActivity,
    StoredFile,
    Task,
    XapiClient,
)
from evidence.portfolio import portfolio
from evidence.scope import student_scope
from storage import utcnow
from storage.accounts import User, class_members
from tests.conftest import LiveServer, save_screenshot
from tests.delivery_ui.conftest import StudentWorld
from tests.delivery_ui.test_teacher_pages import _finish

ANSWERED = "http://adlnet.gov/expapi/verbs/answered"
EXPERIENCED = "http://adlnet.gov/expapi/verbs/experienced"
TASK_IRI = "http://school.example/xapi/activities/tasks/{}"


def seed(world: StudentWorld, *, n_statements: int = 12, username: str = "student1") -> dict:
    """A task with two drafts (a file, a comment), another class's task, a tool's statements
    (every third about the task), and the engine's statements of a finished attempt."""
    attempt_id = _finish(world, username)
    student = world.ids["users"][username]
    now = utcnow()
    with world.db() as session:
        task = Task(class_id=world.ids["class_id"], title="Bridge design",
                    instructions="Design a bridge.", skills=["algebra"],
                    due_at=now + timedelta(days=7))
        other = Task(class_id=world.ids["other_class_id"], title="Other class task")
        session.add_all([task, other])
        session.flush()
        task.activity_id = TASK_IRI.format(task.id)
        session.add(StoredFile(sha256="a" * 64, size=10, media_type="application/pdf"))
        first = Draft(task_id=task.id, student_id=student, version=1, body="First idea",
                      submitted_at=now - timedelta(days=2))
        second = Draft(task_id=task.id, student_id=student, version=2, body="Better",
                       final=True, submitted_at=now - timedelta(days=1))
        session.add_all([first, second])
        session.flush()
        session.add(DraftFile(draft_id=second.id, sha256="a" * 64, filename="plan.pdf",
                              position=1))
        session.add(DraftComment(draft_id=first.id, author_id=world.ids["users"]["teacher1"],
                                 body="Go on"))
        client = XapiClient(name="Geometry tool", class_id=world.ids["class_id"], key="tool",
                            secret_hash="x")
        session.add(client)
        session.flush()
        registration = str(uuid.uuid4())
        for n in range(n_statements):
            sid = str(uuid.uuid4())
            about_task = n % 3 == 0
            verb = EXPERIENCED if about_task else ANSWERED
            object_id = task.activity_id if about_task else f"http://tool.example/step/{n}"
            name = "Bridge design" if about_task else f"Step {n}"
            statement = Statement(
                id=sid, timestamp=now - timedelta(minutes=n_statements - n), actor_id=student,
                verb_id=verb, object_id=object_id, registration=registration,
                client_id=client.id, content_hash=sid.replace("-", "") * 2, body={
                    "id": sid, "verb": {"id": verb, "display": {"en-US": verb.rsplit("/", 1)[1]}},
                    "object": {"id": object_id, "definition": {"name": {"en-US": name}}},
                    "result": {"success": n % 2 == 0}})
            session.add(statement)
            session.flush()
            session.add(StatementActivity(statement_seq=statement.seq, activity_id=object_id,
                                          relation="object"))
        # the engine's own record of one answer: right or wrong is staff-only
        sid = str(uuid.uuid4())
        session.add(Statement(
            id=sid, timestamp=now, actor_id=student, verb_id=ANSWERED,
            object_id="http://school.example/xapi/activities/items/IT-001",
            registration=session.get(Attempt, attempt_id).registration, attempt_id=attempt_id,
            content_hash=sid.replace("-", "") * 2, body={
                "id": sid, "verb": {"id": ANSWERED, "display": {"en-US": "answered"}},
                "object": {"id": "http://school.example/xapi/activities/items/IT-001",
                           "definition": {"name": {"en-US": "Engine item"}}},
                "context": {"extensions": {
                    "http://school.example/xapi/extensions/position": 99}},
                "result": {"success": True}}))
        session.flush()
        # with the engine's own statements of the attempt (answered per question, completed)
        log_size = session.scalar(select(func.count()).select_from(Statement).where(
            Statement.actor_id == student))
        return {"attempt": attempt_id, "task": task.id, "other_task": other.id,
                "drafts": (first.id, second.id), "student": student, "log_size": log_size}


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _log(html: str) -> list[str]:
    block = re.search(r'<ol class="timeline log">(.*?)</ol>', html, re.S)
    return [] if block is None else [_text(li).strip()
                                     for li in re.findall(r"<li>(.*?)</li>", block.group(1), re.S)]


def _url(world: StudentWorld, seeded: dict, **args) -> str:
    query = "&".join(f"{k}={v}" for k, v in args.items())
    return (f"/teach/classes/{world.ids['class_id']}/students/{seeded['student']}/portfolio"
            + (f"?{query}" if query else ""))


def test_the_teacher_sees_every_section_with_filters(student_world: StudentWorld) -> None:
    seeded = seed(student_world)
    client = student_world.client_for("teacher1")
    response = client.get(_url(student_world, seeded))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    text = _text(html)
    assert "Portfolio of Student1" in text and "Maths" in text
    # drafts: a timeline linking to the drafts helper's pages, final marked, files and comments
    link = (f"/teach/classes/{student_world.ids['class_id']}/tasks/{seeded['task']}/students/"
            f"{seeded['student']}")
    assert html.count(f'href="{link}"') == 2
    assert "Version 2" in text and "final" in text and "1 file" in text and "1 comment" in text
    assert "Other class task" not in text  # another class's task is not this teacher's
    # indicators with their help text; staff see effort and person fit
    for words in ("Time on task", "Response-time effort", "Hints", "Retries", "Person fit",
                  "a tenth of the average time"):
        assert words in text, words
    log = _log(html)
    assert len(log) == seeded["log_size"] > 13
    # the engine's own statements name the test and the question, not the item's code
    assert "answered question 99 of Maths" in log[0] and "right" in log[0]
    # filters: by verb, by task (statements whose activity is the task's)
    by_verb = _log(client.get(_url(student_world, seeded, verb=EXPERIENCED)).get_data(
        as_text=True))
    assert len(by_verb) == 4 and all("worked on Bridge design" in e for e in by_verb)
    spanish = student_world.client_for("teacher1")
    spanish.set_cookie("lang", "es")
    in_spanish = _log(spanish.get(_url(student_world, seeded)).get_data(as_text=True))
    assert "respondió pregunta 99 de Maths" in in_spanish[0]  # ADL verbs in the reader's language
    assert any("trabajó en Bridge design" in e for e in in_spanish)
    by_task = _log(client.get(_url(student_world, seeded, task_id=seeded["task"])).get_data(
        as_text=True))
    assert by_task == by_verb
    refused = client.get(_url(student_world, seeded, task_id=seeded["other_task"]))
    assert refused.status_code == 422
    assert "Choose one of the tasks offered." in refused.get_data(as_text=True)
    assert len(_log(refused.get_data(as_text=True))) == seeded["log_size"]  # unfiltered
    assert client.get(_url(student_world, seeded, before="abc")).status_code == 422


def test_the_log_pages_back_and_the_page_stays_small(student_world: StudentWorld) -> None:
    seeded = seed(student_world, n_statements=230)
    client = student_world.client_for("teacher1")
    html = client.get(_url(student_world, seeded)).get_data(as_text=True)
    assert len(html.encode()) < 50_000, len(html.encode())
    first = _log(html)
    assert len(first) == 200
    older = re.search(r'<a href="([^"]+)#log" class="button secondary">', html).group(1)
    rest = _log(client.get(older.replace("&amp;", "&")).get_data(as_text=True))
    assert len(rest) == seeded["log_size"] - 200 and not set(rest) & set(first)
    # the oldest: the engine's record of the attempt (stored first), then the tool's
    assert "answered question 1 of Maths" in rest[-1]
    tool = [entry for entry in rest if "Maths" not in entry]
    assert "Bridge design" in tool[-1] and "Step 1" in tool[-2]


def test_who_may_open_a_portfolio(student_world: StudentWorld) -> None:
    seeded = seed(student_world)
    url = _url(student_world, seeded)
    assert student_world.client_for("teacher2").get(url).status_code == 404
    other_class = url.replace(f"/classes/{student_world.ids['class_id']}/",
                              f"/classes/{student_world.ids['other_class_id']}/")
    assert student_world.client_for("teacher2").get(other_class).status_code == 404
    assert student_world.client_for("student1").get(url).status_code == 403
    assert student_world.client_for("admin1").get(url).status_code == 200
    assert student_world.client_for(None).get(url).status_code == 302
    assert student_world.client_for("teacher1").get("/my-portfolio").status_code == 403


def test_the_student_sees_their_own_portfolio_without_staff_only_fields(
        student_world: StudentWorld) -> None:
    seeded = seed(student_world)
    client = student_world.client_for("student1")
    start = client.get("/my-tests").get_data(as_text=True)
    assert 'href="/my-portfolio"' in start
    html = client.get("/my-portfolio").get_data(as_text=True)
    text = _text(html)
    assert "My portfolio" in text and "Bridge design" in text
    assert html.count(f'href="/tasks/{seeded["task"]}"') == 2
    for hidden in ("Response-time effort", "Person fit", "To look at", "Theta"):
        assert hidden not in text, hidden
    log = _log(html)
    assert "question 99 of Maths" in log[0] and "right" not in log[0] and "wrong" not in log[0]
    assert any("wrong" in e for e in log[1:])  # the tool's own results stay
    assert "Other class task" not in text  # not enrolled in that class


def test_the_portfolio_as_json(student_world: StudentWorld) -> None:
    seeded = seed(student_world)
    client = student_world.app.test_client()

    def call(user: str, **query):
        token = client.post("/api/v1/auth/token", json={
            "username": user, "password": student_world.password}).get_json()["access_token"]
        return client.get(f"/api/v1/users/{seeded['student']}/portfolio",
                          query_string=query, headers={"Authorization": f"Bearer {token}"})

    staff = call("teacher1").get_json()
    assert staff["class_ids"] == [student_world.ids["class_id"]]
    assert [d["version"] for d in staff["tasks"][0]["drafts"]] == [1, 2]
    assert staff["tasks"][0]["drafts"][1] | {"id": 0, "submitted_at": ""} == {
        "id": 0, "version": 2, "final": True, "submitted_at": "", "files": 1, "comments": 0}
    assert len(staff["log"]["entries"]) == seeded["log_size"] and staff["log"]["older"] is None
    assert staff["attempts"][0]["theta"] is not None and "flags" in staff["attempts"][0]
    assert "person_fit" in staff["indicators"]["totals"]
    own = call("student1").get_json()
    assert "theta" not in own["attempts"][0] and "flags" not in own["attempts"][0]
    assert own["attempts"][0]["result"]["level"]
    assert "person_fit" not in own["indicators"]["totals"]
    assert own["log"]["entries"][0]["result"] is None
    assert call("teacher2").status_code == 404
    assert call("student2").status_code == 404
    bad = call("teacher1", task_id=seeded["other_task"])
    assert bad.status_code == 422 and "task_id" in bad.get_json()["detail"]
    assert call("teacher1", verb="x" * 3000).status_code == 422
    page = call("teacher1", before=staff["log"]["entries"][5]["seq"]).get_json()
    assert [e["seq"] for e in page["log"]["entries"]] == [
        e["seq"] for e in staff["log"]["entries"][6:]]


@pytest.mark.browser
@pytest.mark.parametrize("language", ["en", "es"])
def test_the_portfolio_in_a_browser(sqlite_world: StudentWorld, browser, language) -> None:
    seeded = seed(sqlite_world)
    violations = []
    context = browser.new_context(locale="es-ES" if language == "es" else "en-GB")
    page = context.new_page()
    es = language == "es"
    try:
        with LiveServer(sqlite_world.app) as live:
            for user in ("teacher1", "student1"):
                page.goto(live.url + "/")
                page.locator("#username").fill(user)
                page.locator("#password").fill(sqlite_world.password)
                with page.expect_navigation():
                    page.locator("form.card button[type=submit]").click()
                if user == "teacher1":
                    with page.expect_navigation():
                        page.get_by_role("link", name="Mis clases" if es else "My classes").click()
                    with page.expect_navigation():
                        page.get_by_role("link", name="7A").click()
                    with page.expect_navigation():
                        page.get_by_role("link", name=("Portafolio de Student1" if es
                                                       else "Portfolio of Student1")).click()
                else:
                    with page.expect_navigation():
                        page.get_by_role("link", name=re.compile(
                            "Mi portafolio" if es else "My portfolio")).click()
                assert page.locator("html").get_attribute("lang") == language
                assert page.locator("#log ol li").count() == seeded["log_size"]
                violations += Axe().run(page).response["violations"]
                save_screenshot(page, f"portfolio-{user}-{language}")
                # keyboard only: choose an action in the filter and send it
                page.locator("#verb").focus()
                page.keyboard.press("ArrowDown")  # the first verb offered
                page.keyboard.press("Tab")
                with page.expect_navigation():
                    page.keyboard.press("Enter")
                assert "verb=" in page.url
                assert 0 < page.locator("#log ol li").count() < seeded["log_size"]
                page.set_viewport_size({"width": 375, "height": 800})
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 375, f"the page is {width}px wide on a 375px screen"
                violations += Axe().run(page).response["violations"]
                save_screenshot(page, f"portfolio-{user}-{language}-375")
                page.set_viewport_size({"width": 1280, "height": 800})
                with page.expect_navigation():
                    page.locator("header form button[type=submit]").click()
    finally:
        context.close()
    serious = [f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in violations
               if v["impact"] in ("serious", "critical")]
    assert not serious, serious
    with sqlite_world.db() as session:
        assert session.scalar(select(Task.id).where(Task.id == seeded["task"]))


def test_the_portfolio_takes_the_same_number_of_queries_however_much_evidence(
        student_world: StudentWorld) -> None:
    """No query per attempt, task, draft or statement: more of each costs no more queries."""
    seeded = seed(student_world)
    engine = engine_of(student_world.app)
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    def queries() -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            with student_world.db() as session:
                teacher = session.get(User, student_world.ids["users"]["teacher1"])
                scope = student_scope(session, teacher, seeded["student"],
                                      student_world.ids["class_id"])
                data = portfolio(session, scope)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements), data

    before, small = queries()
    _finish(student_world, "student1")  # another attempt
    with student_world.db() as session:
        task = session.get(Task, seeded["task"])
        for version in (3, 4, 5):
            session.add(Draft(task_id=task.id, student_id=seeded["student"], version=version))
        extra = Task(class_id=student_world.ids["class_id"], title="Second task")
        session.add(extra)
        session.flush()
        session.add(Draft(task_id=extra.id, student_id=seeded["student"], version=1))
        session.expunge(extra)
    after, large = queries()
    assert len(large["attempts"]) == len(small["attempts"]) + 1
    drafts = {task["id"]: len(task["drafts"]) for task in large["tasks"]}
    assert drafts == {seeded["task"]: 5, extra.id: 1}
    assert after == before, (before, after)


def test_a_student_who_left_the_class_still_sees_their_own_drafts(
        student_world: StudentWorld) -> None:
    """As on the task pages: a student's drafts stay theirs after they leave the class."""
    seeded = seed(student_world)
    with student_world.db() as session:
        session.execute(delete(class_members).where(
            class_members.c.class_id == student_world.ids["class_id"],
            class_members.c.user_id == seeded["student"]))
    html = student_world.client_for("student1").get("/my-portfolio").get_data(as_text=True)
    assert "Bridge design" in _text(html)
    assert html.count(f'href="/tasks/{seeded["task"]}"') == 2
