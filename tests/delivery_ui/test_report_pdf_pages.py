"""The PDF pages: a student's report as PDF; the class pack asked for on the class page and
followed on its job page (reloading itself until the download link appears), in English and
Spanish; and in Chromium the flow, axe, and screenshots at desktop width and at 375 px."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe

from reports.models import ReportJob
from storage import utcnow
from tests.conftest import save_screenshot
from tests.delivery_ui.conftest import StudentWorld, csrf_of
from tests.reports.report_sample import pdf_pages


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def _ask(client, class_id: int, language: str = "en", follow: bool = True):
    token = csrf_of(client.get(f"/teach/classes/{class_id}").get_data(as_text=True))
    data = {"language": language, "csrf_token": token} | ({"follow": "1"} if follow else {})
    return client.post(f"/teach/classes/{class_id}/report-pack", data=data)


def test_class_pack_from_the_class_page_to_the_download(student_world: StudentWorld) -> None:
    student_world.app.config["HUEY_URL"] = "immediate"
    class_id = student_world.ids["class_id"]
    teacher = student_world.client_for("teacher1")
    html = teacher.get(f"/teach/classes/{class_id}").get_data(as_text=True)
    assert "Class report pack (PDF)" in html and 'name="language"' in html
    r = _ask(teacher, class_id, "es")
    assert r.status_code == 303 and "/teach/report-jobs/" in r.headers["Location"]
    job_page = teacher.get(r.headers["Location"])
    html = job_page.get_data(as_text=True)
    assert job_page.status_code == 200 and 'http-equiv="refresh"' not in html
    assert "Ready: 2 students." in text_of(html) and "Español" in text_of(html)
    link = re.search(r'id="download" href="([^"]+)"', html).group(1)
    pdf = teacher.get(link)
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert "Panel de la clase: 7A" in pdf_pages(pdf.data)[-1]  # the language asked for

    # Another teacher, a student, someone signed out.
    assert student_world.client_for("teacher2").get(r.headers["Location"]).status_code == 404
    assert student_world.client_for("teacher2").get(link).status_code == 404
    assert student_world.client_for("student1").get(r.headers["Location"]).status_code == 403
    assert student_world.client_for(None).get(link).status_code == 302
    other = _ask(teacher, student_world.ids["other_class_id"])
    assert other.status_code == 404


def test_a_job_in_progress_reloads_itself_and_speaks_spanish(student_world, tmp_path) -> None:
    student_world.app.config["HUEY_URL"] = f"sqlite:///{tmp_path / 'huey.sqlite3'}"
    teacher = student_world.client_for("teacher1")
    r = _ask(teacher, student_world.ids["class_id"])
    location = r.headers["Location"]
    assert location.endswith("?follow=1")  # the form's choice: follow the progress
    html = teacher.get(location).get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="2">' in html and 'id="follow-off"' in html
    assert "Waiting for a worker to start it." in text_of(html)
    job_id = int(location.split("?")[0].rsplit("/", 1)[1])
    location = f"/teach/report-jobs/{job_id}"
    quiet = teacher.get(location).get_data(as_text=True)  # the reader's choice: no reloading
    assert 'http-equiv="refresh"' not in quiet and 'id="follow-on"' in quiet
    assert 'id="check-again"' in quiet
    assert teacher.get(location + "/pdf").status_code == 303  # not ready: back to the job
    location += "?follow=1"
    with student_world.db() as session:
        job = session.get(ReportJob, job_id)
        job.status, job.progress, job.heartbeat_at = "running", 1, utcnow()
    teacher.set_cookie("lang", "es")
    html = teacher.get(location).get_data(as_text=True)
    assert "Creando: 1 de 2 estudiantes listos." in text_of(html)
    assert '<progress max="2" value="1">' in html and 'http-equiv="refresh"' in html
    with student_world.db() as session:
        session.get(ReportJob, job_id).heartbeat_at = utcnow() - timedelta(minutes=6)
    html = teacher.get(location).get_data(as_text=True)
    assert "No se pudo crear el paquete de informes." in text_of(html)
    assert 'http-equiv="refresh"' not in html


def test_a_students_report_as_pdf_for_those_who_may_read_it(student_world) -> None:
    student = student_world.ids["users"]["student1"]
    for user in ("student1", "teacher1", "admin1"):
        r = student_world.client_for(user).get(f"/students/{student}/report.pdf")
        assert r.status_code == 200 and r.mimetype == "application/pdf", user
    for user in ("student2", "teacher2", "assessor1"):
        r = student_world.client_for(user).get(f"/students/{student}/report.pdf")
        assert r.status_code == 404, user
    assert student_world.client_for(None).get(f"/students/{student}/report.pdf") \
        .status_code == 302
    client = student_world.client_for("student1")
    client.set_cookie("lang", "es")
    text = " ".join(pdf_pages(client.get(f"/students/{student}/report.pdf").data))
    assert "Informe de dominio: Student1" in text and "Aún no hay evidencia" in text


# -- in Chromium -------------------------------------------------------------------------------


def _serious(page) -> list[str]:
    violations = Axe().run(page).response["violations"]
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
            for v in violations if v["impact"] in ("serious", "critical")]


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= 375")


@pytest.mark.browser
def test_the_pack_in_chromium(sqlite_world: StudentWorld, live, page) -> None:
    sqlite_world.app.config["HUEY_URL"] = "immediate"
    page.goto(live.url + "/")
    page.get_by_label("Username").fill("teacher1")
    page.get_by_label("Password").fill(sqlite_world.password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live.url}/teach/classes/{sqlite_world.ids['class_id']}")
    page.get_by_label("Language of the pack").select_option("es")
    with page.expect_navigation():
        page.get_by_role("button", name="Make the report pack").click()
    assert page.locator("h1").inner_text() == "Class report pack (PDF)"
    assert _serious(page) == []
    save_screenshot(page, "report-pack-done")
    with page.expect_download() as download:
        page.locator("#download").click()
    assert download.value.suggested_filename.endswith(".pdf")
    job_url = page.url.split("?")[0]
    page.set_viewport_size({"width": 375, "height": 800})
    assert _fits(page)
    save_screenshot(page, "report-pack-done-375")
    # a job in progress, in Spanish, first as the reader chose not to follow it
    job_id = int(job_url.rsplit("/", 1)[1])
    with sqlite_world.db() as session:
        job = session.get(ReportJob, job_id)
        job.status, job.progress, job.heartbeat_at = "running", 1, utcnow()
    page.context.add_cookies([{"name": "lang", "value": "es", "url": live.url}])
    page.goto(job_url)
    assert page.locator("progress").count() == 1 and _fits(page)
    assert _serious(page) == []
    save_screenshot(page, "report-pack-running-es-375")
    # following it (the reader's choice, which they can stop): the page reloads on its own
    with page.expect_navigation():
        page.locator("#follow-on").click()
    assert page.locator("#follow-off").count() == 1
    assert page.locator('meta[http-equiv="refresh"]').get_attribute("content") == "2"
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live.url}/teach/classes/{sqlite_world.ids['class_id']}#report-pack")
    assert _serious(page) == []
    save_screenshot(page, "report-pack-form-es")
