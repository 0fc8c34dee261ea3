"""Oral defenses: scheduling, blind double scoring, corrections and adjudication, with no HTTP.

Who may do what:

- the *lead teacher* of a defense is the teacher of its class (``SchoolClass.teacher_id``). The
  lead teacher or an administrator schedules a defense, assigns and removes raters, and cancels
  it. A rater must be a teacher who teaches a class the student is enrolled in, or the lead
  teacher; so must an adjudicator. Administrators and assessors never score.
- an assigned rater submits one score sheet (every criterion of the defense's rubric version,
  all or nothing), then may correct their own scores with a reason. A correction is a new
  :class:`~evidence.models.RubricScore` whose ``corrects_id`` names the score it replaces; the
  current score is the one :mod:`evidence.rubric_scores` says it is.
- *blind double scoring*: until every assigned rater has submitted, nobody sees any rater's
  scores or notes but the rater themself; a rater sees neither whether, nor when, the others
  submitted (the lead teacher and administrators see who has submitted, never what). Once all
  have submitted, the raters, the adjudicator, the lead teacher and administrators see all.
- *adjudication*: once all raters have submitted, a criterion whose current scores differ by
  more than one level needs adjudication. The adjudicator is the teacher assigned with role
  ``adjudicator``, or the lead teacher when none is assigned; never a rater whose score on that
  criterion is more than one level from another rater's. They give one score per such criterion
  with a required reason (kind ``adjudication``).
- a student sees their own defenses: the rubric before, and once final, the final score of
  each criterion with its level's label and descriptor, and the raters' notes (unsigned).

Status: ``scheduled`` (no rater has submitted), ``scoring`` (some have), ``needs_adjudication``
(all have; some criterion awaits its adjudication), ``final`` and ``cancelled``. A rater who
has not submitted sees ``scheduled`` whatever the others did, so that the status tells them
nothing of the others.

**The final score** of a criterion is the adjudicator's current score where there is one, else
the mean of the raters' current scores, kept as a float and shown with at most one decimal
(``2.5``: two raters one level apart; three raters can give ``2.3``). A mean between two levels
is shown with both levels' labels and descriptors ("between Developing and Secure"), because
rounding would pretend to a precision the raters did not agree on.

Nothing here commits: the caller commits once per request. Each function raises a
:mod:`storage.errors` error naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Select, exists, or_, select
from sqlalchemy.orm import Session

from evidence.classes import _enrolled, _utc, reaches, reaches_users, teaches
from evidence.models import (
    Defense,
    DefenseRater,
    Rubric,
    RubricCriterion,
    RubricScore,
    RubricVersion,
    Task,
)
from evidence.rubric_scores import ADJUDICATION, RATING, current_scores
from storage import as_utc, utcnow
from storage.accounts import Role, SchoolClass, User, admin_reaches_class
from storage.errors import Conflict, Forbidden, Invalid, NotFound

RATER = "rater"
ADJUDICATOR = "adjudicator"
ROLES = (RATER, ADJUDICATOR)

SCHEDULED = "scheduled"
SCORING = "scoring"
NEEDS_ADJUDICATION = "needs_adjudication"
FINAL = "final"
CANCELLED = "cancelled"
STATUSES = (SCHEDULED, SCORING, NEEDS_ADJUDICATION, FINAL, CANCELLED)

MAX_TITLE = 200
MAX_URL = 2048
MAX_NOTE = 5000
MAX_REASON = 2000
MAX_RATERS = 10


# -- pure computation ----------------------------------------------------------------------------


def needs_adjudication(scores: Mapping[int, int]) -> bool:
    """Whether raters' scores on one criterion differ by more than one level."""
    return len(scores) > 1 and max(scores.values()) - min(scores.values()) > 1


def discordant_raters(scores: Mapping[int, int]) -> set[int]:
    """The raters whose score is more than one level from some other rater's (who may not
    adjudicate that criterion)."""
    if not scores:
        return set()
    low, high = min(scores.values()), max(scores.values())
    return {r for r, s in scores.items() if s - low > 1 or high - s > 1}


def final_score(scores: Mapping[int, int], adjudicated: int | None) -> float | None:
    """The final score of one criterion: the adjudicated score if any, else the raters' mean
    (``None`` with no score at all)."""
    if adjudicated is not None:
        return float(adjudicated)
    if not scores:
        return None
    return sum(scores.values()) / len(scores)


def score_text(value: float | None) -> str:
    """A final score as shown: ``3``, ``2.5``, ``2.3`` (at most one decimal, no trailing zero)."""
    if value is None:
        return ""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def levels_of(criterion: RubricCriterion, value: float | None) -> list[dict[str, Any]]:
    """The level(s) a final score stands for: the one it equals, or the two it lies between."""
    if value is None:
        return []
    by_score = {int(level["score"]): level for level in criterion.levels}
    low, high = math.floor(value + 1e-9), math.ceil(value - 1e-9)
    return [by_score[s] for s in sorted({low, high}) if s in by_score]


# -- reading -------------------------------------------------------------------------------------


@dataclass
class DefenseState:
    """Everything known about a defense's scoring, before any shaping for a viewer.

    Attributes
    ----------
    raters : list of DefenseRater
        The assigned raters (role ``rater``), in assignment order.
    adjudicator : DefenseRater or None
        The assigned adjudicator, if any.
    criteria : list of RubricCriterion
        The criteria of the defense's rubric version, in order.
    current : dict
        ``{criterion_id: {rater_id: RubricScore}}``, the raters' current scores.
    adjudications : dict
        ``{criterion_id: RubricScore}``, the current adjudication of each criterion.
    history : list of RubricScore
        Every score ever stored for the defense, oldest first.
    """

    defense: Defense
    raters: list[DefenseRater]
    adjudicator: DefenseRater | None
    criteria: list[RubricCriterion]
    current: dict[int, dict[int, RubricScore]] = field(default_factory=dict)
    adjudications: dict[int, RubricScore] = field(default_factory=dict)
    history: list[RubricScore] = field(default_factory=list)

    @property
    def all_submitted(self) -> bool:
        """Whether every assigned rater has submitted (and there is at least one)."""
        return bool(self.raters) and all(r.submitted_at is not None for r in self.raters)

    def scores_of(self, criterion_id: int) -> dict[int, int]:
        """``{rater_id: score}``: the current scores on a criterion of raters who submitted."""
        submitted = {r.rater_id for r in self.raters if r.submitted_at is not None}
        return {rater: row.score for rater, row in self.current.get(criterion_id, {}).items()
                if rater in submitted}

    def disputed(self) -> list[int]:
        """The criteria (ids) that need adjudication, once all have submitted."""
        if not self.all_submitted:
            return []
        return [c.id for c in self.criteria if needs_adjudication(self.scores_of(c.id))]

    def pending(self) -> list[int]:
        """The disputed criteria that have no adjudication yet."""
        return [c for c in self.disputed() if c not in self.adjudications]

    @property
    def status(self) -> str:
        """scheduled, scoring, needs_adjudication, final or cancelled (the true status)."""
        if self.defense.cancelled_at is not None:
            return CANCELLED
        if not self.all_submitted:
            return SCORING if any(r.submitted_at for r in self.raters) else SCHEDULED
        return NEEDS_ADJUDICATION if self.pending() else FINAL

    def final(self, criterion_id: int) -> float | None:
        """The final score of a criterion (see the module's docstring), once all submitted."""
        if not self.all_submitted:
            return None
        adjudicated = self.adjudications.get(criterion_id)
        return final_score(self.scores_of(criterion_id),
                           adjudicated.score if adjudicated is not None else None)

    def adjudicator_id(self) -> int | None:
        """Who adjudicates: the assigned adjudicator, else the lead teacher."""
        if self.adjudicator is not None:
            return self.adjudicator.rater_id
        return self.defense.school_class.teacher_id

    def rater(self, user_id: int) -> DefenseRater | None:
        """The user's assignment as a rater, if any."""
        return next((r for r in self.raters if r.rater_id == user_id), None)


def defense_state(session: Session, defense: Defense) -> DefenseState:
    """Load a defense's raters, criteria and scores (current ones through
    :func:`evidence.rubric_scores.current_scores`, the one definition)."""
    raters = [r for r in defense.raters if r.role == RATER]
    adjudicator = next((r for r in defense.raters if r.role == ADJUDICATOR), None)
    criteria = list(session.scalars(
        select(RubricCriterion).where(RubricCriterion.rubric_version_id
                                      == defense.rubric_version_id)
        .order_by(RubricCriterion.position)))
    history = list(session.scalars(select(RubricScore).where(
        RubricScore.defense_id == defense.id).order_by(RubricScore.created_at, RubricScore.id)))
    current_ids = set(session.scalars(
        select(current_scores().where(RubricScore.defense_id == defense.id).subquery().c.id)))
    state = DefenseState(defense, raters, adjudicator, criteria, history=history)
    for row in history:
        if row.id not in current_ids:
            continue
        if row.kind == RATING:
            state.current.setdefault(row.criterion_id, {})[row.rater_id] = row
        elif row.kind == ADJUDICATION:
            state.adjudications[row.criterion_id] = row
    return state


def _missing(defense_id: int) -> NotFound:
    return NotFound(f"no defense {defense_id} you may see")


def is_lead(user: User, defense: Defense) -> bool:
    """Whether the user is the defense's lead teacher (its class's teacher)."""
    return defense.school_class.teacher_id == user.id


def visible_defense(session: Session, viewer: User, defense_id: int) -> Defense:
    """The defense, if ``viewer`` may see it: an administrator; its lead teacher; a teacher
    assigned to it (rater or adjudicator); the student it is about.

    Raises
    ------
    NotFound
        No such defense, or one the viewer may not see (the two look alike).
    Forbidden
        Assessors (they see rubrics and analyses, not students' defenses).
    """
    if viewer.role == Role.ASSESSOR:
        raise Forbidden("defenses are for teachers, administrators and the student; you are "
                        "assessor")
    defense = session.get(Defense, defense_id)
    if defense is None:
        raise _missing(defense_id)
    if viewer.role == Role.ADMIN:
        if not reaches(session, viewer, session.get(User, defense.student_id)):
            raise _missing(defense_id)
        return defense
    if viewer.role == Role.STUDENT:
        if defense.student_id != viewer.id:
            raise _missing(defense_id)
        return defense
    if is_lead(viewer, defense) or any(r.rater_id == viewer.id for r in defense.raters):
        return defense
    raise _missing(defense_id)


def managed_defense(session: Session, viewer: User, defense_id: int) -> Defense:
    """The defense, if ``viewer`` may manage it (its lead teacher or an administrator).

    Raises
    ------
    NotFound
        As :func:`visible_defense`.
    Forbidden
        A rater or adjudicator who is not the lead teacher, or a student: they may see it but
        not manage it.
    """
    defense = visible_defense(session, viewer, defense_id)
    if viewer.role == Role.ADMIN or is_lead(viewer, defense):
        return defense
    raise Forbidden("only the class's teacher or an administrator may change a defense's "
                    "raters or cancel it")


def defenses_query(viewer: User, *, class_id: int | None = None,
                   student_id: int | None = None) -> Select:
    """The defenses ``viewer`` may see (optionally of one class or one student), soonest first.

    Teachers: their classes' defenses and those they are assigned to; students: their own;
    administrators: all. Assessors: none.
    """
    query = select(Defense)
    if viewer.role == Role.STUDENT:
        query = query.where(Defense.student_id == viewer.id)
    elif viewer.role == Role.TEACHER:
        lead = select(SchoolClass.id).where(SchoolClass.teacher_id == viewer.id)
        assigned = select(DefenseRater.defense_id).where(DefenseRater.rater_id == viewer.id)
        query = query.where(or_(Defense.class_id.in_(lead), Defense.id.in_(assigned)))
    elif viewer.role == Role.ADMIN:
        query = query.where(reaches_users(viewer, Defense.student_id))
    else:
        query = query.where(Defense.id.is_(None))
    if class_id is not None:
        query = query.where(Defense.class_id == class_id)
    if student_id is not None:
        query = query.where(Defense.student_id == student_id)
    return query.order_by(Defense.scheduled_at.is_(None), Defense.scheduled_at, Defense.id)


# -- scheduling ----------------------------------------------------------------------------------


def latest_version(session: Session, rubric_id: Any, field_name: str = "rubric_id"
                   ) -> RubricVersion:
    """The latest version of a rubric that is not archived.

    Raises
    ------
    Invalid
        No such rubric, an archived one, or one without a version or without criteria.
    """
    rubric = session.get(Rubric, rubric_id) if isinstance(rubric_id, int) else None
    if rubric is None:
        raise Invalid(f"{field_name}: no rubric {rubric_id!r}", field=field_name)
    if rubric.archived_at is not None:
        raise Invalid(f"{field_name}: the rubric {rubric.name!r} is archived", field=field_name)
    version = session.scalar(select(RubricVersion).where(RubricVersion.rubric_id == rubric.id)
                             .order_by(RubricVersion.version.desc()).limit(1))
    if version is None or not version.criteria:
        raise Invalid(f"{field_name}: the rubric {rubric.name!r} has no criteria yet",
                      field=field_name)
    return version


def _recording_url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_URL:
        raise Invalid(f"recording_url must be a link of at most {MAX_URL} characters",
                      field="recording_url")
    value = value.strip()
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if (parts is None or parts.scheme.lower() not in ("http", "https") or not parts.netloc
            or any(c.isspace() or ord(c) < 32 for c in value)):
        raise Invalid("recording_url must be an http:// or https:// link", field="recording_url")
    return value


def _title(value: Any) -> str:
    title = value.strip() if isinstance(value, str) else ""
    if not title or len(title) > MAX_TITLE or "\x00" in title:
        raise Invalid(f"title must be 1 to {MAX_TITLE} characters (not only spaces)",
                      field="title")
    return title


def may_rate(session: Session, user: User | None, klass: SchoolClass, student_id: int) -> bool:
    """Whether ``user`` may score ``student_id``'s defense in ``klass``: a teacher who is the
    class's teacher or teaches a class the student is enrolled in."""
    if user is None or user.role != Role.TEACHER or not user.is_active:
        return False
    return klass.teacher_id == user.id or teaches(session, user, student_id)


def _check_rater(session: Session, klass: SchoolClass, student_id: int, user_id: Any,
                 field_name: str) -> User:
    user = session.get(User, user_id) if isinstance(user_id, int) else None
    if not may_rate(session, user, klass, student_id):
        raise Invalid(f"{field_name}: user {user_id!r} may not score this defense: a rater must "
                      "be a teacher of a class the student is enrolled in, or the class's "
                      "teacher", field=field_name)
    return user


def schedule(session: Session, actor: User, class_id: int, student_id: Any, rubric_id: Any, *,
             title: Any, task_id: Any = None, scheduled_at: datetime | None = None,
             recording_url: Any = None, raters: list[Any] | None = None,
             adjudicator: Any = None) -> Defense:
    """Schedule a defense for a student of a class, under the rubric's latest version.

    Parameters
    ----------
    actor
        The class's teacher or an administrator.
    raters
        One to ``MAX_RATERS`` user ids (see :func:`may_rate`), each once.
    adjudicator
        Optionally a teacher (same rule, not one of the raters) who settles disagreements;
        without one the lead teacher does.

    Raises
    ------
    NotFound
        A class the actor does not teach (or no such class).
    Forbidden
        Roles other than teacher and administrator.
    Invalid
        A student not in the class, a task of another class, an archived rubric, a link that
        is not http(s), a naive time, a refused rater (named), no rater, a rater twice.
    """
    if actor.role not in (Role.TEACHER, Role.ADMIN):
        raise Forbidden(f"scheduling a defense needs the role teacher; you are {actor.role.value}")
    klass = session.get(SchoolClass, class_id)
    if klass is None or not (admin_reaches_class(actor, klass) or klass.teacher_id == actor.id):
        raise NotFound(f"no class {class_id} among yours")
    student = session.get(User, student_id) if isinstance(student_id, int) else None
    if student is None or student.role != Role.STUDENT or not _enrolled(session, klass.id,
                                                                       student.id):
        raise Invalid(f"student_id: no student {student_id!r} in class {klass.name!r}",
                      field="student_id")
    version = latest_version(session, rubric_id)
    if task_id is not None:
        task = session.get(Task, task_id) if isinstance(task_id, int) else None
        if task is None or task.class_id != klass.id:
            raise Invalid(f"task_id: no task {task_id!r} in class {klass.name!r}",
                          field="task_id")
    title = _title(title)
    url = _recording_url(recording_url)
    moment = _utc(scheduled_at, "scheduled_at")
    raters = list(raters or [])
    if not raters:
        raise Invalid("raters: assign at least one rater", field="raters")
    if len(raters) > MAX_RATERS:
        raise Invalid(f"raters: at most {MAX_RATERS}", field="raters")
    chosen: list[int] = []
    for i, rater_id in enumerate(raters):
        user = _check_rater(session, klass, student.id, rater_id, f"raters[{i}]")
        if user.id in chosen:
            raise Invalid(f"raters[{i}]: user {user.id} is named twice", field=f"raters[{i}]")
        chosen.append(user.id)
    if adjudicator is not None:
        judge = _check_rater(session, klass, student.id, adjudicator, "adjudicator")
        if judge.id in chosen:
            raise Invalid(f"adjudicator: user {judge.id} is also a rater; an adjudicator must "
                          "be a third person", field="adjudicator")
    defense = Defense(class_id=klass.id, student_id=student.id, rubric_version_id=version.id,
                      task_id=task_id, title=title, scheduled_at=moment, recording_url=url,
                      created_by=actor.id)
    session.add(defense)
    session.flush()
    for rater_id in chosen:
        defense.raters.append(DefenseRater(rater_id=rater_id, role=RATER, assigned_by=actor.id))
    if adjudicator is not None:
        defense.raters.append(DefenseRater(rater_id=adjudicator, role=ADJUDICATOR,
                                           assigned_by=actor.id))
    session.flush()
    return defense


def _not_cancelled(defense: Defense) -> None:
    if defense.cancelled_at is not None:
        raise Conflict(f"defense {defense.id} is cancelled")


def add_rater(session: Session, actor: User, defense: Defense, user_id: Any,
              role: str = RATER) -> DefenseRater:
    """Assign another rater (or the adjudicator) to a defense ``actor`` manages.

    Raises
    ------
    Invalid
        A user who may not score the student (named), an unknown role.
    Conflict
        A cancelled defense; a user already assigned; a second adjudicator; a new rater once
        every rater has submitted (the scores are open, so they would not score blind).
    """
    if role not in ROLES:
        raise Invalid(f"role must be one of {', '.join(ROLES)}", field="role")
    _not_cancelled(defense)
    user = _check_rater(session, defense.school_class, defense.student_id, user_id, "user_id")
    if any(r.rater_id == user.id for r in defense.raters):
        raise Conflict(f"user {user.id} is already assigned to defense {defense.id}")
    state = defense_state(session, defense)
    if role == ADJUDICATOR and state.adjudicator is not None:
        raise Conflict(f"defense {defense.id} already has an adjudicator (user "
                       f"{state.adjudicator.rater_id}); remove them first")
    if role == ADJUDICATOR and state.adjudications:
        raise Conflict(f"defense {defense.id} has been adjudicated by the class's teacher; "
                       "another adjudicator would overrule them")
    if role == RATER and state.all_submitted:
        raise Conflict(f"every rater of defense {defense.id} has submitted and the scores are "
                       "open to them; a new rater would not score blind")
    row = DefenseRater(rater_id=user.id, role=role, assigned_by=actor.id)
    defense.raters.append(row)
    session.flush()
    return row


def remove_rater(session: Session, actor: User, defense: Defense, user_id: int) -> None:
    """Take a rater (or the adjudicator) off a defense, before they have scored.

    Raises
    ------
    NotFound
        The user is not assigned.
    Forbidden
        A lead teacher who rates the defense themself, removing another rater before every
        rater has submitted: whether that rater has submitted is hidden from them (an
        administrator can remove them).
    Conflict
        A cancelled defense; a rater who has submitted, an adjudicator who has adjudicated;
        the last rater.
    """
    _not_cancelled(defense)
    row = next((r for r in defense.raters if r.rater_id == user_id), None)
    if row is None:
        raise NotFound(f"user {user_id} is not assigned to defense {defense.id}",
                       field="user_id")
    state = defense_state(session, defense)
    if (state.rater(actor.id) is not None and actor.id != user_id and row.role == RATER
            and not state.all_submitted):
        raise Forbidden("you rate this defense yourself, so whether another rater has "
                        "submitted is hidden from you; an administrator can remove them")
    if row.submitted_at is not None:
        raise Conflict(f"user {user_id} has submitted their scores; they stay a rater")
    if row.role == ADJUDICATOR and session.scalar(select(exists().where(
            RubricScore.defense_id == defense.id, RubricScore.rater_id == user_id))):
        raise Conflict(f"user {user_id} has adjudicated; they stay the adjudicator")
    if row.role == RATER and sum(r.role == RATER for r in defense.raters) == 1:
        raise Conflict(f"user {user_id} is the only rater of defense {defense.id}; assign "
                       "another first")
    defense.raters.remove(row)
    session.flush()


def cancel(session: Session, defense: Defense) -> Defense:
    """Cancel a defense. Every score is kept (cancelled defenses' scores count nowhere).

    Raises
    ------
    Conflict
        Already cancelled.
    """
    _not_cancelled(defense)
    defense.cancelled_at = utcnow()
    session.flush()
    return defense


# -- scoring -------------------------------------------------------------------------------------


def _criterion(state: DefenseState, criterion_id: Any, field_name: str) -> RubricCriterion:
    found = next((c for c in state.criteria if c.id == criterion_id), None)
    if found is None:
        raise Invalid(f"{field_name}: criterion {criterion_id!r} is not in this defense's rubric "
                      f"(version {state.defense.rubric_version.version} of "
                      f"{state.defense.rubric_version.rubric.name!r})", field=field_name)
    return found


def _score(criterion: RubricCriterion, value: Any, field_name: str) -> int:
    allowed = [int(level["score"]) for level in criterion.levels]
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise Invalid(f"{field_name}: {value!r} is not a level of criterion {criterion.code!r}; "
                      f"the allowed scores are {', '.join(map(str, allowed))}", field=field_name)
    return value


def _text(value: Any, field_name: str, limit: int, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise Invalid(f"{field_name} must be text of at most {limit:,} characters",
                      field=field_name)
    value = value.strip()
    if required and not value:
        raise Invalid(f"{field_name}: give a reason", field=field_name)
    return value


def submit_sheet(session: Session, rater: User, defense: Defense,
                 sheet: Mapping[Any, Mapping[str, Any]]) -> list[RubricScore]:
    """Store a rater's whole score sheet: ``{criterion_id: {"score": int, "note": str}}``.

    Every criterion of the defense's rubric version must be there, and nothing else; nothing is
    stored unless all of it is valid.

    Raises
    ------
    Forbidden
        The user is not assigned to the defense as a rater.
    Invalid
        A missing criterion, one not in the rubric version, a score that is not one of its
        levels (naming the allowed scores), a note too long.
    Conflict
        A cancelled defense, or a second submission (a correction must say so).
    """
    state = defense_state(session, defense)
    row = state.rater(rater.id)
    if row is None:
        raise Forbidden(f"you are not assigned to defense {defense.id} as a rater")
    _not_cancelled(defense)
    if row.submitted_at is not None:
        raise Conflict(f"you have already submitted your scores for defense {defense.id}; a "
                       "correction must say so: send it as a correction with a reason")
    if not isinstance(sheet, Mapping):
        raise Invalid("scores must map each criterion id to {score, note}", field="scores")
    given: dict[int, tuple[int, str]] = {}
    for key, entry in sheet.items():
        criterion_id = int(key) if isinstance(key, str) and key.isdecimal() else key
        where = f"scores.{key}"
        criterion = _criterion(state, criterion_id, where)
        if not isinstance(entry, Mapping):
            raise Invalid(f"{where} must be an object {{score, note}}", field=where)
        given[criterion.id] = (_score(criterion, entry.get("score"), f"{where}.score"),
                               _text(entry.get("note"), f"{where}.note", MAX_NOTE))
    missing = [c for c in state.criteria if c.id not in given]
    if missing:
        raise Invalid("scores: every criterion must be scored; missing "
                      + ", ".join(f"{c.id} ({c.code})" for c in missing),
                      field=f"scores.{missing[0].id}")
    rows = [RubricScore(defense_id=defense.id, criterion_id=c.id, rater_id=rater.id,
                        kind=RATING, score=given[c.id][0], note=given[c.id][1])
            for c in state.criteria]
    session.add_all(rows)
    row.submitted_at = utcnow()
    session.flush()
    return rows


def correct(session: Session, rater: User, defense: Defense, criterion_id: Any, score: Any,
            reason: Any, note: Any = None) -> RubricScore:
    """A rater corrects their own current score on one criterion, with a reason.

    The correction is a new score pointing at the one it replaces; ``note`` keeps the old
    note when not given.

    Raises
    ------
    Forbidden
        Not a rater of the defense.
    Invalid
        A criterion not in the rubric version, a score not among its levels, no reason.
    Conflict
        A cancelled defense, or a rater who has not submitted yet (nothing to correct).
    """
    state = defense_state(session, defense)
    row = state.rater(rater.id)
    if row is None:
        raise Forbidden(f"you are not assigned to defense {defense.id} as a rater")
    _not_cancelled(defense)
    if row.submitted_at is None:
        raise Conflict("you have not submitted your scores yet: submit the whole sheet first")
    criterion = _criterion(state, criterion_id, "criterion_id")
    value = _score(criterion, score, "score")
    why = _text(reason, "reason", MAX_REASON, required=True)
    old = state.current.get(criterion.id, {}).get(rater.id)
    if old is None:  # pragma: no cover - a submitted sheet scores every criterion
        raise Conflict(f"you have no score on criterion {criterion.code!r} to correct")
    new = RubricScore(defense_id=defense.id, criterion_id=criterion.id, rater_id=rater.id,
                      kind=RATING, score=value,
                      note=old.note if note is None else _text(note, "note", MAX_NOTE),
                      reason=why, corrects_id=old.id)
    session.add(new)
    session.flush()
    return new


def adjudicate(session: Session, user: User, defense: Defense, criterion_id: Any, score: Any,
               reason: Any) -> RubricScore:
    """The adjudicator settles one disputed criterion with a score and a required reason.

    A second adjudication of the same criterion corrects the first (``corrects_id``).

    Raises
    ------
    Forbidden
        Not the adjudicator (the assigned one, else the lead teacher), or a rater whose score on
        this criterion is one of those that differ.
    Invalid
        A criterion not in the rubric version, a score not among its levels, no reason.
    Conflict
        A cancelled defense, raters still to submit, a criterion that needs no adjudication.
    """
    state = defense_state(session, defense)
    if user.id != state.adjudicator_id() or user.role != Role.TEACHER:
        raise Forbidden(f"only the adjudicator of defense {defense.id} (the assigned one, or the "
                        "class's teacher when none is) may adjudicate")
    _not_cancelled(defense)
    if not state.all_submitted:
        raise Conflict("not every rater has submitted yet; adjudication comes after")
    criterion = _criterion(state, criterion_id, "criterion_id")
    if criterion.id not in state.disputed():
        raise Conflict(f"criterion {criterion.code!r}: the raters' scores are within one level; "
                       "it needs no adjudication")
    if user.id in discordant_raters(state.scores_of(criterion.id)):
        raise Forbidden(f"criterion {criterion.code!r}: you are one of the raters whose scores "
                        "differ; assign an adjudicator")
    value = _score(criterion, score, "score")
    why = _text(reason, "reason", MAX_REASON, required=True)
    old = state.adjudications.get(criterion.id)
    row = RubricScore(defense_id=defense.id, criterion_id=criterion.id, rater_id=user.id,
                      kind=ADJUDICATION, score=value, reason=why,
                      corrects_id=old.id if old is not None and old.rater_id == user.id
                      else None)
    session.add(row)
    session.flush()
    return row


# -- what each viewer sees -----------------------------------------------------------------------


def score_record(row: RubricScore, *, with_rater: bool = True) -> dict[str, Any]:
    """A stored score as the API and pages show it (to those who may see it)."""
    record = {"id": row.id, "criterion_id": row.criterion_id, "kind": row.kind,
              "score": row.score, "note": row.note, "reason": row.reason,
              "corrects_id": row.corrects_id, "created_at": as_utc(row.created_at)}
    if with_rater:
        record["rater_id"] = row.rater_id
    return record


def _criterion_record(criterion: RubricCriterion) -> dict[str, Any]:
    return {"id": criterion.id, "code": criterion.code, "name": criterion.name,
            "description": criterion.description, "skill": criterion.skill,
            "levels": list(criterion.levels)}


def view_status(state: DefenseState, viewer: User) -> str:
    """The status as ``viewer`` may see it: a rater who has not submitted sees ``scheduled``
    until all have; a student sees ``scheduled`` until final."""
    status = state.status
    if status in (CANCELLED, FINAL):
        return status
    if viewer.role == Role.STUDENT:
        return SCHEDULED
    own = state.rater(viewer.id)
    if own is not None and not state.all_submitted:
        return SCORING if own.submitted_at is not None else SCHEDULED
    return status


def defense_view(session: Session, viewer: User, defense: Defense,
                 state: DefenseState | None = None) -> dict[str, Any]:
    """A defense as ``viewer`` may see it (who may see it at all: :func:`visible_defense`).

    Staff get the schedule, raters, criteria and, for a rater, ``my_scores``; once every rater
    has submitted, ``scores`` (current ones), ``history`` (every score, corrections included),
    ``disputed`` criteria and ``final`` scores. Before that no field carries another rater's
    score, note, count or time. Students get :func:`student_view`.
    """
    state = state or defense_state(session, defense)
    if viewer.role == Role.STUDENT:
        return student_view(state)
    version = defense.rubric_version
    own = state.rater(viewer.id)
    open_ = state.all_submitted
    sees_progress = open_ or own is None  # lead, adjudicator, admin: who submitted, never what
    raters = []
    for r in [*state.raters, *([state.adjudicator] if state.adjudicator else [])]:
        entry: dict[str, Any] = {"rater_id": r.rater_id, "name": r.rater.display_name
                                 or r.rater.username, "role": r.role}
        if r.role == RATER and (sees_progress or r.rater_id == viewer.id):
            entry["submitted"] = r.submitted_at is not None
            entry["submitted_at"] = as_utc(r.submitted_at)
        raters.append(entry)
    out: dict[str, Any] = {
        "id": defense.id, "class_id": defense.class_id, "class_name": defense.school_class.name,
        "student_id": defense.student_id,
        "student_name": defense.student.display_name or defense.student.username,
        "rubric_id": version.rubric_id, "rubric_name": version.rubric.name,
        "rubric_version_id": version.id, "rubric_version": version.version,
        "task_id": defense.task_id, "title": defense.title,
        "scheduled_at": as_utc(defense.scheduled_at), "recording_url": defense.recording_url,
        "created_by": defense.created_by, "created_at": as_utc(defense.created_at),
        "cancelled_at": as_utc(defense.cancelled_at),
        "status": view_status(state, viewer), "lead_teacher_id": defense.school_class.teacher_id,
        "raters": raters, "adjudicator_id": state.adjudicator_id(),
        "criteria": [_criterion_record(c) for c in state.criteria],
        "my_role": own.role if own else (ADJUDICATOR if viewer.id == state.adjudicator_id()
                                         else None),
        "my_submitted": own is not None and own.submitted_at is not None,
        "my_scores": {}, "open": open_,
    }
    if own is not None:
        out["my_scores"] = {c_id: score_record(by_rater[viewer.id], with_rater=False)
                            for c_id, by_rater in state.current.items() if viewer.id in by_rater}
    if open_:
        disputed = state.disputed()
        out["scores"] = [score_record(row) for c in state.criteria
                         for row in state.current.get(c.id, {}).values()]
        out["adjudications"] = [score_record(row) for row in state.adjudications.values()]
        out["history"] = [score_record(row) for row in state.history]
        out["disputed"] = disputed
        out["final"] = [_final_record(state, c) for c in state.criteria]
    return out


def _final_record(state: DefenseState, criterion: RubricCriterion) -> dict[str, Any]:
    value = state.final(criterion.id)
    return {"criterion_id": criterion.id, "code": criterion.code, "name": criterion.name,
            "score": value, "score_text": score_text(value),
            "adjudicated": criterion.id in state.adjudications,
            "awaiting_adjudication": criterion.id in state.pending(),
            "levels": levels_of(criterion, value)}


def student_view(state: DefenseState) -> dict[str, Any]:
    """What the student sees of their defense: the schedule and the rubric; once final, each
    criterion's final score with its level(s) and the raters' notes, unsigned. Never a rater's
    individual score, name-bound note, correction or adjudication reason."""
    defense = state.defense
    version = defense.rubric_version
    status = view_status(state, defense.student)
    out: dict[str, Any] = {
        "id": defense.id, "class_id": defense.class_id, "class_name": defense.school_class.name,
        "student_id": defense.student_id, "rubric_name": version.rubric.name,
        "rubric_version": version.version, "task_id": defense.task_id, "title": defense.title,
        "scheduled_at": as_utc(defense.scheduled_at), "recording_url": defense.recording_url,
        "cancelled_at": as_utc(defense.cancelled_at), "status": status,
        "criteria": [_criterion_record(c) for c in state.criteria],
    }
    if status == FINAL:
        out["final"] = []
        for c in state.criteria:
            record = _final_record(state, c)
            record.pop("awaiting_adjudication")
            record["notes"] = [row.note for row in state.current.get(c.id, {}).values()
                               if row.note]
            out["final"].append(record)
    return out


def to_score(session: Session, user: User) -> list[Defense]:
    """The rater's queue: defenses (not cancelled) where ``user`` is a rater who has not
    submitted, or the adjudicator of a criterion awaiting adjudication; soonest first."""
    if user.role != Role.TEACHER:
        return []
    query = defenses_query(user).where(Defense.cancelled_at.is_(None))
    out = []
    for defense in session.scalars(query):
        row = next((r for r in defense.raters if r.rater_id == user.id), None)
        if row is not None and row.role == RATER:
            if row.submitted_at is None:
                out.append(defense)
            continue
        state = defense_state(session, defense)
        if state.adjudicator_id() == user.id and any(
                user.id not in discordant_raters(state.scores_of(c)) for c in state.pending()):
            out.append(defense)
    return out


def student_defenses(session: Session, viewer: User, student_id: int) -> Select:
    """A student's defenses as ``viewer`` may list them (see :func:`defenses_query`).

    Raises
    ------
    NotFound
        No such student; another student (for a student); for a teacher, a student they
        neither teach nor are assigned to score.
    Forbidden
        Assessors.
    """
    if viewer.role == Role.ASSESSOR:
        raise Forbidden("defenses are for teachers, administrators and the student; you are "
                        "assessor")
    missing = NotFound(f"no student {student_id} you may see")
    student = session.get(User, student_id)
    if student is None or student.role != Role.STUDENT:
        raise missing
    if viewer.role == Role.STUDENT and viewer.id != student_id:
        raise missing
    if viewer.role == Role.ADMIN and not reaches(session, viewer, student):
        raise missing
    query = defenses_query(viewer, student_id=student_id)
    if (viewer.role == Role.TEACHER and not teaches(session, viewer, student_id)
            and not session.scalar(select(exists(
                query.with_only_columns(Defense.id).order_by(None))))):
        raise missing
    return query


def defense_summary(session: Session, viewer: User, defense: Defense) -> dict[str, Any]:
    """One line of a list of defenses, as ``viewer`` may see it (status role-shaped)."""
    state = defense_state(session, defense)
    own = state.rater(viewer.id)
    return {"id": defense.id, "class_id": defense.class_id,
            "class_name": defense.school_class.name, "student_id": defense.student_id,
            "student_name": defense.student.display_name or defense.student.username,
            "title": defense.title, "scheduled_at": as_utc(defense.scheduled_at),
            "rubric_name": defense.rubric_version.rubric.name,
            "status": view_status(state, viewer),
            "my_role": own.role if own else (ADJUDICATOR if viewer.id == state.adjudicator_id()
                                             and viewer.role == Role.TEACHER else None),
            "my_submitted": own is not None and own.submitted_at is not None,
            "pending": state.pending() if viewer.role != Role.STUDENT else []}
