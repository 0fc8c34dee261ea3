"""Defenses: scheduling rules, whole-sheet scoring, blind views, corrections, adjudication and
the final scores, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from evidence import defenses as service
from evidence.models import RubricScore, Task
from storage.accounts import Role, User
from storage.errors import Conflict, Forbidden, Invalid, NotFound
from tests.evidence.defense_helpers import co_teach, make_rubric

WHEN = datetime(2026, 12, 10, 9, 30, tzinfo=UTC)


def test_final_score_rules() -> None:
    assert service.needs_adjudication({1: 2, 2: 3}) is False
    assert service.needs_adjudication({1: 1, 2: 3}) is True
    assert service.needs_adjudication({1: 4}) is False
    assert service.discordant_raters({1: 1, 2: 2, 3: 4}) == {1, 2, 3}
    assert service.discordant_raters({1: 2, 2: 3, 3: 4}) == {1, 3}
    assert service.final_score({1: 2, 2: 3}, None) == 2.5
    assert service.final_score({1: 1, 2: 4}, 3) == 3.0
    assert service.final_score({1: 2, 2: 2, 3: 3}, None) == pytest.approx(7 / 3)
    assert [service.score_text(v) for v in (3.0, 2.5, 7 / 3, None)] == ["3", "2.5", "2.3", ""]


def _setup(school):
    session = school.session
    version = make_rubric(session)
    ids = school.ids["users"]
    co_teach(session, ids["teacher2"], [ids["student1"]])
    return session, version, ids


def _sheet(version, scores, note="") -> dict:
    return {c.id: {"score": s, "note": f"{note}{c.code}"} for c, s in zip(version.criteria,
                                                                          scores, strict=True)}


def test_schedule_refuses_what_is_wrong(school) -> None:
    session, version, ids = _setup(school)
    t1 = school.user("teacher1")
    cid = school.ids["class_id"]
    base = {"title": "Defense of the project", "scheduled_at": WHEN,
            "raters": [ids["teacher1"]]}

    with pytest.raises(Invalid) as e:  # teacher2 teaches student2 in no class
        service.schedule(session, t1, cid, ids["student2"], version.rubric_id,
                         **base | {"raters": [ids["teacher1"], ids["teacher2"]]})
    assert e.value.field == "raters[1]" and str(ids["teacher2"]) in str(e.value)
    with pytest.raises(Invalid) as e:  # an assessor is no rater
        service.schedule(session, t1, cid, ids["student1"], version.rubric_id,
                         **base | {"raters": [ids["assessor1"]]})
    assert e.value.field == "raters[0]"
    with pytest.raises(Invalid) as e:
        service.schedule(session, t1, cid, ids["student3"], version.rubric_id, **base)
    assert e.value.field == "student_id"
    with pytest.raises(Invalid) as e:
        service.schedule(session, t1, cid, ids["student1"], version.rubric_id,
                         **base | {"recording_url": "javascript:alert(1)"})
    assert e.value.field == "recording_url"
    with pytest.raises(Invalid) as e:
        service.schedule(session, t1, cid, ids["student1"], version.rubric_id,
                         **base | {"adjudicator": ids["teacher1"]})
    assert e.value.field == "adjudicator"
    other_task = Task(class_id=school.ids["other_class_id"], title="Elsewhere")
    session.add(other_task)
    session.flush()
    with pytest.raises(Invalid) as e:
        service.schedule(session, t1, cid, ids["student1"], version.rubric_id,
                         **base | {"task_id": other_task.id})
    assert e.value.field == "task_id"
    with pytest.raises(NotFound):  # not teacher2's class
        service.schedule(session, school.user("teacher2"), cid, ids["student1"],
                         version.rubric_id, **base)
    version.rubric.archived_at = WHEN
    with pytest.raises(Invalid) as e:
        service.schedule(session, t1, cid, ids["student1"], version.rubric_id, **base)
    assert e.value.field == "rubric_id" and "archived" in str(e.value)
    version.rubric.archived_at = None
    newer = make_rubric(session, rubric=version.rubric, version=2, codes=("reasoning",))
    defense = service.schedule(session, t1, cid, ids["student1"], version.rubric_id,
                               **base | {"raters": [ids["teacher1"], ids["teacher2"]]})
    assert defense.rubric_version_id == newer.id  # the latest version at scheduling time
    assert [r.rater_id for r in defense.raters] == [ids["teacher1"], ids["teacher2"]]


def test_blind_scoring_adjudication_correction_and_final(school) -> None:
    session, version, ids = _setup(school)
    t1, t2 = school.user("teacher1"), school.user("teacher2")
    student, admin = school.user("student1"), school.user("admin1")
    reasoning, clarity, evidence_ = version.criteria
    defense = service.schedule(session, t1, school.ids["class_id"], ids["student1"],
                               version.rubric_id, title="Project", scheduled_at=WHEN,
                               raters=[ids["teacher1"], ids["teacher2"]])
    session.commit()

    # Whole sheets only, scores within the levels, only assigned raters.
    with pytest.raises(Invalid) as e:
        service.submit_sheet(session, t1, defense, {reasoning.id: {"score": 2}})
    assert "missing" in str(e.value) and str(clarity.id) in str(e.value)
    with pytest.raises(Invalid) as e:
        service.submit_sheet(session, t1, defense, _sheet(version, [2, 5, 3]))
    assert e.value.field == f"scores.{clarity.id}.score"
    assert "'clarity'" in str(e.value) and "1, 2, 3, 4" in str(e.value)
    with pytest.raises(Invalid) as e:
        service.submit_sheet(session, t1, defense, _sheet(version, [2, 3, 3])
                             | {999999: {"score": 1}})
    assert e.value.field == "scores.999999"
    with pytest.raises(Forbidden):
        service.submit_sheet(session, admin, defense, _sheet(version, [2, 3, 3]))
    session.rollback()
    assert session.scalar(select(func.count(RubricScore.id))) == 0  # nothing half-stored

    service.submit_sheet(session, t1, defense, _sheet(version, [1, 3, 3], "t1 on "))
    session.commit()
    with pytest.raises(Conflict) as e:
        service.submit_sheet(session, t1, defense, _sheet(version, [2, 3, 3]))
    assert "correction must say so" in str(e.value)

    # Blind: teacher2 sees nothing of teacher1's sheet, not even that it was sent.
    blind = service.defense_view(session, t2, defense)
    assert blind["status"] == "scheduled" and blind["my_scores"] == {}
    assert "scores" not in blind and "final" not in blind and "history" not in blind
    other = next(r for r in blind["raters"] if r["rater_id"] == ids["teacher1"])
    assert "submitted" not in other and "submitted_at" not in other
    assert "t1 on" not in repr(blind)
    own = service.defense_view(session, t1, defense)
    assert own["status"] == "scoring" and own["my_scores"][reasoning.id]["score"] == 1
    assert "t1 on reasoning" in repr(own) and "scores" not in own
    lead_view = service.defense_view(session, admin, defense)
    assert lead_view["status"] == "scoring" and "t1 on" not in repr(lead_view)
    assert service.defense_view(session, student, defense)["status"] == "scheduled"
    assert [d.id for d in service.to_score(session, t2)] == [defense.id]
    assert service.to_score(session, t1) == []

    service.submit_sheet(session, t2, defense, _sheet(version, [3, 4, 2], "t2 on "))
    session.commit()
    state = service.defense_state(session, defense)
    assert state.status == "needs_adjudication" and state.disputed() == [reasoning.id]
    opened = service.defense_view(session, t2, defense)
    assert {(s["rater_id"], s["criterion_id"], s["score"]) for s in opened["scores"]} == {
        (ids["teacher1"], reasoning.id, 1), (ids["teacher1"], clarity.id, 3),
        (ids["teacher1"], evidence_.id, 3), (ids["teacher2"], reasoning.id, 3),
        (ids["teacher2"], clarity.id, 4), (ids["teacher2"], evidence_.id, 2)}
    finals = {f["code"]: f for f in opened["final"]}
    assert finals["clarity"]["score"] == 3.5 and finals["clarity"]["score_text"] == "3.5"
    assert [lv["label"] for lv in finals["clarity"]["levels"]] == ["Secure", "Excellent"]
    assert finals["reasoning"]["awaiting_adjudication"] is True

    # The lead teacher is a rater whose reasoning score differs: not the adjudicator.
    with pytest.raises(Forbidden):
        service.adjudicate(session, t1, defense, reasoning.id, 2, "between the two")
    with pytest.raises(Conflict):  # already assigned
        service.add_rater(session, t1, defense, ids["teacher2"])
    # An adjudicator must be a teacher of the student: none other than the two raters here.
    with pytest.raises(Invalid) as e:
        service.add_rater(session, t1, defense, ids["admin1"], role="adjudicator")
    assert e.value.field == "user_id"
    assert service.defense_view(session, student, defense).get("final") is None

    # A correction (with a reason) brings reasoning within one level: no adjudication needed.
    with pytest.raises(Invalid) as e:
        service.correct(session, t1, defense, reasoning.id, 2, "  ")
    assert e.value.field == "reason"
    fix = service.correct(session, t1, defense, reasoning.id, 2, "I misheard the argument")
    session.commit()
    assert fix.corrects_id is not None and fix.note == "t1 on reasoning"
    state = service.defense_state(session, defense)
    assert state.status == "final" and state.final(reasoning.id) == 2.5
    assert state.final(evidence_.id) == 2.5

    final = service.defense_view(session, student, defense)
    assert final["status"] == "final"
    by_code = {f["code"]: f for f in final["final"]}
    assert by_code["reasoning"]["score_text"] == "2.5"
    assert sorted(by_code["clarity"]["notes"]) == ["t1 on clarity", "t2 on clarity"]
    assert "misheard" not in repr(final) and "'rater_id'" not in repr(final)
    assert "'reason'" not in repr(final)
    assert "scores" not in final and "history" not in final


def test_adjudicator_settles_and_lead_is_fallback(school) -> None:
    session, version, ids = _setup(school)
    t1, t2 = school.user("teacher1"), school.user("teacher2")
    t3 = User(username="teacher3", display_name="Teacher3", role=Role.TEACHER,
              password_hash="x")
    session.add(t3)
    session.flush()
    co_teach(session, t3.id, [ids["student1"]], name="Drama")
    reasoning, clarity, _ = version.criteria
    cid = school.ids["class_id"]

    # One rater: nothing to dispute, final at once.
    solo = service.schedule(session, t1, cid, ids["student1"], version.rubric_id,
                            title="Solo", raters=[ids["teacher2"]])
    with pytest.raises(Invalid):  # students never rate
        service.add_rater(session, t1, solo, ids["student2"])
    service.submit_sheet(session, t2, solo, _sheet(version, [1, 1, 1]))
    assert service.defense_state(session, solo).status == "final"

    # An assigned adjudicator settles the disputed criterion; raters may not.
    two = service.schedule(session, t1, cid, ids["student1"], version.rubric_id,
                           title="Two", raters=[ids["teacher2"]], adjudicator=t3.id)
    service.add_rater(session, t1, two, ids["teacher1"])
    with pytest.raises(Forbidden):  # a rater who is not the lead manages nothing
        service.managed_defense(session, t2, two.id)
    service.submit_sheet(session, t2, two, _sheet(version, [4, 2, 2]))
    with pytest.raises(Conflict):  # before all submitted
        service.adjudicate(session, t3, two, reasoning.id, 3, "x")
    service.submit_sheet(session, t1, two, _sheet(version, [1, 3, 2]))
    with pytest.raises(Conflict):  # a new rater after all submitted would not be blind
        service.add_rater(session, t1, two, t3.id)
    with pytest.raises(Forbidden):  # the lead is not the adjudicator when one is assigned
        service.adjudicate(session, t1, two, reasoning.id, 3, "x")
    with pytest.raises(Conflict):  # clarity is within one level
        service.adjudicate(session, t3, two, clarity.id, 3, "x")
    with pytest.raises(Invalid) as e:
        service.adjudicate(session, t3, two, reasoning.id, 3, "")
    assert e.value.field == "reason"
    with pytest.raises(Invalid) as e:
        service.adjudicate(session, t3, two, reasoning.id, 7, "x")
    assert e.value.field == "score"
    assert [d.id for d in service.to_score(session, t3)] == [two.id]
    service.adjudicate(session, t3, two, reasoning.id, 3, "the recording shows it")
    state = service.defense_state(session, two)
    assert state.status == "final" and state.final(reasoning.id) == 3.0
    assert state.final(clarity.id) == 2.5 and service.to_score(session, t3) == []
    shown = service.defense_view(session, t2, two)
    assert shown["adjudications"][0]["reason"] == "the recording shows it"

    # No adjudicator assigned: the lead teacher (not a rater here) adjudicates.
    three = service.schedule(session, t1, cid, ids["student1"], version.rubric_id,
                             title="Three", raters=[ids["teacher2"], t3.id])
    service.submit_sheet(session, t2, three, _sheet(version, [1, 2, 2]))
    service.submit_sheet(session, t3, three, _sheet(version, [3, 2, 2]))
    assert service.defense_state(session, three).status == "needs_adjudication"
    with pytest.raises(Forbidden):
        service.adjudicate(session, t3, three, reasoning.id, 2, "x")
    service.adjudicate(session, t1, three, reasoning.id, 2, "both half right")
    assert service.defense_state(session, three).status == "final"
    with pytest.raises(Conflict):  # the lead has adjudicated: no other adjudicator now
        service.add_rater(session, t1, three, ids["teacher1"], role="adjudicator")
    session.commit()


def test_remove_cancel_keep_scores(school) -> None:
    session, version, ids = _setup(school)
    t1 = school.user("teacher1")
    defense = service.schedule(session, t1, school.ids["class_id"], ids["student1"],
                               version.rubric_id, title="P", raters=[ids["teacher1"],
                                                                     ids["teacher2"]])
    service.submit_sheet(session, t1, defense, _sheet(version, [2, 2, 2]))
    admin = school.user("admin1")
    with pytest.raises(Conflict):
        service.remove_rater(session, admin, defense, ids["teacher1"])
    with pytest.raises(Forbidden):  # the lead rates too: teacher2's progress is hidden
        service.remove_rater(session, t1, defense, ids["teacher2"])
    service.remove_rater(session, admin, defense, ids["teacher2"])
    assert service.defense_state(session, defense).status == "final"
    with pytest.raises(Conflict):
        service.remove_rater(session, admin, defense, ids["teacher1"])
    with pytest.raises(NotFound):
        service.remove_rater(session, admin, defense, ids["teacher2"])
    service.cancel(session, defense)
    session.commit()
    assert service.defense_state(session, defense).status == "cancelled"
    assert session.scalar(select(func.count(RubricScore.id))) == 3
    with pytest.raises(Conflict):
        service.cancel(session, defense)
    with pytest.raises(Conflict):
        service.correct(session, t1, defense, version.criteria[0].id, 3, "late change")
