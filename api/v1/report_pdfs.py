"""Mastery reports as PDF: a student's, at once; a class pack, as a background job.

A student's PDF is for whoever may read the report (the student, their teachers, administrators;
anyone else gets 404). A class pack is for the class's teacher and administrators: the request
records a job and answers 202; the job's status and progress are polled, then its PDF fetched.
The language is ``lang`` (``en``, ``es``), else the best of ``Accept-Language``.
"""

from __future__ import annotations

import marshmallow as ma
from flask import Response, current_app, url_for
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from api import jobs
from api.db import engine_of, get_session
from api.i18n import LANGUAGES, request_language, translator
from api.v1.auth import current_user, requires
from api.v1.calibration import QueueUnavailable
from api.v1.common import UtcDateTime
from reports import class_pack as service
from reports.pdf import student_pdf
from reports.report import student_report
from rights.audit_log import record_read, record_reads
from storage import utcnow
from storage.accounts import Role, class_members
from storage.errors import Conflict
from storage.rights import AuditAction

blp = Blueprint("report_pdfs", __name__, description="Mastery reports as PDF")

PDF = "application/pdf"
PDF_RESPONSE = {"200": {"description": "The PDF", "content": {
    PDF: {"schema": {"type": "string", "format": "binary"}}}}}


class LanguageArgs(ma.Schema):
    lang = ma.fields.String(validate=ma.validate.OneOf(sorted(LANGUAGES)), metadata={
        "description": "The PDF's language (default: the best of Accept-Language, else en)"})


class PackRequestSchema(ma.Schema):
    language = ma.fields.String(validate=ma.validate.OneOf(sorted(LANGUAGES)), load_default=None,
                                metadata={"description": "en or es (default: the best of "
                                                         "Accept-Language, else en)"})


class ReportJobSchema(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String()
    class_id = ma.fields.Integer()
    language = ma.fields.String()
    status = ma.fields.String(metadata={"description": "queued, running, done or failed"})
    progress = ma.fields.Integer(metadata={"description": "Students rendered so far"})
    total = ma.fields.Integer(metadata={"description": "Students in the pack"})
    error = ma.fields.String(allow_none=True)
    ready = ma.fields.Boolean(metadata={"description": "The PDF can be fetched"})
    created_at = UtcDateTime()
    started_at = UtcDateTime(allow_none=True)
    finished_at = UtcDateTime(allow_none=True)
    heartbeat_at = UtcDateTime(allow_none=True)


def pdf_response(body: bytes, filename: str) -> Response:
    """``body`` as a PDF attachment named ``filename``."""
    response = Response(body, mimetype=PDF)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@blp.route("/students/<int:student_id>/report.pdf")
class StudentReportPdf(MethodView):
    @requires()
    @blp.arguments(LanguageArgs(), location="query")
    @blp.doc(responses=PDF_RESPONSE)
    @blp.alt_response(404, description="No such student the caller may see")
    def get(self, args, student_id):
        """A student's mastery report as PDF (the student, their teachers, administrators)."""
        session = get_session()
        report = student_report(session, current_user(), student_id)
        record_read(session, current_user(), student_id, AuditAction.REPORT_READ,
                    object_type="report", detail={"format": "pdf"})
        language = request_language(args.get("lang"))
        body = student_pdf(report, language=language, gettext=translator(language))
        return pdf_response(body, f"report-{report['student']['pseudonym'] or student_id}.pdf")


def record_pack_read(session, user, job) -> None:
    """A class pack was downloaded: one report read per student of the class."""
    students = session.scalars(select(class_members.c.user_id)
                               .where(class_members.c.class_id == job.class_id)).all()
    record_reads(session, user, list(students), AuditAction.REPORT_READ, object_type="report",
                 object_id=f"pack-{job.id}", detail={"format": "class_pack"})


def _queue() -> jobs.Queue:
    try:
        return jobs.get_queue(jobs.queue_url(current_app.config.get("HUEY_URL"),
                                             current_app.instance_path))
    except Exception as error:  # misconfigured, or its storage cannot be opened
        raise QueueUnavailable(f"the job queue cannot be used: {error}") from None


def queue_class_pack(session, user, class_id: int, language: str):
    """Record a class pack for ``user`` and hand it to the worker (the API's and the page's).
    Returns the job, refreshed (immediate mode may have finished it).

    Raises
    ------
    NotFound
        Not a class of ``user``'s (any class, for an administrator).
    QueueUnavailable
        The queue is misconfigured or unreachable (the job is recorded as failed).
    """
    queue = _queue()
    job = service.create_class_pack(session, user, class_id, language=language)
    session.commit()  # the worker reads the job from the database
    try:
        # Credentials never travel in the queue: only immediate mode (tests) gets this app's URL.
        url = (engine_of(current_app).url.render_as_string(hide_password=False)
               if queue.immediate else None)
        jobs.enqueue_report_job(queue, job.id, url)
    except Exception as error:
        detail = f"could not queue report job {job.id}: {error}".splitlines()[0]
        job.status, job.error, job.finished_at = "failed", detail, utcnow()
        session.commit()
        raise QueueUnavailable(detail) from None
    session.refresh(job)
    return job


def read_job(session, user, job_id: int):
    """Job ``job_id`` as ``user`` may read it, a stalled one marked failed first."""
    job = service.get_job(session, user, job_id)
    if service.reap_stalled(job):
        session.commit()
    return job


@blp.route("/classes/<int:class_id>/report-pack")
class ClassReportPack(MethodView):
    @requires(Role.TEACHER, Role.ADMIN)
    @blp.arguments(PackRequestSchema())
    @blp.response(202, ReportJobSchema)
    @blp.alt_response(404, description="No such class the caller may see")
    @blp.alt_response(503, description="The job queue is misconfigured or unreachable")
    def post(self, data, class_id):
        """Queue the class pack (every enrolled student's report, then the class dashboard).

        Returns at once with the job (``queued``) and its ``Location``; poll it for progress.
        """
        job = queue_class_pack(get_session(), current_user(), class_id,
                               request_language(data.get("language")))
        return (service.job_view(job), 202,
                {"Location": url_for("report_pdfs.ReportJobById", job_id=job.id)})


@blp.route("/report-jobs/<int:job_id>")
class ReportJobById(MethodView):
    @requires(Role.TEACHER, Role.ADMIN)
    @blp.response(200, ReportJobSchema)
    @blp.alt_response(404, description="No such job the caller may see")
    def get(self, job_id):
        """A report job: status, progress of total students, error, times."""
        return service.job_view(read_job(get_session(), current_user(), job_id))


@blp.route("/report-jobs/<int:job_id>/pdf")
class ReportJobPdf(MethodView):
    @requires(Role.TEACHER, Role.ADMIN)
    @blp.doc(responses=PDF_RESPONSE)
    @blp.alt_response(404, description="No such job the caller may see")
    @blp.alt_response(409, description="The job is not done (queued, running or failed)")
    def get(self, job_id):
        """The class pack's PDF, once the job is done."""
        job = read_job(get_session(), current_user(), job_id)
        if job.status != "done" or job.pdf is None:
            raise Conflict(f"report job {job_id} is {job.status}"
                           + (f": {job.error}" if job.error else "; try again when it is done"))
        record_pack_read(get_session(), current_user(), job)
        return pdf_response(job.pdf, f"class-{job.class_id}-report-pack-{job.id}.pdf")
