"""``cat-engine roster import PATH [--apply]`` on a folder and a zip, on SQLite and PostgreSQL:
a dry run changes nothing, --apply imports, a second --apply changes nothing, errors exit 1."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import func, select

from api.cli import cli
from storage import make_engine, session_factory, session_scope
from storage.accounts import SchoolClass, User, class_members
from storage.rights import AuditEntry
from tests.evidence.roster_samples import SAMPLE, edit, sample, zipped


def _counts(url: str) -> tuple[int, int, int, int]:
    engine = make_engine(url)
    with session_scope(session_factory(engine)) as session:
        counts = tuple(session.scalar(select(func.count()).select_from(t))
                       for t in (User, SchoolClass, class_members, AuditEntry))
    engine.dispose()
    return counts


def test_roster_import_dry_run_then_apply(any_db_url: str, tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--database-url", any_db_url, "roster", "import", str(SAMPLE)])
    assert result.exit_code == 0, result.output
    assert "users: 10 created" in result.output and "Dry run" in result.output
    assert _counts(any_db_url) == (0, 0, 0, 0)
    archive = tmp_path / "district.zip"
    archive.write_bytes(zipped(sample(), "export/"))
    result = runner.invoke(cli, ["--database-url", any_db_url, "roster", "import",
                                 str(archive), "--apply"])
    assert result.exit_code == 0, result.output
    assert "Imported." in result.output
    assert _counts(any_db_url) == (10, 4, 12, 1)
    result = runner.invoke(cli, ["--database-url", any_db_url, "roster", "import",
                                 str(archive), "--apply"])
    assert result.exit_code == 0 and "users: 0 created, 0 updated, 10 unchanged" in \
        result.output, result.output
    assert _counts(any_db_url) == (10, 4, 12, 2)


def test_roster_import_with_errors_exits_1(any_db_url: str, tmp_path) -> None:
    bad = edit(sample(), "enrollments.csv", lambda rs: [
        r | ({"beginDate": "2026-13-01"} if r["sourcedId"] == "enr-007" else {}) for r in rs])
    archive = tmp_path / "bad.zip"
    archive.write_bytes(zipped(bad))
    result = CliRunner().invoke(cli, ["--database-url", any_db_url, "roster", "import",
                                      str(archive), "--apply"])
    assert result.exit_code == 1
    assert "error: enrollments.csv line 8 beginDate [enr-007]" in result.output
    assert _counts(any_db_url) == (0, 0, 0, 0)
    not_zip = tmp_path / "roster.zip"
    not_zip.write_bytes(b"PK\x03\x04 nonsense")
    result = CliRunner().invoke(cli, ["--database-url", any_db_url, "roster", "import",
                                      str(not_zip)])
    assert result.exit_code == 1 and "not a readable zip" in result.output
