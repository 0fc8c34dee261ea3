"""Adversarial review of tasks, drafts and files through the HTTP API (SQLite and PostgreSQL):
access by id guessing, by a shared file's digest, through ``against=``, after unenrolment and
on archived tasks; hostile filenames in downloads; multipart edge cases that must stay 4xx."""

from __future__ import annotations

import hashlib
import io

from sqlalchemy import delete, event, func, select

from api.db import engine_of, get_session
from evidence.models import Draft, DraftFile
from storage.accounts import class_members
from tests.evidence import samples


def _task(world, user="teacher1", class_id=None, **body):
    body = {"title": "Essay", "instructions": "Write.", **body}
    r = world.call("post", f"/api/v1/classes/{class_id or world.class_id}/tasks", user,
                   json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _send(world, task_id, user="student1", body="My work", files=(), **extra):
    data = {"body": body, "files": [(io.BytesIO(c), n) for n, c in files], **extra}
    return world.call("post", f"/api/v1/tasks/{task_id}/drafts", user, data=data,
                      content_type="multipart/form-data")


def _counts(world) -> tuple[int, int]:
    with world.app.app_context():
        s = get_session()
        return (s.scalar(select(func.count()).select_from(Draft)),
                s.scalar(select(func.count()).select_from(DraftFile)))


def test_probe_access(world) -> None:
    task = _task(world)
    other = _task(world, "teacher2", world.other_class_id)
    pdf = samples.pdf("secret of student1")
    d1 = _send(world, task["id"], files=[("mine.pdf", pdf)]).get_json()
    d1b = _send(world, task["id"], body="My work, better").get_json()
    d2 = _send(world, task["id"], "student2", body="Student two").get_json()
    assert _send(world, task["id"], "student3").status_code == 404
    assert _send(world, other["id"], "student1").status_code == 404
    for user in ("student2", "student3", "teacher2", "assessor1"):
        assert world.call("get", f"/api/v1/drafts/{d1['id']}", user).status_code == 404, user
        assert world.call("get", f"/api/v1/drafts/{d1['id']}/comments", user).status_code == 404
        r = world.call("get", f"/api/v1/drafts/{d1b['id']}/diff?against={d1['id']}", user)
        assert r.status_code == 404, user
        r = world.call("get", f"/api/v1/tasks/{task['id']}/drafts?student_id="
                       f"{world.users['student1']}", user)
        assert r.status_code == 404, (user, r.get_json())
        r = world.call("post", f"/api/v1/drafts/{d1['id']}/comments", user, json={"body": "x"})
        assert r.status_code in (403, 404), user
    # against= another student's draft from one's own
    r = world.call("get", f"/api/v1/drafts/{d2['id']}/diff?against={d1['id']}", "student2")
    assert r.status_code == 404
    # the teacher comparing two students' drafts: a 422, not a mix
    r = world.call("get", f"/api/v1/drafts/{d2['id']}/diff?against={d1['id']}", "teacher1")
    assert r.status_code == 422, r.get_json()
    # dedupe: student2 uploads the same bytes under another name
    d2f = _send(world, task["id"], "student2", files=[("theirs.pdf", pdf)]).get_json()
    url = d2f["files"][0]["url"]
    r = world.call("get", url, "student2")
    assert r.status_code == 200 and "mine.pdf" not in r.headers["Content-Disposition"]
    assert world.call("get", f"/api/v1/drafts/{d1['id']}", "student2").status_code == 404
    r = world.call("get", f"/api/v1/tasks/{task['id']}/drafts", "student2").get_json()
    assert {d["student_id"] for d in r["items"]} == {world.users["student2"]}
    # unenrolment
    with world.app.app_context():
        s = get_session()
        s.execute(delete(class_members).where(class_members.c.user_id == world.users["student1"]))
        s.commit()
    r = world.call("get", f"/api/v1/tasks/{task['id']}/drafts", "teacher1").get_json()
    assert world.users["student1"] not in {d["student_id"] for d in r["items"]}
    assert world.call("get", f"/api/v1/drafts/{d1['id']}", "teacher1").status_code == 404
    assert world.call("get", f"/api/v1/drafts/{d1['id']}", "student1").status_code == 200
    assert _send(world, task["id"], "student1").status_code == 404
    r = world.call("get", f"/api/v1/files/{d1['files'][0]['sha256']}", "teacher1")
    # teacher1 still sees student2's draft with the same bytes: allowed, under student2's name
    assert r.status_code == 200 and "mine.pdf" not in r.headers["Content-Disposition"]


def test_probe_filenames_and_multipart(world) -> None:
    task = _task(world)
    png = samples.png()
    hostile = 'a"\r\nX-Evil: 1;\u202egnp.exe\x00' + "é" * 400 + ".png"
    r = _send(world, task["id"], files=[(hostile, png)])
    assert r.status_code == 201, r.get_json()
    f = r.get_json()["files"][0]
    assert "\r" not in f["filename"] and "\u202e" not in f["filename"]
    assert len(f["filename"]) <= 255
    r = world.call("get", f["url"], "student1")
    assert r.status_code == 200
    assert "X-Evil" not in r.headers and "\n" not in r.headers["Content-Disposition"]
    before = _counts(world)
    cases = [
        {"files": [("a.png", png)] * 11},
        {"files": [("empty.png", b"")]},
        {"files": [("x.pdf", b"<svg xmlns='http://www.w3.org/2000/svg'><script>1</script>")]},
        {"files": [("x.pdf", b"<html><script>alert(1)</script>")]},
        {"body": "", "files": ()},
        {"body": "x" * 100_001},
        {"final": "maybe"},
    ]
    for case in cases:
        r = _send(world, task["id"], **case)
        assert r.status_code == 422, (case.get("final"), r.status_code, r.get_json())
    assert _counts(world) == before  # nothing of a refused version is kept
    r = world.call("post", f"/api/v1/tasks/{task['id']}/drafts", "student1",
                   data={"body": "x", "files": "not a file"}, content_type="multipart/form-data")
    assert r.status_code < 500, r.get_json()
    r = world.call("post", f"/api/v1/tasks/{task['id']}/drafts", "student1",
                   data={"body": ["one", "two"]}, content_type="multipart/form-data")
    assert r.status_code < 500, r.get_json()
    r = world.call("post", f"/api/v1/tasks/{task['id']}/drafts", "student1",
                   data=b"body=\xff\xfe", content_type="application/x-www-form-urlencoded")
    assert r.status_code < 500
    r = world.call("post", f"/api/v1/tasks/{task['id']}/drafts", "student1",
                   data=b"--xx\r\nContent-Disposition: form-data; name=\"body\"\r\n\r\n\xff\xfe"
                        b"\r\n--xx--\r\n", content_type="multipart/form-data; boundary=xx")
    assert r.status_code < 500
    r = world.call("post", f"/api/v1/tasks/{task['id']}/drafts", "student1",
                   data={"body": "x", "files": [(io.BytesIO(samples.pdf()), "")]},
                   content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["files"][0]["filename"] == "file-1"


def test_a_file_download_costs_the_same_queries_however_many_drafts_carry_it(world) -> None:
    """A content many students hand in (a worksheet) must not cost a query per carrying draft,
    least of all on the 404 of someone who may see none of them (a cheap way to load the
    database)."""
    task = _task(world)
    sheet = samples.pdf("the class worksheet")
    sha = hashlib.sha256(sheet).hexdigest()
    _send(world, task["id"], "student1", files=[("sheet.pdf", sheet)])
    engine = engine_of(world.app)

    def queries(user: str) -> tuple[int, int]:
        statements: list[str] = []

        def count(_conn, _cursor, statement, *_args) -> None:
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", count)
        try:
            status = world.call("get", f"/api/v1/files/{sha}", user).status_code
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return status, len(statements)

    users = ("teacher2", "teacher1", "student1", "student2", "admin1")
    for user in users:
        queries(user)  # warm: the token, the caches
    few = {u: queries(u) for u in users}
    with world.app.app_context():
        session = get_session()
        for version in range(2, 26):
            session.add(Draft(task_id=task["id"], student_id=world.users["student1"],
                              version=version, body="again",
                              files=[DraftFile(sha256=sha, filename=f"v{version}.pdf",
                                               position=0)]))
        session.commit()
    many = {u: queries(u) for u in users}
    assert {u: s for u, (s, _) in many.items()} == {
        "teacher2": 404, "teacher1": 200, "student1": 200, "student2": 404, "admin1": 200}
    assert many == few, (few, many)
    # The student leaves the class: their teacher may see none of the 25 drafts any more.
    with world.app.app_context():
        session = get_session()
        session.execute(delete(class_members).where(
            class_members.c.user_id == world.users["student1"]))
        session.commit()
    assert queries("teacher1") == (404, few["teacher2"][1]), few


def test_probe_deleting_a_class_with_tasks_and_drafts(world) -> None:
    task = _task(world)
    d = _send(world, task["id"], files=[("a.pdf", samples.pdf())]).get_json()
    r = world.call("post", f"/api/v1/drafts/{d['id']}/comments", "teacher1", json={"body": "ok"})
    assert r.status_code == 201
    r = world.call("delete", f"/api/v1/classes/{world.class_id}/students/"
                   f"{world.users['student1']}", "teacher1")
    assert r.status_code < 500, r.get_json()
    # the drafts are evidence: the class is kept while its tasks hold students' work
    r = world.call("delete", f"/api/v1/classes/{world.class_id}", "teacher1")
    assert r.status_code == 409 and "archive its tasks" in r.get_json()["detail"], r.get_json()
    assert world.call("get", f"/api/v1/drafts/{d['id']}", "student1").status_code == 200
    assert world.call("get", f"/api/v1/tasks/{task['id']}", "admin1").status_code == 200


def test_a_class_whose_tasks_hold_no_work_can_be_deleted(world) -> None:
    task = _task(world)
    r = world.call("delete", f"/api/v1/classes/{world.class_id}", "teacher1")
    assert r.status_code == 204, r.get_json()
    assert world.call("get", f"/api/v1/tasks/{task['id']}", "admin1").status_code == 404


def test_probe_oversized_and_many_part_requests(world) -> None:
    task = _task(world)
    big = samples.pdf() + b"\0" * (world.app.config["MAX_CONTENT_LENGTH"])
    before = _counts(world)
    r = _send(world, task["id"], files=[("big.pdf", big)])
    assert r.status_code == 413 and r.mimetype == "application/problem+json", r.status_code
    data = [("files", (io.BytesIO(samples.png()), f"{i}.png")) for i in range(1200)]
    r = world.call("post", f"/api/v1/tasks/{task['id']}/drafts", "student1",
                   data={"body": "x", "files": [f for _, f in data]},
                   content_type="multipart/form-data")
    assert r.status_code in (413, 422) and r.mimetype == "application/problem+json", (
        r.status_code, r.mimetype)
    r = _send(world, task["id"], files=[("two.pdf", samples.pdf())] * 2)
    assert r.status_code == 201
    assert [f["filename"] for f in r.get_json()["files"]] == ["two.pdf", "two.pdf"]
    assert _counts(world) == (before[0] + 1, before[1] + 2)
