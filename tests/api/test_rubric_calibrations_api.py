"""The rubric calibration API end to end: run, list, read, publish (the previous one retired),
and the refusals, each a problem with the field it is about; never a 5xx."""

from __future__ import annotations

import uuid

from api.db import engine_of
from evidence.rubric_calibration import MIN_STUDENTS
from storage import session_factory, session_scope
from tests.api.conftest import ApiWorld
from tests.evidence.rubric_world import CRITERIA, fill


def _rated(world: ApiWorld, n: int = 120) -> int:
    with session_scope(session_factory(engine_of(world.app))) as session:
        rated = fill(session, test_id=world.test_id, class_id=world.class_id, n_students=n,
                     rubric_name=f"Defense {uuid.uuid4().hex[:6]}")
        return rated.rubric_id


def test_run_review_and_publish(world: ApiWorld) -> None:
    rubric = _rated(world)
    r = world.call("post", f"/api/v1/rubrics/{rubric}/calibrations", "assessor1",
                   json={"version": 1, "model": "gpcm"})
    assert r.status_code == 201, r.get_json()
    first = r.get_json()
    assert first["status"] == "draft" and first["model"] == "gpcm"
    assert first["rubric_id"] == rubric and first["version"] == 1
    assert [c["code"] for c in first["criteria"]] == [code for code, _ in CRITERIA]
    assert all(len(c["thresholds"]) == 3 and len(c["se"]["thresholds"]) == 3
               for c in first["criteria"])
    assert len(first["raters"]) == 6 and abs(sum(r["severity"] for r in first["raters"])) < 1e-9
    assert first["raters"][0]["name"].startswith("Rater ")
    assert first["provenance"]["students"] == 120 and first["provenance"]["converged"]
    # latest version when none is named; pcm
    r = world.call("post", f"/api/v1/rubrics/{rubric}/calibrations", "admin1",
                   json={"model": "pcm"})
    assert r.status_code == 201, r.get_json()
    second = r.get_json()
    assert {c["a"] for c in second["criteria"]} == {1.0}
    listed = world.call("get", f"/api/v1/rubrics/{rubric}/calibrations", "assessor1").get_json()
    assert [c["id"] for c in listed["items"]] == [second["id"], first["id"]]
    assert listed["total"] == 2
    one = world.call("get", f"/api/v1/rubric-calibrations/{first['id']}", "assessor1")
    assert one.status_code == 200 and one.get_json()["criteria"] == first["criteria"]
    r = world.call("post", f"/api/v1/rubric-calibrations/{first['id']}/publish", "assessor1")
    assert r.status_code == 200 and r.get_json()["status"] == "published"
    assert r.get_json()["published_by"] == world.users["assessor1"]
    r = world.call("post", f"/api/v1/rubric-calibrations/{second['id']}/publish", "assessor1")
    assert r.status_code == 200
    statuses = {c["id"]: c["status"] for c in world.call(
        "get", f"/api/v1/rubrics/{rubric}/calibrations", "assessor1").get_json()["items"]}
    assert statuses == {first["id"]: "retired", second["id"]: "published"}
    r = world.call("post", f"/api/v1/rubric-calibrations/{first['id']}/publish", "assessor1")
    assert r.status_code == 409 and "is retired, not a draft" in r.get_json()["detail"]


def test_bad_input_is_refused_with_the_field(world: ApiWorld) -> None:
    rubric = _rated(world, n=MIN_STUDENTS - 1)
    url = f"/api/v1/rubrics/{rubric}/calibrations"
    cases = [
        ({"model": "grm"}, 422, "json.model"),
        ({"version": "one"}, 422, "json.version"),
        ({"version": 0}, 422, "json.version"),
        ({"version": 9}, 422, "version"),
        ({}, 422, "version"),  # too few students
        ({"colour": "red"}, 422, "json.colour"),
    ]
    for body, status, field in cases:
        r = world.call("post", url, "assessor1", json=body)
        assert r.status_code == status, (body, r.get_json())
        assert r.mimetype == "application/problem+json"
        assert field in [e["field"] for e in r.get_json()["errors"]], (body, r.get_json())
    detail = world.call("post", url, "assessor1", json={}).get_json()["detail"]
    assert f"only {MIN_STUDENTS - 1} students" in detail and f"at least {MIN_STUDENTS}" in detail
    assert "no version 9" in world.call("post", url, "assessor1",
                                        json={"version": 9}).get_json()["detail"]
    for path in ("/api/v1/rubrics/999999/calibrations", "/api/v1/rubric-calibrations/999999"):
        assert world.call("get", path, "assessor1").status_code == 404
    assert world.call("post", "/api/v1/rubrics/999999/calibrations", "assessor1",
                      json={}).status_code == 404
    assert world.call("post", "/api/v1/rubric-calibrations/999999/publish",
                      "assessor1").status_code == 404
    r = world.call("post", url, "assessor1", data="not json", content_type="application/json")
    assert 400 <= r.status_code < 500
    # nothing was stored by any of it
    assert world.call("get", url, "assessor1").get_json()["total"] == 0


def test_teachers_and_students_are_refused(world: ApiWorld) -> None:
    rubric = _rated(world, n=MIN_STUDENTS)
    created = world.call("post", f"/api/v1/rubrics/{rubric}/calibrations", "admin1", json={})
    assert created.status_code == 201
    calibration = created.get_json()["id"]
    for user in ("teacher1", "student1"):
        for method, path in (
                ("post", f"/api/v1/rubrics/{rubric}/calibrations"),
                ("get", f"/api/v1/rubrics/{rubric}/calibrations"),
                ("get", f"/api/v1/rubric-calibrations/{calibration}"),
                ("post", f"/api/v1/rubric-calibrations/{calibration}/publish")):
            r = world.call(method, path, user, json={} if method == "post" else None)
            assert r.status_code == 403, (user, path, r.get_json())
    assert world.call("get", f"/api/v1/rubric-calibrations/{calibration}").status_code == 401
