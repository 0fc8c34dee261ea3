"""Pages of learners' rights: a student downloads their data (and an administrator a
student's), and administrators request, confirm and cancel erasures at ``/admin/erasures``.

They call :mod:`rights.export` and :mod:`rights.erasure` as the API does, with the same rules:
another student's export is *not found*; the administrator who requested an erasure cannot
confirm it. Forms POST then redirect (errors re-render the list beside the field, 422).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, flash, redirect, request, url_for
from flask_babel import gettext as _

from api.db import get_session
from api.staff import for_roles, install_error_pages, not_found, page
from api.uploads import file_store
from rights import audit_log, export
from rights import erasure as service
from storage.accounts import Role, User
from storage.errors import Conflict, Forbidden, Invalid, NotFound
from storage.rights import ErasureStatus

bp = Blueprint("rights_pages", __name__)
install_error_pages(bp)


def _refusal() -> tuple[str, str]:
    return _("For students and administrators"), _(
        "A student downloads their own data here; an administrator a student's.")


def _admins() -> tuple[str, str]:
    return _("For administrators"), _("Erasures are requested and confirmed by administrators.")


@bp.get("/students/<int:student_id>/my-data.json")
@for_roles(Role.STUDENT, Role.ADMIN, refusal=_refusal)
def export_json(user: User, student_id: int) -> Response:
    """The export as a JSON file (the API's document), recorded as EXPORT_READ."""
    session = get_session()
    try:
        document = export.student_export(session, user, student_id)
    except NotFound:
        return not_found(user, _("There is no student here whose data you may download."))
    session.commit()
    document["report_pdf"] = url_for("exports.StudentExportPdf", student_id=student_id)
    body = json.dumps(document, ensure_ascii=False, indent=1)
    response = Response(body, mimetype="application/json")
    name = document["profile"]["pseudonym"]
    response.headers["Content-Disposition"] = f'attachment; filename="my-data-{name}.json"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _render(user: User, status: int = 200, errors: dict[str, str] | None = None,
            values: dict[str, str] | None = None) -> Response:
    session = get_session()
    rows = session.scalars(service.erasures_query(user).limit(200)).all()
    names = dict(session.execute(
        User.__table__.select().with_only_columns(User.id, User.display_name)
        .where(User.id.in_({r.requested_by for r in rows}
                           | {r.confirmed_by for r in rows if r.confirmed_by}))).all())
    pending = [r for r in rows if r.status == ErasureStatus.PENDING]
    others = [r for r in rows if r.status != ErasureStatus.PENDING]
    return page("rights/erasures.html", status, user=user, pending=pending, others=others,
                names=names, errors=errors or {},
                values=values or {"student_id": request.args.get("student_id", "")})


@bp.get("/admin/erasures")
@for_roles(Role.ADMIN, refusal=_admins)
def erasures(user: User) -> Response:
    """Pending erasures (to confirm or cancel), the others, and a form to request one."""
    return _render(user)


@bp.post("/admin/erasures")
@for_roles(Role.ADMIN, refusal=_admins)
def request_erasure(user: User) -> Response:
    """Request the erasure of a student's data (pending until confirmed)."""
    session = get_session()
    raw = (request.form.get("student_id") or "").strip()
    reason = request.form.get("reason", "")
    values = {"student_id": raw, "reason": reason}
    if not (raw.isascii() and raw.isdecimal() and 0 < len(raw) < 10):
        return _render(user, 422, {"student_id": _("Enter the student's number.")}, values)
    try:
        erasure = service.request_erasure(session, user, int(raw), reason)
    except (Invalid, Conflict, NotFound) as error:
        session.rollback()
        field = getattr(error, "field", None) or "student_id"
        text = {
            "reason": _("A reason is required: it is kept in the audit log."),
            "student_id": (_("No student with this number that you may see.")
                           if isinstance(error, NotFound) else
                           _("An erasure of this student is waiting already.")
                           if isinstance(error, Conflict) else
                           _("This is a staff account: erasure here is for students.")),
        }.get(field, str(error))
        if field == "reason" and "longer" in str(error):
            text = str(error)
        return _render(user, 422, {field: text}, values)
    session.commit()
    if erasure.due_at is not None:
        flash(_("Erasure requested. It will be carried out on %(when)s unless cancelled.",
                when=erasure.due_at.date().isoformat()))
    else:
        flash(_("Erasure requested. Another administrator must confirm it."))
    return redirect(url_for("rights_pages.erasures"), 303)


@bp.post("/admin/erasures/<int:erasure_id>/<any(confirm, cancel):action>")
@for_roles(Role.ADMIN, refusal=_admins)
def act(user: User, erasure_id: int, action: str) -> Response:
    """Confirm (a second administrator; carried out at once) or cancel a pending erasure."""
    session = get_session()
    try:
        if action == "confirm":
            executed = service.confirm_erasure(session, user, erasure_id)
        else:
            service.cancel_erasure(session, user, erasure_id)
    except NotFound:
        return not_found(user, _("There is no such erasure that you may see."))
    except Forbidden:
        session.rollback()
        return _render(user, 403, {"form": _(
            "You requested this erasure: a different administrator must confirm it.")})
    except Conflict as error:
        session.rollback()
        return _render(user, 409, {"form": str(error)})
    session.commit()
    if action == "confirm":
        store = file_store()
        for sha256 in executed.orphan_files:
            store.path_of(sha256).unlink(missing_ok=True)
        flash(_("The student's data is erased."))
    else:
        flash(_("The erasure is cancelled."))
    return redirect(url_for("rights_pages.erasures"), 303)


# -- the audit log -------------------------------------------------------------------------------

#: What each action is called on the page.
def _action_labels() -> dict[str, str]:
    return {
        "sign_in": _("Signed in"), "sign_in_failed": _("Failed sign-in"),
        "report_read": _("Read a report"), "portfolio_read": _("Read a portfolio"),
        "export_read": _("Downloaded the data"), "audit_read": _("Read the audit log"),
        "decision": _("Decision"), "override": _("Override of the suggestion"),
        "appeal": _("Appeal"), "appeal_answer": _("Answer to an appeal"),
        "consent": _("Consent"), "groups": _("Group variables"),
        "role_change": _("Role or account change"), "access_change": _("Access change"),
        "privacy_note": _("Privacy note"), "erasure_requested": _("Erasure requested"),
        "erasure_confirmed": _("Erasure confirmed"), "erasure_cancelled": _("Erasure cancelled"),
        "erasure_done": _("Erasure carried out"), "purge": _("Retention purge"),
    }


def _audit_filter(errors: dict[str, str]) -> tuple[audit_log.AuditFilter, int]:
    def number(field: str) -> int | None:
        text = request.args.get(field, "").strip()
        if not text:
            return None
        if not text.isdigit() or not 0 < int(text) < 2**31:
            errors[field] = _("Enter a user number (digits only).")
            return None
        return int(text)

    def day(field: str, end: bool) -> datetime | None:
        text = request.args.get(field, "").strip()
        if not text:
            return None
        try:
            moment = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        except ValueError:
            errors[field] = _("Enter a date as YYYY-MM-DD.")
            return None
        return moment + timedelta(days=1, microseconds=-1) if end else moment

    action = request.args.get("action", "").strip() or None
    if action is not None and action not in _action_labels():
        errors["action"] = _("Choose one of the actions offered.")
        action = None
    page_number = number("page") or 1
    where = audit_log.AuditFilter(subject_id=number("subject"), actor_id=number("actor"),
                                  action=action, since=day("since", False),
                                  until=day("until", True))
    if where.since and where.until and where.since > where.until:
        errors["since"] = _("The first day is after the last.")
    return where, page_number


@bp.get("/admin/audit")
@for_roles(Role.ADMIN, refusal=lambda: (_("For administrators"), _(
    "The audit log is read by administrators.")))
def audit_page(user: User) -> Response:
    """The audit log, newest first, filtered by subject, actor, action and days."""
    errors: dict[str, str] = {}
    where, page_number = _audit_filter(errors)
    data = {"entries": [], "page": 1, "has_more": False}
    if not errors:
        data = audit_log.list_entries(get_session(), user, where, page=page_number)
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return page("rights/audit.html", 422 if errors else 200, user=user, data=data,
                errors=errors, labels=_action_labels(), values=request.args,
                newer=(url_for("rights_pages.audit_page", page=data["page"] - 1, **args)
                       if data["page"] > 1 else None),
                older=(url_for("rights_pages.audit_page", page=data["page"] + 1, **args)
                       if data["has_more"] else None))
