"""The rubric calibration pages: the list with its run form, the review (criteria with standard
errors, category curves, rater severities, provenance) and publication; roles; and in Chromium
(English and Spanish, keyboard, 375 px, axe)."""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from sqlalchemy import select

from evidence.models import RubricCalibration, RubricCalibrationStatus
from evidence.rubric_calibration import MIN_STUDENTS
from tests.conftest import LiveServer, save_screenshot
from tests.delivery_ui.conftest import StudentWorld, csrf_of
from tests.evidence.rubric_world import CRITERIA, fill


def _rated(world: StudentWorld, n: int = 120) -> int:
    with world.db() as session:
        return fill(session, test_id=world.test_id, class_id=world.ids["class_id"],
                    n_students=n).rubric_id


def test_run_review_and_publish_through_the_pages(student_world: StudentWorld) -> None:
    rubric = _rated(student_world)
    client = student_world.client_for("assessor1")
    url = f"/rubrics/{rubric}/calibrations"
    listing = client.get(url)
    assert listing.status_code == 200
    html = listing.get_data(as_text=True)
    assert "No calibrations yet." in html and 'name="model" value="gpcm"' in html
    token = csrf_of(html)
    # a version the rubric does not have: the form again, with the error at the field
    bad = client.post(url, data={"version": "7", "model": "gpcm", "csrf_token": token})
    assert bad.status_code == 422
    assert "Choose one of the rubric" in bad.get_data(as_text=True)
    done = client.post(url, data={"version": "1", "model": "gpcm", "csrf_token": token})
    assert done.status_code == 303
    review_url = done.headers["Location"]
    assert re.search(rf"/rubrics/{rubric}/calibrations/\d+$", review_url)
    page = client.get(review_url).get_data(as_text=True)
    assert "is ready for review" in page
    assert page.count('<svg class="chart"') == len(CRITERIA)
    assert page.count("data-category=") == 4 * len(CRITERIA)
    assert "Rater 1" in page and "95% interval" in page and 'id="publish"' in page
    assert "120 students, 960 ratings by 6 raters, 1800 answers" in page
    published = client.post(review_url + "/publish", data={"csrf_token": csrf_of(page)})
    assert published.status_code == 303
    page = client.get(review_url).get_data(as_text=True)
    assert "is published" in page and 'id="publish"' not in page
    with student_world.db() as session:
        assert session.scalars(select(RubricCalibration.status)).all() == [
            RubricCalibrationStatus.PUBLISHED]
    # publishing again says why not, never a server error
    again = client.post(review_url + "/publish", data={"csrf_token": csrf_of(page)})
    assert again.status_code == 303
    assert "not a draft" in client.get(review_url).get_data(as_text=True)
    listing = client.get(url).get_data(as_text=True)
    assert "Calibration " in listing and "published" in listing


def test_too_few_students_and_other_roles(student_world: StudentWorld) -> None:
    rubric = _rated(student_world, n=MIN_STUDENTS - 1)
    url = f"/rubrics/{rubric}/calibrations"
    client = student_world.client_for("admin1")
    token = csrf_of(client.get(url).get_data(as_text=True))
    refused = client.post(url, data={"version": "1", "model": "pcm", "csrf_token": token})
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    assert f"at least {MIN_STUDENTS}" in text and 'aria-invalid="true"' in text
    assert f"Only {MIN_STUDENTS - 1} students have both answers" in text
    spanish = client.post(url, data={"version": "1", "model": "pcm", "csrf_token": token},
                          headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert f"Solo {MIN_STUDENTS - 1} estudiantes" in spanish
    for user in ("teacher1", "student1"):
        assert student_world.client_for(user).get(url).status_code == 403
    assert student_world.client_for(None).get(url).status_code == 302
    assert client.get("/rubrics/999999/calibrations").status_code == 404
    assert client.get(f"{url}/999999").status_code == 404


@pytest.mark.browser
@pytest.mark.parametrize("language", ["en", "es"])
def test_the_calibration_pages_in_a_browser(sqlite_world: StudentWorld, browser,
                                            language) -> None:
    rubric = _rated(sqlite_world)
    es = language == "es"
    violations = []
    context = browser.new_context(locale="es-ES" if es else "en-GB")
    page = context.new_page()
    try:
        with LiveServer(sqlite_world.app) as live:
            page.goto(live.url + "/")
            page.locator("#username").fill("assessor1")
            page.locator("#password").fill(sqlite_world.password)
            with page.expect_navigation():
                page.locator("form.card button[type=submit]").click()
            page.goto(f"{live.url}/rubrics/{rubric}/calibrations")
            assert page.locator("html").get_attribute("lang") == language
            violations += Axe().run(page).response["violations"]
            save_screenshot(page, f"rubric-calibrations-{language}")
            # keyboard only: choose the partial credit model and run
            page.locator("input[name=model][value=gpcm]").focus()
            page.keyboard.press("ArrowDown")
            assert page.locator("input[name=model][value=pcm]").is_checked()
            page.keyboard.press("Tab")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert re.search(r"/calibrations/\d+$", page.url)
            assert page.locator("svg.chart").count() == len(CRITERIA)
            assert page.locator("#raters tbody tr").count() == 6
            violations += Axe().run(page).response["violations"]
            save_screenshot(page, f"rubric-calibration-review-{language}")
            page.set_viewport_size({"width": 375, "height": 800})
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"the page is {width}px wide on a 375px screen"
            violations += Axe().run(page).response["violations"]
            save_screenshot(page, f"rubric-calibration-review-{language}-375")
            page.set_viewport_size({"width": 1280, "height": 800})
            page.locator("#publish").focus()
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.locator("#publish").count() == 0
            status = page.locator(".status").first.inner_text()
            assert ("publicada" if es else "published") in status
    finally:
        context.close()
    serious = [f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in violations
               if v["impact"] in ("serious", "critical")]
    assert not serious, serious
