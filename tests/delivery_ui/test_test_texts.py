"""A test's name, description and skill names in the reader's language: set through the tests
API, checked (a bad part is named), shown on the student pages with English as the fallback,
and filled in Spanish for the demo."""

from __future__ import annotations

import re

from api.demo import demo_translations
from item_bank.demo_items import SKILLS
from tests.delivery_ui.conftest import StudentWorld, csrf_of

ITEM = re.compile(r'name="item_id" value="(\d+)"')
KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')

SPANISH = {"es": {"name": "Matemáticas", "description": "Matemáticas adaptativas",
                  "skills": {"algebra": "Álgebra", "geometry": "Geometría",
                             "statistics": "Estadística"}}}


def _token(world: StudentWorld, username: str) -> str:
    r = world.app.test_client().post("/api/v1/auth/token",
                                     json={"username": username, "password": world.password})
    return r.get_json()["access_token"]


def _patch(world: StudentWorld, body: dict):
    return world.app.test_client().patch(
        f"/api/v1/tests/{world.test_id}", json=body,
        headers={"Authorization": f"Bearer {_token(world, 'assessor1')}"})


def _take_whole_test(world: StudentWorld, client, username: str = "student1") -> str:
    page = client.get("/my-tests").get_data(as_text=True)
    html = client.post(f"/tests/{world.test_id}/start", data={"csrf_token": csrf_of(page)},
                       follow_redirects=True).get_data(as_text=True)
    attempt_id = world.attempts(username)[-1].id
    while ITEM.search(html):
        html = client.post(f"/attempts/{attempt_id}/answer", follow_redirects=True, data={
            "csrf_token": csrf_of(html), "item_id": ITEM.search(html).group(1),
            "idempotency_key": KEY.search(html).group(1), "response": "1"}
        ).get_data(as_text=True)
    return html


def test_texts_are_set_through_the_api_and_shown_in_the_readers_language(
        student_world: StudentWorld) -> None:
    r = _patch(student_world, {"translations": SPANISH})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["translations"] == SPANISH and r.get_json()["version"] == 1  # not a
    # new version: what the test delivers is unchanged
    listed = student_world.app.test_client().get(
        "/api/v1/tests", headers={"Authorization": f"Bearer {_token(student_world, 'student1')}"})
    assert listed.get_json()["items"][0]["translations"] == SPANISH  # clients can localise too

    spanish = student_world.client_for("student1")
    spanish.set_cookie("lang", "es")
    page = spanish.get("/my-tests").get_data(as_text=True)
    assert ">Matemáticas</h3>" in page and "<p>Matemáticas adaptativas</p>" in page
    result = _take_whole_test(student_world, spanish)
    assert "Tu resultado · Matemáticas</title>" in result
    assert re.search(r"<th scope=\"row\">(Álgebra|Geometría|Estadística)</th>", result)
    assert not re.search(r"<th scope=\"row\">(Algebra|Geometry|Statistics)</th>", result)

    english = student_world.client_for("student2")  # English reader: the English fields
    page = english.get("/my-tests").get_data(as_text=True)
    assert ">Maths</h3>" in page and "<p>Adaptive maths</p>" in page
    result = _take_whole_test(student_world, english, "student2")
    assert re.search(r"<th scope=\"row\">(Algebra|Geometry|Statistics)</th>", result)


def test_a_language_without_some_texts_falls_back_to_english(
        student_world: StudentWorld) -> None:
    assert _patch(student_world, {"translations": {"es": {"skills": {"algebra": "Álgebra"}},
                                                   "en": {"skills": {
                                                       "geometry": "Shapes and space"}}}}
                  ).status_code == 200
    spanish = student_world.client_for("student1")
    spanish.set_cookie("lang", "es")
    assert ">Maths</h3>" in spanish.get("/my-tests").get_data(as_text=True)
    result = _take_whole_test(student_world, spanish)
    rows = set(re.findall(r'<th scope="row">([^<]+)</th>', result))
    assert rows <= {"Álgebra", "Shapes and space", "Statistics"} and rows


def test_bad_texts_are_refused_naming_the_part(student_world: StudentWorld) -> None:
    for body, named in [
        ({"es": {"name": ""}}, "translations.es.name"),
        ({"es": {"name": 3}}, "translations.es.name"),
        ({"es": {"title": "x"}}, "translations.es: unknown field(s) title"),
        ({"es": {"skills": {"algebra": ""}}}, "translations.es.skills.algebra"),
        ({"es": {"skills": ["Álgebra"]}}, "translations.es.skills"),
        ({"Spanish!": {"name": "x"}}, "translations.Spanish!"),
    ]:
        r = _patch(student_world, {"translations": body})
        assert r.status_code == 422, (body, r.get_json())
        problem = r.get_json()
        assert named in str(problem), (named, problem)
    assert _patch(student_world, {"translations": {}}).get_json()["translations"] == {}


def test_the_demo_names_its_test_and_all_six_skills_in_spanish() -> None:
    spanish = demo_translations()["es"]
    assert spanish["name"] and spanish["description"]
    assert set(spanish["skills"]) == set(SKILLS)
