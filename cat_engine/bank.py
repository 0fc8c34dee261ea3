"""The item bank as arrays: parameters of every item, validated, ready for vectorised models.

Conventions (used throughout the engine):

- theta is on the logistic metric of the bank; ``D`` is 1 by default (1.702 approximates the normal
  ogive metric) and multiplies ``a`` everywhere.
- Dichotomous items (rasch, 1pl, 2pl, 3pl, 4pl) share the four-parameter logistic form
  ``P(1) = c + (d - c) / (1 + exp(-D a (theta - b)))``; Rasch and PCM items have ``a = 1``.
- Polytomous items (grm, gpcm, pcm) have categories ``0..m`` and ``m`` thresholds ``b1..bm``:
  boundaries for the GRM (strictly increasing), step difficulties for the GPCM and PCM (any order).
- Responses are category numbers ``0..m`` (0/1 for dichotomous items).
"""

from __future__ import annotations

import csv
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from cat_engine.errors import CATError, InvalidItemError, UnknownItemError

DICHOTOMOUS_MODELS = ("rasch", "1pl", "2pl", "3pl", "4pl")
POLYTOMOUS_MODELS = ("grm", "gpcm", "pcm")
MODELS = DICHOTOMOUS_MODELS + POLYTOMOUS_MODELS

FAMILY_DICHOTOMOUS, FAMILY_GRM, FAMILY_GPCM = 0, 1, 2
_FAMILY = dict.fromkeys(DICHOTOMOUS_MODELS, FAMILY_DICHOTOMOUS) | {
    "grm": FAMILY_GRM,
    "gpcm": FAMILY_GPCM,
    "pcm": FAMILY_GPCM,
}


@dataclass(frozen=True)
class ItemParameters:
    """One item's parameters, as read from a file or a database row."""

    item_id: str
    model: str
    a: float = 1.0
    b: float = math.nan
    c: float = 0.0
    d: float = 1.0
    thresholds: tuple[float, ...] = ()
    content: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class ItemBank:
    """Validated parameters of every item in a bank, as numpy arrays indexed by item position.

    Build it with :meth:`from_items`, :meth:`from_records` or :meth:`from_csv`; they validate every
    item and raise :class:`~cat_engine.errors.InvalidItemError` naming the item and the field.

    Attributes
    ----------
    item_ids : tuple of str
        Item identifiers; position ``j`` in every array is item ``item_ids[j]``.
    models : ndarray of str, shape (J,)
    family : ndarray of int8, shape (J,)
        0 dichotomous, 1 graded response, 2 (generalized) partial credit.
    a, b, c, d : ndarray of float, shape (J,)
        Discrimination, difficulty, lower and upper asymptote (``b`` is NaN for polytomous items).
    thresholds : ndarray of float, shape (J, K - 1)
        Polytomous thresholds, NaN-padded; for dichotomous items column 0 holds ``b``.
    n_categories : ndarray of int, shape (J,)
        2 for dichotomous items, ``m + 1`` for polytomous ones.
    content : tuple of tuple of str
        Content tags of each item (for content constraints).
    D : float
        Scaling constant multiplying ``a``.
    """

    item_ids: tuple[str, ...]
    models: np.ndarray
    family: np.ndarray
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray
    thresholds: np.ndarray
    n_categories: np.ndarray
    content: tuple[tuple[str, ...], ...]
    D: float = 1.0
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_items(cls, items: Iterable[ItemParameters], D: float = 1.0) -> ItemBank:
        """Validate ``items`` and build the bank.

        Raises
        ------
        InvalidItemError
            The first invalid item, naming it and the field.
        CATError
            An empty bank, duplicate item ids, or ``D <= 0``.
        """
        items = list(items)
        if not items:
            raise CATError("the item bank is empty")
        if not (math.isfinite(D) and D > 0):
            raise CATError(f"the scaling constant D must be positive, got {D!r}")
        index: dict[str, int] = {}
        for j, item in enumerate(items):
            _validate(item)
            if item.item_id in index:
                raise InvalidItemError(item.item_id, "item_id", "appears more than once")
            index[item.item_id] = j
        n_cat = np.array(
            [2 if _FAMILY[i.model] == FAMILY_DICHOTOMOUS else len(i.thresholds) + 1 for i in items]
        )
        k_max = int(n_cat.max())
        thresholds = np.full((len(items), k_max - 1), np.nan)
        for j, item in enumerate(items):
            if _FAMILY[item.model] == FAMILY_DICHOTOMOUS:
                thresholds[j, 0] = item.b
            else:
                thresholds[j, : len(item.thresholds)] = item.thresholds
        arrays = {
            name: np.array([getattr(i, name) for i in items], dtype=float)
            for name in ("a", "b", "c", "d")
        }
        for array in (*arrays.values(), thresholds, n_cat):
            array.setflags(write=False)
        models = np.array([i.model for i in items])
        family = np.array([_FAMILY[i.model] for i in items], dtype=np.int8)
        models.setflags(write=False)
        family.setflags(write=False)
        return cls(
            item_ids=tuple(i.item_id for i in items),
            models=models,
            family=family,
            thresholds=thresholds,
            n_categories=n_cat,
            content=tuple(tuple(i.content) for i in items),
            D=float(D),
            _index=index,
            **arrays,
        )

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]], D: float = 1.0) -> ItemBank:
        """Build a bank from mappings with keys ``item_id, model, a, b, c, d, b1..bk, content``.

        Missing or empty fields take the model's defaults (``a = 1``, ``c = 0``, ``d = 1``);
        ``content`` may be a list of tags or one string with tags separated by ``;`` or ``|``.
        Thresholds may also be given as a ``thresholds`` list.
        """
        return cls.from_items((_item_from_record(r, n) for n, r in enumerate(records, 1)), D=D)

    @classmethod
    def from_csv(cls, path: str | Path, D: float = 1.0) -> ItemBank:
        """Read a bank from a CSV with columns ``item_id,model,a,b,c,d[,b1..bk][,content]``."""
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = {"item_id", "model"} - set(reader.fieldnames or ())
            if missing:
                raise CATError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
            rows = list(reader)
        return cls.from_records(rows, D=D)

    def to_records(self) -> list[dict[str, Any]]:
        """The bank as plain records (``thresholds`` as a list), for JSON or CSV output."""
        records = []
        for j, item_id in enumerate(self.item_ids):
            record: dict[str, Any] = {"item_id": item_id, "model": str(self.models[j])}
            if self.family[j] == FAMILY_DICHOTOMOUS:
                record |= {k: float(getattr(self, k)[j]) for k in ("a", "b", "c", "d")}
            else:
                record["a"] = float(self.a[j])
                record["thresholds"] = [float(t) for t in self.thresholds[j] if not np.isnan(t)]
            if self.content[j]:
                record["content"] = list(self.content[j])
            records.append(record)
        return records

    # -- look-ups -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.item_ids)

    def index_of(self, item_id: str) -> int:
        """Position of ``item_id`` in the bank's arrays."""
        try:
            return self._index[item_id]
        except KeyError:
            raise UnknownItemError(item_id) from None

    def indices_of(self, item_ids: Sequence[str]) -> np.ndarray:
        """Positions of several items, as an integer array."""
        return np.array([self.index_of(i) for i in item_ids], dtype=np.intp)

    @cached_property
    def max_categories(self) -> int:
        """The largest number of response categories of any item."""
        return int(self.n_categories.max())

    @cached_property
    def all_dichotomous(self) -> bool:
        """Whether every item is dichotomous (the fast path of the models)."""
        return bool((self.family == FAMILY_DICHOTOMOUS).all())

    @cached_property
    def content_tags(self) -> tuple[str, ...]:
        """Every content tag used in the bank, sorted."""
        return tuple(sorted({t for tags in self.content for t in tags}))

    def content_matrix(self, tags: Sequence[str] | None = None) -> np.ndarray:
        """Boolean matrix (n_tags, J): whether item ``j`` carries tag ``t``."""
        tags = self.content_tags if tags is None else tuple(tags)
        matrix = np.zeros((len(tags), len(self)), dtype=bool)
        position = {t: i for i, t in enumerate(tags)}
        for j, item_tags in enumerate(self.content):
            for tag in item_tags:
                if tag in position:
                    matrix[position[tag], j] = True
        return matrix

    def subset(self, indices: Sequence[int] | np.ndarray) -> ItemBank:
        """A bank of the items at ``indices`` (in that order)."""
        records = self.to_records()
        return ItemBank.from_records([records[int(j)] for j in indices], D=self.D)


# -- validation -------------------------------------------------------------------------------

_NUMBER_FIELDS = ("a", "b", "c", "d")


def _validate(item: ItemParameters) -> None:
    name = item.item_id
    if not isinstance(name, str) or not name.strip():
        raise InvalidItemError(str(name), "item_id", "must be a non-empty string")
    if item.model not in _FAMILY:
        raise InvalidItemError(name, "model", f"{item.model!r} is not one of {', '.join(MODELS)}")
    for key in _NUMBER_FIELDS:
        value = getattr(item, key)
        if not _is_number(value) or (key != "b" and not math.isfinite(value)):
            raise InvalidItemError(name, key, f"must be a finite number, got {value!r}")
    if not (item.a > 0):
        raise InvalidItemError(name, "a", f"must be > 0, got {item.a!r}")
    if item.model in ("rasch", "pcm") and item.a != 1:
        raise InvalidItemError(name, "a", f"must be 1 for a {item.model} item, got {item.a!r}")
    if _FAMILY[item.model] == FAMILY_DICHOTOMOUS:
        if not math.isfinite(item.b):
            raise InvalidItemError(name, "b", f"must be a finite number, got {item.b!r}")
        if not (0 <= item.c < 1):
            raise InvalidItemError(name, "c", f"must be in [0, 1), got {item.c!r}")
        if not (item.d <= 1):
            raise InvalidItemError(name, "d", f"must be at most 1, got {item.d!r}")
        if not (item.d > item.c):
            raise InvalidItemError(
                name, "d", f"must be greater than c ({item.c!r}), got {item.d!r}"
            )
        if item.model in ("rasch", "1pl", "2pl"):
            if item.c != 0:
                raise InvalidItemError(name, "c", f"must be 0 for a {item.model} item (use 3pl)")
            if item.d != 1:
                raise InvalidItemError(name, "d", f"must be 1 for a {item.model} item (use 4pl)")
        if item.model == "3pl" and item.d != 1:
            raise InvalidItemError(name, "d", "a 3pl item has d = 1 (use 4pl)")
        return
    for key, neutral in (("c", 0), ("d", 1)):
        if getattr(item, key) != neutral:
            raise InvalidItemError(name, key, f"is not a parameter of a {item.model} item")
    thresholds = item.thresholds
    if len(thresholds) < 1:
        raise InvalidItemError(name, "b1", "a polytomous item needs at least one threshold")
    for k, t in enumerate(thresholds, 1):
        if not _is_number(t) or not math.isfinite(t):
            raise InvalidItemError(name, f"b{k}", f"must be a finite number, got {t!r}")
    if item.model == "grm":
        for k in range(1, len(thresholds)):
            if not thresholds[k] > thresholds[k - 1]:
                raise InvalidItemError(
                    name,
                    f"b{k + 1}",
                    f"must be greater than b{k} for a graded response item (thresholds must "
                    f"increase), got {thresholds[k]!r} after {thresholds[k - 1]!r}",
                )


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _number(record: Mapping[str, Any], key: str, default: float, item_id: str) -> float:
    value = record.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidItemError(item_id, key, f"must be a number, got {value!r}") from None


def _item_from_record(record: Mapping[str, Any], row: int) -> ItemParameters:
    item_id = str(record.get("item_id") or "").strip()
    if not item_id:
        raise InvalidItemError(f"<row {row}>", "item_id", "is missing")
    model = str(record.get("model") or "").strip().lower()
    if "thresholds" in record and record["thresholds"] is not None:
        raw = list(record["thresholds"])
        thresholds = tuple(
            _number({f"b{k}": t}, f"b{k}", math.nan, item_id) for k, t in enumerate(raw, 1)
        )
    else:
        keys = sorted(
            (k for k in record if k and k[0] == "b" and k[1:].isdigit()), key=lambda k: int(k[1:])
        )
        values = [(k, record[k]) for k in keys]
        while values and (values[-1][1] is None or str(values[-1][1]).strip() == ""):
            values.pop()
        thresholds = tuple(_number(record, k, math.nan, item_id) for k, _ in values)
    dichotomous = _FAMILY.get(model) == FAMILY_DICHOTOMOUS
    b = _number(record, "b", math.nan, item_id)
    if dichotomous and math.isnan(b) and len(thresholds) == 1:
        b, thresholds = thresholds[0], ()
    content = record.get("content") or ()
    if isinstance(content, str):
        content = tuple(t.strip() for t in content.replace("|", ";").split(";") if t.strip())
    return ItemParameters(
        item_id=item_id,
        model=model,
        a=_number(record, "a", 1.0, item_id),
        b=b,
        c=_number(record, "c", 0.0, item_id),
        d=_number(record, "d", 1.0, item_id),
        thresholds=() if dichotomous else thresholds,
        content=tuple(content),
    )

