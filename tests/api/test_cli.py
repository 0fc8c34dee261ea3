"""The ``cat-engine`` command line: help, migrations, demo, serve, and its errors."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, inspect, select

from api.cli import cli
from api.demo import DEMO_TEST_NAME
from api.models import AdaptiveTest, Item, ItemParameterSet, User
from storage import make_engine, session_factory, session_scope
from storage.accounts import AppMeta
from storage.migrate import head_revision, upgrade

CAT_ENGINE = shutil.which("cat-engine", path=str(Path(sys.executable).parent))


def _all_commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _all_commands(command, (*prefix, name))


@pytest.mark.parametrize("path", [(), *_all_commands(cli)], ids=lambda p: " ".join(p) or "root")
def test_every_command_has_help(path) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    assert "Show this message and exit." in result.output


def test_the_expected_commands_exist() -> None:
    commands = {" ".join(p) for p in _all_commands(cli)}
    assert {"db", "db upgrade", "db downgrade", "db current", "demo", "serve"} <= commands


def test_db_upgrade_current_downgrade(empty_db_url) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--database-url", empty_db_url, "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"is at revision {head_revision()}" in result.output
    result = runner.invoke(cli, ["--database-url", empty_db_url, "db", "current"])
    assert f"current: {head_revision()}  head: {head_revision()}  (up to date)" in result.output
    result = runner.invoke(cli, ["--database-url", empty_db_url, "db", "downgrade", "base"])
    assert result.exit_code == 0, result.output
    assert "base (empty)" in result.output
    engine = make_engine(empty_db_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def test_database_url_comes_from_the_environment(empty_sqlite_url, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_sqlite_url)
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0
    assert empty_sqlite_url in result.output


def test_default_database_is_under_instance(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "instance" / "cat-engine.sqlite3").exists()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://cat:hunter2@127.0.0.1:1/cat",
         "cannot connect to DATABASE_URL postgresql+psycopg://cat:***@127.0.0.1:1/cat"),
        ("this is not a url:hunter2@", "cannot parse DATABASE_URL"),
        ("nosuchdriver://cat:hunter2@host/db", "cannot use DATABASE_URL nosuchdriver://cat:***@"),
        ("sqlite:////nonexistent-dir/x/y.db", "cannot connect to DATABASE_URL sqlite:////nonex"),
    ],
)
def test_bad_database_url_is_one_line_exit_2_no_traceback(url, expected) -> None:
    """Through the installed console script, exactly as a person runs it."""
    assert CAT_ENGINE, "the cat-engine console script is not installed"
    result = subprocess.run(
        [CAT_ENGINE, "db", "upgrade"],
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cat-engine: error: ") and expected in lines[0]
    assert "hunter2" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_demo_builds_a_small_bank(empty_db_url, demo_without_history) -> None:
    result = CliRunner().invoke(
        cli, ["--database-url", empty_db_url, "demo", "--no-serve", "--items", "24"]
    )
    assert result.exit_code == 0, result.output
    assert "Built: 24 items" in result.output
    accounts = ("student1..student30, teacher1, teacher2, teacher3, assessor1, admin1, "
                "schooladmin1; password 'demo-password'")
    assert accounts in result.output
    assert "except admin1 (the district's administrator)" in result.output
    assert "exist only in this demo database" in result.output
    engine = make_engine(empty_db_url)
    with session_scope(session_factory(engine)) as session:
        assert session.scalar(select(func.count()).select_from(Item)) == 24
        assert session.scalar(select(func.count()).select_from(User)) == 36
        schools = {u.username: u.school_id for u in session.scalars(select(User))}
        assert schools["admin1"] is None  # the district's administrator
        in_school = {school for name, school in schools.items() if name != "admin1"}
        assert len(in_school) == 1 and None not in in_school  # the rest: Demo School
        test = session.scalars(select(AdaptiveTest)).one()
        assert test.name == DEMO_TEST_NAME and len(test.items) == 24
        sets = session.scalars(select(ItemParameterSet)).all()
        assert len(sets) == 24 and all(s.is_active and s.source == "calibration" for s in sets)
        # estimated from simulated responses, not copied from the generating model
        generating = np.array([s.provenance["generating_parameters"]["b"] for s in sets])
        estimated = np.array([s.b for s in sets])
        assert not np.allclose(estimated, generating)
        assert np.corrcoef(estimated, generating)[0, 1] > 0.9
        assert all(s.sample_size > 1000 for s in sets)
    engine.dispose()


def test_demo_rebuilds_its_own_database(empty_sqlite_url) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["--database-url", empty_sqlite_url, "demo", "--no-serve", "--items", "10"])
    result = runner.invoke(
        cli, ["--database-url", empty_sqlite_url, "demo", "--no-serve", "--items", "12"]
    )
    assert result.exit_code == 0, result.output
    assert "Rebuilt: 12 items" in result.output


def test_demo_refuses_a_database_that_is_not_a_demo(empty_db_url) -> None:
    engine = make_engine(empty_db_url)
    upgrade(engine)
    with session_scope(session_factory(engine)) as session:
        session.add(AppMeta(key="school", value="Escola Real"))
    result = CliRunner().invoke(cli, ["--database-url", empty_db_url, "demo", "--no-serve"])
    assert result.exit_code == 2
    assert "refusing to build the demo" in result.output
    assert "not made by 'cat-engine demo'" in result.output
    with session_scope(session_factory(engine)) as session:  # nothing was touched
        assert session.get(AppMeta, "school").value == "Escola Real"
        assert session.scalar(select(func.count()).select_from(Item)) == 0
    engine.dispose()


def test_demo_rejects_zero_items(empty_sqlite_url) -> None:
    result = CliRunner().invoke(cli, ["--database-url", empty_sqlite_url, "demo", "--items", "0"])
    assert result.exit_code == 2
    assert "--items" in result.output


def test_serve_refuses_an_unmigrated_database(empty_sqlite_url) -> None:
    result = CliRunner().invoke(cli, ["--database-url", empty_sqlite_url, "serve"])
    assert result.exit_code == 2
    assert "run 'cat-engine db upgrade' first" in result.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_gunicorn_and_answers(empty_sqlite_url, tmp_path) -> None:
    assert CAT_ENGINE
    CliRunner().invoke(cli, ["--database-url", empty_sqlite_url, "demo", "--no-serve",
                             "--items", "8"])
    port = _free_port()
    server = subprocess.Popen(
        [CAT_ENGINE, "--database-url", empty_sqlite_url, "serve", "--port", str(port),
         "--workers", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    body = response.read().decode()
                break
            except OSError:
                time.sleep(0.2)
        assert body is not None, "the server did not answer within 20 seconds"
        assert '<label for="username">Username</label>' in body
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert "gunicorn" in output.lower() or "Booting worker" in output, output
