"""The rubric pages through the test client: the criteria form (no JavaScript: blank blocks left
out, levels scored in order, "add" buttons keep what was typed), problems named beside their
fields, versions, import (file and pasted CSV, refused whole), export, archive, and who may."""

from __future__ import annotations

import io

from sqlalchemy import func, select

from evidence import rubrics as service
from evidence.models import Rubric
from tests.delivery_ui.conftest import StudentWorld, csrf_of


def _form(token: str, **fields: str) -> dict[str, str]:
    """The new-rubric form as a teacher fills it: two criteria of the four blocks."""
    data = {"csrf_token": token, "n_criteria": "4", "n_levels": "4", "name": "Oral defense",
            "description": "For the fractions defense", "note": "", "lowest": "1"}
    for b, (code, name, skill) in enumerate((("reasoning", "Reasoning", "algebra"),
                                             ("clarity", "Clarity", "geometry"))):
        data |= {f"c{b}_code": code, f"c{b}_name": name, f"c{b}_skill": skill}
        for j, label in enumerate(("Beginning", "Developing", "Secure")):
            data |= {f"c{b}_l{j}_label": label, f"c{b}_l{j}_descriptor": f"{name}: {label}"}
    return data | fields


def _rubrics(world: StudentWorld) -> int:
    with world.db() as session:
        return session.scalar(select(func.count(Rubric.id)))


def test_create_through_the_form_then_a_version(sqlite_world: StudentWorld) -> None:
    world = sqlite_world
    client = world.client_for("teacher1")
    page = client.get("/rubrics/new").get_data(as_text=True)
    assert page.count('class="card criterion-block"') == 4
    r = client.post("/rubrics/new", data=_form(csrf_of(page), c1_l2_label="",
                                               c1_l2_descriptor=""))
    assert r.status_code == 303, r.get_data(as_text=True)
    with world.db() as session:
        rubric = session.scalars(select(Rubric)).one()
        version = service.latest_version(session, rubric)
        assert [(c.code, c.skill, [lv["score"] for lv in c.levels]) for c in version.criteria
                ] == [("reasoning", "algebra", [1, 2, 3]), ("clarity", "geometry", [1, 2])]
        rid = rubric.id
    shown = client.get(r.headers["Location"]).get_data(as_text=True)
    assert "Version 1 of Oral defense is saved." in shown
    # Criteria with different scores: the columns are levels, each cell names its score.
    assert '<th scope="col">Level 3</th>' in shown and "Reasoning: Secure" in shown
    assert '<span class="hint">\N{EN DASH}</span>' in shown  # clarity has no third level

    page = client.get(f"/rubrics/{rid}/versions/new").get_data(as_text=True)
    assert 'value="reasoning"' in page and "Clarity: Developing" in page
    data = _form(csrf_of(page), lowest="0", note="start at 0")
    data["c0_l3_label"], data["c0_l3_descriptor"] = "Expert", "Proves it in general"
    assert client.post(f"/rubrics/{rid}/versions/new", data=data).status_code == 303
    latest = client.get(f"/rubrics/{rid}").get_data(as_text=True)
    assert "Version 2, the latest" in latest and "start at 0" in latest
    assert '<th scope="col">Level 4</th>' in latest
    old = client.get(f"/rubrics/{rid}?version=1").get_data(as_text=True)
    assert "Version 1 of 2: an earlier version" in old and "Proves it in general" not in old
    assert client.get(f"/rubrics/{rid}?version=7").status_code == 404


def test_form_problems_beside_their_fields_nothing_stored(sqlite_world: StudentWorld) -> None:
    world = sqlite_world
    client = world.client_for("assessor1")
    token = csrf_of(client.get("/rubrics/new").get_data(as_text=True))
    data = _form(token, name="", c1_code="reasoning", c1_skill="", c0_l1_descriptor="")
    data |= {"c0_l0_label": "", "c0_l0_descriptor": "", "c0_l2_label": "", "c0_l2_descriptor": ""}
    r = client.post("/rubrics/new", data=data)
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    for field_id, text in (
            ("name", "Give the rubric a name."),
            ("c1_code", "Criterion 2: the code reasoning is already used by criterion 1."),
            ("c1_skill", "Criterion 2: choose the skill it gives evidence of."),
            ("c0_l1_descriptor", "Criterion 1, level 2: describe what it looks like."),
            ("c0_levels", "Criterion 1: describe at least two levels.")):
        assert f'<p class="error" id="{field_id}-error">{text}</p>' in html, field_id
    assert ('value="reasoning" autocapitalize="none" spellcheck="false" aria-invalid="true" '
            'aria-describedby="c1_code-error code-hint-1"') in html
    assert _rubrics(world) == 0
    # The service's own checks reach the form too (a name taken, any case).
    assert client.post("/rubrics/new", data=_form(token)).status_code == 303
    r = client.post("/rubrics/new", data=_form(token, name="ORAL DEFENSE"))
    assert r.status_code == 409 and "A rubric with this name exists already." in r.get_data(
        as_text=True)


def test_add_buttons_keep_what_was_typed(sqlite_world: StudentWorld) -> None:
    client = sqlite_world.client_for("teacher1")
    token = csrf_of(client.get("/rubrics/new").get_data(as_text=True))
    html = client.post("/rubrics/new", data=_form(token, grow="criterion")).get_data(
        as_text=True)
    assert html.count('class="card criterion-block"') == 5 and 'value="clarity"' in html
    html = client.post("/rubrics/new", data=_form(token, grow="level")).get_data(as_text=True)
    assert 'id="c0_l4_label"' in html and "Reasoning: Developing" in html
    assert _rubrics(sqlite_world) == 0


CSV = ("criterion,criterion_name,criterion_description,skill,score,label,descriptor\r\n"
       "reasoning,Reasoning,,algebra,1,Low,Guesses\r\n"
       "reasoning,Reasoning,,algebra,2,High,Explains\r\n")


def test_import_export_archive(sqlite_world: StudentWorld) -> None:
    world = sqlite_world
    client = world.client_for("teacher2")
    token = csrf_of(client.get("/rubrics").get_data(as_text=True))
    r = client.post("/rubrics/import", data={"csrf_token": token, "name": "Pasted",
                                             "csv_text": CSV})
    assert r.status_code == 303
    rid = int(r.headers["Location"].rsplit("/", 1)[1])
    download = client.get(f"/rubrics/{rid}/export.csv")
    assert download.get_data(as_text=True) == CSV
    assert 'filename="rubric-' in download.headers["Content-Disposition"]
    shown = client.get(f"/rubrics/{rid}").get_data(as_text=True)
    assert '<th scope="col">Score 1</th><th scope="col">Score 2</th>' in shown
    exported = client.get(f"/rubrics/{rid}/export.json").get_data()
    r = client.post("/rubrics/import", data={"csrf_token": token, "name": "From file",
                                             "file": (io.BytesIO(exported), "r.json")},
                    content_type="multipart/form-data")
    assert r.status_code == 303

    bad = CSV.replace(",2,High", ",two,High")
    r = client.post("/rubrics/import", data={"csrf_token": token, "name": "Bad",
                                             "file": (io.BytesIO(bad.encode()), "bad.csv")},
                    content_type="multipart/form-data")
    assert r.status_code == 422
    assert "<td>row 3, score</td><td>row 3, score: &#39;two&#39; is not an integer</td>" in \
        r.get_data(as_text=True)
    r = client.post("/rubrics/import", data={"csrf_token": token, "csv_text": CSV})
    assert r.status_code == 422 and "Give the new rubric a name." in r.get_data(as_text=True)
    assert _rubrics(world) == 2

    r = client.post(f"/rubrics/{rid}/archive", data={"csrf_token": token, "archived": "1"})
    assert r.status_code == 303
    listed = client.get("/rubrics").get_data(as_text=True)
    assert "From file" in listed and "Pasted" not in listed
    assert "Pasted" in client.get("/rubrics?archived=1").get_data(as_text=True)
    assert "New version" not in client.get(f"/rubrics/{rid}").get_data(as_text=True)


def test_who_may(sqlite_world: StudentWorld) -> None:
    student = sqlite_world.client_for("student1")
    for path in ("/rubrics", "/rubrics/new", "/rubrics/import", "/rubrics/1",
                 "/rubrics/1/export.csv"):
        assert student.get(path).status_code == 403, path
    r = sqlite_world.client_for(None).get("/rubrics/new")
    assert r.status_code == 302 and "next=" in r.headers["Location"]
    admin = sqlite_world.client_for("admin1")
    assert admin.get("/rubrics/999").status_code == 404
    nav = admin.get("/rubrics").get_data(as_text=True)
    assert 'href="/rubrics"\n               aria-current="page">Rubrics</a>' in nav
