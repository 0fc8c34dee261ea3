"""The class dashboard's aggregates, against figures worked out by hand on small classes.

The pure part (:func:`reports.dashboard.aggregate` and its helpers) runs on hand-written report
dicts of the contract's shape, so every expected figure below is computed here independently
(statistics module, a t quantile from tables), not by the code under test.
"""

from __future__ import annotations

import copy
import statistics
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select

from evidence.models import Attempt, Response
from item_bank.models import Item
from reports import dashboard
from storage import as_utc
from tests.delivery_ui.conftest import _world_templates, sqlite_world  # noqa: F401

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
T975_DF4 = 2.7764451051977987  # Student's t, 97.5th percentile, 4 degrees of freedom (tables)


def piece(attempt: int, minutes: float, item: int = 1, **extra) -> dict:
    """An item answer of ``attempt``, ``minutes`` after T0."""
    return {"kind": "item", "item_id": item, "source_id": f"IT-{item}", "attempt_id": attempt,
            "test_name": "Maths", "at": (T0 + timedelta(minutes=minutes)).isoformat(), **extra}


def rubric(defense: int, minutes: float) -> dict:
    return {"kind": "rubric", "defense_id": defense, "criterion_code": "explains",
            "at": (T0 + timedelta(minutes=minutes)).isoformat()}


def skill(name: str, theta: float, p: float | None = None, decision: str = "needs_evidence",
          *, by: str = "model", suggested: str | None = None, flags=(), evidence=()) -> dict:
    return {"skill": name, "theta": theta, "se": 0.3,
            "interval95": [round(theta - 0.588, 4), round(theta + 0.588, 4)],
            "cut_score": None if p is None else 0.0, "mastery_probability": p,
            "suggested_decision": suggested or decision, "decision": decision,
            "decided_by": by, "flags": list(flags), "evidence": list(evidence)}


def report(sid: int, *skills: dict, overall: float | None = 0.0) -> dict:
    return {"student_id": sid, "student": {"id": sid, "name": f"Student{sid}"},
            "status": "ok" if skills else "no_evidence",
            "overall": None if not skills else {"theta": overall, "se": 0.2},
            "skills": sorted(skills, key=lambda s: s["skill"])}


def test_grid_columns_are_the_union_of_skills_and_missing_cells_are_empty() -> None:
    reports = [report(1, skill("fractions", 0.5, 0.8, flags=[{"code": "too_little_evidence"},
                                                              {"code": "no_cut_score"}])),
               report(2, skill("algebra", -0.2, None, "mastered", by="teacher",
                               suggested="needs_evidence")),
               report(3)]
    skills, rows = dashboard.grid(reports)
    assert skills == ["algebra", "fractions"]
    assert [r["student"] for r in rows] == [{"id": i, "name": f"Student{i}"} for i in (1, 2, 3)]
    first, second, third = rows
    assert first["cells"][0] is None and first["cells"][1]["probability"] == 0.8
    # no_cut_score concerns the test, not the student
    assert first["cells"][1]["flags"] == ["too_little_evidence"]
    assert second["cells"][0]["decided_by"] == "teacher"
    assert second["cells"][0]["decision"] == "mastered"
    assert second["cells"][0]["suggested_decision"] == "needs_evidence"
    assert third["status"] == "no_evidence" and third["cells"] == [None, None]


def test_flagged_lists_students_with_student_flags_and_what_drives_them() -> None:
    evidence = [piece(7, 30, item=4), piece(7, 20, item=3), piece(5, 0, item=2)]
    flags = [{"code": "rapid_guess", "count": 2, "evidence": [0, 2]},
             {"code": "person_misfit", "count": 1, "attempt_ids": [7]},
             {"code": "no_cut_score"}]
    quiet = report(2, skill("fractions", 0.1, flags=[{"code": "no_cut_score"}]))
    loud = report(1, skill("fractions", 0.1, flags=flags, evidence=evidence),
                  skill("geometry", 0.0, flags=[
                      {"code": "rater_disagreement", "count": 1, "defense_ids": [3],
                       "criteria": ["explains"]},
                      {"code": "too_little_evidence", "se": 0.71, "limit": 0.5}]))
    out = dashboard.flagged([quiet, loud])
    assert [s["student"]["id"] for s in out] == [1]
    fractions, geometry = out[0]["skills"]
    assert [f["code"] for f in fractions["flags"]] == ["rapid_guess", "person_misfit"]
    guesses = fractions["flags"][0]["drivers"]
    assert [(d["source_id"], d["attempt_id"]) for d in guesses] == [("IT-4", 7), ("IT-2", 5)]
    assert fractions["flags"][1]["drivers"] == [
        {"kind": "attempt", "attempt_id": 7, "test_name": "Maths"}]
    assert geometry["flags"][0]["drivers"] == [
        {"kind": "defense", "defense_id": 3, "criteria": ["explains"]}]
    assert geometry["flags"][1]["drivers"] == [{"kind": "precision", "se": 0.71, "limit": 0.5}]
    counts = {c["skill"]: c["counts"] for c in dashboard.flag_counts(
        [quiet, loud], ["fractions", "geometry"])}
    assert counts["fractions"] == {"rapid_guess": 1, "person_misfit": 1,
                                   "rater_disagreement": 0, "too_little_evidence": 0}
    assert counts["geometry"]["too_little_evidence"] == 1


class FakeReports:
    """``report_at`` over a fixed table: the skill entry as of the end of each attempt."""

    def __init__(self, sid: int, table: dict[datetime, dict]) -> None:
        self.sid, self.table, self.calls = sid, table, []

    def __call__(self, moment: datetime) -> dict:
        self.calls.append(moment)
        return report(self.sid, *self.table[moment])


def test_timeline_first_estimate_and_time_to_mastery_by_the_model() -> None:
    day = 24 * 60
    # fractions: attempt 1 (T0 .. T0+20 min), attempt 2 (day 10), defense 3 (day 12)
    evidence = [rubric(3, 12 * day), piece(2, 10 * day + 5), piece(2, 10 * day),
                piece(1, 20), piece(1, 0)]
    end1, end2, end3 = (T0 + timedelta(minutes=m) for m in (25, 10 * day + 5, 12 * day))
    other = piece(1, 25)  # another skill's answer ends attempt 1 later than fractions' last
    now = report(1, skill("fractions", 1.4, 0.97, "mastered", evidence=evidence),
                 skill("algebra", 0.2, 0.6, evidence=[other]))
    fake = FakeReports(1, {
        end1: [skill("fractions", -0.5, 0.2, "not_mastered"), skill("algebra", 0.2, 0.6)],
        end2: [skill("fractions", 0.9, 0.8, "needs_evidence"), skill("algebra", 0.2, 0.6)],
        end3: [skill("fractions", 1.3, 0.95, "mastered"), skill("algebra", 0.2, 0.6)],
    })
    line = dashboard.timeline(now, fake)
    fractions = line["fractions"]
    assert fractions["first_at"] == T0
    assert fractions["first"]["theta"] == -0.5
    assert fractions["n_sources"] == 3
    assert fractions["mastered_at"] == end3
    assert fractions["days_to_mastery"] == pytest.approx(12.0)
    assert sorted(set(fake.calls)) == [end1, end2]  # after the last attempt: the report now
    # algebra: one attempt only, so no first estimate to compare with; not mastered
    assert line["algebra"]["first"] is None and line["algebra"]["mastered_at"] is None


def test_timeline_a_teacher_decision_before_the_model_counts_and_stops_the_walk() -> None:
    day = 24 * 60
    evidence = [piece(2, 10 * day), piece(1, 0)]
    end1, end2 = T0, T0 + timedelta(days=10)
    now = report(1, skill("fractions", 1.4, 0.97, "mastered", by="teacher", evidence=evidence))
    fake = FakeReports(1, {end1: [skill("fractions", -0.5, 0.2, "not_mastered")],
                           end2: [skill("fractions", 1.3, 0.95, "mastered")]})
    decided = T0 + timedelta(days=4, hours=12)
    line = dashboard.timeline(now, fake, {"fractions": decided})
    assert line["fractions"]["mastered_at"] == decided
    assert line["fractions"]["days_to_mastery"] == pytest.approx(4.5)
    assert set(fake.calls) == {end1}  # the walk stopped at the teacher's decision


def test_metrics_against_a_hand_computation() -> None:
    day = 24 * 60
    two = [piece(2, 10 * day), piece(1, 0)]
    reports = [
        report(1, skill("fractions", 1.0, 0.9, "mastered", evidence=two)),
        report(2, skill("fractions", 0.2, 0.55, evidence=two)),
        report(3, skill("fractions", -0.4, 0.1, "not_mastered", evidence=[piece(1, 0)])),
        report(4, skill("fractions", 0.8, None, "mastered", by="teacher", evidence=two)),
    ]
    firsts = {1: (0.1, 0.4), 2: (0.5, 0.7), 4: (0.0, None)}
    timelines = {
        sid: {"fractions": {"first": None if sid not in firsts else skill(
            "fractions", firsts[sid][0], firsts[sid][1]),
            "days_to_mastery": {1: 10.0, 4: 3.0}.get(sid)}}
        for sid in (1, 2, 3, 4)}
    (row,) = dashboard.metrics(reports, timelines, ["fractions"])
    assert row["n_students"] == 4
    assert row["gain"]["n"] == 3 and row["gain"]["n_single_source"] == 1
    assert row["gain"]["theta"] == pytest.approx(statistics.mean([0.9, -0.3, 0.8]), abs=1e-4)
    assert row["gain"]["n_probability"] == 2  # student 4 has no probability (no cut score)
    assert row["gain"]["probability"] == pytest.approx(statistics.mean([0.5, -0.15]), abs=1e-4)
    assert row["time_to_mastery"] == {"n": 2, "median_days": 6.5, "mean_days": 6.5,
                                      "n_not_yet": 2}
    assert row["share_mastered"] == {"n": 4, "mastered": 2, "share": 0.5}


def test_fairness_figures_and_groups_too_small_to_compare() -> None:
    thetas = [0.3, -0.1, 0.9, 0.4, -0.6]
    decisions = ["mastered", "not_mastered", "mastered", "needs_evidence", "not_mastered"]
    reports = [report(i + 1, skill("fractions", t, 0.5, d), overall=t / 2)
               for i, (t, d) in enumerate(zip(thetas, decisions, strict=True))]
    reports += [report(6, skill("fractions", 2.0, 0.99, "mastered"), overall=1.0),
                report(7, skill("fractions", 1.5, 0.9, "mastered"), overall=0.8), report(8)]
    groups = {i: {"time_accommodation": "standard"} for i in range(1, 6)}
    groups |= {6: {"time_accommodation": "extended"}, 7: {"time_accommodation": "extended"},
               8: {"time_accommodation": "extended"}}
    (variable,) = dashboard.fairness(reports, groups, ["fractions"])
    assert variable["variable"] == "time_accommodation"
    standard, extended = variable["groups"]
    assert extended == {"group": "extended", "too_few": True, "n": None, "overall": None,
                        "skills": None}
    assert standard["group"] == "standard" and not standard["too_few"] and standard["n"] == 5
    (row,) = standard["skills"]
    assert row["rates"] == {"mastered": 0.4, "not_mastered": 0.4, "needs_evidence": 0.2}
    mean, sd = statistics.mean(thetas), statistics.stdev(thetas)
    half = T975_DF4 * sd / 5 ** 0.5
    assert row["theta"]["mean"] == pytest.approx(mean, abs=1e-4)
    assert row["theta"]["interval95"] == pytest.approx([mean - half, mean + half], abs=1e-4)
    overall = [t / 2 for t in thetas]
    assert standard["overall"]["theta"]["mean"] == pytest.approx(statistics.mean(overall),
                                                                 abs=1e-4)


def test_dif_flags_of_the_items_behind_each_skill() -> None:
    rows = [{"reference": "en", "focal": "es", "category": "C", "statistic": "delta_mh",
             "value": -1.8, "p_value": 0.001, "favours": "reference"},
            {"reference": "en", "focal": "es", "category": "A", "statistic": "smd",
             "value": 0.01, "p_value": 0.8, "favours": None}]
    items = {1: {"code": "IT-1", "run_id": 9, "dif": rows},
             2: {"code": "IT-2", "run_id": 9, "dif": []},
             3: {"code": "IT-3", "run_id": None, "dif": None}}
    out = dashboard.dif_flags({"fractions": [1, 2, 3, 1], "algebra": []}, items,
                              ["algebra", "fractions"])
    assert out[0] == {"skill": "algebra", "n_items": 0, "n_checked": 0, "flags": []}
    assert out[1]["n_items"] == 3 and out[1]["n_checked"] == 2
    assert out[1]["flags"] == [{"item_id": 1, "code": "IT-1", "run_id": 9, **rows[0]}]


def test_aggregate_takes_the_items_from_the_evidence() -> None:
    reports = [report(1, skill("fractions", 0.1, evidence=[piece(1, 0, item=5), rubric(2, 3)]))]
    out = dashboard.aggregate(reports, timelines={}, groups={},
                              items_dif={5: {"code": "IT-5", "run_id": None, "dif": None}})
    assert out["skills"] == ["fractions"] and out["fairness"] == []
    assert out["dif"] == [{"skill": "fractions", "n_items": 1, "n_checked": 0, "flags": []}]


# -- from the database: the lead's student_report for each student, aggregated -------------------


@pytest.fixture
def school(sqlite_world):  # noqa: F811
    """Class 7A (teacher1): student1 took the test twice (20 and 2 days ago, much stronger the
    second time), student2 once (15 days ago) and has extended time; a teacher decided
    student2's algebra "mastered" 5 days ago; a stored calibration run found DIF (category C) in
    one algebra item student1 answered."""
    from api.demo import take_test
    from item_bank.models import AdaptiveTest, CalibrationRun, RunStatus
    from reports.models import MasteryDecision
    from storage import utcnow
    from storage.accounts import Accommodation, TimeAccommodation, User

    world = sqlite_world
    users = world.ids["users"]
    now = utcnow()
    rng = np.random.default_rng(3)
    with world.db() as session:
        test = session.get(AdaptiveTest, world.test_id)  # api.demo.take_test answers no pretest
        test.config = {k: v for k, v in test.config.items() if k != "pretest"}
    with world.db() as session:
        one, two = session.get(User, users["student1"]), session.get(User, users["student2"])
        take_test(session, one, world.test_id, 0.0, now - timedelta(days=20), rng)
        take_test(session, one, world.test_id, 3.5, now - timedelta(days=2), rng)
        take_test(session, two, world.test_id, -1.0, now - timedelta(days=15), rng)
        session.add(Accommodation(user_id=two.id, time=TimeAccommodation.EXTENDED))
        session.add(MasteryDecision(student_id=two.id, skill="algebra", decision="mastered",
                                    reason="Showed it in class", decided_by=users["teacher1"],
                                    decided_at=now - timedelta(days=5),
                                    suggested_decision="not_mastered"))
        answered = session.scalar(
            select(Item).join(Response, Response.item_id == Item.id).join(Attempt)
            .where(Attempt.user_id == one.id, Item.skill == "algebra", Response.scored)
            .limit(1))
        row = {"reference": "en", "focal": "es", "category": "C", "statistic": "delta_mh",
               "value": -1.9, "p_value": 0.001, "favours": "reference"}
        run = CalibrationRun(kind="upload", model="2pl", status=RunStatus.PUBLISHED, result={
            "dif": {"reference": "en", "reports": []},
            "items": [{"item_id": answered.code, "dif": [row]}]})
        session.add(run)
        session.flush()
        answered.active_parameters.calibration_run_id = run.id
    return world, now, answered.id, answered.code, row


def _evidence_times(session, student_id: int, skill: str) -> list[tuple[int, datetime]]:
    """(attempt id, answered_at) of the student's scored answers to the skill's items."""
    rows = session.execute(
        select(Attempt.id, Response.answered_at).join(Response, Response.attempt_id == Attempt.id)
        .join(Item, Item.id == Response.item_id)
        .where(Attempt.user_id == student_id, Item.skill == skill, Response.scored))
    return [(a, as_utc(t)) for a, t in rows]


def _attempt_end(session, attempt_id: int) -> datetime:
    return as_utc(session.scalar(select(func.max(Response.answered_at)).where(
        Response.attempt_id == attempt_id, Response.scored)))


def test_the_class_dashboard_aggregates_the_students_reports(school) -> None:
    from reports.report import student_report
    from storage.accounts import User

    world, now, item_id, code, dif_row = school
    users = world.ids["users"]
    with world.db() as session:
        teacher = session.get(User, users["teacher1"])
        out = dashboard.class_dashboard(session, teacher, world.ids["class_id"], now=now)
        reports = {sid: student_report(session, teacher, sid, now=now)
                   for sid in (users["student1"], users["student2"])}
        # reports the caller made already (the class pack) are used, not made again
        assert dashboard.class_dashboard(session, teacher, world.ids["class_id"], now=now,
                                         reports=reports) == out
        given = copy.deepcopy(reports)
        given[users["student1"]]["skills"][0]["theta"] = 9.0
        again = dashboard.class_dashboard(session, teacher, world.ids["class_id"], now=now,
                                          reports=given)
        assert next(filter(None, again["grid"][0]["cells"]))["theta"] == 9.0
        # the grid is the reports' figures, student by student and skill by skill
        assert [r["student"]["id"] for r in out["grid"]] == [users["student1"], users["student2"]]
        for row in out["grid"]:
            own = {s["skill"]: s for s in reports[row["student"]["id"]]["skills"]}
            assert sorted(own) == [s for s, c in zip(out["skills"], row["cells"], strict=True)
                                   if c is not None]
            for cell in filter(None, row["cells"]):
                entry = own[cell["skill"]]
                assert (cell["probability"], cell["theta"], cell["interval95"],
                        cell["decision"], cell["decided_by"]) == (
                    entry["mastery_probability"], entry["theta"], entry["interval95"],
                    entry["decision"], entry["decided_by"])
        # gain: student1 only (student2 has one attempt); the estimate after attempt 1, anew
        times = {sid: _evidence_times(session, sid, "algebra") for sid in reports}
        first_attempt = min(times[users["student1"]], key=lambda at: at[1])[0]
        end = _attempt_end(session, first_attempt)
        before = {s["skill"]: s for s in student_report(
            session, teacher, users["student1"], now=end)["skills"]}["algebra"]
        after = {s["skill"]: s for s in reports[users["student1"]]["skills"]}["algebra"]
        (metric,) = [m for m in out["metrics"] if m["skill"] == "algebra"]
        assert metric["gain"]["n"] == 1 and metric["gain"]["n_single_source"] == 1
        assert metric["gain"]["theta"] == pytest.approx(after["theta"] - before["theta"],
                                                        abs=2e-4)
        assert metric["gain"]["probability"] == pytest.approx(
            after["mastery_probability"] - before["mastery_probability"], abs=2e-4)
        # time to mastery: student2 by the teacher's decision (the model said not mastered
        # after the one attempt); student1 by the model, if mastered now, at the first attempt
        # end after which the report suggested it
        days = []
        for sid, decided in ((users["student1"], None),
                             (users["student2"], now - timedelta(days=5))):
            entry = {s["skill"]: s for s in reports[sid]["skills"]}["algebra"]
            if entry["decision"] != "mastered":
                continue
            first = min(t for _, t in times[sid])
            ends = sorted({_attempt_end(session, a) for a, _ in times[sid]})
            def suggested(moment, sid=sid, ends=ends):  # after the last attempt: the report now
                then = reports[sid] if moment == ends[-1] else student_report(
                    session, teacher, sid, now=moment)
                return {s["skill"]: s for s in then["skills"]}["algebra"]["suggested_decision"]

            reached = next((e for e in ends if (decided is None or e < decided)
                            and suggested(e) == "mastered"), decided)
            days.append((reached - first).total_seconds() / 86400)
        assert days, "the school must have a student mastered now, or this proves nothing"
        assert metric["time_to_mastery"]["n"] == len(days)
        assert metric["time_to_mastery"]["mean_days"] == pytest.approx(np.mean(days), abs=0.06)
        mastered = sum({s["skill"]: s for s in r["skills"]}["algebra"]["decision"] == "mastered"
                       for r in reports.values())
        assert metric["share_mastered"] == {"n": 2, "mastered": mastered,
                                            "share": round(mastered / 2, 4)}
        # fairness: one student per group, so no group is compared and none shows a figure
        (variable,) = out["fairness"]
        assert {g["group"] for g in variable["groups"]} == {"standard", "extended"}
        assert all(g["too_few"] and g["n"] is None and g["skills"] is None
                   for g in variable["groups"])
        # DIF: the stored run's flag of the algebra item
        (dif,) = [d for d in out["dif"] if d["skill"] == "algebra"]
        assert dif["n_checked"] == 1 and dif["n_items"] >= 1
        assert dif["flags"] == [{"item_id": item_id, "code": code,
                                 "run_id": dif["flags"][0]["run_id"], **dif_row}]


def test_only_the_class_teacher_and_admins_see_the_dashboard(school) -> None:
    from storage.accounts import User
    from storage.errors import NotFound

    world, now, *_ = school
    users = world.ids["users"]
    with world.db() as session:
        admin = session.get(User, users["admin1"])
        assert dashboard.class_dashboard(session, admin, world.ids["class_id"],
                                         now=now)["n_students"] == 2
        for name in ("teacher2", "student1", "assessor1"):
            with pytest.raises(NotFound):
                dashboard.class_dashboard(session, session.get(User, users[name]),
                                          world.ids["class_id"], now=now)
        with pytest.raises(NotFound):
            dashboard.class_dashboard(session, admin, 10**6, now=now)


def test_group_variables_count_only_with_the_demographics_consent(school) -> None:
    from storage.accounts import User
    from storage.rights import Consent, Purpose, StudentGroup

    world, now, *_ = school
    users = world.ids["users"]
    with world.db() as session:
        # student1 consented and has a home language; student2's row was left behind without
        # a consent (as if written by hand): it must not count
        session.add(Consent(student_id=users["student1"], purpose=Purpose.DEMOGRAPHICS,
                            granted=True))
        session.add_all([
            StudentGroup(student_id=users["student1"], variable="home_language", value="es"),
            StudentGroup(student_id=users["student2"], variable="home_language", value="en"),
            StudentGroup(student_id=users["student2"], variable="gender", value="f")])
    with world.db() as session:
        teacher = session.get(User, users["teacher1"])
        out = dashboard.class_dashboard(session, teacher, world.ids["class_id"], now=now)
    variables = {v["variable"]: v for v in out["fairness"]}
    assert list(variables) == ["time_accommodation", "home_language"]
    assert [g["group"] for g in variables["home_language"]["groups"]] == ["es"]
