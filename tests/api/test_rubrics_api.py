"""The rubrics API end to end: versions, history, archive, import and export, who may, and bad
input answered with every problem's field path (never a 5xx)."""

from __future__ import annotations

import io

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from sqlalchemy import func, select

from api.db import engine_of
from evidence.models import Rubric, RubricCriterion
from storage import session_factory

from .conftest import ApiWorld

BASE = "/api/v1/rubrics"


def _criteria(top: int = 3) -> list[dict]:
    return [{"code": code, "name": code.title(), "description": f"About {code}", "skill": skill,
             "levels": [{"score": s, "label": f"Level {s}", "descriptor": f"{code} at {s}"}
                        for s in range(1, top + 1)]}
            for code, skill in (("reasoning", "algebra"), ("clarity", "geometry"))]


def _count(world: ApiWorld, model) -> int:
    with session_factory(engine_of(world.app))() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_create_version_history_archive(world: ApiWorld) -> None:
    r = world.call("post", BASE, "teacher1", json={"name": "Oral defense", "description": "D",
                                                   "criteria": _criteria(), "note": "first"})
    assert r.status_code == 201, r.get_json()
    rubric = r.get_json()
    assert r.headers["Location"].endswith(f"{BASE}/{rubric['id']}")
    assert rubric["version"]["version"] == 1
    assert [c["code"] for c in rubric["version"]["criteria"]] == ["reasoning", "clarity"]
    assert rubric["version"]["criteria"][0]["levels"][2] == {
        "score": 3, "label": "Level 3", "descriptor": "reasoning at 3"}
    rid = rubric["id"]

    r = world.call("post", f"{BASE}/{rid}/versions", "assessor1",
                   json={"criteria": _criteria(4), "note": "four levels"})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert (body["version"]["version"], body["version"]["description"]) == (2, "D")
    assert [(v["version"], v["note"], v["n_criteria"]) for v in body["versions"]] == [
        (1, "first", 2), (2, "four levels", 2)]
    old = world.call("get", f"{BASE}/{rid}?version=1", "admin1").get_json()
    assert len(old["version"]["criteria"][0]["levels"]) == 3
    assert world.call("get", f"{BASE}/{rid}?version=9", "admin1").status_code == 404

    listed = world.call("get", BASE, "teacher2").get_json()
    assert [(i["name"], i["archived"], i["latest_version"]["version"])
            for i in listed["items"]] == [("Oral defense", False, 2)]
    assert world.call("post", f"{BASE}/{rid}/archive", "teacher2").get_json()["archived"]
    assert world.call("get", f"{BASE}?archived=false", "teacher2").get_json()["total"] == 0
    r = world.call("post", f"{BASE}/{rid}/versions", "teacher1", json={"criteria": _criteria()})
    assert r.status_code == 409
    assert not world.call("post", f"{BASE}/{rid}/unarchive", "teacher2").get_json()["archived"]
    assert world.call("get", f"{BASE}?archived=false", "teacher2").get_json()["total"] == 1


def test_students_get_403_and_strangers_401(world: ApiWorld) -> None:
    r = world.call("post", BASE, "admin1", json={"name": "R", "criteria": _criteria()})
    rid = r.get_json()["id"]
    for method, path in (("get", BASE), ("post", BASE), ("get", f"{BASE}/{rid}"),
                         ("post", f"{BASE}/{rid}/versions"), ("post", f"{BASE}/{rid}/archive"),
                         ("post", f"{BASE}/import"), ("get", f"{BASE}/{rid}/export")):
        assert world.call(method, path, "student1", json={}).status_code == 403, path
        assert world.call(method, path).status_code == 401, path


def test_bad_input_names_every_field_and_stores_nothing(world: ApiWorld) -> None:
    bad = _criteria()
    bad[1]["levels"][1]["score"] = 5
    bad[1]["skill"] = "poetry"
    r = world.call("post", BASE, "teacher1", json={"name": "Bad", "criteria": bad})
    assert r.status_code == 422
    problem = r.get_json()
    assert r.mimetype == "application/problem+json"
    assert [e["field"] for e in problem["errors"]] == ["criteria[1].skill",
                                                       "criteria[1].levels[1].score"]
    assert "'poetry' is not a skill of the item bank (its skills: algebra, geometry, " \
           "statistics)" in problem["errors"][0]["message"]
    assert "criterion 'clarity'" in problem["errors"][1]["message"]
    for body in ([], "text", {"name": "X", "criteria": "no"}, {"name": "X", "criteria": [],
                                                               "colour": "red"}):
        r = world.call("post", BASE, "teacher1", json=body)
        assert r.status_code == 422, (body, r.get_json())
        assert r.get_json()["errors"][0]["field"] in ("body", "criteria", "colour")
    assert _count(world, Rubric) == 0 and _count(world, RubricCriterion) == 0

    world.call("post", BASE, "teacher1", json={"name": "Taken", "criteria": _criteria()})
    r = world.call("post", BASE, "teacher2", json={"name": "TAKEN", "criteria": _criteria()})
    assert r.status_code == 409 and r.get_json()["errors"][0]["field"] == "name"


def _csv(text: str, name: str = "Imported", filename: str = "rubric.csv") -> dict:
    return {"data": {"file": (io.BytesIO(text.encode()), filename), "name": name},
            "content_type": "multipart/form-data"}


def test_import_and_export_round_trip(world: ApiWorld) -> None:
    rid = world.call("post", BASE, "teacher1", json={"name": "Source", "description": "S",
                                                     "criteria": _criteria()}).get_json()["id"]
    for fmt in ("json", "csv"):
        r = world.call("get", f"{BASE}/{rid}/export?format={fmt}", "teacher1")
        assert r.status_code == 200
        assert f'filename="rubric-{rid}-v1.{fmt}"' in r.headers["Content-Disposition"]
        first = r.get_data(as_text=True)
        if fmt == "json":
            r = world.call("post", f"{BASE}/import", "teacher2",
                           json={**r.get_json(), "name": "From JSON"})
        else:
            r = world.call("post", f"{BASE}/import", "assessor1", **_csv(first, "From CSV"))
        assert r.status_code == 201, r.get_json()
        again = world.call("get", f"{BASE}/{r.get_json()['id']}/export?format={fmt}",
                           "teacher1").get_data(as_text=True)
        assert again == (first.replace('"Source"', '"From JSON"') if fmt == "json" else first)
    # A JSON file upload takes the form's name in place of the file's.
    exported = world.call("get", f"{BASE}/{rid}/export", "teacher1").get_data()
    r = world.call("post", f"{BASE}/import", "teacher1",
                   data={"file": (io.BytesIO(exported), "r.json"), "name": "Renamed"},
                   content_type="multipart/form-data")
    assert r.status_code == 201 and r.get_json()["name"] == "Renamed"
    assert world.call("get", f"{BASE}/{rid}/export?version=2", "teacher1").status_code == 404


def test_bad_csv_upload_refused_whole(world: ApiWorld) -> None:
    text = ("criterion,criterion_name,criterion_description,skill,score,label,descriptor\n"
            "reasoning,Reasoning,,algebra,1,Low,Guesses\n"
            "reasoning,Reasoning,,algebra,three,High,Explains\n")
    r = world.call("post", f"{BASE}/import", "teacher1", **_csv(text))
    assert r.status_code == 422
    assert r.get_json()["errors"] == [{"field": "row 3, score",
                                       "message": "row 3, score: 'three' is not an integer"}]
    r = world.call("post", f"{BASE}/import", "teacher1", **_csv(text.replace("three", "2"), ""))
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "name"
    r = world.call("post", f"{BASE}/import", "teacher1", **_csv("", "X"))
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "file"
    r = world.call("post", f"{BASE}/import", "teacher1", **_csv("{not json", "X", "r.json"))
    assert r.status_code == 422 and "line 1, column 2: not valid JSON" in r.get_json()["detail"]
    assert _count(world, Rubric) == 0


def test_openapi_documents_the_rubric_operations(world: ApiWorld) -> None:
    spec = world.client.get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]
    for path in ("/api/v1/rubrics", "/api/v1/rubrics/{rubric_id}",
                 "/api/v1/rubrics/{rubric_id}/versions", "/api/v1/rubrics/{rubric_id}/archive",
                 "/api/v1/rubrics/{rubric_id}/unarchive", "/api/v1/rubrics/import",
                 "/api/v1/rubrics/{rubric_id}/export"):
        assert path in paths, path
    body = paths["/api/v1/rubrics"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"].endswith("/RubricCreate")
    assert set(paths["/api/v1/rubrics/import"]["post"]["requestBody"]["content"]) == {
        "application/json", "multipart/form-data"}


FUZZ = settings(max_examples=15, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def _fuzz(operation, headers: dict[str, str], rubric_id: int) -> None:
    @FUZZ
    @given(case=operation.as_strategy())
    def check(case) -> None:
        case.headers = {**(case.headers or {}), **headers}
        if case.path_parameters and "rubric_id" in case.path_parameters:
            case.path_parameters["rubric_id"] = rubric_id  # an existing rubric: deeper paths
        case.call_and_validate(checks=[not_a_server_error])

    check()


@pytest.mark.parametrize("any_db_url", ["sqlite"], indirect=True)
def test_fuzzed_rubric_requests_never_fail_the_server(world: ApiWorld) -> None:
    rid = world.call("post", BASE, "admin1", json={"name": "Fuzz",
                                                   "criteria": _criteria()}).get_json()["id"]
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", world.app)
    operations = [op for op in (r.ok() for r in schema.get_all_operations())
                  if op.path.startswith("/api/v1/rubrics")]
    assert len(operations) == 11  # the rubrics API, its rater analysis and calibrations
    for username in ("admin1", "student1"):
        headers = {"Authorization": f"Bearer {world.token(username)}"}
        for operation in operations:
            _fuzz(operation, headers, rid)
