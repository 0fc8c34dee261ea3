"""cat-engine's own licence files, and every runtime dependency's licence against the allow-list."""

from __future__ import annotations

import configparser
import hashlib
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

from api.cli import cli
from api.licences import (
    RUNTIME_ALLOWED,
    TEST_ALLOWED,
    Dependency,
    allowed,
    licence_of,
    problems,
    runtime_dependencies,
)

ROOT = Path(__file__).resolve().parents[2]
#: MD5 of the Apache License 2.0 text as published at https://www.apache.org/licenses/LICENSE-2.0.txt
APACHE_2_MD5 = "3b83ef96387f14655fc854ddc3c6bd57"


def test_the_repository_carries_the_licence_it_declares() -> None:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert setup["metadata"]["license"] == "Apache-2.0"
    assert setup["metadata"]["license_files"].split() == ["LICENSE", "NOTICE"]
    assert hashlib.md5((ROOT / "LICENSE").read_bytes()).hexdigest() == APACHE_2_MD5
    notice = (ROOT / "NOTICE").read_text()
    assert notice.startswith("CAT Engine\nCopyright ") and "Apache License, Version 2.0" in notice
    installed = {Path(str(f)).name for f in metadata.distribution("cat-engine").files or ()}
    assert {"LICENSE", "NOTICE"} <= installed  # shipped in the package's metadata


def test_every_runtime_dependency_has_an_allowed_licence() -> None:
    dependencies = runtime_dependencies()
    names = {d.name.lower() for d in dependencies}
    # direct ones, transitive ones, and those an extra pulls in (psycopg[binary])
    assert {"numpy", "flask", "werkzeug", "markdown-it-py", "mdurl", "psycopg-binary"} <= names
    assert "pytest" not in names and "cat-engine" not in names
    assert problems(dependencies) == []
    assert all(d.licence and d.source for d in dependencies)


def test_the_test_extra_may_use_gpl_but_nothing_unknown() -> None:
    dependencies = runtime_dependencies(extra="test")
    assert {"pytest", "hypothesis", "playwright"} <= {d.name.lower() for d in dependencies}
    assert problems(dependencies, TEST_ALLOWED) == []


@pytest.mark.parametrize(("expression", "runtime", "test"), [
    ("MIT", True, True),
    ("GPL-3.0-only", False, True),
    ("GPL-2.0-or-later", False, True),
    ("AGPL-3.0-only", False, False),
    ("MIT OR GPL-3.0-only", True, True),
    ("MIT AND GPL-3.0-only", False, True),
    ("(MIT OR GPL-3.0-only) AND BSD-3-Clause", True, True),
    ("BSD-3-Clause AND 0BSD AND MIT AND Zlib AND CC0-1.0", True, True),
    ("GPL-3.0-or-later WITH GCC-exception-3.1", True, True),
    ("LGPL-3.0-only", True, True),
    ("SSPL-1.0", False, False),
    ("", False, False),
])
def test_the_allow_list(expression: str, runtime: bool, test: bool) -> None:
    assert allowed(expression, RUNTIME_ALLOWED) is runtime
    assert allowed(expression, TEST_ALLOWED) is test


def test_a_gpl_or_unknown_runtime_dependency_is_reported() -> None:
    deps = [Dependency("fine", "1", "MIT", "expression", "cat-engine"),
            Dependency("viral", "2.0", "GPL-3.0-only", "classifier", "fine"),
            Dependency("mystery", "0.1", "", "", "cat-engine")]
    assert problems(deps) == [
        "viral 2.0: GPL-3.0-only is not allowed (required by fine)",
        "mystery 0.1: no licence found in its metadata (required by cat-engine)"]


def test_each_metadata_source_is_read() -> None:
    assert licence_of(metadata.distribution("numpy"))[1] == "expression"
    assert licence_of(metadata.distribution("blinker")) == ("MIT", "classifier")
    assert licence_of(metadata.distribution("huey")) == ("MIT", "file")  # no licence metadata


def test_the_licences_command() -> None:
    result = CliRunner().invoke(cli, ["licences"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.split()[:3] == ["psycopg", metadata.version("psycopg"), "LGPL-3.0-only"]
               for line in lines)
    assert lines[-1].endswith("runtime dependencies; every licence is allowed")
    result = CliRunner().invoke(cli, ["licences", "--extra", "test"])
    assert result.exit_code == 0 and "dependencies of the test extra" in result.output
