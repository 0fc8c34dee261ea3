"""Times on the pages are in the reader's time zone, and every page says which zone that is."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from sqlalchemy import update

from api.app import create_app
from evidence.models import Assignment
from tests.delivery_ui.conftest import StudentWorld

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
CLOSES = datetime(2030, 1, 15, 23, 30, tzinfo=UTC)


def _closing(world: StudentWorld) -> None:
    with world.db() as session:
        session.execute(update(Assignment).where(Assignment.test_id == world.test_id)
                        .values(closes_at=CLOSES))


def _my_tests(world: StudentWorld, zone: str | None) -> str:
    client = world.client_for("student1")
    if zone is not None:
        client.set_cookie("tz", quote(zone, safe=""))
    return client.get("/my-tests").get_data(as_text=True)


def test_times_are_shown_in_the_browsers_zone(student_world: StudentWorld) -> None:
    _closing(student_world)
    utc = _my_tests(student_world, None)
    assert "Jan 15, 2030, 11:30:00\u202fPM" in utc
    assert "Times are shown in the time zone UTC." in utc
    tokyo = _my_tests(student_world, "Asia/Tokyo")  # 9 hours ahead: the next morning
    assert "Jan 16, 2030, 8:30:00\u202fAM" in tokyo
    assert "Times are shown in the time zone Asia/Tokyo." in tokyo
    for nonsense in ("Mars/Olympus_Mons", "../../etc/passwd", "x" * 200, ""):
        page = _my_tests(student_world, nonsense)
        assert "Times are shown in the time zone UTC." in page, nonsense


def test_the_servers_zone_is_the_default_and_must_exist(student_world, monkeypatch) -> None:
    _closing(student_world)
    url = student_world.app.config["DATABASE_URL"]
    monkeypatch.setenv("CAT_ENGINE_TIMEZONE", "America/New_York")
    app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "zones"})
    world = StudentWorld(app=app, ids=student_world.ids)
    page = _my_tests(world, None)
    assert "Jan 15, 2030, 6:30:00\u202fPM" in page  # EST, 5 hours behind
    assert "America/New_York" in page
    assert "Jan 16, 2030" in _my_tests(world, "Asia/Tokyo")  # the browser's zone still wins
    monkeypatch.setenv("CAT_ENGINE_TIMEZONE", "Atlantis/Capital")
    with pytest.raises(ValueError, match="Atlantis/Capital"):
        create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "zones"})


@pytest.mark.browser
def test_the_browser_tells_its_zone_after_the_first_page(sqlite_world, live, browser) -> None:
    from tests.delivery_ui.test_student_pages import _sign_in

    _closing(sqlite_world)
    context = browser.new_context(timezone_id="Pacific/Auckland")
    try:
        page = context.new_page()
        _sign_in(page, live.url, password=sqlite_world.password)
        page.reload()
        footer = page.locator("#time-zone").inner_text()
        assert footer == "Times are shown in the time zone Pacific/Auckland.", footer
        assert "Jan 16, 2030, 12:30:00\u202fPM" in page.locator("main").inner_text()  # NZDT +13
    finally:
        context.close()
