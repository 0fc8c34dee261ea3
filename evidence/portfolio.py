"""A student's portfolio, read-only and section by section: no HTTP.

One function per section, each returning plain data for a :class:`~evidence.scope.StudentScope`
(who reads whose evidence, through which classes) with a fixed number of queries whatever the
amount of evidence:

- :func:`attempts_section`: the attempts, newest first, with their result and indicator flags;
- :func:`indicators_section`: the process indicators (:mod:`evidence.indicators`);
- :func:`tasks_section`: the tasks with each version of the student's drafts (a timeline);
- :func:`log_section`: the step log (xAPI statements), newest first, filterable by task and verb,
  :data:`LOG_PAGE` entries at a time with a cursor for older ones.

Students get their own portfolio without staff-only fields (theta, se, lz*, rapid guesses,
flags), as :func:`evidence.indicators.for_viewer` and :func:`evidence.attempts.student_result`
have it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from evidence import indicators
from evidence.attempts import student_result
from evidence.drafts import task_timelines
from evidence.models import (
    Attempt,
    AttemptStatus,
    Statement,
    Task,
)
from evidence.review import attempt_state, items_given
from evidence.scope import StudentScope
from evidence.statements import student_log
from item_bank.models import AdaptiveTest
from storage.accounts import Role
from storage.errors import Invalid

#: Step-log entries per page (newest first); older ones by ``before``.
LOG_PAGE = 200
MAX_VERB_LENGTH = 2048


def attempts_section(session: Session, scope: StudentScope,
                     flags: dict[int, list[str]] | None = None) -> list[dict[str, Any]]:
    """The student's attempts in scope, newest first: test, dates, state, questions, the result
    (staff: the whole result; the student: :func:`student_result`) and indicator flags (staff;
    computed here unless ``flags`` by attempt id are given)."""
    rows = session.execute(
        select(Attempt, AdaptiveTest.name, AdaptiveTest.translations)
        .join(AdaptiveTest, AdaptiveTest.id == Attempt.test_id)
        .where(scope.attempts()).order_by(Attempt.id.desc())).all()
    attempts = [row[0] for row in rows]
    if flags is None and scope.staff and attempts:
        flags = {a["attempt_id"]: a["flags"] for a in indicators.attempts_indicators(
            session, attempts, scope, with_responses=False)}
    flags = flags or {}
    out = []
    for attempt, name, translations in rows:
        n_given, n_scored = items_given(attempt)
        entry = {
            "id": attempt.id, "test_id": attempt.test_id, "test_name": name,
            "test_translations": translations or {}, "status": attempt.status.value,
            "state": attempt_state(attempt), "started_at": attempt.started_at,
            "finished_at": attempt.finished_at, "n_given": n_given,
            "stop_reason": attempt.stop_reason,
        }
        if scope.staff:
            result = attempt.result or {}
            entry |= {"n_scored": n_scored, "theta": attempt.theta, "se": attempt.se,
                      "mastery": (result.get("mastery") or {}).get("decision"),
                      "flags": flags.get(attempt.id, [])}
        elif attempt.status != AttemptStatus.IN_PROGRESS and attempt.result:
            entry["result"] = student_result(attempt.result)
        out.append(entry)
    return out


def indicators_section(session: Session, scope: StudentScope) -> dict[str, Any]:
    """The student's indicators with totals (see :func:`evidence.indicators.student_indicators`)."""
    return indicators.student_indicators(session, scope)


def tasks_section(session: Session, scope: StudentScope) -> list[dict[str, Any]]:
    """The tasks in scope (soonest due first), each with the student's drafts, oldest version
    first: version, time, final or not, late or not, how many files and comments
    (:func:`evidence.drafts.task_timelines`)."""
    if scope.class_ids is None and not (scope.viewer.role == Role.ADMIN
                                        or scope.viewer.id == scope.student.id):
        return []
    class_ids = None if scope.class_ids is None else list(scope.class_ids)
    return [{**task, "due_at": task["due"], "drafts": task["versions"]}
            for task in task_timelines(session, scope.student.id, class_ids)]


def _verb_name(verb_id: str) -> str:
    return verb_id.rstrip("/").rsplit("/", 1)[-1] or verb_id


def log_section(session: Session, scope: StudentScope, *, task_id: int | None = None,
                verb: str | None = None, before: int | None = None,
                limit: int = LOG_PAGE) -> dict[str, Any]:
    """The step log, newest first: ``limit`` statements in scope older than ``before`` (a
    ``seq``), about task ``task_id`` (its activity as the object or a context activity) and
    with verb ``verb`` when given. Voided statements and the voiding ones are left out, as an
    xAPI statement query leaves them out. Students do not get the result of the engine's
    own statements (right or wrong per question, which their pages never show).

    Returns
    -------
    dict
        ``entries`` (seq, id, timestamp, verb id and name, object id and name, result summary,
        registration, attempt id), ``older`` (the ``before`` of the next page, or None),
        ``verbs`` (every verb in the student's log in scope, for a filter) and the filters.

    Raises
    ------
    Invalid
        A task that is not in scope (naming ``task_id``), or a verb longer than an IRI may be.
    """
    activity = None
    if task_id is not None:
        task = session.scalar(select(Task).where(Task.id == task_id, scope.tasks()))
        if task is None:
            raise Invalid(f"task_id: no task {task_id} in this portfolio", "task_id")
        activity = task.activity_id or ""
    if verb is not None and len(verb) > MAX_VERB_LENGTH:
        raise Invalid(f"verb: longer than {MAX_VERB_LENGTH} characters", "verb")
    # voiding statements are not steps of the student's work: left out with what they void
    rows = student_log(session, scope.student.id, verb=verb, activity=activity,
                       before_seq=before, limit=limit + 1,
                       where=and_(scope.statements(), Statement.voids.is_(None)))
    entries = [{
        "seq": row["seq"], "id": row["id"], "timestamp": row["timestamp"], "verb": row["verb"],
        "verb_name": row["verb_display"] or _verb_name(row["verb"]),
        "object": row["object_id"], "object_name": row["object_name"] or row["object_id"] or "",
        # the engine's own answers carry right or wrong, which students are never shown
        "result": (row["result"] or None) if scope.staff or row["attempt_id"] is None else None,
        "registration": row["registration"], "attempt_id": row["attempt_id"],
        "position": row["position"],
    } for row in rows[:limit]]
    # the engine's statements name their test's activity and item codes: say the test's name
    attempt_ids = {e["attempt_id"] for e in entries if e["attempt_id"] is not None}
    tests = dict(session.execute(
        select(Attempt.id, AdaptiveTest.name).join(AdaptiveTest, AdaptiveTest.id == Attempt.test_id)
        .where(Attempt.id.in_(attempt_ids))).all()) if attempt_ids else {}
    for entry in entries:
        entry["test_name"] = tests.get(entry["attempt_id"])
    verbs = session.scalars(select(Statement.verb_id).where(scope.statements())
                            .group_by(Statement.verb_id).order_by(Statement.verb_id)).all()
    return {"entries": entries,
            "older": entries[-1]["seq"] if len(rows) > limit else None,
            "verbs": [{"id": v, "name": _verb_name(v)} for v in verbs],
            "task_id": task_id, "verb": verb, "before": before}


def portfolio(session: Session, scope: StudentScope, *, task_id: int | None = None,
              verb: str | None = None, before: int | None = None) -> dict[str, Any]:
    """Every section of the portfolio (see the module notes)."""
    student = scope.student
    indicators_data = indicators_section(session, scope)
    flags = {a["attempt_id"]: a.get("flags", []) for a in indicators_data["attempts"]}
    data: dict[str, Any] = {
        "student": {"id": student.id, "display_name": student.display_name or student.username,
                    "pseudonym": student.pseudonym},
        "class_ids": list(scope.class_ids) if scope.class_ids is not None else None,
        "attempts": attempts_section(session, scope, flags),
        "indicators": indicators_data,
        "tasks": tasks_section(session, scope),
        "log": log_section(session, scope, task_id=task_id, verb=verb, before=before),
    }
    return data
