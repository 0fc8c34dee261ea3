"""Every language's catalogue is complete and up to date: the committed ``.pot`` is what the code
marks now (no drift), every language has every msgid with a msgstr (all plural forms), the same
``%(name)s`` placeholders, and a committed ``.mo`` that says the same as its ``.po``.

The languages are those the selector offers (:data:`api.i18n.LANGUAGES`, English being the
source), so a language added there without a complete catalogue fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from babel.support import Translations

import delivery_ui
from api.i18n import DEFAULT_LANGUAGE
from api.i18n import LANGUAGES as OFFERED

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = tuple(sorted(set(OFFERED) - {DEFAULT_LANGUAGE}))
PLACEHOLDER = re.compile(r"%\([A-Za-z_][A-Za-z0-9_]*\)[sdifr]")
#: Plural forms each language's header must declare.
NPLURALS = {"es": 2, "ar": 6}


def _read(path: Path, language: str | None = None):
    with open(path, "rb") as handle:
        return read_po(handle, locale=language)


def _count_per_form(compiled: Translations, forms: int) -> list[int]:
    """The smallest count that selects each plural form, in form order."""
    first: dict[int, int] = {}
    for n in range(1000):
        first.setdefault(compiled.plural(n), n)
    return [first[form] for form in range(forms)]


def _ids(catalog) -> set[tuple[str | None, str]]:
    return {(m.context, m.id[0] if isinstance(m.id, tuple) else m.id) for m in catalog if m.id}


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
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not message.id or not all(strings):  # untranslated: the test above names it
            continue
        if isinstance(message.id, tuple):
            # One count per plural form (Spanish: 1, 0; Arabic: 0, 1, 2, 3, 11, 100).
            got = tuple(compiled.ungettext(message.id[0], message.id[1], n)
                        for n in _count_per_form(compiled, len(message.string)))
            if got != tuple(message.string):
                stale.append(message.id[0])
        elif message.context:
            if compiled.upgettext(message.context, message.id) != message.string:
                stale.append(f"{message.context}|{message.id}")
        elif compiled.ugettext(message.id) != message.string:
            stale.append(message.id)
    assert not stale, f"messages.mo is older than messages.po; run `make translations`: {stale}"


def test_the_committed_template_is_what_the_code_marks(marked) -> None:
    """Drift: a string added, changed or removed in the code without `make translations`."""
    committed = _ids(_read(delivery_ui.TRANSLATIONS / "messages.pot"))
    assert committed == marked, (
        "messages.pot is out of date; run `make translations` and translate. "
        f"In the code, not the .pot: {sorted(marked - committed, key=str)[:20]}; "
        f"in the .pot, not the code: {sorted(committed - marked, key=str)[:20]}")


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_catalogue_holds_the_template(language: str) -> None:
    template = _ids(_read(delivery_ui.TRANSLATIONS / "messages.pot"))
    catalog = _read(delivery_ui.TRANSLATIONS / language / "LC_MESSAGES" / "messages.po",
                    language)
    held = _ids(catalog)
    assert held == template, (
        f"{language}/messages.po is out of step with messages.pot; run `make translations`: "
        f"missing {sorted(template - held, key=str)[:20]}, "
        f"obsolete {sorted(held - template, key=str)[:20]}")
    assert catalog.num_plurals == NPLURALS.get(language, catalog.num_plurals), \
        f"{language}: the header's Plural-Forms must give nplurals={NPLURALS[language]}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_the_placeholders(language: str) -> None:
    catalog = _read(delivery_ui.TRANSLATIONS / language / "LC_MESSAGES" / "messages.po",
                    language)
    wrong = []
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        wanted = set().union(*(PLACEHOLDER.findall(i) for i in ids))
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        # A plural form may leave out the count (English "once", Arabic "one", "two"); every
        # other placeholder it must keep, and none may be new (formatting would fail).
        counts = set(PLACEHOLDER.findall(ids[0])) ^ wanted if len(ids) > 1 else set()
        counts |= {p for p in wanted if p.startswith("%(num)")} if len(ids) > 1 else set()
        for form, text in enumerate(strings):
            found = set(PLACEHOLDER.findall(text))
            if text and not (wanted - counts <= found <= wanted):
                wrong.append((ids[0][:60], form, sorted(wanted), sorted(found)))
    assert not wrong, f"{language}: placeholders differ from the msgid's: {wrong[:20]}"
