"""Students with both test answers and rubric ratings, drawn from known truth, in a school.

Used by the rubric calibration tests and by ``bench/rubric_calibration.py``. Rows are inserted
directly (no API): finished attempts with scored answers to the bank's operational items, drawn
from the items' active parameters at each student's true theta, and a defense per student scored
on every criterion by two raters, drawn from the GPCM with the rater's severity.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, selectinload

from cat_engine import models as irt
from cat_engine.bank import ItemBank
from evidence.models import (
    Attempt,
    AttemptStatus,
    Defense,
    DefenseRater,
    Response,
    Rubric,
    RubricCriterion,
    RubricScore,
    RubricVersion,
)
from item_bank.models import Item, ItemStatus
from storage.accounts import Role, User

LEVELS = [{"score": s, "label": f"Level {s}", "descriptor": f"what level {s} looks like"}
          for s in (1, 2, 3, 4)]
CRITERIA = (("reasoning", "algebra"), ("clarity", "algebra"), ("evidence", "geometry"),
            ("response", "geometry"))


@dataclass
class RatedWorld:
    """What was inserted, and the truth it was drawn from."""

    rubric_id: int
    version_id: int
    criterion_ids: list[int]
    rater_ids: list[int]
    student_ids: list[int]
    theta: np.ndarray
    a: np.ndarray
    thresholds: np.ndarray
    severity: np.ndarray
    bank: ItemBank  # the operational bank, item ids are the items' database ids as text


def operational_bank(session: Session) -> ItemBank:
    """The operational items' active parameters (item ids: database ids as text)."""
    items = session.scalars(select(Item).where(Item.status == ItemStatus.OPERATIONAL)
                            .options(selectinload(Item.parameter_sets))).all()
    return ItemBank.from_records(
        [{"item_id": str(i.id), **{k: v for k, v in i.active_parameters.as_dict().items()
                                   if v is not None}}
         for i in items if i.active_parameters is not None])


def fill(session: Session, *, test_id: int, class_id: int, n_students: int, seed: int = 5,
         n_answers: int = 15, n_raters: int = 6, theta_mean: float = 0.5,
         theta_sd: float = 1.2, rubric_name: str = "Oral defense") -> RatedWorld:
    """Insert ``n_students`` rated students with answers; returns ids and the truth."""
    rng = np.random.default_rng(seed)
    bank = operational_bank(session)
    now = datetime.now(UTC)
    stamp = uuid.uuid4().hex[:8]
    raters = [User(username=f"rater{stamp}-{r}", display_name=f"Rater {r + 1}",
                   role=Role.TEACHER, password_hash="x") for r in range(n_raters)]
    students = [User(username=f"pupil{stamp}-{p}", display_name=f"Pupil {p + 1}",
                     role=Role.STUDENT, password_hash="x") for p in range(n_students)]
    session.add_all(raters + students)
    rubric = Rubric(name=rubric_name)
    version = RubricVersion(rubric=rubric, version=1)
    criteria = [RubricCriterion(rubric_version=version, position=i, code=code,
                                name=code.title(), skill=skill, levels=LEVELS)
                for i, (code, skill) in enumerate(CRITERIA)]
    session.add_all([rubric, version, *criteria])
    session.flush()
    theta = rng.normal(theta_mean, theta_sd, n_students)
    a = rng.lognormal(0.0, 0.2, len(CRITERIA))
    thresholds = np.sort(rng.normal(0.3, 1.0, (len(CRITERIA), 3)), axis=1)
    severity = rng.normal(0.0, 0.5, n_raters)
    severity -= severity.mean()
    # answers
    attempt_rows = [{"test_id": test_id, "user_id": s.id, "status": AttemptStatus.FINISHED,
                     "started_at": now - timedelta(days=2), "finished_at": now - timedelta(days=2)}
                    for s in students]
    attempt_ids = list(session.scalars(
        insert(Attempt).returning(Attempt.id, sort_by_parameter_order=True), attempt_rows))
    chosen = np.array([rng.choice(len(bank), n_answers, replace=False) for _ in students])
    answers = irt.simulate_responses(bank, chosen, theta[:, None], rng)
    session.execute(insert(Response), [
        {"attempt_id": attempt_ids[p], "item_id": int(bank.item_ids[chosen[p, k]]),
         "position": k, "response": int(answers[p, k]), "scored": True,
         "answered_at": now - timedelta(days=2)}
        for p in range(n_students) for k in range(n_answers)])
    # defenses, two raters each, every criterion scored by both
    defense_ids = list(session.scalars(
        insert(Defense).returning(Defense.id, sort_by_parameter_order=True),
        [{"class_id": class_id, "student_id": s.id, "rubric_version_id": version.id,
          "title": "Project defense", "created_by": raters[0].id, "created_at": now}
         for s in students]))
    pairs = np.array([rng.choice(n_raters, 2, replace=False) for _ in students])
    session.execute(insert(DefenseRater), [
        {"defense_id": defense_ids[p], "rater_id": raters[r].id, "role": "rater",
         "submitted_at": now - timedelta(days=1), "assigned_at": now - timedelta(days=1)}
        for p in range(n_students) for r in pairs[p]])
    virtual = ItemBank.from_records([
        {"item_id": f"{i}|{r}", "model": "gpcm", "a": float(a[i]),
         "thresholds": (thresholds[i] + severity[r]).tolist()}
        for i in range(len(CRITERIA)) for r in range(n_raters)])
    student = np.repeat(np.arange(n_students), 2 * len(CRITERIA))
    rater = np.repeat(pairs, len(CRITERIA), axis=1).ravel()
    criterion = np.tile(np.arange(len(CRITERIA)), 2 * n_students)
    categories = irt.simulate_responses(virtual, criterion * n_raters + rater, theta[student],
                                        rng)
    session.execute(insert(RubricScore), [
        {"defense_id": defense_ids[p], "criterion_id": criteria[i].id,
         "rater_id": raters[r].id, "kind": "rating", "score": int(k) + 1, "note": "",
         "reason": "", "created_at": now - timedelta(days=1)}
        for p, i, r, k in zip(student, criterion, rater, categories, strict=True)])
    session.flush()
    return RatedWorld(rubric_id=rubric.id, version_id=version.id,
                      criterion_ids=[c.id for c in criteria], rater_ids=[r.id for r in raters],
                      student_ids=[s.id for s in students], theta=theta, a=a,
                      thresholds=thresholds, severity=severity, bank=bank)
