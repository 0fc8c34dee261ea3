"""The roster page in a real Chromium: an administrator uploads the sample district roster,
reads the dry run's report, applies it; a bad roster's errors are shown by file, line and id."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from api.app import create_app
from storage import make_engine, session_factory, session_scope
from storage.accounts import SchoolClass, User
from tests.conftest import LiveServer, migrated_with_user, save_screenshot
from tests.evidence.roster_samples import SAMPLE, edit, sample, zipped

pytestmark = pytest.mark.browser


@pytest.fixture
def server(sqlite_url):
    migrated_with_user(sqlite_url, "admin1", "demo-password", "admin", "Admin One")
    app = create_app({"DATABASE_URL": sqlite_url, "SECRET_KEY": "browser-test"})
    with LiveServer(app) as live:
        yield live


def _sign_in(page, base: str) -> None:
    page.goto(base + "/")
    page.get_by_label("Username").fill("admin1")
    page.get_by_label("Password").fill("demo-password")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def test_check_then_apply_the_sample_roster(page, server, sqlite_url, tmp_path) -> None:
    _sign_in(page, server.url)
    page.get_by_role("link", name="Rosters").click()
    assert page.get_by_role("heading", name="Rosters", level=1).is_visible()
    page.get_by_label("OneRoster zip, or its CSV files").set_input_files(
        sorted(str(p) for p in SAMPLE.glob("*.csv")))
    page.get_by_role("button", name="Check").click()
    page.wait_for_load_state()
    assert "can be applied" in page.locator("#report-verdict").inner_text()
    counts = page.locator("#roster-counts")
    assert "Students and teachers" in counts.inner_text()
    row = counts.get_by_role("row", name="Students and teachers")
    assert row.get_by_role("cell").nth(0).inner_text() == "10"  # to create
    assert "left out" in page.locator("#roster-problems").inner_text()
    save_screenshot(page, "roster-dry-run")
    engine = make_engine(sqlite_url)
    with session_scope(session_factory(engine)) as session:
        assert session.scalar(select(func.count()).select_from(SchoolClass)) == 0
    page.get_by_role("button", name="Apply the roster").click()
    page.wait_for_load_state()
    assert "The roster is imported: 10 accounts created" in page.get_by_role(
        "status").inner_text()
    with session_scope(session_factory(engine)) as session:
        assert session.scalar(select(func.count()).select_from(SchoolClass)) == 4
        assert session.scalar(select(func.count()).select_from(User)) == 11
    assert "applied" in page.locator("#recent-imports").inner_text()
    save_screenshot(page, "roster-applied")
    engine.dispose()


def test_a_bad_roster_shows_its_errors(page, server, tmp_path) -> None:
    bad = edit(sample(), "enrollments.csv", lambda rs: [
        r | ({"userSourcedId": "stu-005"} if r["sourcedId"] == "enr-005" else {}) for r in rs])
    path = tmp_path / "roster.zip"
    path.write_bytes(zipped(bad))
    _sign_in(page, server.url)
    page.goto(server.url + "/admin/rosters")
    page.get_by_label("OneRoster zip, or its CSV files").set_input_files(str(path))
    page.get_by_role("button", name="Check").click()
    page.wait_for_load_state()
    assert "1 error" in page.get_by_role("alert").first.inner_text()
    problems = page.locator("#roster-problems").inner_text()
    assert "enrollments.csv" in problems and "enr-005" in problems
    assert "an org they do not belong to" in problems
    assert page.get_by_role("button", name="Apply the roster").count() == 0
    save_screenshot(page, "roster-errors")
