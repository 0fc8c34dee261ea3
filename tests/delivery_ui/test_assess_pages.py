"""The assessment team's pages in a real Chromium: import (CSV and QTI), calibrate from uploaded
responses, review fit and DIF flags, publish and promote; the item curves; a simulation report;
the run page following a run by itself; axe on every page; screenshots of each."""

from __future__ import annotations

import threading
import time

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from api.db import engine_of
from api.jobs import run_calibration
from item_bank.interchange import ItemRecord, write_items_csv, write_qti_item
from tests.api.test_calibration_api import _simulated_csv
from tests.conftest import LiveServer, save_screenshot
from tests.delivery_ui.conftest import StudentWorld
from tests.delivery_ui.test_staff_views import _item, _truth

pytestmark = pytest.mark.browser

NEW_ITEMS = {"CSV-1": {"a": 1.3, "b": -0.5}, "CSV-2": {"a": 1.0, "b": 0.6},
             "QTI-1": {"a": 1.1, "b": 0.2}}


@pytest.fixture
def live(sqlite_world: StudentWorld):
    sqlite_world.app.config["HUEY_URL"] = "immediate"
    with LiveServer(sqlite_world.app) as server:
        yield server


def _serious(page) -> list[str]:
    violations = Axe().run(page).response["violations"]
    return [f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']]}"
            for v in violations if v["impact"] in ("serious", "critical")]


def sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(base + "/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


def _wait_until(page, condition: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not page.evaluate(condition):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {condition}")
        page.wait_for_timeout(100)


def test_import_calibrate_review_publish_and_design(sqlite_world: StudentWorld, live, page,
                                                    tmp_path) -> None:
    found: dict[str, list[str]] = {}
    sign_in(page, live.url, "assessor1", sqlite_world.password)
    with page.expect_navigation():
        page.get_by_role("link", name="Item bank").click()
    assert page.get_by_role("heading", name="Item bank").is_visible()
    assert page.get_by_role("status").filter(has_text="items found").inner_text().startswith(
        "62 items found.")
    found["bank"] = _serious(page)
    save_screenshot(page, "assess-bank")

    # Import a CSV of two pretest items, then a bare QTI item (which needs a skill).
    csv_file = tmp_path / "new-items.csv"
    csv_file.write_text(write_items_csv([
        ItemRecord(item_id="CSV-1", stem="What is 3 x 4?", options=["7", "12", "34"], key=1,
                   skill="algebra", content_tags=["new"], status="pretest"),
        ItemRecord(item_id="CSV-2", stem="What is 10 / 4?", options=["2", "2.5", "4"], key=1,
                   skill="algebra", content_tags=["new"], status="pretest")]))
    qti_file = tmp_path / "item.xml"
    qti_file.write_bytes(write_qti_item(ItemRecord(item_id="QTI-1", stem="Which is larger?",
                                                   options=["0.5", "0.45"], key=0)))
    page.get_by_role("link", name="Import").click()
    page.get_by_label("Item file").set_input_files(str(qti_file))
    page.get_by_role("button", name="Import", exact=True).click()
    assert "has no skill" in page.locator("#problems").inner_text()
    assert page.get_by_role("alert").is_visible()
    found["import-errors"] = _serious(page)
    save_screenshot(page, "assess-import-errors")
    page.get_by_label("Skill of new items").fill("reading")
    page.get_by_label("Item file").set_input_files(str(qti_file))
    with page.expect_navigation():
        page.get_by_role("button", name="Import", exact=True).click()
    assert page.get_by_role("heading", name="Imported from item.xml").is_visible()
    page.get_by_label("Item file").set_input_files(str(csv_file))
    page.get_by_role("button", name="Import", exact=True).click()
    result = page.locator("#import-result").inner_text()
    assert "2 items created" in result and "CSV-1" in result and "pretest" in result
    found["import"] = _serious(page)
    save_screenshot(page, "assess-import")

    # Response data from a field trial: the bank's first 20 items and the three new ones.
    truth = {**_truth(sqlite_world, [f"IT-{j:03d}" for j in range(20)]), **NEW_ITEMS}
    responses = tmp_path / "field-trial.csv"
    responses.write_text(_simulated_csv(truth, n_persons=600, seed=21))
    page.get_by_role("link", name="Calibration").click()
    found["calibration"] = _serious(page)
    page.get_by_label("Response data").set_input_files(str(responses))
    with page.expect_navigation():
        page.get_by_role("button", name="Upload").click()
    assert page.get_by_role("heading", name="Response upload").is_visible()
    assert "600 persons" in page.locator("main").inner_text()
    found["upload"] = _serious(page)
    save_screenshot(page, "assess-upload")
    page.get_by_label("Anchor on the bank").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Start the run").click()
    assert page.get_by_role("heading", name="Calibration run").is_visible()
    assert page.locator("#run-status-label").inner_text() == "succeeded"
    table = page.locator("#run-items")
    assert table.locator("tbody tr").count() == 23
    assert "anchor" in table.locator("tbody tr").first.inner_text()
    assert page.locator("input[name=items]").count() == 3  # the new items, not the anchors
    found["run"] = _serious(page)
    save_screenshot(page, "assess-run-review")
    with page.expect_navigation():
        page.get_by_role("link", name="Show only flagged items").click()
    assert all(row.locator("td.flags-cell").inner_text() != "none"
               for row in page.locator("#run-items tbody tr").all())
    with page.expect_navigation():
        page.get_by_role("link", name="Show all items").click()
    page.get_by_label("Publish QTI-1").uncheck()
    page.get_by_label("Also promote the published pretest items").check()
    page.get_by_role("button", name="Publish the ticked items").click()
    assert "Published 2 parameter sets; 2 items promoted" in page.get_by_role("status").first \
        .inner_text()
    assert _item(sqlite_world, "CSV-1").status.value == "operational"
    assert _item(sqlite_world, "QTI-1").active_parameters is None  # not ticked

    # The item page draws the published parameters.
    with page.expect_navigation():
        page.get_by_role("link", name="CSV-1", exact=True).click()
    assert page.get_by_role("heading", name="Item CSV-1").is_visible()
    icc = page.get_by_role("img", name="Item characteristic curve of CSV-1")
    assert icc.is_visible()
    assert page.locator("#icc polyline").count() == 1
    assert page.locator("#information polyline").count() == 1
    assert "(the key: correct answer)" in page.locator("ol.options li.key").inner_text()
    assert "calibration" in page.locator("tr.active-row").inner_text()
    found["item"] = _serious(page)
    save_screenshot(page, "assess-item")

    page.get_by_role("link", name="Pretest").click()
    with page.expect_navigation():
        page.get_by_role("button", name="Show its pretest items").click()
    assert page.get_by_role("heading", name="Pretest items of Maths").is_visible()
    found["pretest"] = _serious(page)
    save_screenshot(page, "assess-pretest")

    page.get_by_role("link", name="Simulation").click()
    page.get_by_label("Simulated students").fill("400")
    with page.expect_navigation():
        page.get_by_role("button", name="Simulate").click()
    assert page.get_by_role("heading", name="Report: Maths, 400 simulated students").is_visible()
    for name in ("Exposure rates of the items", "Precision by ability", "Test length by ability"):
        assert page.get_by_role("img", name=name).is_visible()
    assert page.locator("#conditional tbody tr").count() == 10
    found["simulation"] = _serious(page)
    save_screenshot(page, "assess-simulation")

    assert not {k: v for k, v in found.items() if v}, found


def test_the_run_page_follows_a_queued_run_by_itself(sqlite_world: StudentWorld, live, page,
                                                      tmp_path) -> None:
    sqlite_world.app.config["HUEY_URL"] = f"sqlite:///{tmp_path / 'queue.sqlite3'}"  # no worker
    sign_in(page, live.url, "admin1", sqlite_world.password)
    truth = {**_truth(sqlite_world, [f"IT-{j:03d}" for j in range(10)]),
             "PRE-1": {"a": 1.2, "b": 0.3}}
    responses = tmp_path / "trial.csv"
    responses.write_text(_simulated_csv(truth, n_persons=300, seed=4))
    page.goto(live.url + "/assess/calibration")
    page.get_by_label("Response data").set_input_files(str(responses))
    page.get_by_role("button", name="Upload").click()
    page.get_by_role("button", name="Start the run").click()
    assert page.locator("#run-status-label").inner_text() == "queued"
    assert page.locator("#run-done").is_hidden()
    found = _serious(page)
    save_screenshot(page, "assess-run-queued")
    page.evaluate("window.__stayed = true")
    run_id = int(page.url.rsplit("/", 1)[1])
    url = engine_of(sqlite_world.app).url.render_as_string(hide_password=False)
    worker = threading.Thread(target=run_calibration, args=(run_id, url))
    worker.start()
    worker.join(timeout=60)
    _wait_until(page, "!document.getElementById('run-done').hidden")
    assert page.evaluate("window.__stayed") is True  # updated in place, not reloaded
    assert page.locator("#run-status-label").inner_text() == "succeeded"
    assert "The run has ended." in page.locator("#run-message").inner_text()
    assert page.locator("#run-progress-bar").evaluate("bar => bar.value") == 1
    with page.expect_navigation():
        page.get_by_role("link", name="Show the results").click()
    assert page.locator("#run-items tbody tr").count() == 11
    assert not found, found


def test_an_unanchored_run_is_linked_before_publishing_in_the_browser(
        sqlite_world: StudentWorld, live, page, tmp_path) -> None:
    from tests.api.test_publication import responses_csv

    sign_in(page, live.url, "assessor1", sqlite_world.password)
    truth = {**_truth(sqlite_world, [f"IT-{j:03d}" for j in range(12)]),
             "PRE-1": {"a": 1.3, "b": 0.0}}
    responses = tmp_path / "recalibration.csv"
    responses.write_text(responses_csv(truth, 1200, 6, mean=0.8, sd=1.3,
                                       focal_shift={"PRE-1": 1.5}))
    page.goto(live.url + "/assess/calibration")
    page.get_by_label("Response data").set_input_files(str(responses))
    page.get_by_role("button", name="Upload").click()
    page.get_by_label("Anchor on the bank").uncheck()
    page.get_by_role("button", name="Start the run").click()
    assert page.locator("#run-status-label").inner_text() == "succeeded"
    assert page.locator("#scale-warning").is_visible()
    assert not page.get_by_label("Publish PRE-1").is_checked()  # large DIF
    assert page.get_by_label("Publish IT-000").is_checked()
    assert page.get_by_role("radio", name="Link by Stocking-Lord").is_checked()
    assert page.locator("span.flag", has_text="large for group B").first \
        .get_attribute("title").startswith("code: dif_C_B; ETS category C")
    found = _serious(page)
    save_screenshot(page, "assess-run-unanchored")
    page.set_viewport_size({"width": 375, "height": 800})
    save_screenshot(page, "assess-run-unanchored-375")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("radio", name="Do not link").check()
    page.get_by_role("button", name="Publish the ticked items").click()
    assert "tick the box that confirms" in page.locator("#linking-error").inner_text()
    found += _serious(page)
    page.get_by_role("radio", name="Link by Stocking-Lord").check()
    page.get_by_role("button", name="Publish the ticked items").click()
    assert "put on the bank's scale by Stocking-Lord" in page.get_by_role("status").first \
        .inner_text() or "Stocking-Lord" in page.locator("main").inner_text()
    assert _item(sqlite_world, "IT-000").active_parameters.provenance["scale"] == "linked"
    assert not found, found


def test_the_bank_edit_and_item_plots_in_the_browser(sqlite_world: StudentWorld, live, page,
                                                     tmp_path) -> None:
    from tests.api.test_publication import responses_csv

    found: dict[str, list[str]] = {}
    sign_in(page, live.url, "assessor1", sqlite_world.password)
    page.goto(live.url + "/assess/items?status=operational")
    with page.expect_navigation():
        page.get_by_role("link", name="b (select to sort)").click()
    assert page.locator("th[aria-sort=descending]").inner_text().startswith("b")
    assert page.get_by_role("img", name="Information of the items").is_visible()
    assert page.get_by_role("img", name="Difficulty distribution").is_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Export").click()
    assert download.value.suggested_filename == "items.csv"
    found["bank"] = _serious(page)
    save_screenshot(page, "assess-bank-sorted")
    page.set_viewport_size({"width": 375, "height": 800})
    save_screenshot(page, "assess-bank-375")
    page.set_viewport_size({"width": 1280, "height": 800})

    page.goto(live.url + "/assess/import")
    found["import-format"] = _serious(page)
    save_screenshot(page, "assess-import-format")

    page.goto(live.url + f"/assess/items/{sqlite_world.ids['items']['IT-004']}")
    page.get_by_role("link", name="Edit the item").click()
    page.get_by_label("Question").fill("What is four plus one?")
    page.get_by_label("What changed").fill("in words")
    found["edit"] = _serious(page)
    save_screenshot(page, "assess-edit")
    page.get_by_role("button", name="Save").click()
    assert "is saved as version 2" in page.get_by_role("status").first.inner_text()
    assert page.locator("#versions tbody tr").count() == 2

    truth = {**_truth(sqlite_world, [f"IT-{j:03d}" for j in range(15)]),
             "PRE-1": {"a": 1.3, "b": 0.0}}
    responses = tmp_path / "dif.csv"
    responses.write_text(responses_csv(truth, 900, 6, focal_shift={"PRE-1": 1.5},
                                       groups=("girls", "boys")))
    page.goto(live.url + "/assess/calibration")
    page.get_by_label("Response data").set_input_files(str(responses))
    with page.expect_navigation():
        page.get_by_role("button", name="Upload").click()
    assert page.get_by_label("Reference group for DIF").locator("option").count() == 3
    found["upload-groups"] = _serious(page)
    save_screenshot(page, "assess-upload-groups")
    page.get_by_label("Reference group for DIF").select_option("girls")
    page.get_by_role("button", name="Start the run").click()
    with page.expect_navigation():
        page.get_by_role("link", name="Fit and DIF PRE-1").click()
    assert page.get_by_role("img", name="Observed and expected scores of PRE-1").is_visible()
    assert page.get_by_role("img", name="Observed scores of PRE-1 by group").is_visible()
    found["run-item"] = _serious(page)
    save_screenshot(page, "assess-run-item")
    page.set_viewport_size({"width": 375, "height": 800})
    save_screenshot(page, "assess-run-item-375")
    assert not {k: v for k, v in found.items() if v}, found


def test_designs_are_compared_in_the_browser(sqlite_world: StudentWorld, live, page) -> None:
    sign_in(page, live.url, "assessor1", sqlite_world.password)
    page.goto(live.url + "/assess/simulate")
    page.get_by_label("Simulated students").fill("300")
    page.get_by_label("Simulate design B too").check()
    page.locator("#d2_selection").select_option("random")
    page.locator("#d2_exposure").select_option("randomesque")
    page.get_by_label("Simulate design C too").check()
    page.locator("#d3_exposure").select_option("eligibility")
    with page.expect_navigation():
        page.get_by_role("button", name="Simulate").click()
    expect(page.get_by_role("heading", name="Comparison: Maths, 300 simulated students")) \
        .to_be_visible()
    assert page.get_by_role("img", name="Precision by ability, per design").is_visible()
    assert page.locator("#compare-table thead th").count() == 3
    found = _serious(page)
    save_screenshot(page, "assess-simulation-compare")
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    save_screenshot(page, "assess-simulation-compare-375")
    assert not found, found
