"""Which rubric scores count: the current score of each rater on each criterion of a defense.

Scores are never changed (:class:`evidence.models.RubricScore` is append-only); a correction is a
new row that names the one it replaces. The *current* score of a rater on a criterion in a
defense is therefore the one that no other row corrects. This module is the one place that says
so; the defense pages, the rater analysis and the rubric calibration all read ratings through it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, aliased

from evidence.models import Defense, DefenseRater, RubricCriterion, RubricScore

RATING = "rating"
ADJUDICATION = "adjudication"


@dataclass(frozen=True)
class Rating:
    """One current score: whose defense, which criterion, which rater, what score, when."""

    score_id: int
    defense_id: int
    student_id: int
    class_id: int
    rubric_version_id: int
    criterion_id: int
    criterion_code: str
    rater_id: int
    kind: str
    score: int
    created_at: datetime


def current_scores():
    """A ``select`` of the current rubric scores (those no correction replaces), joined to their
    defense and criterion, with the columns of :class:`Rating`. Add ``where`` clauses to it."""
    newer = aliased(RubricScore)
    return (
        select(
            RubricScore.id, RubricScore.defense_id, Defense.student_id, Defense.class_id,
            RubricCriterion.rubric_version_id, RubricScore.criterion_id, RubricCriterion.code,
            RubricScore.rater_id, RubricScore.kind, RubricScore.score, RubricScore.created_at,
        )
        .join(Defense, Defense.id == RubricScore.defense_id)
        .join(RubricCriterion, RubricCriterion.id == RubricScore.criterion_id)
        .where(~select(newer.id).where(newer.corrects_id == RubricScore.id).exists())
    )


def current_ratings(
    session: Session,
    rubric_version_ids: Iterable[int],
    *,
    class_ids: Iterable[int] | None = None,
    student_ids: Iterable[int] | None = None,
    kinds: tuple[str, ...] = (RATING,),
    submitted_only: bool = True,
) -> list[Rating]:
    """The current scores given under these rubric versions, oldest first.

    Parameters
    ----------
    session : Session
        An open session.
    rubric_version_ids : iterable of int
        The rubric versions whose criteria were scored.
    class_ids, student_ids : iterable of int, optional
        Only defenses of these classes / of these students (``None``: all).
    kinds : tuple of str
        ``("rating",)`` (default) for the raters' independent scores, the data of the rater
        analysis; add ``"adjudication"`` for the adjudicators' scores too.
    submitted_only : bool
        Only ratings of raters who have submitted their sheet (default); adjudications count
        as soon as they are given, by an assigned adjudicator or by the lead teacher, who has no
        rater row. Cancelled defenses' scores are always left out.

    Returns
    -------
    list of Rating
    """
    query = current_scores().where(
        RubricCriterion.rubric_version_id.in_(list(rubric_version_ids)),
        RubricScore.kind.in_(kinds),
        Defense.cancelled_at.is_(None),
    )
    if class_ids is not None:
        query = query.where(Defense.class_id.in_(list(class_ids)))
    if student_ids is not None:
        query = query.where(Defense.student_id.in_(list(student_ids)))
    if submitted_only:  # an adjudication counts once given (a lead teacher has no rater row)
        query = query.where(or_(
            RubricScore.kind != RATING,
            select(DefenseRater.defense_id)
            .where(DefenseRater.defense_id == RubricScore.defense_id,
                   DefenseRater.rater_id == RubricScore.rater_id,
                   DefenseRater.submitted_at.is_not(None))
            .exists(),
        ))
    rows = session.execute(query.order_by(RubricScore.created_at, RubricScore.id))
    return [Rating(*row) for row in rows]
