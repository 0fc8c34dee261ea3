"""The rater analysis of a rubric version: how the raters differ, from the current scores.

Reads the current independent ratings of a rubric version (:func:`evidence.rubric_scores.
current_ratings` with ``kinds=("rating",)``: submitted, not cancelled, corrections applied), turns
them into the arrays of :class:`calibration.raters.Ratings`, and runs the many-facet Rasch model
(:func:`calibration.raters.fit_mfrm`) and the agreement statistics
(:func:`calibration.agreement.rater_agreement`). No HTTP; nothing is written.

Who sees what
    Assessors and administrators analyse every defense scored under the version; a teacher only
    the defenses of the classes they teach (``SchoolClass.teacher_id``), so a teacher's analysis
    is of their own students. Students may not run it. Students are named by display name for a
    teacher (they are the teacher's own students) and by the first 8 characters of their
    pseudonym for assessors and administrators, who need no names to judge raters.

Too little to analyse
    No scores, scores by one rater only, or a design in which two groups of raters never score
    the same student (the model cannot put them on one scale) are refused with a
    :class:`storage.errors.Conflict` that says which, naming the groups.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from calibration.agreement import AgreementError, rater_agreement
from calibration.raters import MODELS as MFRM_MODELS
from calibration.raters import Ratings, RatingsError, fit_mfrm
from evidence.models import Rubric, RubricVersion
from evidence.rubric_scores import RATING, current_ratings
from evidence.rubrics import get_rubric  # noqa: F401  (the rater pages and API find it here)
from storage.accounts import Role, SchoolClass, User
from storage.errors import Conflict, Forbidden, Invalid, NotFound

#: The models the analysis can fit (``--model`` of ``cat-engine raters``).
MODELS = MFRM_MODELS
#: Roles that may run the analysis.
ANALYSTS = (Role.TEACHER, Role.ASSESSOR, Role.ADMIN)
#: Characters of the pseudonym that name a student for assessors and administrators.
PSEUDONYM_CHARS = 8


def _check_viewer(viewer: User) -> None:
    if viewer.role not in ANALYSTS:
        raise Forbidden(
            f"the rater analysis needs the role teacher, assessor or admin; you are "
            f"{viewer.role.value}"
        )


def _class_ids(session: Session, viewer: User) -> list[int] | None:
    """The classes whose defenses ``viewer`` analyses (None: all of them)."""
    if viewer.role == Role.TEACHER:
        return list(session.scalars(select(SchoolClass.id)
                                    .where(SchoolClass.teacher_id == viewer.id)))
    if viewer.role == Role.ADMIN and viewer.school_id is not None:
        return list(session.scalars(select(SchoolClass.id)
                                    .where(SchoolClass.school_id == viewer.school_id)))
    return None


def scored_versions(session: Session, rubric: Rubric, *, viewer: User) -> list[dict[str, Any]]:
    """The versions of ``rubric`` with how many current ratings ``viewer`` may analyse in each.

    Returns
    -------
    list of dict
        ``{"version", "rubric_version_id", "n_scores"}`` for every version, oldest first.
    """
    _check_viewer(viewer)
    class_ids = _class_ids(session, viewer)
    counts = {}
    for version in rubric.versions:
        counts[version.id] = len(current_ratings(session, [version.id], class_ids=class_ids,
                                                 kinds=(RATING,)))
    return [{"version": v.version, "rubric_version_id": v.id, "n_scores": counts[v.id]}
            for v in rubric.versions]


def resolve_version(session: Session, rubric: Rubric, version: int | None, *,
                    viewer: User) -> RubricVersion:
    """Version ``version`` of ``rubric``, or by default the latest one with scores the viewer may
    analyse (the latest version when none has any).

    Raises
    ------
    NotFound
        The rubric has no such version (or no version at all).
    """
    _check_viewer(viewer)
    if version is not None:
        found = next((v for v in rubric.versions if v.version == version), None)
        if found is None:
            raise NotFound(f"rubric {rubric.id} has no version {version}", field="version")
        return found
    if not rubric.versions:
        raise NotFound(f"rubric {rubric.id} has no versions yet")
    counts = scored_versions(session, rubric, viewer=viewer)
    with_scores = [v for v, c in zip(rubric.versions, counts, strict=True) if c["n_scores"]]
    return (with_scores or rubric.versions)[-1]


def _names(users: list[User]) -> dict[int, str]:
    """Display names (username when empty), made unique by adding the username."""
    names = {u.id: (u.display_name or u.username) for u in users}
    taken: dict[str, int] = {}
    for name in names.values():
        taken[name] = taken.get(name, 0) + 1
    return {u.id: (names[u.id] if taken[names[u.id]] == 1 else f"{names[u.id]} ({u.username})")
            for u in users}


def _student_labels(users: list[User], viewer: User) -> dict[int, str]:
    if viewer.role == Role.TEACHER:
        return _names(users)
    return {u.id: u.pseudonym[:PSEUDONYM_CHARS] for u in users}


def collect_ratings(session: Session, version: RubricVersion, *, viewer: User):
    """The ratings of ``version`` that ``viewer`` may analyse, as :class:`calibration.raters.
    Ratings` (0-based scores; criteria labelled by code, raters by display name, students by
    display name for a teacher and by pseudonym prefix for others).

    Raises
    ------
    Forbidden
        A student.
    Conflict
        No scores, or scores by one rater only.
    """
    _check_viewer(viewer)
    class_ids = _class_ids(session, viewer)
    rows = current_ratings(session, [version.id], class_ids=class_ids, kinds=(RATING,))
    where = (f"rubric {version.rubric_id} version {version.version}"
             + (" in the classes you teach" if class_ids is not None else ""))
    if not rows:
        raise Conflict(f"no submitted scores under {where} yet: there is nothing to analyse")
    criteria = list(version.criteria)
    position = {c.id: i for i, c in enumerate(criteria)}
    rater_ids = sorted({r.rater_id for r in rows})
    student_ids = sorted({r.student_id for r in rows})
    users = {u.id: u for u in session.scalars(
        select(User).where(User.id.in_(set(rater_ids) | set(student_ids))))}
    rater_names = _names([users[i] for i in rater_ids])
    if len(rater_ids) < 2:
        raise Conflict(
            f"only one rater ({rater_names[rater_ids[0]]}) has submitted scores under {where}: "
            "comparing raters needs scores by at least two"
        )
    student_names = _student_labels([users[i] for i in student_ids], viewer)
    minimum = np.array([c.levels[0]["score"] for c in criteria], dtype=np.int64)
    n_categories = np.array([len(c.levels) for c in criteria], dtype=np.int64)
    criterion = np.array([position[r.criterion_id] for r in rows], dtype=np.int64)
    score = np.array([r.score for r in rows], dtype=np.int64) - minimum[criterion]
    if np.any((score < 0) | (score >= n_categories[criterion])):  # the scoring service refuses
        bad = rows[int(np.flatnonzero((score < 0) | (score >= n_categories[criterion]))[0])]
        raise Invalid(f"score {bad.score_id} ({bad.score}) is outside the levels of criterion "
                      f"{bad.criterion_code}")
    rater_index = {rid: i for i, rid in enumerate(rater_ids)}
    student_index = {sid: i for i, sid in enumerate(student_ids)}
    return Ratings(
        student_ids=tuple(student_names[i] for i in student_ids),
        criterion_ids=tuple(c.code for c in criteria),
        rater_ids=tuple(rater_names[i] for i in rater_ids),
        student=np.array([student_index[r.student_id] for r in rows], dtype=np.int64),
        criterion=criterion,
        rater=np.array([rater_index[r.rater_id] for r in rows], dtype=np.int64),
        score=score,
        n_categories=n_categories,
        min_score=minimum,
        rows=np.array([r.score_id for r in rows], dtype=np.int64),
    )


def analyse_rubric(session: Session, rubric_version_id: int, *, viewer: User,
                   model: str = "rating-scale") -> dict[str, Any]:
    """The rater analysis of one rubric version, as the JSON ``cat-engine raters`` writes.

    Parameters
    ----------
    session : Session
    rubric_version_id : int
        The rubric version whose current ratings are analysed.
    viewer : User
        A teacher (their classes' defenses only), an assessor or an administrator.
    model : {"rating-scale", "partial-credit"}
        Andrich thresholds shared by all criteria, or thresholds per criterion.

    Returns
    -------
    dict
        ``raters``, ``criteria``, ``thresholds``, ``students``, ``log_likelihood``, ``seconds``
        and the rest of the fit's JSON, ``agreement`` (:func:`calibration.agreement.
        rater_agreement`), and ``rubric`` (id, name, version, version id, criteria with their
        levels), ``model``, ``n_ratings``.

    Raises
    ------
    NotFound
        No such rubric version.
    Invalid
        An unknown model (field ``model``).
    Forbidden
        A student.
    Conflict
        No scores, one rater only, or a disconnected design (the groups named).
    """
    _check_viewer(viewer)
    if model not in MODELS:
        raise Invalid(f"model must be one of {', '.join(MODELS)}, not {model!r}", field="model")
    version = session.get(RubricVersion, rubric_version_id)
    if version is None:
        raise NotFound(f"no rubric version {rubric_version_id}")
    ratings = collect_ratings(session, version, viewer=viewer)
    try:
        agreement = rater_agreement(ratings)
    except AgreementError as error:  # pragma: no cover - the scoring rules prevent it
        raise Conflict(str(error)) from None
    try:
        fit = fit_mfrm(ratings, model=model)
    except RatingsError as error:  # a disconnected design (the groups named), unusable levels
        raise Conflict(str(error)) from None
    result = fit.to_dict()
    result["seconds"] = fit.seconds
    result["agreement"] = agreement
    result["model"] = model
    result["n_ratings"] = ratings.n
    result["rubric"] = {
        "id": version.rubric_id, "name": version.rubric.name, "version": version.version,
        "rubric_version_id": version.id,
        "criteria": [{"code": c.code, "name": c.name, "levels": c.levels}
                     for c in version.criteria],
    }
    return result

