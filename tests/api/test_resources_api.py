"""The learning resources API on SQLite and PostgreSQL: adding, listing by skill, changing,
archiving and restoring, and the bad input each gets a 422 naming the field for (nothing kept)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from api.db import get_session
from reports.models import LearningResource

URL = "/api/v1/resources"


def _add(world, user="teacher1", **body):
    body = {"title": "Halves and quarters", "url": "https://example.org/halves",
            "skill": "algebra", "level_min": -1.0, "level_max": 0.5, **body}
    r = world.call("post", URL, user, json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def _count(world) -> int:
    with world.app.app_context():
        return get_session().scalar(select(func.count()).select_from(LearningResource))


def test_staff_add_list_change_archive_and_restore_resources(world) -> None:
    first = _add(world)
    assert first["archived"] is False and first["created_by"] == world.users["teacher1"]
    assert world.call("get", f"{URL}/{first['id']}", "assessor1").get_json()["title"] == \
        "Halves and quarters"
    second = _add(world, "assessor1", title="Shapes", skill="geometry", level_min=None,
                  level_max=None, description="Open at both ends")
    assert (second["level_min"], second["level_max"]) == (None, None)
    listed = world.call("get", URL, "admin1").get_json()
    assert [r["skill"] for r in listed["items"]] == ["algebra", "geometry"]
    only = world.call("get", f"{URL}?skill=geometry", "teacher2").get_json()
    assert [r["id"] for r in only["items"]] == [second["id"]]

    r = world.call("patch", f"{URL}/{first['id']}", "teacher2",
                   json={"level_max": 2.0, "title": "  Halves  "})
    assert r.status_code == 200 and r.get_json()["level_max"] == 2.0
    assert r.get_json()["title"] == "Halves"

    assert world.call("delete", f"{URL}/{first['id']}", "teacher1").status_code == 204
    active = world.call("get", URL, "teacher1").get_json()
    assert [x["id"] for x in active["items"]] == [second["id"]]
    archived = world.call("get", f"{URL}?archived=true", "teacher1").get_json()
    assert [x["id"] for x in archived["items"]] == [first["id"]]
    assert archived["items"][0]["archived_at"] is not None
    r = world.call("patch", f"{URL}/{first['id']}", "teacher1", json={"archived": False})
    assert r.get_json()["archived"] is False
    assert world.call("get", URL, "teacher1").get_json()["total"] == 2


def test_students_may_not_read_or_write_resources(world) -> None:
    added = _add(world)
    for method, path in (("get", URL), ("get", f"{URL}/{added['id']}"),
                         ("delete", f"{URL}/{added['id']}")):
        assert world.call(method, path, "student1").status_code == 403
    r = world.call("post", URL, "student1", json={"title": "x", "url": "https://e.org",
                                                   "skill": "algebra"})
    assert r.status_code == 403
    assert world.call("get", f"{URL}/999999", "teacher1").status_code == 404
    assert world.call("get", URL).status_code == 401


@pytest.mark.parametrize(("body", "field"), [
    ({"title": ""}, "title"),
    ({"title": "   "}, "title"),
    ({"url": "ftp://example.org/file"}, "url"),
    ({"url": "javascript:alert(1)"}, "url"),
    ({"url": "https://"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"skill": "poetry"}, "skill"),
    ({"level_min": 1.0, "level_max": -1.0}, "level_min"),
    ({"level_min": 7.5}, "level_min"),
    ({"level_max": "high"}, "level_max"),
    ({"level_min": True}, "level_min"),
    ({"colour": "red"}, "colour"),
])
def test_bad_input_is_refused_naming_the_field(world, body, field) -> None:
    full = {"title": "T", "url": "https://example.org/t", "skill": "algebra", **body}
    r = world.call("post", URL, "teacher1", json=full)
    assert r.status_code == 422, r.get_json()
    assert field in str(r.get_json()), r.get_json()
    assert _count(world) == 0


def test_missing_fields_and_bad_changes_are_refused(world) -> None:
    for missing in ("title", "url", "skill"):
        body = {"title": "T", "url": "https://example.org/t", "skill": "algebra"}
        body.pop(missing)
        r = world.call("post", URL, "teacher1", json=body)
        assert r.status_code == 422 and missing in str(r.get_json())
    added = _add(world)  # levels -1 .. 0.5
    r = world.call("patch", f"{URL}/{added['id']}", "teacher1", json={"level_min": 1.0})
    assert r.status_code == 422 and "level_min" in str(r.get_json())
    r = world.call("patch", f"{URL}/{added['id']}", "teacher1", json={"url": "mailto:a@b.c"})
    assert r.status_code == 422 and "url" in str(r.get_json())
    r = world.call("post", URL, "teacher1", data="not json", content_type="application/json")
    assert r.status_code in (400, 422)
    after = world.call("get", f"{URL}/{added['id']}", "teacher1").get_json()
    assert (after["level_min"], after["url"]) == (-1.0, "https://example.org/halves")

