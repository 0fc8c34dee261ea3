"""The defense API end to end, on SQLite and PostgreSQL: scheduling with its refusals, two
raters scoring blind, a disagreement of more than one level, a correction, adjudication by an
assigned adjudicator, the student reading the final scores, cancelling; and the roles."""

from __future__ import annotations

import json

from werkzeug.security import generate_password_hash

from api.db import engine_of
from storage import session_factory, session_scope
from storage.accounts import Role, User
from tests.api.conftest import PASSWORD
from tests.evidence.defense_helpers import co_teach, make_rubric


def _prepare(world) -> dict:
    """A rubric (three criteria scored 1-4); teacher2 and a new teacher3 each teach a class with
    student1 in it, so both may score student1's defenses."""
    with session_scope(session_factory(engine_of(world.app))) as session:
        version = make_rubric(session)
        co_teach(session, world.users["teacher2"], [world.users["student1"]])
        t3 = User(username="teacher3", display_name="Teacher3", role=Role.TEACHER,
                  password_hash=generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000"))
        session.add(t3)
        session.flush()
        co_teach(session, t3.id, [world.users["student1"]], name="Drama")
        world.users["teacher3"] = t3.id
        return {"rubric_id": version.rubric_id,
                "criteria": {c.code: c.id for c in version.criteria}}


def _ok(r, status: int = 200) -> dict:
    assert r.status_code == status, r.get_json()
    return r.get_json()


def _sheet(criteria: dict, scores: dict, note: str) -> dict:
    return {"scores": {str(criteria[code]): {"score": s, "note": f"{note} {code}"}
                       for code, s in scores.items()}}


def test_whole_flow(world) -> None:
    rubric = _prepare(world)
    crit = rubric["criteria"]
    u = world.users
    cid = world.class_id
    body = {"student_id": u["student1"], "rubric_id": rubric["rubric_id"],
            "title": "Defense of the statistics project",
            "scheduled_at": "2026-12-10T09:30:00+01:00",
            "recording_url": "https://video.example.org/defense/1",
            "raters": [u["teacher1"], u["teacher2"]]}

    # Refusals: named field, nothing stored, never a 5xx.
    r = world.call("post", f"/api/v1/classes/{cid}/defenses", "teacher1",
                   json=body | {"student_id": u["student2"]})  # teacher2 does not teach 2
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "raters[1]"
    assert f"user {u['teacher2']}" in r.get_json()["detail"]
    r = world.call("post", f"/api/v1/classes/{cid}/defenses", "teacher1",
                   json=body | {"recording_url": "ftp://example.org/x"})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "recording_url"
    r = world.call("post", f"/api/v1/classes/{cid}/defenses", "teacher1",
                   json={k: v for k, v in body.items() if k != "title"})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "json.title"
    r = world.call("post", f"/api/v1/classes/{cid}/defenses", "teacher1",
                   json=body | {"scheduled_at": "2026-12-10T09:30:00"})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "json.scheduled_at"
    assert world.call("post", f"/api/v1/classes/{cid}/defenses", "teacher2",
                      json=body).status_code == 404
    assert world.call("post", f"/api/v1/classes/{cid}/defenses", "assessor1",
                      json=body).status_code == 403
    assert world.call("post", f"/api/v1/classes/{cid}/defenses", "student1",
                      json=body).status_code == 403
    assert _ok(world.call("get", f"/api/v1/classes/{cid}/defenses", "teacher1"))["total"] == 0

    created = _ok(world.call("post", f"/api/v1/classes/{cid}/defenses", "teacher1", json=body),
                  201)
    did = created["id"]
    assert created["status"] == "scheduled" and created["scheduled_at"].startswith(
        "2026-12-10T08:30:00")
    assert created["lead_teacher_id"] == u["teacher1"] and created["adjudicator_id"] == u[
        "teacher1"]
    path = f"/api/v1/defenses/{did}"
    r = world.call("post", f"{path}/raters", "teacher1",
                   json={"user_id": u["teacher3"], "role": "adjudicator"})
    assert _ok(r, 201)["adjudicator_id"] == u["teacher3"]

    # Sheets: all or nothing, levels only.
    r = world.call("post", f"{path}/scores", "teacher1",
                   json=_sheet(crit, {"reasoning": 1, "clarity": 3}, "t1"))
    assert r.status_code == 422 and "missing" in r.get_json()["detail"]
    r = world.call("post", f"{path}/scores", "teacher1",
                   json=_sheet(crit, {"reasoning": 1, "clarity": 3, "evidence": 0}, "t1"))
    assert r.status_code == 422
    assert r.get_json()["errors"][0]["field"] == f"scores.{crit['evidence']}.score"
    assert "1, 2, 3, 4" in r.get_json()["detail"] and "'evidence'" in r.get_json()["detail"]
    sheet = _sheet(crit, {"reasoning": 1, "clarity": 3, "evidence": 3}, "t1")
    sheet["scores"]["999999"] = {"score": 2}
    r = world.call("post", f"{path}/scores", "teacher1", json=sheet)
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "scores.999999"
    r = world.call("post", f"{path}/scores", "teacher1",
                   json=_sheet(crit, {"reasoning": "1", "clarity": 3, "evidence": 3}, "t1"))
    assert r.status_code == 422
    assert world.call("post", f"{path}/scores", "teacher3",  # the adjudicator does not rate
                      json=_sheet(crit, {"reasoning": 1, "clarity": 3, "evidence": 3},
                                  "t3")).status_code == 403
    assert world.call("post", f"{path}/scores", "student1", json=sheet).status_code == 403

    mine = _ok(world.call("post", f"{path}/scores", "teacher1",
                          json=_sheet(crit, {"reasoning": 1, "clarity": 3, "evidence": 3},
                                      "t1")), 201)
    assert mine["my_submitted"] and mine["my_scores"][str(crit["reasoning"])]["score"] == 1
    r = world.call("post", f"{path}/scores", "teacher1",
                   json=_sheet(crit, {"reasoning": 2, "clarity": 3, "evidence": 3}, "t1"))
    assert r.status_code == 409 and "a correction must say so" in r.get_json()["detail"]

    # Blind: nothing of teacher1's sheet reaches teacher2, in any field.
    blind = _ok(world.call("get", path, "teacher2"))
    text = json.dumps(blind)
    assert "t1 " not in text and blind["my_scores"] == {} and blind["status"] == "scheduled"
    assert not {"scores", "history", "final", "adjudications", "disputed"} & set(blind)
    first = next(r for r in blind["raters"] if r["rater_id"] == u["teacher1"])
    assert "submitted" not in first and "submitted_at" not in first
    listed = _ok(world.call("get", "/api/v1/defenses", "teacher2"))["items"]
    assert [(d["id"], d["status"]) for d in listed] == [(did, "scheduled")]
    queue = _ok(world.call("get", "/api/v1/defenses?to_score=true", "teacher2"))["items"]
    assert [d["id"] for d in queue] == [did]
    lead = _ok(world.call("get", path, "admin1"))
    assert lead["status"] == "scoring" and "t1 " not in json.dumps(lead)
    # The adjudicator waits, and cannot adjudicate yet.
    r = world.call("post", f"{path}/adjudications", "teacher3",
                   json={"criterion_id": crit["reasoning"], "score": 2, "reason": "x"})
    assert r.status_code == 409

    opened = _ok(world.call("post", f"{path}/scores", "teacher2",
                            json=_sheet(crit, {"reasoning": 4, "clarity": 4, "evidence": 1},
                                        "t2")), 201)
    assert opened["status"] == "needs_adjudication" and opened["open"] is True
    assert sorted(opened["disputed"]) == sorted([crit["reasoning"], crit["evidence"]])
    assert len(opened["scores"]) == 6 and "t1 reasoning" in json.dumps(opened)
    pre = _ok(world.call("get", path, "student1"))
    assert pre["status"] == "scheduled" and "final" not in pre and "t1 " not in json.dumps(pre)

    # teacher2 corrects evidence (1 -> 2): within one level of 3, no longer disputed.
    r = world.call("post", f"{path}/corrections", "teacher2",
                   json={"criterion_id": crit["evidence"], "score": 2, "reason": ""})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "json.reason"
    fix = _ok(world.call("post", f"{path}/corrections", "teacher2",
                         json={"criterion_id": crit["evidence"], "score": 2,
                               "reason": "I had the wrong student's notes"}), 201)
    assert fix["corrects_id"] is not None and fix["note"] == "t2 evidence"
    assert world.call("post", f"{path}/corrections", "teacher3",
                      json={"criterion_id": crit["evidence"], "score": 2,
                            "reason": "x"}).status_code == 403
    after = _ok(world.call("get", path, "teacher1"))
    assert after["disputed"] == [crit["reasoning"]] and len(after["history"]) == 7

    # Adjudication: the lead is a differing rater; the assigned adjudicator settles it.
    r = world.call("post", f"{path}/adjudications", "teacher1",
                   json={"criterion_id": crit["reasoning"], "score": 2, "reason": "x"})
    assert r.status_code == 403
    r = world.call("post", f"{path}/adjudications", "teacher3",
                   json={"criterion_id": crit["clarity"], "score": 3, "reason": "x"})
    assert r.status_code == 409
    assert [d["id"] for d in _ok(world.call("get", "/api/v1/defenses?to_score=true",
                                            "teacher3"))["items"]] == [did]
    _ok(world.call("post", f"{path}/adjudications", "teacher3",
                   json={"criterion_id": crit["reasoning"], "score": 3,
                         "reason": "The recording shows a sound argument"}), 201)
    done = _ok(world.call("get", path, "teacher2"))
    assert done["status"] == "final"
    final = {f["code"]: f for f in done["final"]}
    assert final["reasoning"]["score"] == 3.0 and final["reasoning"]["adjudicated"]
    assert final["clarity"]["score"] == 3.5 and final["evidence"]["score"] == 2.5

    # The student sees the final scores with the levels, and notes unsigned.
    seen = _ok(world.call("get", path, "student1"))
    assert seen["status"] == "final"
    shown = {f["code"]: f for f in seen["final"]}
    assert shown["clarity"]["score_text"] == "3.5"
    assert [lv["label"] for lv in shown["clarity"]["levels"]] == ["Secure", "Excellent"]
    assert [lv["label"] for lv in shown["reasoning"]["levels"]] == ["Secure"]
    assert sorted(shown["clarity"]["notes"]) == ["t1 clarity", "t2 clarity"]
    text = json.dumps(seen)
    assert "rater_id" not in text and "sound argument" not in text and "wrong student" not in text
    assert "raters" not in seen and "history" not in seen
    mine = _ok(world.call("get", f"/api/v1/users/{u['student1']}/defenses", "student1"))
    assert [(d["id"], d["status"]) for d in mine["items"]] == [(did, "final")]
    assert world.call("get", path, "student2").status_code == 404
    assert world.call("get", f"/api/v1/users/{u['student1']}/defenses",
                      "student2").status_code == 404
    assert world.call("get", path, "assessor1").status_code == 403
    staff = _ok(world.call("get", f"/api/v1/users/{u['student1']}/defenses", "teacher2"))
    assert staff["total"] == 1
    assert world.call("get", f"/api/v1/users/{u['student3']}/defenses",
                      "teacher1").status_code == 404

    # Cancelling: only the lead (or an admin); scores are kept; no more scoring.
    assert world.call("post", f"{path}/cancel", "teacher2").status_code == 403
    assert _ok(world.call("post", f"{path}/cancel", "teacher1"))["status"] == "cancelled"
    assert world.call("post", f"{path}/cancel", "teacher1").status_code == 409
    r = world.call("post", f"{path}/corrections", "teacher2",
                   json={"criterion_id": crit["clarity"], "score": 3, "reason": "late"})
    assert r.status_code == 409
    assert len(_ok(world.call("get", path, "teacher1"))["history"]) == 8


def test_raters_and_visibility(world) -> None:
    rubric = _prepare(world)
    u = world.users
    cid = world.class_id
    made = _ok(world.call("post", f"/api/v1/classes/{cid}/defenses", "teacher1", json={
        "student_id": u["student2"], "rubric_id": rubric["rubric_id"], "title": "Essay",
        "raters": [u["teacher1"]]}), 201)
    path = f"/api/v1/defenses/{made['id']}"
    # teacher2 may not see it (not assigned, not their class), nor rate student2.
    assert world.call("get", path, "teacher2").status_code == 404
    r = world.call("post", f"{path}/raters", "teacher1", json={"user_id": u["teacher2"]})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "user_id"
    r = world.call("post", f"{path}/raters", "teacher1", json={"user_id": u["teacher1"]})
    assert r.status_code == 409
    r = world.call("post", f"{path}/raters", "teacher1",
                   json={"user_id": u["teacher1"], "role": "judge"})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "json.role"
    assert world.call("delete", f"{path}/raters/{u['teacher1']}",
                      "teacher1").status_code == 409  # the only rater
    assert world.call("delete", f"{path}/raters/{u['teacher2']}",
                      "teacher1").status_code == 404
    assert world.call("get", f"/api/v1/classes/{cid}/defenses", "teacher2").status_code == 404
    listed = _ok(world.call("get", f"/api/v1/classes/{cid}/defenses", "teacher1"))
    assert [d["id"] for d in listed["items"]] == [made["id"]]
    assert _ok(world.call("get", "/api/v1/defenses", "admin1"))["total"] == 1
    assert world.call("get", "/api/v1/defenses/2147483647", "teacher1").status_code == 404
    r = world.call("post", f"{path}/scores", "teacher1", json={"scores": []})
    assert r.status_code == 422
    r = world.call("post", f"{path}/scores", "teacher1", data="not json",
                   headers={"Content-Type": "application/json"})
    assert r.status_code in (400, 422)
