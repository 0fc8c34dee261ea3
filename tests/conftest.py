"""Fixtures shared by the whole suite: databases (SQLite and PostgreSQL), apps, Chromium.

PostgreSQL tests use ``TEST_DATABASE_URL`` (a role allowed to create databases); each test gets a
database of its own, created and dropped around it. Browser tests use Debian's Chromium at
``CHROMIUM_PATH``. Without them these tests skip, unless ``REQUIRE_POSTGRES=1`` or
``REQUIRE_BROWSER=1`` says they must run, and then they fail.
"""

from __future__ import annotations

import os
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
def sqlite_url(tmp_path: Path) -> str:
    """URL of a new, empty SQLite file."""
    return f"sqlite:///{tmp_path / 'test.sqlite3'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a new, empty PostgreSQL database, dropped after the test."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        _unavailable("PostgreSQL (TEST_DATABASE_URL)", "REQUIRE_POSTGRES")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    name = f"cat_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        admin.dispose()
        _unavailable(f"PostgreSQL at TEST_DATABASE_URL ({error.__class__.__name__})",
                     "REQUIRE_POSTGRES")
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_db_url(request: pytest.FixtureRequest) -> str:
    """An empty database of each kind the product supports."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
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
