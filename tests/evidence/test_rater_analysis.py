"""The rater analysis service: whose scores it reads, how it labels them, what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import update

from calibration.agreement import exact_adjacent_agreement, krippendorff_alpha, rater_agreement
from calibration.raters import Ratings
from evidence import rater_analysis as service
from evidence.models import Defense, DefenseRater, RubricCriterion, RubricScore, RubricVersion
from storage.errors import Conflict, Forbidden, Invalid, NotFound
from tests.evidence.rater_samples import LEVELS, scored_rubric


def expected_agreement(built, keep=None) -> dict:
    """rater_agreement on the simulated arrays themselves (not read back from the database)."""
    student, criterion = np.array(built.student), np.array(built.criterion)
    rater, score = np.array(built.rater), np.array(built.score)
    keep = np.ones(student.size, bool) if keep is None else keep
    _, dense_student = np.unique(student[keep], return_inverse=True)
    used = np.unique(rater[keep])
    return rater_agreement(Ratings(
        student_ids=tuple(str(s) for s in range(dense_student.max() + 1)),
        criterion_ids=("reasoning", "evidence", "clarity"),
        rater_ids=tuple(str(r) for r in used),
        student=dense_student, criterion=criterion[keep],
        rater=np.searchsorted(used, rater[keep]), score=score[keep],
        n_categories=np.array([4, 4, 4]), min_score=np.array([1, 1, 1])))


def test_assessor_analyses_every_class_with_pseudonymous_students(school) -> None:
    built = scored_rubric(school.session, school.ids)
    result = service.analyse_rubric(school.session, built.version_id,
                                    viewer=school.user("assessor1"))
    expected = expected_agreement(built)
    assert result["n_ratings"] == len(built.score) == 40 * 2 * 3
    agreement = result["agreement"]
    for key in ("exact", "adjacent", "krippendorff_alpha_ordinal", "krippendorff_alpha_interval",
                "icc2_1", "icc3_1", "n_units", "n_pairs"):
        assert agreement[key] == pytest.approx(expected[key]), key
    assert agreement["n_units"] == 120
    assert [p["n"] for p in agreement["pairs"]] == [p["n"] for p in expected["pairs"]]
    names = {p for pair in agreement["pairs"] for p in pair["raters"]}
    assert names == {"Teacher1", "Teacher2", "Rater 2", "Rater 3", "Rater 4"}
    assert result["rubric"]["version"] == 1 and result["model"] == "rating-scale"
    assert [c["code"] for c in result["rubric"]["criteria"]] == ["reasoning", "evidence",
                                                                   "clarity"]
    ratings = service.collect_ratings(school.session, school.session.get(
        RubricVersion, built.version_id), viewer=school.user("assessor1"))
    assert all(len(s) == 8 and int(s, 16) >= 0 for s in ratings.student_ids)  # pseudonym prefixes
    assert not any("Pupil" in s for s in ratings.student_ids)
    assert ratings.criterion_ids == ("reasoning", "evidence", "clarity")
    assert list(ratings.n_categories) == [4, 4, 4] and list(ratings.min_score) == [1, 1, 1]
    assert sorted(np.asarray(ratings.score).tolist()) == sorted(built.score)  # 0-based


def test_a_teacher_analyses_only_the_classes_they_teach(school) -> None:
    built = scored_rubric(school.session, school.ids)
    teacher = school.user("teacher1")
    ratings = service.collect_ratings(school.session, school.session.get(
        RubricVersion, built.version_id), viewer=teacher)
    mine = np.array([built.class_of_student[built.student_ids[i]] == school.ids["class_id"]
                     for i in built.student])
    assert len(ratings.score) == int(mine.sum()) == 20 * 2 * 3
    assert set(ratings.student_ids) == {f"Pupil {i:03d}" for i in range(0, 40, 2)}  # names
    result = service.analyse_rubric(school.session, built.version_id, viewer=teacher)
    expected = expected_agreement(built, mine)
    assert result["agreement"]["exact"] == pytest.approx(expected["exact"])
    assert result["agreement"]["icc2_1"] == pytest.approx(expected["icc2_1"])


def test_corrections_count_and_cancelled_defenses_do_not(school) -> None:
    session = school.session
    built = scored_rubric(session, school.ids)
    viewer = school.user("admin1")
    before = service.collect_ratings(session, session.get(RubricVersion, built.version_id),
                                     viewer=viewer)
    # correct the first score to the other end of the scale
    first = session.get(RubricScore, built.score_ids[0])
    new = 4 if first.score <= 2 else 1
    session.add(RubricScore(defense_id=first.defense_id, criterion_id=first.criterion_id,
                            rater_id=first.rater_id, score=new, corrects_id=first.id,
                            reason="misread"))
    session.execute(update(Defense).where(Defense.id == built.defense_of_student[
        built.student_ids[-1]]).values(cancelled_at=datetime.now(UTC)))
    session.flush()
    after = service.collect_ratings(session, session.get(RubricVersion, built.version_id),
                                    viewer=viewer)
    assert len(after.score) == len(before.score) - 6
    scores = np.array(built.score)
    scores[0] = new - 1
    keep = np.array(built.student) != len(built.student_ids) - 1
    unit = np.array(built.student) * 3 + np.array(built.criterion)
    result = service.analyse_rubric(session, built.version_id, viewer=viewer)
    assert result["agreement"]["exact"] == pytest.approx(
        exact_adjacent_agreement(unit[keep], scores[keep]).exact)
    assert result["agreement"]["krippendorff_alpha_ordinal"] == pytest.approx(
        krippendorff_alpha(unit[keep], scores[keep], "ordinal"))


def test_too_little_to_analyse_is_refused_with_the_reason(school) -> None:
    session = school.session
    viewer = school.user("assessor1")
    built = scored_rubric(session, school.ids, n_students=4, n_raters=2)
    # teacher2 teaches class 7B, where nobody scored yet for this second rubric
    empty = scored_rubric(session, school.ids, n_students=2, n_raters=2, seed=2, name="Empty")
    session.execute(update(DefenseRater).where(DefenseRater.defense_id.in_(
        list(empty.defense_of_student.values()))).values(submitted_at=None))
    with pytest.raises(Conflict, match=r"no submitted scores under rubric \d+ version 1 yet"):
        service.analyse_rubric(session, empty.version_id, viewer=viewer)
    # only teacher1's sheets submitted: one rater
    session.execute(update(DefenseRater).where(
        DefenseRater.defense_id.in_(list(built.defense_of_student.values())),
        DefenseRater.rater_id == school.ids["users"]["teacher2"]).values(submitted_at=None))
    with pytest.raises(Conflict, match=r"only one rater \(Teacher1\) has submitted scores"):
        service.analyse_rubric(session, built.version_id, viewer=viewer)
    with pytest.raises(Conflict, match="in the classes you teach"):
        service.analyse_rubric(session, built.version_id, viewer=school.user("teacher2"))


def test_roles_models_and_versions(school) -> None:
    session = school.session
    built = scored_rubric(session, school.ids, n_students=6, n_raters=3)
    with pytest.raises(Forbidden, match="you are student"):
        service.analyse_rubric(session, built.version_id, viewer=school.user("student1"))
    with pytest.raises(Invalid, match="model must be one of rating-scale, partial-credit") as bad:
        service.analyse_rubric(session, built.version_id, viewer=school.user("admin1"),
                               model="facets")
    assert bad.value.field == "model"
    with pytest.raises(NotFound):
        service.analyse_rubric(session, 10**6, viewer=school.user("admin1"))
    rubric = service.get_rubric(session, built.rubric_id)
    # a newer version without scores: the default stays on the scored one
    newer = RubricVersion(rubric_id=rubric.id, version=2)
    session.add(newer)
    session.flush()
    session.add(RubricCriterion(rubric_version_id=newer.id, position=0, code="reasoning",
                                name="Reasoning", skill="algebra", levels=LEVELS))
    session.flush()
    session.refresh(rubric)
    admin = school.user("admin1")
    assert service.resolve_version(session, rubric, None, viewer=admin).version == 1
    assert service.resolve_version(session, rubric, 2, viewer=admin).version == 2
    with pytest.raises(NotFound, match="has no version 3") as missing:
        service.resolve_version(session, rubric, 3, viewer=admin)
    assert missing.value.field == "version"
    assert [v["n_scores"] for v in service.scored_versions(session, rubric, viewer=admin)] == [
        36, 0]
    with pytest.raises(NotFound):
        service.get_rubric(session, 10**6)


def test_the_fit_recovers_the_raters_severities(school) -> None:
    truth = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    built = scored_rubric(school.session, school.ids, n_students=150, severities=truth, seed=4)
    result = service.analyse_rubric(school.session, built.version_id,
                                    viewer=school.user("assessor1"))
    raters = result["raters"]
    assert [r["rater"] for r in raters] == ["Teacher1", "Teacher2", "Rater 2", "Rater 3",
                                            "Rater 4"]
    severity = np.array([r["severity"] for r in raters])
    se = np.array([r["se"] for r in raters])
    assert severity.sum() == pytest.approx(0.0, abs=1e-6)  # raters centred
    assert np.all(np.abs(severity - truth) < 3 * se), (severity, se)
    assert list(np.argsort(severity)) == [0, 1, 2, 3, 4]
    assert sum(r["n"] for r in raters) == result["n_ratings"] == 150 * 2 * 3
    assert len(result["students"]) == 150
    assert all(len(s["student_id"]) == 8 for s in result["students"])  # pseudonym prefixes
    assert [c["criterion"] for c in result["criteria"]] == ["reasoning", "evidence", "clarity"]
    assert [t["step"] for t in result["thresholds"]] == [1, 2, 3]
    assert "centred" in result["identification"] and result["seconds"] > 0


def test_a_disconnected_design_is_refused_naming_the_groups(school) -> None:
    # students 0, 2, ... scored by raters 0 and 1; students 1, 3, ... by raters 2 and 3
    built = scored_rubric(school.session, school.ids, n_students=12, n_raters=4,
                          pairs=[(0, 1) if i % 2 == 0 else (2, 3) for i in range(12)])
    with pytest.raises(Conflict, match=r"raters form 2 groups that share no student: "
                                       r"\{Rater 2, Rater 3\} and \{Teacher1, Teacher2\}"):
        service.analyse_rubric(school.session, built.version_id, viewer=school.user("admin1"))
