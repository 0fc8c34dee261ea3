"""The Spanish catalogue is complete: every string marked in the templates and the views is
translated, with the same placeholders, and the committed ``.mo`` says the same as the ``.po``."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from babel.support import Translations

import delivery_ui

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("es",)


def _marked_strings() -> set[tuple[str | None, str]]:
    """Every (context, msgid) marked for translation where ``babel.cfg`` (the Makefile's
    source) looks, with the Makefile's keywords."""
    with open(ROOT / "babel.cfg") as config:
        method_map, options_map = parse_mapping_cfg(config)
    keywords = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None,
                "lazy_pgettext": ((1, "c"), 2)}
    found = set()
    for _file, _line, message, _comments, context in extract_from_dir(
            ROOT, method_map, options_map, keywords=keywords):
        found.add((context, message[0] if isinstance(message, tuple) else message))
    return found


@pytest.fixture(scope="module")
def marked() -> set[tuple[str | None, str]]:
    strings = _marked_strings()
    assert len(strings) > 100  # templates and views were searched
    assert {(None, "Submit answer"), (None, "Question %(n)d"), (None, "Sign in"),
            ("step log", "answered")} <= strings
    return strings


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_marked_string_is_translated(marked: set[tuple[str | None, str]],
                                          language: str) -> None:
    path = delivery_ui.TRANSLATIONS / language / "LC_MESSAGES" / "messages.po"
    with open(path, "rb") as handle:
        catalog = read_po(handle, locale=language)
    translated = {}
    for message in catalog:
        if not message.id:
            continue
        key = message.id[0] if isinstance(message.id, tuple) else message.id
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if all(strings) and not message.fuzzy:
            translated[(message.context, key)] = message
    missing = sorted(marked - set(translated), key=str)
    assert not missing, f"not translated in {path.name} ({language}); run `make translations` " \
        f"and translate: {missing}"
    problems = [(message.id, [str(e) for e in errors]) for message, errors in catalog.check()]
    assert not problems, problems  # e.g. a placeholder missing from a translation


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_compiled_catalogue_matches_the_po(marked: set[tuple[str | None, str]],
                                               language: str) -> None:
    folder = delivery_ui.TRANSLATIONS / language / "LC_MESSAGES"
    with open(folder / "messages.po", "rb") as handle:
        catalog = read_po(handle, locale=language)
    with open(folder / "messages.mo", "rb") as handle:
        compiled = Translations(fp=handle)
    stale = []
    for message in catalog:
        if not message.id:
            continue
        if isinstance(message.id, tuple):
            got = (compiled.ungettext(message.id[0], message.id[1], 1),
                   compiled.ungettext(message.id[0], message.id[1], 5))
            if got != tuple(message.string):
                stale.append(message.id[0])
        elif message.context:
            if compiled.upgettext(message.context, message.id) != message.string:
                stale.append(f"{message.context}|{message.id}")
        elif compiled.ugettext(message.id) != message.string:
            stale.append(message.id)
    assert not stale, f"messages.mo is older than messages.po; run `make translations`: {stale}"
