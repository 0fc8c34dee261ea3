"""Rubric calibrations: a rubric version's criteria on the bank's theta scale, reviewed and
published by an assessor, and the rubric evidence of a student as a likelihood for theta.

Functions on a SQLAlchemy session (no HTTP, no commits; the caller's request is the transaction):

- :func:`run_rubric_calibration` gathers the students who have both scored answers to the bank's
  operational items (finished attempts) and current ratings of the version's criteria
  (:func:`evidence.rubric_scores.current_ratings`, kind ``rating``), fits
  :func:`calibration.rubric_scale.calibrate_rubric` with the bank's active parameters held fixed,
  and stores a draft :class:`~evidence.models.RubricCalibration` with its provenance. It runs
  synchronously: 2,000 students take 1.1-1.5 s end to end (``bench/rubric_calibration.py``).
- :func:`publish_rubric_calibration` publishes a draft and retires the version's previously
  published calibration, in one transaction.
- :func:`rubric_evidence` turns a student's current rubric scores under versions with a published
  calibration into virtual GPCM items (criterion thresholds plus the rater's severity) and
  0-based responses: ``cat_engine.models.log_likelihood(bank, items, responses, theta)`` is then
  the rubric likelihood to multiply with the test answers' (issue 15's mastery model).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from calibration.data import ResponseData
from calibration.errors import CalibrationError
from calibration.rubric_scale import (
    IDENTIFICATION,
    MIN_RATER_RATINGS,
    MODELS,
    RubricScaleResult,
    calibrate_rubric,
    shifted_bank,
)
from cat_engine import models as irt
from cat_engine.bank import ItemBank
from evidence.models import (
    Attempt,
    AttemptStatus,
    Defense,
    Response,
    RubricCalibration,
    RubricCalibrationStatus,
    RubricCriterion,
    RubricVersion,
)
from evidence.rubric_scores import ADJUDICATION, RATING, current_ratings
from evidence.rubrics import get_rubric
from item_bank.models import Item
from item_bank.services import ANCHOR_STATUSES, anchor_bank
from storage import utcnow
from storage.accounts import Role, User
from storage.errors import Conflict, Forbidden, Invalid, NotFound

#: Fewest students with both answers and ratings. At 100 students scored on 4 criteria by 2 of 6
#: raters, the median threshold standard error is about 0.25 logits (0.33 at 50, 0.15 at 200;
#: tests/calibration/test_rubric_scale.py's simulation): below the 0.3 a CAT usually stops at,
#: so the rubric's evidence is not less precise than its parameters.
MIN_STUDENTS = 100
STAFF = (Role.ASSESSOR, Role.ADMIN)
SETTINGS: dict[str, Any] = {"quadrature": 49, "max_iterations": 500, "tolerance": 1e-4,
                            "min_rater_ratings": MIN_RATER_RATINGS}
_SHOWN = 5


# -- the data ----------------------------------------------------------------------------------


class NoRatings(Invalid):
    """The version has no submitted ratings (or no criteria) to calibrate from."""


class NoAnswers(Invalid):
    """No rated student has scored answers to the bank's items in a finished attempt."""

    def __init__(self, message: str, field: str, *, rated: int) -> None:
        super().__init__(message, field)
        self.rated = rated


class TooFewStudents(Invalid):
    """Fewer than :data:`MIN_STUDENTS` students with both answers and ratings."""

    def __init__(self, message: str, field: str, *, count: int, minimum: int) -> None:
        super().__init__(message, field)
        self.count, self.minimum = count, minimum


@dataclass(frozen=True)
class RubricData:
    """What a calibration of one rubric version is computed from (arrays for the calibration)."""

    version: RubricVersion
    criteria: list[RubricCriterion]
    bank: ItemBank
    responses: ResponseData
    student_ids: list[int]  # user id of each person of ``responses``
    rater_ids: list[int]
    student: np.ndarray
    criterion: np.ndarray
    rater: np.ndarray
    score: np.ndarray
    n_categories: np.ndarray
    excluded: dict[str, int] = field(default_factory=dict)


def _staff(user: User) -> None:
    if user.role not in STAFF:
        raise Forbidden("only assessors and admins calibrate and publish rubrics")


def get_version(session: Session, rubric_id: int, version: int | None) -> RubricVersion:
    """The rubric's version ``version`` (its latest when ``None``)."""
    rubric = get_rubric(session, rubric_id)
    query = select(RubricVersion).where(RubricVersion.rubric_id == rubric_id)
    if version is None:
        found = session.scalars(query.order_by(RubricVersion.version.desc()).limit(1)).first()
        if found is None:
            raise Invalid(f"rubric {rubric.name!r} has no version", "version")
        return found
    found = session.scalars(query.where(RubricVersion.version == version)).first()
    if found is None:
        raise Invalid(f"rubric {rubric.name!r} has no version {version}", "version")
    return found


def load_rubric_data(session: Session, rubric_version_id: int) -> RubricData:
    """Students with both scored answers to anchor items and current ratings of the version.

    Raises
    ------
    NotFound
        No such rubric version.
    Invalid
        No current ratings, no rated student with answers, or fewer than :data:`MIN_STUDENTS`.
    """
    version = session.get(RubricVersion, rubric_version_id)
    if version is None:
        raise NotFound(f"no rubric version {rubric_version_id}", "version")
    criteria = sorted(version.criteria, key=lambda c: c.position)
    label = f"version {version.version} of rubric {version.rubric.name!r}"
    if not criteria:
        raise NoRatings(f"{label} has no criteria", "version")
    ratings = current_ratings(session, [version.id], kinds=(RATING,))
    if not ratings:
        raise NoRatings(f"{label} has no submitted ratings to calibrate from", "version")
    rated = sorted({r.student_id for r in ratings})
    rows = []
    for chunk in _chunks(rated, 500):
        rows += session.execute(
            select(Attempt.user_id, Response.item_id, Response.response)
            .join(Attempt, Attempt.id == Response.attempt_id)
            .join(Item, Item.id == Response.item_id)
            .where(Attempt.user_id.in_(chunk), Attempt.status == AttemptStatus.FINISHED,
                   Response.scored.is_(True), Item.status.in_(ANCHOR_STATUSES))
        ).all()
    item_ids = sorted({i for _, i, _ in rows})
    items = session.scalars(select(Item).where(Item.id.in_(item_ids))
                            .options(selectinload(Item.parameter_sets))).all() if item_ids else []
    anchors = {i.id: i for i in items if i.active_parameters is not None}
    rows = [r for r in rows if r[1] in anchors]
    answered = sorted({u for u, _, _ in rows})
    if not answered:
        raise NoAnswers(f"none of the {len(rated)} students rated under {label} has scored "
                        "answers to the bank's operational items in a finished attempt: the "
                        "rubric cannot be put on the bank's scale without them", "version",
                        rated=len(rated))
    if len(answered) < MIN_STUDENTS:
        raise TooFewStudents(
            f"only {len(answered)} students rated under {label} have answers to the bank's "
            f"items; a calibration needs at least {MIN_STUDENTS} (below that the criteria's "
            "thresholds would carry standard errors above about 0.3 logits, less precise than "
            "the test they are to be weighed with)", "version", count=len(answered),
            minimum=MIN_STUDENTS)
    person = {u: p for p, u in enumerate(answered)}
    codes = {i: anchors[i].code for i in anchors}
    used_items = sorted({i for _, i, _ in rows})
    bank = anchor_bank(anchors[i] for i in used_items)
    item_index = {i: j for j, i in enumerate(used_items)}
    responses = ResponseData(
        tuple(str(u) for u in answered), tuple(codes[i] for i in used_items),
        np.array([person[u] for u, _, _ in rows], dtype=np.intp),
        np.array([item_index[i] for _, i, _ in rows], dtype=np.intp),
        np.array([int(r) for _, _, r in rows], dtype=np.intp))
    kept = [r for r in ratings if r.student_id in person]
    by_criterion = {c.id: n for n, c in enumerate(criteria)}
    lowest = {c.id: int(c.levels[0]["score"]) for c in criteria}
    rater_ids = sorted({r.rater_id for r in kept})
    rater_index = {u: n for n, u in enumerate(rater_ids)}
    return RubricData(
        version=version, criteria=criteria, bank=bank, responses=responses,
        student_ids=answered, rater_ids=rater_ids,
        student=np.array([person[r.student_id] for r in kept], dtype=np.intp),
        criterion=np.array([by_criterion[r.criterion_id] for r in kept], dtype=np.intp),
        rater=np.array([rater_index[r.rater_id] for r in kept], dtype=np.intp),
        score=np.array([r.score - lowest[r.criterion_id] for r in kept], dtype=np.intp),
        n_categories=np.array([len(c.levels) for c in criteria], dtype=np.intp),
        excluded={"students_without_answers": len(rated) - len(answered),
                  "ratings_of_students_without_answers": len(ratings) - len(kept)},
    )


def _chunks(values: Sequence[int], size: int):
    for start in range(0, len(values), size):
        yield values[start: start + size]


# -- running and storing a calibration ---------------------------------------------------------


def run_rubric_calibration(session: Session, rubric_version_id: int, *, user: User,
                           model: str = "gpcm") -> RubricCalibration:
    """Calibrate a rubric version's criteria onto the bank's scale and store a draft.

    Parameters
    ----------
    session : Session
    rubric_version_id : int
    user : User
        An assessor or admin (others: :class:`Forbidden`).
    model : str
        ``"gpcm"`` (a slope per criterion) or ``"pcm"`` (slopes 1).

    Raises
    ------
    Forbidden, NotFound, Invalid
        A teacher or student; no such version; too few students, no ratings, an unused level of
        a criterion, a rater with too few ratings (the message names them).
    """
    _staff(user)
    if model not in MODELS:
        raise Invalid(f"model must be one of {', '.join(MODELS)}, got {model!r}", "model")
    data = load_rubric_data(session, rubric_version_id)
    names = [c.code for c in data.criteria]
    raters = {u.id: u.display_name or u.username
              for u in session.scalars(select(User).where(User.id.in_(data.rater_ids)))}
    try:
        result = calibrate_rubric(
            data.bank, data.responses, data.student, data.criterion, data.rater, data.score,
            data.n_categories, model=model, criterion_names=names,
            rater_names=[raters.get(r, str(r)) for r in data.rater_ids], **SETTINGS)
    except CalibrationError as error:
        raise Invalid(f"cannot calibrate version {data.version.version} of rubric "
                      f"{data.version.rubric.name!r}: {error}", "version") from None
    calibration = RubricCalibration(
        rubric_version_id=data.version.id, model=model,
        status=RubricCalibrationStatus.DRAFT,
        criteria=_criteria_record(data, result), raters=_raters_record(data, result),
        provenance=_provenance(data, result, user), n_students=result.n_students,
        created_by=user.id)
    session.add(calibration)
    session.flush()
    return calibration


def _number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _criteria_record(data: RubricData, result: RubricScaleResult) -> dict[str, Any]:
    out = {}
    for i, criterion in enumerate(data.criteria):
        params = result.criterion_parameters(i)
        m = int(result.n_categories[i]) - 1
        out[str(criterion.id)] = {
            "code": criterion.code, "model": params["model"], "a": params["a"],
            "thresholds": params["thresholds"], "n": int(result.n_ratings_criterion[i]),
            "se": {"a": _number(result.se["a"][i]),
                   "thresholds": [_number(s) for s in result.se["thresholds"][i, :m]]},
        }
    return out


def _raters_record(data: RubricData, result: RubricScaleResult) -> dict[str, Any]:
    return {str(user_id): {"severity": float(result.severity[r]),
                           "se": _number(result.se["severity"][r]),
                           "n": int(result.n_ratings_rater[r])}
            for r, user_id in enumerate(data.rater_ids)}


def _provenance(data: RubricData, result: RubricScaleResult, user: User) -> dict[str, Any]:
    snapshot = json.dumps(data.bank.to_records(), sort_keys=True).encode()
    return {
        "students": result.n_students, "ratings": result.n_ratings,
        "responses": result.n_responses, "items": result.n_items, "raters": len(data.rater_ids),
        "model": result.model, "settings": result.settings,
        "log_likelihood": result.log_likelihood, "converged": result.converged,
        "iterations": result.iterations, "seconds": round(result.seconds, 3),
        "latent_mean": result.latent_mean, "latent_sd": result.latent_sd,
        "latent_se": {"mean": _number(float(result.se["latent_mean"])),
                      "sd": _number(float(result.se["latent_sd"]))},
        "identification": IDENTIFICATION,
        "bank_sha256": hashlib.sha256(snapshot).hexdigest(),
        "excluded": data.excluded,
        "created_by": {"id": user.id, "name": user.display_name or user.username},
        "created_at": utcnow().isoformat(),
    }


def get_calibration(session: Session, calibration_id: int, *, lock: bool = False
                    ) -> RubricCalibration:
    """A rubric calibration by id (``NotFound`` otherwise)."""
    query = select(RubricCalibration).where(RubricCalibration.id == calibration_id)
    if lock:
        query = query.with_for_update()
    found = session.scalars(query).first()
    if found is None:
        raise NotFound(f"no rubric calibration {calibration_id}", "calibration_id")
    return found


def calibrations_of(session: Session, rubric_id: int):
    """A ``select`` of a rubric's calibrations, newest first (``NotFound`` for no rubric)."""
    get_rubric(session, rubric_id)
    return (select(RubricCalibration)
            .join(RubricVersion, RubricVersion.id == RubricCalibration.rubric_version_id)
            .where(RubricVersion.rubric_id == rubric_id)
            .order_by(RubricCalibration.created_at.desc(), RubricCalibration.id.desc()))


def publish_rubric_calibration(session: Session, calibration_id: int, *, user: User
                               ) -> RubricCalibration:
    """Publish a draft calibration; the version's published one (if any) is retired.

    Raises
    ------
    Forbidden
        Not an assessor or admin.
    NotFound
    Conflict
        The calibration is not a draft (published already, or retired).
    """
    _staff(user)
    calibration = get_calibration(session, calibration_id, lock=True)
    if calibration.status != RubricCalibrationStatus.DRAFT:
        raise Conflict(f"rubric calibration {calibration_id} is {calibration.status.value}, "
                       "not a draft", "calibration_id")
    session.execute(
        update(RubricCalibration)
        .where(RubricCalibration.rubric_version_id == calibration.rubric_version_id,
               RubricCalibration.status == RubricCalibrationStatus.PUBLISHED)
        .values(status=RubricCalibrationStatus.RETIRED)
        .execution_options(synchronize_session="fetch"))
    session.flush()
    calibration.status = RubricCalibrationStatus.PUBLISHED
    calibration.published_by = user.id
    calibration.published_at = utcnow()
    session.flush()
    return calibration


def calibration_view(session: Session, calibration: RubricCalibration) -> dict[str, Any]:
    """A calibration as plain data for the API and the pages: criteria in the rubric's order
    with their codes and names, raters by severity with their names."""
    version = session.get(RubricVersion, calibration.rubric_version_id)
    names = {c.id: c for c in version.criteria} if version is not None else {}
    criteria = []
    for key, entry in calibration.criteria.items():
        criterion = names.get(int(key))
        criteria.append({"criterion_id": int(key), **entry,
                         "name": criterion.name if criterion else None,
                         "skill": criterion.skill if criterion else None,
                         "levels": criterion.levels if criterion else None,
                         "position": criterion.position if criterion else 0})
    criteria.sort(key=lambda c: c["position"])
    people = {u.id: u.display_name or u.username for u in session.scalars(
        select(User).where(User.id.in_([int(k) for k in calibration.raters])))}
    raters = sorted(({"rater_id": int(k), "name": people.get(int(k)), **v}
                     for k, v in calibration.raters.items()), key=lambda r: r["severity"])
    return {
        "id": calibration.id, "rubric_version_id": calibration.rubric_version_id,
        "version": version.version if version is not None else None,
        "rubric_id": version.rubric_id if version is not None else None,
        "model": calibration.model, "status": calibration.status.value,
        "criteria": criteria, "raters": raters, "provenance": calibration.provenance,
        "n_students": calibration.n_students, "created_by": calibration.created_by,
        "created_at": calibration.created_at, "published_by": calibration.published_by,
        "published_at": calibration.published_at,
    }


# -- the rubric evidence of a student ----------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RubricEvidence:
    """A student's rubric scores as evidence about theta on the bank's scale.

    Attributes
    ----------
    student_id : int
    skill : str or None
        The skill asked for (``None``: every skill).
    ratings : list of dict
        The scores on the scale; rating ``n`` is virtual item ``n`` of ``bank``.
    not_on_scale : list of dict
        Scores under rubric versions without a published calibration, each with its ``reason``.
    bank : ItemBank or None
        One GPCM/PCM item per rating: the criterion's published thresholds plus the rater's
        severity (0 for a rater the calibration did not see). ``None`` when no rating is on
        the scale.
    items, responses : ndarray of int
        Positions in ``bank`` and the 0-based categories given.
    """

    student_id: int
    skill: str | None
    ratings: list[dict[str, Any]]
    not_on_scale: list[dict[str, Any]]
    bank: ItemBank | None
    items: np.ndarray
    responses: np.ndarray

    def log_likelihood(self, theta) -> np.ndarray:
        """The rubric log-likelihood at each theta (zeros when nothing is on the scale)."""
        theta = np.atleast_1d(np.asarray(theta, dtype=float))
        if self.bank is None:
            return np.zeros(theta.shape)
        return irt.log_likelihood(self.bank, self.items, self.responses, theta)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: the ratings, what is not on the scale, and the virtual items."""
        return {
            "student_id": self.student_id, "skill": self.skill,
            "ratings": [_plain(r) for r in self.ratings],
            "not_on_scale": [_plain(r) for r in self.not_on_scale],
            "items": self.bank.to_records() if self.bank is not None else [],
            "responses": [int(r) for r in self.responses],
            "D": self.bank.D if self.bank is not None else 1.0,
        }


def _plain(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in entry.items()}


def rubric_evidence(session: Session, student_id: int, *, skill: str | None = None
                    ) -> RubricEvidence:
    """The student's current rubric scores (ratings and adjudications) as a likelihood for theta.

    Scores under rubric versions with a published calibration become virtual items; the others
    are listed in ``not_on_scale`` with the reason, never dropped silently. Access checks are the
    caller's (a student's own report, their teachers, admins).
    """
    version_ids = list(session.scalars(
        select(Defense.rubric_version_id).where(Defense.student_id == student_id).distinct()))
    ratings = current_ratings(session, version_ids, student_ids=[student_id],
                              kinds=(RATING, ADJUDICATION)) if version_ids else []
    criteria = {c.id: c for c in session.scalars(
        select(RubricCriterion).where(RubricCriterion.id.in_({r.criterion_id for r in ratings}))
        .options(selectinload(RubricCriterion.rubric_version).selectinload(
            RubricVersion.rubric)))} if ratings else {}
    if skill is not None:
        ratings = [r for r in ratings if criteria[r.criterion_id].skill == skill]
    published = {c.rubric_version_id: c for c in session.scalars(
        select(RubricCalibration).where(
            RubricCalibration.rubric_version_id.in_({r.rubric_version_id for r in ratings}),
            RubricCalibration.status == RubricCalibrationStatus.PUBLISHED))} if ratings else {}
    defenses = {d.id: d for d in session.scalars(
        select(Defense).where(Defense.id.in_({r.defense_id for r in ratings})))} if ratings else {}
    people = {u.id: u.display_name or u.username for u in session.scalars(
        select(User).where(User.id.in_({r.rater_id for r in ratings})))} if ratings else {}
    on_scale, off_scale, records, responses = [], [], [], []
    for rating in ratings:
        criterion = criteria[rating.criterion_id]
        version = criterion.rubric_version
        levels = criterion.levels
        lowest = int(levels[0]["score"])
        label = next((lv["label"] for lv in levels if int(lv["score"]) == rating.score), None)
        defense = defenses[rating.defense_id]
        entry: dict[str, Any] = {
            "score_id": rating.score_id, "kind": rating.kind,
            "defense_id": rating.defense_id, "defense_title": defense.title,
            "defense_at": defense.scheduled_at or defense.created_at,
            "rubric_id": version.rubric_id, "rubric_name": version.rubric.name,
            "rubric_version": version.version, "rubric_version_id": version.id,
            "criterion_id": criterion.id, "criterion_code": criterion.code,
            "criterion_name": criterion.name, "skill": criterion.skill,
            "rater_id": rating.rater_id, "rater_name": people.get(rating.rater_id),
            "score": rating.score, "category": rating.score - lowest, "level_label": label,
            "at": rating.created_at,
        }
        calibration = published.get(version.id)
        parameters = calibration.criteria.get(str(criterion.id)) if calibration else None
        if parameters is None:
            reason = (f"version {version.version} of rubric {version.rubric.name!r} has no "
                      "published calibration" if calibration is None else
                      f"criterion {criterion.code!r} is not in the published calibration")
            off_scale.append({**entry, "reason": reason})
            continue
        rater = calibration.raters.get(str(rating.rater_id))
        severity = float(rater["severity"]) if rater is not None else 0.0
        entry |= {"calibration_id": calibration.id, "item": len(on_scale),
                  "severity": severity, "rater_calibrated": rater is not None}
        on_scale.append(entry)
        records.append({"item_id": f"rubric-score-{rating.score_id}",
                        "model": parameters["model"], "a": parameters["a"],
                        "thresholds": [t + severity for t in parameters["thresholds"]]})
        responses.append(rating.score - lowest)
    bank = shifted_bank(records) if records else None
    return RubricEvidence(student_id=student_id, skill=skill, ratings=on_scale,
                          not_on_scale=off_scale, bank=bank,
                          items=np.arange(len(records), dtype=np.intp),
                          responses=np.array(responses, dtype=np.intp))
