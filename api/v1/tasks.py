"""Performance tasks, the drafts students hand in for them, comments, differences and files.

Teachers set tasks for their own classes (administrators for any); students see the tasks of
their classes and hand in versions of their work (``multipart/form-data``: ``body``, ``final``
and any number of ``files``). A student reads only their own drafts; the class's teacher those
of the students enrolled in it (``?student_id=`` for one), administrators all. Anything else is
404, so its existence is not revealed. The rules live in :mod:`evidence.tasks` and
:mod:`evidence.drafts`; these views validate, call one service function and commit.
"""

from __future__ import annotations

import marshmallow as ma
from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from flask_smorest.fields import Upload as UploadField

from api.db import get_session
from api.site import public_url
from api.uploads import file_response, file_store, request_uploads
from api.v1.auth import current_user, requires
from api.v1.classes import no_nul
from api.v1.common import PageArgs, UtcDateTime, id_field, page_of, paginate
from evidence import drafts as drafts_service
from evidence import tasks as service
from evidence.classes import visible_class
from evidence.models import Draft
from storage.accounts import Role
from storage.errors import Invalid, NotFound

blp = Blueprint("tasks", __name__,
                description="Performance tasks, drafts (versions of students' work), comments "
                            "and files")

MANAGERS = (Role.TEACHER, Role.ADMIN)
SHA256 = r"^[0-9a-f]{64}$"


# -- schemas -------------------------------------------------------------------------------------


class TaskSchema(ma.Schema):
    id = ma.fields.Integer()
    class_id = ma.fields.Integer()
    title = ma.fields.String()
    instructions = ma.fields.String(metadata={"description": "Markdown (rendered safely)"})
    skills = ma.fields.List(ma.fields.String(), metadata={"description": "Skills of the bank"})
    due_at = UtcDateTime(allow_none=True, metadata={
        "description": "Shown, not enforced: later work is accepted and marked late"})
    activity_id = ma.fields.String(metadata={"description": "The task as an xAPI activity"})
    archived = ma.fields.Function(lambda task: task.archived_at is not None)
    archived_at = UtcDateTime(allow_none=True)
    created_by = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()


class TaskPatchSchema(ma.Schema):
    title = ma.fields.String(validate=[ma.validate.Length(1, service.MAX_TITLE), no_nul])
    instructions = ma.fields.String(
        validate=[ma.validate.Length(0, service.MAX_INSTRUCTIONS), no_nul],
        metadata={"description": "Markdown"})
    skills = ma.fields.List(ma.fields.String(validate=[ma.validate.Length(1, 80), no_nul]),
                            validate=ma.validate.Length(0, service.MAX_SKILLS),
                            metadata={"description": "Skill names the item bank has"})
    due_at = UtcDateTime(allow_none=True, metadata={"description": "ISO 8601 with a zone"})
    archived = ma.fields.Boolean(metadata={"description": "Take off (or put back on) students' "
                                                          "lists; drafts are kept"})


class TaskCreateSchema(TaskPatchSchema):
    title = ma.fields.String(required=True,
                             validate=[ma.validate.Length(1, service.MAX_TITLE), no_nul])

    class Meta:
        exclude = ("archived",)


class TaskListArgs(PageArgs):
    archived = ma.fields.Boolean(load_default=True,
                                 metadata={"description": "Include archived tasks"})


class FileSchema(ma.Schema):
    sha256 = ma.fields.String()
    filename = ma.fields.String()
    size = ma.fields.Function(lambda f: f.stored.size)
    media_type = ma.fields.Function(lambda f: f.stored.media_type)
    url = ma.fields.Function(lambda f: url_for("tasks.FileById", sha256=f.sha256))


class CommentSchema(ma.Schema):
    id = ma.fields.Integer()
    draft_id = ma.fields.Integer()
    author_id = ma.fields.Integer(allow_none=True)
    author = ma.fields.String(metadata={"description": "The author's name"})
    body = ma.fields.String()
    created_at = UtcDateTime()


class DraftSchema(ma.Schema):
    id = ma.fields.Integer()
    task_id = ma.fields.Integer()
    student_id = ma.fields.Integer()
    version = ma.fields.Integer(metadata={"description": "1, 2, 3... per task and student"})
    body = ma.fields.String(metadata={"description": "Markdown, as written"})
    final = ma.fields.Boolean()
    late = ma.fields.Function(lambda d: service.is_late(d.task, d.submitted_at))
    submitted_at = UtcDateTime()
    files = ma.fields.List(ma.fields.Nested(FileSchema))
    n_comments = ma.fields.Function(lambda d: len(d.comments))


class DraftDetailSchema(DraftSchema):
    comments = ma.fields.Method("_comments")

    def _comments(self, draft: Draft):
        rows = drafts_service.comments_of(get_session(), [draft])[draft.id]
        return CommentSchema(many=True).dump(rows)


class DraftFormSchema(ma.Schema):
    body = ma.fields.String(load_default="", validate=[
        ma.validate.Length(0, drafts_service.MAX_BODY), no_nul],
        metadata={"description": "The text, as Markdown"})
    final = ma.fields.Boolean(load_default=False, metadata={
        "description": "This is the final version: no more may follow"})
    # Read from the request's files (api.uploads.request_uploads); here for the document.
    files = ma.fields.List(UploadField(), load_default=list, metadata={
        "description": "Files (PDF, PNG, JPEG, GIF, WebP, MP3, Ogg, WAV, M4A, AAC; judged by "
                       "content), each within the per-file limit and the student's quota"})


class DraftListArgs(PageArgs):
    student_id = id_field(metadata={"description": "Teachers: one student's drafts"})


class DiffArgs(ma.Schema):
    against = id_field(required=True, metadata={
        "description": "The draft to compare from (same task and student)"})


class SegmentSchema(ma.Schema):
    op = ma.fields.String(metadata={"description": "equal, delete or insert"})
    text = ma.fields.String()


class VersionBriefSchema(ma.Schema):
    id = ma.fields.Integer()
    version = ma.fields.Integer()
    submitted_at = UtcDateTime()


class DiffSchema(ma.Schema):
    from_ = ma.fields.Nested(VersionBriefSchema, data_key="from", attribute="from")
    to = ma.fields.Nested(VersionBriefSchema)
    segments = ma.fields.List(ma.fields.Nested(SegmentSchema), metadata={
        "description": "The Markdown source word by word: joining equal and delete runs gives "
                       "the older text, equal and insert runs the newer"})
    words_inserted = ma.fields.Integer()
    words_deleted = ma.fields.Integer()
    files_added = ma.fields.List(ma.fields.String())
    files_removed = ma.fields.List(ma.fields.String())


class CommentCreateSchema(ma.Schema):
    body = ma.fields.String(required=True, validate=[
        ma.validate.Length(1, drafts_service.MAX_COMMENT), no_nul])


# -- tasks ---------------------------------------------------------------------------------------


@blp.route("/classes/<int:class_id>/tasks")
class ClassTasks(MethodView):
    @requires(*MANAGERS)
    @blp.arguments(TaskListArgs(), location="query")
    @blp.response(200, page_of(TaskSchema, "TaskPage"))
    @blp.alt_response(404, description="No such class of the caller's")
    def get(self, args, class_id):
        """A class's tasks: soonest due first, archived ones last (or left out)."""
        session = get_session()
        klass = visible_class(session, current_user(), class_id)
        return paginate(session, service.class_tasks(klass, args["archived"]), args)

    @requires(*MANAGERS)
    @blp.arguments(TaskCreateSchema())
    @blp.response(201, TaskSchema)
    @blp.alt_response(404, description="No such class of the caller's")
    def post(self, data, class_id):
        """Set a task for a class: title, instructions (Markdown), skills, optional due date."""
        session = get_session()
        user = current_user()
        klass = visible_class(session, user, class_id)
        task = service.create_task(session, user, klass, base_url=public_url(), **data)
        session.commit()
        return task, 201, {"Location": url_for("tasks.TaskById", task_id=task.id)}


@blp.route("/tasks")
class MyTasks(MethodView):
    @requires(Role.STUDENT)
    @blp.response(200, TaskSchema(many=True))
    def get(self):
        """The tasks open to the signed-in student: their classes', not archived."""
        return service.open_tasks(get_session(), current_user())


@blp.route("/tasks/<int:task_id>")
class TaskById(MethodView):
    @requires()
    @blp.response(200, TaskSchema)
    @blp.alt_response(404, description="No such task the caller may see")
    def get(self, task_id):
        """One task (its class's teacher, administrators, the class's students)."""
        return service.visible_task(get_session(), current_user(), task_id)

    @requires(*MANAGERS)
    @blp.arguments(TaskPatchSchema())
    @blp.response(200, TaskSchema)
    @blp.alt_response(404, description="No such task of the caller's classes")
    def patch(self, data, task_id):
        """Change a task, or archive it (``archived``); drafts are kept either way."""
        session = get_session()
        task = service.managed_task(session, current_user(), task_id)
        service.update_task(session, task, data)
        session.commit()
        return task

    @requires(*MANAGERS)
    @blp.response(204)
    @blp.alt_response(404, description="No such task of the caller's classes")
    def delete(self, task_id):
        """Archive a task: off students' lists, no more drafts; those handed in are kept."""
        session = get_session()
        service.archive_task(session, service.managed_task(session, current_user(), task_id))
        session.commit()


# -- drafts --------------------------------------------------------------------------------------


@blp.route("/tasks/<int:task_id>/drafts")
class TaskDrafts(MethodView):
    @requires()
    @blp.arguments(DraftListArgs(), location="query")
    @blp.response(200, page_of(DraftSchema, "DraftPage"))
    @blp.alt_response(404, description="No such task, or a student the caller may not see")
    def get(self, args, task_id):
        """Drafts of a task, by student then version: a student's own; a teacher's, of the
        class's students (``student_id`` for one)."""
        session = get_session()
        user = current_user()
        task = service.visible_task(session, user, task_id)
        query = drafts_service.drafts_select(session, user, task, args.get("student_id"))
        return paginate(session, query, args)

    @requires(Role.STUDENT)
    @blp.arguments(DraftFormSchema(), location="form", content_type="multipart/form-data")
    @blp.response(201, DraftDetailSchema)
    @blp.alt_response(404, description="No such task in the student's classes")
    @blp.alt_response(409, description="The task is archived, or a final version was sent")
    def post(self, form, task_id):
        """Hand in the next version (multipart: ``body``, ``final``, ``files``).

        Files are judged by their content against the allow-list; an empty file, one over the
        per-file limit or over the student's quota is refused with 422 naming it
        (``files[i]``). Nothing of a refused version is kept.
        """
        session = get_session()
        user = current_user()
        task = service.visible_task(session, user, task_id)
        draft = drafts_service.submit_draft(session, user, task, body=form["body"],
                                            final=form["final"], uploads=request_uploads(),
                                            store=file_store())
        session.commit()
        return draft, 201, {"Location": url_for("tasks.DraftById", draft_id=draft.id)}


@blp.route("/drafts/<int:draft_id>")
class DraftById(MethodView):
    @requires()
    @blp.response(200, DraftDetailSchema)
    @blp.alt_response(404, description="No such draft the caller may see")
    def get(self, draft_id):
        """One version with its files and comments."""
        return drafts_service.visible_draft(get_session(), current_user(), draft_id)


@blp.route("/drafts/<int:draft_id>/diff")
class DraftDiff(MethodView):
    @requires()
    @blp.arguments(DiffArgs(), location="query")
    @blp.response(200, DiffSchema)
    @blp.alt_response(404, description="No such draft the caller may see")
    def get(self, args, draft_id):
        """What changed from version ``against`` to this one, word by word, and the files."""
        session = get_session()
        user = current_user()
        draft = drafts_service.visible_draft(session, user, draft_id)
        try:
            older = drafts_service.visible_draft(session, user, args["against"])
        except NotFound:
            raise NotFound(f"against: no draft {args['against']} you may see",
                           field="against") from None
        return drafts_service.compare(older, draft)


@blp.route("/drafts/<int:draft_id>/comments")
class DraftComments(MethodView):
    @requires()
    @blp.response(200, CommentSchema(many=True))
    @blp.alt_response(404, description="No such draft the caller may see")
    def get(self, draft_id):
        """The comments on a version, oldest first (its student sees them too)."""
        session = get_session()
        draft = drafts_service.visible_draft(session, current_user(), draft_id)
        return drafts_service.comments_of(session, [draft])[draft.id]

    @requires(*MANAGERS)
    @blp.arguments(CommentCreateSchema())
    @blp.response(201, CommentSchema)
    @blp.alt_response(404, description="No such draft of the caller's classes")
    def post(self, data, draft_id):
        """Comment on a version (the class's teacher or an administrator)."""
        session = get_session()
        user = current_user()
        draft = drafts_service.visible_draft(session, user, draft_id)
        comment = drafts_service.add_comment(session, user, draft, data["body"])
        session.commit()
        return next(c for c in drafts_service.comments_of(session, [draft])[draft.id]
                    if c["id"] == comment.id), 201


@blp.route("/files/<string:sha256>")
class FileById(MethodView):
    @requires()
    @blp.response(200, description="The file, with its stored media type")
    @blp.alt_response(404, description="No draft the caller may see carries this file")
    def get(self, sha256):
        """Download a file of a draft the caller may read (attachment unless image or audio)."""
        session = get_session()
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise Invalid("the file id is the SHA-256 of its content: 64 lowercase hex digits",
                          field="sha256")
        stored, filename = drafts_service.visible_file(session, current_user(), sha256)
        return file_response(stored, filename)
