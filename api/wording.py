"""Plain words for the engine's codes, for teachers' pages and reports.

The engine records why a test stopped as a short code (``max_items=25``, ``se<=0.3``,
``classified(ci, cut=0.5)``, ``time_limit``...; see :mod:`cat_engine.stopping`). A teacher should
read "reached the maximum of 25 questions", and still be able to see the code (a tooltip, a
report's footnote), so :func:`stop_reason` returns both.

The texts are marked for translation and translated when called: in a request they follow its
language; outside one (command line, tests) they are English.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import has_request_context
from flask_babel import format_decimal, ngettext
from flask_babel import gettext as _

__all__ = ["StopReason", "stop_reason", "stop_reason_text"]

_NUMBER = r"(-?[0-9.]+(?:e-?[0-9]+)?)"
_MAX_ITEMS = re.compile(rf"^max_items={_NUMBER}$")
_SE = re.compile(rf"^se<={_NUMBER}$")
_CLASSIFIED = re.compile(rf"^classified\((ci|sprt), cut={_NUMBER}\)$")
_INFORMATION = re.compile(rf"^information_left<{_NUMBER}$")
_THETA_CHANGE = re.compile(rf"^theta_change<{_NUMBER}$")
_COMBINED = re.compile(r"^(any|all)\((.*)\)$")


@dataclass(frozen=True)
class StopReason:
    """Why a test stopped, in words, with the engine's code kept beside them.

    Attributes
    ----------
    text
        The reason in plain words, in the request's language (e.g. "reached the maximum of 25
        questions"); it starts in lower case so that it reads inside a sentence.
    code
        The code the engine recorded (e.g. ``max_items=25``), for a tooltip; empty when none.
    """

    text: str
    code: str

    def __str__(self) -> str:
        return self.text


def _split(inner: str) -> list[str]:
    """The comma-separated rules of ``any(...)``/``all(...)``, respecting nested brackets."""
    parts, depth, start = [], 0, 0
    for n, char in enumerate(inner):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(inner[start:n].strip())
            start = n + 1
    parts.append(inner[start:].strip())
    return [p for p in parts if p]


def _number(text: str) -> str:
    """A threshold from a code, written as the request's language writes numbers."""
    value = float(text)
    shown = format_decimal(value, "0.####") if has_request_context() else f"{value:g}"
    return shown.replace("-", "\u2212")


def stop_reason_text(code: str | None) -> str:
    """The stop reason ``code`` in plain words (an unknown code is returned as it is).

    Parameters
    ----------
    code
        The engine's stop reason, as stored on an attempt (``attempts.stop_reason``).

    Returns
    -------
    str
        E.g. ``max_items=25`` -> "reached the maximum of 25 questions"; empty for no code.
    """
    code = (code or "").strip()
    if not code:
        return ""
    if code == "time_limit":
        return _("the time ran out")
    if code == "bank_exhausted":
        return _("no more suitable questions were left")
    if found := _MAX_ITEMS.match(code):
        n = int(float(found.group(1)))
        return ngettext("reached the maximum of %(num)d question",
                        "reached the maximum of %(num)d questions", n)
    if found := _SE.match(code):
        return _("the result was precise enough (standard error %(se)s or less)",
                 se=_number(found.group(1)))
    if found := _CLASSIFIED.match(code):
        return _("the result was clearly above or below the cut score %(cut)s",
                 cut=_number(found.group(2)))
    if found := _INFORMATION.match(code):
        return _("no question left would have made the result much more precise")
    if found := _THETA_CHANGE.match(code):
        return _("the estimate had stopped changing (by less than %(change)s)",
                 change=_number(found.group(1)))
    if found := _COMBINED.match(code):
        parts = [stop_reason_text(p) for p in _split(found.group(2))]
        text = parts[0] if parts else code
        for part in parts[1:]:
            text = (_("%(first)s and %(second)s", first=text, second=part)
                    if found.group(1) == "all"
                    else _("%(first)s or %(second)s", first=text, second=part))
        return text
    return code


def stop_reason(code: str | None) -> StopReason:
    """The stop reason ``code`` in plain words, with the code kept (see :class:`StopReason`)."""
    return StopReason(text=stop_reason_text(code), code=(code or "").strip())
