"""The current rubric scores: corrections replace, cancelled defenses and unsubmitted sheets do
not count, and the database refuses to change a stored score."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import update
from sqlalchemy.exc import DBAPIError

from evidence.models import (
    Defense,
    DefenseRater,
    Rubric,
    RubricCriterion,
    RubricScore,
    RubricVersion,
)
from evidence.rubric_scores import ADJUDICATION, current_ratings

LEVELS = [{"score": s, "label": f"L{s}", "descriptor": f"level {s}"} for s in (1, 2, 3, 4)]


def _defense(school, student: str) -> tuple[RubricVersion, Defense, list[RubricCriterion]]:
    session = school.session
    rubric = Rubric(name="Oral defense")
    version = RubricVersion(rubric=rubric, version=1)
    criteria = [RubricCriterion(rubric_version=version, position=i, code=code, name=code.title(),
                                skill="algebra", levels=LEVELS)
                for i, code in enumerate(("reasoning", "clarity"))]
    session.add_all([rubric, version, *criteria])
    session.flush()
    defense = Defense(class_id=school.ids["class_id"], student_id=school.ids["users"][student],
                      rubric_version_id=version.id, created_by=school.ids["users"]["teacher1"])
    session.add(defense)
    session.flush()
    return version, defense, criteria


def test_corrections_replace_and_only_submitted_sheets_count(school) -> None:
    session = school.session
    version, defense, (reasoning, clarity) = _defense(school, "student1")
    t1, t2 = school.ids["users"]["teacher1"], school.ids["users"]["teacher2"]
    now = datetime.now(UTC)
    session.add_all([DefenseRater(defense_id=defense.id, rater_id=t1, submitted_at=now),
                     DefenseRater(defense_id=defense.id, rater_id=t2)])  # t2 not submitted
    first = RubricScore(defense_id=defense.id, criterion_id=reasoning.id, rater_id=t1, score=2)
    session.add_all([first,
                     RubricScore(defense_id=defense.id, criterion_id=clarity.id, rater_id=t1,
                                 score=4),
                     RubricScore(defense_id=defense.id, criterion_id=clarity.id, rater_id=t2,
                                 score=1)])
    session.flush()
    session.add(RubricScore(defense_id=defense.id, criterion_id=reasoning.id, rater_id=t1,
                            score=3, corrects_id=first.id, reason="misread the sheet"))
    session.add(RubricScore(defense_id=defense.id, criterion_id=clarity.id, rater_id=t2,
                            kind=ADJUDICATION, score=3, reason="third opinion"))
    session.flush()

    got = {(r.criterion_code, r.rater_id): r.score for r in current_ratings(session, [version.id])}
    assert got == {("reasoning", t1): 3, ("clarity", t1): 4}
    everyone = current_ratings(session, [version.id], submitted_only=False,
                               kinds=("rating", ADJUDICATION))
    assert sorted((r.criterion_code, r.rater_id, r.kind, r.score) for r in everyone) == sorted([
        ("reasoning", t1, "rating", 3), ("clarity", t1, "rating", 4),
        ("clarity", t2, "rating", 1), ("clarity", t2, ADJUDICATION, 3)])
    assert current_ratings(session, [version.id], class_ids=[school.ids["other_class_id"]]) == []

    session.execute(update(Defense).where(Defense.id == defense.id)
                    .values(cancelled_at=datetime.now(UTC)))
    assert current_ratings(session, [version.id]) == []


def test_stored_scores_and_rubric_versions_cannot_change(school) -> None:
    session = school.session
    _, defense, (reasoning, _) = _defense(school, "student2")
    session.add(RubricScore(defense_id=defense.id, criterion_id=reasoning.id,
                            rater_id=school.ids["users"]["teacher1"], score=2))
    session.commit()
    for statement in (update(RubricScore).values(score=4),
                      update(RubricCriterion).values(skill="geometry"),
                      update(RubricVersion).values(description="changed")):
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(statement)
        session.rollback()


def test_a_second_first_score_is_refused(school) -> None:
    session = school.session
    _, defense, (reasoning, _) = _defense(school, "student2")
    t1 = school.ids["users"]["teacher1"]
    session.add(RubricScore(defense_id=defense.id, criterion_id=reasoning.id, rater_id=t1,
                            score=2))
    session.commit()
    session.add(RubricScore(defense_id=defense.id, criterion_id=reasoning.id, rater_id=t1,
                            score=3))
    with pytest.raises(DBAPIError):
        session.flush()


def test_an_adjudication_counts_without_a_submitted_rater_row(school) -> None:
    """The lead teacher adjudicates without being an assigned rater: their score counts."""
    session = school.session
    version, defense, (reasoning, _) = _defense(school, "student2")
    t1 = school.ids["users"]["teacher1"]
    session.add(RubricScore(defense_id=defense.id, criterion_id=reasoning.id, rater_id=t1,
                            kind=ADJUDICATION, score=3, reason="settles a 1-vs-4 split"))
    session.flush()
    got = current_ratings(session, [version.id], kinds=("rating", ADJUDICATION))
    assert [(r.rater_id, r.kind, r.score) for r in got] == [(t1, ADJUDICATION, 3)]
    assert current_ratings(session, [version.id]) == []  # ratings only: none submitted

