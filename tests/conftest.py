"""Fixtures shared by the whole suite: databases (SQLite and PostgreSQL), apps, Chromium.

PostgreSQL tests use ``TEST_DATABASE_URL`` (a role allowed to create databases); each test gets a
database of its own, created and dropped around it. Browser tests use Debian's Chromium at
``CHROMIUM_PATH``. Without them these tests skip, unless ``REQUIRE_POSTGRES=1`` or
``REQUIRE_BROWSER=1`` says they must run, and then they fail.
"""

from __future__ import annotations

import os
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
#: The password hash of the test worlds, and so the one apps under test re-hash to.
TEST_HASH_METHOD = "pbkdf2:sha256:1000"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _unavailable(what: str, required_by: str) -> None:
    if os.environ.get(required_by) == "1":
        pytest.fail(f"{what} is required ({required_by}=1) but unavailable", pytrace=False)
    pytest.skip(f"{what} unavailable; set it up to run this test")


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test in its own directory with no DATABASE_URL, so defaults land in tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    # The fixture worlds store cheap pbkdf2 hashes (they sign in hundreds of times); with the
    # app's default (scrypt) every first sign-in would re-hash them at ~0.1 s each. Tests of
    # re-hashing set PASSWORD_HASH_METHOD themselves.
    monkeypatch.setenv("CAT_ENGINE_PASSWORD_HASH", TEST_HASH_METHOD)


@pytest.fixture
def empty_sqlite_url(tmp_path: Path) -> str:
    """URL of a new, empty SQLite file (no tables: for the migration and setup tests)."""
    return f"sqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture(scope="session")
def _migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per test process; tests get copies of it."""
    from storage import make_engine
    from storage.migrate import upgrade

    path = tmp_path_factory.mktemp("template") / "migrated.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as connection:  # everything in the main file, nothing in the WAL
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, _migrated_sqlite_file: Path) -> str:
    """URL of a new SQLite file with the schema at head and no rows (a copy of a template:
    migrating each test's database again took a second a test)."""
    target = tmp_path / "test.sqlite3"
    shutil.copyfile(_migrated_sqlite_file, target)
    return f"sqlite:///{target}"


def _postgres_admin():
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        _unavailable("PostgreSQL (TEST_DATABASE_URL)", "REQUIRE_POSTGRES")
    return base, create_engine(base, isolation_level="AUTOCOMMIT")


def _new_postgres_database(template: str | None = None) -> Iterator[str]:
    base, admin = _postgres_admin()
    name = f"cat_test_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"{clause}'))
    except Exception as error:
        admin.dispose()
        _unavailable(f"PostgreSQL at TEST_DATABASE_URL ({error.__class__.__name__}: {error})",
                     "REQUIRE_POSTGRES")
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """URL of a new, empty PostgreSQL database (no tables), dropped after the test."""
    yield from _new_postgres_database()


@pytest.fixture(scope="session")
def _migrated_postgres_template() -> Iterator[str | None]:
    """A PostgreSQL database migrated to head once per test process, the template of the
    others (cloning it is faster than migrating); None without PostgreSQL."""
    if not os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    from storage import make_engine
    from storage.migrate import upgrade

    database = _new_postgres_database()
    try:
        url = next(database)
    except pytest.skip.Exception:
        yield None
        return
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield make_url(url).database
    database.close()  # drops it


@pytest.fixture
def postgres_url(_migrated_postgres_template: str | None) -> Iterator[str]:
    """URL of a new PostgreSQL database with the schema at head and no rows, dropped after
    the test."""
    if _migrated_postgres_template is None:
        _postgres_admin()  # skips, or fails when PostgreSQL is required
    yield from _new_postgres_database(_migrated_postgres_template)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db_url(request: pytest.FixtureRequest) -> str:
    """A database of each kind the product supports, with the schema at head and no rows."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return request.getfixturevalue(name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest) -> str:
    """An empty database (no tables) of each kind the product supports."""
    name = "empty_sqlite_url" if request.param == "sqlite" else "empty_postgres_url"
    return request.getfixturevalue(name)


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (never Playwright's own browser download)."""
    path = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(path).exists():
        _unavailable(f"Chromium at {path} (CHROMIUM_PATH)", "REQUIRE_BROWSER")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright (pip install -e '.[test]')", "REQUIRE_BROWSER")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A page in a fresh browser context (no cookies shared between tests)."""
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


class LiveServer:
    """A Flask app served by werkzeug on a free loopback port, in a background thread."""

    def __init__(self, app) -> None:
        from werkzeug.serving import make_server

        self.app = app
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


def save_screenshot(page, name: str) -> Path:
    """Save a full-page screenshot as a test artefact and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def migrated_with_user(
    url: str, username: str, password: str, role: str, display_name: str = ""
) -> None:
    """Migrate the database at ``url`` to head and add one user."""
    from storage import make_engine, session_factory, session_scope
    from storage.accounts import Role, User
    from storage.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    with session_scope(session_factory(engine)) as session:
        user = User(username=username, display_name=display_name, role=Role(role))
        user.set_password(password)
        session.add(user)
    engine.dispose()


@pytest.fixture
def redis_server():
    """``redis-server`` on a free port, for this test only (skipped without it, unless
    ``REQUIRE_REDIS=1`` says it must run)."""
    from bench.cluster import RedisServer, Unavailable

    try:
        server = RedisServer()
    except Unavailable as error:
        _unavailable(str(error), "REQUIRE_REDIS")
    with server:
        yield server
