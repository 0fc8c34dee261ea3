"""Rubric calibrations as records: running one from the school's answers and ratings, publishing
it (the previous one retired), refusals, and a student's rubric evidence as a likelihood."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from scipy.special import logsumexp
from sqlalchemy import select

from cat_engine import models as irt
from evidence.models import (
    Attempt,
    AttemptStatus,
    Defense,
    DefenseRater,
    Response,
    RubricCalibration,
    RubricCalibrationStatus,
    RubricCriterion,
    RubricScore,
    RubricVersion,
)
from evidence.rubric_calibration import (
    MIN_STUDENTS,
    calibration_view,
    get_version,
    publish_rubric_calibration,
    rubric_evidence,
    run_rubric_calibration,
)
from storage.errors import Conflict, Forbidden, Invalid, NotFound
from tests.evidence.rubric_world import CRITERIA, LEVELS, fill


def _world(school, n: int = 150, seed: int = 5, **kwargs):
    world = fill(school.session, test_id=school.ids["test_id"], class_id=school.ids["class_id"],
                 n_students=n, seed=seed, **kwargs)
    school.session.commit()
    return world


def _rmse(x, y) -> float:
    return float(np.sqrt(np.mean((np.asarray(x) - np.asarray(y)) ** 2)))


def test_a_calibration_is_stored_as_a_draft_with_provenance(school) -> None:
    world = _world(school)
    assessor = school.user("assessor1")
    calibration = run_rubric_calibration(school.session, world.version_id, user=assessor)
    school.session.commit()
    stored = school.session.get(RubricCalibration, calibration.id)
    assert stored.status == RubricCalibrationStatus.DRAFT
    assert stored.model == "gpcm" and stored.n_students == 150
    assert stored.created_by == assessor.id
    assert set(stored.criteria) == {str(c) for c in world.criterion_ids}
    assert set(stored.raters) == {str(r) for r in world.rater_ids}
    first = stored.criteria[str(world.criterion_ids[0])]
    assert set(first) >= {"model", "a", "thresholds", "se"}
    assert first["model"] == "gpcm" and len(first["thresholds"]) == len(LEVELS) - 1
    assert len(first["se"]["thresholds"]) == 3 and first["se"]["a"] > 0
    # close to the truth the ratings were drawn from (150 students: loose bounds)
    thresholds = np.array([stored.criteria[str(c)]["thresholds"] for c in world.criterion_ids])
    severity = np.array([stored.raters[str(r)]["severity"] for r in world.rater_ids])
    assert _rmse(thresholds, world.thresholds) < 0.35
    assert _rmse(severity, world.severity) < 0.25
    assert abs(severity.sum()) < 1e-9
    assert sum(stored.raters[str(r)]["n"] for r in world.rater_ids) == 150 * 2 * len(CRITERIA)
    provenance = stored.provenance
    assert provenance["students"] == 150 and provenance["ratings"] == 1200
    assert provenance["responses"] == 150 * 15 and provenance["converged"] is True
    assert provenance["model"] == "gpcm" and provenance["iterations"] > 0
    assert abs(provenance["latent_mean"] - np.mean(world.theta)) < 0.25
    assert provenance["created_by"]["id"] == assessor.id
    assert "centred at 0" in provenance["identification"]
    assert len(provenance["bank_sha256"]) == 64
    view = calibration_view(school.session, stored)
    assert [c["criterion_code"] if "criterion_code" in c else c["code"] for c in view["criteria"]
            ] == [code for code, _ in CRITERIA]
    assert [r["severity"] for r in view["raters"]] == sorted(severity)
    assert view["rubric_id"] == world.rubric_id and view["version"] == 1


def test_publishing_retires_the_previous_one_in_one_transaction(school) -> None:
    world = _world(school)
    assessor = school.user("assessor1")
    first = run_rubric_calibration(school.session, world.version_id, user=assessor)
    second = run_rubric_calibration(school.session, world.version_id, user=assessor,
                                    model="pcm")
    school.session.commit()
    assert second.criteria[str(world.criterion_ids[0])]["a"] == 1.0
    publish_rubric_calibration(school.session, first.id, user=assessor)
    school.session.commit()
    publish_rubric_calibration(school.session, second.id, user=school.user("admin1"))
    school.session.commit()
    statuses = dict(school.session.execute(
        select(RubricCalibration.id, RubricCalibration.status)).all())
    assert statuses == {first.id: RubricCalibrationStatus.RETIRED,
                        second.id: RubricCalibrationStatus.PUBLISHED}
    assert second.published_by == school.ids["users"]["admin1"]
    with pytest.raises(Conflict, match="is published, not a draft"):
        publish_rubric_calibration(school.session, second.id, user=assessor)
    with pytest.raises(Conflict, match="is retired, not a draft"):
        publish_rubric_calibration(school.session, first.id, user=assessor)


def test_teachers_and_students_may_not_calibrate_or_publish(school) -> None:
    world = _world(school, n=MIN_STUDENTS)
    for name in ("teacher1", "student1"):
        with pytest.raises(Forbidden):
            run_rubric_calibration(school.session, world.version_id, user=school.user(name))
    calibration = run_rubric_calibration(school.session, world.version_id,
                                         user=school.user("admin1"))
    with pytest.raises(Forbidden):
        publish_rubric_calibration(school.session, calibration.id, user=school.user("teacher1"))


def test_too_few_students_no_ratings_and_unknown_versions_are_refused(school) -> None:
    session = school.session
    assessor = school.user("assessor1")
    world = _world(school, n=MIN_STUDENTS - 1)
    with pytest.raises(Invalid, match=rf"only {MIN_STUDENTS - 1} students .* at least "
                                      rf"{MIN_STUDENTS}"):
        run_rubric_calibration(session, world.version_id, user=assessor)
    empty = RubricVersion(rubric_id=world.rubric_id, version=2)
    session.add(empty)
    session.flush()
    session.add(RubricCriterion(rubric_version_id=empty.id, position=0, code="c", name="C",
                                skill="algebra", levels=LEVELS))
    session.flush()
    with pytest.raises(Invalid, match="version 2 of rubric 'Oral defense' has no submitted "
                                      "ratings"):
        run_rubric_calibration(session, empty.id, user=assessor)
    with pytest.raises(NotFound):
        run_rubric_calibration(session, 10**6, user=assessor)
    with pytest.raises(Invalid, match="model must be one of gpcm, pcm"):
        run_rubric_calibration(session, world.version_id, user=assessor, model="grm")
    with pytest.raises(Invalid, match="has no version 7"):
        get_version(session, world.rubric_id, 7)
    assert get_version(session, world.rubric_id, None).id == empty.id
    assert session.scalars(select(RubricCalibration)).all() == []


def test_an_unused_level_and_a_rater_with_few_ratings_are_refused_by_name(school) -> None:
    session = school.session
    world = _world(school, n=120)
    # nobody gave "evidence" its top level: drop those scores by correcting them down
    top = session.scalars(select(RubricScore).where(
        RubricScore.criterion_id == world.criterion_ids[2], RubricScore.score == 4)).all()
    assert top
    session.add_all([RubricScore(defense_id=s.defense_id, criterion_id=s.criterion_id,
                                 rater_id=s.rater_id, score=3, corrects_id=s.id,
                                 reason="rescored") for s in top])
    session.flush()
    with pytest.raises(Invalid, match="no rating used evidence category 3"):
        run_rubric_calibration(session, world.version_id, user=school.user("assessor1"))
    session.rollback()
    # a seventh rater who scored one defense
    defense = session.scalars(select(Defense).where(
        Defense.rubric_version_id == world.version_id)).first()
    teacher2 = school.ids["users"]["teacher2"]
    session.add(DefenseRater(defense_id=defense.id, rater_id=teacher2,
                             submitted_at=datetime.now(UTC)))
    session.add_all([RubricScore(defense_id=defense.id, criterion_id=c, rater_id=teacher2,
                                 score=2) for c in world.criterion_ids])
    session.flush()
    with pytest.raises(Invalid, match=r"fewer than 10 ratings: Teacher2 \(4\)"):
        run_rubric_calibration(session, world.version_id, user=school.user("assessor1"))


# ---------------------------------------------------------------------------------------------
# The rubric evidence of a student


def _posterior_mean(log_lik: np.ndarray, grid: np.ndarray) -> float:
    """EAP on ``grid`` under N(0, 1)."""
    log_post = log_lik - 0.5 * grid**2
    post = np.exp(log_post - logsumexp(log_post))
    return float(post @ grid)


def test_rubric_evidence_shifts_the_eap_by_the_expected_amount(school) -> None:
    session = school.session
    world = _world(school)
    assessor = school.user("assessor1")
    calibration = run_rubric_calibration(session, world.version_id, user=assessor)
    publish_rubric_calibration(session, calibration.id, user=assessor)
    session.commit()
    # a student near the middle, whose rubric and test estimates differ
    student = world.student_ids[int(np.argsort(np.abs(world.theta - 0.5))[3])]
    evidence = rubric_evidence(session, student)
    assert evidence.not_on_scale == []
    assert len(evidence.ratings) == 2 * len(CRITERIA)
    assert len(evidence.bank) == 8 and list(evidence.items) == list(range(8))
    # the student's test likelihood, from their stored answers and the items' parameters
    rows = session.execute(select(Response.item_id, Response.response)
                           .join(Attempt, Attempt.id == Response.attempt_id)
                           .where(Attempt.user_id == student)).all()
    positions = world.bank.indices_of([str(i) for i, _ in rows])
    grid = np.linspace(-6, 6, 481)
    test_ll = irt.log_likelihood(world.bank, positions, [r for _, r in rows], grid)
    # the rubric likelihood, by hand from the stored calibration: GPCM with thresholds+severity
    by_hand = np.zeros_like(grid)
    for rating in evidence.ratings:
        criterion = calibration.criteria[str(rating["criterion_id"])]
        severity = calibration.raters[str(rating["rater_id"])]["severity"]
        steps = np.array(criterion["thresholds"]) + severity
        z = np.vstack([np.zeros_like(grid),
                       np.cumsum(criterion["a"] * (grid[None, :] - steps[:, None]), axis=0)])
        by_hand += z[rating["score"] - 1] - logsumexp(z, axis=0)
        assert rating["severity"] == severity and rating["category"] == rating["score"] - 1
    np.testing.assert_allclose(evidence.log_likelihood(grid), by_hand, atol=1e-9)
    # the EAP (N(0, 1) prior) with the rubric multiplied in, against the hand-made likelihood
    before = _posterior_mean(test_ll, grid)
    after = _posterior_mean(test_ll + evidence.log_likelihood(grid), grid)
    assert after == pytest.approx(_posterior_mean(test_ll + by_hand, grid), abs=1e-9)
    assert abs(after - before) > 0.05
    # on the likelihoods alone: both are log-concave in theta (2PL, GPCM), so the maximum of
    # their product lies between the two maxima, strictly unless they coincide
    fine = np.linspace(-6, 6, 12001)
    test_mle = fine[np.argmax(irt.log_likelihood(world.bank, positions, [r for _, r in rows],
                                                 fine))]
    rubric_mle = fine[np.argmax(evidence.log_likelihood(fine))]
    both_mle = fine[np.argmax(irt.log_likelihood(world.bank, positions, [r for _, r in rows],
                                                 fine) + evidence.log_likelihood(fine))]
    assert abs(rubric_mle - test_mle) > 0.1
    assert min(test_mle, rubric_mle) < both_mle < max(test_mle, rubric_mle)
    # a skill filter keeps that skill's criteria only
    algebra = rubric_evidence(session, student, skill="algebra")
    assert {r["criterion_code"] for r in algebra.ratings} == {"reasoning", "clarity"}
    assert len(algebra.bank) == 4
    shaped = evidence.to_dict()
    assert set(shaped) == {"student_id", "skill", "ratings", "not_on_scale", "items",
                           "responses", "D"}
    assert shaped["items"][0]["model"] == "gpcm" and len(shaped["responses"]) == 8
    assert isinstance(shaped["ratings"][0]["at"], str)


def test_ratings_without_a_published_calibration_are_listed_not_dropped(school) -> None:
    session = school.session
    world = _world(school, n=MIN_STUDENTS)
    student = world.student_ids[0]
    # nothing published yet: every rating is off the scale, with the reason
    evidence = rubric_evidence(session, student)
    assert evidence.ratings == [] and evidence.bank is None
    assert len(evidence.not_on_scale) == 8
    assert evidence.not_on_scale[0]["reason"] == ("version 1 of rubric 'Oral defense' has no "
                                                  "published calibration")
    assert np.all(evidence.log_likelihood([0.0, 1.0]) == 0.0)
    # a draft does not count either
    assessor = school.user("assessor1")
    calibration = run_rubric_calibration(session, world.version_id, user=assessor)
    assert len(rubric_evidence(session, student).not_on_scale) == 8
    publish_rubric_calibration(session, calibration.id, user=assessor)
    # an adjudication by a rater the calibration never saw: on the scale at severity 0
    defense = session.scalars(select(Defense).where(Defense.student_id == student)).one()
    teacher1 = school.ids["users"]["teacher1"]
    session.add(DefenseRater(defense_id=defense.id, rater_id=teacher1, role="adjudicator",
                             submitted_at=datetime.now(UTC)))
    session.add(RubricScore(defense_id=defense.id, criterion_id=world.criterion_ids[0],
                            rater_id=teacher1, kind="adjudication", score=3, reason="settle"))
    session.flush()
    evidence = rubric_evidence(session, student)
    assert evidence.not_on_scale == [] and len(evidence.ratings) == 9
    adjudication = next(r for r in evidence.ratings if r["kind"] == "adjudication")
    assert adjudication["severity"] == 0.0 and adjudication["rater_calibrated"] is False
    assert adjudication["level_label"] == "Level 3" and adjudication["rater_name"] == "Teacher1"
    assert evidence.bank.thresholds[adjudication["item"]].tolist() == pytest.approx(
        calibration.criteria[str(world.criterion_ids[0])]["thresholds"])
    # a student with no defense has no rubric evidence at all
    none = rubric_evidence(session, school.ids["users"]["student3"])
    assert none.ratings == [] and none.not_on_scale == [] and none.bank is None


def test_answers_outside_finished_attempts_and_pretest_answers_do_not_count(school) -> None:
    session = school.session
    world = _world(school, n=MIN_STUDENTS)
    # a student's attempt still in progress: their answers do not count, so one student fewer
    attempt = session.scalars(select(Attempt).where(Attempt.user_id == world.student_ids[0])
                              ).one()
    attempt.status = AttemptStatus.IN_PROGRESS
    session.flush()
    with pytest.raises(Invalid, match=rf"only {MIN_STUDENTS - 1} students"):
        run_rubric_calibration(session, world.version_id, user=school.user("assessor1"))
