"""Imports point down the list of packages (DESIGN.md, docs/decisions.md): a package never imports
one above it, and the numerical core knows nothing of web frameworks or databases."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ORDER = ["cat_engine", "calibration", "storage", "item_bank", "evidence", "reports", "rights",
         "api"]
#: Third-party packages the numerical core must not import.
WEB_AND_DATABASE = {"flask", "flask_smorest", "flask_babel", "sqlalchemy", "alembic", "werkzeug"}
#: Packages the numerical core has no business importing at all.
CORE_ALLOWED_BELOW = {"cat_engine": set(), "calibration": {"cat_engine"},
                      "storage": set()}


def imported(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports, at any depth of the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", ORDER)
def test_a_package_imports_only_those_below_it(package: str) -> None:
    above = set(ORDER[ORDER.index(package) + 1:])
    if package in CORE_ALLOWED_BELOW:
        above |= set(ORDER) - CORE_ALLOWED_BELOW[package] - {package}
    wrong = {f"{path.relative_to(ROOT)}: {sorted(imported(path) & above)}"
             for path in (ROOT / package).rglob("*.py") if imported(path) & above}
    assert not wrong, sorted(wrong)


@pytest.mark.parametrize("package", ["cat_engine", "calibration"])
def test_the_numerical_core_knows_no_web_framework_or_database(package: str) -> None:
    wrong = {f"{path.relative_to(ROOT)}: {sorted(imported(path) & WEB_AND_DATABASE)}"
             for path in (ROOT / package).rglob("*.py") if imported(path) & WEB_AND_DATABASE}
    assert not wrong, sorted(wrong)
