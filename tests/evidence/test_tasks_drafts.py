"""Tasks and drafts as services: who may set, see and hand in what; versions numbered safely
under concurrent submits; final versions; word-level differences; comments; timelines."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import delete, text
from sqlalchemy.exc import DBAPIError

from evidence.classes import visible_class
from evidence.drafts import (
    _TOKENS,
    MAX_MATCHING_PAIRS,
    add_comment,
    comments_of,
    compare,
    drafts_of,
    matching_pairs,
    submit_draft,
    task_progress,
    task_timelines,
    visible_draft,
    visible_file,
    word_diff,
)
from evidence.files import Upload
from evidence.models import Draft
from evidence.tasks import (
    create_task,
    managed_task,
    open_tasks,
    update_task,
    visible_task,
)
from storage import session_factory
from storage.accounts import SchoolClass, class_members
from storage.errors import Conflict, Forbidden, Invalid, NotFound
from tests.evidence import samples

BASE = "https://quiz.school.example"


def _klass(school, key: str = "class_id") -> SchoolClass:
    return school.session.get(SchoolClass, school.ids[key])


def _task(school, **values):
    values = {"title": "Essay on fractions", "instructions": "Write **300** words.",
              "skills": ["algebra"], **values}
    task = create_task(school.session, school.user("teacher1"), _klass(school), base_url=BASE,
                       **values)
    school.session.commit()
    return task


def test_a_task_gets_its_activity_id_and_checks_its_skills_against_the_bank(school) -> None:
    task = _task(school, skills=["algebra", " geometry ", "algebra"],
                 due_at=datetime(2030, 5, 1, 10, 0, tzinfo=UTC))
    assert task.activity_id == f"{BASE}/xapi/activities/tasks/{task.id}"
    assert task.skills == ["algebra", "geometry"]
    with pytest.raises(Invalid) as error:
        _task(school, skills=["algebra", "poetry"])
    assert error.value.field == "skills[1]"
    assert "'poetry' is not a skill of the item bank" in str(error.value)
    school.session.rollback()
    with pytest.raises(Invalid, match="due_at must be an ISO 8601 datetime with a time zone"):
        _task(school, due_at=datetime(2030, 5, 1, 10, 0))
    school.session.rollback()
    with pytest.raises(Invalid, match="title must be 1 to 200"):
        _task(school, title="   ")
    school.session.rollback()
    with pytest.raises(Invalid, match="unknown field"):
        update_task(school.session, task, {"class_id": 2})


def test_who_sees_and_manages_a_task(school) -> None:
    task = _task(school)
    assert visible_task(school.session, school.user("student1"), task.id) is task
    assert managed_task(school.session, school.user("teacher1"), task.id) is task
    assert managed_task(school.session, school.user("admin1"), task.id) is task
    for name in ("student3", "teacher2", "assessor1"):
        with pytest.raises(NotFound):
            visible_task(school.session, school.user(name), task.id)
    with pytest.raises(NotFound):
        managed_task(school.session, school.user("student1"), task.id)
    with pytest.raises(NotFound):  # a teacher cannot set a task for another teacher's class
        visible_class(school.session, school.user("teacher2"), school.ids["class_id"])


def test_open_tasks_are_the_unarchived_ones_of_the_students_classes(school) -> None:
    later = _task(school, title="Later", due_at=datetime(2031, 1, 1, tzinfo=UTC))
    sooner = _task(school, title="Sooner", due_at=datetime(2030, 1, 1, tzinfo=UTC))
    undated = _task(school, title="Whenever")
    assert [t.title for t in open_tasks(school.session, school.user("student1"))] == \
        ["Sooner", "Later", "Whenever"]
    assert open_tasks(school.session, school.user("student3")) == []
    update_task(school.session, sooner, {"archived": True})
    school.session.commit()
    assert [t.id for t in open_tasks(school.session, school.user("student1"))] == \
        [later.id, undated.id]


def test_versions_count_up_and_a_final_version_is_the_last(school) -> None:
    task = _task(school)
    student = school.user("student1")
    first = submit_draft(school.session, student, task, body="First try.",
                         uploads=[Upload("essay.pdf", samples.pdf())], store=school.store)
    school.session.commit()
    second = submit_draft(school.session, student, task, body="Second try.",
                          store=school.store, final=True)
    school.session.commit()
    assert (first.version, second.version) == (1, 2)
    assert (first.final, second.final) == (False, True)
    assert [f.filename for f in first.files] == ["essay.pdf"]
    assert first.files[0].stored.media_type == "application/pdf"
    with pytest.raises(Conflict, match="version 2 was handed in as final"):
        submit_draft(school.session, student, task, body="Third.", store=school.store)
    # Another student's numbering is their own.
    other = submit_draft(school.session, school.user("student2"), task, body="Mine.",
                         store=school.store)
    assert other.version == 1


def test_who_may_hand_in_what(school) -> None:
    task = _task(school)
    with pytest.raises(NotFound):  # not enrolled in the class
        submit_draft(school.session, school.user("student3"), task, body="x", store=school.store)
    with pytest.raises(Forbidden):
        submit_draft(school.session, school.user("teacher1"), task, body="x", store=school.store)
    with pytest.raises(Invalid, match="needs some text or at least one file"):
        submit_draft(school.session, school.user("student1"), task, body="  \n ",
                     store=school.store)
    with pytest.raises(Invalid, match="body is 100,001 characters") as error:
        submit_draft(school.session, school.user("student1"), task, body="x" * 100_001,
                     store=school.store)
    assert error.value.field == "body"
    with pytest.raises(Invalid, match=r"'page\.html' is not of a type allowed"):
        submit_draft(school.session, school.user("student1"), task, body="x",
                     uploads=[Upload("page.html", samples.HTML)], store=school.store)
    school.session.rollback()
    assert drafts_of(school.session, school.user("student1"), task) == []  # nothing half-kept
    update_task(school.session, task, {"archived": True})
    school.session.commit()
    with pytest.raises(Conflict, match="is closed"):
        submit_draft(school.session, school.user("student1"), task, body="x", store=school.store)


def test_late_work_is_accepted_and_marked_late(school) -> None:
    task = _task(school, due_at=datetime(2026, 1, 1, tzinfo=UTC))
    submit_draft(school.session, school.user("student1"), task, body="Late but here.",
                 store=school.store, now=datetime(2026, 1, 2, tzinfo=UTC))
    school.session.commit()
    timeline = task_timelines(school.session, school.ids["users"]["student1"])
    assert timeline[0]["versions"][0]["late"] is True


def test_two_versions_sent_at_once_get_consecutive_numbers(school) -> None:
    task = _task(school)
    task_id, student_id = task.id, school.ids["users"]["student1"]
    sessions = session_factory(school.engine)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def send(body: str) -> None:
        with sessions() as session:
            try:
                from evidence.models import Task
                from storage.accounts import User

                student, mine = session.get(User, student_id), session.get(Task, task_id)
                barrier.wait()
                submit_draft(session, student, mine, body=body, store=school.store)
                session.commit()
            except BaseException as error:
                errors.append(error)

    threads = [threading.Thread(target=send, args=(f"copy {i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    if errors and isinstance(errors[0], DBAPIError) and school.url.startswith("sqlite"):
        pytest.fail(f"SQLite writer failed: {errors[0]}")
    assert errors == []
    versions = sorted(d.version for d in drafts_of(school.session, school.user("student1"),
                                                   task))
    assert versions == [1, 2]


def test_drafts_are_read_by_their_student_the_class_teacher_and_admins(school) -> None:
    task = _task(school)
    draft = submit_draft(school.session, school.user("student1"), task, body="Mine",
                         uploads=[Upload("pic.png", samples.png())], store=school.store)
    school.session.commit()
    for name in ("student1", "teacher1", "admin1"):
        assert visible_draft(school.session, school.user(name), draft.id) is draft
        stored, filename = visible_file(school.session, school.user(name),
                                        draft.files[0].sha256)
        assert (stored.media_type, filename) == ("image/png", "pic.png")
    for name in ("student2", "student3", "teacher2", "assessor1"):
        with pytest.raises(NotFound):
            visible_draft(school.session, school.user(name), draft.id)
        with pytest.raises(NotFound):
            visible_file(school.session, school.user(name), draft.files[0].sha256)
    with pytest.raises(NotFound):
        drafts_of(school.session, school.user("student2"), task, school.ids["users"]["student1"])
    assert drafts_of(school.session, school.user("student2"), task) == []
    assert [d.id for d in drafts_of(school.session, school.user("teacher1"), task)] == [draft.id]
    # Once the student leaves the class, its teacher no longer sees their work; they still do.
    school.session.execute(delete(class_members).where(
        class_members.c.user_id == school.ids["users"]["student1"]))
    school.session.commit()
    with pytest.raises(NotFound):
        visible_draft(school.session, school.user("teacher1"), draft.id)
    assert visible_draft(school.session, school.user("student1"), draft.id) is draft
    assert visible_task(school.session, school.user("student1"), task.id) is task


def test_word_diff_marks_words_deleted_and_inserted() -> None:
    runs = word_diff("The cat sat on the mat.", "The black cat sat on a mat.")
    assert runs == [
        {"op": "equal", "text": "The "},
        {"op": "insert", "text": "black "},
        {"op": "equal", "text": "cat sat on "},
        {"op": "delete", "text": "the "},
        {"op": "insert", "text": "a "},
        {"op": "equal", "text": "mat."},
    ]
    old = "".join(r["text"] for r in runs if r["op"] != "insert")
    new = "".join(r["text"] for r in runs if r["op"] != "delete")
    assert (old, new) == ("The cat sat on the mat.", "The black cat sat on a mat.")
    assert word_diff("same", "same") == [{"op": "equal", "text": "same"}]
    assert word_diff("", "new text") == [{"op": "insert", "text": "new text"}]


def test_compare_counts_words_and_files(school) -> None:
    task = _task(school)
    student = school.user("student1")
    pdf, png = samples.pdf(), samples.png()
    one = submit_draft(school.session, student, task, body="Fractions are parts of a whole.",
                       uploads=[Upload("a.pdf", pdf)], store=school.store)
    two = submit_draft(school.session, student, task,
                       body="Fractions are equal parts of one whole.",
                       uploads=[Upload("renamed.pdf", pdf), Upload("b.png", png)],
                       store=school.store)
    school.session.commit()
    result = compare(one, two)
    assert (result["from"]["version"], result["to"]["version"]) == (1, 2)
    assert result["words_inserted"] == 2 and result["words_deleted"] == 1  # +equal +one -a
    assert result["files_added"] == ["b.png"] and result["files_removed"] == []
    other = submit_draft(school.session, school.user("student2"), task, body="x",
                         store=school.store)
    with pytest.raises(Invalid, match="same student's work"):
        compare(one, other)


def test_comments_by_the_class_teacher_are_seen_by_the_student(school) -> None:
    task = _task(school)
    draft = submit_draft(school.session, school.user("student1"), task, body="Draft",
                         store=school.store)
    school.session.commit()
    add_comment(school.session, school.user("teacher1"), draft, "  Good start; add an example. ")
    school.session.commit()
    with pytest.raises(Forbidden):
        add_comment(school.session, school.user("student1"), draft, "Me too")
    with pytest.raises(NotFound):
        add_comment(school.session, school.user("teacher2"), draft, "Not mine")
    with pytest.raises(Invalid, match="a comment must be 1 to 10,000 characters"):
        add_comment(school.session, school.user("teacher1"), draft, "   ")
    comments = comments_of(school.session, [visible_draft(school.session,
                                                          school.user("student1"), draft.id)])
    assert [(c["author"], c["body"]) for c in comments[draft.id]] == \
        [("Teacher1", "Good start; add an example.")]


def test_task_progress_and_timelines_count_versions_files_and_comments(school) -> None:
    task = _task(school, due_at=datetime(2030, 1, 1, tzinfo=UTC))
    other = _task(school, title="Poster")
    student = school.user("student1")
    one = submit_draft(school.session, student, task, body="one",
                       uploads=[Upload("a.pdf", samples.pdf()), Upload("b.wav", samples.wav())],
                       store=school.store, now=datetime(2029, 12, 1, tzinfo=UTC))
    two = submit_draft(school.session, student, task, body="two", final=True,
                       store=school.store, now=datetime(2029, 12, 2, tzinfo=UTC))
    add_comment(school.session, school.user("teacher1"), one, "a")
    add_comment(school.session, school.user("teacher1"), one, "b")
    school.session.commit()
    progress = task_progress(school.session, task, [student, school.user("student2")])
    assert [(r["versions"], r["latest"] and r["latest"].id) for r in progress] == \
        [(2, two.id), (0, None)]
    timelines = task_timelines(school.session, student.id)
    assert [t["title"] for t in timelines] == ["Essay on fractions", "Poster"]
    first = timelines[0]
    assert first["due"] == datetime(2030, 1, 1, tzinfo=UTC)
    assert first["skills"] == ["algebra"]
    assert [(v["version"], v["final"], v["files"], v["comments"], v["late"])
            for v in first["versions"]] == [(1, False, 2, 2, False), (2, True, 0, 0, False)]
    assert timelines[1]["versions"] == []
    assert task_timelines(school.session, student.id, class_ids=[other.class_id + 999]) == []
    assert task_timelines(school.session, school.ids["users"]["student3"]) == []


def test_a_stored_version_cannot_be_changed(school) -> None:
    task = _task(school)
    draft = submit_draft(school.session, school.user("student1"), task, body="As sent",
                         store=school.store)
    school.session.commit()
    with pytest.raises(DBAPIError):
        school.session.execute(text("UPDATE drafts SET body = 'rewritten' WHERE id = :id"),
                               {"id": draft.id})
    school.session.rollback()
    assert school.session.get(Draft, draft.id).body == "As sent"


def test_start_page_cards_and_class_rows_say_how_far_each_student_is(school) -> None:
    from evidence.drafts import class_task_rows, open_task_cards

    past = _task(school, title="Past", due_at=datetime(2020, 1, 1, tzinfo=UTC))
    done = _task(school, title="Done", due_at=datetime(2020, 1, 1, tzinfo=UTC))
    fresh = _task(school, title="Fresh")
    student = school.user("student1")
    submit_draft(school.session, student, past, body="one", store=school.store)
    submit_draft(school.session, student, done, body="final", final=True, store=school.store)
    submit_draft(school.session, school.user("student2"), done, body="mine", store=school.store)
    school.session.commit()
    cards = {c["task"].title: c for c in open_task_cards(school.session, student)}
    assert [(cards[t]["versions"], cards[t]["final"], cards[t]["overdue"])
            for t in ("Past", "Done", "Fresh")] == [(1, False, True), (1, True, False),
                                                     (0, False, False)]
    rows = {r["task"].title: r for r in class_task_rows(
        school.session, school.ids["class_id"], [past, done, fresh])}
    assert [(rows[t]["handed_in"], rows[t]["final"]) for t in ("Past", "Done", "Fresh")] == \
        [(1, 0), (2, 1), (0, 0)]


def test_word_diff_stays_cheap_on_versions_made_of_few_repeated_words() -> None:
    """Review: two 100,000-character versions drawn from two words have some 5e8 pairs of
    equal words; the exact matcher took 146 s of a worker on them (a student could send two
    such versions and ask for the comparison again and again). Above the budget the
    difference is the common beginning and end and the middle replaced: still correct."""
    rng = np.random.default_rng(5)
    old = "intro " + "".join(rng.choice(["a ", "b "], 40_000))[:99_000] + " end"
    new = "intro " + "".join(rng.choice(["a ", "b "], 40_000))[:99_000] + " end"
    assert matching_pairs(_TOKENS.findall(old), _TOKENS.findall(new)) > MAX_MATCHING_PAIRS
    runs = word_diff(old, new)
    assert [r["op"] for r in runs] == ["equal", "delete", "insert", "equal"]
    assert runs[0]["text"].startswith("intro ") and runs[-1]["text"].endswith(" end")
    assert "".join(r["text"] for r in runs if r["op"] != "insert") == old
    assert "".join(r["text"] for r in runs if r["op"] != "delete") == new
    # Below the budget the comparison stays exact: the same small texts either way.
    small_old, small_new = "The cat sat on the mat.", "The black cat sat on a mat."
    assert matching_pairs(_TOKENS.findall(small_old), _TOKENS.findall(small_new)) == 5
    assert len(word_diff(small_old, small_new)) == 6
    assert word_diff(small_old, small_new, max_pairs=4) == [
        {"op": "equal", "text": "The "},
        {"op": "delete", "text": "cat sat on the "},
        {"op": "insert", "text": "black cat sat on a "},
        {"op": "equal", "text": "mat."}]
