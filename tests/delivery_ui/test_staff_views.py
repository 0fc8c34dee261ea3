"""The staff pages through Flask's test client: who may see them, every error path ending on a
page that names the field (and writes nothing), and the item curves checked against the closed
form of the 2PL model."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from api.db import engine_of
from api.jobs import run_calibration
from evidence.models import Attempt
from item_bank.interchange import ItemRecord, ParameterRecord, write_items_csv, write_qti_item
from item_bank.models import (
    AdaptiveTest,
    CalibrationRun,
    Item,
    ItemParameterSet,
    ItemStatusEvent,
    RunStatus,
)
from item_bank.services import save_test
from reports.charts import Frame
from tests.api.test_calibration_api import _simulated_csv
from tests.delivery_ui.conftest import StudentWorld, csrf_of


def _error(html: str, field: str) -> str:
    found = re.search(rf'<p class="error" id="{field}-error">(.*?)</p>', html, re.S)
    return found.group(1).strip() if found else ""


def _item(world: StudentWorld, code: str) -> Item:
    with world.db() as session:
        item = session.scalar(select(Item).where(Item.code == code).options(
            selectinload(Item.parameter_sets), selectinload(Item.status_events)))
        session.expunge_all()
        return item


def _count(world: StudentWorld, model) -> int:
    with world.db() as session:
        return session.scalar(select(func.count()).select_from(model))


def _token(client, path: str = "/assess/items") -> str:
    return csrf_of(client.get(path).get_data(as_text=True))


# -- who may see what ----------------------------------------------------------------------------


STAFF_PAGES = ["/assess/items", "/assess/import", "/assess/calibration", "/assess/pretest",
               "/assess/simulate"]


@pytest.mark.parametrize("path", STAFF_PAGES)
def test_assessment_pages_are_for_assessors_and_admins(sqlite_world: StudentWorld,
                                                       path: str) -> None:
    for username in ("assessor1", "admin1"):
        response = sqlite_world.client_for(username).get(path)
        assert response.status_code == 200, (username, path)
    for username in ("student1", "teacher1"):
        response = sqlite_world.client_for(username).get(path)
        assert response.status_code == 403
        assert "Only the assessment team may see this page" in response.get_data(as_text=True)
    signed_out = sqlite_world.client_for(None).get(path)
    assert signed_out.status_code == 302
    assert signed_out.headers["Location"] == f"/?next={path}"


def test_class_pages_are_for_teachers_and_admins(student_world: StudentWorld) -> None:
    class_id = student_world.ids["class_id"]
    for username in ("student1", "assessor1"):
        client = student_world.client_for(username)
        for path in ("/teach/classes", f"/teach/classes/{class_id}"):
            response = client.get(path)
            assert response.status_code == 403
            assert "Only teachers may see this page" in response.get_data(as_text=True)
    assert student_world.client_for("admin1").get(f"/teach/classes/{class_id}").status_code == 200


def test_a_post_without_the_csrf_token_changes_nothing(sqlite_world: StudentWorld) -> None:
    client = sqlite_world.client_for("assessor1")
    item_id = sqlite_world.ids["items"]["IT-000"]
    before = _count(sqlite_world, ItemStatusEvent)
    response = client.post(f"/assess/items/{item_id}/status",
                           data={"status": "retired", "reason": "old"})
    assert response.status_code == 400
    assert "The form had expired" in response.get_data(as_text=True)
    assert _count(sqlite_world, ItemStatusEvent) == before


@pytest.mark.parametrize("path", ["/assess/items/999999", "/assess/calibration/runs/999999",
                                  "/assess/calibration/uploads/999999",
                                  "/assess/pretest?test_id=999999"])
def test_unknown_ids_are_404_pages(sqlite_world: StudentWorld, path: str) -> None:
    response = sqlite_world.client_for("assessor1").get(path)
    assert response.status_code == 404
    assert "<h1" in response.get_data(as_text=True)


# -- the bank and an item ------------------------------------------------------------------------


def test_the_bank_is_searched_filtered_and_paginated(sqlite_world: StudentWorld) -> None:
    client = sqlite_world.client_for("assessor1")
    html = client.get("/assess/items").get_data(as_text=True)
    assert "62 items found." in html and "Page 1 of 3." in html
    assert html.count('href="/assess/items/') == 25
    last = client.get("/assess/items?page=3").get_data(as_text=True)
    assert last.count('href="/assess/items/') == 12
    pretest = client.get("/assess/items?status=pretest").get_data(as_text=True)
    assert "2 items found." in pretest and ">PRE-1</a>" in pretest and ">IT-000</a>" not in pretest
    text = client.get("/assess/items?q=what+is+7+%2B").get_data(as_text=True)
    assert "1 item found." in text and ">IT-007</a>" in text
    tagged = client.get("/assess/items?tag=topic3&skill=algebra").get_data(as_text=True)
    codes = re.findall(r">(IT-\d+)</a>", tagged)
    assert codes and all(int(c[3:]) % 5 == 3 and int(c[3:]) % 3 == 0 for c in codes)
    wrong = client.get("/assess/items?status=lost&q=kept")
    assert wrong.status_code == 422
    body = wrong.get_data(as_text=True)
    assert _error(body, "status") == "Choose one of the statuses offered."
    assert 'value="kept"' in body


def _polyline(html: str, svg_id: str) -> tuple[np.ndarray, np.ndarray, Frame]:
    svg = re.search(rf'<svg class="chart" id="{svg_id}".*?</svg>', html, re.S).group(0)
    x_range = tuple(float(v) for v in re.search(r'data-x-range="([^"]+)"', svg).group(1).split(","))
    y_range = tuple(float(v) for v in re.search(r'data-y-range="([^"]+)"', svg).group(1).split(","))
    points = re.search(r'<polyline class="curve[^"]*" points="([^"]+)"', svg).group(1)
    xy = np.array([[float(v) for v in p.split(",")] for p in points.split()])
    return xy[:, 0], xy[:, 1], Frame(x_range, y_range)


def test_the_item_page_draws_the_2pl_curves_the_closed_form_gives(
        sqlite_world: StudentWorld) -> None:
    item = _item(sqlite_world, "IT-004")
    a, b = item.active_parameters.a, item.active_parameters.b
    html = sqlite_world.client_for("assessor1").get(f"/assess/items/{item.id}").get_data(
        as_text=True)
    assert "(the key: correct answer)" in html  # the key is marked for staff
    assert re.search(r'<li class="key">5 <strong class="key-mark">', html)  # option 1 = "5"
    assert "<title id=\"icc-title\">Item characteristic curve of IT-004</title>" in html
    assert '<desc id="icc-desc">' in html and 'id="curve-values"' in html
    px, py, frame = _polyline(html, "icc")
    theta = np.array([frame.theta_of(x) for x in px])
    p = np.array([frame.value_of(y) for y in py])
    closed_form = 1.0 / (1.0 + np.exp(-a * (theta - b)))
    assert theta.min() == pytest.approx(-4) and theta.max() == pytest.approx(4)
    # Pixel coordinates are written to 0.01 px on a 220 px high plot: ~5e-5 of the range.
    assert np.abs(p - closed_form).max() < 2e-4
    px, py, frame = _polyline(html, "information")
    theta = np.array([frame.theta_of(x) for x in px])
    info = np.array([frame.value_of(y) for y in py])
    q = 1.0 / (1.0 + np.exp(-a * (theta - b)))
    assert np.abs(info - a * a * q * (1 - q)).max() < 2e-4 * frame.y_range[1]
    # The table of values (the text alternative) says the same at theta = 0.
    row = re.search(r"<th scope=\"row\">0\.0</th>\s*<td>([\d.]+)</td>\s*<td>([\d.]+)</td>", html)
    assert float(row.group(1)) == pytest.approx(1 / (1 + np.exp(a * b)), abs=5e-4)


def test_an_uncalibrated_item_has_no_curves(sqlite_world: StudentWorld) -> None:
    item_id = sqlite_world.ids["items"]["PRE-1"]
    html = sqlite_world.client_for("assessor1").get(f"/assess/items/{item_id}").get_data(
        as_text=True)
    assert "<svg" not in html and "This item has no parameters yet" in html


def test_a_status_change_needs_a_reason_and_parameters(sqlite_world: StudentWorld) -> None:
    client = sqlite_world.client_for("assessor1")
    pre = sqlite_world.ids["items"]["PRE-1"]
    token = _token(client, f"/assess/items/{pre}")
    before = _count(sqlite_world, ItemStatusEvent)
    response = client.post(f"/assess/items/{pre}/status",
                           data={"csrf_token": token, "status": "retired", "reason": ""})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert _error(html, "reason") == "Say why the status changes."
    assert '<option value="retired" selected>' in html  # the choice is kept
    response = client.post(f"/assess/items/{pre}/status", data={
        "csrf_token": token, "status": "operational", "reason": "ready?"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "needs an active parameter set" in _error(html, "status")
    assert ">ready?</textarea>" in html
    response = client.post(f"/assess/items/{pre}/promote", data={"csrf_token": token})
    assert response.status_code == 303  # refused with a message, nothing written
    assert _count(sqlite_world, ItemStatusEvent) == before
    response = client.post(f"/assess/items/{pre}/status", data={
        "csrf_token": token, "status": "draft", "reason": "needs rewording"}, follow_redirects=True)
    assert response.status_code == 200
    assert "PRE-1 is now draft." in response.get_data(as_text=True)
    event = _item(sqlite_world, "PRE-1").status_events[-1]
    assert (event.to_status.value, event.reason) == ("draft", "needs rewording")
    assert event.changed_by == sqlite_world.ids["users"]["assessor1"]


# -- import --------------------------------------------------------------------------------------


def _items_csv(*records: ItemRecord) -> bytes:
    return write_items_csv(records).encode()


NEW = ItemRecord(item_id="CSV-1", stem="What is 2 + 2?", options=["3", "4", "5"], key=1,
                 skill="algebra", content_tags=["new"], status="pretest")


def test_import_errors_are_listed_by_line_and_nothing_is_written(
        sqlite_world: StudentWorld) -> None:
    client = sqlite_world.client_for("assessor1")
    token = _token(client, "/assess/import")
    items = _count(sqlite_world, Item)
    response = client.post("/assess/import", data={"csrf_token": token, "mode": "create"},
                           content_type="multipart/form-data")
    assert response.status_code == 422
    assert _error(response.get_data(as_text=True), "file") == "Choose a CSV or QTI file to import."
    bad = _items_csv(NEW, ItemRecord(item_id="CSV-2", stem="Broken", options=["a", "b"],
                                     skill="", status="operational"))
    response = client.post("/assess/import", data={
        "csrf_token": token, "mode": "upsert", "skill": "kept skill",
        "file": (io.BytesIO(bad), "items.csv")}, content_type="multipart/form-data")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Nothing was imported: items.csv has problems" in _error(html, "file")
    assert re.search(r"<tr><td>3</td><td>CSV-2</td><td>\w+</td>", html)  # line 3, item CSV-2
    assert 'value="upsert" checked' in html and 'value="kept skill"' in html
    assert _count(sqlite_world, Item) == items  # CSV-1 was fine, but nothing was written
    clash = _items_csv(ItemRecord(item_id="IT-001", stem="x", options=["a", "b"], key=0,
                                  skill="algebra"))
    response = client.post("/assess/import", data={
        "csrf_token": token, "mode": "create", "file": (io.BytesIO(clash), "clash.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 422
    assert "exists already" in response.get_data(as_text=True)


def test_csv_and_qti_imports_show_their_result(sqlite_world: StudentWorld) -> None:
    client = sqlite_world.client_for("assessor1")
    token = _token(client, "/assess/import")
    response = client.post("/assess/import", data={
        "csrf_token": token, "mode": "create", "file": (io.BytesIO(_items_csv(NEW)), "new.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 303 and response.headers["Location"] == "/assess/import"
    html = client.get("/assess/import").get_data(as_text=True)
    assert "Imported from new.csv" in html and "1 item created" in html and ">CSV-1</a>" in html
    assert "Imported from" not in client.get("/assess/import").get_data(as_text=True)  # once
    qti = write_qti_item(ItemRecord(item_id="QTI-1", stem="Pick B", options=["A", "B"], key=1,
                                    parameters=ParameterRecord("2pl", a=1.0, b=0.0)))
    response = client.post("/assess/import", data={
        "csrf_token": token, "mode": "create", "file": (io.BytesIO(qti), "item.xml")},
        content_type="multipart/form-data")
    assert response.status_code == 422  # a bare QTI item says no skill
    assert "skill" in response.get_data(as_text=True)
    response = client.post("/assess/import", data={
        "csrf_token": token, "mode": "create", "skill": "reading",
        "file": (io.BytesIO(qti), "item.xml")}, content_type="multipart/form-data",
        follow_redirects=True)
    assert "Imported from item.xml" in response.get_data(as_text=True)
    item = _item(sqlite_world, "QTI-1")
    assert (item.skill, item.status.value, item.options) == ("reading", "draft", ["A", "B"])


# -- calibration ---------------------------------------------------------------------------------


def _truth(world: StudentWorld, codes) -> dict[str, dict]:
    truth = {}
    for code in codes:
        active = _item(world, code).active_parameters
        truth[code] = {"a": active.a, "b": active.b}
    return truth


def test_calibration_errors_name_the_field(sqlite_world: StudentWorld) -> None:
    client = sqlite_world.client_for("assessor1")
    token = _token(client, "/assess/calibration")
    response = client.post("/assess/calibration/uploads", data={
        "csrf_token": token,
        "file": (io.BytesIO(b"person_id,item_id,response\nP1,I1,yes\n"), "bad.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 422
    assert "bad.csv" in _error(response.get_data(as_text=True), "file")
    content = _simulated_csv({"IT-000": {"a": 1.0, "b": 0.0}, "PRE-1": {"a": 1.0, "b": 0.5}},
                             n_persons=30, seed=3)
    response = client.post("/assess/calibration/uploads", data={
        "csrf_token": token, "file": (io.BytesIO(content.encode()), "few.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 303
    upload_id = int(response.headers["Location"].rsplit("/", 1)[1])
    form = {"csrf_token": token, "kind": "upload", "upload_id": upload_id, "model": "2pl",
            "max_iterations": "0", "min_responses": "10"}
    response = client.post("/assess/calibration/runs", data=form)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert _error(html, "max_iterations") == "Enter a whole number from 1 to 10000."
    assert 'name="max_iterations" type="number" min="1" max="10000" inputmode="numeric" ' \
           'value="0"' in html
    response = client.post("/assess/calibration/runs",
                           data=form | {"max_iterations": "50", "min_responses": "1000"})
    assert response.status_code == 422
    assert _error(response.get_data(as_text=True), "upload_id") == (
        "Some items have too few responses in this file to be calibrated (IT-000 has 30, PRE-1 "
        "has 30). Each needs at least 1000, the “Fewest responses per item” below: lower that "
        "number, or upload more responses.")
    assert _count(sqlite_world, CalibrationRun) == 0
    response = client.post("/assess/calibration/runs", data={
        "csrf_token": token, "kind": "online", "model": "2pl"})
    assert response.status_code == 422
    assert _error(response.get_data(as_text=True), "test_id") == "Choose a test."
    # No student has taken the test yet: said in words, not in settings names.
    response = client.post("/assess/calibration/runs", data={
        "csrf_token": token, "kind": "online", "model": "2pl", "test_id": sqlite_world.test_id,
        "max_iterations": "500", "min_responses": "10"})
    assert response.status_code == 422
    assert _error(response.get_data(as_text=True), "test_id") == (
        "Not enough students have answered the pretest items of Maths yet (PRE-1 has 0, PRE-2 "
        "has 0). Each item needs at least 10 answers, the “Fewest responses per item” below: "
        "wait until more students have taken the test, or lower that number.")
    assert _count(sqlite_world, CalibrationRun) == 0


def test_upload_calibrate_review_publish_and_promote(sqlite_world: StudentWorld) -> None:
    sqlite_world.app.config["HUEY_URL"] = "immediate"
    client = sqlite_world.client_for("assessor1")
    token = _token(client, "/assess/calibration")
    truth = {**_truth(sqlite_world, [f"IT-{j:03d}" for j in range(20)]),
             "PRE-1": {"a": 1.4, "b": -1.0}, "PRE-2": {"a": 1.2, "b": 1.0}}
    content = _simulated_csv(truth, n_persons=500, seed=5)
    response = client.post("/assess/calibration/uploads", data={
        "csrf_token": token, "file": (io.BytesIO(content.encode()), "trial.csv")},
        content_type="multipart/form-data", follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "500 persons" in html and "22 items" in html and "It has groups" in html
    upload_id = int(re.search(r'name="upload_id" value="(\d+)"', html).group(1))
    response = client.post("/assess/calibration/runs", data={
        "csrf_token": token, "kind": "upload", "upload_id": upload_id, "model": "2pl",
        "anchor": "1", "max_iterations": "300", "min_responses": "10"})
    assert response.status_code == 303
    run_url = response.headers["Location"]
    run_id = int(run_url.rsplit("/", 1)[1])
    status = client.get(f"{run_url}/status").get_json()
    assert status["status"] == "succeeded" and status["finished"] is True
    html = client.get(run_url).get_data(as_text=True)
    assert 'http-equiv="refresh"' not in html  # finished: nothing refreshes
    assert "Converged after" in html and "2 items estimated" in html
    assert len(re.findall(r'name="items" value="(PRE-\d)"', html)) == 2  # anchors not offered
    assert re.search(r"<th scope=\"row\"><a [^>]+>IT-000</a>.*?</th>\s*<td>500</td>", html,
                     re.S)
    flagged = client.get(f"{run_url}?flagged=1").get_data(as_text=True)
    assert "with flags" in flagged
    response = client.post(f"{run_url}/publish", data={"csrf_token": token})
    assert response.status_code == 422
    assert _error(response.get_data(as_text=True), "items") == \
        "Choose at least one item to publish."
    response = client.post(f"{run_url}/publish", data={
        "csrf_token": token, "items": ["PRE-1", "PRE-2"], "promote": "1"}, follow_redirects=True)
    assert "Published 2 parameter sets; 2 items promoted, 0 skipped." in \
        response.get_data(as_text=True)
    for code in ("PRE-1", "PRE-2"):
        item = _item(sqlite_world, code)
        assert item.status.value == "operational"
        assert item.active_parameters.calibration_run_id == run_id
        assert item.active_parameters.b == pytest.approx(truth[code]["b"], abs=0.4)
    response = client.post(f"{run_url}/publish", data={"csrf_token": token, "items": "PRE-1"})
    assert response.status_code == 422
    assert "only a succeeded run can be published" in response.get_data(as_text=True)
    with sqlite_world.db() as session:
        assert session.get(CalibrationRun, run_id).status == RunStatus.PUBLISHED


def _upload_trial(world: StudentWorld, client, token: str, n_persons: int = 300) -> int:
    truth = {**_truth(world, [f"IT-{j:03d}" for j in range(10)]),
             "PRE-1": {"a": 1.4, "b": -1.0}}
    content = _simulated_csv(truth, n_persons=n_persons, seed=9)
    response = client.post("/assess/calibration/uploads", data={
        "csrf_token": token, "file": (io.BytesIO(content.encode()), "trial.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 303
    return int(response.headers["Location"].rsplit("/", 1)[1])


def test_a_queued_run_page_refreshes_until_it_ends(sqlite_world: StudentWorld, tmp_path) -> None:
    sqlite_world.app.config["HUEY_URL"] = f"sqlite:///{tmp_path / 'queue.sqlite3'}"  # no worker
    client = sqlite_world.client_for("assessor1")
    token = _token(client, "/assess/calibration")
    upload_id = _upload_trial(sqlite_world, client, token)
    response = client.post("/assess/calibration/runs", data={
        "csrf_token": token, "kind": "upload", "upload_id": upload_id, "model": "2pl",
        "anchor": "1"})
    assert response.status_code == 303
    run_url = response.headers["Location"]
    html = client.get(run_url).get_data(as_text=True)
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in html
    assert "run_status.js" in html and 'value="0.0"' in html
    assert client.get(f"{run_url}/status").get_json()["status"] == "queued"
    # A worker takes it (here: the task itself, on the app's database).
    url = engine_of(sqlite_world.app).url.render_as_string(hide_password=False)
    assert run_calibration(int(run_url.rsplit("/", 1)[1]), url) == "succeeded"
    status = client.get(f"{run_url}/status").get_json()
    assert status["finished"] and status["progress"] == 1.0 and status["label"] == "succeeded"
    html = client.get(run_url).get_data(as_text=True)
    assert "http-equiv" not in html and "run_status.js" not in html


# -- pretest and simulation ----------------------------------------------------------------------


def test_pretest_items_are_seeded_with_positions(sqlite_world: StudentWorld) -> None:
    client = sqlite_world.client_for("assessor1")
    test_id = sqlite_world.test_id
    html = client.get(f"/assess/pretest?test_id={test_id}").get_data(as_text=True)
    assert "Given now: PRE-1, PRE-2 at positions 2, 4." in html
    assert "aria-invalid" not in html
    token = csrf_of(html)
    response = client.post(f"/assess/pretest/{test_id}", data={
        "csrf_token": token, "items": ["PRE-2"], "positions": "3, x"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "whole numbers from 1 to 500" in _error(html, "positions")
    assert 'value="3, x"' in html
    assert re.search(r'value="PRE-1"\s*>', html) and re.search(r'value="PRE-2" checked', html)
    response = client.post(f"/assess/pretest/{test_id}", data={
        "csrf_token": token, "items": ["PRE-2"], "positions": "3"})
    assert response.status_code == 303
    with sqlite_world.db() as session:
        test = session.get(AdaptiveTest, test_id)
        assert test.config["pretest"] == {"items": ["PRE-2"], "positions": [3]}
        assert test.version == 2


def test_simulation_bounds_and_report(sqlite_world: StudentWorld) -> None:
    client = sqlite_world.client_for("assessor1")
    test_id = sqlite_world.test_id
    response = client.get(f"/assess/simulate?test_id={test_id}&examinees=6000&seed=1")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert _error(html, "examinees") == "Enter a whole number from 10 to 5000."
    assert 'value="6000"' in html
    response = client.get(f"/assess/simulate?test_id={test_id}&examinees=300&seed=2")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Report: Maths, 300 simulated students" in html
    # Why tests stopped, in words, with the engine's code in a tooltip.
    reasons = re.findall(r'<li><span class="flag" title="code: ([^"]+)">([^<]+)</span>: '
                         r'(\d+) students?</li>', html)
    assert reasons and sum(int(n) for *_, n in reasons) == 300
    for code, words, _n in reasons:
        assert words != code and "=" not in words and "_" not in words
    for chart in ("exposure-chart", "rmse-chart", "length-chart"):
        assert f'<svg class="chart" id="{chart}"' in html and f'id="{chart}-desc"' in html
    assert html.count("<rect class=\"bar\"") == 10
    counts = [int(n) for n in re.findall(r'data-count="(\d+)"', html)]
    assert sum(counts) == 60  # every operational item of the bank is in one bin
    rows = re.findall(r'<table class="data numbers" id="conditional">.*?</table>', html, re.S)
    assert rows and rows[0].count("<tr>") == 11  # a header and ten deciles
    again = client.get(f"/assess/simulate?test_id={test_id}&examinees=300&seed=2")
    strip = re.compile(r"<tr><th scope=\"row\">Time taken</th><td>[^<]*</td></tr>")
    assert strip.sub("", again.get_data(as_text=True)) == strip.sub("", html)  # seeded
    with sqlite_world.db() as session:  # tuning Sympson-Hetter first takes longer: fewer
        test = session.get(AdaptiveTest, test_id)
        save_test(session, test, config={**test.config, "exposure": {
            "method": "sympson-hetter", "r_max": 0.5}})
    response = client.get(f"/assess/simulate?test_id={test_id}&examinees=2000&seed=2")
    assert response.status_code == 422
    assert "at most 1000 students" in _error(response.get_data(as_text=True), "examinees")
    assert client.get(f"/assess/simulate?test_id={test_id}&examinees=200").status_code == 200


# -- teachers ------------------------------------------------------------------------------------


CSRF_VALUE = re.compile(r'name="csrf_token" value="[^"]*"')


def test_another_teachers_class_is_not_found(student_world: StudentWorld) -> None:
    mine, other = student_world.ids["class_id"], student_world.ids["other_class_id"]
    client = student_world.client_for("teacher2")
    # The class names as text, not inside the page's random CSRF token (which may hold "7A").
    html = CSRF_VALUE.sub("", client.get("/teach/classes").get_data(as_text=True))
    assert "7B" in html and "7A" not in html
    response = client.get(f"/teach/classes/{mine}")
    assert response.status_code == 404
    assert "7A" not in CSRF_VALUE.sub("", response.get_data(as_text=True))
    assert client.get(f"/teach/classes/{other}").status_code == 200
    assert client.get("/teach/classes/2147483647").status_code == 404


# -- publishing safely ---------------------------------------------------------------------------


def _start(client, token: str, content: str, anchor: bool) -> str:
    response = client.post("/assess/calibration/uploads", data={
        "csrf_token": token, "file": (io.BytesIO(content.encode()), "trial.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 303
    upload_id = int(response.headers["Location"].rsplit("/", 1)[1])
    data = {"csrf_token": token, "kind": "upload", "upload_id": upload_id, "model": "2pl",
            "max_iterations": "300", "min_responses": "10"}
    response = client.post("/assess/calibration/runs", data=data | ({"anchor": "1"} if anchor
                                                                     else {}))
    assert response.status_code == 303
    return response.headers["Location"]


def test_c_dif_and_misfit_items_are_unticked_and_flags_are_words(
        sqlite_world: StudentWorld) -> None:
    from tests.api.test_publication import responses_csv

    sqlite_world.app.config["HUEY_URL"] = "immediate"
    client = sqlite_world.client_for("assessor1")
    token = _token(client, "/assess/calibration")
    truth = {**_truth(sqlite_world, [f"IT-{j:03d}" for j in range(20)]),
             "PRE-1": {"a": 1.3, "b": 0.0}, "PRE-2": {"a": 1.0, "b": 0.3}}
    run_url = _start(client, token, responses_csv(truth, 1200, 8, focal_shift={"PRE-1": 1.5},
                                                  bumpy=("PRE-2",)), anchor=True)
    html = client.get(run_url).get_data(as_text=True)
    assert re.search(r'name="items" value="PRE-1" id="[^"]+" aria-describedby', html)
    assert re.findall(r'name="items" value="(PRE-\d)"[^>]*checked', html) == []
    assert "Not ticked: large DIF." in html and "Not ticked: misfit." in html
    assert re.search(r'<span class="flag" title="code: dif_C_B; ETS category C; delta_mh = '
                     r'-?[\d.]+">large for group B \(favours A\)</span>', html)
    assert '<span class="flag" title="code: outfit_high">' in html or \
        '<span class="flag" title="code: s_x2">' in html or \
        '<span class="flag" title="code: infit_high">' in html
    assert "dif_C_B</" not in html and "misfit, " not in html  # no bare codes
    assert "scale-warning" not in html  # anchored: on the bank's scale already


def test_an_unanchored_run_over_operational_items_is_linked_or_confirmed(
        sqlite_world: StudentWorld) -> None:
    from tests.api.test_publication import responses_csv

    sqlite_world.app.config["HUEY_URL"] = "immediate"
    client = sqlite_world.client_for("assessor1")
    token = _token(client, "/assess/calibration")
    codes = [f"IT-{j:03d}" for j in range(25)]
    truth = _truth(sqlite_world, codes)
    run_url = _start(client, token, responses_csv(truth, 1200, 4, mean=0.8, sd=1.3),
                     anchor=False)
    html = client.get(run_url).get_data(as_text=True)
    assert "This run was not anchored" in html and "25 items it estimated are operational" in html
    assert 'name="linking" value="stocking-lord" checked' in html
    assert "On the bank\u2019s scale (Stocking-Lord)" in html and "In the bank now" in html
    # The side-by-side row of IT-000: this run's b, the linked b, the bank's b.
    row = re.search(r'>IT-000</a>.*?</th>(.*?)</tr>', html, re.S).group(1)
    cells = re.findall(r"<td>([^<]*)", row)  # responses, a, b (2PL: no c), linked a, b, bank a, b
    run_b, linked_b, bank_b = float(cells[2].split()[0]), float(cells[4]), float(cells[6])
    assert bank_b == pytest.approx(truth["IT-000"]["b"], abs=5e-4)
    assert abs(linked_b - bank_b) < abs(run_b - bank_b)
    base = {"csrf_token": token, "items": codes[:3]}
    with sqlite_world.db() as session:
        before = session.scalar(select(func.count()).select_from(ItemParameterSet))
    response = client.post(f"{run_url}/publish", data=base | {"linking": "none"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "tick the box that confirms" in _error(html, "linking")
    assert 'name="linking" value="none" checked' in html  # the choice is kept
    with sqlite_world.db() as session:
        assert session.scalar(select(func.count()).select_from(ItemParameterSet)) == before
    response = client.post(f"{run_url}/publish", data=base | {"linking": "stocking-lord"},
                           follow_redirects=True)
    assert response.status_code == 200
    assert "put on the bank&#39;s scale by Stocking-Lord" in response.get_data(as_text=True)
    published = _item(sqlite_world, "IT-000").active_parameters
    assert published.provenance["scale"] == "linked"
    assert published.b == pytest.approx(linked_b, abs=5e-4)
    page = client.get(f"/assess/items/{sqlite_world.ids['items']['IT-000']}").get_data(
        as_text=True)
    assert "Put on the bank\u2019s scale by Stocking-Lord (test characteristic curves) through " \
           "25 common items" in page
    assert "Scale: linked onto the bank\u2019s scale." in page and "fit_flags" not in page


# -- the import format ---------------------------------------------------------------------------


def test_the_import_page_documents_the_format_with_a_template_and_an_example(
        sqlite_world: StudentWorld) -> None:
    from item_bank.interchange import read_items_csv

    client = sqlite_world.client_for("assessor1")
    html = client.get("/assess/import").get_data(as_text=True)
    columns = re.search(r'<table class="data" id="columns">.*?</table>', html, re.S).group(0)
    for name in ("item_id", "stem", "option_1", "key", "skill", "tags", "status", "model", "a",
                 "b", "b1"):
        assert f"<code>{name}</code>" in columns
    assert 'href="/assess/import/template.csv" download' in html
    assert 'href="/assess/import/example.csv" download' in html
    template = client.get("/assess/import/template.csv")
    assert template.mimetype == "text/csv"
    assert "attachment" in template.headers["Content-Disposition"]
    header = template.get_data(as_text=True).splitlines()[0].split(",")
    assert header[:3] == ["item_id", "stem", "option_1"]
    assert read_items_csv(template.get_data(as_text=True)) == []  # every column is known
    example = client.get("/assess/import/example.csv").get_data()
    assert example.decode() in html.replace("&#39;", "'").replace("&#34;", '"')  # shown too
    token = _token(client, "/assess/import")
    response = client.post("/assess/import", data={
        "csrf_token": token, "mode": "create", "file": (io.BytesIO(example), "example.csv")},
        content_type="multipart/form-data", follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "3 items created" in html
    assert _item(sqlite_world, "FRAC-002").active_parameters.c == pytest.approx(0.2)


def test_every_unknown_column_is_listed_in_one_go(sqlite_world: StudentWorld) -> None:
    client = sqlite_world.client_for("assessor1")
    token = _token(client, "/assess/import")
    content = (b"item_id,question,option_1,option_2,key,skil,colour\n"
               b"U-1,What?,a,b,1,algebra,red\n")
    response = client.post("/assess/import", data={
        "csrf_token": token, "mode": "create", "file": (io.BytesIO(content), "typos.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 422
    table = re.search(r'<table class="data" id="problems">.*?</table>', response.get_data(
        as_text=True), re.S).group(0)
    rows = re.findall(r"<tr><td>([^<]*)</td><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td>",
                      table)
    fields = [field for _line, field, _message in rows]
    assert {"question", "skil", "colour"} <= set(fields)
    assert ("1", "question", "line 1: unknown column &#39;question&#39; (did you mean "
            "&#39;stem&#39;?)") in rows


def test_the_dif_groups_are_chosen_from_the_uploads_groups(sqlite_world: StudentWorld) -> None:
    from tests.api.test_publication import responses_csv

    sqlite_world.app.config["HUEY_URL"] = "immediate"
    client = sqlite_world.client_for("assessor1")
    token = _token(client, "/assess/calibration")
    truth = {**_truth(sqlite_world, [f"IT-{j:03d}" for j in range(10)]),
             "PRE-1": {"a": 1.2, "b": 0.0}}
    content = responses_csv(truth, 600, 2, groups=("girls", "boys", "other"),
                            focal_shift={"PRE-1": 1.5})
    response = client.post("/assess/calibration/uploads", data={
        "csrf_token": token, "file": (io.BytesIO(content.encode()), "groups.csv")},
        content_type="multipart/form-data", follow_redirects=True)
    html = response.get_data(as_text=True)
    assert 'type="text" name="dif_reference"' not in html and 'id="dif_reference"' in html
    select = re.search(r'<select id="dif_reference".*?</select>', html, re.S).group(0)
    assert re.findall(r'<option value="([^"]*)"', select) == ["", "boys", "girls", "other"]
    assert "The largest group (boys)" in select and "girls (200 persons)" in select
    assert len(re.findall(r'name="dif_focal" value="\w+" checked', html)) == 3
    upload_id = int(re.search(r'name="upload_id" value="(\d+)"', html).group(1))
    form = {"csrf_token": token, "kind": "upload", "upload_id": upload_id, "model": "2pl",
            "anchor": "1", "max_iterations": "300", "min_responses": "10", "dif_choice": "1",
            "dif_reference": "girls"}
    response = client.post("/assess/calibration/runs", data=form | {"dif_focal": ["girls"]})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert _error(html, "dif_focal") == ("Tick at least one focal group other than the "
                                         "reference group.")
    assert '<option value="girls" selected>' in html
    response = client.post("/assess/calibration/runs",
                           data=form | {"dif_focal": ["girls", "other"]})
    assert response.status_code == 303
    with sqlite_world.db() as session:
        run = session.get(CalibrationRun, int(response.headers["Location"].rsplit("/", 1)[1]))
        assert run.settings["dif_reference"] == "girls" and run.settings["dif_focal"] == ["other"]
        dif = run.result["dif"]
        assert dif["reference"] == "girls" and [r["focal"] for r in dif["reports"]] == ["other"]


# -- the bank: sorting, exposure, export, information -------------------------------------------


def _active_parameters(world: StudentWorld) -> dict[str, dict]:
    with world.db() as session:
        rows = session.execute(select(Item.code, ItemParameterSet.a, ItemParameterSet.b)
                               .join(ItemParameterSet, ItemParameterSet.item_id == Item.id)
                               .where(ItemParameterSet.is_active)).all()
    return {code: {"a": a, "b": b} for code, a, b in rows}


def test_the_bank_sorts_by_a_b_and_exposure(sqlite_world: StudentWorld) -> None:
    from item_bank.models import ItemExposure

    client = sqlite_world.client_for("assessor1")
    parameters = _active_parameters(sqlite_world)
    html = client.get("/assess/items?sort=b&dir=desc").get_data(as_text=True)
    codes = re.findall(r'<th scope="row"><a href="/assess/items/\d+">([^<]+)</a>', html)
    expected = sorted(parameters, key=lambda c: (-parameters[c]["b"], c))[:25]
    assert codes == expected
    assert 'aria-sort="descending"' in html
    html = client.get("/assess/items?sort=a&status=operational").get_data(as_text=True)
    codes = re.findall(r'<th scope="row"><a href="/assess/items/\d+">([^<]+)</a>', html)
    assert codes == sorted(parameters, key=lambda c: (parameters[c]["a"], c))[:25]
    assert 'href="/assess/items?sort=a&amp;dir=desc&amp;status=operational"' in html  # reverses
    for student in ("student1", "student2"):  # two attempts started
        student_client = sqlite_world.client_for(student)
        token = csrf_of(student_client.get("/my-tests").get_data(as_text=True))
        assert student_client.post(f"/tests/{sqlite_world.test_id}/start",
                                   data={"csrf_token": token}).status_code == 303
    ids = sqlite_world.ids["items"]
    with sqlite_world.db() as session:
        for code, more in (("IT-007", 9), ("IT-003", 4)):
            row = session.get(ItemExposure, (sqlite_world.test_id, ids[code]))
            if row is None:
                session.add(ItemExposure(test_id=sqlite_world.test_id, item_id=ids[code],
                                         administered=more))
            else:
                row.administered += more
        attempts = session.scalar(select(func.count()).select_from(Attempt))
    html = client.get("/assess/items?sort=exposure&dir=desc").get_data(as_text=True)
    codes = re.findall(r'<th scope="row"><a href="/assess/items/\d+">([^<]+)</a>', html)
    assert codes[:2] == ["IT-007", "IT-003"]
    assert attempts == 2
    with sqlite_world.db() as session:
        given = session.get(ItemExposure, (sqlite_world.test_id, ids["IT-007"])).administered
    assert re.search(rf'title="given {given} times?">{given / 2:.3f}</td>', html)


def test_the_bank_information_and_difficulty_match_the_items(sqlite_world: StudentWorld) -> None:
    client = sqlite_world.client_for("assessor1")
    parameters = _active_parameters(sqlite_world)
    html = client.get("/assess/items?status=operational").get_data(as_text=True)
    assert 'id="bank-information"' in html and 'id="bank-difficulty"' in html
    a = np.array([p["a"] for p in parameters.values()])
    b = np.array([p["b"] for p in parameters.values()])
    table = re.search(r'id="bank-information-values">.*?</table>', html, re.S).group(0)
    for theta in (-2.0, 0.0, 1.0):
        p = 1 / (1 + np.exp(-a * (theta - b)))
        info = float(np.sum(a * a * p * (1 - p)))  # 2PL closed form, summed over the items
        row = re.search(rf'<th scope="row">{theta:.1f}</th><td>([\d.]+)</td><td>([\d.]+)</td>',
                        table)
        assert float(row.group(1)) == pytest.approx(info, abs=0.006)
        assert float(row.group(2)) == pytest.approx(1 / np.sqrt(info), abs=6e-4)
    counts = [int(n) for n in re.findall(
        r'data-count="(\d+)"', re.search(r'id="bank-difficulty".*?</svg>', html, re.S).group(0))]
    expected, _edges = np.histogram(np.clip(b, -4, 4), bins=16, range=(-4, 4))
    assert counts == expected.tolist() and sum(counts) == len(parameters)


def test_the_items_found_are_exported(sqlite_world: StudentWorld) -> None:
    import zipfile

    from item_bank.interchange import read_items_csv

    client = sqlite_world.client_for("assessor1")
    html = client.get("/assess/items?status=pretest").get_data(as_text=True)
    form = re.search(r'<form method="get" action="/assess/items/export".*?</form>', html,
                     re.S).group(0)
    assert '<input type="hidden" name="status" value="pretest">' in form
    response = client.get("/assess/items/export?status=pretest&format=csv")
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="items.csv"'
    records = read_items_csv(response.get_data(as_text=True))
    assert [r.item_id for r in records] == ["PRE-1", "PRE-2"]
    response = client.get("/assess/items/export?q=IT-00&format=qti-zip")
    assert response.mimetype == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(response.get_data())).namelist()
    assert sum(n.startswith("items/IT-00") for n in names) == 10


# -- editing an item -----------------------------------------------------------------------------


def test_an_item_is_edited_into_a_new_version(sqlite_world: StudentWorld) -> None:
    from item_bank.models import ItemVersion

    client = sqlite_world.client_for("assessor1")
    item_id = sqlite_world.ids["items"]["IT-004"]
    before = _item(sqlite_world, "IT-004")
    html = client.get(f"/assess/items/{item_id}").get_data(as_text=True)
    assert f'href="/assess/items/{item_id}/edit"' in html
    html = client.get(f"/assess/items/{item_id}/edit").get_data(as_text=True)
    assert f'name="version" value="{before.version}"' in html
    assert f'<option value="{before.key + 1}" selected>' in html
    token = csrf_of(html)
    form = {"csrf_token": token, "stem": "What is 4 + 1, written in words?",
            "options": ["four", "five", "six", ""], "key": "2", "rationale": "4 + 1 = 5",
            "skill": before.skill, "tags": "words; arithmetic", "note": "asked in words",
            "version": str(before.version)}
    # A key among empty boxes, an empty question: named, kept, nothing written.
    response = client.post(f"/assess/items/{item_id}/edit",
                           data=form | {"stem": " ", "key": "4"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert _error(html, "stem") == "Write the question."
    assert _error(html, "key") == "Choose the correct option among the options filled in."
    assert 'value="six"' in html
    assert _item(sqlite_world, "IT-004").version == before.version
    response = client.post(f"/assess/items/{item_id}/edit", data=form, follow_redirects=True)
    assert f"IT-004 is saved as version {before.version + 1}." in response.get_data(as_text=True)
    after = _item(sqlite_world, "IT-004")
    assert (after.stem, after.options, after.key) == ("What is 4 + 1, written in words?",
                                                      ["four", "five", "six"], 1)
    with sqlite_world.db() as session:
        assert sorted(session.get(Item, item_id).content_tags) == ["arithmetic", "words"]
        version = session.scalar(select(ItemVersion).where(
            ItemVersion.item_id == item_id, ItemVersion.version == after.version))
        assert version.note == "asked in words"
        assert version.created_by == sqlite_world.ids["users"]["assessor1"]
    assert after.active_parameters.id == before.active_parameters.id  # parameters kept
    # The form of the old version again: someone else's save is not overwritten.
    response = client.post(f"/assess/items/{item_id}/edit", data=form | {"stem": "Old?"})
    assert response.status_code == 422
    assert f"it is now at version {after.version}" in _error(response.get_data(as_text=True),
                                                             "version")
    assert _item(sqlite_world, "IT-004").stem == "What is 4 + 1, written in words?"


# -- fit and DIF plots of a run's item -----------------------------------------------------------


def test_a_runs_item_shows_observed_against_expected_by_ability_and_group(
        sqlite_world: StudentWorld) -> None:
    from tests.api.test_publication import responses_csv

    sqlite_world.app.config["HUEY_URL"] = "immediate"
    client = sqlite_world.client_for("assessor1")
    token = _token(client, "/assess/calibration")
    truth = {**_truth(sqlite_world, [f"IT-{j:03d}" for j in range(20)]),
             "PRE-1": {"a": 1.3, "b": 0.0}, "PRE-2": {"a": 1.0, "b": 0.3}}
    content = responses_csv(truth, 1200, 8, focal_shift={"PRE-1": 1.5}, bumpy=("PRE-2",))
    run_url = _start(client, token, content, anchor=True)
    html = client.get(run_url).get_data(as_text=True)
    assert f'href="{run_url}/items/PRE-1"' in html
    rows = [line.split(",") for line in content.splitlines()[1:]]

    def evidence(code: str) -> tuple[str, list[tuple[float, int, float, float]]]:
        page = client.get(f"{run_url}/items/{code}")
        assert page.status_code == 200
        text = page.get_data(as_text=True)
        table = re.search(r'id="evidence-values">.*?</tbody>', text, re.S).group(0)
        values = [(float(t), int(n), float(o), float(e)) for t, n, o, e in re.findall(
            r'<tr><th scope="row">(-?[\d.]+)</th><td>(\d+)</td><td>([\d.]+)</td>'
            r'<td>([\d.]+)</td>', table)]
        return text, values

    text, bins = evidence("PRE-1")
    answers = [int(r[2]) for r in rows if r[1] == "PRE-1"]
    assert len(bins) == 10 and sum(n for _t, n, _o, _e in bins) == len(answers) == 1200
    assert sum(n * o for _t, n, o, _e in bins) == pytest.approx(sum(answers), abs=0.05)
    assert [t for t, *_ in bins] == sorted(t for t, *_ in bins)
    # The model curve is the 2PL of the run's estimates, drawn through the engine.
    entry = next(e for e in _run_entries(sqlite_world, run_url) if e["item_id"] == "PRE-1")
    a, b = entry["parameters"]["a"], entry["parameters"]["b"]
    px, py, frame = _polyline(text, "fit-plot")
    theta = np.array([frame.theta_of(x) for x in px])
    p = np.array([frame.value_of(y) for y in py])
    assert np.abs(p - 1 / (1 + np.exp(-a * (theta - b)))).max() < 2e-4
    # DIF: at equal ability, group B (the item is 1.5 logits harder for it) scores lower.
    assert 'id="dif-plot"' in text
    group_rows = re.findall(r"<td>([\d.]+) \((\d+)\)</td><td>([\d.]+) \((\d+)\)</td>", text)
    lower = sum(float(b_obs) < float(a_obs) for a_obs, _na, b_obs, _nb in group_rows)
    assert len(group_rows) >= 8 and lower >= len(group_rows) - 1
    # Misfit: PRE-2's observed means leave the model's curve; a fitting item's stay near it.
    _text, misfit = evidence("PRE-2")
    _text, fitting = evidence("IT-000")
    assert max(abs(o - e) for _t, _n, o, e in misfit) > 0.2
    assert max(abs(o - e) for _t, _n, o, e in fitting) < 0.15
    assert client.get(f"{run_url}/items/NOPE").status_code == 404


def _run_entries(world: StudentWorld, run_url: str) -> list[dict]:
    with world.db() as session:
        return session.get(CalibrationRun, int(run_url.rsplit("/", 1)[1])).result["items"]


# -- comparing designs by simulation -------------------------------------------------------------


def test_designs_are_simulated_on_the_same_students_and_compared(
        sqlite_world: StudentWorld) -> None:
    from cat_engine import simulate
    from item_bank.services import build_delivery, snapshot_content

    client = sqlite_world.client_for("assessor1")
    test_id = sqlite_world.test_id
    html = client.get("/assess/simulate").get_data(as_text=True)
    # Design A starts as the test is delivered (mfi, SE 0.4, 4 to 12 items).
    assert '<option value="mfi" selected>' in html
    assert 'name="d1_se" type="number" step="0.01" min="0.05" max="2" value="0.4"' in html
    assert 'name="d1_max_items" type="number" min="1" max="500" inputmode="numeric" ' \
           'value="12"' in html
    query = (f"/assess/simulate?test_id={test_id}&examinees=400&seed=3"
             "&d1_selection=mfi&d1_exposure=none&d1_r_max=0.25&d1_n=5&d1_se=0.4"
             "&d1_max_items=12&d1_min_items=4"
             "&d2_on=1&d2_selection=random&d2_exposure=none&d2_r_max=0.25&d2_n=5&d2_se="
             "&d2_max_items=5&d2_min_items=5"
             "&d3_on=1&d3_selection=mfi&d3_exposure=eligibility&d3_r_max=0.2&d3_n=5&d3_se=0.4"
             "&d3_max_items=12&d3_min_items=4")
    response = client.get(query)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    html = response.get_data(as_text=True)
    table = re.search(r'<table class="data numbers" id="compare-table">.*?</table>', html,
                      re.S).group(0)

    def row(name: str) -> list[str]:
        found = re.search(rf'<th scope="row">{name}</th>(.*?)</tr>', table, re.S).group(1)
        return re.findall(r"<td>(.*?)</td>", found, re.S)

    assert row("Mean test length")[1] == "5.0" and row("Longest test")[1] == "5"
    assert "reached the maximum of 5 questions</span>: 400" in row("Why tests stopped")[1]
    # Design B is the engine run directly with that configuration, on the same students.
    with sqlite_world.db() as session:
        test = session.get(AdaptiveTest, test_id)
        delivery = build_delivery(snapshot_content(session, test))
        config = {**test.config, "selection": {"method": "random"},
                  "exposure": {"method": "none"}, "stopping": {"max_items": 5, "min_items": 5}}
    thetas = np.random.default_rng([3, 7]).normal(0.0, 1.0, 400)
    direct = simulate(delivery.bank, thetas, config, seed=3).to_dict()
    assert row("RMSE of theta")[1] == f"{direct['rmse']:.3f}"
    # Eligibility control holds the most exposed item down; maximum information alone does not.
    cells = row("Highest exposure rate")
    exposure = [float(re.match(r"[0-9.]+", v).group(0)) for v in cells]
    assert exposure[0] == 1.0 and exposure[2] < 0.5
    # A control that adapts between cohorts shows its steady state beside the overall maximum.
    steady = re.search(r"steady state \(last half of (\d+) cohorts\): ([0-9.]+)", cells[2])
    assert steady and int(steady.group(1)) > 1 and 0 < float(steady.group(2)) <= 1
    assert "steady state" not in cells[0] and "steady state" not in cells[1]
    for chart in ("compare-rmse-chart", "compare-length-chart"):
        svg = re.search(rf'<svg class="chart" id="{chart}".*?</svg>', html, re.S).group(0)
        assert svg.count("<polyline") == 3
    # A design that cannot be: its own field says so, and nothing is simulated.
    response = client.get(query.replace("d2_min_items=5", "d2_min_items=9"))
    assert response.status_code == 422
    assert _error(response.get_data(as_text=True), "d2_min_items") == \
        "The fewest items cannot be more than the most items."
    assert 'id="compare-table"' not in response.get_data(as_text=True)


def test_designs_made_for_another_test_start_again_from_the_chosen_test(
        sqlite_world: StudentWorld) -> None:
    with sqlite_world.db() as session:
        short = save_test(session, None, name="Short quiz", config={
            "selection": {"method": "kl"}, "stopping": {"max_items": 6, "min_items": 6}})
        short_id = short.id
    client = sqlite_world.client_for("assessor1")
    maths = sqlite_world.test_id
    # The form shows Maths' design (12 items); the assessor switches the test to Short quiz.
    query = (f"/assess/simulate?test_id={short_id}&designed_for={maths}&examinees=100&seed=1"
             "&d1_selection=mfi&d1_exposure=none&d1_r_max=0.25&d1_n=5&d1_se=0.4"
             "&d1_max_items=12&d1_min_items=4")
    html = client.get(query).get_data(as_text=True)
    assert 'id="designs-reset"' in html
    assert '<option value="kl" selected>' in html and 'name="d1_max_items" type="number" ' \
        'min="1" max="500" inputmode="numeric" value="6"' in html
    overall = re.search(r'id="overall">.*?</table>', html, re.S).group(0)
    assert re.search(r"Mean test length</th><td>6.0</td>", overall)  # Short quiz as delivered
    # The same request for the test the designs were made for keeps them.
    html = client.get(query.replace(f"designed_for={maths}", f"designed_for={short_id}")) \
        .get_data(as_text=True)
    assert 'id="designs-reset"' not in html and '<option value="mfi" selected>' in html
