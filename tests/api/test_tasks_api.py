"""The tasks and drafts API end to end on SQLite and PostgreSQL: setting tasks, handing in
versions with files (multipart), reading, comparing and commenting on them, downloading files
behind the access checks, and the bad input each gets a clear 4xx for."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from sqlalchemy import func, select

from api.db import get_session
from evidence.models import Draft, StoredFile
from tests.evidence import samples


def _task(world, **body):
    body = {"title": "Fractions essay", "instructions": "Explain **halves**.",
            "skills": ["algebra"], **body}
    r = world.call("post", f"/api/v1/classes/{world.class_id}/tasks", "teacher1", json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _send(world, task_id, user="student1", body="My work", final=False, files=()):
    data = {"body": body, "final": "true" if final else "false",
            "files": [(io.BytesIO(content), name) for name, content in files]}
    return world.call("post", f"/api/v1/tasks/{task_id}/drafts", user, data=data,
                      content_type="multipart/form-data")


def _count(world, model) -> int:
    with world.app.app_context():
        return get_session().scalar(select(func.count()).select_from(model))


def test_teachers_set_tasks_for_their_classes_and_students_see_them(world) -> None:
    task = _task(world, due_at="2030-05-01T10:00:00+02:00")
    assert task["activity_id"] == f"http://localhost/xapi/activities/tasks/{task['id']}"
    assert task["due_at"] == "2030-05-01T08:00:00+00:00"
    assert task["archived"] is False
    mine = world.call("get", "/api/v1/tasks", "student1").get_json()
    assert [t["id"] for t in mine] == [task["id"]]
    assert world.call("get", "/api/v1/tasks", "student3").get_json() == []
    assert world.call("get", f"/api/v1/tasks/{task['id']}", "student1").status_code == 200
    for user in ("student3", "teacher2", "assessor1"):
        assert world.call("get", f"/api/v1/tasks/{task['id']}", user).status_code == 404
    r = world.call("get", f"/api/v1/classes/{world.class_id}/tasks", "teacher2")
    assert r.status_code == 404
    r = world.call("post", f"/api/v1/classes/{world.class_id}/tasks", "student1",
                   json={"title": "x"})
    assert r.status_code == 403
    listed = world.call("get", f"/api/v1/classes/{world.class_id}/tasks", "teacher1").get_json()
    assert listed["total"] == 1


def test_task_input_is_checked_field_by_field(world) -> None:
    url = f"/api/v1/classes/{world.class_id}/tasks"
    r = world.call("post", url, "teacher1", json={"title": "x", "skills": ["algebra", "poetry"]})
    assert r.status_code == 422
    assert r.get_json()["errors"] == [{"field": "skills[1]", "message": (
        "skills[1]: 'poetry' is not a skill of the item bank")}]
    r = world.call("post", url, "teacher1", json={"title": "x", "due_at": "2030-05-01T10:00"})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "json.due_at"
    r = world.call("post", url, "teacher1", json={"instructions": "no title"})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "json.title"
    r = world.call("post", url, "teacher1", json={"title": "x", "class_id": 3})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "json.class_id"


def test_a_student_hands_in_versions_with_files_judged_by_content(world) -> None:
    task = _task(world)
    pdf, png = samples.pdf(), samples.png()
    r = _send(world, task["id"], files=[("photo.png", pdf), ("diagram.png", png)])
    assert r.status_code == 201, r.get_json()
    first = r.get_json()
    assert r.headers["Location"].endswith(f"/api/v1/drafts/{first['id']}")
    assert first["version"] == 1 and first["final"] is False and first["late"] is False
    assert [(f["filename"], f["media_type"], f["size"]) for f in first["files"]] == [
        ("photo.png", "application/pdf", len(pdf)), ("diagram.png", "image/png", len(png))]
    assert first["files"][0]["sha256"] == hashlib.sha256(pdf).hexdigest()
    files_dir = Path(world.app.config["FILES_DIR"])
    digest = first["files"][0]["sha256"]
    assert (files_dir / digest[:2] / digest[2:4] / digest).read_bytes() == pdf

    second = _send(world, task["id"], body="Better", final=True).get_json()
    assert (second["version"], second["final"]) == (2, True)
    r = _send(world, task["id"], body="After the final one")
    assert r.status_code == 409
    assert "version 2 was handed in as final" in r.get_json()["detail"]
    assert world.call("get", f"/api/v1/drafts/{first['id']}", "student1").get_json()[
        "comments"] == []


def test_files_download_with_their_stored_type_behind_the_access_checks(world) -> None:
    task = _task(world)
    pdf, png = samples.pdf(), samples.png()
    files = _send(world, task["id"], files=[("essay.png", pdf), ("pic.png", png)]).get_json()[
        "files"]
    r = world.call("get", files[0]["url"], "student1")
    assert r.status_code == 200 and r.data == pdf
    assert r.headers["Content-Type"] == "application/pdf"
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert "essay.png" in r.headers["Content-Disposition"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert "sandbox" in r.headers["Content-Security-Policy"]
    r = world.call("get", files[1]["url"], "teacher1")
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    assert r.headers["Content-Disposition"].startswith("inline;")
    for user in ("student2", "student3", "teacher2", "assessor1"):
        assert world.call("get", files[0]["url"], user).status_code == 404
    assert world.call("get", files[0]["url"]).status_code == 401
    r = world.call("get", "/api/v1/files/..%2f..%2fsecret_key", "admin1")
    assert r.status_code in (404, 422)
    r = world.call("get", "/api/v1/files/" + "A" * 64, "admin1")
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "sha256"


def test_refused_files_name_the_file_and_nothing_is_kept(world) -> None:
    task = _task(world)
    r = _send(world, task["id"], files=[("ok.pdf", samples.pdf()), ("essay.pdf", samples.HTML)])
    assert r.status_code == 422
    problem = r.get_json()
    assert problem["errors"][0]["field"] == "files[1]"
    assert "'essay.pdf' is not of a type allowed" in problem["detail"]
    r = _send(world, task["id"], files=[("drawing.svg", samples.SVG)])
    assert r.status_code == 422 and "'drawing.svg'" in r.get_json()["detail"]
    r = _send(world, task["id"], files=[("blank.pdf", b"")])
    assert r.status_code == 422 and "'blank.pdf' is empty" in r.get_json()["detail"]
    world.app.config["FILES_MAX_BYTES"] = 2048
    big = samples.pdf("x" * 3000)
    r = _send(world, task["id"], files=[("big.pdf", big)])
    assert r.status_code == 422
    assert (f"'big.pdf' is {len(big) / 1024:.1f} KB; each file may be at most 2.0 KB"
            in r.get_json()["detail"])
    world.app.config["FILES_MAX_BYTES"] = 10_000
    world.app.config["FILES_QUOTA_BYTES"] = 5_000
    assert _send(world, task["id"], files=[("a.pdf", samples.pdf("a" * 3000))]).status_code == 201
    r = _send(world, task["id"], files=[("b.pdf", samples.pdf("b" * 3000))])
    assert r.status_code == 422
    assert "'b.pdf' would take your stored files to" in r.get_json()["detail"]
    r = _send(world, task["id"], body="bad\x00text")
    assert r.status_code == 422
    r = _send(world, task["id"], body="   ")
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "body"
    assert _count(world, Draft) == 1 and _count(world, StoredFile) == 1
    files_dir = Path(world.app.config["FILES_DIR"])
    assert len([p for p in files_dir.rglob("*") if p.is_file()]) == 1


def test_who_reads_which_drafts(world) -> None:
    task = _task(world)
    mine = _send(world, task["id"], body="one").get_json()
    theirs = _send(world, task["id"], user="student2", body="two").get_json()
    url = f"/api/v1/tasks/{task['id']}/drafts"
    assert [d["id"] for d in world.call("get", url, "student1").get_json()["items"]] == \
        [mine["id"]]
    everyone = world.call("get", url, "teacher1").get_json()["items"]
    assert {d["id"] for d in everyone} == {mine["id"], theirs["id"]}
    one = world.call("get", url, "teacher1",
                     query_string={"student_id": world.users["student2"]}).get_json()
    assert [d["id"] for d in one["items"]] == [theirs["id"]]
    r = world.call("get", url, "student1", query_string={"student_id": world.users["student2"]})
    assert r.status_code == 404
    assert world.call("get", url, "teacher2").status_code == 404
    assert world.call("get", f"/api/v1/drafts/{theirs['id']}", "student1").status_code == 404
    assert world.call("get", f"/api/v1/drafts/{theirs['id']}", "admin1").status_code == 200
    r = _send(world, task["id"], user="student3", body="not my class")
    assert r.status_code == 404
    r = _send(world, task["id"], user="teacher1", body="not a student")
    assert r.status_code == 403


def test_diff_between_two_versions(world) -> None:
    task = _task(world)
    one = _send(world, task["id"], body="Halves are equal parts.",
                files=[("a.pdf", samples.pdf())]).get_json()
    two = _send(world, task["id"], body="Halves are two equal parts.",
                files=[("b.png", samples.png())]).get_json()
    r = world.call("get", f"/api/v1/drafts/{two['id']}/diff", "teacher1",
                   query_string={"against": one["id"]})
    assert r.status_code == 200, r.get_json()
    diff = r.get_json()
    assert diff["from"]["version"] == 1 and diff["to"]["version"] == 2
    assert diff["segments"] == [{"op": "equal", "text": "Halves are "},
                                {"op": "insert", "text": "two "},
                                {"op": "equal", "text": "equal parts."}]
    assert (diff["words_inserted"], diff["words_deleted"]) == (1, 0)
    assert diff["files_added"] == ["b.png"] and diff["files_removed"] == ["a.pdf"]
    other = _send(world, task["id"], user="student2", body="x").get_json()
    r = world.call("get", f"/api/v1/drafts/{two['id']}/diff", "teacher1",
                   query_string={"against": other["id"]})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "against"
    r = world.call("get", f"/api/v1/drafts/{two['id']}/diff", "student1",
                   query_string={"against": other["id"]})
    assert r.status_code == 404 and r.get_json()["errors"][0]["field"] == "against"
    r = world.call("get", f"/api/v1/drafts/{two['id']}/diff", "student1")
    assert r.status_code == 422


def test_teachers_comment_and_students_read_the_comments(world) -> None:
    task = _task(world)
    draft = _send(world, task["id"], body="Draft").get_json()
    url = f"/api/v1/drafts/{draft['id']}/comments"
    r = world.call("post", url, "teacher1", json={"body": "Add an example."})
    assert r.status_code == 201
    assert r.get_json()["author"] == "Teacher1"
    seen = world.call("get", url, "student1").get_json()
    assert [c["body"] for c in seen] == ["Add an example."]
    assert world.call("get", f"/api/v1/drafts/{draft['id']}", "student1").get_json()[
        "comments"][0]["body"] == "Add an example."
    assert world.call("post", url, "student1", json={"body": "Me"}).status_code == 403
    assert world.call("post", url, "teacher2", json={"body": "Hi"}).status_code == 404
    r = world.call("post", url, "teacher1", json={"body": ""})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "json.body"
    assert world.call("get", url, "student2").status_code == 404


def test_archiving_takes_a_task_off_lists_and_closes_it(world) -> None:
    task = _task(world)
    _send(world, task["id"], body="Before")
    r = world.call("patch", f"/api/v1/tasks/{task['id']}", "teacher1",
                   json={"title": "Fractions essay (revised)", "skills": ["geometry"]})
    assert r.status_code == 200 and r.get_json()["skills"] == ["geometry"]
    assert world.call("patch", f"/api/v1/tasks/{task['id']}", "teacher2",
                      json={"title": "x"}).status_code == 404
    assert world.call("delete", f"/api/v1/tasks/{task['id']}", "teacher1").status_code == 204
    assert world.call("get", "/api/v1/tasks", "student1").get_json() == []
    r = _send(world, task["id"], body="After")
    assert r.status_code == 409 and "closed" in r.get_json()["detail"]
    assert len(world.call("get", f"/api/v1/tasks/{task['id']}/drafts",
                          "student1").get_json()["items"]) == 1
    listed = world.call("get", f"/api/v1/classes/{world.class_id}/tasks", "teacher1",
                        query_string={"archived": "false"}).get_json()
    assert listed["total"] == 0


def test_the_endpoints_are_in_the_openapi_document(world) -> None:
    paths = world.client.get("/api/v1/openapi.json").get_json()["paths"]
    for path in ("/api/v1/classes/{class_id}/tasks", "/api/v1/tasks", "/api/v1/tasks/{task_id}",
                 "/api/v1/tasks/{task_id}/drafts", "/api/v1/drafts/{draft_id}",
                 "/api/v1/drafts/{draft_id}/diff", "/api/v1/drafts/{draft_id}/comments",
                 "/api/v1/files/{sha256}"):
        assert path in paths, path
    body = paths["/api/v1/tasks/{task_id}/drafts"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in body


def test_file_limits_come_from_the_environment(monkeypatch, sqlite_url) -> None:
    import pytest

    from api.app import create_app

    monkeypatch.setenv("CAT_ENGINE_FILE_MAX_BYTES", "2048")
    monkeypatch.setenv("CAT_ENGINE_FILE_QUOTA_BYTES", "65536")
    app = create_app({"DATABASE_URL": sqlite_url, "SECRET_KEY": "x"})
    assert (app.config["FILES_MAX_BYTES"], app.config["FILES_QUOTA_BYTES"]) == (2048, 65536)
    monkeypatch.setenv("CAT_ENGINE_FILE_MAX_BYTES", "10MB")
    with pytest.raises(ValueError, match="CAT_ENGINE_FILE_MAX_BYTES must be a whole number"):
        create_app({"DATABASE_URL": sqlite_url, "SECRET_KEY": "x"})
