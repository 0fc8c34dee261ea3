"""What a review of the pages found, pinned down: forged tokens, odd digits, NUL characters,
stalled runs, an oversized session cookie, script links and lost races end in a clear answer,
never a server error or a page that waits for ever."""

from __future__ import annotations

import io
import random
from datetime import timedelta

import pytest

from item_bank.models import CalibrationRun, RunStatus
from storage import utcnow
from tests.delivery_ui.conftest import StudentWorld, csrf_of


def test_a_forged_csrf_token_with_any_characters_is_refused_not_a_crash(
        student_world: StudentWorld) -> None:
    client = student_world.app.test_client()
    client.get("/")
    for token in ("é", "😀", "x" * 5000, ""):
        r = client.post("/sign-in", data={"username": "student1", "password": "p",
                                          "csrf_token": token})
        assert r.status_code == 400, (token, r.status_code)


@pytest.mark.parametrize("path", [
    "/assess/items?page=²", "/assess/simulate?test_id=1&examinees=²", "/assess/pretest?test_id=٣",
])
def test_digits_of_other_scripts_are_not_whole_numbers(student_world: StudentWorld,
                                                        path: str) -> None:
    r = student_world.client_for("assessor1").get(path)
    assert r.status_code in (200, 422), r.status_code  # a form error or the default, no 500


def test_an_answer_with_odd_digits_is_asked_again(student_world: StudentWorld) -> None:
    from tests.delivery_ui.test_student_views import _form, _start

    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    for field, value in (("item_id", "²"), ("response", "\u0661")):
        r = client.post(f"/attempts/{attempt_id}/answer", data=_form(html, **{field: value}))
        assert r.status_code in (303, 422), (field, r.status_code)
    assert student_world.responses(attempt_id) == 0


def test_nul_characters_are_refused_by_name(student_world: StudentWorld) -> None:
    client = student_world.client_for("assessor1")
    r = client.get("/assess/items?q=a%00b")
    assert r.status_code == 422
    assert "&#39;q&#39; contains a NUL character" in r.get_data(as_text=True)
    token = csrf_of(client.get("/assess/items/1").get_data(as_text=True))
    r = client.post("/assess/items/1/status", data={"csrf_token": token, "status": "retired",
                                                    "reason": "x\x00"})
    assert r.status_code == 422 and "reason" in r.get_data(as_text=True)
    # The API: a JSON string anywhere in the body; the field is named in the problem.
    api = student_world.app.test_client()
    tok = api.post("/api/v1/auth/token", json={"username": "assessor1",
                                               "password": student_world.password})
    r = api.post("/api/v1/items", headers={"Authorization": "Bearer "
                                           + tok.get_json()["access_token"]},
                 json={"code": "NUL-1", "stem": "fine", "options": ["a", "b\x00"], "key": 0,
                       "skill": "algebra"})
    assert r.status_code == 422 and r.mimetype == "application/problem+json"
    assert "options[1]" in r.get_json()["detail"]
    # A backslash and "u0000" typed as text is not a NUL and is kept.
    r = api.post("/api/v1/items", headers={"Authorization": "Bearer "
                                           + tok.get_json()["access_token"]},
                 json={"code": "ESC-1", "stem": "What does \\u0000 mean in JSON?",
                       "options": ["NUL", "zero"], "key": 0, "skill": "algebra"})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["stem"] == "What does \\u0000 mean in JSON?"


def test_the_assessment_pages_fail_a_run_whose_worker_died(student_world: StudentWorld) -> None:
    with student_world.db() as session:
        then = utcnow() - timedelta(hours=1)
        run = CalibrationRun(kind="online", test_id=student_world.test_id, model="2pl",
                             settings={}, status=RunStatus.RUNNING, started_at=then,
                             heartbeat_at=then, worker="gone:1")
        session.add(run)
        session.flush()
        run_id = run.id
    status = student_world.client_for("assessor1").get(
        f"/assess/calibration/runs/{run_id}/status").get_json()
    assert status["status"] == "failed" and status["finished"] is True
    assert "no sign of life" in status["error"]


def test_the_import_result_fits_in_the_session_cookie(student_world: StudentWorld) -> None:
    client = student_world.client_for("assessor1")
    token = csrf_of(client.get("/assess/import").get_data(as_text=True))
    rnd = random.Random(3)
    codes = ["".join(chr(rnd.randint(0x4E00, 0x9FFF)) for _ in range(55)) + f"{n:05d}"
             for n in range(25)]
    rows = ["item_id,stem,option_1,option_2,key"] + [f"{c},Stem {n},yes,no,A"
                                                      for n, c in enumerate(codes)]
    r = client.post("/assess/import", content_type="multipart/form-data", data={
        "csrf_token": token, "mode": "create", "skill": "algebra",
        "file": (io.BytesIO(("\n".join(rows) + "\n").encode()), "items.csv")})
    assert r.status_code == 303
    assert all(len(c) < 4096 for c in r.headers.getlist("Set-Cookie"))
    page = client.get("/assess/import").get_data(as_text=True)
    assert codes[0] in page and "The first 20 of 25 items." in page


def test_media_must_be_a_path_or_a_web_address(student_world: StudentWorld) -> None:
    api = student_world.app.test_client()
    tok = api.post("/api/v1/auth/token", json={"username": "assessor1",
                                               "password": student_world.password})
    headers = {"Authorization": "Bearer " + tok.get_json()["access_token"]}
    item = {"stem": "s", "options": ["a", "b"], "key": 0, "skill": "algebra"}
    for n, bad in enumerate(("javascript:alert(1)", " JavaScript:x", "data:text/html,x",
                             "//evil.example/x.png")):
        r = api.post("/api/v1/items", headers=headers,
                     json={**item, "code": f"M-{n}", "media": [bad]})
        assert r.status_code == 422, (bad, r.get_json())
        assert "media" in r.get_json()["detail"]
    for n, good in enumerate(("/static/fig1.png", "fig2.svg", "https://example.org/a.png")):
        r = api.post("/api/v1/items", headers=headers,
                     json={**item, "code": f"OK-{n}", "media": [good]})
        assert r.status_code == 201, (good, r.get_json())


def test_a_run_failed_as_stalled_keeps_that_verdict(student_world: StudentWorld,
                                                     monkeypatch) -> None:
    """A worker that comes back after its run was failed as stalled does not overwrite it."""
    import api.services.calibration_runs as service
    from api.jobs import run_calibration

    rnd = random.Random(5)
    rows = ["person_id,item_id,response"] + [
        f"P{p},IT-{j:03d},{int(rnd.random() < 0.6)}" for p in range(150) for j in range(6)]
    with student_world.db() as session:
        upload = service.create_upload(session, filename="r.csv", content="\n".join(rows))
        session.flush()
        run_id = service.create_run(session, upload_id=upload.id, model="rasch").id
    real = service.calibrate_input

    def stalled(*args, **kwargs):  # the real calibration, after the run was reaped meanwhile
        with student_world.db() as session:
            session.get(CalibrationRun, run_id).heartbeat_at = utcnow() - timedelta(hours=1)
            assert service.reap_stalled_runs(session) == 1
        return real(*args, **kwargs)

    monkeypatch.setattr(service, "calibrate_input", stalled)
    assert run_calibration(run_id, student_world.app.config["DATABASE_URL"]) == "failed"
    with student_world.db() as session:
        stored = session.get(CalibrationRun, run_id)
        assert stored.status == RunStatus.FAILED and stored.result is None
        assert "no sign of life" in stored.error
