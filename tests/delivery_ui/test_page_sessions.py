"""Page sessions can be revoked: a copied session cookie stops working when its owner signs out,
when the password changes, and when the account is deactivated (even once reactivated); and it
ends after 2 h idle or 12 h in all. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from storage import as_utc, utcnow
from storage.accounts import PageSession
from tests.delivery_ui.conftest import PASSWORD, csrf_of


def _copy_of(world, client):
    """A second browser holding a copy of ``client``'s session cookie."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    thief = world.app.test_client()
    thief.set_cookie("session", cookie.value)
    return thief


def _signed_in(client) -> bool:
    response = client.get("/my-tests")
    if response.status_code == 302:
        assert "/?next=" in response.headers["Location"]
        return False
    assert response.status_code == 200
    return True


def _admin_api(world, method: str, path: str, json: dict):
    client = world.app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": "admin1",
                                                    "password": PASSWORD}).get_json()
    r = client.open(path, method=method, json=json,
                    headers={"Authorization": f"Bearer {token['access_token']}"})
    assert r.status_code == 200, r.get_json()


def test_signing_out_ends_every_copy_of_the_cookie(student_world) -> None:
    owner = student_world.client_for("student1")
    thief = _copy_of(student_world, owner)
    assert _signed_in(thief) and _signed_in(owner)
    token = csrf_of(owner.get("/my-tests").get_data(as_text=True))
    assert owner.post("/sign-out", data={"csrf_token": token}).status_code == 302
    assert not _signed_in(owner)
    assert not _signed_in(thief)
    with student_world.db() as session:
        assert session.scalars(select(PageSession)).all() == []


def test_another_browser_of_the_same_user_stays_signed_in(student_world) -> None:
    laptop = student_world.client_for("student1")
    phone = student_world.client_for("student1")
    token = csrf_of(laptop.get("/my-tests").get_data(as_text=True))
    laptop.post("/sign-out", data={"csrf_token": token})
    assert not _signed_in(laptop) and _signed_in(phone)


@pytest.mark.parametrize("change", ["password", "deactivation"])
def test_a_new_password_or_deactivation_ends_every_session(student_world, change) -> None:
    owner = student_world.client_for("student1")
    thief = _copy_of(student_world, owner)
    other = student_world.client_for("student2")
    student = student_world.ids["users"]["student1"]
    path = f"/api/v1/users/{student}"
    if change == "password":
        _admin_api(student_world, "PATCH", path, {"password": "a brand new password"})
    else:
        _admin_api(student_world, "PATCH", path, {"is_active": False})
        _admin_api(student_world, "PATCH", path, {"is_active": True})  # no resurrection
    assert not _signed_in(owner) and not _signed_in(thief)
    assert _signed_in(other)


@pytest.mark.parametrize("column, age, ends", [
    ("last_seen_at", timedelta(hours=2, seconds=5), True),
    ("last_seen_at", timedelta(hours=1, minutes=59), False),
    ("created_at", timedelta(hours=12, seconds=5), True),
    ("created_at", timedelta(hours=11, minutes=59), False),
])
def test_sessions_end_after_2_hours_idle_or_12_hours_in_all(student_world, column, age,
                                                             ends) -> None:
    owner = student_world.client_for("student1")
    with student_world.db() as session:
        session.execute(update(PageSession).values({column: utcnow() - age}))
    assert _signed_in(owner) is not ends


def test_a_request_moves_the_idle_clock_at_most_once_a_minute(student_world) -> None:
    owner = student_world.client_for("student1")

    def last_seen():
        with student_world.db() as session:
            return as_utc(session.scalar(select(PageSession.last_seen_at)))

    with student_world.db() as session:
        session.execute(update(PageSession).values(last_seen_at=utcnow() - timedelta(
            minutes=90)))
    assert _signed_in(owner)
    moved = last_seen()
    assert utcnow() - moved < timedelta(seconds=30)
    assert _signed_in(owner)
    assert last_seen() == moved  # within the minute: not written again


def test_the_cookie_expires_with_the_session(student_world) -> None:
    client = student_world.app.test_client()
    token = csrf_of(client.get("/").get_data(as_text=True))
    r = client.post("/sign-in", data={"username": "student1", "password": PASSWORD,
                                      "csrf_token": token})
    assert r.status_code == 302
    cookie = next(h for h in r.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "Expires=" in cookie and "HttpOnly" in cookie
    expires = client.get_cookie("session").expires
    assert timedelta(hours=11) < as_utc(expires) - utcnow() <= timedelta(hours=12)


def test_a_sign_in_sweeps_away_expired_sessions(student_world) -> None:
    student_world.client_for("student1")
    student_world.client_for("student2")
    with student_world.db() as session:
        session.execute(update(PageSession).values(last_seen_at=utcnow() - timedelta(hours=3)))
    student_world.client_for("teacher1")
    with student_world.db() as session:
        left = session.scalars(select(PageSession.user_id)).all()
    assert left == [student_world.ids["users"]["teacher1"]]
