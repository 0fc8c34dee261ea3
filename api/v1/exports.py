"""A student's data export over HTTP (the right of access).

- ``GET /students/{student_id}/export``: everything held about the student as one JSON document
  (:func:`rights.export.student_export`), with a link to ``export.pdf``.
- ``GET /students/{student_id}/export.pdf``: the PDF of their latest mastery report, as the
  caller reads it.

For the student themself and administrators who reach them; another student, an erased one or
one out of the administrator's school is 404; teachers and assessors are refused by role (403).
Each read records ``EXPORT_READ`` and commits it.
"""

from __future__ import annotations

import marshmallow as ma
from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.i18n import request_language, translator
from api.v1.auth import current_user, requires
from api.v1.report_pdfs import PDF_RESPONSE, LanguageArgs, pdf_response
from reports.pdf import student_pdf
from reports.report import student_report
from rights import export as service
from storage.accounts import Role

blp = Blueprint("exports", __name__, description="A student's data export (right of access)")

_SECTION = {"description": "One record per entry; see docs/decisions.md for the fields"}


class ExportSchema(ma.Schema):
    format = ma.fields.String(metadata={"description": "cat-engine-export/1"})
    generated_at = ma.fields.String(metadata={"description": "ISO 8601, UTC"})
    student_id = ma.fields.Integer()
    profile = ma.fields.Dict(metadata={"description": "username, display name, role, "
                                                      "pseudonym, school (no password hash)"})
    consents = ma.fields.List(ma.fields.Dict(), metadata=_SECTION)
    groups = ma.fields.Dict(metadata={"description": "Group variable -> value"})
    accommodation = ma.fields.Dict(allow_none=True)
    classes = ma.fields.List(ma.fields.Dict(), metadata=_SECTION)
    attempts = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "Each attempt with every response (item code, choice, correct, time)"})
    drafts = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "Drafts with their files' SHA-256 (not the bytes) and comments"})
    statements = ma.fields.List(ma.fields.Dict(), metadata={"description": "xAPI statements"})
    defenses = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "Oral defenses with their rubric scores"})
    decisions = ma.fields.List(ma.fields.Dict(), metadata=_SECTION)
    appeals = ma.fields.List(ma.fields.Dict(), metadata={"description": "With their answers"})
    audit = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "Audit entries about the student: who looked at or changed their data"})
    report_pdf = ma.fields.String(metadata={"description": "URL of the latest report's PDF"})


@blp.route("/students/<int:student_id>/export")
class StudentExport(MethodView):
    @requires(Role.STUDENT, Role.ADMIN)
    @blp.response(200, ExportSchema)
    @blp.alt_response(404, description="No such student the caller may see (or erased)")
    def get(self, student_id):
        """Everything held about a student, as one JSON document (records EXPORT_READ)."""
        session = get_session()
        document = service.student_export(session, current_user(), student_id)
        session.commit()
        document["report_pdf"] = url_for("exports.StudentExportPdf", student_id=student_id)
        return document


@blp.route("/students/<int:student_id>/export.pdf")
class StudentExportPdf(MethodView):
    @requires(Role.STUDENT, Role.ADMIN)
    @blp.arguments(LanguageArgs(), location="query")
    @blp.doc(responses=PDF_RESPONSE)
    @blp.alt_response(404, description="No such student the caller may see (or erased)")
    def get(self, args, student_id):
        """The student's latest mastery report as PDF, part of the export (records
        EXPORT_READ)."""
        session = get_session()
        user = current_user()
        student = service.exportable_student(session, user, student_id)
        report = student_report(session, user, student.id)
        language = request_language(args.get("lang"))
        body = student_pdf(report, language=language, gettext=translator(language))
        service.record_export(session, user, student, "pdf")
        session.commit()
        return pdf_response(body, f"export-{student.pseudonym}.pdf")
