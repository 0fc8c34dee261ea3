"""The task and draft pages through plain forms (CSRF, POST-redirect-GET), on SQLite and
PostgreSQL: a teacher sets a task, students hand in versions with files, the teacher reads the
timeline, compares two versions and comments, the student reads the comment; Markdown is
rendered inert; bad files are refused by name; other classes' work is not found."""

from __future__ import annotations

import io
import re

from sqlalchemy import func, select

from evidence.models import Draft, DraftComment, StoredFile, Task
from tests.delivery_ui.conftest import StudentWorld, csrf_of
from tests.evidence import samples

HOSTILE = ('Read this <script>alert("x")</script> and <img src=x onerror="alert(1)"> '
           '[a link](javascript:alert(2)) **carefully**.')


def _set_task(world: StudentWorld, teacher, **fields) -> int:
    class_id = world.ids["class_id"]
    html = teacher.get(f"/teach/classes/{class_id}/tasks/new").get_data(as_text=True)
    data = {"csrf_token": csrf_of(html), "title": "Fractions essay",
            "instructions": HOSTILE, "skills": ["algebra", "geometry"], "due_at": "", **fields}
    response = teacher.post(f"/teach/classes/{class_id}/tasks/new", data=data)
    assert response.status_code == 303, response.get_data(as_text=True)
    with world.db() as db:
        return db.scalar(select(func.max(Task.id)))


def _hand_in(world: StudentWorld, client, task_id: int, body: str, files=(), final=False):
    html = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    data = {"csrf_token": csrf_of(html), "body": body,
            "files": [(io.BytesIO(content), name) for name, content in files]}
    if final:
        data["final"] = "1"
    return client.post(f"/tasks/{task_id}/drafts", data=data, content_type="multipart/form-data")


def test_instructions_and_drafts_render_markdown_inert(student_world: StudentWorld) -> None:
    world = student_world
    task_id = _set_task(world, world.client_for("teacher1"))
    student = world.client_for("student1")
    home = student.get("/my-tests").get_data(as_text=True)
    assert f'href="/tasks/{task_id}"' in home and "Fractions essay" in home
    assert _hand_in(world, student, task_id, HOSTILE).status_code == 303
    html = student.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "<script>alert" not in html and "<img" not in html
    assert 'href="javascript:' not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html \
        or "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "<strong>carefully</strong>" in html
    # Every onerror= is text (its quote escaped), never an attribute of an element.
    assert html.count("onerror=") == html.count("onerror=&#34;") + html.count("onerror=&quot;")
    assert html.count("onerror=") >= 2  # in the instructions and in the version shown


def test_versions_files_comments_and_comparison_through_the_pages(
        student_world: StudentWorld) -> None:
    world = student_world
    teacher = world.client_for("teacher1")
    task_id = _set_task(world, teacher, instructions="Write about **halves**.")
    student = world.client_for("student1")
    r = _hand_in(world, student, task_id, "Halves are equal parts.",
                 files=[("essay.png", samples.pdf())])
    assert r.status_code == 303 and r.headers["Location"] == f"/tasks/{task_id}#versions"
    page = student.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "Version 1 is handed in." in page
    assert "essay.png" in page and "application/pdf" in page
    sha = re.search(r'href="/files/([0-9a-f]{64})"', page).group(1)
    download = student.get(f"/files/{sha}")
    assert download.status_code == 200 and download.data == samples.pdf()
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert world.client_for("student2").get(f"/files/{sha}").status_code == 404
    assert world.client_for("teacher2").get(f"/files/{sha}").status_code == 404
    assert teacher.get(f"/files/{sha}").status_code == 200

    r = _hand_in(world, student, task_id, "Halves are two equal parts of a whole.", final=True)
    assert r.status_code == 303
    page = student.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "Version 2 is handed in as your final version." in page
    assert 'name="body"' not in page  # no more versions after a final one
    assert "You handed in version 2 as your final version." in page

    class_id = world.ids["class_id"]
    overview = teacher.get(f"/teach/classes/{class_id}").get_data(as_text=True)
    assert f"/teach/classes/{class_id}/tasks/{task_id}" in overview
    task_page = teacher.get(f"/teach/classes/{class_id}/tasks/{task_id}").get_data(as_text=True)
    student_id = world.ids["users"]["student1"]
    timeline_url = f"/teach/classes/{class_id}/tasks/{task_id}/students/{student_id}"
    assert timeline_url in task_page and "Version 2" in task_page and "final" in task_page
    diff = teacher.get(timeline_url + "?from=1&to=2").get_data(as_text=True)
    assert "What changed from version 1 to version 2" in diff
    assert ('<ins><span class="diff-mark">added:</span>two <span class="visually-hidden"> '
            '(end of added text)</span></ins>') in diff
    assert '<del><span class="diff-mark">removed:</span>parts.' in diff
    assert "File removed: essay.png" in diff
    assert "5 words added; 1 word removed." in diff

    with world.db() as db:
        draft_id = db.scalar(select(Draft.id).where(Draft.version == 1))
    r = teacher.post(f"{timeline_url}/drafts/{draft_id}/comments",
                     data={"csrf_token": csrf_of(diff), "body": "Say what a whole is."})
    assert r.status_code == 303 and r.headers["Location"].endswith("#version-1")
    page = student.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "Say what a whole is." in page and "Teacher1" in page
    r = teacher.post(f"{timeline_url}/drafts/{draft_id}/comments",
                     data={"csrf_token": csrf_of(diff), "body": "   "})
    assert r.status_code == 422
    assert f'id="comment-{draft_id}-error"' in r.get_data(as_text=True)
    mine = student.get(f"/tasks/{task_id}?from=1&to=2").get_data(as_text=True)
    assert "What changed from version 1 to version 2" in mine
    bad = student.get(f"/tasks/{task_id}?from=1&to=7")
    assert bad.status_code == 422 and 'id="to-error"' in bad.get_data(as_text=True)
    with world.db() as db:
        assert db.scalar(select(func.count(DraftComment.id))) == 1


def test_refused_files_are_named_and_nothing_is_kept(student_world: StudentWorld) -> None:
    world = student_world
    task_id = _set_task(world, world.client_for("teacher1"))
    student = world.client_for("student1")
    r = _hand_in(world, student, task_id, "With a page", files=[("essay.pdf", samples.HTML)])
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert "The file essay.pdf is not a PDF, a picture or a sound file we accept" in html
    assert 'id="files-error"' in html
    assert 'With a page</textarea>' in html  # the text typed is kept in the form
    r = _hand_in(world, student, task_id, "", files=[("blank.pdf", b"")])
    assert r.status_code == 422 and "blank.pdf" in r.get_data(as_text=True)
    world.app.config["MAX_CONTENT_LENGTH"] = 50_000
    r = _hand_in(world, student, task_id, "Big", files=[("big.pdf", samples.pdf("x" * 60_000))])
    assert r.status_code == 413
    assert "Everything sent with one version may take at most 48.8 KB" in r.get_data(
        as_text=True)
    with world.db() as db:
        assert db.scalar(select(func.count(Draft.id))) == 0
        assert db.scalar(select(func.count()).select_from(StoredFile)) == 0


def test_task_form_names_what_is_wrong(student_world: StudentWorld) -> None:
    world = student_world
    teacher = world.client_for("teacher1")
    class_id = world.ids["class_id"]
    html = teacher.get(f"/teach/classes/{class_id}/tasks/new").get_data(as_text=True)
    assert 'value="algebra"' in html and 'value="statistics"' in html
    r = teacher.post(f"/teach/classes/{class_id}/tasks/new", data={
        "csrf_token": csrf_of(html), "title": " ", "skills": ["poetry"], "due_at": "soon"})
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert 'id="title-error"' in page and 'id="due_at-error"' in page
    r = teacher.post(f"/teach/classes/{class_id}/tasks/new", data={
        "csrf_token": csrf_of(html), "title": "Poem", "skills": ["poetry"]})
    assert r.status_code == 422 and "among those offered (the skills of the item bank)" in (
        r.get_data(as_text=True))
    task_id = _set_task(world, teacher, due_at="2030-01-01T09:00")
    r = teacher.post(f"/teach/classes/{class_id}/tasks/{task_id}/edit", data={
        "csrf_token": csrf_of(html), "title": "Fractions essay, revised", "skills": ["algebra"],
        "instructions": "New", "due_at": ""})
    assert r.status_code == 303
    with world.db() as db:
        task = db.get(Task, task_id)
        assert (task.title, task.skills, task.due_at) == ("Fractions essay, revised",
                                                          ["algebra"], None)
    r = teacher.post(f"/teach/classes/{class_id}/tasks/{task_id}/archive",
                     data={"csrf_token": csrf_of(html)})
    assert r.status_code == 303
    student = world.client_for("student1")
    assert f'href="/tasks/{task_id}"' not in student.get("/my-tests").get_data(as_text=True)
    closed = student.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "This task is closed" in closed and 'name="body"' not in closed


def test_other_classes_tasks_are_not_found(student_world: StudentWorld) -> None:
    world = student_world
    teacher = world.client_for("teacher1")
    task_id = _set_task(world, teacher)
    class_id = world.ids["class_id"]
    student_id = world.ids["users"]["student1"]
    other = world.client_for("teacher2")
    for url in (f"/teach/classes/{class_id}/tasks/{task_id}",
                f"/teach/classes/{class_id}/tasks/new",
                f"/teach/classes/{class_id}/tasks/{task_id}/students/{student_id}"):
        assert other.get(url).status_code == 404, url
    assert world.client_for("student3").get(f"/tasks/{task_id}").status_code == 404
    assert world.client_for("student1").get(
        f"/teach/classes/{class_id}/tasks/{task_id}").status_code == 403
    student3 = world.ids["users"]["student3"]
    assert teacher.get(f"/teach/classes/{class_id}/tasks/{task_id}/students/{student3}"
                       ).status_code == 404
    anonymous = world.client_for(None).get(f"/tasks/{task_id}")
    assert anonymous.status_code == 302 and "/?next=" in anonymous.headers["Location"]


def test_task_form_refusals_from_the_service_are_in_the_readers_language(
        student_world: StudentWorld) -> None:
    """Review: a title over 200 characters, instructions over 20,000 or a skill the bank does
    not have (a tampered form) were refused with the service's English message on a Spanish
    page."""
    world = student_world
    teacher = world.client_for("teacher1")
    teacher.set_cookie("lang", "es")
    class_id = world.ids["class_id"]
    url = f"/teach/classes/{class_id}/tasks/new"
    html = teacher.get(url).get_data(as_text=True)
    cases = [({"title": "T" * 201}, "title", "200"),
             ({"title": "Poema", "instructions": "x" * 20_001}, "instructions", "20"),
             ({"title": "Poema", "skills": ["poetry"]}, "skills", "")]
    for fields, field, figure in cases:
        r = teacher.post(url, data={"csrf_token": csrf_of(html), "due_at": "", **fields})
        assert r.status_code == 422
        page = r.get_data(as_text=True)
        error = re.search(rf'id="{field}-error"[^>]*>(.*?)</', page, re.S)
        assert error, (field, page[:500])
        text = error.group(1)
        assert "must be" not in text and "is not a skill" not in text, text
        assert figure in text, text
    with world.db() as db:
        assert db.scalar(select(func.count(Task.id))) == 0
