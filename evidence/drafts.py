"""Drafts: the versions of a student's work on a task, their files, comments and differences.

A student hands in versions of their work on a task: Markdown text and optional files (see
:mod:`evidence.files`). Each version is immutable (the database refuses UPDATE on ``drafts`` and
``draft_files``) and time-stamped; ``version`` counts 1, 2, 3... per task and student. Two
versions sent at the same moment get consecutive numbers: the number is the next after the
highest stored, and the unique constraint on (task, student, version) makes the second insert
fail, whereupon it is retried with the next number.

A version marked *final* is the last: after it the student may hand in no more (409). The final
version is what the teacher assesses and what reports will rest on, so it must not move under
them; a student who marked one final by mistake asks the teacher, who can set a new task.

Who sees what: a student their own drafts (and the comments on them); the class's teacher the
drafts of the students enrolled in the class, and an administrator all; only they comment.
Anything else is *not found*, so its existence is not revealed.

Nothing here commits; each function raises a :mod:`storage.errors` error naming the field.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload, selectinload

from evidence.classes import reaches_classes
from evidence.files import FileStore, Upload
from evidence.models import Draft, DraftComment, DraftFile, StoredFile, Task
from evidence.tasks import enrolled, is_late, open_tasks, student_tasks_query
from storage import as_utc, utcnow
from storage.accounts import Role, SchoolClass, User, admin_reaches_class, class_members
from storage.errors import Conflict, Forbidden, Invalid, NotFound

MAX_BODY = 100_000
MAX_COMMENT = 10_000
VERSION_RETRIES = 5
#: Pairs of equal words across two versions above which a comparison is coarse (see
#: :func:`word_diff`).
MAX_MATCHING_PAIRS = 2_000_000
_TOKENS = re.compile(r"^\s+|\S+\s*")


# -- access --------------------------------------------------------------------------------------


def may_review(session: Session, viewer: User, task: Task, student_id: int) -> bool:
    """Whether ``viewer`` may read (and comment on) ``student_id``'s drafts of ``task``: an
    administrator (of the task's class's school, for a school's), or the teacher of the task's
    class while the student is enrolled in it."""
    if viewer.role == Role.ADMIN:
        return admin_reaches_class(viewer, task.school_class)
    return (viewer.role == Role.TEACHER and task.school_class.teacher_id == viewer.id
            and enrolled(session, task.class_id, student_id))


def may_see(session: Session, viewer: User, draft: Draft) -> bool:
    """Whether ``viewer`` may read ``draft``: its student, or a reviewer (see
    :func:`may_review`)."""
    if viewer.id == draft.student_id:
        return True
    return viewer.role != Role.STUDENT and may_review(session, viewer, draft.task,
                                                      draft.student_id)


def visible_draft(session: Session, viewer: User, draft_id: int) -> Draft:
    """The draft if ``viewer`` may read it.

    Raises
    ------
    NotFound
        No such draft, or none the viewer may see.
    """
    draft = session.get(Draft, draft_id)
    if draft is None or not may_see(session, viewer, draft):
        raise NotFound(f"no draft {draft_id}")
    return draft


def drafts_query(task: Task, student_id: int | None = None) -> Select:
    """The drafts of ``task`` (of one student when given), oldest first, with their files and
    comments loaded."""
    query = (select(Draft).options(selectinload(Draft.files).selectinload(DraftFile.stored),
                                   selectinload(Draft.comments))
             .where(Draft.task_id == task.id))
    if student_id is not None:
        query = query.where(Draft.student_id == student_id)
    return query.order_by(Draft.student_id, Draft.version)


def drafts_select(session: Session, viewer: User, task: Task,
                  student_id: int | None = None) -> Select:
    """The drafts of ``task`` that ``viewer`` may read, as a query: a student's own; a
    reviewer's, those of ``student_id`` (or of every student enrolled in the class when
    ``None``), by student then version.

    Raises
    ------
    NotFound
        A reviewer asked for a student whose drafts they may not see; a student asked for
        another student's.
    """
    if viewer.role == Role.STUDENT:
        if student_id not in (None, viewer.id):
            raise NotFound(f"no drafts of student {student_id} you may see")
        return drafts_query(task, viewer.id)
    if student_id is not None:
        if not may_review(session, viewer, task, student_id):
            raise NotFound(f"no drafts of student {student_id} you may see")
        return drafts_query(task, student_id)
    if viewer.role == Role.ADMIN and admin_reaches_class(viewer, task.school_class):
        return drafts_query(task)
    if viewer.role != Role.TEACHER or task.school_class.teacher_id != viewer.id:
        raise NotFound(f"no task {task.id}")
    return drafts_query(task).where(Draft.student_id.in_(select(class_members.c.user_id).where(
        class_members.c.class_id == task.class_id)))


def drafts_of(session: Session, viewer: User, task: Task,
              student_id: int | None = None) -> list[Draft]:
    """The drafts :func:`drafts_select` selects, as a list."""
    return list(session.scalars(drafts_select(session, viewer, task, student_id)))


def readable_drafts(viewer: User) -> ColumnElement[bool]:
    """A condition on :class:`Draft` rows: those ``viewer`` may read, as :func:`may_see` has it
    (their own; an administrator all, of their school's classes for a school's; a teacher those
    of the students enrolled in the class of the draft's task), for filtering in SQL rather than
    row by row."""
    if viewer.role == Role.ADMIN:
        if viewer.school_id is None:
            return true()
        return Draft.task_id.in_(select(Task.id).where(
            reaches_classes(viewer, Task.class_id)))
    own = Draft.student_id == viewer.id
    if viewer.role != Role.TEACHER:
        return own
    reviewed = (select(Task.id)
                .join(SchoolClass, SchoolClass.id == Task.class_id)
                .join(class_members, class_members.c.class_id == Task.class_id)
                .where(Task.id == Draft.task_id, SchoolClass.teacher_id == viewer.id,
                       class_members.c.user_id == Draft.student_id))
    return or_(own, reviewed.exists())


def visible_file(session: Session, viewer: User, sha256: str) -> tuple[StoredFile, str]:
    """A stored file and a name it was handed in under, if ``viewer`` may read a draft that
    carries it (their own draft's name first, else the first such draft's).

    One query however many drafts carry the content (a worksheet the whole class hands in).

    Raises
    ------
    NotFound
        No draft the viewer may read carries this content.
    """
    attached = session.scalars(
        select(DraftFile).join(Draft, Draft.id == DraftFile.draft_id)
        .options(joinedload(DraftFile.stored))
        .where(DraftFile.sha256 == sha256, readable_drafts(viewer))
        .order_by(Draft.student_id != viewer.id, DraftFile.id).limit(1)).first()
    if attached is None:
        raise NotFound(f"no file {sha256[:64]} you may see")
    return attached.stored, attached.filename


# -- handing in a version ------------------------------------------------------------------------


def _body(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Invalid("body must be Markdown text", field="body")
    if len(value) > MAX_BODY:
        raise Invalid(f"body is {len(value):,} characters; a version may have at most "
                      f"{MAX_BODY:,}", field="body")
    return value.replace("\r\n", "\n")


def _final_version(session: Session, task: Task, student_id: int) -> int | None:
    return session.scalar(select(Draft.version).where(
        Draft.task_id == task.id, Draft.student_id == student_id, Draft.final))


def submit_draft(session: Session, student: User, task: Task, *, body: str = "",
                 uploads: Sequence[Upload] = (), final: bool = False,
                 store: FileStore, now: datetime | None = None) -> Draft:
    """Hand in the next version of ``student``'s work on ``task``.

    Parameters
    ----------
    body
        The text, as Markdown (shown rendered safely; kept as written).
    uploads
        Files to attach, checked by :meth:`FileStore.check` (type by content, size, quota).
    final
        Whether the student declares this version final (no more may follow).
    store
        Where the files go (written before the rows; see :mod:`evidence.files`).

    Raises
    ------
    Forbidden
        ``student`` is not a student.
    NotFound
        The student is not enrolled in the task's class.
    Conflict
        The task is archived, or a final version was already handed in.
    Invalid
        Neither text nor files; text too long; a file refused (naming it).
    """
    if student.role != Role.STUDENT:
        raise Forbidden(f"drafts are handed in by students; you are {student.role.value}")
    if not enrolled(session, task.class_id, student.id):
        raise NotFound(f"no task {task.id}")
    if task.archived_at is not None:
        raise Conflict(f"the task {task.title!r} is closed (archived): no more work can be "
                       "handed in for it")
    text = _body(body)
    if not text.strip() and not uploads:
        raise Invalid("a version needs some text or at least one file", field="body")
    final_version = _final_version(session, task, student.id)
    if final_version is not None:
        raise Conflict(f"version {final_version} was handed in as final; no more versions "
                       "may follow it", field="final")
    checked = store.check(session, student.id, uploads)
    store.store(session, checked)
    submitted_at = now or utcnow()
    for _attempt in range(VERSION_RETRIES):
        latest = session.scalar(select(func.max(Draft.version)).where(
            Draft.task_id == task.id, Draft.student_id == student.id)) or 0
        draft = Draft(task_id=task.id, student_id=student.id, version=latest + 1, body=text,
                      final=bool(final), submitted_at=submitted_at,
                      files=[DraftFile(sha256=c.sha256, filename=c.filename, position=i)
                             for i, c in enumerate(checked)])
        try:
            with session.begin_nested():
                session.add(draft)
                session.flush()
        except IntegrityError:  # another version took this number first: take the next
            final_version = _final_version(session, task, student.id)
            if final_version is not None:
                raise Conflict(f"version {final_version} was handed in as final; no more "
                               "versions may follow it", field="final") from None
            continue
        return draft
    raise Conflict("other versions were being handed in at the same moment; try again")


# -- comparing two versions ----------------------------------------------------------------------


def matching_pairs(a: Sequence[str], b: Sequence[str]) -> int:
    """How many pairs of equal words there are across two token lists: the measure of the
    work an exact comparison takes (see :func:`word_diff`)."""
    count_b = Counter(b)
    return sum(n * count_b[w] for w, n in Counter(a).items() if w in count_b)


def word_diff(old: str, new: str, *, max_pairs: int | None = None) -> list[dict[str, str]]:
    """A word-level difference between two texts, as runs of equal, deleted and inserted text.

    The units are words with the whitespace after them (so a word whose line break changed
    shows as changed), and adjacent runs of one kind are merged. Joining the ``equal`` and
    ``delete`` runs gives ``old`` back; the ``equal`` and ``insert`` runs give ``new``.

    The work is bounded. The matcher's time grows with the pairs of equal words across the two
    texts (:func:`matching_pairs`): prose has few (two versions of a 100,000-character essay
    some 1e6), but two versions made of a handful of words repeated have hundreds of millions
    and took minutes of a worker's time. Above ``max_pairs`` (:data:`MAX_MATCHING_PAIRS`) the
    difference is the common beginning and end, and the middle as deleted and inserted:
    coarse, but still correct, and linear in the texts' length.

    Returns
    -------
    list of dict
        ``[{"op": "equal" | "delete" | "insert", "text": str}, ...]`` in reading order
        (a deletion before the insertion that replaces it).
    """
    a, b = _TOKENS.findall(old or ""), _TOKENS.findall(new or "")
    limit = MAX_MATCHING_PAIRS if max_pairs is None else max_pairs
    if matching_pairs(a, b) <= limit:
        opcodes = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    else:
        head = 0
        while head < min(len(a), len(b)) and a[head] == b[head]:
            head += 1
        tail = 0
        while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
            tail += 1
        opcodes = [("equal", 0, head, 0, head),
                   ("replace", head, len(a) - tail, head, len(b) - tail),
                   ("equal", len(a) - tail, len(a), len(b) - tail, len(b))]
    runs: list[dict[str, str]] = []

    def add(op: str, text: str) -> None:
        if not text:
            return
        if runs and runs[-1]["op"] == op:
            runs[-1]["text"] += text
        else:
            runs.append({"op": op, "text": text})

    for tag, i1, i2, j1, j2 in opcodes:
        if tag == "equal":
            add("equal", "".join(a[i1:i2]))
        else:
            add("delete", "".join(a[i1:i2]))
            add("insert", "".join(b[j1:j2]))
    return runs


def _words(text: str) -> int:
    return len(text.split())


def compare(older: Draft, newer: Draft) -> dict[str, Any]:
    """What changed from one version to another: the text word by word, and the files.

    Returns
    -------
    dict
        ``from`` and ``to`` (``id``, ``version``, ``submitted_at``), ``segments`` (see
        :func:`word_diff`), ``words_inserted``, ``words_deleted``, ``files_added`` and
        ``files_removed`` (names; a file counts as the same when its content is).

    Raises
    ------
    Invalid
        The two are not versions of the same student's work on the same task.
    """
    if (older.task_id, older.student_id) != (newer.task_id, newer.student_id):
        raise Invalid("only versions of the same student's work on the same task can be "
                      "compared", field="against")
    segments = word_diff(older.body, newer.body)
    old_files = {f.sha256: f.filename for f in older.files}
    new_files = {f.sha256: f.filename for f in newer.files}

    def brief(draft: Draft) -> dict[str, Any]:
        return {"id": draft.id, "version": draft.version,
                "submitted_at": as_utc(draft.submitted_at)}

    return {
        "from": brief(older), "to": brief(newer), "segments": segments,
        "words_inserted": sum(_words(s["text"]) for s in segments if s["op"] == "insert"),
        "words_deleted": sum(_words(s["text"]) for s in segments if s["op"] == "delete"),
        "files_added": [name for sha, name in new_files.items() if sha not in old_files],
        "files_removed": [name for sha, name in old_files.items() if sha not in new_files],
    }


# -- comments ------------------------------------------------------------------------------------


def add_comment(session: Session, viewer: User, draft: Draft, body: str) -> DraftComment:
    """Comment on a version (the class's teacher or an administrator); its student sees it.

    Raises
    ------
    Forbidden
        A student (or an assessor) tried to comment.
    NotFound
        A teacher who may not review this student's work.
    Invalid
        An empty or too long comment.
    """
    if viewer.role not in (Role.TEACHER, Role.ADMIN):
        raise Forbidden(f"comments are written by the class's teacher; you are "
                        f"{viewer.role.value}")
    if not may_review(session, viewer, draft.task, draft.student_id):
        raise NotFound(f"no draft {draft.id}")
    text = (body or "").strip() if isinstance(body, str) else ""
    if not text or len(text) > MAX_COMMENT:
        raise Invalid(f"a comment must be 1 to {MAX_COMMENT:,} characters (not only spaces)",
                      field="body")
    comment = DraftComment(draft_id=draft.id, author_id=viewer.id, body=text)
    session.add(comment)
    session.flush()
    session.expire(draft, ["comments"])
    return comment


def comments_of(session: Session, drafts: Sequence[Draft]) -> dict[int, list[dict[str, Any]]]:
    """The comments on each draft (by draft id), oldest first, with their author's name."""
    ids = [d.id for d in drafts]
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if not ids:
        return out
    rows = session.execute(select(DraftComment, User.display_name, User.username)
                           .outerjoin(User, User.id == DraftComment.author_id)
                           .where(DraftComment.draft_id.in_(ids))
                           .order_by(DraftComment.created_at, DraftComment.id))
    for comment, display_name, username in rows:
        out[comment.draft_id].append({
            "id": comment.id, "draft_id": comment.draft_id, "author_id": comment.author_id,
            "author": display_name or username or "", "body": comment.body,
            "created_at": as_utc(comment.created_at)})
    return out


# -- overviews -----------------------------------------------------------------------------------


def task_progress(session: Session, task: Task, students: Sequence[User]
                  ) -> list[dict[str, Any]]:
    """For a teacher's task page: per student, how many versions, and the latest one.

    Returns
    -------
    list of dict
        ``student``, ``versions`` (count), ``latest`` (the latest :class:`Draft` or ``None``),
        ``late`` (the latest came after the due date).
    """
    ids = [s.id for s in students]
    counts = dict(session.execute(
        select(Draft.student_id, func.count(Draft.id))
        .where(Draft.task_id == task.id, Draft.student_id.in_(ids))
        .group_by(Draft.student_id)).all()) if ids else {}
    latest_ids = select(func.max(Draft.id)).where(
        Draft.task_id == task.id, Draft.student_id.in_(ids)).group_by(Draft.student_id)
    latest = {d.student_id: d for d in session.scalars(
        select(Draft).where(Draft.id.in_(latest_ids)))} if ids else {}
    rows = []
    for student in students:
        draft = latest.get(student.id)
        rows.append({"student": student, "versions": counts.get(student.id, 0),
                     "latest": draft,
                     "late": draft is not None and is_late(task, draft.submitted_at)})
    return rows


def class_task_rows(session: Session, klass_id: int, tasks: Sequence[Task]
                    ) -> list[dict[str, Any]]:
    """A class page's task list: per task, how many enrolled students handed in work and how
    many a final version (``task``, ``due_at``, ``handed_in``, ``final``)."""
    ids = [t.id for t in tasks]
    members = select(class_members.c.user_id).where(class_members.c.class_id == klass_id)
    counts = {task_id: (n, finals) for task_id, n, finals in session.execute(
        select(Draft.task_id, func.count(func.distinct(Draft.student_id)),
               func.count(func.distinct(case((Draft.final, Draft.student_id)))))
        .where(Draft.task_id.in_(ids), Draft.student_id.in_(members))
        .group_by(Draft.task_id))} if ids else {}
    return [{"task": t, "due_at": as_utc(t.due_at), "handed_in": counts.get(t.id, (0, 0))[0],
             "final": counts.get(t.id, (0, 0))[1]} for t in tasks]


def open_task_cards(session: Session, student: User) -> list[dict[str, Any]]:
    """The tasks open to ``student`` (see :func:`evidence.tasks.open_tasks`), each with how far
    they are: ``task``, ``versions`` (count), ``final`` (a final version was handed in),
    ``last_at`` (when the latest was), ``overdue`` (due and nothing final yet)."""
    tasks = open_tasks(session, student)
    if not tasks:
        return []
    rows = session.execute(
        select(Draft.task_id, func.count(Draft.id),
               func.max(case((Draft.final, 1), else_=0)), func.max(Draft.submitted_at))
        .where(Draft.student_id == student.id, Draft.task_id.in_([t.id for t in tasks]))
        .group_by(Draft.task_id)).all()
    done = {task_id: (n, bool(final), as_utc(last)) for task_id, n, final, last in rows}
    now = utcnow()
    cards = []
    for task in tasks:
        n, final, last = done.get(task.id, (0, False, None))
        cards.append({"task": task, "versions": n, "final": final, "last_at": last,
                      "due_at": as_utc(task.due_at),
                      "overdue": not final and task.due_at is not None
                      and as_utc(task.due_at) < now})
    return cards


def task_timelines(session: Session, student_id: int,
                   class_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """Every task of a student's classes (or of ``class_ids``) with their versions, for the
    portfolio.

    Tasks of classes the student has left still show when they handed work in for them.

    Returns
    -------
    list of dict
        Per task: ``id``, ``class_id``, ``title``, ``due`` (aware datetime or ``None``),
        ``skills``, ``archived``, ``versions``: per version ``id``, ``version``,
        ``submitted_at``, ``final``, ``late``, ``files`` (count), ``comments`` (count), oldest
        first.
    """
    tasks = list(session.scalars(student_tasks_query(student_id, class_ids)))
    if not tasks:
        return []
    task_ids = [t.id for t in tasks]
    drafts = session.execute(
        select(Draft.id, Draft.task_id, Draft.version, Draft.submitted_at, Draft.final)
        .where(Draft.student_id == student_id, Draft.task_id.in_(task_ids))
        .order_by(Draft.task_id, Draft.version)).all()
    draft_ids = [d.id for d in drafts]
    files = dict(session.execute(select(DraftFile.draft_id, func.count(DraftFile.id))
                                 .where(DraftFile.draft_id.in_(draft_ids))
                                 .group_by(DraftFile.draft_id)).all()) if draft_ids else {}
    comments = dict(session.execute(select(DraftComment.draft_id, func.count(DraftComment.id))
                                    .where(DraftComment.draft_id.in_(draft_ids))
                                    .group_by(DraftComment.draft_id)).all()) if draft_ids else {}
    versions: dict[int, list[dict[str, Any]]] = {t: [] for t in task_ids}
    by_id = {t.id: t for t in tasks}
    for d in drafts:
        versions[d.task_id].append({
            "id": d.id, "version": d.version, "submitted_at": as_utc(d.submitted_at),
            "final": d.final, "late": is_late(by_id[d.task_id], d.submitted_at),
            "files": files.get(d.id, 0), "comments": comments.get(d.id, 0)})
    return [{"id": t.id, "class_id": t.class_id, "title": t.title, "due": as_utc(t.due_at),
             "skills": list(t.skills or []), "archived": t.archived_at is not None,
             "versions": versions[t.id]} for t in tasks]
