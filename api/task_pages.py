"""Pages for performance tasks and drafts.

Students: ``/tasks/<task_id>``, a task's instructions, their own versions with the teacher's
comments, a form to hand in the next version (text, files, "this is my final version") and a
comparison of any two of their versions. Teachers: a class's tasks (on the class page), a form
to set or change a task, ``/teach/classes/<c>/tasks/<task_id>`` (who handed in what, the latest
version, final or not) and ``/teach/classes/<c>/tasks/<task_id>/students/<student_id>`` (the
timeline of one student's versions, a comparison of any two, a comment form per version).
Files are downloaded through ``/files/<sha256>``, which checks access like the API.

The views register on the student and teacher blueprints (so they share their sign-in, CSRF
and error handling); the rules live in :mod:`evidence.tasks` and :mod:`evidence.drafts`.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, flash, redirect, request, url_for
from flask_babel import format_decimal
from flask_babel import gettext as _
from werkzeug.exceptions import RequestEntityTooLarge

from api.db import get_session
from api.pages import current_user
from api.site import public_url
from api.staff import message, not_found, page
from api.student_pages import bp as student_bp
from api.student_pages import signed_in
from api.teacher_pages import (
    _form_moment,
    _no_class,
    _own_class,
    local_input,
    natural_key,
    teachers_only,
)
from api.teacher_pages import bp as teacher_bp
from api.uploads import file_response, file_store, request_uploads
from evidence import drafts as drafts_service
from evidence import tasks as service
from evidence.classes import roster_query
from evidence.files import ALLOWED, MAX_FILES_PER_DRAFT, FileRefused
from evidence.models import Draft, Task
from storage import as_utc
from storage.accounts import SchoolClass, User
from storage.errors import Conflict, Forbidden, Invalid, NotFound

#: What the file input offers (browsers filter by it; the server judges by content anyway).
ACCEPT = ",".join([".pdf", ".png", ".jpg", ".jpeg", ".gif", ".webp", ".mp3", ".ogg", ".opus",
                   ".wav", ".m4a", ".aac", *ALLOWED])


def size_text(size: int) -> str:
    """A file size in the reader's language: ``12.3 MB``, ``4.5 KB`` or ``512 B``."""
    if size >= 1024 * 1024:
        return _("%(size)s MB", size=format_decimal(size / (1024 * 1024), "0.0"))
    if size >= 1024:
        return _("%(size)s KB", size=format_decimal(size / 1024, "0.0"))
    return _("%(size)s B", size=size)


def _versions(drafts: list[Draft], task: Task) -> list[dict[str, Any]]:
    """What a page shows of each version: the draft, when, late or not, its comments."""
    comments = drafts_service.comments_of(get_session(), drafts)
    return [{"draft": d, "submitted_at": as_utc(d.submitted_at),
             "late": service.is_late(task, d.submitted_at), "comments": comments[d.id]}
            for d in drafts]


def _comparison(drafts: list[Draft], errors: dict[str, str]) -> dict[str, Any] | None:
    """The difference between the versions ``?from=`` and ``?to=`` (numbers), if asked for."""
    raw_from, raw_to = request.args.get("from", ""), request.args.get("to", "")
    if not raw_from and not raw_to:
        return None
    by_version = {str(d.version): d for d in drafts}
    older, newer = by_version.get(raw_from.strip()), by_version.get(raw_to.strip())
    if older is None:
        errors["from"] = _("Choose one of the versions listed.")
    if newer is None:
        errors["to"] = _("Choose one of the versions listed.")
    if older is None or newer is None:
        return None
    return drafts_service.compare(older, newer)


def _compare_defaults(drafts: list[Draft]) -> tuple[str, str]:
    chosen_from, chosen_to = request.args.get("from"), request.args.get("to")
    if len(drafts) >= 2:
        return (chosen_from or str(drafts[-2].version), chosen_to or str(drafts[-1].version))
    return chosen_from or "", chosen_to or ""


# -- students ------------------------------------------------------------------------------------


def _student_task(user: User, task_id: int) -> Task | None:
    try:
        return service.visible_task(get_session(), user, task_id)
    except NotFound:
        return None


def _student_page(user: User, task: Task, errors: dict[str, str] | None = None,
                  status: int = 200, form: dict[str, Any] | None = None) -> Response:
    db = get_session()
    errors = dict(errors or {})
    drafts = drafts_service.drafts_of(db, user, task)
    comparison = _comparison(drafts, errors)
    final = next((d for d in drafts if d.final), None)
    open_for_work = (final is None and task.archived_at is None
                     and service.enrolled(db, task.class_id, user.id))
    if form is None:
        form = {"body": drafts[-1].body if drafts else "", "final": False}
    chosen_from, chosen_to = _compare_defaults(drafts)
    return page("tasks/student_task.html", 422 if errors and status == 200 else status,
                user=user, task=task, versions=list(reversed(_versions(drafts, task))),
                drafts=drafts, comparison=comparison, errors=errors, form=form, final=final,
                open_for_work=open_for_work, due_at=as_utc(task.due_at), accept=ACCEPT,
                chosen_from=chosen_from, chosen_to=chosen_to, size_text=size_text,
                max_file=size_text(file_store().max_file_bytes),
                quota=size_text(file_store().quota_bytes))


@student_bp.get("/tasks/<int:task_id>", endpoint="task_page")
@signed_in()
def student_task_page(user: User, task_id: int) -> Response:
    """A task for the student: instructions, their versions and comments, the form for the
    next version, and a comparison of two versions (``?from=1&to=2``)."""
    task = _student_task(user, task_id)
    if task is None:
        return not_found(user, _("There is no such task among yours."))
    return _student_page(user, task)


def _refusal(error: Invalid | Conflict) -> tuple[str, str]:
    """Why a version was not handed in, in the reader's language, and the field it concerns."""
    if isinstance(error, FileRefused):
        texts = {
            "empty": _("The file %(name)s is empty.", name=error.filename),
            "too_large": _("The file %(name)s is %(size)s; each file may be at most %(limit)s.",
                           name=error.filename, size=size_text(error.size),
                           limit=size_text(error.limit)),
            "type": _("The file %(name)s is not a PDF, a picture or a sound file we accept "
                      "(we look at what is inside the file, not at its name).",
                      name=error.filename),
            "quota": _("The file %(name)s would take your files over your limit of %(limit)s.",
                       name=error.filename, limit=size_text(error.limit)),
        }
        return "files", texts.get(error.kind, str(error))
    if isinstance(error, Conflict):
        if error.field == "final":
            return "form", _("You have already handed in your final version.")
        return "form", _("This task is closed: no more work can be handed in.")
    if error.field == "body" and "characters" in str(error):
        return "body", _("Your text is too long: at most %(n)s characters.",
                         n=format_decimal(drafts_service.MAX_BODY))
    if error.field == "body":
        return "body", _("Write some text or add at least one file.")
    if (error.field or "").startswith("files"):
        return "files", _("You can add at most %(n)d files to one version.",
                          n=MAX_FILES_PER_DRAFT)
    return "form", str(error)


@student_bp.post("/tasks/<int:task_id>/drafts")
@signed_in()
def submit_draft_page(user: User, task_id: int) -> Response:
    """Hand in the next version: text, files and the final flag; back to the task page."""
    task = _student_task(user, task_id)
    if task is None:
        return not_found(user, _("There is no such task among yours."))
    db = get_session()
    body = request.form.get("body", "")
    final = request.form.get("final") == "1"
    try:
        draft = drafts_service.submit_draft(db, user, task, body=body, final=final,
                                            uploads=request_uploads(), store=file_store())
    except (Invalid, Conflict) as error:
        db.rollback()
        field, text = _refusal(error)
        errors = {field: _("This version was not handed in. %(reason)s", reason=text)}
        return _student_page(user, db.get(Task, task_id), errors, 409 if isinstance(
            error, Conflict) else 422, form={"body": body, "final": final})
    except (NotFound, Forbidden):
        db.rollback()
        return not_found(user, _("There is no such task among yours."))
    db.commit()
    if draft.final:
        flash(_("Version %(n)d is handed in as your final version.", n=draft.version))
    else:
        flash(_("Version %(n)d is handed in.", n=draft.version))
    return redirect(url_for("student.task_page", task_id=task.id) + "#versions", 303)


@student_bp.errorhandler(RequestEntityTooLarge)
def _too_large(_error: RequestEntityTooLarge) -> Response:
    """A version whose files together exceed the request limit: a page that says so."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    return message(_("The files are too large"),
                   _("Everything sent with one version may take at most %(size)s. Nothing was "
                     "handed in: go back and send fewer or smaller files.",
                     size=size_text(limit)), 413, current_user())


@student_bp.get("/files/<string:sha256>")
@signed_in(students_only=False)
def download(user: User, sha256: str) -> Response:
    """A file of a draft the user may read (its student, the class's teacher, an admin)."""
    try:
        if len(sha256) != 64:
            raise NotFound("not a file id")
        stored, filename = drafts_service.visible_file(get_session(), user, sha256.lower())
        return file_response(stored, filename)
    except (NotFound, ValueError):
        return not_found(user, _("There is no such file that you may see."))


# -- teachers ------------------------------------------------------------------------------------


def _class_task(user: User, class_id: int, task_id: int) -> tuple[SchoolClass | None,
                                                                   Task | None]:
    klass = _own_class(user, class_id)
    if klass is None:
        return None, None
    task = get_session().get(Task, task_id)
    return klass, task if task is not None and task.class_id == klass.id else None


def _task_form_page(user: User, klass: SchoolClass, task: Task | None,
                    errors: dict[str, str] | None = None, status: int = 200) -> Response:
    db = get_session()
    if request.method == "GET" and task is not None:
        form = {"title": task.title, "instructions": task.instructions,
                "skills": list(task.skills or []), "due_at": local_input(task.due_at)}
    elif request.method == "GET":
        form = {"title": "", "instructions": "", "skills": [], "due_at": ""}
    else:
        form = {"title": request.form.get("title", ""),
                "instructions": request.form.get("instructions", ""),
                "skills": request.form.getlist("skills"),
                "due_at": request.form.get("due_at", "")}
    return page("tasks/task_form.html", status, user=user, klass=klass, task=task, form=form,
                errors=errors or {}, skills=service.bank_skills(db),
                max_title=service.MAX_TITLE, max_instructions=service.MAX_INSTRUCTIONS)


def _task_values(errors: dict[str, str]) -> dict[str, Any]:
    title = request.form.get("title", "").strip()
    if not title:
        errors["title"] = _("Give the task a title.")
    return {"title": title, "instructions": request.form.get("instructions", ""),
            "skills": request.form.getlist("skills"),
            "due_at": _form_moment("due_at", errors)}


def _service_field(error: Invalid) -> str:
    field = error.field or "title"
    return "skills" if field.startswith("skills") else field


def _task_refusal(error: Invalid) -> tuple[str, str]:
    """A task the service refused: the field and why, in the reader's language."""
    field = _service_field(error)
    texts = {
        "title": _("The title may have at most %(n)d characters.", n=service.MAX_TITLE),
        "instructions": _("The instructions may have at most %(n)s characters.",
                          n=format_decimal(service.MAX_INSTRUCTIONS)),
        "skills": _("Choose at most %(n)d skills among those offered (the skills of the item "
                    "bank).", n=service.MAX_SKILLS),
        "due_at": _("Enter a date and time, for example 2026-09-01 08:00."),
    }
    return field, texts.get(field, str(error))


@teacher_bp.route("/classes/<int:class_id>/tasks/new", methods=["GET", "POST"])
@teachers_only
def new_task(user: User, class_id: int) -> Response:
    """Set a task for the class: title, instructions (Markdown), skills, optional due date."""
    klass = _own_class(user, class_id)
    if klass is None:
        return _no_class(user, class_id)
    if request.method == "GET":
        return _task_form_page(user, klass, None)
    db = get_session()
    errors: dict[str, str] = {}
    values = _task_values(errors)
    if not errors:
        try:
            task = service.create_task(db, user, klass, base_url=public_url(), **values)
        except Invalid as error:
            field, text = _task_refusal(error)
            errors[field] = text
    if errors:
        db.rollback()
        return _task_form_page(user, klass, None, errors, 422)
    db.commit()
    flash(_("The task %(title)s is set for class %(name)s.", title=task.title, name=klass.name))
    return redirect(url_for("teacher.task_page", class_id=klass.id, task_id=task.id), 303)


@teacher_bp.route("/classes/<int:class_id>/tasks/<int:task_id>/edit", methods=["GET", "POST"])
@teachers_only
def edit_task(user: User, class_id: int, task_id: int) -> Response:
    """Change a task's title, instructions, skills or due date."""
    klass, task = _class_task(user, class_id, task_id)
    if klass is None:
        return _no_class(user, class_id)
    if task is None:
        return not_found(user, _("There is no such task in this class."))
    if request.method == "GET":
        return _task_form_page(user, klass, task)
    db = get_session()
    errors: dict[str, str] = {}
    values = _task_values(errors)
    if not errors:
        try:
            service.update_task(db, task, values)
        except Invalid as error:
            field, text = _task_refusal(error)
            errors[field] = text
    if errors:
        db.rollback()
        return _task_form_page(user, klass, db.get(Task, task_id), errors, 422)
    db.commit()
    flash(_("The task %(title)s is saved.", title=task.title))
    return redirect(url_for("teacher.task_page", class_id=klass.id, task_id=task.id), 303)


@teacher_bp.post("/classes/<int:class_id>/tasks/<int:task_id>/archive")
@teachers_only
def archive_task(user: User, class_id: int, task_id: int) -> Response:
    """Close a task (students no longer see it or hand in work; drafts are kept), or reopen
    it (``reopen=1``)."""
    klass, task = _class_task(user, class_id, task_id)
    if klass is None:
        return _no_class(user, class_id)
    if task is None:
        return not_found(user, _("There is no such task in this class."))
    reopen = request.form.get("reopen") == "1"
    service.update_task(get_session(), task, {"archived": not reopen})
    get_session().commit()
    if reopen:
        flash(_("The task %(title)s is open again.", title=task.title))
    else:
        flash(_("The task %(title)s is closed. The work handed in is kept.", title=task.title))
    return redirect(url_for("teacher.task_page", class_id=klass.id, task_id=task.id), 303)


@teacher_bp.get("/classes/<int:class_id>/tasks/<int:task_id>", endpoint="task_page")
@teachers_only
def teacher_task_page(user: User, class_id: int, task_id: int) -> Response:
    """A task for its teacher: who handed in work, their latest version, final or not."""
    klass, task = _class_task(user, class_id, task_id)
    if klass is None:
        return _no_class(user, class_id)
    if task is None:
        return not_found(user, _("There is no such task in this class."))
    db = get_session()
    students = sorted(db.scalars(roster_query(klass)),
                      key=lambda s: natural_key(s.display_name or s.username))
    rows = drafts_service.task_progress(db, task, students)
    for row in rows:
        if row["latest"] is not None:
            row["latest_at"] = as_utc(row["latest"].submitted_at)
    return page("tasks/teacher_task.html", user=user, klass=klass, task=task, rows=rows,
                due_at=as_utc(task.due_at), archived_at=as_utc(task.archived_at))


def _reviewed_student(user: User, klass: SchoolClass, task: Task, student_id: int
                      ) -> User | None:
    student = get_session().get(User, student_id)
    if student is None or not drafts_service.may_review(get_session(), user, task, student_id):
        return None
    if not service.enrolled(get_session(), klass.id, student_id):
        return None
    return student


def _timeline_page(user: User, klass: SchoolClass, task: Task, student: User,
                   errors: dict[str, str] | None = None, status: int = 200,
                   comment_form: dict[str, str] | None = None) -> Response:
    errors = dict(errors or {})
    drafts = drafts_service.drafts_of(get_session(), user, task, student.id)
    comparison = _comparison(drafts, errors)
    chosen_from, chosen_to = _compare_defaults(drafts)
    return page("tasks/teacher_student.html", 422 if errors and status == 200 else status,
                user=user, klass=klass, task=task, student=student,
                versions=_versions(drafts, task), drafts=drafts, comparison=comparison,
                errors=errors, chosen_from=chosen_from, chosen_to=chosen_to,
                comment_form=comment_form or {}, size_text=size_text,
                due_at=as_utc(task.due_at))


@teacher_bp.get("/classes/<int:class_id>/tasks/<int:task_id>/students/<int:student_id>")
@teachers_only
def task_student(user: User, class_id: int, task_id: int, student_id: int) -> Response:
    """One student's versions of a task as a timeline, a comparison of any two (``?from=&to=``)
    and a comment form on each."""
    klass, task = _class_task(user, class_id, task_id)
    if klass is None:
        return _no_class(user, class_id)
    if task is None:
        return not_found(user, _("There is no such task in this class."))
    student = _reviewed_student(user, klass, task, student_id)
    if student is None:
        return not_found(user, _("There is no such student in this class."))
    return _timeline_page(user, klass, task, student)


@teacher_bp.post("/classes/<int:class_id>/tasks/<int:task_id>/students/<int:student_id>"
                 "/drafts/<int:draft_id>/comments")
@teachers_only
def comment(user: User, class_id: int, task_id: int, student_id: int,
            draft_id: int) -> Response:
    """Leave a comment on one version; back to the timeline at that version."""
    klass, task = _class_task(user, class_id, task_id)
    if klass is None:
        return _no_class(user, class_id)
    student = _reviewed_student(user, klass, task, student_id) if task else None
    draft = get_session().get(Draft, draft_id)
    if task is None or student is None or draft is None or draft.task_id != task.id \
            or draft.student_id != student.id:
        return not_found(user, _("There is no such version in this class."))
    db = get_session()
    text = request.form.get("body", "")
    try:
        drafts_service.add_comment(db, user, draft, text)
    except (Invalid, Forbidden, NotFound) as error:
        db.rollback()
        if not isinstance(error, Invalid):
            return message(_("Not allowed"), str(error), 403, user)
        return _timeline_page(user, klass, db.get(Task, task_id), student,
                              {f"comment-{draft_id}": _("Write a comment of 1 to %(n)s "
                                                        "characters.",
                                                        n=format_decimal(
                                                            drafts_service.MAX_COMMENT))},
                              422, {str(draft_id): text})
    db.commit()
    flash(_("Your comment on version %(n)d is saved; %(name)s will see it.", n=draft.version,
            name=student.display_name or student.username))
    return redirect(url_for("teacher.task_student", class_id=klass.id, task_id=task.id,
                            student_id=student.id) + f"#version-{draft.version}", 303)
