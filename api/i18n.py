"""Languages of the pages: Flask-Babel set up with the catalogues in ``delivery_ui/translations``.

The language is the one chosen with the selector on every page (kept in the ``lang`` cookie, so it
outlives sign-in and sign-out), else the best match of the browser's ``Accept-Language``, else
English. Templates get ``current_language()`` and ``current_direction()`` for ``<html lang dir>``
(``rtl`` for Arabic), ``text_direction(tag)`` for content in another language than the page's,
``language_name(tag)`` and ``LANGUAGES`` for selectors.

Times are shown in the browser's time zone: ``tz.js`` stores it in the ``tz`` cookie, so every
page after the first uses it. Before that, or without JavaScript, the server's zone is used:
``CAT_ENGINE_TIMEZONE`` (an IANA name such as ``Europe/Madrid``), default UTC. Every page says
which zone its times are in.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.support import Translations
from flask import Flask, current_app, request
from flask_babel import Babel, get_locale, get_timezone

import delivery_ui
from api.security import cookie_secure

#: Languages with a complete catalogue, each named in its own language (as the selector shows it).
LANGUAGES: dict[str, str] = {"en": "English", "es": "Español", "ar": "العربية"}
#: Languages written right to left (the primary subtag of a BCP 47 tag).
RIGHT_TO_LEFT = frozenset({"ar", "he", "fa", "ur", "ps", "sd", "ug", "yi", "dv", "ckb"})
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "lang"
LANGUAGE_COOKIE_MAX_AGE = 365 * 24 * 3600
TIMEZONE_COOKIE = "tz"


def valid_timezone(name: str | None) -> str | None:
    """``name`` if it is an IANA time zone this machine knows, else ``None``."""
    if not name or len(name) > 64:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


def select_timezone() -> str:
    """The time zone for this request: the browser's (``tz`` cookie), else the server's."""
    chosen = valid_timezone(unquote(request.cookies.get(TIMEZONE_COOKIE, "")))
    return chosen or current_app.config["BABEL_DEFAULT_TIMEZONE"]


def current_timezone() -> str:
    """The name of the zone the page's times are shown in."""
    return str(get_timezone())


def select_language() -> str:
    """The language of this request: the chosen one, else ``Accept-Language``, else English."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT_LANGUAGE


def current_language() -> str:
    """The request's language code (``en``, ``es``), for ``<html lang>``."""
    locale = get_locale()
    return locale.language if locale is not None else DEFAULT_LANGUAGE


def text_direction(language: str | None) -> str:
    """``rtl`` for a language written right to left (``ar``, ``he``, ``fa``...), else ``ltr``:
    the value of an HTML ``dir`` attribute."""
    primary = (language or "").split("-")[0].lower()
    return "rtl" if primary in RIGHT_TO_LEFT else "ltr"


def current_direction() -> str:
    """The page's writing direction (``rtl`` for Arabic), for ``<html dir>``."""
    return text_direction(current_language())


@lru_cache(maxsize=256)
def language_name(tag: str) -> str:
    """A language tag named in its own language (``ar`` -> ``العربية``, ``pt-BR`` ->
    ``português (Brasil)``), as a language selector shows it; the tag itself when unknown."""
    try:
        locale = Locale.parse(tag.replace("-", "_"))
    except (ValueError, UnknownLocaleError):
        return tag
    name = locale.get_display_name(locale) or tag
    return name[:1].upper() + name[1:]


@lru_cache(maxsize=len(LANGUAGES))
def _catalogue(language: str) -> Translations:
    return Translations.load(str(delivery_ui.TRANSLATIONS), [language])


def translator(language: str) -> Callable[[str], str]:
    """``gettext`` of ``language`` outside a request (PDFs, workers): the pages' catalogue.

    An unknown language gets English (the strings as written).
    """
    return _catalogue(language if language in LANGUAGES else DEFAULT_LANGUAGE).gettext


def request_language(asked: str | None = None) -> str:
    """``asked`` when it is a language we have, else the best of ``Accept-Language``, else
    English (for API responses rendered in a language, such as PDFs)."""
    if asked in LANGUAGES:
        return asked
    return request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT_LANGUAGE


def remember_language(response, language: str):
    """Set the language cookie on ``response`` (a year; same-site; secure when sessions are)."""
    response.set_cookie(
        LANGUAGE_COOKIE, language, max_age=LANGUAGE_COOKIE_MAX_AGE, httponly=True,
        samesite="Lax", secure=cookie_secure(),
    )
    return response


def init_app(app: Flask) -> None:
    """Install Flask-Babel (``_``, ``ngettext`` and the ``{% trans %}`` tag in templates)."""
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(delivery_ui.TRANSLATIONS))
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LANGUAGE)
    zone = app.config.get("BABEL_DEFAULT_TIMEZONE") or os.environ.get("CAT_ENGINE_TIMEZONE") \
        or "UTC"
    if valid_timezone(zone) is None:
        raise ValueError(f"CAT_ENGINE_TIMEZONE {zone!r} is not a time zone this machine knows; "
                         "use an IANA name such as Europe/Madrid or UTC")
    app.config["BABEL_DEFAULT_TIMEZONE"] = zone
    Babel(app, locale_selector=select_language, timezone_selector=select_timezone)
    app.jinja_env.globals.update(current_language=current_language, LANGUAGES=LANGUAGES,
                                 current_timezone=current_timezone,
                                 current_direction=current_direction,
                                 text_direction=text_direction, language_name=language_name)
