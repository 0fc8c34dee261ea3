"""Adversarial review: the task pages take the same number of queries however many students,
versions, files and comments there are (no query per row), on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

from sqlalchemy import event, select

from api.db import engine_of
from evidence.models import Draft, DraftComment, DraftFile, StoredFile, Task
from storage.accounts import Role, SchoolClass, User
from tests.delivery_ui.conftest import StudentWorld
from tests.evidence import samples


def _fill(world: StudentWorld, task_id: int, n_students: int, n_versions: int,
          tag: str) -> int:
    """Add students to the class, each with versions carrying a file and a comment."""
    pdf = samples.pdf(tag)
    sha = hashlib.sha256(pdf).hexdigest()
    with world.db() as db:
        klass = db.get(SchoolClass, world.ids["class_id"])
        teacher_id = klass.teacher_id
        if db.get(StoredFile, sha) is None:
            db.add(StoredFile(sha256=sha, size=len(pdf), media_type="application/pdf"))
        last = None
        for s in range(n_students):
            student = User(username=f"{tag}-{s}", display_name=f"{tag} {s}", role=Role.STUDENT,
                           password_hash="x")
            klass.students.append(student)
            db.flush()
            last = student.id
            for v in range(1, n_versions + 1):
                draft = Draft(task_id=task_id, student_id=student.id, version=v,
                              body=f"version {v}", final=False,
                              files=[DraftFile(sha256=sha, filename=f"v{v}.pdf", position=0)])
                db.add(draft)
                db.flush()
                db.add(DraftComment(draft_id=draft.id, author_id=teacher_id, body="ok"))
        return last


def _count(world: StudentWorld, client, url: str) -> int:
    engine = engine_of(world.app)
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        response = client.get(url)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200, url
    return len(statements)


def test_task_pages_do_not_query_per_student_or_version(student_world: StudentWorld) -> None:
    world = student_world
    class_id = world.ids["class_id"]
    with world.db() as db:
        task = Task(class_id=class_id, title="Essay", instructions="Write.")
        db.add(task)
        db.flush()
        task_id = task.id
    teacher = world.client_for("teacher1")
    urls = lambda sid: [f"/teach/classes/{class_id}", f"/teach/classes/{class_id}/tasks/{task_id}",  # noqa: E731
                        f"/teach/classes/{class_id}/tasks/{task_id}/students/{sid}"]
    sid = _fill(world, task_id, 2, 2, "small")
    small = [_count(world, teacher, u) for u in urls(sid)]
    sid = _fill(world, task_id, 30, 10, "large")
    large = [_count(world, teacher, u) for u in urls(sid)]
    assert min(small) > 0 and large == small, (small, large)
    # The student's own page: two versions, then twelve.
    student = world.client_for("student1")
    sid1 = world.ids["users"]["student1"]

    def versions(start: int, stop: int) -> None:
        with world.db() as db:
            for v in range(start, stop):
                draft = Draft(task_id=task_id, student_id=sid1, version=v, body=f"v{v}",
                              files=[DraftFile(sha256=db.scalar(select(StoredFile.sha256)),
                                               filename=f"v{v}.pdf", position=0)])
                db.add(draft)
                db.flush()
                db.add(DraftComment(draft_id=draft.id, author_id=None, body="ok"))

    versions(1, 3)
    url = f"/tasks/{task_id}?from=1&to=2"
    few = _count(world, student, url)
    versions(3, 13)
    assert _count(world, student, url) == few
    with world.db() as db:
        assert db.scalar(select(Draft.id).where(Draft.task_id == task_id)) is not None
