"""Adaptive tests delivered one request at a time, with no test state in process memory.

Every call loads the attempt, rebuilds the engine session from the attempt's stored state and
its bank snapshot (cached as numpy arrays per snapshot), does one step, and writes the new state,
the response and the reply in the caller's transaction. The HTTP API and the pages both call
these functions and commit once.

A reply is what the student is shown next: the next item, or the result. Replies to answers are
stored with the response, so a repeated request (same ``Idempotency-Key``) gets the same reply
and records nothing twice.
"""

from __future__ import annotations

import secrets
import time
from bisect import bisect_right
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cat_engine import CATSession
from cat_engine.errors import BankExhaustedError, CATError, InvalidResponseError
from cat_engine.exposure import ExposureStats, ItemEligibility
from cat_engine.models import response_log_probability
from evidence import statements as step_log
from evidence.classes import reaches, reaches_users
from evidence.models import Assignment, Attempt, AttemptStatus, Response
from item_bank.eligibility import eligibility_stats, record_eligibility
from item_bank.models import SOURCE_LANGUAGE, AdaptiveTest, ItemExposure
from item_bank.services import (
    BankError,
    Delivery,
    check_language,
    current_snapshot_id,
    delivery_bank,
    exposure_upsert,
    record_exposure,
)
from item_bank.translations import localized, offered_languages
from storage import as_utc, bind_key, utcnow
from storage.accounts import (
    Accommodation,
    Role,
    SchoolClass,
    TimeAccommodation,
    User,
    class_members,
)
from storage.errors import Conflict, Forbidden, Invalid, NotFound

Z95 = 1.959963984540054


# -- which tests a student may take --------------------------------------------------------------


def open_assignments(session: Session, user: User, now: datetime | None = None,
                     test_id: int | None = None) -> list[Assignment]:
    """The assignments of active tests open now in the classes ``user`` is enrolled in."""
    now = now or utcnow()
    query = (
        select(Assignment)
        .join(class_members, class_members.c.class_id == Assignment.class_id)
        .join(AdaptiveTest, AdaptiveTest.id == Assignment.test_id)
        .where(class_members.c.user_id == user.id, AdaptiveTest.is_active)
        .where((Assignment.opens_at.is_(None)) | (Assignment.opens_at <= now))
        .where((Assignment.closes_at.is_(None)) | (Assignment.closes_at > now))
        .order_by(Assignment.closes_at.is_(None), Assignment.closes_at, Assignment.id)
    )
    if test_id is not None:
        query = query.where(Assignment.test_id == test_id)
    return list(session.scalars(query))


def _deadline(session: Session, user: User, assignment: Assignment | None,
              now: datetime) -> datetime | None:
    if assignment is None or not assignment.time_limit_minutes:
        return None
    accommodation = session.get(Accommodation, user.id)
    minutes = float(assignment.time_limit_minutes)
    if accommodation is not None:
        if accommodation.time == TimeAccommodation.NONE:
            return None
        if accommodation.time == TimeAccommodation.EXTENDED:
            minutes *= accommodation.time_factor
    return now + timedelta(minutes=minutes)


# -- presenting ----------------------------------------------------------------------------------


def present_item(delivery: Delivery, code: str, position: int,
                 deadline: datetime | None = None, now: datetime | None = None,
                 language: str | None = None) -> dict[str, Any]:
    """What a student sees of an item: never its key, parameters, code or pretest status.

    The text is the item's version in ``language`` (default: the delivery's, which is the
    attempt's), or its source text where it has none; ``language`` in the result says which.
    """
    entry = delivery.items[code]
    text = localized(entry, language or delivery.language)
    item = {"id": entry["id"], "stem": text["stem"], "options": text["options"],
            "position": position, "language": text["language"]}
    if entry.get("media"):
        item["media"] = list(entry["media"])
    if entry["key"] is None:  # a rating item: the categories are the answers
        item["categories"] = int(delivery.bank.n_categories[delivery.bank.index_of(code)]) \
            if code in delivery.bank._index else len(entry["options"]) or 2
    if deadline is not None:
        now = now or utcnow()
        item["seconds_left"] = max(0, int((as_utc(deadline) - now).total_seconds()))
    return item


def _state_of(engine_session: CATSession) -> dict[str, Any]:
    state = engine_session.to_json()
    state.pop("config")  # the snapshot holds it; no need to store it per attempt
    return state


def _engine_session(delivery: Delivery, state: dict[str, Any],
                    stats: ExposureStats | None = None) -> CATSession:
    data = {**state, "config": delivery.config.settings}
    return CATSession.from_json(delivery.bank, data, config=delivery.config,
                                exposure_stats=stats)


# -- live exposure -------------------------------------------------------------------------------

EXPOSURE_STATS_SECONDS = 5.0
_EXPOSURE_STATS: dict[tuple[str, int, int | None], tuple[float, ExposureStats]] = {}


def live_exposure_stats(session: Session, delivery: Delivery, test_id: int
                        ) -> ExposureStats | None:
    """The test's exposure so far, for exposure controls that react to it; else ``None``.

    Item eligibility reads its record over finished attempts (:mod:`item_bank.eligibility`).
    Other controls read the exposure counters (presentations per item in this test) and the
    number of attempts started; rates are counts / attempts. Read at most every
    ``EXPOSURE_STATS_SECONDS`` per process and test: a control steering rates toward a target
    does not need them to the request.
    """
    if not delivery.config.exposure.uses_stats:
        return None
    key = (bind_key(session), test_id, delivery.snapshot_id)
    cached = _EXPOSURE_STATS.get(key)
    if cached is not None and time.monotonic() - cached[0] < EXPOSURE_STATS_SECONDS:
        return cached[1]
    if isinstance(delivery.config.exposure, ItemEligibility):
        stats = eligibility_stats(session, test_id, delivery.bank_item_ids)
    else:
        stats = _presentation_stats(session, delivery, test_id)
    if len(_EXPOSURE_STATS) > 1024:
        _EXPOSURE_STATS.clear()
    _EXPOSURE_STATS[key] = (time.monotonic(), stats)
    return stats


def _presentation_stats(session: Session, delivery: Delivery, test_id: int) -> ExposureStats:
    """Presentations per item in this test and the number of attempts started."""
    rows = session.execute(select(ItemExposure.item_id, ItemExposure.administered)
                           .where(ItemExposure.test_id == test_id)).all()
    tests = session.scalar(select(func.count(Attempt.id)).where(Attempt.test_id == test_id))
    counts = np.zeros(len(delivery.bank))
    if rows:
        ids, administered = np.array(rows, dtype=np.int64).T
        order = np.argsort(delivery.bank_item_ids)
        at = np.searchsorted(delivery.bank_item_ids, ids, sorter=order).clip(0, order.size - 1)
        known = delivery.bank_item_ids[order[at]] == ids
        counts[order[at[known]]] = administered[known]
    return ExposureStats(counts=counts, tests=int(tests or 0))


# -- starting ------------------------------------------------------------------------------------


def offered_test_languages(delivery: Delivery) -> list[str]:
    """The languages a test can be taken in (:func:`item_bank.translations.offered_languages`:
    the items' source languages and those most items have a version in)."""
    return offered_languages(delivery.items[code] for code in delivery.bank.item_ids)


def class_test_language(session: Session, assignment: Assignment | None) -> str | None:
    """The default test language of the class a test is assigned to, if it has one."""
    if assignment is None:
        return None
    return session.scalar(select(SchoolClass.test_language)
                          .where(SchoolClass.id == assignment.class_id))


def _attempt_language(offered: list[str], asked: str | None, fallbacks: list[str | None]
                      ) -> str:
    """The language an attempt is delivered in: the one asked for (refused when the test does
    not offer it), else the first fallback the test offers (class default, page language),
    else the test's best-covered language."""
    if asked is not None:
        try:
            asked = check_language(asked)
        except BankError as error:
            raise Invalid(str(error), field="language") from None
        if asked not in offered:
            raise Invalid(f"this test is not offered in {asked!r}; choose one of "
                          f"{', '.join(offered)}", field="language")
        return asked
    for fallback in fallbacks:
        if fallback in offered:
            return fallback
        primary = (fallback or "").split("-")[0]
        if primary in offered:
            return primary
    return offered[0] if offered else SOURCE_LANGUAGE


def start_attempt(session: Session, user: User, test_id: int,
                  now: datetime | None = None, *, base_url: str, language: str | None = None,
                  page_language: str | None = None
                  ) -> tuple[Attempt, dict[str, Any], bool]:
    """Start ``user`` on a test, or resume the attempt already in progress.

    ``base_url`` is the site's address, for the xAPI statements of the attempt (see
    :func:`submit_response`). ``language`` is the test language the student chose; without
    it the class's default test language applies, else ``page_language`` (the language of
    the student's pages), else the language most of the test's items are written in. An
    attempt keeps its language to the end: resuming ignores ``language``.

    Returns
    -------
    attempt, reply, created
        ``created`` is false when an attempt in progress was resumed.

    Raises
    ------
    NotFound
        No such test (or, for a student, none assigned to them: they cannot tell the two apart).
    Forbidden
        The user is not a student, or the assignment's attempts are used up.
    Invalid
        ``language`` is no language tag, or one the test is not offered in.
    """
    now = now or utcnow()
    test = session.get(AdaptiveTest, test_id)
    if user.role != Role.STUDENT:
        if test is None:
            raise NotFound(f"no test {test_id}")
        raise Forbidden("only students take tests; try a test design with a simulation instead")
    assignments = open_assignments(session, user, now, test_id) if test is not None else []
    if test is None or not test.is_active or not assignments:
        raise NotFound(f"no test {test_id} is open for you")
    running = _running_attempt(session, user, test_id)
    if running is not None:
        return running, attempt_reply(session, running, now=now), False
    assignment = assignments[0]
    if assignment.max_attempts:
        used = session.scalar(select(func.count(Attempt.id)).where(
            Attempt.user_id == user.id, Attempt.assignment_id == assignment.id))
        if used >= assignment.max_attempts:
            raise Forbidden(f"you have used all {assignment.max_attempts} attempt(s) at this test")
    snapshot_id = current_snapshot_id(session, test)
    offered = offered_test_languages(delivery_bank(session, snapshot_id))
    chosen = _attempt_language(offered, language,
                               [class_test_language(session, assignment), page_language])
    delivery = delivery_bank(session, snapshot_id, chosen)
    seed = secrets.randbits(31)
    engine_session = CATSession(delivery.bank, delivery.config, seed,
                                live_exposure_stats(session, delivery, test.id))
    attempt = Attempt(test_id=test.id, user_id=user.id, status=AttemptStatus.IN_PROGRESS,
                      seed=seed, started_at=now, snapshot_id=snapshot_id,
                      assignment_id=assignment.id, language=chosen,
                      deadline=_deadline(session, user, assignment, now))
    if attempt.deadline is not None:
        attempt.time_granted_seconds = round((attempt.deadline - now).total_seconds())
    values, reply, presented = _step(delivery, engine_session, None, attempt.deadline, now)
    for name, value in values.items():
        setattr(attempt, name, value)
    try:
        with session.begin_nested():  # a savepoint: losing the race below keeps the rest
            session.add(attempt)
    except IntegrityError:
        # Another request (a double click) started this test a moment ago: the unique index
        # allows one attempt in progress per student and test, so resume that one.
        running = _running_attempt(session, user, test_id)
        if running is None:
            raise
        return running, attempt_reply(session, running, now=now), False
    reply["id"] = attempt.id
    if presented is not None:
        record_exposure(session, test.id, presented)
    else:
        _count_finished(session, delivery, test.id, engine_session)
        _log_completed(session, base_url, user, attempt.id, attempt.registration, test.id,
                       values, attempt.started_at, now)
    return attempt, reply, True


def _running_attempt(session: Session, user: User, test_id: int) -> Attempt | None:
    return session.scalar(
        select(Attempt).where(Attempt.user_id == user.id, Attempt.test_id == test_id,
                              Attempt.status == AttemptStatus.IN_PROGRESS)
        .order_by(Attempt.id.desc()).limit(1)
    )


# -- answering -----------------------------------------------------------------------------------


def submit_response(
    session: Session,
    user: User,
    attempt_id: int,
    item_id: int,
    response: int,
    idempotency_key: str,
    *,
    response_time_ms: int | None = None,
    now: datetime | None = None,
    base_url: str,
    offline: bool = False,
    position: int | None = None,
) -> tuple[dict[str, Any], bool]:
    """Record the answer to the presented item and return the next reply.

    ``offline`` answers were given while the connection was down and are sent on its return,
    in order: the first to the item presented when it dropped, the next ones to items of the
    fallback module the page kept (:func:`fallback_module`). Such an item is presented then
    (:meth:`cat_engine.CATSession.present`) and scored exactly as an online answer; the response
    is marked ``offline``. ``position`` (1-based), when given, must be the attempt's next
    position, so an outbox replayed out of order is refused rather than misplaced. An offline
    answer arriving after a stopping rule ended the attempt is kept, unscored (nothing the
    student did is lost), and does not change the result.

    The answer is also an xAPI ``answered`` statement, and the end of the attempt a
    ``completed`` one (:mod:`evidence.statements`), stored in the same transaction as the
    response: nothing is acknowledged without its statement, and a replayed request stores
    neither again. ``base_url`` is the site's address (the agent's ``homePage`` and the
    activities' IRIs); the HTTP layer knows it.

    Returns
    -------
    reply, replayed
        ``replayed`` is true when ``idempotency_key`` was seen before: the stored reply is
        returned and nothing is recorded.

    Raises
    ------
    NotFound
        No such attempt, or not the caller's.
    Conflict
        The attempt is over, or ``item_id`` is not the item presented, or the key was used
        for a different answer.
    Invalid
        ``response`` is not one of the item's options or categories.
    """
    now = now or utcnow()
    # One round trip: the attempt, locked, and any response already stored under this key.
    connection = session.connection()
    row = connection.execute(_ANSWER_QUERY, {"attempt_id": attempt_id, "key": idempotency_key}
                             ).first()
    if row is None or row.user_id != user.id:
        raise NotFound(f"no attempt {attempt_id} of yours")
    if row.earlier_id is not None:
        return _replay(row, item_id, response), True
    status = AttemptStatus(row.status)
    from_module = offline and item_id != row.current_item_id \
        and item_id in (row.fallback_items or ())
    if status != AttemptStatus.IN_PROGRESS or row.current_item_id != item_id:
        # A retry that waited for the original's lock reads the attempt as the original left
        # it, but not the response it stored (PostgreSQL re-reads only the locked row): look
        # for that response once more before calling this a conflict. Only refusals pay.
        earlier = _earlier_response(session, attempt_id, idempotency_key)
        if earlier is not None:
            return _replay(earlier, item_id, response), True
    if status != AttemptStatus.IN_PROGRESS and offline and row.stop_reason != "time_limit" \
            and from_module:
        return _keep_after_stop(session, attempt_id, item_id, response, idempotency_key,
                                response_time_ms, now), False
    if status != AttemptStatus.IN_PROGRESS:
        raise Conflict(f"attempt {attempt_id} is {status.value}; it takes no more answers")
    if offline and row.current_item_id != item_id and not from_module:
        raise Conflict(f"item {item_id} was neither presented nor in the fallback module sent "
                       "to this page; it cannot be answered here", field="item_id")
    if not offline and row.current_item_id != item_id:
        raise Conflict(f"item {item_id} is not the item presented; answer item "
                       f"{row.current_item_id}", field="item_id")
    delivery = delivery_bank(session, row.snapshot_id, row.language)
    engine_session = _engine_session(delivery, row.state,
                                     live_exposure_stats(session, delivery, row.test_id))
    expected = len(engine_session.history) + 1
    if position is not None and position != expected:
        raise Conflict(f"this answer is for position {position}, but the attempt is at position "
                       f"{expected}: send the answers in the order they were given",
                       field="position")
    if row.deadline is not None and now > as_utc(row.deadline):
        values = _finish_values(delivery, engine_session, now, "time_limit")
        _update_attempt(connection, attempt_id, values)
        _count_finished(session, delivery, row.test_id, engine_session)
        _log_completed(session, base_url, user, attempt_id, row.registration, row.test_id,
                       values, row.started_at, now)
        return {"id": attempt_id, "status": AttemptStatus.FINISHED.value,
                "result": student_result(values["result"]), "late": True}, False
    code = delivery.codes[item_id]
    choice, score = _score(delivery, code, delivery.items[code], response)
    try:
        if from_module:
            engine_session.present(code)
        engine_session.answer(code, score)
    except InvalidResponseError as error:
        raise Invalid(str(error), field="response") from None
    except CATError as error:  # the stored state disagrees with the attempt row
        raise Conflict(str(error)) from None
    position = len(engine_session.history)
    values, reply, presented = _step(delivery, engine_session, attempt_id, row.deadline, now)
    recorded = {
        "attempt_id": attempt_id, "item_id": item_id, "position": position,
        "response": score, "choice": choice, "scored": code not in delivery.pretest,
        "answered_at": now, "response_time_ms": response_time_ms,
        "idempotency_key": idempotency_key, "reply": reply, "hints_used": 0,
        "offline": offline,
    }
    statements = [step_log.engine_answered(
        base_url, pseudonym=user.pseudonym, registration=row.registration,
        test_id=row.test_id, item_code=code, position=position,
        response=choice if choice is not None else score,
        success=bool(score > 0) if choice is not None else None,
        response_time_ms=response_time_ms, answered_at=now)]
    if presented is None:
        statements.append(_completed(base_url, user, row.registration, row.test_id, values,
                                     row.started_at, now))
    try:
        _write_answer(session, recorded, values, row.test_id, presented,
                      step_log.engine_rows(statements, base_url=base_url, actor_id=user.id,
                                           attempt_id=attempt_id, now=now))
    except IntegrityError:
        # A concurrent request recorded this position (or this key) first. Nothing else of
        # this request is worth keeping, so the whole transaction goes (no savepoint needed).
        # If that request was this one sent again (SQLite: both read before either wrote),
        # its stored reply is the answer.
        session.rollback()
        earlier = _earlier_response(session, attempt_id, idempotency_key)
        if earlier is not None:
            return _replay(earlier, item_id, response), True
        raise Conflict(f"attempt {attempt_id} was answered by another request at the same "
                       "time; fetch the attempt to see where it stands") from None
    if presented is None:
        _count_finished(session, delivery, row.test_id, engine_session)
    return reply, False


def _keep_after_stop(session: Session, attempt_id: int, item_id: int, response: int,
                     idempotency_key: str, response_time_ms: int | None, now: datetime
                     ) -> dict[str, Any]:
    """Keep an offline answer that arrived after the attempt ended: unscored, after the rest."""
    attempt = session.get(Attempt, attempt_id)
    if session.scalar(select(Response.id).where(Response.attempt_id == attempt_id,
                                                Response.item_id == item_id)) is not None:
        raise Conflict(f"item {item_id} was already answered in this attempt", field="item_id")
    delivery = delivery_bank(session, attempt.snapshot_id, attempt.language)
    code = delivery.codes[item_id]
    choice, score = _score(delivery, code, delivery.items[code], response)
    last = session.scalar(select(func.max(Response.position))
                          .where(Response.attempt_id == attempt_id)) or 0
    reply = {"id": attempt_id, "status": attempt.status.value, "after_stop": True,
             "result": student_result(attempt.result) if attempt.result else None}
    session.add(Response(attempt_id=attempt_id, item_id=item_id, position=last + 1,
                         response=score, choice=choice, scored=False, answered_at=now,
                         response_time_ms=response_time_ms, idempotency_key=idempotency_key,
                         reply=reply, hints_used=0, offline=True))
    session.flush()
    return reply


#: How many items a page keeps for a dropped connection (:func:`fallback_module`).
FALLBACK_LENGTH = 6


def fallback_module(session: Session, attempt: Attempt, length: int = FALLBACK_LENGTH,
                    now: datetime | None = None) -> list[dict[str, Any]]:
    """The items the attempt's page keeps for a dropped connection, as the student sees them.

    They are what the engine would give next at the current estimate
    (:meth:`cat_engine.CATSession.fallback_module`), after the item presented now, with the
    positions they would have. Their ids are added to ``attempt.fallback_items`` (an offline
    answer is taken only for one of those). Never keys or parameters: the page cannot tell a
    right answer from a wrong one, so the module does not branch.
    """
    if attempt.status != AttemptStatus.IN_PROGRESS or attempt.current_item_id is None:
        return []
    now = now or utcnow()
    delivery = delivery_bank(session, attempt.snapshot_id, attempt.language)
    engine_session = _engine_session(delivery, attempt.state)
    codes = engine_session.fallback_module(length)
    first = len(engine_session.history) + 2
    items = [present_item(delivery, code, first + k, None, now) for k, code in enumerate(codes)]
    issued = set(attempt.fallback_items or ())
    new = [item["id"] for item in items if item["id"] not in issued]
    if new:
        attempt.fallback_items = sorted(issued | set(new))
    return items


def _completed(base_url: str, user: User, registration: str, test_id: int,
               values: dict[str, Any], started_at: datetime, now: datetime) -> dict[str, Any]:
    """The ``completed`` statement of an attempt finishing with ``values``."""
    mastery = (values["result"].get("mastery") or {}).get("decision")
    return step_log.engine_completed(
        base_url, pseudonym=user.pseudonym, registration=registration, test_id=test_id,
        theta=values["theta"], se=values["se"], stop_reason=values["stop_reason"],
        mastery=mastery, started_at=started_at, finished_at=now)


def _log_completed(session: Session, base_url: str, user: User, attempt_id: int,
                   registration: str, test_id: int, values: dict[str, Any],
                   started_at: datetime, now: datetime) -> None:
    step_log.store_engine_statements(
        session, [_completed(base_url, user, registration, test_id, values, started_at, now)],
        base_url=base_url, actor_id=user.id, attempt_id=attempt_id, now=now)


def _earlier_response(session: Session, attempt_id: int, idempotency_key: str):
    """The response stored under ``idempotency_key`` (read afresh), or ``None``."""
    return session.connection().execute(
        _EARLIER_QUERY, {"attempt_id": attempt_id, "key": idempotency_key}).first()


def finish_after_time_limit(session: Session, user: User, attempt_id: int,
                            now: datetime | None = None, *, base_url: str) -> dict[str, Any]:
    """End ``user``'s attempt whose time is up, recording no answer; returns its reply.

    This is what "See my result" does once the time is up: the student is not made to submit
    an answer that will not count. An attempt already over returns its reply unchanged.

    Raises
    ------
    NotFound
        No such attempt, or not the caller's.
    Conflict
        The attempt has no time limit, or its time is not up yet (``field="deadline"``).
    """
    now = now or utcnow()
    attempt = session.get(Attempt, attempt_id, with_for_update=True)
    if attempt is None or attempt.user_id != user.id:
        raise NotFound(f"no attempt {attempt_id} of yours")
    if attempt.status != AttemptStatus.IN_PROGRESS:
        return attempt_reply(session, attempt, now)
    if attempt.deadline is None or now <= as_utc(attempt.deadline):
        raise Conflict(f"attempt {attempt_id} still has time left", field="deadline")
    delivery = delivery_bank(session, attempt.snapshot_id, attempt.language)
    engine_session = _engine_session(delivery, attempt.state)
    values = _finish_values(delivery, engine_session, now, "time_limit")
    for name, value in values.items():
        setattr(attempt, name, value)
    session.flush()
    _count_finished(session, delivery, attempt.test_id, engine_session)
    _log_completed(session, base_url, user, attempt_id, attempt.registration, attempt.test_id,
                   values, attempt.started_at, now)
    return {"id": attempt_id, "status": AttemptStatus.FINISHED.value,
            "result": student_result(values["result"])}


_ATTEMPTS, _RESPONSES = Attempt.__table__, Response.__table__
_ANSWER_QUERY = (
    select(_ATTEMPTS.c.user_id, _ATTEMPTS.c.test_id, _ATTEMPTS.c.status,
           _ATTEMPTS.c.snapshot_id, _ATTEMPTS.c.current_item_id, _ATTEMPTS.c.deadline,
           _ATTEMPTS.c.state, _ATTEMPTS.c.registration, _ATTEMPTS.c.started_at,
           _ATTEMPTS.c.fallback_items, _ATTEMPTS.c.stop_reason, _ATTEMPTS.c.language,
           _RESPONSES.c.id.label("earlier_id"),
           _RESPONSES.c.item_id.label("earlier_item_id"),
           _RESPONSES.c.choice.label("earlier_choice"),
           _RESPONSES.c.response.label("earlier_response"),
           _RESPONSES.c.reply.label("earlier_reply"))
    .select_from(_ATTEMPTS.outerjoin(_RESPONSES, (_RESPONSES.c.attempt_id == _ATTEMPTS.c.id)
                                     & (_RESPONSES.c.idempotency_key == bindparam("key"))))
    .where(_ATTEMPTS.c.id == bindparam("attempt_id"))
    .with_for_update(of=_ATTEMPTS)
)
_EARLIER_QUERY = (
    select(_RESPONSES.c.item_id.label("earlier_item_id"),
           _RESPONSES.c.choice.label("earlier_choice"),
           _RESPONSES.c.response.label("earlier_response"),
           _RESPONSES.c.reply.label("earlier_reply"))
    .where(_RESPONSES.c.attempt_id == bindparam("attempt_id"),
           _RESPONSES.c.idempotency_key == bindparam("key"))
)
_INSERT_RESPONSE = insert(_RESPONSES)
# The columns _step sets while the attempt goes on, and those _finish_values sets at the end.
_STEP_COLUMNS = ("current_item_id", "presented_at", "state")
_FINISH_COLUMNS = ("status", "finished_at", "current_item_id", "presented_at", "theta", "se",
                   "stop_reason", "state", "result")


def _update_statement(columns: tuple[str, ...]):
    return (update(_ATTEMPTS).where(_ATTEMPTS.c.id == bindparam("attempt_id"))
            .values({name: bindparam(name) for name in columns}))


_UPDATE_STEP = _update_statement(_STEP_COLUMNS)
_UPDATE_FINISH = _update_statement(_FINISH_COLUMNS)


def _update_attempt(connection, attempt_id: int, values: dict[str, Any]) -> None:
    statement = _UPDATE_FINISH if "status" in values else _UPDATE_STEP
    connection.execute(statement, {"attempt_id": attempt_id, **values})


def _answer_statement(finish: bool, exposure: bool):
    """PostgreSQL: the response, the exposure count, the attempt and its xAPI statements
    (``answered``, and ``completed`` when it finishes) in one statement.

    Data-modifying CTEs run together in one round trip; a unique violation on the response
    (a concurrent answer, a reused key) still fails the whole statement.
    """
    columns = _FINISH_COLUMNS if finish else _STEP_COLUMNS
    statement = (update(_ATTEMPTS).where(_ATTEMPTS.c.id == bindparam("attempt_id"))
                 .values({name: bindparam(f"attempt_{name}") for name in columns}))
    recorded = insert(_RESPONSES).values(
        {c.name: bindparam(f"response_{c.name}", type_=c.type)
         for c in _RESPONSES.columns if c.name != "id"})
    statement = statement.add_cte(recorded.cte("recorded"))
    if exposure:
        statement = statement.add_cte(exposure_upsert("postgresql").cte("counted"))
    return statement.add_cte(*step_log.engine_ctes(2 if finish else 1))


_ANSWER_STATEMENTS = {(finish, exposure): _answer_statement(finish, exposure)
                      for finish in (False, True) for exposure in (False, True)}


def _write_answer(session: Session, recorded: dict[str, Any], values: dict[str, Any],
                  test_id: int, presented: int | None, logged: tuple[list, list]) -> None:
    """Store the response (with its reply), the attempt's new state, the exposure count and
    the xAPI statements (``logged``: rows and activities from
    :func:`evidence.statements.engine_rows`; one statement, two when the attempt finishes)."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        connection.execute(_INSERT_RESPONSE, recorded)
        _update_attempt(connection, recorded["attempt_id"], values)
        if presented is not None:
            record_exposure(session, test_id, presented)
        step_log.insert_rows(session, *logged)
        return
    step_log.mark_stored(session)
    statement = _ANSWER_STATEMENTS["status" in values, presented is not None]
    parameters = {"attempt_id": recorded["attempt_id"], "exposure_test_id": test_id,
                  "exposure_item_id": presented,
                  **{f"attempt_{k}": v for k, v in values.items()},
                  **{f"response_{k}": v for k, v in recorded.items()},
                  **step_log.engine_parameters(*logged)}
    connection.execute(statement, parameters)


def _replay(row, item_id: int, response: int) -> dict[str, Any]:
    choice = row.earlier_choice
    same = row.earlier_item_id == item_id and (
        choice == response if choice is not None else row.earlier_response == response
    )
    if not same:
        raise Conflict("this Idempotency-Key was used for a different answer; use a new key",
                       field="Idempotency-Key")
    return row.earlier_reply


def _score(delivery: Delivery, code: str, entry: dict, response: Any) -> tuple[int | None, int]:
    if isinstance(response, bool) or not isinstance(response, int):
        raise Invalid(f"response must be an integer, got {response!r}", field="response")
    if entry["key"] is None:
        return None, response  # a rating or partial-credit item: the category is the score
    n = len(entry["options"])
    if not 0 <= response < n:
        raise Invalid(f"response {response} is not an option of this item (0..{n - 1})",
                      field="response")
    return response, int(response == entry["key"])


def _step(delivery: Delivery, engine_session: CATSession, attempt_id: int | None,
          deadline: datetime | None, now: datetime
          ) -> tuple[dict[str, Any], dict[str, Any], int | None]:
    """Present the next item, or finish.

    Returns
    -------
    values, reply, presented
        The attempt's new column values, the reply, and the id of the item presented (``None``
        when the attempt finished).
    """
    code = None
    if not engine_session.finished:
        try:
            code = engine_session.next_item()
        except BankExhaustedError:
            code = None
    if code is None:
        values = _finish_values(delivery, engine_session, now,
                                engine_session.stop_reason or "bank_exhausted")
        return values, {"id": attempt_id, "status": AttemptStatus.FINISHED.value,
                        "result": student_result(values["result"])}, None
    item_id = delivery.items[code]["id"]
    values = {"current_item_id": item_id, "presented_at": now,
              "state": _state_of(engine_session)}
    position = len(engine_session.history) + 1
    return values, {"id": attempt_id, "status": AttemptStatus.IN_PROGRESS.value,
                    "item": present_item(delivery, code, position, deadline, now)}, item_id


def _count_finished(session: Session, delivery: Delivery, test_id: int,
                    engine_session: CATSession) -> None:
    """Add a finished attempt to item eligibility's record (other controls keep none)."""
    if not isinstance(delivery.config.exposure, ItemEligibility):
        return
    outcome = engine_session.exposure_outcome()
    ids = [delivery.items[code]["id"] for code in outcome["given"]]
    withheld = [delivery.items[code]["id"] for code in outcome["withheld"]]
    record_eligibility(session, test_id, ids, withheld, outcome["released"])


def _finish_values(delivery: Delivery, engine_session: CATSession, now: datetime,
                   reason: str) -> dict[str, Any]:
    """The attempt's column values once finished (status, estimate, result)."""
    result = engine_session.result()
    return {
        "status": AttemptStatus.FINISHED, "finished_at": now, "current_item_id": None,
        "presented_at": None, "theta": result.theta, "se": result.se, "stop_reason": reason,
        "state": {**_state_of(engine_session), "finished": True, "stop_reason": reason,
                  "pending": None},
        "result": summarise(delivery, engine_session, reason),
    }


# -- results -------------------------------------------------------------------------------------


def _decision(theta: float, se: float, cut: float) -> dict[str, Any]:
    """A mastery recommendation against ``cut`` with 95% confidence, as data."""
    lo, hi = theta - Z95 * se, theta + Z95 * se
    if lo > cut:
        decision = "mastered"
    elif hi < cut:
        decision = "not_mastered"
    else:
        decision = "undecided"
    return {"cut_score": cut, "decision": decision, "recommendation": True}


def summarise(delivery: Delivery, engine_session: CATSession, reason: str) -> dict[str, Any]:
    """The result as data: theta, se, a 95% interval, mastery per cut score, a summary per skill.

    Skill estimates use only that skill's items (with the test's prior and estimator), so they
    are rougher than the overall theta; their se says how much.
    """
    result = engine_session.result()
    theta, se = result.theta, result.se
    out: dict[str, Any] = {
        "theta": theta, "se": se,
        "interval95": [theta - Z95 * se, theta + Z95 * se],
        "stop_reason": reason, "n_scored": result.n_scored, "n_given": result.n_given,
    }
    by_skill: dict[str, list] = defaultdict(list)
    for answered in result.items:
        if answered.scored:
            by_skill[delivery.items[answered.item_id]["skill"]].append(answered)
    config, bank = delivery.config, delivery.bank
    skills = {}
    for skill, answered in sorted(by_skill.items()):
        idx = bank.indices_of([a.item_id for a in answered])
        resp = np.array([a.response for a in answered], dtype=np.intp)
        log_post = config.grid.initial_log_posterior(1)
        log_post[0] += response_log_probability(
            bank, idx[:, None], config.grid.points[None, :], resp[:, None]).sum(axis=0)
        s_theta, s_se = config.estimator.estimate(bank, idx[None, :], resp[None, :], log_post,
                                                  config.grid)
        entry = {"n_items": len(answered),
                 "n_correct": int(sum(1 for a in answered if a.response > 0)),
                 "theta": float(s_theta[0]), "se": float(s_se[0])}
        if skill in delivery.cut_scores:
            entry["mastery"] = _decision(entry["theta"], entry["se"], delivery.cut_scores[skill])
        skills[skill] = entry
    out["skills"] = skills
    # The skills the test covers (its operational items' and its cut scores') that no scored
    # answer reached: the result names them rather than leaving them out.
    covered = {entry["skill"] for code, entry in delivery.items.items()
               if code not in delivery.pretest}
    covered |= set(delivery.cut_scores) - {"overall"}
    out["skills_not_tested"] = sorted(covered - set(skills))
    if "overall" in delivery.cut_scores:
        out["mastery"] = _decision(theta, se, delivery.cut_scores["overall"])
    return out


# -- what a student sees of a result -------------------------------------------------------------

#: Ability bands on the theta scale (logits; the bank's calibration sample has mean 0, sd 1).
BAND_EDGES = (-1.5, -0.5, 0.5, 1.5)
BAND_CODES = ("well_below", "below", "middle", "above", "well_above")
#: Fewer scored answers than this (overall, or in a skill) say too little to give a level.
MIN_EVIDENCE_ITEMS = 4
#: How sure a level is, by its standard error (logits): the largest se of each word.
SURENESS = ((0.3, "sure"), (0.5, "fairly_sure"))


def band_of(theta: float) -> int:
    """Index in :data:`BAND_CODES` of the band ``theta`` (logits) falls in."""
    return bisect_right(BAND_EDGES, theta)


def _student_level(theta: float, se: float, n_scored: int,
                   mastery: dict[str, Any] | None) -> dict[str, Any]:
    """A level in words with how sure it is, or ``too_little`` evidence; never a number."""
    if n_scored < MIN_EVIDENCE_ITEMS:
        return {"evidence": "too_little"}
    lo, hi = theta - Z95 * se, theta + Z95 * se
    level: dict[str, Any] = {
        "evidence": next((word for limit, word in SURENESS if se <= limit), "rough"),
        "level": BAND_CODES[band_of(theta)],
        "range": [BAND_CODES[band_of(lo)], BAND_CODES[band_of(hi)]],
    }
    if mastery is not None:
        level["mastery"] = {"decision": mastery["decision"], "recommendation": True}
    return level


def student_result(result: dict[str, Any]) -> dict[str, Any]:
    """What a student may see of a result (as :func:`summarise` stores it).

    Levels in words (bands of the theta scale), how sure each is, the mastery recommendations
    and which skills were not tested; no theta, se, cut score or count of right answers, and no
    level at all from fewer than :data:`MIN_EVIDENCE_ITEMS` scored answers. Counts of right
    answers per skill beside the options chosen, or a level from one or two answers, tell a
    student which of their answers were right, and so the keys of operational items; exact
    figures let attempts be compared to the same end. Staff see the stored result whole.
    """
    out: dict[str, Any] = {
        "stop_reason": result.get("stop_reason"), "n_given": result.get("n_given"),
        **_student_level(result["theta"], result["se"], int(result.get("n_scored") or 0),
                         result.get("mastery")),
    }
    out["skills"] = {
        name: {"n_items": skill["n_items"],
               **_student_level(skill["theta"], skill["se"], skill["n_items"],
                                skill.get("mastery"))}
        for name, skill in sorted((result.get("skills") or {}).items())
    }
    out["skills_not_tested"] = list(result.get("skills_not_tested") or [])
    return out


# -- reading -------------------------------------------------------------------------------------


def visible_attempt(session: Session, user: User, attempt_id: int) -> Attempt:
    """The attempt if ``user`` may see it (see :func:`may_see_attempt`).

    Raises
    ------
    NotFound
        No such attempt, or not one ``user`` may see: the two look alike.
    """
    attempt = session.get(Attempt, attempt_id)
    if attempt is None or not may_see_attempt(session, user, attempt):
        raise NotFound(f"no attempt {attempt_id} you may see")
    return attempt


def _taught_assignments(teacher: User):
    """The ids of the assignments of ``teacher``'s classes (a subquery)."""
    return (select(Assignment.id).join(SchoolClass, SchoolClass.id == Assignment.class_id)
            .where(SchoolClass.teacher_id == teacher.id))


def may_see_attempt(session: Session, user: User, attempt: Attempt) -> bool:
    """Whether ``user`` may read ``attempt``.

    A student their own; assessors and district administrators any; a school's administrator
    those of the people it reaches (:func:`evidence.classes.reaches`); a teacher only those
    made under
    an assignment of a class they teach: not the same student's attempts at other teachers'
    assignments, and none once the assignment is deleted.
    """
    if user.role == Role.ASSESSOR or user.id == attempt.user_id:
        return True
    if user.role == Role.ADMIN:
        return reaches(session, user, session.get(User, attempt.user_id))
    if user.role != Role.TEACHER or attempt.assignment_id is None:
        return False
    return session.scalar(
        select(func.count()).select_from(Assignment)
        .join(SchoolClass, SchoolClass.id == Assignment.class_id)
        .where(Assignment.id == attempt.assignment_id, SchoolClass.teacher_id == user.id)
    ) > 0


def attempt_query(user: User):
    """The attempts ``user`` may list (as :func:`may_see_attempt`), newest first."""
    query = select(Attempt).order_by(Attempt.id.desc())
    if user.role == Role.TEACHER:
        return query.where(Attempt.assignment_id.in_(_taught_assignments(user)))
    if user.role == Role.ADMIN:
        return query.where(reaches_users(user, Attempt.user_id))
    if user.role != Role.ASSESSOR:
        return query.where(Attempt.user_id == user.id)
    return query


def attempt_reply(session: Session, attempt: Attempt, now: datetime | None = None
                  ) -> dict[str, Any]:
    """The attempt's current reply, as its student sees it: the item presented now, or the
    result (:func:`student_result`)."""
    if attempt.status != AttemptStatus.IN_PROGRESS:
        return {"id": attempt.id, "status": attempt.status.value,
                "result": student_result(attempt.result) if attempt.result else None}
    delivery = delivery_bank(session, attempt.snapshot_id, attempt.language)
    code = delivery.codes[attempt.current_item_id]
    position = len(attempt.state["history"]) + 1
    return {"id": attempt.id, "status": attempt.status.value,
            "item": present_item(delivery, code, position, attempt.deadline, now)}


def attempt_view(session: Session, attempt: Attempt, viewer: User) -> dict[str, Any]:
    """Status, history and (once finished) the result, as ``viewer`` may see them.

    Students see what they answered, never keys or whether an answer was correct, and the
    result as :func:`student_result` words it (no theta, se or counts); staff also see scores,
    which responses were pretest (unscored) and the whole result.
    """
    staff = viewer.role != Role.STUDENT
    history = []
    for r in session.scalars(select(Response).where(Response.attempt_id == attempt.id)
                             .order_by(Response.position)):
        entry = {"position": r.position, "item_id": r.item_id,
                 "response": r.choice if r.choice is not None else r.response,
                 "answered_at": r.answered_at}
        if staff:
            entry |= {"score": r.response, "scored": r.scored,
                      "response_time_ms": r.response_time_ms, "offline": r.offline}
        history.append(entry)
    view: dict[str, Any] = {
        "id": attempt.id, "test_id": attempt.test_id, "user_id": attempt.user_id,
        "status": attempt.status.value, "started_at": attempt.started_at,
        "finished_at": attempt.finished_at, "deadline": attempt.deadline, "history": history,
        "language": attempt.language,
    }
    if attempt.status == AttemptStatus.IN_PROGRESS:
        view["item"] = attempt_reply(session, attempt)["item"]
    elif staff:
        view |= {"theta": attempt.theta, "se": attempt.se, "stop_reason": attempt.stop_reason,
                 "result": attempt.result}
    else:
        view |= {"stop_reason": attempt.stop_reason,
                 "result": student_result(attempt.result) if attempt.result else None}
    return view
