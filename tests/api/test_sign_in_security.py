"""Hardened sign-in: failed attempts rate-limited per account and per address (on the database,
shared by app instances, or on Redis), one answer for every kind of wrong account, passwords
re-hashed to the current scheme, and the cookies' attributes."""

from __future__ import annotations

import re
import socket
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update
from werkzeug.security import check_password_hash, generate_password_hash

import storage.accounts
from api.app import create_app
from api.db import engine_of
from storage import session_factory, session_scope
from storage.accounts import User, needs_rehash
from storage.rights import RateLimitCounter
from tests.api.conftest import PASSWORD, ApiWorld

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
FORM_ERROR = re.compile(r'id="form-error">([^<]*)<')
A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"


def token(client, username: str, password: str, address: str = A):
    return client.post("/api/v1/auth/token", json={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def page_sign_in(client, username: str, password: str, address: str = A):
    csrf = CSRF.search(client.get("/").get_data(as_text=True)).group(1)
    return client.post("/sign-in", data={"username": username, "password": password,
                                         "csrf_token": csrf},
                       environ_base={"REMOTE_ADDR": address})


def wait_for(reply) -> None:
    """Sleep until the window named by a 429's Retry-After has ended (a few seconds)."""
    seconds = int(reply.headers["Retry-After"])
    assert 1 <= seconds <= 6
    time.sleep(seconds + 0.3)


# -- rate limiting --------------------------------------------------------------------------------


def test_ten_failures_lock_the_account_for_the_window_and_nothing_else(world: ApiWorld) -> None:
    world.app.config["SIGN_IN_RATE_LIMIT"] = "10 per 5 seconds"
    client = world.client
    codes = [token(client, "student1", "wrong").status_code for _ in range(10)]
    assert codes == [401] * 10
    refused = token(client, "student1", "wrong")
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert 1 <= int(refused.headers["Retry-After"]) <= 5
    assert "too many failed sign-ins" in refused.get_json()["detail"]
    # The right password is refused too while the window lasts, from any address, and on the
    # sign-in page as well (the page and the API count together).
    right = token(client, "student1", PASSWORD, address=C)
    assert right.status_code == 429 and right.headers["Retry-After"]
    page = page_sign_in(world.app.test_client(), "student1", PASSWORD, address=C)
    assert page.status_code == 429 and page.headers["Retry-After"]
    assert "Too many failed sign-ins" in FORM_ERROR.search(page.get_data(as_text=True))[1]
    # Another account is not affected, from another address or from the same one.
    assert token(client, "student2", PASSWORD, address=B).status_code == 200
    assert token(client, "student2", PASSWORD, address=A).status_code == 200
    wait_for(refused)
    assert token(client, "student1", PASSWORD).status_code == 200


def test_the_page_counts_failures_and_answers_in_the_chosen_language(world: ApiWorld) -> None:
    world.app.config["SIGN_IN_RATE_LIMIT"] = "3 per minute"
    client = world.app.test_client()
    client.set_cookie("lang", "es")
    for _ in range(3):
        assert page_sign_in(client, "teacher1", "wrong").status_code == 400
    refused = page_sign_in(client, "teacher1", PASSWORD)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    text = refused.get_data(as_text=True)
    assert "Demasiados intentos fallidos" in FORM_ERROR.search(text)[1]
    assert 'value="teacher1"' in text  # the form keeps the username typed
    # ...and the API refuses the same account: the counts are shared.
    assert token(world.client, "teacher1", PASSWORD).status_code == 429


def test_failures_from_one_address_lock_that_address(world: ApiWorld) -> None:
    world.app.config["SIGN_IN_ADDRESS_RATE_LIMIT"] = "5 per minute"
    for k in range(5):  # five different (unknown) accounts: no account limit is reached
        assert token(world.client, f"guess{k}", "wrong", address=A).status_code == 401
    refused = token(world.client, "student1", PASSWORD, address=A)
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert token(world.client, "student1", PASSWORD, address=B).status_code == 200


def test_successful_sign_ins_are_not_counted(world: ApiWorld) -> None:
    world.app.config["SIGN_IN_RATE_LIMIT"] = "3 per minute"
    world.app.config["SIGN_IN_ADDRESS_RATE_LIMIT"] = "3 per minute"
    assert [token(world.client, "student1", PASSWORD).status_code
            for _ in range(6)] == [200] * 6
    # Bad requests that never reached a password check are not failures either.
    for _ in range(4):
        assert world.client.post("/api/v1/auth/token", json={"username": "student1"},
                                 environ_base={"REMOTE_ADDR": A}).status_code == 422
    assert token(world.client, "student1", PASSWORD).status_code == 200


def test_unknown_and_existing_accounts_are_limited_alike(world: ApiWorld) -> None:
    world.app.config["SIGN_IN_RATE_LIMIT"] = "2 per minute"
    replies = {}
    for name in ("student1", "nobody"):
        for _ in range(2):
            token(world.client, name, "wrong", address=B)
        replies[name] = token(world.client, name, "wrong", address=B)
    assert replies["student1"].status_code == replies["nobody"].status_code == 429
    assert replies["student1"].get_json()["detail"] == replies["nobody"].get_json()["detail"]


def test_counts_live_in_the_database_as_keyed_hashes(world: ApiWorld) -> None:
    """No username or address is written to the counters' table."""
    for _ in range(2):
        token(world.client, "student1", "wrong", address="192.0.2.77")
    with session_scope(session_factory(engine_of(world.app))) as session:
        rows = session.scalars(select(RateLimitCounter)).all()
    assert {row.count for row in rows} == {2}
    assert len(rows) == 2  # one for the account, one for the address
    assert all("student1" not in row.key and "192.0.2.77" not in row.key for row in rows)
    assert all(row.expires_at > time.time() + 500 for row in rows)  # the 10-minute window


def test_two_app_instances_on_one_database_share_the_counts(world: ApiWorld, any_db_url) -> None:
    other = create_app({"TESTING": True, "DATABASE_URL": any_db_url, "SECRET_KEY": "test"})
    try:
        clients = [world.client, other.test_client()]
        codes = [token(clients[k % 2], "student2", "wrong").status_code for k in range(10)]
        assert codes == [401] * 10
        assert token(clients[0], "student2", PASSWORD).status_code == 429
        assert token(clients[1], "student2", PASSWORD).status_code == 429
        assert token(clients[1], "student1", PASSWORD).status_code == 200
    finally:
        engine_of(other).dispose()


@pytest.fixture
def redis_url(redis_server) -> str:
    """The URL of a redis-server of this test's own."""
    return redis_server.url


def test_counts_on_redis_are_shared_by_two_apps(world: ApiWorld, any_db_url, redis_url) -> None:
    import redis

    config = {"TESTING": True, "DATABASE_URL": any_db_url, "SECRET_KEY": "test",
              "RATELIMIT_STORAGE_URI": redis_url, "SIGN_IN_RATE_LIMIT": "10 per 4 seconds"}
    apps = [create_app(config), create_app(config)]
    try:
        clients = [a.test_client() for a in apps]
        codes = [token(clients[k % 2], "student1", "wrong").status_code for k in range(10)]
        assert codes == [401] * 10
        refused = token(clients[0], "student1", PASSWORD)
        assert refused.status_code == 429
        assert token(clients[1], "student1", PASSWORD).status_code == 429
        assert token(clients[1], "student2", PASSWORD, address=B).status_code == 200
        assert redis.Redis.from_url(redis_url).dbsize() > 0
        with session_scope(session_factory(engine_of(apps[0]))) as session:
            assert session.scalars(select(RateLimitCounter)).all() == []
        wait_for(refused)
        assert token(clients[0], "student1", PASSWORD).status_code == 200
    finally:
        for app in apps:
            engine_of(app).dispose()


def test_an_unknown_storage_stops_the_app(sqlite_url) -> None:
    with pytest.raises(Exception, match="nosuch"):
        create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "SECRET_KEY": "t",
                    "RATELIMIT_STORAGE_URI": "nosuch://"})


# -- one answer for every wrong account ----------------------------------------------------------


def _make_wrong_accounts(world: ApiWorld) -> None:
    """student2 deactivated, student3 erased (a tombstone, as the erasure leaves it)."""
    with session_scope(session_factory(engine_of(world.app))) as session:
        session.execute(update(User).where(User.username == "student2").values(is_active=False))
        session.execute(update(User).where(User.username == "student3")
                        .values(erased_at=datetime.now(UTC)))


WRONG = {"unknown user": ("nobody", PASSWORD), "wrong password": ("student1", "wrong"),
         "deactivated": ("student2", PASSWORD), "erased": ("student3", PASSWORD)}


def test_the_api_answers_every_wrong_account_alike(world: ApiWorld) -> None:
    _make_wrong_accounts(world)
    replies = {case: token(world.client, *credentials) for case, credentials in WRONG.items()}
    assert {r.status_code for r in replies.values()} == {401}
    assert len({r.get_data() for r in replies.values()}) == 1, {
        case: r.get_json() for case, r in replies.items()}
    assert len({tuple(sorted(r.headers.keys())) for r in replies.values()}) == 1


def test_the_page_answers_every_wrong_account_alike(world: ApiWorld) -> None:
    _make_wrong_accounts(world)
    messages, codes = set(), set()
    for username, password in WRONG.values():
        reply = page_sign_in(world.app.test_client(), username, password)
        codes.add(reply.status_code)
        messages.add(FORM_ERROR.search(reply.get_data(as_text=True))[1])
    assert codes == {400}
    assert messages == {"That username and password do not match an account."}


def test_every_wrong_account_costs_one_hash_of_the_current_method(
        world: ApiWorld, monkeypatch) -> None:
    """The time an answer takes does not tell the cases apart: each checks one password hash
    made with the app's method (a dummy one when there is no usable account)."""
    _make_wrong_accounts(world)
    checked: list[str] = []

    def counting(pwhash: str, password: str) -> bool:
        checked.append(pwhash.split("$", 1)[0])
        return check_password_hash(pwhash, password)

    monkeypatch.setattr(storage.accounts, "check_password_hash", counting)
    method = world.app.config["PASSWORD_HASH_METHOD"]
    for case, credentials in WRONG.items():
        checked.clear()
        assert token(world.client, *credentials).status_code == 401
        assert checked == [method], case


# -- re-hashing ----------------------------------------------------------------------------------


def _store_hash(world: ApiWorld, username: str, password_hash: str) -> None:
    with session_scope(session_factory(engine_of(world.app))) as session:
        session.execute(update(User).where(User.username == username)
                        .values(password_hash=password_hash))


def _stored_hash(world: ApiWorld, username: str) -> str:
    with session_scope(session_factory(engine_of(world.app))) as session:
        return session.scalar(select(User.password_hash).where(User.username == username))


@pytest.mark.parametrize("old_method", ["pbkdf2:sha256:600000", "scrypt:16384:8:1"])
def test_an_old_hash_is_replaced_at_sign_in(world: ApiWorld, old_method: str) -> None:
    world.app.config["PASSWORD_HASH_METHOD"] = "scrypt"
    old = generate_password_hash(PASSWORD, method=old_method)
    _store_hash(world, "student1", old)
    assert token(world.client, "student1", "wrong").status_code == 401
    assert _stored_hash(world, "student1") == old  # a wrong password changes nothing
    assert token(world.client, "student1", PASSWORD).status_code == 200
    new = _stored_hash(world, "student1")
    assert new.startswith("scrypt:32768:8:1$") and new != old
    assert check_password_hash(new, PASSWORD)
    assert token(world.client, "student1", PASSWORD).status_code == 200
    assert _stored_hash(world, "student1") == new  # a current hash is kept as it is


def test_the_page_sign_in_rehashes_too(world: ApiWorld) -> None:
    world.app.config["PASSWORD_HASH_METHOD"] = "scrypt"
    _store_hash(world, "teacher1", generate_password_hash(PASSWORD, method="pbkdf2"))
    assert page_sign_in(world.app.test_client(), "teacher1", PASSWORD).status_code == 302
    assert _stored_hash(world, "teacher1").startswith("scrypt:32768:8:1$")


def test_needs_rehash() -> None:
    assert not needs_rehash(generate_password_hash("x"))
    assert needs_rehash(generate_password_hash("x", method="pbkdf2"))
    assert needs_rehash(generate_password_hash("x", method="scrypt:16384:8:1"))
    assert not needs_rehash(generate_password_hash("x", method="pbkdf2:sha256:1000"),
                            "pbkdf2:sha256:1000")


def test_an_unknown_hash_method_stops_the_app(sqlite_url) -> None:
    with pytest.raises(ValueError, match="CAT_ENGINE_PASSWORD_HASH"):
        create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "SECRET_KEY": "t",
                    "PASSWORD_HASH_METHOD": "md5"})


# -- cookies ------------------------------------------------------------------------------------


def _cookie(reply, name: str) -> str:
    found = [c for c in reply.headers.getlist("Set-Cookie") if c.startswith(f"{name}=")]
    assert found, reply.headers.getlist("Set-Cookie")
    return found[-1]


def _attributes(cookie: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}


def test_the_session_cookie_is_httponly_and_samesite_and_not_secure_over_http(
        world: ApiWorld) -> None:
    reply = page_sign_in(world.app.test_client(), "student1", PASSWORD)
    assert reply.status_code == 302
    cookie = _cookie(reply, "session")
    assert {"httponly", "samesite", "expires", "path"} <= _attributes(cookie)
    assert "SameSite=Lax" in cookie
    assert "secure" not in _attributes(cookie)  # the plain-http demo must keep working


def test_the_cookies_are_secure_when_the_setting_says_so(world: ApiWorld) -> None:
    world.app.config["SESSION_COOKIE_SECURE"] = True
    client = world.app.test_client()
    cookie = _cookie(page_sign_in(client, "student1", PASSWORD), "session")
    assert {"secure", "httponly", "samesite"} <= _attributes(cookie)
    csrf = CSRF.search(client.get("/").get_data(as_text=True)).group(1)
    language = client.post("/language", data={"lang": "es", "csrf_token": csrf, "next": "/"})
    assert {"secure", "httponly", "samesite"} <= _attributes(_cookie(language, "lang"))


def test_the_cookies_are_secure_on_requests_that_came_over_https(world: ApiWorld) -> None:
    """Behind TLS the cookie is Secure even with the setting left off."""
    assert not world.app.config["SESSION_COOKIE_SECURE"]
    client = world.app.test_client()
    page = client.get("/", base_url="https://localhost")
    csrf = CSRF.search(page.get_data(as_text=True)).group(1)
    reply = client.post("/sign-in", base_url="https://localhost",
                        data={"username": "student1", "password": PASSWORD,
                              "csrf_token": csrf})
    assert reply.status_code == 302
    assert {"secure", "httponly", "samesite"} <= _attributes(_cookie(reply, "session"))


@pytest.mark.parametrize(("settings", "environment", "secure"), [
    ({}, {}, False),
    ({"PUBLIC_URL": "https://quiz.school.example"}, {}, True),
    ({"PREFERRED_URL_SCHEME": "https"}, {}, True),
    ({"PUBLIC_URL": "http://localhost:5000"}, {}, False),
    ({}, {"SESSION_COOKIE_SECURE": "1"}, True),
    ({"PUBLIC_URL": "https://quiz.school.example"}, {"SESSION_COOKIE_SECURE": "0"}, False),
    ({}, {"CAT_ENGINE_PUBLIC_URL": "https://quiz.school.example"}, True),
])
def test_the_secure_setting_follows_the_deployment(sqlite_url, monkeypatch, settings,
                                                   environment, secure) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "SECRET_KEY": "t",
                      **settings})
    assert app.config["SESSION_COOKIE_SECURE"] is secure
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    engine_of(app).dispose()


def test_a_bad_secure_setting_stops_the_app(sqlite_url, monkeypatch) -> None:
    monkeypatch.setenv("SESSION_COOKIE_SECURE", "sometimes")
    with pytest.raises(ValueError, match="SESSION_COOKIE_SECURE"):
        create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "SECRET_KEY": "t"})


def test_an_unreachable_storage_does_not_take_sign_in_down(world: ApiWorld, any_db_url) -> None:
    """Redis down: sign-in goes on, uncounted (logged), rather than failing every request."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app({"TESTING": True, "DATABASE_URL": any_db_url, "SECRET_KEY": "test",
                      "RATELIMIT_STORAGE_URI": f"redis://127.0.0.1:{port}/0",
                      "SIGN_IN_RATE_LIMIT": "1 per minute"})
    try:
        client = app.test_client()
        assert [token(client, "student1", "wrong").status_code for _ in range(3)] == [401] * 3
        assert token(client, "student1", PASSWORD).status_code == 200
    finally:
        engine_of(app).dispose()
