"""Plain words for the codes the engine and the calibration speak: item-fit and DIF flags, and
why simulated tests stopped. The pages show the words and keep the code in a tooltip.

The codes stay what they are in the data (``misfit``, ``s_x2``, ``dif_C_girls``,
``max_items=25``); only their rendering is translated here.
"""

from __future__ import annotations

import re
from typing import Any

from flask_babel import gettext as _

from api.wording import stop_reason_text

_DIF_FLAG = re.compile(r"^dif_([ABC])_(.+)$")


def flag_words(code: str) -> str:
    """A calibration flag (item fit or DIF) in plain words; an unknown code as it is."""
    fit = {
        "misfit": _("does not fit the model"),
        "s_x2": _("the observed proportions correct depart from the model's curve (S-X² test)"),
        "infit_low": _("answers more predictable than the model expects (infit)"),
        "infit_high": _("answers more erratic than the model expects (infit)"),
        "outfit_low": _("answers more predictable than the model expects (outfit)"),
        "outfit_high": _("unexpected answers far from the item's difficulty (outfit)"),
    }
    if code in fit:
        return fit[code]
    found = _DIF_FLAG.match(code)
    if found:
        return dif_category_words(found.group(1), found.group(2))
    return code


def dif_category_words(category: str, focal: str) -> str:
    """ETS DIF category against a focal group in words (A negligible, B moderate, C large)."""
    if category == "C":
        return _("large DIF for group %(group)s (category C)", group=focal)
    if category == "B":
        return _("moderate DIF for group %(group)s (category B)", group=focal)
    return _("negligible DIF for group %(group)s (category A)", group=focal)


def dif_words(row: dict[str, Any]) -> str:
    """One DIF result of an item, short: how large, for which focal group, whom it favours."""
    size = {"A": _("negligible"), "B": _("moderate"), "C": _("large")}.get(row["category"],
                                                                       row["category"])
    favoured = {"reference": row.get("reference"), "focal": row.get("focal")}.get(
        row.get("favours") or "")
    if favoured:
        return _("%(size)s for group %(group)s (favours %(favoured)s)", size=size,
                 group=row["focal"], favoured=favoured)
    return _("%(size)s for group %(group)s", size=size, group=row["focal"])


def fit_flags(codes: list[str]) -> list[tuple[str, str]]:
    """``(code, words)`` for an item's flags; ``misfit`` is left out when a statistic says why."""
    shown = [c for c in codes if not (c == "misfit" and len([
        x for x in codes if not x.startswith("dif_")]) > 1)]
    return [(code, flag_words(code)) for code in shown]


def stop_reason_words(reason: str) -> str:
    """Why a (simulated) test stopped, in words: the same wording as the teachers' pages
    (:func:`api.wording.stop_reason_text`), with "not stopped" for no reason."""
    reason = (reason or "").strip()
    if reason in ("", "none"):
        return _("not stopped")
    return stop_reason_text(reason)
