"""What the item bank does, as functions on a SQLAlchemy session (no HTTP, no commits).

The API, the pages and the command line call these and commit once per request, so a request
either does all of its work or none of it. Each function raises :class:`BankError` (a
``ValueError``) naming the field or item that is wrong.

- Items: :func:`create_item` (version 1), :func:`update_item` (a content change adds a version),
  :func:`change_status` (recorded with who, when and why).
- Parameters: :func:`add_parameter_set` makes a new active set and keeps the old ones.
- Tests: :func:`save_test` validates the configuration against the bank it would deliver.
- Delivery: :func:`current_snapshot` freezes what a test delivers now (content, keys and
  parameters) as a :class:`~item_bank.models.BankSnapshot`; :func:`delivery_bank` turns a snapshot
  into numpy arrays once per process and caches them.
- Exposure: :func:`record_exposure` counts presentations; :func:`exposure_counts` reads them.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from sqlalchemy import and_, bindparam, case, event, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from cat_engine import CATConfig, CATError, ItemBank
from cat_engine.limits import MAX_PRETEST_ITEMS
from item_bank.models import (
    IRT_MODELS,
    LANGUAGE_LENGTH,
    SOURCE_LANGUAGE,
    AdaptiveTest,
    BankSnapshot,
    Item,
    ItemExposure,
    ItemParameterSet,
    ItemStatus,
    ItemStatusEvent,
    ItemTag,
    ItemTranslation,
    ItemVersion,
    test_items,
)
from storage import bind_key, utcnow

CONTENT_FIELDS = ("stem", "options", "key", "rationale", "media")
SNAPSHOT_FORMAT = 1


class BankError(ValueError):
    """A request the bank cannot carry out; ``field`` names what is wrong, when one thing is."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Conflict(BankError):
    """The request clashes with the bank's current state (a duplicate code, a stale version)."""


# -- items ---------------------------------------------------------------------------------------


#: A BCP 47 tag as schools use them: a 2-3 letter language, then optionally a 4-letter script
#: and a 2-letter or 3-digit region (``ar``, ``es``, ``pt-BR``, ``zh-Hant``, ``es-419``).
_TAG = re.compile(r"([A-Za-z]{2,3})(?:-([A-Za-z]{4}))?(?:-([A-Za-z]{2}|[0-9]{3}))?")


def check_language(tag: Any, field: str = "language") -> str:
    """A language tag in its canonical case (``pt-br`` -> ``pt-BR``, ``ZH-hant`` -> ``zh-Hant``).

    Raises
    ------
    BankError
        ``tag`` is not a language tag of the form ``xx``, ``xx-YY`` or ``xx-Script-YY``;
        ``field`` names it.
    """
    text = tag.strip() if isinstance(tag, str) else ""
    match = _TAG.fullmatch(text) if len(text) <= LANGUAGE_LENGTH else None
    if match is None:
        raise BankError(f"{field} {tag!r} is not a language tag such as 'en', 'ar' or 'pt-BR'",
                        field)
    language, script, region = match.groups()
    parts = [language.lower()]
    if script:
        parts.append(script.title())
    if region:
        parts.append(region.upper())
    return "-".join(parts)



#: Sizes of an item's content, the same for every way in (API, CSV, QTI, pages): a long reading
#: passage fits; a 10 MB stem or 100,000 options does not.
MAX_STEM_LENGTH = 65_536
MAX_OPTIONS = 50
MAX_OPTION_LENGTH = 10_000
MAX_RATIONALE_LENGTH = 65_536
MAX_MEDIA = 50


def _check_content(stem: str, options: Sequence[str], key: int | None, where: str = "",
                   rationale: str | None = None) -> None:
    if not isinstance(stem, str) or not stem.strip():
        raise BankError(f"{where}stem must not be empty", "stem")
    if len(stem) > MAX_STEM_LENGTH:
        raise BankError(f"{where}stem must be at most {MAX_STEM_LENGTH:,} characters, got "
                        f"{len(stem):,}", "stem")
    if not isinstance(options, list | tuple) or not all(isinstance(o, str) for o in options):
        raise BankError(f"{where}options must be a list of texts", "options")
    if len(options) > MAX_OPTIONS:
        raise BankError(f"{where}an item may have at most {MAX_OPTIONS} options, got "
                        f"{len(options):,}", "options")
    long = next((k for k, o in enumerate(options) if len(o) > MAX_OPTION_LENGTH), None)
    if long is not None:
        raise BankError(f"{where}option {long + 1} must be at most {MAX_OPTION_LENGTH:,} "
                        f"characters, got {len(options[long]):,}", "options")
    if rationale is not None and len(rationale) > MAX_RATIONALE_LENGTH:
        raise BankError(f"{where}rationale must be at most {MAX_RATIONALE_LENGTH:,} characters, "
                        f"got {len(rationale):,}", "rationale")
    if options and len(options) < 2:
        raise BankError(f"{where}a choice item needs at least 2 options", "options")
    if any(not o.strip() for o in options):
        raise BankError(f"{where}options must not be empty texts", "options")
    if key is not None and not (options and 0 <= key < len(options)):
        raise BankError(
            f"{where}key {key} is not an option index (0..{max(len(options) - 1, 0)})", "key"
        )


def _check_media(media: Sequence[str], where: str = "") -> None:
    """Media are links students follow: a path on this site or an http(s) address, no script."""
    if not isinstance(media, list | tuple) or not all(isinstance(m, str) for m in media):
        raise BankError(f"{where}media must be a list of addresses", "media")
    if len(media) > MAX_MEDIA or any(len(m) > 2000 for m in media):
        raise BankError(f"{where}media must be at most {MAX_MEDIA} addresses of at most 2,000 "
                        "characters each", "media")
    for ref in media:
        scheme = urlsplit(ref.strip()).scheme.lower()
        if not ref.strip() or scheme not in ("", "http", "https") or ref.strip().startswith("//"):
            raise BankError(f"{where}media {ref!r} is not a path on this site or an http(s) "
                            "address", "media")


def _tags(values: Iterable[str]) -> list[ItemTag]:
    tags = sorted({str(t).strip() for t in values if str(t).strip()})
    too_long = [t for t in tags if len(t) > 80]
    if too_long:
        raise BankError(f"content tag {too_long[0][:20]!r}... is longer than 80 characters",
                        "content_tags")
    return [ItemTag(tag=t) for t in tags]


def check_new_item(code: str, stem: str, options: Sequence[str], key: int | None, skill: str,
                   media: Sequence[str] = (), rationale: str | None = None) -> str:
    """The checks a new item's content passes (not its code's uniqueness); returns the code,
    stripped.

    Raises
    ------
    BankError
        An empty code or skill, invalid content (empty stem, a key that is no option...) or
        media.
    """
    code = (code or "").strip()
    if not code:
        raise BankError("code must not be empty", "code")
    if not (skill or "").strip():
        raise BankError("skill must not be empty", "skill")
    _check_content(stem, options, key, rationale=rationale)
    _check_media(media)
    return code


def content_tags(values: Iterable[str]) -> list[str]:
    """Content tags as stored: stripped, distinct, sorted; each at most 80 characters."""
    return [t.tag for t in _tags(values)]


def create_item(
    session: Session,
    *,
    code: str,
    stem: str,
    options: Sequence[str] = (),
    key: int | None = None,
    rationale: str = "",
    skill: str,
    content_tags: Iterable[str] = (),
    media: Sequence[str] = (),
    status: ItemStatus | str = ItemStatus.DRAFT,
    user_id: int | None = None,
    note: str = "created",
    code_checked: bool = False,
    language: str = SOURCE_LANGUAGE,
) -> Item:
    """Add an item with its content as version 1 and its first status event.

    ``code_checked=True`` skips the query for an item with the same code, for callers that
    checked a whole batch of codes at once (the unique index still guards the write).

    Raises
    ------
    Conflict
        An item with ``code`` exists.
    BankError
        The content is invalid (empty stem, a key that is no option...).
    """
    code = check_new_item(code, stem, options, key, skill, media, rationale)
    language = check_language(language)
    if not code_checked and session.scalar(select(Item.id).where(Item.code == code)) is not None:
        raise Conflict(f"an item with code {code!r} exists already", "code")
    status = ItemStatus(status)
    item = Item(code=code, stem=stem, options=list(options), key=key, rationale=rationale,
                skill=skill.strip(), status=status, media=list(media), version=1,
                language=language)
    item.tags = _tags(content_tags)
    item.versions = [ItemVersion(version=1, stem=stem, options=list(options), key=key,
                                 rationale=rationale, media=list(media), created_by=user_id,
                                 note=note)]
    item.status_events = [ItemStatusEvent(from_status=None, to_status=status, changed_by=user_id,
                                          reason=note)]
    session.add(item)
    return item


def update_item(
    session: Session,
    item: Item,
    changes: Mapping[str, Any],
    *,
    user_id: int | None = None,
    note: str = "",
    expected_version: int | None = None,
) -> Item:
    """Change an item's content, skill or tags; a content change adds a new version.

    ``changes`` may hold ``stem``, ``options``, ``key``, ``rationale``, ``media`` (content),
    ``skill`` and ``content_tags``. ``expected_version`` guards against overwriting someone else's
    edit (:class:`Conflict` when the item moved on).
    """
    if expected_version is not None and expected_version != item.version:
        raise Conflict(
            f"item {item.code} is at version {item.version}, not {expected_version}; reload it",
            "version",
        )
    unknown = set(changes) - {*CONTENT_FIELDS, "skill", "content_tags"}
    if unknown:
        raise BankError(f"unknown field(s): {', '.join(sorted(unknown))}", sorted(unknown)[0])
    content = {f: changes.get(f, getattr(item, f)) for f in CONTENT_FIELDS}
    _check_content(content["stem"], content["options"], content["key"],
                   rationale=content["rationale"])
    _check_media(content["media"] or ())
    if item.translations and len(content["options"]) != len(item.options):
        languages = ", ".join(t.language for t in item.translations)
        raise BankError(f"item {item.code} has translations ({languages}) with "
                        f"{len(item.options)} options each; change their options with the "
                        "item's, or delete them first", "options")
    if "skill" in changes:
        if not (changes["skill"] or "").strip():
            raise BankError("skill must not be empty", "skill")
        item.skill = changes["skill"].strip()
    if "content_tags" in changes:
        if sorted(set(changes["content_tags"])) != sorted(t.tag for t in item.tags):
            item.updated_at = utcnow()  # the tags are rows of their own: mark the item changed
        item.tags = _tags(changes["content_tags"])
    if any(content[f] != getattr(item, f) for f in CONTENT_FIELDS):
        item.version += 1
        for f in CONTENT_FIELDS:
            setattr(item, f, list(content[f]) if f in ("options", "media") else content[f])
        item.versions.append(ItemVersion(
            version=item.version, created_by=user_id, note=note,
            **{f: getattr(item, f) for f in CONTENT_FIELDS},
        ))
    session.flush()
    return item


def change_status(
    session: Session,
    item: Item,
    to_status: ItemStatus | str,
    *,
    user_id: int | None = None,
    reason: str = "",
) -> ItemStatusEvent:
    """Move an item to ``to_status`` and record the change.

    Any move between the four statuses is allowed except to ``operational`` without an active
    parameter set, which the engine could not use.
    """
    try:
        to_status = ItemStatus(to_status)
    except ValueError:
        raise BankError(
            f"unknown status {to_status!r}; use one of {', '.join(s.value for s in ItemStatus)}",
            "status",
        ) from None
    if to_status == item.status:
        raise Conflict(f"item {item.code} is {item.status.value} already", "status")
    if to_status == ItemStatus.OPERATIONAL and item.active_parameters is None:
        raise Conflict(
            f"item {item.code} has no active parameter set; calibrate or import parameters "
            "before making it operational", "status",
        )
    event = ItemStatusEvent(from_status=item.status, to_status=to_status, changed_by=user_id,
                            reason=reason)
    item.status = to_status
    item.status_events.append(event)
    session.flush()
    return event


# -- parameters ----------------------------------------------------------------------------------


def check_parameters(code: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one item's parameters with the engine's own checks; return them normalised."""
    model = str(parameters.get("model", "")).lower()
    if model not in IRT_MODELS:
        raise BankError(f"item {code}: unknown model {parameters.get('model')!r}; use one of "
                        f"{', '.join(IRT_MODELS)}", "model")
    record = {"item_id": code, "model": model}
    for name in ("a", "b", "c", "d", "thresholds"):
        if parameters.get(name) is not None:
            record[name] = parameters[name]
    try:
        bank = ItemBank.from_records([record])
    except (CATError, TypeError, ValueError) as error:
        raise BankError(str(error), getattr(error, "field", None)) from None
    normal = bank.to_records()[0]
    out = {"model": model, "a": None, "b": None, "c": None, "d": None, "thresholds": None}
    for name in ("a", "b", "c", "d", "thresholds"):
        if name in record:
            out[name] = normal.get(name, record[name])
    if model in ("grm", "gpcm", "pcm"):
        out["thresholds"] = normal["thresholds"]
        out["a"] = normal["a"] if model != "pcm" else None
    return out


def check_scoring_fit(code: str, key: int | None, options: Sequence[str],
                      values: Mapping[str, Any]) -> None:
    """Refuse parameters whose model does not fit how the item is scored.

    An item with a key is right or wrong (a dichotomous model); a rating item's categories are
    its options (one threshold fewer than options).

    Raises
    ------
    BankError
        Naming the item and the field (``model`` or ``thresholds``).
    """
    polytomous = values["model"] in ("grm", "gpcm", "pcm")
    if key is not None and polytomous:
        raise BankError(f"item {code} has a key, so it is scored right or wrong: the "
                        f"{values['model']} model does not fit it; use a dichotomous model",
                        "model")
    if key is None and options:
        categories = len(values["thresholds"]) + 1 if polytomous else 2
        if categories != len(options):
            raise BankError(f"item {code} is rated in {len(options)} categories (its "
                            f"options) but the {values['model']} parameters have "
                            f"{categories}", "thresholds" if polytomous else "model")


def add_parameter_set(
    session: Session,
    item: Item,
    parameters: Mapping[str, Any],
    *,
    source: str,
    provenance: Mapping[str, Any] | None = None,
    sample_size: int | None = None,
    calibration_run_id: int | None = None,
    user_id: int | None = None,
    flush: bool = True,
    language: str | None = None,
) -> ItemParameterSet:
    """Make ``parameters`` the item's active set; earlier sets stay, inactive, for provenance.

    ``language`` makes it the active set for attempts in that language only (from a calibration
    of languages separately), beside the item's general set, which stays.

    The model must fit how the item is scored: an item with a key is right or wrong (a
    dichotomous model); a rating item's categories are its options. ``flush=False`` leaves the
    new set unflushed (no id yet) when the item had no active set, so that an import of many new
    items writes them together.
    """
    values = check_parameters(item.code, parameters)
    check_scoring_fit(item.code, item.key, item.options, values)
    language = check_language(language) if language is not None else None
    replaced = False
    for old in item.parameter_sets:
        if old.is_active and old.language == language:
            old.is_active = False
            replaced = True
    if replaced or flush:
        session.flush()  # the partial unique index allows one active set per item
    new = ItemParameterSet(is_active=True, source=source, provenance=dict(provenance or {}),
                           language=language, sample_size=sample_size,
                           calibration_run_id=calibration_run_id, created_by=user_id, **values)
    item.parameter_sets.append(new)
    if flush:
        session.flush()
    return new


# -- tests ---------------------------------------------------------------------------------------


FILTER_KEYS = ("skills", "tags", "items")


def _check_filter(bank_filter: Mapping[str, Any]) -> dict[str, list[str]]:
    if not isinstance(bank_filter, Mapping):
        raise BankError("bank_filter must be an object", "bank_filter")
    unknown = set(bank_filter) - set(FILTER_KEYS)
    if unknown:
        raise BankError(f"bank_filter: unknown key(s) {', '.join(sorted(unknown))}; use "
                        f"{', '.join(FILTER_KEYS)}", "bank_filter")
    out = {}
    for key in FILTER_KEYS:
        values = bank_filter.get(key)
        if values is None:
            continue
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise BankError(f"bank_filter.{key} must be a list of texts", "bank_filter")
        out[key] = sorted(set(values))
    return out


def _check_cut_scores(cut_scores: Mapping[str, Any]) -> dict[str, float]:
    if not isinstance(cut_scores, Mapping):
        raise BankError("cut_scores must be an object of skill -> theta", "cut_scores")
    out = {}
    for skill, value in cut_scores.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not -6 <= value <= 6:
            raise BankError(f"cut_scores.{skill} must be a theta between -6 and 6, got {value!r}",
                            "cut_scores")
        out[str(skill)] = float(value)
    return out


_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})?")
_TRANSLATED = {"name": 200, "description": 5000}


def check_translations(translations: Any) -> dict[str, dict[str, Any]]:
    """Validate a test's texts in other languages; returns them cleaned (text stripped).

    The shape is ``{language: {"name": str, "description": str, "skills": {skill: str}}}``,
    every part optional; a language is a code such as ``es`` or ``pt-BR``.

    Raises
    ------
    BankError
        Naming the first part at fault (``translations.es.name`` ...).
    """
    if not isinstance(translations, Mapping):
        raise BankError("translations must be an object of language -> texts", "translations")
    out: dict[str, dict[str, Any]] = {}
    for language, texts in translations.items():
        where = f"translations.{language}"
        if not isinstance(language, str) or not _LANGUAGE.fullmatch(language):
            raise BankError(f"{where}: {language!r} is not a language code such as 'es' or "
                            "'pt-BR'", "translations")
        if not isinstance(texts, Mapping):
            raise BankError(f"{where} must be an object with name, description, skills",
                            "translations")
        unknown = sorted(set(texts) - {*_TRANSLATED, "skills"})
        if unknown:
            raise BankError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}; "
                            "expected name, description, skills", "translations")
        clean: dict[str, Any] = {}
        for field_name, longest in _TRANSLATED.items():
            if field_name in texts:
                value = texts[field_name]
                if not isinstance(value, str) or not value.strip() or len(value) > longest:
                    raise BankError(f"{where}.{field_name} must be text of 1 to {longest} "
                                    "characters", "translations")
                clean[field_name] = value.strip()
        if "skills" in texts:
            skills = texts["skills"]
            if not isinstance(skills, Mapping):
                raise BankError(f"{where}.skills must be an object of skill -> name",
                                "translations")
            for skill, value in skills.items():
                if not isinstance(value, str) or not value.strip() or len(value) > 120:
                    raise BankError(f"{where}.skills.{skill} must be text of 1 to 120 "
                                    "characters", "translations")
            clean["skills"] = {str(k): v.strip() for k, v in skills.items()}
        out[language] = clean
    return out


def save_test(
    session: Session,
    test: AdaptiveTest | None,
    *,
    name: str | None = None,
    description: str | None = None,
    config: Mapping[str, Any] | None = None,
    bank_filter: Mapping[str, Any] | None = None,
    cut_scores: Mapping[str, Any] | None = None,
    is_active: bool | None = None,
    translations: Mapping[str, Any] | None = None,
) -> AdaptiveTest:
    """Create a test (``test=None``) or change one; a change to what it delivers bumps ``version``.

    The configuration is checked against the bank the test would deliver now, so a test that
    would fail at its first student fails here instead, naming the setting. ``translations``
    (see :func:`check_translations`) replaces the test's texts in other languages; they are
    not part of what it delivers.
    """
    creating = test is None
    if creating:
        if not (name or "").strip():
            raise BankError("name must not be empty", "name")
        test = AdaptiveTest(name=name.strip(), description=description or "", config={},
                            bank_filter={}, cut_scores={}, version=1, is_active=True)
    elif name is not None:
        if not name.strip():
            raise BankError("name must not be empty", "name")
        test.name = name.strip()
    if name is not None:
        clash = session.scalar(select(AdaptiveTest.id).where(
            AdaptiveTest.name == name.strip(), AdaptiveTest.id != (test.id or -1)))
        if clash is not None:
            raise Conflict(f"a test named {name.strip()!r} exists already", "name")
    if description is not None:
        test.description = description
    if is_active is not None:
        test.is_active = bool(is_active)
    if translations is not None:
        test.translations = check_translations(translations)
    elif creating:
        test.translations = {}
    delivered_before = (test.config, test.bank_filter, test.cut_scores)
    if config is not None:
        if not isinstance(config, Mapping):
            raise BankError("config must be an object", "config")
        test.config = dict(config)
    if bank_filter is not None:
        test.bank_filter = _check_filter(bank_filter)
    if cut_scores is not None:
        test.cut_scores = _check_cut_scores(cut_scores)
    if creating:
        session.add(test)
    session.flush()
    content = snapshot_content(session, test)  # validates the configuration against the bank
    build_delivery(content)
    if not creating and (test.config, test.bank_filter, test.cut_scores) != delivered_before:
        test.version += 1
    session.flush()
    return test


#: Items whose active parameters anchor a calibration on the bank's scale: those in use and
#: those retired from use (their parameters are still on the scale).
ANCHOR_STATUSES = (ItemStatus.OPERATIONAL, ItemStatus.RETIRED)


def anchor_bank(items: Iterable[Item]) -> ItemBank:
    """The items' active parameters as an engine bank, each item under its code: the fixed part
    of a fixed-parameter calibration (pretest items, rubric criteria).

    Every item must have active parameters.
    """
    records = []
    for item in items:
        values = item.active_parameters.as_dict()
        records.append({"item_id": item.code,
                        **{k: v for k, v in values.items() if v is not None}})
    return ItemBank.from_records(records)


def _bank_conditions(test: AdaptiveTest) -> list:
    """Where-clauses selecting the operational items a test draws from."""
    conditions = [Item.status == ItemStatus.OPERATIONAL]
    spec = test.bank_filter or {}
    if spec.get("skills"):
        conditions.append(Item.skill.in_(spec["skills"]))
    if spec.get("tags"):
        tagged = select(ItemTag.item_id).where(ItemTag.tag.in_(spec["tags"]))
        conditions.append(Item.id.in_(tagged))
    if spec.get("items"):
        conditions.append(Item.code.in_(spec["items"]))
    elif test.items:
        conditions.append(Item.id.in_([i.id for i in test.items]))
    return conditions


def tests_bank_query(test: AdaptiveTest):
    """The operational, calibrated items a test draws from: its bank filter, or its listed items."""
    return (
        select(Item)
        .join(ItemParameterSet, (ItemParameterSet.item_id == Item.id) & ItemParameterSet.is_active
              & ItemParameterSet.language.is_(None))
        .where(*_bank_conditions(test))
        .options(selectinload(Item.tags), selectinload(Item.parameter_sets),
                 selectinload(Item.translations))
        .order_by(Item.code)
    )


def bank_signature(session: Session, test: AdaptiveTest) -> str:
    """A cheap digest of everything a snapshot of ``test`` depends on.

    Two light queries (ids, versions, parameter-set ids, tags) instead of loading every item:
    any content edit bumps an item's version, any new parameters make a new set id, any status
    change moves an item in or out of the rows. Equal signatures mean equal snapshot content.
    """
    plan = (test.config or {}).get("pretest") or {}
    pretest = [str(c) for c in (plan.get("items") or [] if isinstance(plan, dict) else [])]
    rows = session.execute(
        select(Item.id, Item.version, Item.skill, Item.status, ItemParameterSet.id)
        .outerjoin(ItemParameterSet,
                   (ItemParameterSet.item_id == Item.id) & ItemParameterSet.is_active)
        .where(((ItemParameterSet.id.is_not(None)) & and_(*_bank_conditions(test)))
               | Item.code.in_(pretest))
        .order_by(Item.id)
    ).all()
    ids = [r[0] for r in rows]
    tags = session.execute(select(ItemTag.item_id, ItemTag.tag).where(ItemTag.item_id.in_(ids))
                           .order_by(ItemTag.item_id, ItemTag.tag)).all()
    translated = session.execute(
        select(ItemTranslation.item_id, ItemTranslation.language, ItemTranslation.updated_at)
        .where(ItemTranslation.item_id.in_(ids))
        .order_by(ItemTranslation.item_id, ItemTranslation.language)).all()
    text = json.dumps([test.id, test.version, test.config, test.bank_filter, test.cut_scores,
                       [list(map(str, r)) for r in rows], [list(t) for t in tags],
                       [list(map(str, t)) for t in translated]],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _item_entry(item: Item, parameters: ItemParameterSet | None) -> dict[str, Any]:
    entry = _source_entry(item, parameters)
    # Languages are written only where they differ from a one-language English bank, so that
    # snapshots of such banks keep their fingerprints.
    if item.language != SOURCE_LANGUAGE:
        entry["language"] = item.language
    if item.translations:
        entry["translations"] = {t.language: t.as_dict() for t in item.translations}
    by_language = item.language_parameters
    if by_language:
        entry["language_parameters"] = {language: p.as_dict()
                                        for language, p in sorted(by_language.items())}
    return entry


def _source_entry(item: Item, parameters: ItemParameterSet | None) -> dict[str, Any]:
    return {
        "id": item.id,
        "code": item.code,
        "version": item.version,
        "skill": item.skill,
        "content_tags": item.content_tags,
        "stem": item.stem,
        "options": list(item.options),
        "key": item.key,
        "media": list(item.media or ()),
        "parameters": parameters.as_dict() if parameters is not None else None,
        "parameter_set_id": parameters.id if parameters is not None else None,
    }


def snapshot_content(session: Session, test: AdaptiveTest) -> dict[str, Any]:
    """What ``test`` delivers right now, as plain JSON: configuration, items, pretest items."""
    items = session.scalars(tests_bank_query(test)).unique().all()
    if not items:
        raise BankError(
            f"test {test.name!r} has no operational, calibrated item in its bank "
            f"(bank filter {json.dumps(test.bank_filter or {}, sort_keys=True)})", "bank_filter"
        )
    config = json.loads(json.dumps(test.config or {}))
    plan = config.get("pretest") or {}
    listed = plan.get("items", []) if isinstance(plan, dict) else None
    if not isinstance(listed, list) or not all(isinstance(c, str) for c in listed):
        raise BankError("config: pretest must be an object whose items are a list of item "
                        "codes", "config")
    if len(listed) > MAX_PRETEST_ITEMS:
        raise BankError(f"config: pretest.items (the number of items) must be at most "
                        f"{MAX_PRETEST_ITEMS:,}, got {len(listed):,}", "config")
    pretest_codes = list(listed)
    pretest = []
    if pretest_codes:
        rows = {i.code: i for i in session.scalars(
            select(Item).where(Item.code.in_(pretest_codes)).options(
                selectinload(Item.tags), selectinload(Item.parameter_sets),
                selectinload(Item.translations)))}
        missing = [c for c in pretest_codes if c not in rows]
        if missing:
            raise BankError(f"pretest.items: no item with code {missing[0]!r}", "config")
        # Items promoted or retired since the test was set up are no longer pretested.
        live = [c for c in pretest_codes if rows[c].status == ItemStatus.PRETEST]
        config["pretest"]["items"] = live
        if not live:
            config.pop("pretest")
        pretest = [_item_entry(rows[c], rows[c].active_parameters) for c in live]
    return {
        "format": SNAPSHOT_FORMAT,
        "test": {"id": test.id, "name": test.name, "version": test.version,
                 "cut_scores": dict(test.cut_scores or {})},
        "config": config,
        "items": [_item_entry(i, i.active_parameters) for i in items],
        "pretest": pretest,
    }


def fingerprint(content: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a snapshot's content."""
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def bank_stamp(session: Session, test: AdaptiveTest) -> tuple:
    """A one-query change detector for everything :func:`bank_signature` reads.

    Aggregates that move whenever the bank changes through this module: an item added or
    removed (count, largest id), any content edit (the sum of versions only grows), any change
    to an item's row, skill or tags (the latest ``updated_at``), any status change (a new
    status event, and the ids of operational and pretest items), any new or (de)activated
    parameter set (count, largest id, sum of active ids), tags added or removed, and the test's
    own row. Equal stamps let :func:`current_snapshot` skip the per-item signature; a
    changed stamp only costs the full check.
    """
    row = session.execute(_STAMP_QUERY, {"test_id": test.id}).one()
    return (test.id, test.version, bool(test.is_active),
            json.dumps([test.config, test.bank_filter, test.cut_scores], sort_keys=True,
                       default=str),
            *(str(v) for v in row))


def _stamp_query():
    items = select(func.count(Item.id), func.coalesce(func.sum(Item.version), 0),
                   func.coalesce(func.max(Item.id), 0), func.max(Item.updated_at),
                   func.coalesce(func.sum(case((Item.status == ItemStatus.OPERATIONAL, Item.id),
                                               else_=0)), 0),
                   func.coalesce(func.sum(case((Item.status == ItemStatus.PRETEST, Item.id),
                                               else_=0)), 0))
    sets = select(func.count(ItemParameterSet.id), func.coalesce(func.max(ItemParameterSet.id), 0),
                  func.coalesce(func.sum(case((ItemParameterSet.is_active, ItemParameterSet.id),
                                              else_=0)), 0))
    events = select(func.coalesce(func.max(ItemStatusEvent.id), 0))
    tags = select(func.count(), func.coalesce(func.sum(ItemTag.item_id), 0)).select_from(ItemTag)
    translated = select(func.count(), func.max(ItemTranslation.updated_at)).select_from(
        ItemTranslation)
    listed = select(func.count(), func.coalesce(func.sum(test_items.c.item_id), 0)).where(
        test_items.c.test_id == bindparam("test_id"))
    # One scalar subquery per aggregate, all in one statement (one round trip).
    return select(*(query.with_only_columns(column).scalar_subquery()
                    for query in (items, sets, events, tags, translated, listed)
                    for column in query.selected_columns))


_STAMP_QUERY = _stamp_query()


# (database url, test id) -> (stamp, snapshot id); and bank signature -> (snapshot id, fingerprint)
_STAMPS: dict[tuple[str, int], tuple[tuple, int]] = {}
_SIGNATURES: dict[str, tuple[int, str]] = {}
_SIGNATURES_LOCK = threading.Lock()


def current_snapshot_id(session: Session, test: AdaptiveTest) -> int:
    """The id of the snapshot of what ``test`` delivers now, stored when first seen.

    One aggregate query (:func:`bank_stamp`) when nothing changed since this process last
    looked; otherwise the full :func:`current_snapshot`.
    """
    key = (bind_key(session), test.id)
    stamp = bank_stamp(session, test)
    with _SIGNATURES_LOCK:
        known = _STAMPS.get(key)
    if known is not None and known[0] == stamp:
        return known[1]
    snapshot = current_snapshot(session, test)
    snapshot_id = snapshot.id

    def remember(_session: Session) -> None:  # only once committed: a rollback may reuse the id
        with _SIGNATURES_LOCK:
            if len(_STAMPS) > 4096:
                _STAMPS.clear()
            _STAMPS[key] = (stamp, snapshot_id)

    event.listen(session, "after_commit", remember, once=True)
    return snapshot_id


def current_snapshot(session: Session, test: AdaptiveTest) -> BankSnapshot:
    """The snapshot of what ``test`` delivers now, stored the first time this content is seen.

    The bank's signature (:func:`bank_signature`) is checked first; only when it is new to this
    process is the whole content loaded, fingerprinted and looked up or stored.
    """
    signature = bank_signature(session, test)
    with _SIGNATURES_LOCK:
        known = _SIGNATURES.get(signature)
    if known is not None:
        snapshot = session.get(BankSnapshot, known[0])
        # A rolled-back snapshot's id may be reused (SQLite), so check it is the one we saw.
        if snapshot is not None and snapshot.fingerprint == known[1]:
            return snapshot
    snapshot = _snapshot_for_content(session, test)
    session.flush()
    with _SIGNATURES_LOCK:
        if len(_SIGNATURES) > 4096:
            _SIGNATURES.clear()
        _SIGNATURES[signature] = (snapshot.id, snapshot.fingerprint)
    return snapshot


def _snapshot_for_content(session: Session, test: AdaptiveTest) -> BankSnapshot:
    content = snapshot_content(session, test)
    digest = fingerprint(content)
    lookup = select(BankSnapshot).where(BankSnapshot.test_id == test.id,
                                        BankSnapshot.fingerprint == digest)
    snapshot = session.scalar(lookup)
    if snapshot is not None:
        return snapshot
    build_delivery(content)  # never store a snapshot the engine cannot run
    try:
        with session.begin_nested():
            snapshot = BankSnapshot(test_id=test.id, test_version=test.version,
                                    fingerprint=digest, content=content)
            session.add(snapshot)
    except IntegrityError:  # another request stored the same snapshot a moment ago
        snapshot = session.scalar(lookup)
    return snapshot


# -- delivery: numpy arrays per snapshot, cached per process --------------------------------------


@dataclass(eq=False)
class Delivery:
    """A snapshot made ready for the engine: the bank's arrays, the built configuration, content.

    ``items`` maps item code to its snapshot entry (content, key, skill, database id), ``codes``
    maps database id to code. ``language`` is the language of the attempts it serves: items
    calibrated separately in that language get their parameters for it. Built once per snapshot
    and language per process by :func:`delivery_bank`.
    """

    snapshot_id: int | None
    bank: ItemBank
    config: CATConfig
    items: dict[str, dict[str, Any]]
    codes: dict[int, str]
    pretest: frozenset[str]
    cut_scores: dict[str, float]
    test: dict[str, Any] = field(default_factory=dict)
    language: str | None = None

    def language_parameters_in(self, language: str) -> bool:
        """Whether any item of the bank has parameters of its own for ``language``."""
        return any(language in (self.items[code].get("language_parameters") or {})
                   for code in self.bank.item_ids)

    @functools.cached_property
    def bank_item_ids(self) -> np.ndarray:
        """The database id of each item of ``bank``, in the bank's order."""
        return np.array([self.items[code]["id"] for code in self.bank.item_ids], dtype=np.int64)


def build_delivery(content: Mapping[str, Any], snapshot_id: int | None = None,
                   language: str | None = None) -> Delivery:
    """Build the engine's bank and configuration from a snapshot's content.

    With ``language``, items with parameters of their own for it (``language_parameters``, from
    a calibration of languages separately) use those; every other item its general ones.

    Raises
    ------
    BankError
        The configuration does not fit the bank (naming the setting), or an item's parameters
        are invalid (naming the item).
    """
    records = []
    for entry in content["items"]:
        parameters = (entry.get("language_parameters") or {}).get(language) if language \
            else None
        record = {"item_id": entry["code"], **{k: v for k, v in
                                              (parameters or entry["parameters"]).items()
                                              if v is not None}}
        record["content"] = sorted({*entry["content_tags"], entry["skill"]})
        records.append(record)
    try:
        bank = ItemBank.from_records(records)
        config = CATConfig.from_dict(content["config"], bank)
    except CATError as error:
        raise BankError(f"config: {error}", "config") from None
    entries = {e["code"]: e for e in (*content["items"], *content.get("pretest", ()))}
    return Delivery(
        snapshot_id=snapshot_id,
        bank=bank,
        config=config,
        items=entries,
        codes={e["id"]: code for code, e in entries.items()},
        pretest=frozenset(e["code"] for e in content.get("pretest", ())),
        cut_scores=dict(content["test"].get("cut_scores") or {}),
        test=dict(content["test"]),
        language=language,
    )


class _DeliveryCache:
    """At most ``size`` deliveries, least recently used dropped first; safe across threads."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, int], Delivery] = OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0

    def get(self, session: Session, snapshot_id: int, language: str | None = None) -> Delivery:
        # Keyed by database too: a process serving (or testing) several databases must not
        # mistake one database's snapshot 7 for another's.
        key = (bind_key(session), snapshot_id, language)
        with self._lock:
            delivery = self._entries.get(key)
            if delivery is not None:
                self._entries.move_to_end(key)
                return delivery
        if language is not None:
            # A language without parameters of its own shares the general arrays.
            general = self.get(session, snapshot_id)
            if general.language_parameters_in(language):
                content = session.scalar(select(BankSnapshot.content)
                                         .where(BankSnapshot.id == snapshot_id))
                delivery = build_delivery(content, snapshot_id, language)
            else:
                delivery = dataclasses.replace(general, language=language)
        else:
            content = session.scalar(select(BankSnapshot.content)
                                     .where(BankSnapshot.id == snapshot_id))
            if content is None:
                raise BankError(f"no bank snapshot {snapshot_id}")
            delivery = build_delivery(content, snapshot_id)
        with self._lock:
            self.builds += 1
            self._entries[key] = delivery
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return delivery

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


DELIVERIES = _DeliveryCache()


def delivery_bank(session: Session, snapshot_id: int, language: str | None = None) -> Delivery:
    """The engine-ready bank of a snapshot, built on first use in this process and then reused.

    ``language`` is the attempt's language (``None``: the general parameters).

    Snapshots never change once stored, so the cache needs no invalidation: a new bank or test
    version is a new snapshot.
    """
    return DELIVERIES.get(session, snapshot_id, language)


# -- exposure counters ---------------------------------------------------------------------------


def _exposure_upsert(insert):
    """``insert ... on conflict do update`` adding one to a (test_id, item_id) counter."""
    table = ItemExposure.__table__
    statement = insert(table).values(test_id=bindparam("exposure_test_id"),
                                     item_id=bindparam("exposure_item_id"), administered=1)
    return statement.on_conflict_do_update(
        index_elements=[table.c.test_id, table.c.item_id],
        set_={"administered": table.c.administered + 1},
    )


_EXPOSURE_UPSERT = {"postgresql": _exposure_upsert(pg_insert),
                    "sqlite": _exposure_upsert(sqlite_insert)}


def exposure_upsert(dialect: str):
    """The exposure counter's upsert for ``dialect``.

    Bind ``exposure_test_id`` and ``exposure_item_id`` (names no table's column has, so the
    statement can be a CTE of another insert or update).
    """
    return _EXPOSURE_UPSERT[dialect]


def record_exposure(session: Session, test_id: int, item_id: int) -> None:
    """Count one presentation of an item in a test (an upsert, safe under concurrency)."""
    connection = session.connection()
    connection.execute(exposure_upsert(connection.dialect.name),
                       {"exposure_test_id": test_id, "exposure_item_id": item_id})


def exposure_counts(session: Session, test_id: int) -> dict[int, int]:
    """How often each item was presented in a test, by item id."""
    rows = session.execute(select(ItemExposure.item_id, ItemExposure.administered)
                           .where(ItemExposure.test_id == test_id))
    return dict(rows.all())
