"""Interchange records, the error that lists every problem, and the rules every format shares.

Every reader and writer of :mod:`item_bank.interchange` takes and returns plain records
(:class:`ItemRecord`, :class:`ParameterRecord`), strings and bytes; storing them is the caller's
job. A file either parses completely or raises one :class:`InterchangeError` that lists every
problem found (up to :data:`MAX_PROBLEMS`), each naming the CSV line and column, or the XML
element, its source line and the file inside a package. Readers gather them in a
:class:`Problems`; writers check their records with :func:`check_records` first.

Parameters are on the bank's logistic metric (see :mod:`cat_engine.bank`): ``a`` discrimination,
``b`` difficulty, ``c`` lower and ``d`` upper asymptote, ``thresholds`` ``b1..bk`` of polytomous
items. A parameter left out (``None``) takes the engine's default (``a = 1``, ``c = 0``, ``d = 1``);
records keep exactly what the file said, so that export and import are lossless.
:func:`parameter_problems` and :func:`record_problems` are the rules a record must meet in every
format.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lxml import etree

from cat_engine.bank import DICHOTOMOUS_MODELS, MODELS, ItemParameters

STATUSES = ("draft", "pretest", "operational", "retired")
MAX_PROBLEMS = 50
#: The scalar parameters, in the order files give them.
NUMBER_FIELDS = ("a", "b", "c", "d")
#: The name of a threshold (``b1``, ``b2``, ...), its number as group 1.
THRESHOLD_NAME = re.compile(r"b([1-9][0-9]*)")
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# -- records and the error ----------------------------------------------------------------------


@dataclass
class ParameterRecord:
    """IRT parameters of one item as read from or written to a file.

    Attributes
    ----------
    model : str
        One of ``rasch, 1pl, 2pl, 3pl, 4pl, grm, gpcm, pcm``.
    a, b, c, d : float or None
        Discrimination, difficulty, lower and upper asymptote (logistic metric); ``None`` when the
        file left them out (the engine then uses ``a = 1``, ``c = 0``, ``d = 1``).
    thresholds : list of float or None
        ``b1..bk`` of polytomous items (GRM: strictly increasing boundaries).
    """

    model: str
    a: float | None = None
    b: float | None = None
    c: float | None = None
    d: float | None = None
    thresholds: list[float] | None = None

    def to_item_parameters(self, item_id: str, content: Sequence[str] = ()) -> ItemParameters:
        """These parameters as engine :class:`~cat_engine.bank.ItemParameters`, defaults filled."""
        return ItemParameters(
            item_id=item_id,
            model=self.model,
            a=1.0 if self.a is None else float(self.a),
            b=math.nan if self.b is None else float(self.b),
            c=0.0 if self.c is None else float(self.c),
            d=1.0 if self.d is None else float(self.d),
            thresholds=tuple(float(t) for t in self.thresholds or ()),
            content=tuple(content),
        )


@dataclass
class TranslationRecord:
    """An item's text in one more language: stem, options (as many as the item's, in its
    order) and rationale. ``line`` is the CSV line it came from (``None`` elsewhere)."""

    stem: str
    options: list[str] = field(default_factory=list)
    rationale: str = ""
    line: int | None = field(default=None, compare=False)


@dataclass
class ItemRecord:
    """One item's content, metadata and (optionally) parameters, as exchanged in files.

    ``key`` is the 0-based index of the correct option; ``media`` holds references (URLs or paths
    inside a package); ``status`` is one of ``draft, pretest, operational, retired``.
    ``language`` is the language of stem, options and rationale (``""``: the file does not say;
    the bank's default, ``en``), ``translations`` the item's text in other languages.
    """

    item_id: str
    stem: str = ""
    options: list[str] = field(default_factory=list)
    key: int | None = None
    rationale: str = ""
    skill: str = ""
    content_tags: list[str] = field(default_factory=list)
    status: str = "draft"
    media: list[str] = field(default_factory=list)
    parameters: ParameterRecord | None = None
    language: str = ""
    translations: dict[str, TranslationRecord] = field(default_factory=dict)


class InterchangeError(ValueError):
    """A file (or records to export) that cannot be converted; lists every problem found.

    Attributes
    ----------
    problems : list of str
        Every problem, each naming where it is (at most :data:`MAX_PROBLEMS`).
    line : int or None
        1-based line of the first problem (CSV line where the record starts, or XML source line).
    field : str or None
        CSV column, or XML element (``element/@attribute``) of the first problem.
    item_id : str or None
        The item of the first problem, when known.
    source : str or None
        The file (inside a package) of the first problem, when known.
    details : list of dict
        Every problem with its own ``message``, ``line``, ``field``, ``item_id`` and ``source``
        (None where unknown), so that a page can show each where it is.
    """

    def __init__(
        self,
        problems: str | Sequence[str],
        *,
        line: int | None = None,
        field: str | None = None,
        item_id: str | None = None,
        source: str | None = None,
        more: int = 0,
        details: Sequence[Mapping[str, object]] | None = None,
    ) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.line, self.field, self.item_id, self.source = line, field, item_id, source
        self.details = [dict(d) for d in details] if details is not None else [
            {"message": text, "line": line if n == 0 else None,
             "field": field if n == 0 else None, "item_id": item_id if n == 0 else None,
             "source": source if n == 0 else None}
            for n, text in enumerate(self.problems)]
        shown = self.problems[:3]
        rest = len(self.problems) - len(shown) + more
        message = "; ".join(shown)
        if rest:
            message += f" (and {rest} more problem{'s' if rest > 1 else ''})"
        super().__init__(message)


@dataclass(frozen=True)
class _Problem:
    text: str
    line: int | None = None
    field: str | None = None
    item_id: str | None = None
    source: str | None = None


class Problems:
    """Collects problems (up to MAX_PROBLEMS, counting the rest) and raises them together."""

    def __init__(self) -> None:
        self.items: list[_Problem] = []
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.items) + self.dropped

    def add(
        self,
        text: str,
        *,
        line: int | None = None,
        field: str | None = None,
        item_id: str | None = None,
        source: str | None = None,
    ) -> None:
        """Add a problem; past :data:`MAX_PROBLEMS` only count it. ``line``, ``field``,
        ``item_id`` and ``source`` say where it is (see :class:`InterchangeError`)."""
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(_Problem(text, line, field, item_id, source))
        else:
            self.dropped += 1

    def at(
        self,
        el: etree._Element,
        source: str,
        text: str,
        *,
        attr: str | None = None,
        item_id: str | None = None,
    ) -> None:
        """Add a problem located at an XML element (and optionally one of its attributes)."""
        name = etree.QName(el).localname
        name = f"{name}/@{attr}" if attr else name
        prefix = f"{source}: " if source else ""
        self.add(
            f"{prefix}element {name} (line {el.sourceline}): {text}",
            line=el.sourceline,
            field=name,
            item_id=item_id,
            source=source or None,
        )

    def raise_if_any(self) -> None:
        """Raise one :class:`InterchangeError` with every problem added, if any."""
        if len(self):
            first = self.items[0]
            raise InterchangeError(
                [p.text for p in self.items],
                line=first.line,
                field=first.field,
                item_id=first.item_id,
                source=first.source,
                more=self.dropped,
                details=[
                    {"message": p.text, "line": p.line, "field": p.field, "item_id": p.item_id,
                     "source": p.source}
                    for p in self.items
                ],
            )


# -- validation shared by readers and writers ---------------------------------------------------


def _finite(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def parameter_problems(parameters: ParameterRecord) -> list[tuple[str, str]]:
    """Problems with one item's parameters, as ``(field, message)`` pairs (empty when valid).

    ``field`` is ``model``, ``a``, ``b``, ``c``, ``d`` or ``b1..bk``. The rules are the engine's
    (:mod:`cat_engine.bank`): ``a > 0``; 2pl needs ``a, b``; 3pl ``a, b, c`` with ``0 <= c < 1``;
    4pl ``a, b, d`` with ``c < d <= 1``; rasch and 1pl need ``b`` (rasch and pcm have ``a = 1``);
    grm, gpcm and pcm need thresholds ``b1..bk`` (increasing for grm).
    """
    p = parameters
    if p.model not in MODELS:
        return [("model", f"{p.model!r} is not one of {', '.join(MODELS)}")]
    values = {"a": p.a, "b": p.b, "c": p.c, "d": p.d}
    thresholds = list(p.thresholds or ())
    out = [
        (k, f"must be a finite number, got {v!r}")
        for k, v in values.items()
        if v is not None and not _finite(v)
    ]
    out += [
        (f"b{k}", f"must be a finite number, got {t!r}")
        for k, t in enumerate(thresholds, 1)
        if not _finite(t)
    ]
    if out:
        return out
    model, a, c, d = p.model, p.a, p.c, p.d
    if a is not None and not a > 0:
        out.append(("a", f"must be > 0, got {a!r}"))
    if model in ("rasch", "pcm") and a is not None and a != 1:
        out.append(("a", f"must be 1 for a {model} item, got {a!r}"))
    if model in DICHOTOMOUS_MODELS:
        if p.thresholds is not None:
            out.append(("b1", f"thresholds are not parameters of a {model} item (use b)"))
        required = {"rasch": "b", "1pl": "b", "2pl": "ab", "3pl": "abc", "4pl": "abd"}[model]
        out += [(k, f"is required for a {model} item") for k in required if values[k] is None]
        if c is not None:
            if model in ("rasch", "1pl", "2pl") and c != 0:
                out.append(("c", f"must be 0 for a {model} item (use 3pl), got {c!r}"))
            elif not 0 <= c < 1:
                out.append(("c", f"must be in [0, 1), got {c!r}"))
        if d is not None:
            if model != "4pl" and d != 1:
                out.append(("d", f"must be 1 for a {model} item (use 4pl), got {d!r}"))
            elif not (c or 0.0) < d <= 1:
                out.append(("d", f"must satisfy c < d <= 1 (c = {c or 0.0!r}), got {d!r}"))
        return out
    if p.b is not None:
        out.append(("b", f"is not a parameter of a {model} item (give thresholds b1..bk)"))
    if c is not None and c != 0:
        out.append(("c", f"is not a parameter of a {model} item"))
    if d is not None and d != 1:
        out.append(("d", f"is not a parameter of a {model} item"))
    if not thresholds:
        out.append(("b1", f"a {model} item needs thresholds b1..bk"))
    if model == "grm":
        out += [
            (
                f"b{k + 1}",
                f"must be greater than b{k} ({thresholds[k - 1]!r}) for a grm item "
                f"(thresholds must increase), got {thresholds[k]!r}",
            )
            for k in range(1, len(thresholds))
            if not thresholds[k] > thresholds[k - 1]
        ]
    return out


def _text_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"must be text, got {type(value).__name__}"
    bad = _NOT_XML_CHAR.search(value)
    return (
        f"contains the character U+{ord(bad.group()):04X}, which XML cannot hold" if bad else None
    )


def record_problems(record: ItemRecord, *, qti: bool = False) -> list[tuple[str, str]]:
    """Problems with a record, as ``(field, message)`` pairs; empty when it can be exported.

    ``field`` names a CSV column (``option_2``, ``b1``...). With ``qti=True`` every record needs
    the two or more options of a single-choice item.
    """
    r, out = record, []
    problem = _text_problem(r.item_id)
    if problem or not r.item_id.strip():
        out.append(("item_id", problem or "is empty"))
    elif r.item_id != r.item_id.strip():
        out.append(("item_id", f"{r.item_id!r} has leading or trailing blanks"))
    for name in ("stem", "rationale", "skill"):
        if problem := _text_problem(getattr(r, name)):
            out.append((name, problem))
    if isinstance(r.skill, str) and r.skill != r.skill.strip():
        out.append(("skill", f"{r.skill!r} has leading or trailing blanks"))
    if r.status not in STATUSES:
        out.append(("status", f"{r.status!r} is not one of {', '.join(STATUSES)}"))
    for k, option in enumerate(r.options, 1):
        problem = _text_problem(option)
        if problem or not option.strip():
            out.append((f"option_{k}", problem or "is empty"))
    given_stem = isinstance(r.stem, str) and bool(r.stem.strip())
    if (given_stem or qti) and len(r.options) < 2:
        what = "a single-choice item" if qti else "an item with a stem"
        out.append(("option_1", f"{what} needs at least 2 options, got {len(r.options)}"))
    if r.key is not None and (
        not isinstance(r.key, int) or isinstance(r.key, bool) or not 0 <= r.key < len(r.options)
    ):
        out.append(("key", f"{r.key!r} (0-based) is not one of the {len(r.options)} options"))
    for name, values in (("tags", r.content_tags), ("media", r.media)):
        for value in values:
            problem = _text_problem(value)
            if problem or not value.strip() or value != value.strip() or ";" in value:
                out.append(
                    (
                        name,
                        problem
                        or f"{value!r} must be non-empty, without ';' and "
                        "without leading or trailing blanks",
                    )
                )
    if r.parameters is not None:
        out += parameter_problems(r.parameters)
    return out


def check_records(records: Sequence[ItemRecord], *, qti: bool) -> None:
    """Raise one :class:`InterchangeError` naming every record that cannot be written, and
    every item id given twice (see :func:`record_problems` for ``qti``)."""
    problems, seen = Problems(), set()
    for record in records:
        name = getattr(record, "item_id", None)
        for column, text in record_problems(record, qti=qti):
            problems.add(f"item {name!r}, {column}: {text}", field=column, item_id=name)
        if name in seen:
            problems.add(f"item {name!r} appears more than once", field="item_id", item_id=name)
        seen.add(name)
    problems.raise_if_any()
