"""Teachers' decisions, students' appeals and teachers' answers (reports.decisions), on SQLite and
PostgreSQL: who may act, what each bad input says, what the history and the report show, and
that two concurrent appeals cannot both pass."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select, text

from api.db import engine_of
from reports import decisions
from reports.models import Appeal, AppealAnswer, MasteryDecision
from reports.report import student_report
from storage import session_factory, session_scope
from storage.accounts import User
from storage.errors import Conflict, Forbidden, Invalid, NotFound
from tests.api.conftest import _world_templates, world  # noqa: F401

SUGGESTION = {"skill": "algebra", "suggested_decision": "needs_evidence",
              "mastery_probability": 0.6123, "theta": 0.71, "se": 0.42}


class Db:
    """Sessions over the world's database and its users by name."""

    def __init__(self, api_world) -> None:
        self.world = api_world
        self.factory = session_factory(engine_of(api_world.app))

    def __call__(self):
        return session_scope(self.factory)

    def user(self, session, name: str) -> User:
        return session.get(User, self.world.users[name])


@pytest.fixture
def db(world) -> Db:  # noqa: F811
    return Db(world)


def test_a_decision_keeps_the_model_view_beside_it_and_the_newest_is_current(db) -> None:
    sid = db.world.users["student1"]
    with db() as s:
        first = decisions.record_decision(s, db.user(s, "teacher1"), sid, "algebra",
                                          "not_mastered", "  Two slips in class  ",
                                          suggestion=SUGGESTION)
        first_id = first.id
        assert (first.reason, first.suggested_decision, first.mastery_probability,
                first.theta, first.se) == ("Two slips in class", "needs_evidence", 0.6123,
                                           0.71, 0.42)
    with db() as s:
        second = decisions.record_decision(s, db.user(s, "admin1"), sid, "algebra", "mastered",
                                           "Retook it orally")
        second_id = second.id
        decisions.record_decision(s, db.user(s, "teacher1"), sid, "geometry", "needs_evidence",
                                  "Not seen yet")
    with db() as s:
        h = decisions.history(s, sid)
    assert [d["id"] for d in h["decisions"]][1:] == [second_id, first_id]
    assert h["current"]["algebra"]["id"] == second_id
    assert h["current"]["algebra"]["decided_by_name"] == "Admin1"
    assert h["current"]["algebra"]["suggested_decision"] is None  # no report entry given
    assert h["current"]["geometry"]["decision"] == "needs_evidence"
    old = next(d for d in h["decisions"] if d["id"] == first_id)
    assert old == {"id": first_id, "skill": "algebra", "decision": "not_mastered",
                   "reason": "Two slips in class", "decided_by": db.world.users["teacher1"],
                   "decided_by_name": "Teacher1", "decided_at": old["decided_at"],
                   "suggested_decision": "needs_evidence", "mastery_probability": 0.6123,
                   "theta": 0.71, "se": 0.42}
    assert old["decided_at"].endswith("+00:00")
    assert h["appeals"] == [] and h["open"] == {}


def test_who_may_decide(db) -> None:
    sid = db.world.users["student1"]
    with db() as s:
        for name, error in (("teacher2", NotFound), ("student1", Forbidden),
                            ("assessor1", Forbidden)):
            with pytest.raises(error):
                decisions.record_decision(s, db.user(s, name), sid, "algebra", "mastered", "x")
        with pytest.raises(NotFound, match="no student 999999"):
            decisions.record_decision(s, db.user(s, "admin1"), 999999, "algebra", "mastered", "x")
        teacher = db.user(s, "teacher1")
        with pytest.raises(NotFound):  # a teacher is no student
            decisions.record_decision(s, teacher, teacher.id, "algebra", "mastered", "x")
        assert s.scalar(select(func.count()).select_from(MasteryDecision)) == 0


def test_bad_decisions_name_what_is_wrong(db) -> None:
    sid = db.world.users["student1"]
    with db() as s:
        teacher = db.user(s, "teacher1")
        with pytest.raises(Invalid) as caught:
            decisions.record_decision(s, teacher, sid, "algebra", "great", "fine")
        assert caught.value.field == "decision"
        assert "mastered, not_mastered, needs_evidence" in str(caught.value)
        for reason in ("", "   \n\t", None):
            with pytest.raises(Invalid, match="a reason is required") as caught:
                decisions.record_decision(s, teacher, sid, "algebra", "mastered", reason)
            assert caught.value.field == "reason"
        with pytest.raises(NotFound, match="'knitting'") as caught:
            decisions.record_decision(s, teacher, sid, "knitting", "mastered", "fine")
        assert caught.value.field == "skill"
        assert s.scalar(select(func.count()).select_from(MasteryDecision)) == 0


def test_appeals_of_the_suggestion_then_of_the_decision(db) -> None:
    sid = db.world.users["student1"]
    with db() as s:
        first = decisions.appeal(s, db.user(s, "student1"), "algebra", "I did well in class",
                                 student_id=sid, suggestion=SUGGESTION)
        first_id = first.id
        assert (first.decision_id, first.appealed_decision) == (None, "needs_evidence")
    with db() as s, pytest.raises(Conflict, match=f"appeal {first_id} .* still open"):
        decisions.appeal(s, db.user(s, "student1"), "algebra", "again", suggestion=SUGGESTION)
    with db() as s:
        decided = decisions.record_decision(s, db.user(s, "teacher1"), sid, "algebra",
                                            "not_mastered", "Test shows gaps").id
    with db() as s:  # a new decision may be appealed while the old appeal waits
        second = decisions.appeal(s, db.user(s, "student1"), "algebra", "Please look again")
        second_id = second.id
        assert (second.decision_id, second.appealed_decision) == (decided, "not_mastered")
    with db() as s, pytest.raises(Conflict, match=f"appeal {second_id}"):
        decisions.appeal(s, db.user(s, "student1"), "algebra", "third")
    with db() as s:
        h = decisions.history(s, sid)
    assert [a["id"] for a in h["appeals"]] == [second_id, first_id]
    assert h["open"]["algebra"] == {"id": second_id, "message": "Please look again",
                                    "created_at": h["appeals"][0]["created_at"],
                                    "decision_id": decided, "appealed_decision": "not_mastered"}
    assert all(a["answer"] is None for a in h["appeals"])


def test_bad_appeals(db) -> None:
    sid, other = db.world.users["student1"], db.world.users["student2"]
    with db() as s:
        student = db.user(s, "student1")
        with pytest.raises(NotFound, match=f"no student {other}"):
            decisions.appeal(s, student, "algebra", "mine", student_id=other,
                             suggestion=SUGGESTION)
        with pytest.raises(Invalid, match="a message is required"):
            decisions.appeal(s, student, "algebra", "  ", suggestion=SUGGESTION)
        with pytest.raises(NotFound, match="'knitting'"):
            decisions.appeal(s, student, "knitting", "why", suggestion=SUGGESTION)
        with pytest.raises(NotFound, match="no decision on skill 'geometry'"):
            decisions.appeal(s, student, "geometry", "why")  # no evidence, no decision
        with pytest.raises(Forbidden):
            decisions.appeal(s, db.user(s, "teacher1"), "algebra", "why", student_id=sid,
                             suggestion=SUGGESTION)
        assert s.scalar(select(func.count()).select_from(Appeal)) == 0


def test_answers_uphold_or_revise_once(db) -> None:
    sid = db.world.users["student1"]
    with db() as s:
        decided = decisions.record_decision(s, db.user(s, "teacher1"), sid, "algebra",
                                            "not_mastered", "Test shows gaps").id
        appeal_id = decisions.appeal(s, db.user(s, "student1"), "algebra", "Look again").id
    with db() as s:
        teacher = db.user(s, "teacher1")
        for name, error in (("teacher2", NotFound), ("student1", Forbidden)):
            with pytest.raises(error):
                decisions.answer_appeal(s, db.user(s, name), appeal_id, "upheld", "No")
        with pytest.raises(NotFound, match="no appeal 999999"):
            decisions.answer_appeal(s, teacher, 999999, "upheld", "No")
        cases = [(("maybe", "No"), "outcome"), (("upheld", " "), "reason"),
                 (("revised", "Yes"), "decision"), (("revised", "Yes", "great"), "decision"),
                 (("revised", "Yes", "not_mastered"), "decision"),  # no change
                 (("upheld", "No", "mastered"), "decision")]
        for args, field in cases:
            with pytest.raises(Invalid) as caught:
                decisions.answer_appeal(s, teacher, appeal_id, *args)
            assert caught.value.field == field, args
        answer = decisions.answer_appeal(s, teacher, appeal_id, "revised", "Your project shows it",
                                         "mastered", suggestion=SUGGESTION)
        revised = answer.decision_id
        assert revised is not None and revised != decided
    with db() as s, pytest.raises(Conflict, match=f"appeal {appeal_id} was answered already"):
        decisions.answer_appeal(s, db.user(s, "admin1"), appeal_id, "upheld", "No")
    with db() as s:
        h = decisions.history(s, sid)
        assert s.scalar(select(func.count()).select_from(AppealAnswer)) == 1
    assert h["current"]["algebra"]["id"] == revised
    assert h["current"]["algebra"]["decision"] == "mastered"
    assert h["current"]["algebra"]["reason"] == "Your project shows it"
    assert h["current"]["algebra"]["suggested_decision"] == "needs_evidence"
    assert h["open"] == {}
    answer_entry = h["appeals"][0]["answer"]
    assert answer_entry["outcome"] == "revised" and answer_entry["decision_id"] == revised
    assert answer_entry["answered_by_name"] == "Teacher1"
    with db() as s:  # the revised decision can be appealed in turn; the new appeal is upheld
        again = decisions.appeal(s, db.user(s, "student1"), "algebra", "Thanks").id
        up = decisions.answer_appeal(s, db.user(s, "admin1"), again, "upheld", "It stands")
        assert up.decision_id is None


def test_records_are_never_updated(db) -> None:
    sid = db.world.users["student1"]
    with db() as s:
        decisions.record_decision(s, db.user(s, "teacher1"), sid, "algebra", "mastered", "ok")
    with pytest.raises(Exception, match=r"(?i)append-only|not allowed|refuse|update"), db() as s:
        s.execute(text("UPDATE mastery_decisions SET decision = 'not_mastered'"))


def test_the_report_shows_the_teacher_decision_beside_the_suggestion(db) -> None:
    from tests.api.test_attempts_api import _take

    _take(db.world, "student1")
    sid = db.world.users["student1"]
    with db() as s:
        before = student_report(s, db.user(s, "teacher1"), sid)
        entry = next(e for e in before["skills"] if e["skill"] == "geometry")
        assert entry["decided_by"] == "model" and entry["teacher_decision"] is None
        other = "not_mastered" if entry["suggested_decision"] == "mastered" else "mastered"
        row = decisions.record_decision(s, db.user(s, "teacher1"), sid, "geometry", other,
                                        "Seen in class", suggestion=entry)
        assert row.mastery_probability == entry["mastery_probability"]
    with db() as s:
        decisions.appeal(s, db.user(s, "student1"), "geometry", "Why not?", student_id=sid)
    with db() as s:
        for viewer in ("teacher1", "student1"):
            report = student_report(s, db.user(s, viewer), sid)
            after = next(e for e in report["skills"] if e["skill"] == "geometry")
            assert after["decision"] == other and after["decided_by"] == "teacher"
            assert after["suggested_decision"] == entry["suggested_decision"]
            assert after["teacher_decision"]["reason"] == "Seen in class"
            assert after["open_appeal"]["message"] == "Why not?"
            assert [d["skill"] for d in report["decisions"]] == ["geometry"]
            assert report["appeals"][0]["appealed_decision"] == other


def test_two_concurrent_appeals_cannot_both_pass(db) -> None:
    """The first appeal holds the student's row lock until it commits; the second waits for it,
    then sees the open appeal and is refused (PostgreSQL; SQLite has one writer at a time)."""
    if engine_of(db.world.app).dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serialises writers itself")
    outcome: dict[str, object] = {}

    def second() -> None:
        try:
            with db() as s:
                decisions.appeal(s, db.user(s, "student1"), "algebra", "me too",
                                 suggestion=SUGGESTION)
            outcome["result"] = "passed"
        except Conflict as error:
            outcome["result"] = error

    with db() as first:
        decisions.appeal(first, db.user(first, "student1"), "algebra", "first",
                         suggestion=SUGGESTION)
        thread = threading.Thread(target=second)
        thread.start()
        deadline = time.monotonic() + 10
        with db() as probe:  # wait until the second request is blocked on the lock
            while probe.scalar(text("SELECT count(*) FROM pg_stat_activity "
                                    "WHERE wait_event_type = 'Lock'")) == 0:
                assert time.monotonic() < deadline, "the second appeal never waited"
                probe.rollback()
        assert "result" not in outcome
    thread.join(10)
    assert isinstance(outcome["result"], Conflict)
    with db() as s:
        assert s.scalar(select(func.count()).select_from(Appeal)) == 1
