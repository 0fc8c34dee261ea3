"""Pages for the PDF reports: a student's report as PDF (the student, their teachers,
administrators), and the class pack: asked for from the class page, followed on a job page that
shows its progress and, when done, the download link.

The job page reloads itself every 2 seconds (a meta refresh: no JavaScript) only when the teacher
chose so (the class page's form asks, checked by default; the job page has links to stop or
start it): a page that reloads on its own resets a screen reader's reading every time, so the
choice is the reader's (WCAG 2.2.1), and without it the page has a "Check again" link.

The rules live in :mod:`reports.class_pack` and the queueing in :mod:`api.v1.report_pdfs`;
another teacher's class, job or student is *not found* (404), as in the API.
"""

from __future__ import annotations

from flask import Blueprint, Response, redirect, request, url_for
from flask_babel import gettext as _

from api.db import get_session
from api.i18n import LANGUAGES, current_language, translator
from api.pages import current_user
from api.staff import install_error_pages, message, not_found, page, to_sign_in
from api.teacher_pages import teachers_only
from api.v1.calibration import QueueUnavailable
from api.v1.report_pdfs import pdf_response, queue_class_pack, read_job, record_pack_read
from reports.pdf import student_pdf
from reports.report import student_report
from rights.audit_log import record_read
from storage.accounts import SchoolClass, User
from storage.errors import NotFound
from storage.rights import AuditAction

bp = Blueprint("report_pdf_pages", __name__)
install_error_pages(bp)

#: Seconds between reloads of a job page while the job is queued or running.
REFRESH_SECONDS = 2


def _language() -> str:
    chosen = request.values.get("language") or request.values.get("lang")
    return chosen if chosen in LANGUAGES else current_language()


@bp.get("/students/<int:student_id>/report.pdf")
def student_report_pdf(student_id: int) -> Response:
    """A student's mastery report as PDF, in the page's language (or ``?lang=``)."""
    user = current_user()
    if user is None:
        return to_sign_in()
    try:
        report = student_report(get_session(), user, student_id)
    except NotFound:
        return not_found(user, _("There is no report of this student that you may see."))
    record_read(get_session(), user, student_id, AuditAction.REPORT_READ, object_type="report",
                detail={"format": "pdf"})
    language = _language()
    body = student_pdf(report, language=language, gettext=translator(language))
    return pdf_response(body, f"report-{report['student']['pseudonym'] or student_id}.pdf")


@bp.post("/teach/classes/<int:class_id>/report-pack")
@teachers_only
def ask_class_pack(user: User, class_id: int) -> Response:
    """Queue the class pack in the chosen language and go to its job page."""
    try:
        job = queue_class_pack(get_session(), user, class_id, _language())
    except NotFound:
        return not_found(user, _("There is no class %(id)d among yours.", id=class_id))
    except QueueUnavailable:
        return message(_("The report pack cannot be made now"),
                       _("The background worker cannot be reached. Try again later, or ask "
                         "an administrator to check the job queue."), 503, user)
    follow = "1" if request.form.get("follow") == "1" else None
    return redirect(url_for("report_pdf_pages.class_pack_job", job_id=job.id, follow=follow),
                    303)


@bp.get("/teach/report-jobs/<int:job_id>")
@teachers_only
def class_pack_job(user: User, job_id: int) -> Response:
    """A class pack's progress, then its download link (``?follow=1``: reload every 2 s while
    it is queued or running)."""
    db = get_session()
    try:
        job = read_job(db, user, job_id)
    except NotFound:
        return not_found(user, _("There is no such report pack among your classes."))
    pending = job.status in ("queued", "running")
    follow = request.args.get("follow") == "1"
    return page("teacher/report_job.html", user=user, job=job,
                klass=db.get(SchoolClass, job.class_id), pending=pending, follow=follow,
                refresh=REFRESH_SECONDS if pending and follow else None,
                language_name=LANGUAGES.get(job.language, job.language))


@bp.get("/teach/report-jobs/<int:job_id>/pdf")
@teachers_only
def class_pack_pdf(user: User, job_id: int) -> Response:
    """The class pack's PDF, once done."""
    db = get_session()
    try:
        job = read_job(db, user, job_id)
    except NotFound:
        return not_found(user, _("There is no such report pack among your classes."))
    if job.status != "done" or job.pdf is None:
        return redirect(url_for("report_pdf_pages.class_pack_job", job_id=job.id), 303)
    record_pack_read(db, user, job)
    return pdf_response(job.pdf, f"class-{job.class_id}-report-pack-{job.id}.pdf")
