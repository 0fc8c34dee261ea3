"""The mastery report from the database (SQLite and PostgreSQL): who may read it, what a student
sees of it, the moment it is made at, rubric scores on the scale, flags and cut scores.

Students take the test "Maths" (cut scores: overall 0.0, algebra 0.5) through the real services
(api.demo.take_test); defenses are scored through the defense services.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from api.demo import take_test
from evidence import defenses
from evidence.models import (
    Rubric,
    RubricCalibration,
    RubricCalibrationStatus,
    RubricCriterion,
    RubricVersion,
)
from reports.population import CACHE
from reports.report import HIDDEN_FROM_STUDENTS, ReportSettings, student_report
from storage import utcnow
from storage.accounts import Role, User
from storage.errors import NotFound
from tests.evidence.defense_helpers import co_teach, levels, make_rubric

MATHS_SKILLS = ["algebra", "geometry", "statistics"]
ITEM_FIELDS = ("source_id", "item_id", "response", "label", "shift")


@pytest.fixture(autouse=True)
def _fresh_population():
    CACHE.clear()
    yield
    CACHE.clear()


def _take(school, name: str, theta: float, days_ago: float, seed: int = 1,
          seconds_per_item: float = 25.0):
    attempt = take_test(school.session, school.user(name), school.ids["test_id"], theta,
                        utcnow() - timedelta(days=days_ago), np.random.default_rng(seed),
                        seconds_per_item=seconds_per_item)
    school.session.commit()
    return attempt


def _report(school, viewer: str, student: str = "student1", **kwargs) -> dict:
    return student_report(school.session, school.user(viewer), school.ids["users"][student],
                          **kwargs)


def _skill(report: dict, name: str) -> dict:
    return next(s for s in report["skills"] if s["skill"] == name)


def _teacher(school, name: str) -> User:
    user = User(username=name, display_name=name.title(), role=Role.TEACHER, password_hash="x")
    school.session.add(user)
    school.session.flush()
    return user


def test_who_may_read_a_report(school) -> None:
    _take(school, "student1", 0.3, days_ago=2)
    for viewer, role in (("student1", "student"), ("teacher1", "teacher"), ("admin1", "admin")):
        report = _report(school, viewer)
        assert report["status"] == "ok" and report["viewer_role"] == role
        assert report["student_id"] == school.ids["users"]["student1"]
        assert [s["skill"] for s in report["skills"]] == MATHS_SKILLS
    for viewer in ("teacher2", "student2", "assessor1"):
        with pytest.raises(NotFound):
            _report(school, viewer)
    with pytest.raises(NotFound):  # no such student, even for an admin
        student_report(school.session, school.user("admin1"), 999_999)
    with pytest.raises(NotFound):  # a teacher is not a student
        student_report(school.session, school.user("admin1"), school.ids["users"]["teacher1"])


def test_no_evidence_yet(school) -> None:
    for viewer, student in (("teacher1", "student2"), ("student2", "student2"),
                            ("admin1", "student3")):
        report = _report(school, viewer, student)
        assert report["status"] == "no_evidence"
        assert report["skills"] == [] and report["overall"] is None
        assert report["trajectory"] == []
        assert report["model"]["half_life_days"] == 180.0


def test_the_report_of_an_attempt(school) -> None:
    attempt = _take(school, "student1", 0.3, days_ago=2)
    report = _report(school, "teacher1")
    skills = report["skills"]
    n_items = sum(s["n_items"] for s in skills)
    assert n_items == report["overall"]["n_items"] == attempt.result["n_scored"]
    for entry in skills:
        # every piece's weight and the prior's share make the whole (each rounded to 4 places)
        total = sum(r["weight"] for r in entry["evidence"]) + entry["prior_weight"]
        assert total == pytest.approx(1.0, abs=5e-5 * (len(entry["evidence"]) + 1))
        lo, hi = entry["interval95"]
        assert lo < entry["theta"] < hi and entry["se"] > 0
        assert all(r["kind"] == "item" and r["attempt_id"] == attempt.id
                   and r["test_name"] == "Maths" for r in entry["evidence"])
        assert {r["label"] for r in entry["evidence"]} <= {"correct", "incorrect"}
        assert all((r["label"] == "correct") == (r["response"] == 1) for r in entry["evidence"])
        # right answers pull the estimate up, wrong ones down
        assert all((r["shift"] > 0) == (r["response"] == 1) for r in entry["evidence"])
    assert [t["attempt_id"] for t in report["trajectory"]] == [attempt.id]
    assert report["trajectory"][0]["theta"] == pytest.approx(attempt.theta, abs=1e-4)


def test_cut_scores_and_their_source(school) -> None:
    _take(school, "student1", 0.3, days_ago=2)
    report = _report(school, "teacher1")
    test = {"test_id": school.ids["test_id"], "test_name": "Maths"}
    algebra, geometry = _skill(report, "algebra"), _skill(report, "geometry")
    assert algebra["cut_score"] == 0.5
    assert algebra["cut_source"] == test | {"key": "algebra"}
    assert geometry["cut_score"] == 0.0  # the test's overall cut
    assert geometry["cut_source"] == test | {"key": "overall"}
    for entry in report["skills"]:
        assert 0.0 <= entry["mastery_probability"] <= 1.0
        assert {"code": "no_cut_score"} not in entry["flags"]
    assert algebra["suggested_decision"] == algebra["decision"]
    assert algebra["decided_by"] == "model"


def test_the_student_sees_no_keys_and_no_staff_flags(school) -> None:
    # answers far faster than a second: every one is a rapid guess (a staff-only flag)
    _take(school, "student1", 0.3, days_ago=2, seconds_per_item=0.3)
    staff = _report(school, "teacher1")
    own = _report(school, "student1")
    assert any(f["code"] == "rapid_guess" for s in staff["skills"] for f in s["flags"])
    for mine, theirs in zip(own["skills"], staff["skills"], strict=True):
        assert mine["theta"] == theirs["theta"] and mine["se"] == theirs["se"]
        assert len(mine["evidence"]) == len(theirs["evidence"])
        for row, full in zip(mine["evidence"], theirs["evidence"], strict=True):
            assert not set(HIDDEN_FROM_STUDENTS) & set(row)
            assert {"weight", "at", "age_days", "decay", "test_name"} <= set(row)
            assert row["weight"] == full["weight"]
            assert set(ITEM_FIELDS) <= set(full)
        assert not {"rapid_guess", "person_misfit"} & {f["code"] for f in mine["flags"]}
        rapid = next(f for f in theirs["flags"] if f["code"] == "rapid_guess")
        assert rapid["count"] == len(theirs["evidence"])
        assert rapid["evidence"] == list(range(len(theirs["evidence"])))


def test_now_ignores_later_evidence_and_ages_follow_it(school) -> None:
    first = _take(school, "student1", -0.5, days_ago=40, seed=1)
    second = _take(school, "student1", 1.0, days_ago=1, seed=2)
    then = utcnow() - timedelta(days=10)
    past = _report(school, "teacher1", now=then)
    assert past["generated_at"] == then.isoformat()
    rows = [r for s in past["skills"] for r in s["evidence"]]
    assert {r["attempt_id"] for r in rows} == {first.id}
    assert [t["attempt_id"] for t in past["trajectory"]] == [first.id]
    for row in rows:
        assert 29.9 < row["age_days"] < 30.1
        assert row["decay"] == pytest.approx(0.5 ** (row["age_days"] / 180.0), abs=2e-4)
    current = _report(school, "teacher1")
    assert {r["attempt_id"] for s in current["skills"] for r in s["evidence"]} == {first.id,
                                                                                    second.id}
    assert [t["attempt_id"] for t in current["trajectory"]] == [first.id, second.id]
    for entry in current["skills"]:
        moments = [r["at"] for r in entry["evidence"]]
        assert moments == sorted(moments, reverse=True)  # newest first
        old = [r for r in entry["evidence"] if r["attempt_id"] == first.id]
        assert all(39.9 < r["age_days"] < 40.1 for r in old)
        # the old attempt's answers count less than the new one's: decay 0.86 against 0.99
        assert all(r["decay"] == pytest.approx(0.5 ** (40 / 180), abs=2e-3) for r in old)
    # a shorter half-life makes the old evidence count for less
    short = _report(school, "teacher1", settings=ReportSettings(half_life_days=10.0))
    for entry in short["skills"]:
        old = [r for r in entry["evidence"] if r["attempt_id"] == first.id]
        assert all(r["decay"] == pytest.approx(0.0625, abs=1e-3) for r in old)


def test_too_little_evidence_follows_the_se_limit(school) -> None:
    _take(school, "student1", 0.3, days_ago=2)
    strict = _report(school, "teacher1", settings=ReportSettings(se_limit=0.01))
    for entry in strict["skills"]:
        assert {"code": "too_little_evidence", "se": entry["se"], "limit": 0.01} in entry["flags"]
    lenient = _report(school, "teacher1", settings=ReportSettings(se_limit=5.0))
    assert not any(f["code"] == "too_little_evidence" for s in lenient["skills"]
                   for f in s["flags"])
    assert strict["model"]["se_limit"] == 0.01


# -- rubric scores -------------------------------------------------------------------------------

CRITERIA = ("reasoning", "clarity", "evidence")  # skills algebra, geometry, statistics
CRITERION = {"model": "gpcm", "a": 1.0, "thresholds": [-1.4, -0.1, 1.3]}


def _defense(school, scores: dict[str, tuple[int, ...]]) -> tuple:
    """A defense of student1 in class 7A scored by two new teachers of student1 (one sheet
    each); returns the defense, the raters and the rubric version."""
    session = school.session
    version = make_rubric(session, codes=CRITERIA)
    raters = [_teacher(school, "rater-harsh"), _teacher(school, "rater-lenient")]
    student = school.ids["users"]["student1"]
    for rater in raters:
        co_teach(session, rater.id, [student], name=f"Club of {rater.username}")
    defense = defenses.schedule(session, school.user("teacher1"), school.ids["class_id"],
                                student, version.rubric_id, title="Defense",
                                raters=[r.id for r in raters])
    for rater in raters:
        defenses.submit_sheet(session, rater, defense, {
            c.id: {"score": s, "note": ""}
            for c, s in zip(version.criteria, scores[rater.username], strict=True)})
    session.commit()
    return defense, raters, version


def _publish(school, version, severities: dict[int, float]) -> None:
    school.session.add(RubricCalibration(
        rubric_version_id=version.id, model="gpcm", status=RubricCalibrationStatus.PUBLISHED,
        criteria={str(c.id): {"code": c.code, "n": 0, "se": None, **CRITERION}
                  for c in version.criteria},
        raters={str(r): {"severity": s, "se": None, "n": 0} for r, s in severities.items()},
        provenance={"test": True}, n_students=0, published_at=utcnow()))
    school.session.commit()


def test_rubric_scores_enter_the_skill_under_a_published_calibration(school) -> None:
    _take(school, "student1", 0.0, days_ago=2)
    before = _report(school, "teacher1")
    defense, (harsh, lenient), version = _defense(
        school, {"rater-harsh": (4, 3, 3), "rater-lenient": (4, 3, 3)})
    # not on the scale yet: listed with the reason, counted in a flag, not in the estimate
    waiting = _report(school, "teacher1")
    algebra = _skill(waiting, "algebra")
    assert algebra["theta"] == _skill(before, "algebra")["theta"]
    assert algebra["n_ratings"] == 0
    assert {"code": "not_on_scale", "count": 2} in algebra["flags"]
    assert len(algebra["not_on_scale"]) == 2
    assert all("no published calibration" in r["reason"] for r in algebra["not_on_scale"])

    _publish(school, version, {harsh.id: 0.5, lenient.id: -0.5})
    report = _report(school, "teacher1")
    for skill, code in zip(MATHS_SKILLS, CRITERIA, strict=True):
        entry = _skill(report, skill)
        assert entry["n_ratings"] == 2 and entry["not_on_scale"] == []
        assert not any(f["code"] == "not_on_scale" for f in entry["flags"])
        rows = [r for r in entry["evidence"] if r["kind"] == "rubric"]
        assert {r["rater_id"]: r["severity"] for r in rows} == {harsh.id: 0.5, lenient.id: -0.5}
        assert all(r["defense_id"] == defense.id and r["criterion_code"] == code
                   and r["score_kind"] == "rating" for r in rows)
        total = sum(r["weight"] for r in entry["evidence"]) + entry["prior_weight"]
        assert total == pytest.approx(1.0, abs=5e-5 * (len(entry["evidence"]) + 1))
        by_rater = {r["rater_id"]: r for r in rows}
        # the same score from a harsher rater says more about the student
        assert by_rater[harsh.id]["shift"] > by_rater[lenient.id]["shift"]
    algebra = _skill(report, "algebra")
    # two top scores (4 of 4) on the algebra criterion raise its estimate
    assert algebra["theta"] > _skill(before, "algebra")["theta"]
    assert all(r["shift"] > 0 and r["label"] == "Excellent" and r["response"] == 4
               for r in algebra["evidence"] if r["kind"] == "rubric")
    assert report["overall"]["n_ratings"] == 6
    # students see their rubric rows whole
    own = _report(school, "student1")
    own_rows = [r for r in _skill(own, "algebra")["evidence"] if r["kind"] == "rubric"]
    assert own_rows == [r for r in algebra["evidence"] if r["kind"] == "rubric"]


def test_rater_disagreement_is_flagged_in_its_skill(school) -> None:
    _take(school, "student1", 0.0, days_ago=2)
    defense, _raters, version = _defense(
        school, {"rater-harsh": (1, 3, 2), "rater-lenient": (4, 2, 2)})
    _publish(school, version, {})
    report = _report(school, "teacher1")
    assert {"code": "rater_disagreement", "count": 1, "defense_ids": [defense.id],
            "criteria": ["reasoning"]} in _skill(report, "algebra")["flags"]
    for skill in ("geometry", "statistics"):  # one level apart or the same: no flag
        assert not any(f["code"] == "rater_disagreement" for f in _skill(report, skill)["flags"])
    # raters without a calibrated severity count at severity 0
    assert {r["severity"] for s in report["skills"] for r in s["evidence"]
            if r["kind"] == "rubric"} == {0.0}


def test_rubric_evidence_alone_and_a_skill_without_a_cut(school) -> None:
    # No answers, only a defense on a criterion of a skill no test sets a cut for.
    session = school.session
    version = RubricVersion(rubric=Rubric(name="Proofs"), version=1)
    RubricCriterion(rubric_version=version, position=0, code="proves", name="Proves",
                    skill="proof", levels=levels())
    session.add(version)
    session.flush()
    teacher = school.user("teacher1")
    defense = defenses.schedule(session, teacher, school.ids["class_id"],
                                school.ids["users"]["student1"], version.rubric_id,
                                title="Defense", raters=[teacher.id])
    defenses.submit_sheet(session, teacher, defense,
                          {version.criteria[0].id: {"score": 3, "note": ""}})
    session.commit()
    _publish(school, version, {teacher.id: 0.2})
    report = _report(school, "teacher1")
    assert report["status"] == "ok" and report["trajectory"] == []
    (proof,) = report["skills"]
    assert proof["skill"] == "proof" and proof["n_ratings"] == 1 and proof["n_items"] == 0
    assert proof["cut_score"] is None and proof["cut_source"] is None
    assert proof["mastery_probability"] is None
    assert proof["suggested_decision"] == "needs_evidence"
    assert {"code": "no_cut_score"} in proof["flags"]
    assert proof["evidence"][0]["severity"] == 0.2


# -- the figures against an independent computation ---------------------------------------------


def _hierarchical(evidence: dict[str, tuple], tau: float, cut: dict[str, float]) -> dict:
    """Each skill's posterior mean and P(theta > cut), and the general ability's mean, by direct
    integration of the model on a fine grid (theta_g ~ N(0, 1), theta_s = theta_g + delta_s,
    delta_s ~ N(0, tau^2), each answer's 2PL likelihood raised to its decay)."""
    fine = np.linspace(-8.0, 8.0, 1601)
    h = fine[1] - fine[0]
    kernel = np.exp(-0.5 * ((fine[None, :] - fine[:, None]) / tau) ** 2) * h / (
        tau * np.sqrt(2 * np.pi))                                    # [g, t]
    lik = {}
    for skill, (a, b, r, decay) in evidence.items():
        p = 1 / (1 + np.exp(-a[:, None] * (fine[None, :] - b[:, None])))
        lik[skill] = np.exp((decay[:, None] * np.log(np.where(r[:, None] == 1, p, 1 - p))
                             ).sum(axis=0))
    marginal = {s: kernel @ lik[s] for s in lik}
    prior_g = np.exp(-0.5 * fine**2)
    out = {}
    for skill in lik:
        general = prior_g * np.prod([marginal[o] for o in lik if o != skill], axis=0)
        post = (general / general.sum()) @ kernel * lik[skill]
        post /= post.sum()
        out[skill] = (post @ fine, post[fine > cut[skill]].sum() + 0.5 * post[fine == cut[skill]]
                      .sum())
    general = prior_g * np.prod(list(marginal.values()), axis=0)
    out["overall"] = (general / general.sum()) @ fine
    return out


def test_the_report_figures_match_the_model_integrated_directly(school) -> None:
    from tests.evidence.rubric_world import operational_bank

    _take(school, "student1", -0.2, days_ago=90, seed=3)
    _take(school, "student1", 0.6, days_ago=5, seed=4)
    report = _report(school, "admin1")
    bank = operational_bank(school.session)  # the items' parameters, read independently
    evidence = {}
    for entry in report["skills"]:
        assert entry["prior"]["tau"] == 0.5 and entry["prior"]["tau_estimated"] is False
        rows = entry["evidence"]
        index = bank.indices_of([str(r["item_id"]) for r in rows])
        decay = np.array([0.5 ** (r["age_days"] / 180.0) for r in rows])
        np.testing.assert_allclose([r["decay"] for r in rows], decay, atol=2e-4)
        evidence[entry["skill"]] = (bank.a[index], bank.b[index],
                                    np.array([r["response"] for r in rows]), decay)
    cut = {"algebra": 0.5, "geometry": 0.0, "statistics": 0.0}
    expected = _hierarchical(evidence, 0.5, cut)
    for entry in report["skills"]:
        theta, probability = expected[entry["skill"]]
        # ages are rounded to 0.01 day in the report (decay off by < 1e-4): 2e-3 covers it
        assert entry["theta"] == pytest.approx(theta, abs=2e-3)
        assert entry["mastery_probability"] == pytest.approx(probability, abs=2e-3)
    assert report["overall"]["theta"] == pytest.approx(expected["overall"], abs=2e-3)
