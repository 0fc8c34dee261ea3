"""Items in several languages: language tags, an item's versions per language, and picking the
text an attempt in some language shows.

An item's own fields (stem, options, key, rationale) are its source text, in ``item.language``
(``en`` unless said otherwise). A translation (:class:`~item_bank.models.ItemTranslation`) holds
stem, options and rationale in one other language; the key, the media and the parameters stay
the item's, so a translation has exactly as many options as the item, in the same order.

Everything here works on a session the caller commits, and raises
:class:`~item_bank.services.BankError` naming the field that is wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from item_bank.models import Item, ItemTranslation
from item_bank.services import (
    MAX_OPTION_LENGTH,
    MAX_RATIONALE_LENGTH,
    MAX_STEM_LENGTH,
    BankError,
    check_language,
)
from storage import utcnow
from storage.errors import NotFound


def check_translation_text(item: Item, language: str, stem: Any, options: Any,
                           rationale: Any = "", where: str = "") -> tuple[str, list[str], str]:
    """Validate one translation of ``item``; returns ``(stem, options, rationale)``.

    The options must be as many as the item's (the key is the item's and points into them).

    Raises
    ------
    BankError
        Naming the field: the language is the item's own, an empty or overlong stem, a wrong
        number of options, an empty option.
    """
    if language == item.language:
        raise BankError(f"{where}{language!r} is item {item.code}'s source language: edit the "
                        "item itself", "language")
    if not isinstance(stem, str) or not stem.strip():
        raise BankError(f"{where}stem must not be empty", "stem")
    if len(stem) > MAX_STEM_LENGTH:
        raise BankError(f"{where}stem must be at most {MAX_STEM_LENGTH:,} characters", "stem")
    options = list(options or [])
    if not all(isinstance(o, str) for o in options):
        raise BankError(f"{where}options must be a list of texts", "options")
    if len(options) != len(item.options):
        raise BankError(f"{where}item {item.code} has {len(item.options)} options, so its "
                        f"translation needs {len(item.options)}, got {len(options)}", "options")
    empty = next((k for k, o in enumerate(options) if not o.strip()), None)
    if empty is not None:
        raise BankError(f"{where}option {empty + 1} must not be empty", "options")
    long = next((k for k, o in enumerate(options) if len(o) > MAX_OPTION_LENGTH), None)
    if long is not None:
        raise BankError(f"{where}option {long + 1} must be at most {MAX_OPTION_LENGTH:,} "
                        "characters", "options")
    rationale = rationale if isinstance(rationale, str) else ""
    if len(rationale) > MAX_RATIONALE_LENGTH:
        raise BankError(f"{where}rationale must be at most {MAX_RATIONALE_LENGTH:,} characters",
                        "rationale")
    return stem, options, rationale


def set_translation(session: Session, item: Item, language: str, *, stem: str,
                    options: Sequence[str], rationale: str = "", user_id: int | None = None,
                    where: str = "") -> tuple[ItemTranslation, bool]:
    """Create or replace ``item``'s text in ``language``.

    Returns
    -------
    translation, created
        ``created`` is false when a translation in ``language`` was replaced.
    """
    language = check_language(language)
    stem, options, rationale = check_translation_text(item, language, stem, options, rationale,
                                                      where)
    existing = next((t for t in item.translations if t.language == language), None)
    if existing is None:
        existing = ItemTranslation(language=language, stem=stem, options=options,
                                   rationale=rationale, source_version=item.version,
                                   updated_by=user_id, updated_at=utcnow())
        item.translations.append(existing)
        created = True
    else:
        if (existing.stem, list(existing.options), existing.rationale,
                existing.source_version) != (stem, options, rationale, item.version):
            existing.stem, existing.options, existing.rationale = stem, options, rationale
            existing.source_version = item.version
            existing.updated_by, existing.updated_at = user_id, utcnow()
        created = False
    item.updated_at = utcnow()  # the bank's change detector sees the item change
    session.flush()
    return existing, created


def delete_translation(session: Session, item: Item, language: str) -> None:
    """Remove ``item``'s text in ``language``.

    Raises
    ------
    NotFound
        The item has no translation in ``language``.
    """
    language = check_language(language)
    existing = next((t for t in item.translations if t.language == language), None)
    if existing is None:
        raise NotFound(f"item {item.code} has no translation in {language!r}")
    item.translations.remove(existing)
    item.updated_at = utcnow()
    session.flush()


def translations_of(item: Item) -> dict[str, dict[str, Any]]:
    """``{language: {"stem", "options", "rationale"}}`` of an item's translations."""
    return {t.language: t.as_dict() for t in item.translations}


def localized(entry: Mapping[str, Any], language: str | None) -> dict[str, Any]:
    """The text a snapshot entry shows in ``language``: its translation there, else its source.

    ``entry`` is an item of a bank snapshot (:func:`item_bank.services.snapshot_content`), with
    ``language`` (its source language) and ``translations``. Returns ``stem``, ``options``,
    ``rationale`` and ``language`` (the language of the text returned).
    """
    source = entry.get("language") or "en"
    translated = (entry.get("translations") or {}).get(language) if language else None
    if translated is not None and language != source:
        return {"stem": translated["stem"], "options": list(translated["options"]),
                "rationale": translated.get("rationale", ""), "language": language}
    return {"stem": entry["stem"], "options": list(entry["options"]),
            "rationale": entry.get("rationale", ""), "language": source}


def offered_languages(entries: Iterable[Mapping[str, Any]], share: float = 0.5) -> list[str]:
    """Languages a test can be taken in: the items' source languages and every language at
    least ``share`` of the items have a version in, most covered first.

    ``entries`` are a snapshot's items.
    """
    entries = list(entries)
    if not entries:
        return []
    counts: dict[str, int] = {}
    for entry in entries:
        for language in {entry.get("language") or "en", *(entry.get("translations") or {})}:
            counts[language] = counts.get(language, 0) + 1
    need = share * len(entries)
    return sorted((lang for lang, n in counts.items() if n >= need),
                  key=lambda lang: (-counts[lang], lang))
