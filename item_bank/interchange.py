"""Import and export of items (content and IRT parameters) as CSV and QTI, with no database.

Everything here takes and returns plain records (:class:`ItemRecord`, :class:`ParameterRecord`),
strings and bytes; storing them is the caller's job. A file either parses completely or raises one
:class:`InterchangeError` that lists every problem found (up to 50), each naming the CSV line and
column, or the XML element, its source line and the file inside a package.

Parameters are on the bank's logistic metric (see :mod:`cat_engine.bank`): ``a`` discrimination,
``b`` difficulty, ``c`` lower and ``d`` upper asymptote, ``thresholds`` ``b1..bk`` of polytomous
items. A parameter left out (``None``) takes the engine's default (``a = 1``, ``c = 0``, ``d = 1``);
records keep exactly what the file said, so that export and import are lossless.

CSV
---
One row per item under a header row (column names are case-insensitive): ``item_id`` (required),
``stem``, ``option_1..option_k`` (or ``option_a..option_z``), ``key`` (1-based option number or a
letter), ``rationale``, ``skill``, ``tags`` and ``media`` (separated by ``;``), ``status``, then
``model, a, b, c, d, b1..bk``. A file without a ``stem`` column is a parameters-only file
(``item_id, skill, status, tags`` and the parameter columns). Text cells are kept exactly;
identifiers, numbers, tags, skill and status are stripped of surrounding blanks.

QTI
---
Items are single-choice items (QTI 3.0 ``qti-assessment-item``, or QTI 2.1/2.2 ``assessmentItem``):

- the stem is a ``<p>`` before the ``qti-choice-interaction`` (max-choices 1); line breaks in stems,
  options and rationales are written as ``<br/>``; choices are identified ``A, B, ... Z, AA, AB``;
- a table in a stem (a Markdown table, :mod:`item_bank.markup`) is written as QTI table markup
  (``table``, ``thead``, ``th scope="col"``, ``tbody``, ``td``; alignment as an ``align-right``
  class) between the ``<p>`` of the text before and after it; on import, a ``table`` (also inside
  a ``div``) becomes a Markdown table, and other tools' text is escaped so it shows literally;
- the key is the ``qti-correct-response`` of the ``RESPONSE`` declaration; scoring uses the
  standard ``match_correct`` response-processing template;
- the rationale is a ``<qti-rubric-block use="ext:rationale" view="scorer tutor">`` (QTI 2.1:
  ``<rubricBlock view="scorer tutor" class="cat-rationale">``), so candidates never see it;
- media references are ``<img src>`` (images) or ``<object data type>`` in a ``<div>`` after the
  stem; on import, every ``img``, ``object``, ``audio``, ``video`` and ``source`` reference counts;
- only single-choice items with text choices are read; any other interaction is refused, naming
  it;
- items written here carry ``tool-name="cat-engine"``; their texts are read back exactly. Texts of
  items from other tools are read with their whitespace collapsed (as a browser would show them),
  and the ``qti-prompt`` of the interaction counts as part of the stem.

IRT parameters travel as QTI Usage Data ("Usage Data and Item Statistics"; namespace
``http://www.imsglobal.org/xsd/imsqti_usagedata_v3p0``, schema ``imsqti_usagedatav3p0_v1p0.xsd``;
2.1: ``imsqti_usagedata_v2p1``, same structure), one ``ordinaryStatistic`` per parameter::

    <usageData xmlns="http://www.imsglobal.org/xsd/imsqti_usagedata_v3p0" glossary="GLOSSARY">
      <ordinaryStatistic name="irt_a" glossary="GLOSSARY" context="CONTEXT">
        <targetObject identifier="ALG-001"/>
        <value>1.25</value>
      </ordinaryStatistic>
      ...

(the form of the 1EdTech example ``qtiv3-examples/usageData/example.xml`` in
``1EdTech/qti-examples`` and of the IMS "QTI Usage Data & Item Statistics 3.0" binding, 2022),
with :data:`USAGE_GLOSSARY` as glossary, :data:`USAGE_CONTEXT` as context and the names
``irt_model`` (value ``rasch``, ``1pl``, ..., ``pcm``), ``irt_a``, ``irt_b``, ``irt_c``, ``irt_d``
and ``irt_b1..irt_bk`` (thresholds). On import, statistics with other names or another glossary are
ignored.

A package (:func:`write_qti_package`) is a zip holding ``imsmanifest.xml`` (IMS content package,
QTI 3.0 profile), ``items/<item_id>.xml`` (the id made file-safe; resource type
``imsqti_item_xmlv3p0``) and
``usage-data.xml`` (resource type ``qtiusagedata/xml``). Skill, tags and status are kept in each
item resource's ``<metadata>`` as ``<cat:item-data>`` in the namespace :data:`CAT_NS`::

    <cat:item-data><cat:skill>algebra</cat:skill><cat:status>pretest</cat:status>
      <cat:tag>linear</cat:tag><cat:tag>grade-8</cat:tag></cat:item-data>

A single item file (:func:`write_qti_item`) carries the content only.

Safety: XML is parsed without DTDs, entities or network access, and any DOCTYPE is refused; zip
packages are limited to :data:`MAX_PACKAGE_BYTES` uncompressed and :data:`MAX_PACKAGE_MEMBERS`
members, and member names or manifest references that are absolute or climb out of the package are
refused.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import mimetypes
import numbers
import posixpath
import re
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote

from lxml import etree

from cat_engine.bank import DICHOTOMOUS_MODELS, MODELS, ItemParameters
from item_bank.markup import Table, escape_text, markdown_table, stem_blocks

STATUSES = ("draft", "pretest", "operational", "retired")
MAX_PROBLEMS = 50
MAX_PACKAGE_BYTES = 50 * 1024 * 1024
MAX_PACKAGE_MEMBERS = 5000

QTI3_NS = "http://www.imsglobal.org/xsd/imsqtiasi_v3p0"
QTI21_NS = "http://www.imsglobal.org/xsd/imsqti_v2p1"
QTI22_NS = "http://www.imsglobal.org/xsd/imsqti_v2p2"
USAGE3_NS = "http://www.imsglobal.org/xsd/imsqti_usagedata_v3p0"
USAGE_NAMESPACES = (
    USAGE3_NS,
    "http://www.imsglobal.org/xsd/imsqti_usagedata_v2p1",
    "http://www.imsglobal.org/xsd/imsqti_usagedata_v2p2",
)
CP3_NS = "http://www.imsglobal.org/xsd/qti/qtiv3p0/imscp_v1p1"
CAT_NS = "urn:x-cat-engine:item-metadata:1"
USAGE_GLOSSARY = "urn:x-cat-engine:irt-glossary:1"
USAGE_CONTEXT = "urn:x-cat-engine:item-bank"
TOOL_NAME = "cat-engine"
TOOL_VERSION = "1"

_XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_XML_BASE = "{http://www.w3.org/XML/1998/namespace}base"
_SCHEMA = {
    QTI3_NS: "https://purl.imsglobal.org/spec/qti/v3p0/schema/xsd/imsqti_asiv3p0_v1p0.xsd",
    QTI21_NS: "http://www.imsglobal.org/xsd/qti/qtiv2p1/imsqti_v2p1.xsd",
    USAGE3_NS: "https://purl.imsglobal.org/spec/qti/v3p0/schema/xsd/imsqti_usagedatav3p0_v1p0.xsd",
    CP3_NS: "https://purl.imsglobal.org/spec/qti/v3p0/schema/xsd/imsqtiv3p0_imscpv1p2_v1p0.xsd",
}
_MATCH_CORRECT = {
    "3.0": "https://purl.imsglobal.org/spec/qti/v3p0/rptemplates/match_correct.xml",
    "2.1": "http://www.imsglobal.org/question/qti_v2p1/rptemplates/match_correct",
}
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_THRESHOLD = re.compile(r"b([1-9][0-9]*)")
_OPTION = re.compile(r"option_(?:([1-9][0-9]*)|([a-z]))")
_NUMBER_FIELDS = ("a", "b", "c", "d")


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
class ItemRecord:
    """One item's content, metadata and (optionally) parameters, as exchanged in files.

    ``key`` is the 0-based index of the correct option; ``media`` holds references (URLs or paths
    inside a package); ``status`` is one of ``draft, pretest, operational, retired``.
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


class _Problems:
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


def _check_records(records: Sequence[ItemRecord], *, qti: bool) -> None:
    problems, seen = _Problems(), set()
    for record in records:
        name = getattr(record, "item_id", None)
        for column, text in record_problems(record, qti=qti):
            problems.add(f"item {name!r}, {column}: {text}", field=column, item_id=name)
        if name in seen:
            problems.add(f"item {name!r} appears more than once", field="item_id", item_id=name)
        seen.add(name)
    problems.raise_if_any()


# -- CSV ----------------------------------------------------------------------------------------

_CONTENT_COLUMNS = ("stem", "key", "rationale", "media")
_PARAMETER_COLUMNS = ("model", "a", "b", "c", "d")
_BASE_COLUMNS = ("item_id", "skill", "status", "tags", *_CONTENT_COLUMNS, *_PARAMETER_COLUMNS)


@dataclass
class _Layout:
    names: list[str]
    options: list[str]  # option columns in order
    thresholds: list[str]  # b1..bk
    letters: bool = False
    unknown: list[str] = field(default_factory=list)  # ignored when reading the rows


#: Names people give columns of the item format, and the column meant.
_ALIASES = {
    "id": "item_id", "code": "item_id", "item": "item_id", "item_code": "item_id",
    "question": "stem", "text": "stem", "prompt": "stem", "correct": "key", "answer": "key",
    "correct_option": "key", "tag": "tags", "content": "tags", "difficulty": "b",
    "discrimination": "a", "guessing": "c", "slip": "d", "irt_model": "model",
}


def _suggestion(name: str) -> str:
    """`` (did you mean 'x'?)`` for an unknown column name close to a known one, else ``""``."""
    if m := re.fullmatch(r"(?:option|opt|choice|answer)[\s_-]*([1-9][0-9]*|[a-z])", name):
        guess = f"option_{m.group(1)}"
    elif m := re.fullmatch(r"(?:b[\s_-]+|threshold[\s_-]*)([1-9][0-9]*)", name):
        guess = f"b{m.group(1)}"
    else:
        guess = _ALIASES.get(name.replace(" ", "_").replace("-", "_"))
        if guess is None:
            close = difflib.get_close_matches(name, _BASE_COLUMNS, n=1, cutoff=0.75)
            guess = close[0] if close else None
    return f" (did you mean {guess!r}?)" if guess else ""


def _csv_layout(header: list[str], problems: _Problems) -> _Layout:
    names = [h.strip().lower() for h in header]
    layout = _Layout(names, [], [])
    numbered: dict[int, str] = {}
    lettered: dict[int, str] = {}
    thresholds: dict[int, str] = {}
    unknown = []
    for i, name in enumerate(names, 1):
        if not name:
            problems.add(f"line 1: column {i} has no name", line=1)
        elif names.index(name) != i - 1:
            problems.add(f"line 1, column {name!r}: appears more than once", line=1, field=name)
        elif m := _OPTION.fullmatch(name):
            if m.group(1):
                numbered[int(m.group(1))] = name
            else:
                lettered[ord(m.group(2)) - ord("a") + 1] = name
        elif m := _THRESHOLD.fullmatch(name):
            thresholds[int(m.group(1))] = name
        elif name not in _BASE_COLUMNS:
            unknown.append(name)
    for name in unknown:  # each its own problem, all reported at once
        problems.add(
            f"line 1: unknown column {name!r}{_suggestion(name)}", line=1, field=name
        )
    layout.unknown = unknown
    if "item_id" not in names:
        problems.add("line 1: the required column 'item_id' is missing", line=1, field="item_id")
    if numbered and lettered:
        problems.add(
            "line 1: option columns mix numbers and letters (option_1 and option_a)",
            line=1,
            field=next(iter(lettered.values())),
        )
    layout.letters = bool(lettered) and not numbered
    options = numbered or lettered
    for what, found in (("option", options), ("threshold", thresholds)):
        missing = [k for k in range(1, max(found, default=0) + 1) if k not in found]
        if missing:
            column = (
                f"option_{chr(ord('a') + missing[0] - 1)}"
                if what == "option" and layout.letters
                else f"{'option_' if what == 'option' else 'b'}{missing[0]}"
            )
            problems.add(
                f"line 1: {what} columns must be consecutive: {column!r} is missing",
                line=1,
                field=column,
            )
    layout.options = [options[k] for k in sorted(options)]
    layout.thresholds = [thresholds[k] for k in sorted(thresholds)]
    if "stem" not in names:
        content = [n for n in names if n in _CONTENT_COLUMNS] + layout.options
        if content:
            problems.add(
                f"line 1: column{'s' if len(content) > 1 else ''} "
                f"{', '.join(map(repr, content))} need a 'stem' column (a file without 'stem' "
                "holds parameters only)",
                line=1,
                field=content[0],
            )
    return layout


def _csv_record(
    cells: dict[str, str], line: int, layout: _Layout, problems: _Problems
) -> ItemRecord:
    item_id = cells.get("item_id", "").strip()
    before = len(problems)

    def add(column: str, text: str) -> None:
        problems.add(
            f"line {line}, column {column!r}: {text}",
            line=line,
            field=column,
            item_id=item_id or None,
        )

    if not item_id:
        add("item_id", "is empty")
    options = [cells.get(name, "") for name in layout.options]
    while options and not options[-1].strip():
        options.pop()
    for name, option in zip(layout.options, options, strict=False):
        if not option.strip():
            add(name, "is empty but a later option is given")
    key = None
    raw_key = cells.get("key", "").strip()
    if raw_key:
        if raw_key.isascii() and raw_key.isdigit():
            number = int(raw_key)
        elif len(raw_key) == 1 and raw_key.isascii() and raw_key.isalpha():
            number = ord(raw_key.upper()) - ord("A") + 1
        else:
            number = None
            add("key", f"{raw_key!r} is not an option number (1, 2, ...) or letter (A, B, ...)")
        if number is not None and not 1 <= number <= len(options):
            add("key", f"{raw_key!r} is outside the options (the row has {len(options)})")
        elif number is not None:
            key = number - 1
    values = {
        name: _csv_number(cells.get(name, "").strip(), add, name)
        for name in (*_NUMBER_FIELDS, *layout.thresholds)
    }
    given = [k for k in (*_NUMBER_FIELDS, *layout.thresholds) if cells.get(k, "").strip()]
    n_thresholds = max(
        (k for k, name in enumerate(layout.thresholds, 1) if name in given), default=0
    )
    for name in layout.thresholds[:n_thresholds]:
        if name not in given:
            add(name, "is empty but a later threshold is given")
    thresholds = [values[name] for name in layout.thresholds[:n_thresholds]]
    model = cells.get("model", "").strip().lower()
    parameters = None
    if model:
        parameters = ParameterRecord(
            model,
            *(values[k] for k in _NUMBER_FIELDS),
            thresholds=[t for t in thresholds if t is not None] or None,
        )
    elif given:
        add("model", f"is empty but parameters are given ({', '.join(given)})")
    record = ItemRecord(
        item_id=item_id,
        stem=cells.get("stem", ""),
        options=options,
        key=key,
        rationale=cells.get("rationale", ""),
        skill=cells.get("skill", "").strip(),
        content_tags=_split(cells.get("tags", "")),
        status=cells.get("status", "").strip().lower() or "draft",
        media=_split(cells.get("media", "")),
        parameters=parameters,
    )
    if len(problems) == before:
        for name, text in record_problems(record):
            if layout.letters and (m := _OPTION.fullmatch(name)) and m.group(1):
                name = f"option_{chr(ord('a') + int(m.group(1)) - 1)}"
            add(name, text)
    return record


def _csv_number(text: str, add: Callable[[str, str], None], column: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        add(column, f"{text!r} is not a number")
        return None
    if not math.isfinite(value):
        add(column, f"{text!r} is not a finite number")
        return None
    return value


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(";") if part.strip()]


def read_items_csv(text: str) -> list[ItemRecord]:
    """Read items (or parameters only) from CSV text.

    Parameters
    ----------
    text : str
        The whole file; a UTF-8 byte-order mark, CRLF line ends and quoted fields holding commas or
        line breaks are accepted. The first row is the header (line 1).

    Returns
    -------
    list of ItemRecord
        In file order. A file without a ``stem`` column gives parameters-only records.

    Raises
    ------
    InterchangeError
        Listing every problem, each naming the line where its record starts and the column.
    """
    if text.startswith("\ufeff"):
        text = text[1:]
    problems = _Problems()
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise InterchangeError("line 1: the header row is missing (the file is empty)", line=1)
        layout = _csv_layout(header, problems)
        if len(problems) > len(layout.unknown):  # a header the rows cannot be read by
            problems.raise_if_any()
        # Unknown columns alone are ignored while the rows are read, so that the rows' own
        # problems are reported with them, in one go.
        records: list[ItemRecord] = []
        first_line: dict[str, int] = {}
        end = reader.line_num
        for row in reader:
            line, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(layout.names) and any(c.strip() for c in row[len(layout.names) :]):
                problems.add(
                    f"line {line}: the row has {len(row)} fields but the header has "
                    f"{len(layout.names)}",
                    line=line,
                )
                continue
            row = [restore_cell(cell) for cell in row]
            record = _csv_record(dict(zip(layout.names, row, strict=False)), line, layout, problems)
            if record.item_id in first_line:
                problems.add(
                    f"line {line}, column 'item_id': {record.item_id!r} appears again "
                    f"(first on line {first_line[record.item_id]})",
                    line=line,
                    field="item_id",
                    item_id=record.item_id,
                )
            elif record.item_id:
                first_line[record.item_id] = line
            records.append(record)
    except csv.Error as exc:
        problems.add(f"line {reader.line_num}: malformed CSV: {exc}", line=reader.line_num)
    problems.raise_if_any()
    return records


#: A spreadsheet takes a cell that starts with one of these for a formula (OWASP, CSV injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def defuse_cell(text: str) -> str:
    """A text cell as written to CSV: prefixed with ``'`` when it starts with a formula trigger
    (``= + - @``, tab, carriage return), so a spreadsheet shows it as text and runs nothing.

    A cell that starts with ``'`` is prefixed too, so that :func:`restore_cell` gives back
    exactly what was written, whatever the text.
    """
    if text and (text[0] in FORMULA_TRIGGERS or text[0] == "'"):
        return "'" + text
    return text


def restore_cell(text: str) -> str:
    """The inverse of :func:`defuse_cell`: drop one ``'`` before a formula trigger or a ``'``.

    Other cells starting with ``'`` (typed so in a spreadsheet) are kept as they are.
    """
    if len(text) > 1 and text[0] == "'" and (text[1] in FORMULA_TRIGGERS or text[1] == "'"):
        return text[1:]
    return text


def _number_text(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _write_csv(header: list[str], rows: Iterable[list[str]]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _parameter_cells(p: ParameterRecord | None, n_thresholds: int) -> list[str]:
    if p is None:
        return [""] * (5 + n_thresholds)
    thresholds = [repr(float(t)) for t in p.thresholds or ()]
    return [
        p.model,
        *(_number_text(getattr(p, k)) for k in _NUMBER_FIELDS),
        *thresholds,
        *[""] * (n_thresholds - len(thresholds)),
    ]


def _max_thresholds(records: Sequence[ItemRecord]) -> int:
    return max((len(r.parameters.thresholds or ()) for r in records if r.parameters), default=0)


def write_items_csv(records: Iterable[ItemRecord]) -> str:
    """Write items as CSV with every column needed for a lossless round trip.

    Columns: ``item_id, stem, option_1..option_k, key, rationale, skill, tags, status, media,
    model, a, b, c, d, b1..bm`` (``k`` and ``m`` the largest option and threshold counts). Numbers
    are written with ``repr`` precision, so :func:`read_items_csv` gives back equal records.

    Raises
    ------
    InterchangeError
        When a record cannot be written faithfully (invalid parameters, key outside the options,
        a tag containing ``;``, control characters...), naming the item and the field.
    """
    records = list(records)
    _check_records(records, qti=False)
    n_options = max((len(r.options) for r in records), default=0)
    n_thresholds = _max_thresholds(records)
    header = [
        "item_id",
        "stem",
        *(f"option_{k}" for k in range(1, n_options + 1)),
        "key",
        "rationale",
        "skill",
        "tags",
        "status",
        "media",
        *_PARAMETER_COLUMNS,
        *(f"b{k}" for k in range(1, n_thresholds + 1)),
    ]
    d = defuse_cell
    rows = (
        [
            d(r.item_id),
            d(r.stem),
            *(d(o) for o in r.options),
            *[""] * (n_options - len(r.options)),
            "" if r.key is None else str(r.key + 1),
            d(r.rationale),
            d(r.skill),
            d(";".join(r.content_tags)),
            d(r.status),
            d(";".join(r.media)),
            *_parameter_cells(r.parameters, n_thresholds),
        ]
        for r in records
    )
    return _write_csv(header, rows)


def write_parameters_csv(records: Iterable[ItemRecord]) -> str:
    """Write the parameters-only CSV: ``item_id, skill, status, tags, model, a, b, c, d, b1..bm``.

    Item content (stem, options, key, rationale, media) is left out; reading the file back gives
    records with only these fields.

    Raises
    ------
    InterchangeError
        When a record's parameters or metadata are invalid, naming the item and the field.
    """
    records = list(records)
    _check_records(records, qti=False)
    n_thresholds = _max_thresholds(records)
    header = [
        "item_id",
        "skill",
        "status",
        "tags",
        *_PARAMETER_COLUMNS,
        *(f"b{k}" for k in range(1, n_thresholds + 1)),
    ]
    d = defuse_cell
    rows = (
        [
            d(r.item_id),
            d(r.skill),
            d(r.status),
            d(";".join(r.content_tags)),
            *_parameter_cells(r.parameters, n_thresholds),
        ]
        for r in records
    )
    return _write_csv(header, rows)


# -- QTI: names of the two dialects -------------------------------------------------------------


@dataclass(frozen=True)
class _Dialect:
    """Element and attribute names of QTI 3.0 (kebab-case, ``qti-`` prefix) or 2.x (camelCase)."""

    ns: str
    v3: bool

    def name(self, kebab: str) -> str:
        """Local name of a QTI element: ``item-body`` -> ``qti-item-body`` or ``itemBody``."""
        return f"qti-{kebab}" if self.v3 else self.attr(kebab)

    def attr(self, kebab: str) -> str:
        if self.v3:
            return kebab
        first, *rest = kebab.split("-")
        return first + "".join(part.capitalize() for part in rest)

    def tag(self, kebab: str) -> str:
        return f"{{{self.ns}}}{self.name(kebab)}"

    def html(self, name: str) -> str:
        return f"{{{self.ns}}}{name}"

    @property
    def interaction_suffix(self) -> str:
        return "-interaction" if self.v3 else "Interaction"


_DIALECTS = {"3.0": _Dialect(QTI3_NS, True), "2.1": _Dialect(QTI21_NS, False)}
_READ_DIALECTS = {
    (QTI3_NS, "qti-assessment-item"): _DIALECTS["3.0"],
    (QTI21_NS, "assessmentItem"): _DIALECTS["2.1"],
    (QTI22_NS, "assessmentItem"): _Dialect(QTI22_NS, False),
}
# elements whose content is text we write exactly: never indented
_TEXT_HOLDERS = {"p", "qti-simple-choice", "simpleChoice", "qti-value", "value", "img", "object",
                 "th", "td"}


def _choice_id(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _set_text(el: etree._Element, text: str, br: str) -> None:
    """Put ``text`` in ``el``, line breaks as ``<br/>`` elements."""
    first, *lines = text.split("\n")
    el.text = first
    for line in lines:
        etree.SubElement(el, br).tail = line


def _table_element(parent: etree._Element, table: Table, d: _Dialect) -> None:
    """A stem's table as QTI (XHTML) table markup: header cells ``<th scope="col">``, the
    alignment of each column as a class (``align-right``), as the pages render it."""
    element = etree.SubElement(parent, d.html("table"))

    def row(section: etree._Element, cells: Sequence[str], tag: str) -> None:
        tr = etree.SubElement(section, d.html("tr"))
        for text, align in zip(cells, table.align, strict=False):
            cell = etree.SubElement(tr, d.html(tag))
            if tag == "th":
                cell.set("scope", "col")
            if align:
                cell.set("class", f"align-{align}")
            cell.text = text

    row(etree.SubElement(element, d.html("thead")), table.header, "th")
    body = etree.SubElement(element, d.html("tbody"))
    for cells in table.rows:
        row(body, cells, "td")


def _read_table(el: etree._Element, d: _Dialect) -> Table:
    """A QTI (XHTML) table as a :class:`Table`: the header is the first row made of ``th``
    cells (in ``thead`` or not), the body every other row; cell text has its whitespace
    collapsed."""
    rows = list(el.iter(d.html("tr")))
    cells = [[c for c in tr if _local(c) in ("th", "td")] for tr in rows]
    header: list[etree._Element] = []
    if cells and all(_local(c) == "th" for c in cells[0]):
        header, cells = cells[0], cells[1:]
    width = max([len(header), *(len(r) for r in cells)], default=0)
    align = []
    for k in range(width):
        first = header[k] if k < len(header) else next((r[k] for r in cells if k < len(r)), None)
        classes = (first.get("class") or "").split() if first is not None else []
        style = (first.get("style") or "") if first is not None else ""
        found = [c.removeprefix("align-") for c in classes if c in ("align-left", "align-right",
                                                                     "align-center")]
        styled = re.search(r"text-align:\s*(left|right|center)", style)
        align.append(found[0] if found else styled.group(1) if styled else "")
    text = [[_text(c, d, False).replace("\n", " ") for c in r] for r in (header, *cells)]
    return Table(header=tuple(text[0]) or ("",) * width,
                 rows=tuple(tuple(r) for r in text[1:]), align=tuple(align))


def _indent(el: etree._Element, level: int = 0) -> None:
    """Indent structural elements only, so that text content stays exactly as written."""
    children = [c for c in el if isinstance(c.tag, str)]
    if not children or etree.QName(el).localname in _TEXT_HOLDERS:
        return
    el.text = "\n" + "  " * (level + 1)
    for child in children:
        _indent(child, level + 1)
        child.tail = "\n" + "  " * (level + 1)
    children[-1].tail = "\n" + "  " * level


def _media_element(parent: etree._Element, ref: str, d: _Dialect) -> None:
    mime = mimetypes.guess_type(ref, strict=False)[0] or "application/octet-stream"
    if mime.startswith("image/"):
        etree.SubElement(parent, d.html("img"), src=ref, alt="")
    else:
        etree.SubElement(parent, d.html("object"), data=ref, type=mime)


def _item_element(record: ItemRecord, version: str) -> etree._Element:
    d = _DIALECTS[version]
    root = etree.Element(d.tag("assessment-item"), nsmap={None: d.ns, "xsi": _XSI_NS})
    root.set(f"{{{_XSI_NS}}}schemaLocation", f"{d.ns} {_SCHEMA[d.ns]}")
    for name, value in (
        ("identifier", record.item_id),
        ("title", record.item_id),
        ("adaptive", "false"),
        ("time-dependent", "false"),
        ("tool-name", TOOL_NAME),
        ("tool-version", TOOL_VERSION),
    ):
        root.set(d.attr(name), value)
    declaration = etree.SubElement(root, d.tag("response-declaration"))
    for name, value in (
        ("identifier", "RESPONSE"),
        ("cardinality", "single"),
        ("base-type", "identifier"),
    ):
        declaration.set(d.attr(name), value)
    if record.key is not None:
        correct = etree.SubElement(declaration, d.tag("correct-response"))
        etree.SubElement(correct, d.tag("value")).text = _choice_id(record.key)
    outcome = etree.SubElement(root, d.tag("outcome-declaration"))
    for name, value in (("identifier", "SCORE"), ("cardinality", "single"), ("base-type", "float")):
        outcome.set(d.attr(name), value)
    body = etree.SubElement(root, d.tag("item-body"))
    br = d.html("br")
    if record.rationale:
        rubric = etree.SubElement(body, d.tag("rubric-block"), view="scorer tutor")
        if d.v3:
            rubric.set("use", "ext:rationale")
            rubric = etree.SubElement(rubric, d.tag("content-body"))
        else:
            rubric.set("class", "cat-rationale")
        _set_text(etree.SubElement(rubric, d.html("p")), record.rationale, br)
    for part in stem_blocks(record.stem) if record.stem else ():
        if isinstance(part, Table):
            _table_element(body, part, d)
        else:
            _set_text(etree.SubElement(body, d.html("p")), part, br)
    if record.media:
        media = etree.SubElement(body, d.html("div"))
        media.set("class", "cat-media")
        for ref in record.media:
            _media_element(media, ref, d)
    interaction = etree.SubElement(body, d.tag("choice-interaction"))
    for name, value in (
        ("response-identifier", "RESPONSE"),
        ("shuffle", "false"),
        ("max-choices", "1"),
    ):
        interaction.set(d.attr(name), value)
    for index, option in enumerate(record.options):
        choice = etree.SubElement(interaction, d.tag("simple-choice"), identifier=_choice_id(index))
        _set_text(choice, option, br)
    processing = etree.SubElement(root, d.tag("response-processing"))
    processing.set("template", _MATCH_CORRECT[version])
    _indent(root)
    return root


def _to_bytes(root: etree._Element) -> bytes:
    body = etree.tostring(root, xml_declaration=False, encoding="UTF-8")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body + b"\n"


def write_qti_item(record: ItemRecord, version: str = "3.0") -> bytes:
    """One item as a QTI single-choice item document (content only, no parameters).

    Parameters
    ----------
    record : ItemRecord
        Needs at least two options.
    version : {"3.0", "2.1"}
        QTI 3.0 ``qti-assessment-item`` or QTI 2.1 ``assessmentItem``.

    Returns
    -------
    bytes
        UTF-8 XML with declaration.

    Raises
    ------
    InterchangeError
        When the record cannot be written (fewer than 2 options, key outside them, ...).
    ValueError
        For an unknown ``version``.
    """
    if version not in _DIALECTS:
        raise ValueError(f"QTI version must be '3.0' or '2.1', got {version!r}")
    _check_records([record], qti=True)
    return _to_bytes(_item_element(record, version))


# -- QTI packages: writing ----------------------------------------------------------------------


def _safe_names(records: Sequence[ItemRecord]) -> list[str]:
    names, taken = [], set()
    for record in records:
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", record.item_id).lstrip(".") or "item"
        name, n = base, 1
        while name.lower() in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name.lower())
        names.append(name)
    return names


def _usage_data(records: Sequence[ItemRecord]) -> etree._Element | None:
    root = etree.Element(f"{{{USAGE3_NS}}}usageData", nsmap={None: USAGE3_NS, "xsi": _XSI_NS})
    root.set(f"{{{_XSI_NS}}}schemaLocation", f"{USAGE3_NS} {_SCHEMA[USAGE3_NS]}")
    root.set("glossary", USAGE_GLOSSARY)
    for record in records:
        p = record.parameters
        if p is None:
            continue
        values = [("irt_model", p.model)]
        values += [
            (f"irt_{k}", repr(float(v))) for k in _NUMBER_FIELDS if (v := getattr(p, k)) is not None
        ]
        values += [(f"irt_b{k}", repr(float(t))) for k, t in enumerate(p.thresholds or (), 1)]
        for name, value in values:
            stat = etree.SubElement(
                root,
                f"{{{USAGE3_NS}}}ordinaryStatistic",
                name=name,
                glossary=USAGE_GLOSSARY,
                context=USAGE_CONTEXT,
            )
            etree.SubElement(stat, f"{{{USAGE3_NS}}}targetObject", identifier=record.item_id)
            etree.SubElement(stat, f"{{{USAGE3_NS}}}value").text = value
    if not len(root):
        return None
    _indent(root)
    return root


def _manifest(
    records: Sequence[ItemRecord], paths: Sequence[str], media: Iterable[str], usage: bool
) -> etree._Element:
    cp = f"{{{CP3_NS}}}"
    cat = f"{{{CAT_NS}}}"
    root = etree.Element(
        f"{cp}manifest",
        nsmap={None: CP3_NS, "cat": CAT_NS, "xsi": _XSI_NS},
        identifier="cat-engine-package",
    )
    root.set(f"{{{_XSI_NS}}}schemaLocation", f"{CP3_NS} {_SCHEMA[CP3_NS]}")
    metadata = etree.SubElement(root, f"{cp}metadata")
    etree.SubElement(metadata, f"{cp}schema").text = "QTI Package"
    etree.SubElement(metadata, f"{cp}schemaversion").text = "3.0.0"
    etree.SubElement(root, f"{cp}organizations")
    resources = etree.SubElement(root, f"{cp}resources")
    media = set(media)
    for record, path in zip(records, paths, strict=True):
        resource = etree.SubElement(
            resources,
            f"{cp}resource",
            identifier="item-" + posixpath.basename(path)[:-4],
            type="imsqti_item_xmlv3p0",
            href=path,
        )
        data = etree.SubElement(etree.SubElement(resource, f"{cp}metadata"), f"{cat}item-data")
        if record.skill:
            etree.SubElement(data, f"{cat}skill").text = record.skill
        etree.SubElement(data, f"{cat}status").text = record.status
        for tag in record.content_tags:
            etree.SubElement(data, f"{cat}tag").text = tag
        etree.SubElement(resource, f"{cp}file", href=path)
        for ref in dict.fromkeys(record.media):
            if ref in media:
                etree.SubElement(resource, f"{cp}file", href=ref)
    if usage:
        resource = etree.SubElement(
            resources,
            f"{cp}resource",
            identifier="usage-data",
            type="qtiusagedata/xml",
            href="usage-data.xml",
        )
        etree.SubElement(resource, f"{cp}file", href="usage-data.xml")
    _indent(root)
    return root


def write_qti_package(
    records: Iterable[ItemRecord], media: Mapping[str, bytes] | None = None
) -> bytes:
    """Items as a QTI 3.0 content package (zip), parameters included as usage data.

    Parameters
    ----------
    records : iterable of ItemRecord
        Each needs at least two options; item ids must be unique.
    media : mapping of str to bytes, optional
        Media files to include, keyed by their path in the package, which items reference in
        ``ItemRecord.media``; each is listed as a ``<file>`` of the items using it.

    Returns
    -------
    bytes
        A zip with ``imsmanifest.xml``, ``items/<item_id>.xml`` and, when any item has parameters,
        ``usage-data.xml``. The bytes are deterministic (fixed timestamps).

    Raises
    ------
    InterchangeError
        Naming every record that cannot be written, and media paths that are unsafe or unused.
    """
    records = list(records)
    _check_records(records, qti=True)
    media = dict(media or {})
    referenced = {ref for r in records for ref in r.media}
    problems = _Problems()
    for path in media:
        if (
            _member_problem(path)
            or path in ("imsmanifest.xml", "usage-data.xml")
            or path.startswith("items/")
        ):
            problems.add(
                f"media path {path!r} is not allowed (use a relative path outside items/)",
                field="media",
            )
        elif path not in referenced:
            problems.add(f"media file {path!r} is not referenced by any item", field="media")
    problems.raise_if_any()
    paths = [f"items/{name}.xml" for name in _safe_names(records)]
    usage = _usage_data(records)
    files = {"imsmanifest.xml": _to_bytes(_manifest(records, paths, media, usage is not None))}
    for record, path in zip(records, paths, strict=True):
        files[path] = _to_bytes(_item_element(record, "3.0"))
    if usage is not None:
        files["usage-data.xml"] = _to_bytes(usage)
    files.update(media)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue()


# -- QTI: reading -------------------------------------------------------------------------------


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _parse_xml(data: bytes, source: str, problems: _Problems) -> etree._Element | None:
    """Parse untrusted XML: no DTD, no entities, no network; a DOCTYPE is refused."""
    prefix = f"{source}: " if source else ""
    doctype = re.search(rb"<!(DOCTYPE|ENTITY)", data)
    if doctype:
        line = data.count(b"\n", 0, doctype.start()) + 1
        problems.add(
            f"{prefix}line {line}: a DOCTYPE or ENTITY declaration is not allowed",
            line=line,
            source=source or None,
        )
        return None
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        line = exc.lineno or None
        problems.add(
            f"{prefix}malformed XML at line {line}: {exc.msg}", line=line, source=source or None
        )
        return None
    if root.getroottree().docinfo.internalDTD is not None or root.getroottree().docinfo.doctype:
        problems.add(f"{prefix}a DOCTYPE declaration is not allowed", line=1, source=source or None)
        return None
    return root


def _segments(el: etree._Element, skip: set[str], br: str, out: list[str]) -> None:
    """Append the text of ``el`` to ``out`` (a list of lines), ``<br/>`` starting a new line."""
    out[-1] += el.text or ""
    for child in el:
        if child.tag == br:
            out.append("")
        elif isinstance(child.tag, str) and _local(child) not in skip:
            _segments(child, skip, br, out)
        out[-1] += child.tail or ""


def _text(el: etree._Element, d: _Dialect, exact: bool, skip: set[str] = frozenset()) -> str:
    lines = [""]
    _segments(el, set(skip), d.html("br"), lines)
    if exact:
        return "\n".join(lines)
    return "\n".join(" ".join(line.split()) for line in lines).strip("\n")


def _is_rationale(el: etree._Element, d: _Dialect) -> bool:
    return _local(el) == d.name("rubric-block") and (
        el.get("use") == "ext:rationale" or "cat-rationale" in (el.get("class") or "").split()
    )


def _read_item(
    root: etree._Element, d: _Dialect, source: str, problems: _Problems
) -> ItemRecord | None:
    before = len(problems)
    item_id = (root.get("identifier") or "").strip()

    def at(el: etree._Element, text: str, attr: str | None = None) -> None:
        problems.at(el, source, text, attr=attr, item_id=item_id or None)

    if not item_id:
        at(root, "the item has no identifier", "identifier")
    exact = root.get(d.attr("tool-name")) == TOOL_NAME
    body = root.find(d.tag("item-body"))
    if body is None:
        at(root, f"the item has no {d.name('item-body')}")
        return None
    choice_name = d.name("choice-interaction")
    interactions = [e for e in body.iter() if _local(e).endswith(d.interaction_suffix)]
    others = [e for e in interactions if _local(e) != choice_name]
    choices = [e for e in interactions if _local(e) == choice_name]
    if others:
        at(
            others[0],
            f"unsupported interaction {_local(others[0])}: only single-choice items "
            f"({choice_name} with {d.attr('max-choices')} 1) are supported",
        )
        return None
    if not choices:
        at(body, f"no {choice_name}: only single-choice items are supported")
        return None
    if len(choices) > 1:
        at(choices[1], "a second interaction: only items with one choice interaction are supported")
        return None
    interaction = choices[0]
    max_choices = (interaction.get(d.attr("max-choices")) or "1").strip()
    if max_choices != "1":
        at(
            interaction,
            f"is {max_choices!r}: only single-choice (1) is supported",
            d.attr("max-choices"),
        )
    skip = {
        d.name("feedback-inline"),
        d.name("feedback-block"),
        d.name("modal-feedback"),
        d.name("template-inline"),
        d.name("template-block"),
    }
    simple = [c for c in interaction if _local(c) == d.name("simple-choice")]
    if not simple:
        at(interaction, f"has no {d.name('simple-choice')}")
    ids: list[str] = []
    for choice in simple:
        identifier = (choice.get("identifier") or "").strip()
        if not identifier:
            at(choice, "the choice has no identifier", "identifier")
        elif identifier in ids:
            at(choice, f"the choice identifier {identifier!r} appears twice", "identifier")
        ids.append(identifier)
    options = [_text(c, d, exact, skip) for c in simple]
    key = _read_key(root, interaction, ids, d, at)
    rationale, parts = "", []  # parts of the stem: (text, is_table)
    prompt = interaction.find(d.tag("prompt"))
    block_skip = skip | {choice_name, d.name("rubric-block")}
    table = d.html("table")

    def add_block(el: etree._Element) -> None:
        """A block of a stem: tables as Markdown tables, text as text that shows literally."""
        if el.tag == table:
            parts.append((markdown_table(_read_table(el, d)), True))
        elif any(True for _ in el.iter(table)):  # a container holding a table: its blocks
            if el.text and el.text.strip():
                parts.append((escape_text(" ".join(el.text.split())), False))
            for inner in el:
                if isinstance(inner.tag, str) and _local(inner) not in block_skip:
                    add_block(inner)
                if inner.tail and inner.tail.strip():
                    parts.append((escape_text(" ".join(inner.tail.split())), False))
        else:
            parts.append((escape_text(_text(el, d, False, block_skip)), False))

    for child in body:
        if not isinstance(child.tag, str):
            continue
        if _is_rationale(child, d):
            holder = child.find(f"{d.tag('content-body')}/{d.html('p')}" if d.v3 else d.html("p"))
            rationale = (
                _text(holder, d, True) if exact and holder is not None else _text(child, d, False)
            )
        elif exact:  # written here: paragraphs exactly as written, tables in canonical form
            if child.tag == d.html("p"):
                parts.append((_text(child, d, True), False))
            elif child.tag == table:
                parts.append((markdown_table(_read_table(child, d)), True))
        elif child is interaction:
            if prompt is not None:
                parts.append((escape_text(_text(prompt, d, False, skip)), False))
        elif _local(child) not in block_skip:
            add_block(child)
            if prompt is not None and interaction in child.iterdescendants():
                parts.append((escape_text(_text(prompt, d, False, skip)), False))
    stem, previous_table = "", False
    for k, (text, is_table) in enumerate(part for part in parts if exact or part[0]):
        if k:
            stem += "\n\n" if exact or is_table or previous_table else "\n"
        stem += text
        previous_table = is_table
    media = [
        ref
        for e in body.iter(
            d.html("img"), d.html("object"), d.html("audio"), d.html("video"), d.html("source")
        )
        if (ref := (e.get("data") if _local(e) == "object" else e.get("src")) or "").strip()
    ]
    if len(problems) > before:
        return None
    record = ItemRecord(
        item_id=item_id, stem=stem, options=options, key=key, rationale=rationale, media=media
    )
    for name, text in record_problems(record, qti=True):  # e.g. a choice holding only an image
        m = re.fullmatch(r"option_(\d+)", name)
        index = int(m.group(1)) - 1 if m else -1
        where = simple[index] if 0 <= index < len(simple) else interaction
        at(where if name.startswith(("option", "key")) else root, f"{name} {text}")
    return None if len(problems) > before else record


def _read_key(root, interaction, ids: list[str], d: _Dialect, at) -> int | None:
    response = interaction.get(d.attr("response-identifier"))
    declarations = [
        e
        for e in root.iterchildren(d.tag("response-declaration"))
        if e.get("identifier") == response
    ]
    if not declarations:
        at(
            interaction,
            f"{response!r} names no {d.name('response-declaration')}",
            d.attr("response-identifier"),
        )
        return None
    declaration = declarations[0]
    if declaration.get("cardinality") != "single":
        at(
            declaration,
            f"is {declaration.get('cardinality')!r}: only single-choice items "
            "('single') are supported",
            "cardinality",
        )
    if declaration.get(d.attr("base-type")) != "identifier":
        at(
            declaration,
            f"is {declaration.get(d.attr('base-type'))!r}, expected 'identifier'",
            d.attr("base-type"),
        )
    correct = declaration.find(d.tag("correct-response"))
    values = [] if correct is None else list(correct.iterchildren(d.tag("value")))
    if len(values) > 1:
        at(correct, "more than one correct value: only single-choice items are supported")
        return None
    if not values:
        return None
    value = (values[0].text or "").strip()
    if value not in ids:
        at(
            values[0],
            f"the correct response {value!r} is not one of the choices ({', '.join(ids)})",
        )
        return None
    return ids.index(value)


_Stats = dict[str, dict[str, tuple[str, etree._Element, str]]]


def _read_usage(root: etree._Element, source: str, problems: _Problems, stats: _Stats) -> None:
    """Gather the ``irt_*`` statistics of a usage-data document into ``stats[item_id][name]``."""
    ns = etree.QName(root).namespace
    default_glossary = root.get("glossary")
    for stat in root.iterchildren(etree.Element):
        name = stat.get("name") or ""
        glossary = stat.get("glossary") or default_glossary
        if not name.startswith("irt_") or glossary not in (None, USAGE_GLOSSARY):
            continue
        if _local(stat) != "ordinaryStatistic":
            problems.at(stat, source, f"{name} must be an ordinaryStatistic")
            continue
        targets = list(stat.iterchildren(f"{{{ns}}}targetObject"))
        value = stat.find(f"{{{ns}}}value")
        if len(targets) != 1 or not (targets[0].get("identifier") or "").strip():
            problems.at(stat, source, f"{name} needs exactly one targetObject with an identifier")
            continue
        if value is None:
            problems.at(stat, source, f"{name} has no value")
            continue
        item_id = targets[0].get("identifier").strip()
        if name in stats.setdefault(item_id, {}):
            problems.at(stat, source, f"{name} of item {item_id!r} is given twice", item_id=item_id)
            continue
        stats[item_id][name] = ((value.text or "").strip(), stat, source)


def _parameters_from_usage(
    item_id: str, found: dict[str, tuple[str, etree._Element, str]], problems: _Problems
) -> ParameterRecord | None:
    """One item's parameters from its ``irt_*`` statistics, validated."""

    def at(name: str, text: str) -> None:
        _, el, source = found.get(name) or found.get("irt_model") or next(iter(found.values()))
        problems.at(el, source, text, item_id=item_id)

    numbers: dict[str, float] = {}
    bad = False
    for name, (text, _, _) in found.items():
        key = name[4:]
        if key == "model":
            continue
        if key not in _NUMBER_FIELDS and not _THRESHOLD.fullmatch(key):
            at(
                name,
                f"unknown IRT statistic {name!r} (known: irt_model, irt_a, irt_b, irt_c, "
                "irt_d, irt_b1..irt_bk)",
            )
            bad = True
            continue
        try:
            numbers[key] = float(text)
        except ValueError:
            at(name, f"{name} of item {item_id!r}: {text!r} is not a number")
            bad = True
            continue
        if not math.isfinite(numbers[key]):
            at(name, f"{name} of item {item_id!r}: {text!r} is not a finite number")
            bad = True
    if "irt_model" not in found:
        at("", f"item {item_id!r} has IRT statistics but no irt_model")
        return None
    n_thresholds = max((int(k[1:]) for k in numbers if _THRESHOLD.fullmatch(k)), default=0)
    missing = [k for k in range(1, n_thresholds + 1) if f"b{k}" not in numbers]
    if missing:
        at(
            f"irt_b{n_thresholds}",
            f"item {item_id!r} has irt_b{n_thresholds} but no irt_b{missing[0]}",
        )
        bad = True
    if bad:
        return None
    p = ParameterRecord(
        found["irt_model"][0].lower(),
        *(numbers.get(k) for k in _NUMBER_FIELDS),
        thresholds=[numbers[f"b{k}"] for k in range(1, n_thresholds + 1)] or None,
    )
    for key, text in parameter_problems(p):
        at(f"irt_{key}", f"irt_{key} of item {item_id!r} {text}")
    return p


def _member_problem(name: str) -> str | None:
    """Why a path inside a package is unsafe, or None."""
    if not name or name.startswith(("/", "\\")) or "\\" in name or "\x00" in name:
        return "is absolute or contains backslashes"
    if re.match(r"[A-Za-z]:", name):
        return "has a drive letter"
    if ".." in name.split("/"):
        return "climbs out of the package ('..')"
    return None


class _Archive:
    """Reads members of an untrusted zip within a total budget of uncompressed bytes."""

    def __init__(self, data: bytes, filename: str) -> None:
        label = filename or "the package"
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
            infos = self.zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
            raise InterchangeError(f"{label}: not a readable zip file ({exc})") from None
        if len(infos) > MAX_PACKAGE_MEMBERS:
            raise InterchangeError(
                f"{label}: {len(infos)} files, more than the {MAX_PACKAGE_MEMBERS} allowed"
            )
        if sum(i.file_size for i in infos) > MAX_PACKAGE_BYTES:
            raise InterchangeError(
                f"{label}: more than {MAX_PACKAGE_BYTES // 2**20} MB uncompressed"
            )
        problems = _Problems()
        for info in infos:
            if problem := _member_problem(info.filename):
                problems.add(
                    f"{label}: unsafe file name {info.filename!r}: {problem}", source=info.filename
                )
            elif info.flag_bits & 0x1:
                problems.add(f"{label}: {info.filename!r} is encrypted", source=info.filename)
        problems.raise_if_any()
        self.infos = {i.filename: i for i in infos if not i.is_dir()}
        self.budget = MAX_PACKAGE_BYTES

    def read(self, name: str) -> bytes:
        info = self.infos[name]
        chunks, size = [], 0
        try:
            with self.zip.open(info) as member:
                while chunk := member.read(65536):
                    size += len(chunk)
                    if size > info.file_size or size > self.budget:
                        raise InterchangeError(
                            f"{name}: expands beyond its declared size or the "
                            f"{MAX_PACKAGE_BYTES // 2**20} MB limit",
                            source=name,
                        )
                    chunks.append(chunk)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            if isinstance(exc, InterchangeError):
                raise
            raise InterchangeError(
                f"{name}: cannot be read from the zip ({exc})", source=name
            ) from None
        self.budget -= size
        return b"".join(chunks)


def _read_manifest(archive: _Archive, problems: _Problems):
    """Item paths (with their metadata element) and usage-data paths listed in the manifest."""
    root = _parse_xml(archive.read("imsmanifest.xml"), "imsmanifest.xml", problems)
    if root is None:
        return [], []
    if _local(root) != "manifest":
        problems.at(root, "imsmanifest.xml", "the root element must be a manifest")
        return [], []
    items, usage = [], []
    for resources in (e for e in root if _local(e) == "resources"):
        base = resources.get(_XML_BASE) or ""
        for resource in (e for e in resources if _local(e) == "resource"):
            kind = resource.get("type") or ""
            is_item = kind.startswith("imsqti_item_xml")
            if not is_item and kind != "qtiusagedata/xml" and "usagedata" not in kind.lower():
                continue
            href = resource.get("href")
            if not href:
                files = [e.get("href") for e in resource if _local(e) == "file"]
                href = files[0] if files else None
            if not href:
                problems.at(resource, "imsmanifest.xml", "the resource has no href", attr="href")
                continue
            path = posixpath.normpath(posixpath.join(base, resource.get(_XML_BASE) or "", href))
            if path not in archive.infos and unquote(path) in archive.infos:
                path = unquote(path)
            if problem := _member_problem(path):
                problems.at(resource, "imsmanifest.xml", f"{href!r} {problem}", attr="href")
            elif path not in archive.infos:
                problems.at(
                    resource, "imsmanifest.xml", f"{href!r} is not in the package", attr="href"
                )
            elif is_item:
                metadata = next(
                    (
                        m
                        for e in resource
                        if _local(e) == "metadata"
                        for m in e.iterchildren(f"{{{CAT_NS}}}item-data")
                    ),
                    None,
                )
                items.append((path, metadata))
            else:
                usage.append(path)
    return items, usage


def _apply_metadata(record: ItemRecord, metadata: etree._Element, problems: _Problems) -> None:
    def texts(name: str) -> list[tuple[str, etree._Element]]:
        return [((e.text or "").strip(), e) for e in metadata.iterchildren(f"{{{CAT_NS}}}{name}")]

    for value, _ in texts("skill")[:1]:
        record.skill = value
    for value, el in texts("status")[:1]:
        if value not in STATUSES:
            problems.at(
                el,
                "imsmanifest.xml",
                f"{value!r} is not one of {', '.join(STATUSES)}",
                item_id=record.item_id,
            )
        record.status = value
    record.content_tags = [value for value, _ in texts("tag") if value]
    for value, el in texts("tag"):
        if ";" in value:
            problems.at(
                el, "imsmanifest.xml", f"the tag {value!r} contains ';'", item_id=record.item_id
            )


def _item_dialect(root: etree._Element) -> _Dialect | None:
    qname = etree.QName(root)
    return _READ_DIALECTS.get((qname.namespace, qname.localname))


def _is_usage(root: etree._Element) -> bool:
    qname = etree.QName(root)
    return qname.localname == "usageData" and qname.namespace in USAGE_NAMESPACES


def read_qti(data: bytes, filename: str = "") -> list[ItemRecord]:
    """Read single-choice items from a QTI item document or a zip package.

    Parameters
    ----------
    data : bytes
        A QTI 3.0 ``qti-assessment-item``, a QTI 2.1 (or 2.2) ``assessmentItem``, or a zip:
        a content package with ``imsmanifest.xml`` (items, usage data and our item metadata are
        read from the resources it lists) or a plain zip of item XML files (every ``.xml`` file
        that is an item or usage data is read; others are ignored).
    filename : str, optional
        Name of the upload, used in error messages.

    Returns
    -------
    list of ItemRecord
        In manifest (or zip) order; parameters come from usage data, skill, tags and status from
        the manifest (defaults for single files).

    Raises
    ------
    InterchangeError
        Listing every problem, each naming the file, the element and its source line.
    """
    problems = _Problems()
    items: list[tuple[ItemRecord, str, etree._Element]] = []
    stats: _Stats = {}
    if not zipfile.is_zipfile(io.BytesIO(data)):
        if len(data) > MAX_PACKAGE_BYTES:
            raise InterchangeError(
                f"{filename or 'the file'}: larger than {MAX_PACKAGE_BYTES // 2**20} MB"
            )
        root = _parse_xml(data, filename, problems)
        if root is not None and (dialect := _item_dialect(root)) is None:
            problems.at(
                root,
                filename,
                "is not a QTI assessment item: expected "
                "qti-assessment-item (QTI 3.0), assessmentItem (QTI 2.1) "
                "or a zip package",
            )
        elif root is not None and (record := _read_item(root, dialect, filename, problems)):
            items.append((record, filename, root))
        problems.raise_if_any()
        return [record for record, _, _ in items]
    archive = _Archive(data, filename)
    if "imsmanifest.xml" in archive.infos:
        item_paths, usage_paths = _read_manifest(archive, problems)
        strict = True
    else:
        names = [
            n for n in archive.infos if n.lower().endswith(".xml") and not n.startswith("__MACOSX/")
        ]
        item_paths, usage_paths, strict = [(n, None) for n in names], [], False
    for path, metadata in item_paths:
        root = _parse_xml(archive.read(path), path, problems)
        if root is None:
            continue
        if (dialect := _item_dialect(root)) is not None:
            record = _read_item(root, dialect, path, problems)
            if record is not None:
                if metadata is not None:
                    _apply_metadata(record, metadata, problems)
                items.append((record, path, root))
        elif _is_usage(root) and not strict:
            _read_usage(root, path, problems, stats)
        elif strict:
            problems.at(
                root,
                path,
                "the manifest lists this file as an item, but it is not a QTI assessment item",
            )
    for path in usage_paths:
        root = _parse_xml(archive.read(path), path, problems)
        if root is not None and not _is_usage(root):
            problems.at(
                root,
                path,
                "the manifest lists this file as usage data, but it is not a usageData document",
            )
        elif root is not None:
            _read_usage(root, path, problems, stats)
    if not strict and not items and not len(problems):
        problems.add(f"{filename or 'the zip'}: holds no imsmanifest.xml and no QTI items")
    first_source: dict[str, str] = {}
    for record, source, root in items:
        if record.item_id in first_source:
            problems.at(
                root,
                source,
                f"the item identifier {record.item_id!r} is also used by "
                f"{first_source[record.item_id]}",
                attr="identifier",
                item_id=record.item_id,
            )
        first_source.setdefault(record.item_id, source)
    by_id = {record.item_id: record for record, _, _ in items}
    for item_id, found in stats.items():
        if item_id not in by_id:
            _, el, source = next(iter(found.values()))
            problems.at(
                el,
                source,
                f"usage data for {item_id!r}, which is not an item of the package",
                item_id=item_id,
            )
        else:
            by_id[item_id].parameters = _parameters_from_usage(item_id, found, problems)
    problems.raise_if_any()
    return [record for record, _, _ in items]
