"""Everything held about a student, as one JSON-able document (the right of access).

Who may export: the student themself, and an administrator who reaches them (a district
administrator reaches everyone, a school's administrator the users of that school). Another
student, a student unknown to the administrator, or an erased one is *not found* (404); staff
of other roles are refused by role (403): a teacher reads reports and portfolios, not the
whole record. Nothing here writes, except the ``EXPORT_READ`` audit entry the caller commits.

The document holds every kind of record that names the student (see :data:`SECTIONS`), each
read with one query (responses with one joined query for all attempts), so a student with many
attempts exports in a few queries. Drafts' files appear as their SHA-256, size and type, never
their bytes; the audit entries whose subject is the student carry the actors' display names as
they are at export time.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.classes import reaches
from evidence.models import (
    Attempt,
    Defense,
    Draft,
    DraftComment,
    DraftFile,
    Response,
    RubricCriterion,
    RubricScore,
    Statement,
    StoredFile,
    Task,
)
from item_bank.models import AdaptiveTest, Item
from reports.models import Appeal, AppealAnswer, MasteryDecision
from storage import as_utc
from storage.accounts import (
    Accommodation,
    Role,
    School,
    SchoolClass,
    User,
    class_members,
)
from storage.errors import Forbidden, NotFound
from storage.rights import AuditAction, AuditEntry, Consent, StudentGroup, audit

#: The document's sections, in order (``format`` and ``student_id`` head it).
SECTIONS = ("profile", "consents", "groups", "accommodation", "classes", "attempts", "drafts",
            "statements", "defenses", "decisions", "appeals", "audit")
FORMAT = "cat-engine-export/1"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else as_utc(moment).isoformat()


def exportable_student(session: Session, viewer: User, student_id: int) -> User:
    """The student ``viewer`` may export, or an error.

    Raises
    ------
    Forbidden
        ``viewer`` is a teacher or an assessor.
    NotFound
        No such student; erased; another student (for a student); a student the administrator
        does not reach; a staff account.
    """
    if viewer.role not in (Role.STUDENT, Role.ADMIN):
        raise Forbidden("a student's data export is for the student and administrators; you "
                        f"are {viewer.role.value}")
    missing = NotFound(f"no student {student_id} you may see")
    student = session.get(User, student_id)
    if student is None or student.erased_at is not None or student.role != Role.STUDENT:
        raise missing
    if viewer.role == Role.STUDENT and viewer.id != student.id:
        raise missing
    if viewer.role == Role.ADMIN and not reaches(session, viewer, student):
        raise missing
    return student


def record_export(session: Session, viewer: User, student: User, kind: str) -> None:
    """Record ``EXPORT_READ`` (``kind``: ``json`` or ``pdf``); the caller commits."""
    audit(session, AuditAction.EXPORT_READ, actor_id=viewer.id, subject_id=student.id,
          object_type="export", object_id=student.id, detail={"format": kind})


def _names(session: Session, ids: set[int]) -> dict[int, str]:
    ids.discard(None)  # type: ignore[arg-type]
    if not ids:
        return {}
    rows = session.execute(select(User.id, User.display_name, User.username, User.erased_at)
                           .where(User.id.in_(ids)))
    return {r.id: ("(erased account)" if r.erased_at is not None
                   else r.display_name or r.username) for r in rows}


def _attempts(session: Session, student_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Attempt, AdaptiveTest.name).join(AdaptiveTest, AdaptiveTest.id == Attempt.test_id)
        .where(Attempt.user_id == student_id).order_by(Attempt.started_at, Attempt.id)).all()
    answers: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if rows:
        for r in session.execute(
                select(Response.attempt_id, Response.position, Item.code, Response.choice,
                       Response.response, Response.scored, Response.answered_at,
                       Response.response_time_ms, Response.hints_used)
                .join(Item, Item.id == Response.item_id)
                .join(Attempt, Attempt.id == Response.attempt_id)
                .where(Attempt.user_id == student_id)
                .order_by(Response.attempt_id, Response.position)):
            answers[r.attempt_id].append({
                "position": r.position, "item_code": r.code, "choice": r.choice,
                "response": r.response, "correct": bool(r.response) if r.scored else None,
                "scored": r.scored, "answered_at": _iso(r.answered_at),
                "response_time_ms": r.response_time_ms, "hints_used": r.hints_used})
    return [{"id": a.id, "test_id": a.test_id, "test": name, "status": a.status.value,
             "started_at": _iso(a.started_at), "finished_at": _iso(a.finished_at),
             "theta": a.theta, "se": a.se, "stop_reason": a.stop_reason,
             "registration": a.registration, "responses": answers.get(a.id, [])}
            for a, name in rows]


def _drafts(session: Session, student_id: int, names: dict[int, str],
            authors: set[int]) -> list[dict[str, Any]]:
    drafts = session.execute(
        select(Draft, Task.title).join(Task, Task.id == Draft.task_id)
        .where(Draft.student_id == student_id).order_by(Draft.task_id, Draft.version)).all()
    ids = [d.id for d, _ in drafts]
    files: dict[int, list[dict[str, Any]]] = defaultdict(list)
    comments: dict[int, list[Any]] = defaultdict(list)
    if ids:
        for f in session.execute(
                select(DraftFile.draft_id, DraftFile.filename, DraftFile.sha256, StoredFile.size,
                       StoredFile.media_type)
                .join(StoredFile, StoredFile.sha256 == DraftFile.sha256)
                .where(DraftFile.draft_id.in_(ids)).order_by(DraftFile.position)):
            files[f.draft_id].append({"filename": f.filename, "sha256": f.sha256,
                                      "size": f.size, "media_type": f.media_type})
        for c in session.scalars(select(DraftComment).where(DraftComment.draft_id.in_(ids))
                                 .order_by(DraftComment.created_at)):
            comments[c.draft_id].append(c)
            authors.add(c.author_id)
    return [{"id": d.id, "task_id": d.task_id, "task": title, "version": d.version,
             "body": d.body, "final": d.final, "submitted_at": _iso(d.submitted_at),
             "files": files.get(d.id, []),
             "comments": [{"author_id": c.author_id, "body": c.body,
                           "created_at": _iso(c.created_at)} for c in comments.get(d.id, [])]}
            for d, title in drafts]


def _defenses(session: Session, student_id: int, raters: set[int]) -> list[dict[str, Any]]:
    defenses = session.scalars(select(Defense).where(Defense.student_id == student_id)
                               .order_by(Defense.id)).all()
    scores: dict[int, list[dict[str, Any]]] = defaultdict(list)
    if defenses:
        for s, code in session.execute(
                select(RubricScore, RubricCriterion.code)
                .join(RubricCriterion, RubricCriterion.id == RubricScore.criterion_id)
                .where(RubricScore.defense_id.in_([d.id for d in defenses]))
                .order_by(RubricScore.id)):
            raters.add(s.rater_id)
            scores[s.defense_id].append({
                "id": s.id, "criterion": code, "rater_id": s.rater_id, "kind": s.kind,
                "score": s.score, "note": s.note, "reason": s.reason,
                "corrects_id": s.corrects_id, "created_at": _iso(s.created_at)})
    return [{"id": d.id, "class_id": d.class_id, "title": d.title, "task_id": d.task_id,
             "scheduled_at": _iso(d.scheduled_at), "recording_url": d.recording_url,
             "cancelled_at": _iso(d.cancelled_at), "rubric_scores": scores.get(d.id, [])}
            for d in defenses]


def student_export(session: Session, viewer: User, student_id: int) -> dict[str, Any]:
    """Everything held about student ``student_id``, for ``viewer`` (see the module's doc).

    Records ``EXPORT_READ``; the caller commits.

    Returns
    -------
    dict
        ``{"format", "generated_at", "student_id", "profile", "consents", ...}`` with the
        sections of :data:`SECTIONS`, every time in ISO 8601 UTC.
    """
    from storage import utcnow

    student = exportable_student(session, viewer, student_id)
    sid = student.id
    people: set[int] = set()
    school = session.get(School, student.school_id) if student.school_id else None
    profile = {"id": sid, "username": student.username, "display_name": student.display_name,
               "role": student.role.value, "pseudonym": student.pseudonym,
               "is_active": student.is_active, "created_at": _iso(student.created_at),
               "school": None if school is None else {"id": school.id, "name": school.name}}
    consents = [{"purpose": c.purpose.value, "granted": c.granted, "at": _iso(c.at),
                 "actor_id": c.actor_id, "note": c.note}
                for c in session.scalars(select(Consent).where(Consent.student_id == sid)
                                         .order_by(Consent.at, Consent.id))]
    people |= {c["actor_id"] for c in consents}
    groups = {g.variable: g.value for g in session.scalars(
        select(StudentGroup).where(StudentGroup.student_id == sid)
        .order_by(StudentGroup.variable))}
    acc = session.get(Accommodation, sid)
    accommodation = None if acc is None else {
        "time": acc.time.value, "time_factor": acc.time_factor, "note": acc.note,
        "updated_at": _iso(acc.updated_at)}
    classes = [{"id": k.id, "name": k.name, "teacher_id": k.teacher_id}
               for k in session.scalars(
                   select(SchoolClass).join(class_members,
                                            class_members.c.class_id == SchoolClass.id)
                   .where(class_members.c.user_id == sid).order_by(SchoolClass.id))]
    people |= {k["teacher_id"] for k in classes}
    drafts = _drafts(session, sid, {}, people)
    statements = [s.body for s in session.scalars(
        select(Statement).where(Statement.actor_id == sid).order_by(Statement.seq))]
    defenses = _defenses(session, sid, people)
    decisions = [{"id": d.id, "skill": d.skill, "decision": d.decision, "reason": d.reason,
                  "suggested_decision": d.suggested_decision,
                  "mastery_probability": d.mastery_probability, "theta": d.theta, "se": d.se,
                  "decided_by": d.decided_by, "decided_at": _iso(d.decided_at)}
                 for d in session.scalars(select(MasteryDecision)
                                          .where(MasteryDecision.student_id == sid)
                                          .order_by(MasteryDecision.decided_at,
                                                    MasteryDecision.id))]
    people |= {d["decided_by"] for d in decisions}
    appeals = []
    for a, answer in session.execute(
            select(Appeal, AppealAnswer)
            .outerjoin(AppealAnswer, AppealAnswer.appeal_id == Appeal.id)
            .where(Appeal.student_id == sid).order_by(Appeal.created_at, Appeal.id)):
        appeals.append({
            "id": a.id, "skill": a.skill, "decision_id": a.decision_id,
            "appealed_decision": a.appealed_decision, "message": a.message,
            "created_at": _iso(a.created_at),
            "answer": None if answer is None else {
                "outcome": answer.outcome, "reason": answer.reason,
                "decision_id": answer.decision_id, "answered_by": answer.answered_by,
                "answered_at": _iso(answer.answered_at)}})
        if answer is not None:
            people.add(answer.answered_by)
    entries = session.scalars(select(AuditEntry).where(AuditEntry.subject_id == sid)
                              .order_by(AuditEntry.id)).all()
    people |= {e.actor_id for e in entries}
    names = _names(session, people)
    audit_entries = [{"id": e.id, "at": _iso(e.at), "action": e.action, "actor_id": e.actor_id,
                      "actor": names.get(e.actor_id) if e.actor_id is not None else "system",
                      "object_type": e.object_type, "object_id": e.object_id,
                      "detail": e.detail} for e in entries]
    for k in classes:
        k["teacher"] = names.get(k["teacher_id"])
    for d in drafts:
        for c in d["comments"]:
            c["author"] = names.get(c["author_id"])
    for d in defenses:
        for s in d["rubric_scores"]:
            s["rater"] = names.get(s["rater_id"])
    for d in decisions:
        d["decided_by_name"] = names.get(d["decided_by"])
    for c in consents:
        c["actor"] = names.get(c["actor_id"])
    record_export(session, viewer, student, "json")
    return {"format": FORMAT, "generated_at": utcnow().isoformat(), "student_id": sid,
            "profile": profile, "consents": consents, "groups": groups,
            "accommodation": accommodation, "classes": classes,
            "attempts": _attempts(session, sid), "drafts": drafts, "statements": statements,
            "defenses": defenses, "decisions": decisions, "appeals": appeals,
            "audit": audit_entries}
