"""A test's texts in the reader's language: its name, description and skill names.

A test keeps its texts in other languages in ``AdaptiveTest.translations``
(``{language: {"name", "description", "skills": {skill: name}}}``); pages show the reader's
language where it is given and the English fields otherwise. Skills are plain codes on items
(``linear_equations``); without a translation their English name is the code in words.
"""

from __future__ import annotations

from typing import Any

from api.i18n import DEFAULT_LANGUAGE, current_language


def _texts(test: Any, language: str | None) -> dict[str, Any]:
    language = language or current_language()
    return ((getattr(test, "translations", None) or {}).get(language) or {})


def test_text(test: Any, field: str, language: str | None = None) -> str:
    """``test``'s ``name`` or ``description`` in ``language`` (default: the reader's)."""
    return _texts(test, language).get(field) or getattr(test, field) or ""


def skill_text(test: Any, skill: str, language: str | None = None) -> str:
    """What ``skill`` is called in ``language`` (default: the reader's) by ``test``."""
    name = (_texts(test, language).get("skills") or {}).get(skill)
    if name:
        return name
    english = (_texts(test, DEFAULT_LANGUAGE).get("skills") or {}).get(skill)
    return english or skill.replace("_", " ").capitalize()
