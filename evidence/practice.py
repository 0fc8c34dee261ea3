"""Practice attempts: a few chosen items of one skill, delivered as an ordinary attempt.

The next steps of a report (:mod:`reports.next_steps`) suggest practice items of a skill at the
student's level. :func:`start_practice` gives exactly those items through the ordinary attempt
machinery (:mod:`evidence.attempts`): the skill's practice test (:func:`practice_test`, created
on first use: bank filter ``{"skills": [skill]}``, at most :data:`PRACTICE_ITEMS` items, no cut
score) and a new attempt whose engine session has every other item of the skill withdrawn (the
engine's own ``withdrawn`` state, stored with the attempt, so resuming keeps it). The student
answers on the usual pages, which never show a key or whether an answer was right; the answers
are evidence like any other and reach the report.

So that the student's teacher sees the practice in their reports (a teacher reads attempts made
under their classes' assignments), the attempt is filed under an assignment of the practice
test to the student's first class (:func:`practice_assignment`), created closed (its window
opened and closed at creation): it is not offered in students' lists; a teacher may open it to
the class like any assignment.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cat_engine import CATSession
from evidence.attempts import _running_attempt, _step, attempt_reply
from evidence.models import Assignment, Attempt, AttemptStatus
from item_bank.models import AdaptiveTest
from item_bank.services import current_snapshot_id, delivery_bank, record_exposure, save_test
from storage import utcnow
from storage.accounts import Role, User, class_members
from storage.errors import Conflict, Forbidden

#: At most this many items in a practice attempt (the next steps suggest as many).
PRACTICE_ITEMS = 3
PRACTICE_NAME = "Practice: {skill}"
PRACTICE_CONFIG = {"start": {"theta": 0.0}, "estimator": {"method": "eap"},
                   "selection": {"method": "mfi"},
                   "stopping": {"max_items": PRACTICE_ITEMS, "min_items": 1}}


def practice_test(session: Session, skill: str) -> AdaptiveTest:
    """The practice test of ``skill``, created the first time it is needed.

    Raises
    ------
    Conflict
        A test with the practice test's name exists but is not a practice test of the skill.
    BankError
        The skill has no operational, calibrated item.
    """
    name = PRACTICE_NAME.format(skill=skill)
    lookup = select(AdaptiveTest).where(AdaptiveTest.name == name)
    test = session.scalar(lookup)
    if test is None:
        try:
            with session.begin_nested():
                test = save_test(session, None, name=name, config=PRACTICE_CONFIG,
                                 bank_filter={"skills": [skill]},
                                 description=f"Practice in {skill}: the items the next steps "
                                             "of a student's report suggest (created on "
                                             "demand).")
        except IntegrityError:  # created by another request a moment ago
            test = session.scalar(lookup)
    if test.bank_filter != {"skills": [skill]}:
        raise Conflict(f"the test {name!r} is not the practice test of {skill!r}", field="skill")
    return test


def practice_assignment(session: Session, test: AdaptiveTest, student: User,
                        now: datetime) -> Assignment | None:
    """The practice test's assignment to the student's first class (created closed), or None
    when the student is in no class."""
    class_id = session.scalar(select(class_members.c.class_id)
                              .where(class_members.c.user_id == student.id)
                              .order_by(class_members.c.class_id).limit(1))
    if class_id is None:
        return None
    assignment = session.scalar(select(Assignment).where(
        Assignment.class_id == class_id, Assignment.test_id == test.id)
        .order_by(Assignment.id).limit(1))
    if assignment is None:
        assignment = Assignment(class_id=class_id, test_id=test.id, opens_at=now,
                                closes_at=now)
        session.add(assignment)
        session.flush()
    return assignment


def start_practice(session: Session, user: User, skill: str, codes: Sequence[str], *,
                   now: datetime | None = None) -> tuple[Attempt, dict[str, Any], bool]:
    """Start practice in ``skill`` with the items ``codes`` (or resume the practice in
    progress).

    Returns
    -------
    attempt, reply, created
        As :func:`evidence.attempts.start_attempt`.

    Raises
    ------
    Forbidden
        Not a student.
    Conflict
        None of ``codes`` is an item the practice test delivers now.
    """
    now = now or utcnow()
    if user.role != Role.STUDENT:
        raise Forbidden("only students practise")
    test = practice_test(session, skill)
    running = _running_attempt(session, user, test.id)
    if running is not None:
        return running, attempt_reply(session, running, now=now), False
    snapshot_id = current_snapshot_id(session, test)
    delivery = delivery_bank(session, snapshot_id)
    offered = set(codes) & set(delivery.bank.item_ids)
    if not offered:
        raise Conflict(f"none of the practice items is delivered in {skill!r} now",
                       field="skill")
    seed = secrets.randbits(31)
    state = CATSession(delivery.bank, delivery.config, seed).to_json()
    state["withdrawn"] = [c for c in delivery.bank.item_ids if c not in offered]
    engine_session = CATSession.from_json(delivery.bank, state, config=delivery.config)
    assignment = practice_assignment(session, test, user, now)
    attempt = Attempt(test_id=test.id, user_id=user.id, status=AttemptStatus.IN_PROGRESS,
                      seed=seed, started_at=now, snapshot_id=snapshot_id,
                      assignment_id=assignment.id if assignment is not None else None)
    values, reply, presented = _step(delivery, engine_session, None, None, now)
    for name, value in values.items():
        setattr(attempt, name, value)
    try:
        with session.begin_nested():
            session.add(attempt)
    except IntegrityError:  # a double click started it a moment ago
        running = _running_attempt(session, user, test.id)
        if running is None:
            raise
        return running, attempt_reply(session, running, now=now), False
    reply["id"] = attempt.id
    if presented is not None:
        record_exposure(session, test.id, presented)
    return attempt, reply, True
