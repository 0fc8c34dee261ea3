"""Items and their IRT parameters as CSV.

One row per item under a header row (column names are case-insensitive): ``item_id`` (required),
``stem``, ``option_1..option_k`` (or ``option_a..option_z``), ``key`` (1-based option number or a
letter), ``rationale``, ``skill``, ``tags`` and ``media`` (separated by ``;``), ``status``, then
``model, a, b, c, d, b1..bk``, and ``language`` (the language of the row's text, such as ``en``,
``ar`` or ``pt-BR``). A row whose ``item_id`` came earlier with another language is that item's
translation: it states ``stem``, the options (as many as the item's) and ``rationale``; its
``key`` is empty or the item's, and it leaves skill, tags, status, media and parameters empty.
A file without a ``stem`` column is a parameters-only file
(``item_id, skill, status, tags`` and the parameter columns). Text cells are kept exactly;
identifiers, numbers, tags, skill and status are stripped of surrounding blanks. An unknown column
is a problem that suggests the column probably meant (``difficulty`` -> ``b``).

Text cells that a spreadsheet would take for a formula are written with a ``'`` before them
(:func:`defuse_cell`, OWASP "CSV injection") and read back without it (:func:`restore_cell`), so
that round trips are exact.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from item_bank.interchange.records import (
    NUMBER_FIELDS,
    THRESHOLD_NAME,
    InterchangeError,
    ItemRecord,
    ParameterRecord,
    Problems,
    TranslationRecord,
    check_records,
    record_problems,
)

_OPTION = re.compile(r"option_(?:([1-9][0-9]*)|([a-z]))")
_CONTENT_COLUMNS = ("stem", "key", "rationale", "media")
_PARAMETER_COLUMNS = ("model", "a", "b", "c", "d")
_BASE_COLUMNS = ("item_id", "language", "skill", "status", "tags", *_CONTENT_COLUMNS,
                 *_PARAMETER_COLUMNS)
#: Cells a translation row leaves empty (they are the item's).
_ITEM_ONLY = ("skill", "status", "tags", "media", *_PARAMETER_COLUMNS)


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


def _csv_layout(header: list[str], problems: Problems) -> _Layout:
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
        elif m := THRESHOLD_NAME.fullmatch(name):
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
    cells: dict[str, str], line: int, layout: _Layout, problems: Problems
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
        for name in (*NUMBER_FIELDS, *layout.thresholds)
    }
    given = [k for k in (*NUMBER_FIELDS, *layout.thresholds) if cells.get(k, "").strip()]
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
            *(values[k] for k in NUMBER_FIELDS),
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
        language=cells.get("language", "").strip(),
    )
    if len(problems) == before:
        for name, text in record_problems(record):
            if layout.letters and (m := _OPTION.fullmatch(name)) and m.group(1):
                name = f"option_{chr(ord('a') + int(m.group(1)) - 1)}"
            add(name, text)
    return record


def _add_translation(item: ItemRecord, row: ItemRecord, cells: dict[str, str], line: int,
                     problems: Problems) -> None:
    """Attach a translation row to the item's first row, naming the line and column of any
    cell a translation must not state."""

    def add(column: str, text: str) -> None:
        problems.add(f"line {line}, column {column!r}: {text}", line=line, field=column,
                     item_id=row.item_id)

    where = f"a translation ({row.language!r}) of item {row.item_id!r}"
    stated = [c for c in _ITEM_ONLY if cells.get(c, "").strip()]
    for column in stated:
        add(column, f"must be empty in {where}: it is the item's")
    if len(row.options) != len(item.options):
        add(f"option_{min(len(row.options), len(item.options)) + 1}",
            f"{where} needs {len(item.options)} options, as the item has; "
            f"got {len(row.options)}")
    if row.key is not None and row.key != item.key:
        add("key", f"{where} keeps the item's key; leave it empty or give the item's")
    if not row.stem.strip():
        add("stem", f"is empty in {where}")
    item.translations[row.language] = TranslationRecord(row.stem, list(row.options),
                                                        row.rationale, line)


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
    problems = Problems()
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
        firsts: dict[str, ItemRecord] = {}
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
            cells = dict(zip(layout.names, row, strict=False))
            record = _csv_record(cells, line, layout, problems)
            first = firsts.get(record.item_id)
            if first is not None and record.language and record.language != first.language \
                    and record.language not in first.translations:
                _add_translation(first, record, cells, line, problems)
            elif first is not None:
                problems.add(
                    f"line {line}, column 'item_id': {record.item_id!r} appears again "
                    f"(first on line {first_line[record.item_id]})"
                    + (f" in language {record.language!r}" if record.language else ""),
                    line=line,
                    field="item_id",
                    item_id=record.item_id,
                )
            else:
                if record.item_id:
                    first_line[record.item_id] = line
                    firsts[record.item_id] = record
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
        *(_number_text(getattr(p, k)) for k in NUMBER_FIELDS),
        *thresholds,
        *[""] * (n_thresholds - len(thresholds)),
    ]


def _max_thresholds(records: Sequence[ItemRecord]) -> int:
    return max((len(r.parameters.thresholds or ()) for r in records if r.parameters), default=0)


def _write_with_parameters(
    records: Sequence[ItemRecord],
    header: list[str],
    cells: Callable[[ItemRecord], list[str]],
) -> str:
    """CSV of ``header`` and each record's ``cells``, formula-defused, then its parameters."""
    n_thresholds = _max_thresholds(records)
    header = [*header, *_PARAMETER_COLUMNS, *(f"b{k}" for k in range(1, n_thresholds + 1))]
    rows = (
        [*map(defuse_cell, cells(r)), *_parameter_cells(r.parameters, n_thresholds)]
        for r in records
    )
    return _write_csv(header, rows)


def write_items_csv(records: Iterable[ItemRecord]) -> str:
    """Write items as CSV with every column needed for a lossless round trip.

    Columns: ``item_id, stem, option_1..option_k, key, rationale, skill, tags, status, media,
    model, a, b, c, d, b1..bm`` (``k`` and ``m`` the largest option and threshold counts), and
    ``language`` after ``item_id`` when any item has a language other than ``en`` or a
    translation: each translation is a row after its item's, with the item's code, its language,
    stem, options and rationale, and the other cells empty. Numbers are written with ``repr``
    precision, so :func:`read_items_csv` gives back equal records.

    Raises
    ------
    InterchangeError
        When a record cannot be written faithfully (invalid parameters, key outside the options,
        a tag containing ``;``, control characters...), naming the item and the field.
    """
    records = list(records)
    check_records(records, qti=False)
    n_options = max((len(r.options) for r in records), default=0)
    if any(r.translations or r.language not in ("", "en") for r in records):
        return _write_with_languages(records, n_options)
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
    ]
    return _write_with_parameters(
        records,
        header,
        lambda r: [
            r.item_id,
            r.stem,
            *r.options,
            *[""] * (n_options - len(r.options)),
            "" if r.key is None else str(r.key + 1),
            r.rationale,
            r.skill,
            ";".join(r.content_tags),
            r.status,
            ";".join(r.media),
        ],
    )


def _write_with_languages(records: Sequence[ItemRecord], n_options: int) -> str:
    """Items with their language and a row per translation (see :func:`write_items_csv`)."""
    n_thresholds = _max_thresholds(records)
    header = ["item_id", "language", "stem", *(f"option_{k}" for k in range(1, n_options + 1)),
              "key", "rationale", "skill", "tags", "status", "media", *_PARAMETER_COLUMNS,
              *(f"b{k}" for k in range(1, n_thresholds + 1))]

    def rows() -> Iterable[list[str]]:
        for r in records:
            yield [*map(defuse_cell, [
                r.item_id, r.language or "en", r.stem, *r.options,
                *[""] * (n_options - len(r.options)),
                "" if r.key is None else str(r.key + 1), r.rationale, r.skill,
                ";".join(r.content_tags), r.status, ";".join(r.media)]),
                *_parameter_cells(r.parameters, n_thresholds)]
            for language, text in sorted(r.translations.items()):
                yield [*map(defuse_cell, [
                    r.item_id, language, text.stem, *text.options,
                    *[""] * (n_options - len(text.options)), "", text.rationale, "", "", "", ""]),
                    *[""] * (len(_PARAMETER_COLUMNS) + n_thresholds)]

    return _write_csv(header, rows())


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
    check_records(records, qti=False)
    return _write_with_parameters(
        records,
        ["item_id", "skill", "status", "tags"],
        lambda r: [r.item_id, r.skill, r.status, ";".join(r.content_tags)],
    )
