"""The rater-analysis page: roles and scope, the form, refusals, Spanish; and in Chromium the
charts and tables, axe, keyboard use, and screenshots at desktop width and at 375 px."""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from sqlalchemy import update

from evidence.models import DefenseRater, RubricVersion
from tests.conftest import save_screenshot
from tests.delivery_ui.conftest import StudentWorld
from tests.evidence.rater_samples import scored_rubric


def seed(world: StudentWorld, **options):
    with world.db() as session:
        return scored_rubric(session, world.ids, **options)


def url(rubric_id: int, query: str = "") -> str:
    return f"/rubrics/{rubric_id}/raters{query}"


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_assessors_and_teachers_see_the_analysis_students_do_not(student_world) -> None:
    built = seed(student_world)
    assessor = student_world.client_for("assessor1")
    r = assessor.get(url(built.rubric_id))
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    text = text_of(html)
    assert "Raters: Oral defense" in text and "240 scores" in text
    assert 'id="agreement-figures"' in html and 'id="pairs-table"' in html
    assert "Teacher1 \u2013 Teacher2" in text
    assert "Rater 4" in text
    assert "Pupil" not in text  # no student names for the assessment team
    teacher = student_world.client_for("teacher1")
    mine = teacher.get(url(built.rubric_id))
    assert mine.status_code == 200 and "120 scores" in text_of(mine.get_data(as_text=True))
    assert "Only the defenses of the classes you teach" in text_of(mine.get_data(as_text=True))
    student = student_world.client_for("student1").get(url(built.rubric_id))
    assert student.status_code == 403
    assert student_world.client_for(None).get(url(built.rubric_id)).status_code == 302
    assert assessor.get(url(10**6)).status_code == 404
    assert assessor.get(url(built.rubric_id, "?version=7")).status_code == 404


def test_the_form_and_refusals(student_world) -> None:
    built = seed(student_world, n_students=8, n_raters=3)
    client = student_world.client_for("assessor1")
    bad = client.get(url(built.rubric_id, "?model=facets"))
    assert bad.status_code == 400
    html = bad.get_data(as_text=True)
    assert "Choose one of the models offered." in html and 'aria-invalid="true"' in html
    bad_version = client.get(url(built.rubric_id, "?version=abc"))
    assert bad_version.status_code == 400 and "Enter a whole number" in bad_version.get_data(
        as_text=True)
    # 8 students leave some level unused: partial credit is refused, the choice kept in the form
    chosen = client.get(url(built.rubric_id, "?version=1&model=partial-credit"))
    assert chosen.status_code == 409
    assert re.search(r'<option value="partial-credit" selected>', chosen.get_data(as_text=True))
    assert "partial-credit thresholds need every level" in chosen.get_data(as_text=True)
    with student_world.db() as session:
        session.add(RubricVersion(rubric_id=built.rubric_id, version=2))
    empty = client.get(url(built.rubric_id, "?version=2"))
    assert empty.status_code == 409
    assert "no submitted scores under rubric" in empty.get_data(as_text=True)
    with student_world.db() as session:
        session.execute(update(DefenseRater).where(
            DefenseRater.rater_id != student_world.ids["users"]["teacher1"])
            .values(submitted_at=None))
    one = client.get(url(built.rubric_id))
    assert one.status_code == 409 and "only one rater (Teacher1)" in one.get_data(as_text=True)


def test_the_page_in_spanish(student_world) -> None:
    built = seed(student_world)
    client = student_world.client_for("assessor1")
    client.set_cookie("lang", "es")
    text = text_of(client.get(url(built.rubric_id)).get_data(as_text=True))
    for words in ("Calificadores", "Acuerdo exacto", "Alfa de Krippendorff (ordinal)",
                  "Pares de calificadores", "Kappa ponderada cuadrática", "Analizar"):
        assert words in text, words


# -- in Chromium -------------------------------------------------------------------------------


def _serious(page) -> list[str]:
    violations = Axe().run(page).response["violations"]
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
            for v in violations if v["impact"] in ("serious", "critical")]


def _sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(base + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


@pytest.mark.browser
def test_the_page_in_chromium(sqlite_world: StudentWorld, live, page) -> None:
    built = seed(sqlite_world)
    _sign_in(page, live.url, "assessor1", sqlite_world.password)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live.url + url(built.rubric_id))
    assert page.locator("h1").inner_text() == "Raters: Oral defense"
    assert page.locator("#pairs-table tbody tr").count() >= 5
    assert _serious(page) == []
    save_screenshot(page, "raters-analysis")
    # keyboard only: choose the partial-credit model and analyse again
    page.locator("#model").focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Analyse"
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "model=partial-credit" in page.url
    assert page.locator("#model").input_value() == "partial-credit"
    page.set_viewport_size({"width": 375, "height": 800})
    save_screenshot(page, "raters-analysis-375")
    wide = page.evaluate("""[...document.querySelectorAll('body *')].filter(
        e => e.getBoundingClientRect().right > 376).map(e => e.tagName + '#' + e.id + '.'
        + e.className).slice(0, 8)""")
    assert page.evaluate("document.documentElement.scrollWidth <= 375"), wide
    assert _serious(page) == []
    # in Spanish
    page.set_viewport_size({"width": 1280, "height": 900})
    page.context.add_cookies([{"name": "lang", "value": "es", "url": live.url}])
    page.goto(live.url + url(built.rubric_id))
    assert page.locator("h1").inner_text() == "Calificadores: Oral defense"
    assert _serious(page) == []
    save_screenshot(page, "raters-analysis-es")


# -- the fit's part of the page, from a result of the shape cat-engine raters writes ------------

FIT = {
    "raters": [
        {"rater": "Ana", "severity": -0.42, "se": 0.2, "infit": 1.02, "outfit": 0.95, "n": 30},
        {"rater": "Ben", "severity": 0.91, "se": 0.3, "infit": 1.72, "outfit": 1.31, "n": 24},
        {"rater": "Cai", "severity": -0.49, "se": 0.25, "infit": 0.81, "outfit": 0.42, "n": 18},
    ],
    "criteria": [{"criterion": "reasoning", "difficulty": -0.6, "se": 0.1, "infit": 1.0,
                  "outfit": 1.1},
                 {"criterion": "clarity", "difficulty": 0.6, "se": 0.1, "infit": 1.6,
                  "outfit": 1.2}],
    "thresholds": [-1.3, 0.1, 1.2],
    "students": [{"student_id": f"s{i}", "measure": (i - 10) / 4, "se": 0.5,
                  "fair_average": 2.5} for i in range(21)],
}


def test_the_fit_tables_and_charts_render_from_the_result(sqlite_world) -> None:
    from flask import render_template

    from api.rater_pages import MODEL_NAMES
    from reports import rater_charts
    from storage.accounts import Role, User

    app = sqlite_world.app
    agreement = {"exact": 0.5, "adjacent": 0.9, "krippendorff_alpha_ordinal": 0.7,
                 "krippendorff_alpha_interval": 0.72, "icc2_1": 0.6, "icc3_1": 0.65,
                 "n_units": 10, "n_pairs": 10, "pairs": [], "criteria": []}
    result = {**FIT, "agreement": agreement, "model": "rating-scale", "n_ratings": 72,
              "rubric": {"id": 1, "name": "Oral defense", "version": 1}}
    with app.test_request_context("/rubrics/1/raters"):
        html = render_template(
            "raters/analysis.html", user=User(username="a", role=Role.ASSESSOR),
            rubric={"id": 1, "name": "Oral defense"},
            versions=[{"version": 1, "n_scores": 72}], chosen=1, model="rating-scale",
            model_names=MODEL_NAMES, errors={}, refusal=None, result=result,
            fit_range=rater_charts.FIT_RANGE, misfit=rater_charts.misfit, z95=rater_charts.Z95,
            forest=rater_charts.severity_forest(FIT["raters"]),
            wright=rater_charts.wright_map(FIT["students"], FIT["criteria"], FIT["raters"],
                                           FIT["thresholds"]))
    text = text_of(html)
    rows = re.findall(r"<tr[^>]*>\s*<th scope=\"row\">(\w+)</th>", html.split('id="rater-table"')
                      [1].split("</table>")[0])
    assert rows == ["Ben", "Ana", "Cai"]  # harshest first, as in the chart
    assert "0.91" in text and "0.32 to 1.50" in text  # 0.91 -+ 1.96 x 0.3
    assert "Misfit: infit above 1.5" in text and "Misfit: outfit below 0.5" in text
    assert "Within 0.5 to 1.5" in text
    assert html.count('class="estimate') == 3 and html.count("estimate misfitting") == 2
    assert "Misfit: infit above 1.5" in text.split("Criteria")[-1]  # clarity
    assert html.count('<rect class="bar"') == len(rater_charts.wright_map(
        FIT["students"], [], [], [])["bars"])
    assert "The histogram counts 21 students." in text
    for label in ("reasoning", "clarity", "0|1", "1|2", "2|3"):
        assert f">{label}</text>" in html
