"""Scored defenses for the rater-analysis tests: a rubric, students in the world's two classes,
extra teachers as raters, and scores simulated from a many-facet Rasch model with known rater
severities (each student scored by two raters)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from evidence.models import (
    Defense,
    DefenseRater,
    Rubric,
    RubricCriterion,
    RubricScore,
    RubricVersion,
)
from storage.accounts import Role, SchoolClass, User

LEVELS = [{"score": s, "label": f"L{s}", "descriptor": f"level {s}"} for s in (1, 2, 3, 4)]
CRITERIA = ("reasoning", "evidence", "clarity")
THRESHOLDS = np.array([-1.2, 0.0, 1.2])


@dataclass
class Scored:
    """What :func:`scored_rubric` built: ids, and every rating as arrays (0-based scores)."""

    rubric_id: int
    version_id: int
    criterion_ids: list[int]
    rater_ids: list[int]
    severities: np.ndarray
    student_ids: list[int] = field(default_factory=list)
    class_of_student: dict[int, int] = field(default_factory=dict)
    defense_of_student: dict[int, int] = field(default_factory=dict)
    # one entry per rating
    student: list[int] = field(default_factory=list)
    criterion: list[int] = field(default_factory=list)
    rater: list[int] = field(default_factory=list)
    score: list[int] = field(default_factory=list)
    score_ids: list[int] = field(default_factory=list)


def simulate_scores(rng, theta, difficulty, severity, thresholds=THRESHOLDS) -> np.ndarray:
    """0-based categories from the rating-scale many-facet model, vectorised over ratings."""
    location = (theta - difficulty - severity)[:, None] - thresholds[None, :]
    logits = np.concatenate([np.zeros((theta.size, 1)), np.cumsum(location, axis=1)], axis=1)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return (rng.random(theta.size)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)


def scored_rubric(session: Session, ids: dict, *, n_students: int = 40, n_raters: int = 5,
                  severities=None, seed: int = 1, name: str = "Oral defense",
                  pairs=None) -> Scored:
    """A rubric (version 1, three criteria scored 1-4) and ``n_students`` new students, half in
    class 7A (teacher1) and half in 7B (teacher2), each scored by two of ``n_raters`` teachers
    (teacher1, teacher2 and new ones), every sheet submitted. ``pairs`` chooses each student's
    two raters (indices into the raters; default a rotation that links every rater)."""
    rng = np.random.default_rng(seed)
    tag = uuid.uuid4().hex[:8]  # unique usernames when called more than once on one database
    password_hash = generate_password_hash("x" * 12, method="pbkdf2:sha256:1000")
    severities = (np.linspace(-0.8, 0.8, n_raters) if severities is None
                  else np.asarray(severities, dtype=float))
    raters = [session.get(User, ids["users"][name]) for name in ("teacher1", "teacher2")]
    for k in range(len(raters), n_raters):
        raters.append(User(username=f"rater{k}-{tag}", display_name=f"Rater {k}", role=Role.TEACHER,
                           password_hash=password_hash))
    session.add_all(raters)
    classes = [session.get(SchoolClass, ids[key]) for key in ("class_id", "other_class_id")]
    students = [User(username=f"pupil{i:03d}-{tag}", display_name=f"Pupil {i:03d}",
                     role=Role.STUDENT, password_hash=password_hash) for i in range(n_students)]
    session.add_all(students)
    session.flush()
    for i, student in enumerate(students):
        classes[i % 2].students.append(student)
    rubric = Rubric(name=name)
    version = RubricVersion(rubric=rubric, version=1)
    criteria = [RubricCriterion(rubric_version=version, position=i, code=code, name=code.title(),
                                skill="algebra", levels=LEVELS)
                for i, code in enumerate(CRITERIA)]
    session.add_all([rubric, version, *criteria])
    session.flush()
    built = Scored(rubric_id=rubric.id, version_id=version.id,
                   criterion_ids=[c.id for c in criteria], rater_ids=[r.id for r in raters],
                   severities=severities)
    if pairs is None:
        pairs = [(i % n_raters, (i + 1 + i // n_raters) % n_raters) for i in range(n_students)]
        pairs = [(a, b if b != a else (a + 1) % n_raters) for a, b in pairs]
    theta = rng.normal(size=n_students)
    difficulty = np.array([-0.5, 0.0, 0.5])
    now = datetime.now(UTC)
    rows = []
    for i, student in enumerate(students):  # a test fixture: a few dozen defenses
        klass = classes[i % 2]
        defense = Defense(class_id=klass.id, student_id=student.id, rubric_version_id=version.id,
                          created_by=klass.teacher_id)
        session.add(defense)
        session.flush()
        built.student_ids.append(student.id)
        built.class_of_student[student.id] = klass.id
        built.defense_of_student[student.id] = defense.id
        for r in pairs[i]:
            session.add(DefenseRater(defense_id=defense.id, rater_id=raters[r].id,
                                     submitted_at=now))
            for c in range(len(criteria)):
                rows.append((i, c, r, defense.id))
    i_, c_, r_, d_ = (np.array(x) for x in zip(*rows, strict=True))
    scores = simulate_scores(rng, theta[i_], difficulty[c_], severities[r_])
    objects = [RubricScore(defense_id=int(d), criterion_id=criteria[int(c)].id,
                           rater_id=raters[int(r)].id, score=int(s) + LEVELS[0]["score"])
               for d, c, r, s in zip(d_, c_, r_, scores, strict=True)]
    session.add_all(objects)
    session.flush()
    built.student = [int(i) for i in i_]
    built.criterion = [int(c) for c in c_]
    built.rater = [int(r) for r in r_]
    built.score = [int(s) for s in scores]
    built.score_ids = [o.id for o in objects]
    return built
