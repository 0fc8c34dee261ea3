"""GET /api/v1/rubrics/<id>/rater-analysis: roles, scope, defaults and refusals, end to end."""

from __future__ import annotations

from sqlalchemy import update

from api.db import engine_of
from evidence.models import DefenseRater, RubricVersion
from storage import session_factory, session_scope
from tests.evidence.rater_samples import scored_rubric


def seed(world, **options):
    with session_scope(session_factory(engine_of(world.app))) as session:
        ids = {"users": world.users, "class_id": world.class_id,
               "other_class_id": world.other_class_id}
        return scored_rubric(session, ids, **options)


def path(rubric_id: int, query: str = "") -> str:
    return f"/api/v1/rubrics/{rubric_id}/rater-analysis{query}"


def test_the_analysis_for_each_role(world) -> None:
    built = seed(world)
    r = world.call("get", path(built.rubric_id), "assessor1")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["n_ratings"] == 240 and body["model"] == "rating-scale"
    assert body["rubric"]["version"] == 1 and body["rubric"]["id"] == built.rubric_id
    for key in ("exact", "adjacent", "krippendorff_alpha_ordinal", "krippendorff_alpha_interval",
                "icc2_1", "icc3_1", "pairs"):
        assert key in body["agreement"]
    assert 0 <= body["agreement"]["exact"] <= body["agreement"]["adjacent"] <= 1
    assert {tuple(p["raters"]) for p in body["agreement"]["pairs"]} >= {("Teacher1", "Teacher2")}
    for key in ("raters", "criteria", "thresholds", "students"):
        assert isinstance(body[key], list)

    partial = world.call("get", path(built.rubric_id, "?version=1&model=partial-credit"),
                         "assessor1").get_json()
    assert partial["model"] == "partial-credit"
    assert {t["criterion"] for t in partial["thresholds"]} == {"reasoning", "evidence", "clarity"}

    mine = world.call("get", path(built.rubric_id), "teacher1")
    assert mine.status_code == 200 and mine.get_json()["n_ratings"] == 120  # class 7A only
    assert world.call("get", path(built.rubric_id), "admin1").get_json()["n_ratings"] == 240
    student = world.call("get", path(built.rubric_id), "student1")
    assert student.status_code == 403 and "teacher, assessor, admin" in student.get_json()["detail"]
    assert world.call("get", path(built.rubric_id)).status_code == 401


def test_query_parameters_and_refusals(world) -> None:
    built = seed(world, n_students=8, n_raters=3)
    bad = world.call("get", path(built.rubric_id, "?model=facets"), "assessor1")
    assert bad.status_code == 400
    assert bad.get_json()["errors"] == [{"field": "model", "message": bad.get_json()["detail"]}]
    assert "rating-scale, partial-credit" in bad.get_json()["detail"]
    assert world.call("get", path(built.rubric_id, "?version=2"), "assessor1").status_code == 404
    zero = world.call("get", path(built.rubric_id, "?version=0"), "assessor1")
    assert zero.status_code == 422 and zero.get_json()["errors"][0]["field"] == "query.version"
    assert world.call("get", path(10**6), "assessor1").status_code == 404
    sparse = world.call("get", path(built.rubric_id, "?version=1&model=partial-credit"),
                        "assessor1")  # 8 students: some level of some criterion is never used
    assert sparse.status_code == 409
    assert "partial-credit thresholds need every level" in sparse.get_json()["detail"]

    with session_scope(session_factory(engine_of(world.app))) as session:
        session.add(RubricVersion(rubric_id=built.rubric_id, version=2))
    # the default is still the latest version with scores
    assert world.call("get", path(built.rubric_id), "assessor1").get_json()["rubric"][
        "version"] == 1
    empty = world.call("get", path(built.rubric_id, "?version=2"), "assessor1")
    assert empty.status_code == 409 and "no submitted scores" in empty.get_json()["detail"]

    with session_scope(session_factory(engine_of(world.app))) as session:
        session.execute(update(DefenseRater).where(
            DefenseRater.rater_id != world.users["teacher1"]).values(submitted_at=None))
    one = world.call("get", path(built.rubric_id), "assessor1")
    assert one.status_code == 409
    assert "only one rater (Teacher1)" in one.get_json()["detail"]
