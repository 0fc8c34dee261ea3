"""Engine, URL handling and units of work."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from storage import (
    DatabaseURLError,
    check_connection,
    database_url,
    make_engine,
    mask_url,
    session_factory,
    session_scope,
)
from storage.accounts import AppMeta, Role, User, authenticate
from storage.migrate import upgrade


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://cat:s3cret@db:5432/cat", "postgresql+psycopg://cat:***@db:5432/cat"),
        ("sqlite:///instance/x.db", "sqlite:///instance/x.db"),
        ("postgresql://cat@db/cat", "postgresql://cat@db/cat"),
        # Not parseable as a URL: still no password in the text.
        ("postgresql+psycopg//cat:s3cret@db/cat", "postgresql+psycopg//cat:***@db/cat"),
        ("nonsense::/:x:s3cret@", "nonsense::/:x:***@"),
    ],
)
def test_mask_url_hides_passwords(url: str, expected: str) -> None:
    assert mask_url(url) == expected
    assert "s3cret" not in mask_url(url)


def test_default_url_is_a_sqlite_file_under_instance(tmp_path) -> None:
    url = database_url()
    assert url == f"sqlite:///{tmp_path / 'instance' / 'cat-engine.sqlite3'}"
    assert (tmp_path / "instance").is_dir()


def test_environment_url_wins_over_default(monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "sqlite:///elsewhere.db")
    assert database_url() == "sqlite:///elsewhere.db"
    assert database_url("sqlite:///explicit.db") == "sqlite:///explicit.db"


def test_unparseable_url_is_named_without_password() -> None:
    with pytest.raises(DatabaseURLError, match="cannot parse") as caught:
        make_engine("not a url:hunter2@")
    assert "hunter2" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_driver_is_named() -> None:
    with pytest.raises(DatabaseURLError, match=r"foo://u:\*\*\*@h/x"):
        make_engine("foo://u:pw@h/x")


def test_unreachable_server_is_one_line_with_password_masked() -> None:
    engine = make_engine("postgresql+psycopg://cat:hunter2@127.0.0.1:1/cat")
    with pytest.raises(DatabaseURLError) as caught:
        check_connection(engine)
    message = str(caught.value)
    assert message.startswith("cannot connect to DATABASE_URL postgresql+psycopg://cat:***@")
    assert "hunter2" not in message and "\n" not in message


def test_sqlite_enforces_foreign_keys(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(text("INSERT INTO item_tags (item_id, tag) VALUES (999, 'x')"))


def test_session_scope_rolls_back_everything_on_error(any_db_url: str) -> None:
    engine = make_engine(any_db_url)
    upgrade(engine)
    factory = session_factory(engine)
    with pytest.raises(IntegrityError), session_scope(factory) as session:
        session.add(AppMeta(key="a", value="1"))
        session.flush()
        session.add(AppMeta(key="a", value="2"))  # duplicate primary key
    with session_scope(factory) as session:
        assert session.query(AppMeta).count() == 0
    engine.dispose()


def test_passwords_are_hashed_and_checked(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    with session_scope(session_factory(engine)) as session:
        user = User(username="ana", role=Role.STUDENT)
        user.set_password("correct horse")
        session.add(user)
    with session_scope(session_factory(engine)) as session:
        stored = session.query(User).one()
        assert "correct horse" not in stored.password_hash
        assert authenticate(session, "ana", "correct horse") is not None
        assert authenticate(session, "ana", "wrong") is None
        assert authenticate(session, "nobody", "correct horse") is None
        stored.is_active = False
        assert authenticate(session, "ana", "correct horse") is None
    with pytest.raises(ValueError, match="password"):
        User(username="x", role=Role.ADMIN).set_password("")
