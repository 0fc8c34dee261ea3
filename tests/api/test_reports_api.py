"""The mastery report over HTTP, end to end: a student takes a test, their teacher reads the
report and decides, the student appeals, the teacher answers, and both see the history; plus
every "bad input" case of the issue, on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.api.test_attempts_api import _take

HIDDEN = {"source_id", "item_id", "response", "label", "shift"}


def _paths(world, student: str = "student1", skill: str = "algebra") -> tuple[str, str, str]:
    sid = world.users[student]
    base = f"/api/v1/students/{sid}"
    return (f"{base}/report", f"{base}/skills/{skill}/decisions",
            f"{base}/skills/{skill}/appeals")


def _problem(r, status: int, *words: str) -> dict:
    assert r.status_code == status, (r.status_code, r.get_json())
    assert r.mimetype == "application/problem+json"
    body = r.get_json()
    text = body["detail"] + " " + " ".join(e["message"] + " " + e["field"]
                                           for e in body.get("errors", []))
    for word in words:
        assert word in text, (word, body)
    return body


def test_decide_appeal_answer_and_both_see_the_history(world) -> None:
    _take(world, "student1")
    report_path, decide, appeal = _paths(world, skill="geometry")
    report = world.call("get", report_path, "teacher1").get_json()
    assert report["status"] == "ok" and report["viewer_role"] == "teacher"
    entry = next(s for s in report["skills"] if s["skill"] == "geometry")
    assert entry["decided_by"] == "model" and entry["teacher_decision"] is None
    assert abs(sum(e["weight"] for e in entry["evidence"]) + entry["prior_weight"] - 1) < 1e-3

    other = "not_mastered" if entry["suggested_decision"] == "mastered" else "mastered"
    r = world.call("post", decide, "teacher1", json={"decision": other, "reason": "Seen in class"})
    assert r.status_code == 201, r.get_json()
    decision = r.get_json()
    assert decision["decision"] == other and decision["decided_by_name"] == "Teacher1"
    assert decision["suggested_decision"] == entry["suggested_decision"]  # the model's view kept
    assert decision["mastery_probability"] == entry["mastery_probability"]
    assert decision["theta"] == entry["theta"] and decision["se"] == entry["se"]

    r = world.call("post", appeal, "student1", json={"message": "My project shows it"})
    assert r.status_code == 201, r.get_json()
    appealed = r.get_json()
    assert appealed["decision_id"] == decision["id"] and appealed["appealed_decision"] == other
    _problem(world.call("post", appeal, "student1", json={"message": "again"}), 409,
             f"appeal {appealed['id']}")

    seen = world.call("get", report_path, "student1").get_json()
    mine = next(s for s in seen["skills"] if s["skill"] == "geometry")
    assert mine["open_appeal"]["id"] == appealed["id"]
    assert mine["decision"] == other and mine["decided_by"] == "teacher"
    assert mine["suggested_decision"] == entry["suggested_decision"]

    answer_path = f"/api/v1/appeals/{appealed['id']}/answer"
    _problem(world.call("post", answer_path, "teacher1",
                        json={"outcome": "revised", "reason": "Fair"}), 422, "decision")
    r = world.call("post", answer_path, "teacher1",
                   json={"outcome": "revised", "reason": "Your project shows it",
                         "decision": "needs_evidence"})
    assert r.status_code == 200, r.get_json()
    answer = r.get_json()
    assert answer["outcome"] == "revised" and answer["decision"]["decision"] == "needs_evidence"
    assert answer["decision_id"] == answer["decision"]["id"] != decision["id"]
    _problem(world.call("post", answer_path, "admin1",
                        json={"outcome": "upheld", "reason": "No"}), 409, "answered already")

    for viewer in ("teacher1", "student1", "admin1"):
        report = world.call("get", report_path, viewer).get_json()
        entry = next(s for s in report["skills"] if s["skill"] == "geometry")
        assert entry["decision"] == "needs_evidence" and entry["open_appeal"] is None
        assert [d["decision"] for d in report["decisions"]] == ["needs_evidence", other]
        assert [d["reason"] for d in report["decisions"]] == ["Your project shows it",
                                                              "Seen in class"]
        (only,) = report["appeals"]
        assert only["message"] == "My project shows it"
        assert only["answer"]["outcome"] == "revised"
        assert only["answer"]["answered_by_name"] == "Teacher1"


def test_the_student_view_hides_which_answers_were_right(world) -> None:
    _take(world, "student1", answer_correctly=lambda item: item["id"] % 2 == 0)
    report_path, _, _ = _paths(world)
    staff = world.call("get", report_path, "teacher1").get_json()
    own = world.call("get", report_path, "student1").get_json()
    assert own["viewer_role"] == "student"
    assert [s["skill"] for s in own["skills"]] == [s["skill"] for s in staff["skills"]]
    for mine, theirs in zip(own["skills"], staff["skills"], strict=True):
        assert mine["theta"] == theirs["theta"] and mine["decision"] == theirs["decision"]
        items = [e for e in mine["evidence"] if e["kind"] == "item"]
        assert items and not any(HIDDEN & set(e) for e in items)
        assert all("shift" in e and "response" in e for e in theirs["evidence"])
        assert not {f["code"] for f in mine["flags"]} & {"rapid_guess", "person_misfit"}


def test_bad_input(world) -> None:
    _take(world, "student1")
    report_path, decide, appeal = _paths(world)
    # a decision without a reason, with a blank one, or with an unknown value: 422
    _problem(world.call("post", decide, "teacher1", json={"decision": "mastered"}), 422,
             "json.reason", "a reason is required")
    _problem(world.call("post", decide, "teacher1",
                        json={"decision": "mastered", "reason": " \n "}), 422,
             "a reason is required")
    _problem(world.call("post", decide, "teacher1", json={"decision": "great", "reason": "x"}),
             422, "json.decision", "mastered")
    _problem(world.call("post", decide, "teacher1", json={"reason": "x"}), 422, "json.decision")
    # an unknown skill: 404 naming it (decision and appeal)
    _, unknown_decide, unknown_appeal = _paths(world, skill="knitting")
    _problem(world.call("post", unknown_decide, "teacher1",
                        json={"decision": "mastered", "reason": "x"}), 404, "'knitting'")
    _problem(world.call("post", unknown_appeal, "student1", json={"message": "why"}), 404,
             "'knitting'")
    # an appeal on another student's skill: 404, as for a student who does not exist
    _, _, theirs = _paths(world, student="student2")
    _problem(world.call("post", theirs, "student1", json={"message": "why"}), 404, "no student")
    _problem(world.call("post", appeal, "student1", json={"message": "   "}), 422,
             "a message is required")
    # a second open appeal on the same decision (here: the model's suggestion): 409
    assert world.call("post", appeal, "student1", json={"message": "why"}).status_code == 201
    _problem(world.call("post", appeal, "student1", json={"message": "why"}), 409, "still open")
    # answers: unknown outcome, no reason, an upheld appeal with a decision, an unknown appeal
    open_id = world.call("get", report_path, "teacher1").get_json()["appeals"][0]["id"]
    answer = f"/api/v1/appeals/{open_id}/answer"
    _problem(world.call("post", answer, "teacher1", json={"outcome": "maybe", "reason": "x"}),
             422, "json.outcome")
    _problem(world.call("post", answer, "teacher1", json={"outcome": "upheld"}), 422,
             "a reason is required")
    _problem(world.call("post", answer, "teacher1",
                        json={"outcome": "upheld", "reason": "x", "decision": "mastered"}), 422,
             "decision")
    _problem(world.call("post", answer, "teacher2", json={"outcome": "upheld", "reason": "x"}),
             404, f"no appeal {open_id}")
    _problem(world.call("post", "/api/v1/appeals/999999/answer", "admin1",
                        json={"outcome": "upheld", "reason": "x"}), 404, "no appeal 999999")
    # a report for a student with no evidence: a clear "no evidence yet" report, not an error
    empty_path, _, _ = _paths(world, student="student2")
    r = world.call("get", empty_path, "teacher1")
    assert r.status_code == 200, r.get_json()
    empty = r.get_json()
    assert empty["status"] == "no_evidence" and empty["skills"] == [] and empty["overall"] is None
    # nothing of the refused requests was kept
    report = world.call("get", report_path, "teacher1").get_json()
    assert report["decisions"] == [] and len(report["appeals"]) == 1
    assert world.call("get", "/api/v1/students/999999/report", "admin1").status_code == 404
