"""Mastery reports as PDF over HTTP: a student's at once, a class pack as a job that runs for real
(huey's immediate mode), with who may read what and what the PDFs say, in English and Spanish."""

from __future__ import annotations

from datetime import timedelta

from api.db import engine_of
from reports.dashboard import class_dashboard
from reports.models import ReportJob
from reports.pdf import DECISIONS
from reports.report import student_report
from storage import session_factory, session_scope, utcnow
from storage.accounts import User
from tests.api.test_attempts_api import _take
from tests.reports.report_sample import pdf_pages

SPANISH = {"mastered": "Dominada", "not_mastered": "No dominada",
           "needs_evidence": "Necesita más evidencia"}


def _text(data: bytes) -> str:
    return " ".join(" ".join(pdf_pages(data)).split())


def _report(world, viewer: str, student: str) -> dict:
    with session_scope(session_factory(engine_of(world.app))) as session:
        return student_report(session, session.get(User, world.users[viewer]),
                              world.users[student])


def test_student_pdf_for_whoever_may_read_the_report(world) -> None:
    _take(world, "student1")
    path = f"/api/v1/students/{world.users['student1']}/report.pdf"
    for user in ("student1", "teacher1", "admin1"):
        r = world.call("get", path, user)
        assert r.status_code == 200 and r.mimetype == "application/pdf", user
        assert r.data.startswith(b"%PDF-") and "attachment" in r.headers["Content-Disposition"]
    for user in ("student2", "student3", "teacher2", "assessor1"):
        r = world.call("get", path, user)
        assert r.status_code == 404 and r.mimetype == "application/problem+json", user
    assert world.call("get", path).status_code == 401
    missing = world.call("get", "/api/v1/students/999999/report.pdf", "admin1")
    assert missing.status_code == 404
    assert world.call("get", path + "?lang=fr", "admin1").status_code == 422

    # What the report says, the PDF says: every skill with its decision, in either language.
    report = _report(world, "teacher1", "student1")
    assert report["skills"]
    english = _text(world.call("get", path, "teacher1").data)
    spanish = _text(world.call("get", path, "teacher1",
                               headers={"Accept-Language": "es-ES,es;q=0.9"}).data)
    chosen = _text(world.call("get", path + "?lang=es", "teacher1").data)
    assert chosen.split(" Generado el ")[0] == spanish.split(" Generado el ")[0]
    assert chosen.split(" UTC. ", 1)[1] == spanish.split(" UTC. ", 1)[1]  # all but the time
    for skill in report["skills"]:
        assert f"Skill: {skill['skill']}" in english
        assert f"Habilidad: {skill['skill']}" in spanish
        decision = skill["decision"]
        assert f"{DECISIONS[decision]} ({'suggested by the model'})" in english
        assert f"{SPANISH[decision]} (sugerida por el modelo)" in spanish
    assert "Mastery report: Student1" in english and "Informe de dominio: Student1" in spanish

    # A student with no evidence gets a report that says so, not an error.
    r = world.call("get", f"/api/v1/students/{world.users['student2']}/report.pdf", "teacher1")
    assert r.status_code == 200 and "No evidence yet" in _text(r.data)


def test_class_pack_job_runs_and_its_pdf_holds_every_student(world) -> None:
    world.app.config["HUEY_URL"] = "immediate"
    _take(world, "student1")
    _take(world, "student2", answer_correctly=lambda item: False)
    base = f"/api/v1/classes/{world.class_id}/report-pack"
    r = world.call("post", base, "teacher1", json={"language": "es"})
    assert r.status_code == 202, r.get_json()
    job = r.get_json()
    assert job["status"] == "done" and job["progress"] == job["total"] == 2 and job["ready"]
    assert r.headers["Location"].endswith(f"/api/v1/report-jobs/{job['id']}")
    polled = world.call("get", f"/api/v1/report-jobs/{job['id']}", "teacher1").get_json()
    assert polled["status"] == "done" and polled["language"] == "es"
    r = world.call("get", f"/api/v1/report-jobs/{job['id']}/pdf", "admin1")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    pages = pdf_pages(r.data)
    text = _text(r.data)
    assert "Informe de dominio: Student1" in text and "Informe de dominio: Student2" in text
    assert "Panel de la clase: 7A" in pages[-1]
    for student in ("student1", "student2"):  # each student's skills with their decisions
        for skill in _report(world, "teacher1", student)["skills"]:
            assert f"Habilidad: {skill['skill']}" in text
            assert SPANISH[skill["decision"]] in text
    # The class dashboard closes the pack: the real one's grid, progress, fairness and DIF.
    with session_scope(session_factory(engine_of(world.app))) as session:
        board = class_dashboard(session, session.get(User, world.users["teacher1"]),
                                world.class_id)
    tail = " ".join(text.split("Panel de la clase: 7A", 1)[1].replace("\xa0", " ").split())
    assert board["skills"] and f"{board['n_students']} estudiante(s)" in tail
    for row in board["grid"]:
        cells = [c for c in row["cells"] if c is not None]
        assert cells and f"{row['student']['name']} " in tail
        for c in cells:
            assert f"{round(c['probability'] * 100)} %" in tail and SPANISH[c["decision"]] in tail
    for m in board["metrics"]:
        share = m["share_mastered"]
        assert f"{m['skill']} {m['n_students']} " in tail
        assert f"({share['mastered']}/{share['n']})" in tail
    for group in board["fairness"][0]["groups"]:  # two students: too few to compare
        assert group["too_few"]
    assert "tiempo estándar demasiado pocos para comparar (menos de 5 estudiantes)" in tail
    for d in board["dif"]:
        assert f"{d['skill']} {d['n_items']} {d['n_checked']} " in tail

    # Another teacher's class, or its jobs: 404; students and assessors: 403; bad input: 422.
    other = f"/api/v1/classes/{world.other_class_id}/report-pack"
    assert world.call("post", other, "teacher1", json={}).status_code == 404
    for user in ("teacher2",):
        assert world.call("get", f"/api/v1/report-jobs/{job['id']}", user).status_code == 404
        assert world.call("get", f"/api/v1/report-jobs/{job['id']}/pdf",
                          user).status_code == 404
    for user in ("student1", "assessor1"):
        assert world.call("post", base, user, json={}).status_code == 403
        assert world.call("get", f"/api/v1/report-jobs/{job['id']}", user).status_code == 403
    r = world.call("post", base, "teacher1", json={"language": "fr"})
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"] == "json.language"
    assert world.call("get", "/api/v1/report-jobs/999999", "admin1").status_code == 404


def test_a_queued_job_waits_and_a_stalled_one_fails(world, tmp_path) -> None:
    world.app.config["HUEY_URL"] = f"sqlite:///{tmp_path / 'queue' / 'huey.sqlite3'}"
    r = world.call("post", f"/api/v1/classes/{world.class_id}/report-pack", "teacher1",
                   json={}, headers={"Accept-Language": "es"})
    job = r.get_json()
    assert r.status_code == 202 and job["status"] == "queued" and job["language"] == "es"
    assert job["total"] == 2 and job["progress"] == 0 and not job["ready"]
    r = world.call("get", f"/api/v1/report-jobs/{job['id']}/pdf", "teacher1")
    assert r.status_code == 409 and "queued" in r.get_json()["detail"]

    # A worker that claimed it and went silent: reading the job marks it failed.
    with session_scope(session_factory(engine_of(world.app))) as session:
        row = session.get(ReportJob, job["id"])
        row.status, row.started_at = "running", utcnow() - timedelta(minutes=20)
        row.heartbeat_at = utcnow() - timedelta(minutes=10)
    polled = world.call("get", f"/api/v1/report-jobs/{job['id']}", "teacher1").get_json()
    assert polled["status"] == "failed" and "no sign of life" in polled["error"]
    r = world.call("get", f"/api/v1/report-jobs/{job['id']}/pdf", "teacher1")
    assert r.status_code == 409 and "failed" in r.get_json()["detail"]

    world.app.config["HUEY_URL"] = "redis://localhost:1/0"  # unusable: a clear 503
    r = world.call("post", f"/api/v1/classes/{world.class_id}/report-pack", "teacher1", json={})
    assert r.status_code == 503 and r.mimetype == "application/problem+json"


def test_the_worker_task_fails_a_pack_clearly_and_runs_a_job_once(world, tmp_path) -> None:
    from api.jobs import run_report_job

    world.app.config["HUEY_URL"] = f"sqlite:///{tmp_path / 'queue' / 'huey.sqlite3'}"
    url = engine_of(world.app).url.render_as_string(hide_password=False)
    asked = [world.call("post", f"/api/v1/classes/{world.class_id}/report-pack", "teacher1",
                        json={"language": "en"}).get_json()["id"] for _ in range(2)]
    with session_scope(session_factory(engine_of(world.app))) as session:
        session.get(ReportJob, asked[0]).requested_by = None  # the teacher's account is gone
    assert run_report_job(asked[0], url) == "failed"
    failed = world.call("get", f"/api/v1/report-jobs/{asked[0]}", "admin1").get_json()
    assert failed["status"] == "failed" and "no longer exists" in failed["error"]
    assert "Traceback" not in failed["error"] and "\n" not in failed["error"]
    # The task as a consumer runs it: done once; a second delivery of the same job is skipped.
    assert run_report_job(asked[1], url) == "done"
    assert run_report_job(asked[1], url) == "skipped"
    assert run_report_job(999999, url) == "missing"
    r = world.call("get", f"/api/v1/report-jobs/{asked[1]}/pdf", "teacher1")
    assert r.status_code == 200 and "Class dashboard: 7A" in _text(r.data)
