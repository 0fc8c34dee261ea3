"""Rubrics in versions: creating, versioning, listing, archiving, and their JSON and CSV forms.

A rubric (:class:`evidence.models.Rubric`) holds only its name; what it says lives in its
versions, which never change once stored (the database refuses UPDATE on them and on their
criteria). Changing a rubric adds a whole new version; the old one stays, and every score keeps
the version it was given under.

Who may do what: teachers, assessors and administrators see every rubric and may create,
version, archive and unarchive them (a rubric is a shared scoring guide of the school, not
something of one class); students may not (:class:`storage.errors.Forbidden`).

Every check collects all the problems of a request and raises them together as
:class:`RubricInvalid`, each with the field it concerns: ``criteria[2].levels[1].score`` for
JSON, ``row 7, score`` for CSV (rows counted as a spreadsheet does, the header being row 1).
Nothing here commits: one call is one unit of work, the caller commits.

The JSON form::

    {"name": str, "description": str,
     "criteria": [{"code", "name", "description", "skill",
                   "levels": [{"score": int, "label": str, "descriptor": str}, ...]}, ...]}

The CSV form has one row per level under the header
``criterion,criterion_name,criterion_description,skill,score,label,descriptor`` (UTF-8); the rows
of a criterion are together, and its name, description and skill are repeated on each of them.
Cells that a spreadsheet would take for a formula are written with a ``'`` before them and read
back without it (:func:`item_bank.interchange.csv_format.defuse_cell`), so exports round-trip
exactly.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, selectinload

from evidence.models import Rubric, RubricCriterion, RubricVersion
from item_bank.interchange.csv_format import defuse_cell, restore_cell
from item_bank.models import Item
from storage import utcnow
from storage.accounts import Role, User
from storage.errors import Conflict, Forbidden, Invalid, NotFound

#: Who may see and change rubrics.
STAFF = (Role.TEACHER, Role.ASSESSOR, Role.ADMIN)

MAX_NAME = 200
MAX_DESCRIPTION = 5_000
MAX_NOTE = 2_000
MAX_CODE = 80
MAX_CRITERION_NAME = 200
MAX_CRITERIA = 30
MIN_LEVELS = 2
MAX_LEVELS = 10
MAX_LABEL = 80
MAX_DESCRIPTOR = 2_000
MAX_SCORE = 1_000
#: A criterion code: letters, digits, ``-`` and ``_`` (it names the criterion in files).
CODE = re.compile(r"[A-Za-z0-9_-]+")
_INTEGER = re.compile(r"[+-]?[0-9]+")

CSV_COLUMNS = ("criterion", "criterion_name", "criterion_description", "skill", "score",
               "label", "descriptor")
#: Which CSV column holds each field of a criterion or level.
_COLUMN_OF = {"code": "criterion", "name": "criterion_name",
              "description": "criterion_description", "skill": "skill", "levels": "score",
              "score": "score", "label": "label", "descriptor": "descriptor"}
_CRITERION_KEYS = ("code", "name", "description", "skill", "levels")
_LEVEL_KEYS = ("score", "label", "descriptor")
_DOCUMENT_KEYS = ("name", "description", "criteria")
MAX_PROBLEMS = 50


# -- problems ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a rubric, and where: criterion and level (0-based) and the key."""

    message: str
    key: str
    criterion: int | None = None
    level: int | None = None
    code: str | None = None

    def path(self) -> str:
        """The JSON path of the field: ``criteria[2].levels[1].score``."""
        if self.criterion is None:
            return self.key
        base = f"criteria[{self.criterion}]"
        if self.level is not None:
            base += f".levels[{self.level}]"
        return base if self.key == "" else f"{base}.{self.key}"

    def located(self) -> str:
        """The message, prefixed with the path and the criterion's code when known."""
        where = self.path()
        if self.code:
            where += f" (criterion {self.code!r})"
        return f"{where}: {self.message}"


class RubricInvalid(Invalid):
    """A rubric (or a file holding one) with problems; ``errors`` lists each with its field.

    Attributes
    ----------
    errors : list of dict
        ``{"field": "criteria[2].levels[1].score" or "row 7, score", "message": ...}``, every
        problem found (at most :data:`MAX_PROBLEMS`).
    """

    def __init__(self, errors: list[dict[str, str]]) -> None:
        shown = "; ".join(e["message"] for e in errors[:3])
        rest = len(errors) - 3
        if rest > 0:
            shown += f" (and {rest} more problem{'s' if rest > 1 else ''})"
        super().__init__(shown, field=errors[0]["field"])
        self.errors = errors[:MAX_PROBLEMS]


def _raise_json(problems: list[Problem]) -> None:
    if problems:
        raise RubricInvalid([{"field": p.path(), "message": p.located()} for p in problems])


# -- checking ------------------------------------------------------------------------------------


def bank_skills(session: Session) -> list[str]:
    """Every skill some item of the bank has, sorted: the skills a criterion may name."""
    return list(session.scalars(select(Item.skill).distinct().order_by(Item.skill)))


def _text(value: Any, key: str, *, required: bool, limit: int, problems: list[Problem],
          **where: Any) -> str:
    """A text field, stripped; a problem (and ``""``) when missing, not text, or too long."""
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        kind = "missing" if value is None else f"not text ({type(value).__name__})"
        problems.append(Problem(f"is {kind}", key, **where))
        return ""
    text = value.strip()
    if required and not text:
        problems.append(Problem("must not be empty", key, **where))
    elif len(text) > limit:
        problems.append(Problem(f"is {len(text):,} characters long; at most {limit:,}", key,
                                **where))
    elif "\x00" in text:
        problems.append(Problem("must not contain NUL characters", key, **where))
    return text


def _unknown_keys(value: dict, allowed: tuple[str, ...], problems: list[Problem],
                  **where: Any) -> None:
    for key in value:
        if key not in allowed:
            problems.append(Problem(f"unknown field (expected {', '.join(allowed)})", str(key),
                                    **where))


def _score(value: Any, problems: list[Problem], **where: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(Problem(f"{value!r} is not an integer", "score", **where))
        return None
    if abs(value) > MAX_SCORE:
        problems.append(Problem(f"{value} is outside -{MAX_SCORE}..{MAX_SCORE}", "score",
                                **where))
        return None
    return value


def _levels(value: Any, problems: list[Problem], criterion: int, code: str | None
            ) -> list[dict[str, Any]]:
    where = {"criterion": criterion, "code": code}
    if not isinstance(value, list):
        problems.append(Problem("must be a list of levels, lowest first", "levels", **where))
        return []
    if not MIN_LEVELS <= len(value) <= MAX_LEVELS:
        problems.append(Problem(f"has {len(value)} level{'s' if len(value) != 1 else ''}; a "
                                f"criterion needs {MIN_LEVELS} to {MAX_LEVELS}", "levels",
                                **where))
    levels: list[dict[str, Any]] = []
    base: int | None = None
    for j, raw in enumerate(value[:MAX_LEVELS]):
        at = {**where, "level": j}
        if not isinstance(raw, dict):
            problems.append(Problem("must be an object with score, label and descriptor", "",
                                    **at))
            continue
        _unknown_keys(raw, _LEVEL_KEYS, problems, **at)
        score = _score(raw.get("score"), problems, **at)
        if j == 0:
            base = score
        elif score is not None and base is not None and score != base + j:
            problems.append(Problem(
                f"is {score} where {base + j} was expected: scores must be consecutive "
                f"integers, lowest first (from {base}: {base}, {base + 1}, {base + 2}...)",
                "score", **at))
        label = _text(raw.get("label"), "label", required=True, limit=MAX_LABEL,
                      problems=problems, **at)
        descriptor = _text(raw.get("descriptor"), "descriptor", required=True,
                           limit=MAX_DESCRIPTOR, problems=problems, **at)
        levels.append({"score": score, "label": label, "descriptor": descriptor})
    return levels


def check_criteria(session: Session, value: Any) -> list[dict[str, Any]]:
    """The criteria of a new version, checked and normalised (text stripped).

    Parameters
    ----------
    value
        ``[{"code", "name", "description", "skill", "levels": [{"score", "label",
        "descriptor"}]}]`` as decoded from JSON.

    Returns
    -------
    list of dict
        The same, with every text field stripped and ``description`` defaulting to ``""``.

    Raises
    ------
    RubricInvalid
        Every problem, each naming the criterion (position and code) and the field.
    """
    problems: list[Problem] = []
    criteria = _criteria(session, value, problems)
    _raise_json(problems)
    return criteria


def _criteria(session: Session, value: Any, problems: list[Problem]) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        problems.append(Problem("a rubric needs at least one criterion (a non-empty list)",
                                "criteria"))
        return []
    if len(value) > MAX_CRITERIA:
        problems.append(Problem(f"has {len(value)} criteria; at most {MAX_CRITERIA}",
                                "criteria"))
        return []
    known = set(bank_skills(session))
    seen: dict[str, int] = {}
    criteria = []
    for i, raw in enumerate(value):
        if not isinstance(raw, dict):
            problems.append(Problem("must be an object", "", criterion=i))
            continue
        raw_code = raw.get("code")
        code = raw_code.strip() if isinstance(raw_code, str) else None
        where = {"criterion": i, "code": code or None}
        _unknown_keys(raw, _CRITERION_KEYS, problems, **where)
        code = _text(raw_code, "code", required=True, limit=MAX_CODE, problems=problems,
                     **where)
        if code and not CODE.fullmatch(code):
            problems.append(Problem(f"{code!r} may hold only letters, digits, '-' and '_'",
                                    "code", **where))
        elif code and code.casefold() in seen:
            problems.append(Problem(f"{code!r} is already the code of criteria"
                                    f"[{seen[code.casefold()]}]", "code", **where))
        elif code:
            seen[code.casefold()] = i
        name = _text(raw.get("name"), "name", required=True, limit=MAX_CRITERION_NAME,
                     problems=problems, **where)
        description = _text(raw.get("description"), "description", required=False,
                            limit=MAX_DESCRIPTION, problems=problems, **where)
        skill = _text(raw.get("skill"), "skill", required=True, limit=80, problems=problems,
                      **where)
        if skill and skill not in known:
            listed = ", ".join(sorted(known)[:30]) or "none: the bank has no items yet"
            problems.append(Problem(f"{skill!r} is not a skill of the item bank (its skills: "
                                    f"{listed})", "skill", **where))
        levels = _levels(raw.get("levels"), problems, i, code or None)
        criteria.append({"code": code, "name": name, "description": description,
                         "skill": skill, "levels": levels})
    return criteria


def _rubric_name(session: Session, value: Any, problems: list[Problem],
                 exclude: int | None = None) -> str:
    name = _text(value, "name", required=True, limit=MAX_NAME, problems=problems)
    if name:
        query = select(Rubric.id).where(func.lower(Rubric.name) == name.lower())
        if exclude is not None:
            query = query.where(Rubric.id != exclude)
        if session.scalar(query) is not None:
            raise Conflict(f"name: a rubric named {name!r} exists already", field="name")
    return name


# -- who -----------------------------------------------------------------------------------------


def require_staff(viewer: User) -> None:
    """Refuse students (and anyone but teachers, assessors and administrators).

    Raises
    ------
    Forbidden
        The viewer's role may not see or change rubrics.
    """
    if viewer.role not in STAFF:
        raise Forbidden("rubrics are for teachers, assessors and administrators; you are "
                        f"{viewer.role.value}")


# -- writing -------------------------------------------------------------------------------------


def _store_version(session: Session, user: User, rubric: Rubric, number: int, description: str,
                   note: str, criteria: list[dict[str, Any]]) -> RubricVersion:
    version = RubricVersion(rubric=rubric, version=number, description=description, note=note,
                            created_by=user.id)
    session.add(version)
    for position, c in enumerate(criteria):
        session.add(RubricCriterion(rubric_version=version, position=position, code=c["code"],
                                    name=c["name"], description=c["description"],
                                    skill=c["skill"], levels=c["levels"]))
    session.flush()
    return version


def create_rubric(session: Session, user: User, *, name: Any, description: Any = "",
                  criteria: Any, note: Any = "") -> Rubric:
    """Create a rubric with its first version.

    Parameters
    ----------
    name
        Unique among rubrics (compared without regard to case), 1 to :data:`MAX_NAME`
        characters.
    description
        What the rubric is for (version 1's description).
    criteria
        As for :func:`check_criteria`.
    note
        What version 1 is (kept with the version).

    Raises
    ------
    Forbidden
        A student (or another role that may not author rubrics).
    Conflict
        A rubric with this name exists (409, field ``name``).
    RubricInvalid
        Every problem of the name, description and criteria, each naming its field.
    """
    require_staff(user)
    problems: list[Problem] = []
    clean_name = _rubric_name(session, name, problems)
    clean_description = _text(description, "description", required=False,
                              limit=MAX_DESCRIPTION, problems=problems)
    clean_note = _text(note, "note", required=False, limit=MAX_NOTE, problems=problems)
    clean = _criteria(session, criteria, problems)
    _raise_json(problems)
    rubric = Rubric(name=clean_name, created_by=user.id)
    session.add(rubric)
    _store_version(session, user, rubric, 1, clean_description, clean_note, clean)
    return rubric


def add_version(session: Session, user: User, rubric: Rubric, *, criteria: Any,
                description: Any = None, note: Any = "") -> RubricVersion:
    """Add a version to ``rubric``: a whole new set of criteria (the old versions stay).

    Parameters
    ----------
    description
        The new version's description; ``None`` keeps the latest version's.
    note
        What changed, in the author's words.

    Raises
    ------
    Forbidden, RubricInvalid
        As for :func:`create_rubric`.
    Conflict
        The rubric is archived (unarchive it first).
    """
    require_staff(user)
    if rubric.archived_at is not None:
        raise Conflict(f"rubric {rubric.id} is archived: unarchive it before adding a version",
                       field="archived")
    # Lock the rubric so that two versions added at once get numbers one after the other.
    session.execute(select(Rubric.id).where(Rubric.id == rubric.id).with_for_update())
    latest = latest_version(session, rubric)
    problems: list[Problem] = []
    if description is None:
        clean_description = latest.description
    else:
        clean_description = _text(description, "description", required=False,
                                  limit=MAX_DESCRIPTION, problems=problems)
    clean_note = _text(note, "note", required=False, limit=MAX_NOTE, problems=problems)
    clean = _criteria(session, criteria, problems)
    _raise_json(problems)
    version = _store_version(session, user, rubric, latest.version + 1, clean_description,
                             clean_note, clean)
    session.expire(rubric, ["versions"])
    return version


def set_archived(session: Session, user: User, rubric: Rubric, archived: bool) -> Rubric:
    """Archive a rubric (off the lists for new defenses; its versions and scores are kept), or
    put it back."""
    require_staff(user)
    if archived and rubric.archived_at is None:
        rubric.archived_at = utcnow()
    elif not archived:
        rubric.archived_at = None
    session.flush()
    return rubric


# -- reading -------------------------------------------------------------------------------------


def rubrics_query(archived: bool | None = None) -> Select:
    """Rubrics by name (``archived``: ``None`` all, ``False`` active only, ``True`` archived)."""
    query = select(Rubric).options(selectinload(Rubric.versions)
                                   .selectinload(RubricVersion.criteria))
    if archived is True:
        query = query.where(Rubric.archived_at.is_not(None))
    elif archived is False:
        query = query.where(Rubric.archived_at.is_(None))
    return query.order_by(func.lower(Rubric.name), Rubric.id)


def visible_rubric(session: Session, viewer: User, rubric_id: int) -> Rubric:
    """The rubric, for a viewer who may see rubrics.

    Raises
    ------
    Forbidden
        A student.
    NotFound
        No such rubric.
    """
    require_staff(viewer)
    return get_rubric(session, rubric_id)


def get_rubric(session: Session, rubric_id: int) -> Rubric:
    """The rubric ``rubric_id``, whoever asks (callers check who may see it).

    Raises
    ------
    NotFound
        No such rubric (field ``rubric_id``).
    """
    rubric = session.get(Rubric, rubric_id)
    if rubric is None:
        raise NotFound(f"no rubric {rubric_id}", "rubric_id")
    return rubric


def latest_version(session: Session, rubric: Rubric) -> RubricVersion:
    """The rubric's newest version (every rubric has at least one)."""
    return session.scalars(select(RubricVersion).where(RubricVersion.rubric_id == rubric.id)
                           .order_by(RubricVersion.version.desc()).limit(1)).one()


def get_version(session: Session, rubric: Rubric, number: int | None = None) -> RubricVersion:
    """Version ``number`` of the rubric (the newest when ``None``).

    Raises
    ------
    NotFound
        The rubric has no such version (field ``version``), naming the versions it has.
    """
    if number is None:
        return latest_version(session, rubric)
    version = session.scalar(select(RubricVersion).where(
        RubricVersion.rubric_id == rubric.id, RubricVersion.version == number))
    if version is None:
        newest = latest_version(session, rubric).version
        raise NotFound(f"version: rubric {rubric.id} has no version {number} (it has 1 to "
                       f"{newest})", field="version")
    return version


def criterion_dict(criterion: RubricCriterion) -> dict[str, Any]:
    """A criterion in the JSON form."""
    return {"code": criterion.code, "name": criterion.name,
            "description": criterion.description, "skill": criterion.skill,
            "levels": [{"score": level["score"], "label": level["label"],
                        "descriptor": level["descriptor"]} for level in criterion.levels]}


def rubric_document(rubric: Rubric, version: RubricVersion) -> dict[str, Any]:
    """One version of a rubric in the JSON form (what :func:`export_json` writes)."""
    return {"name": rubric.name, "description": version.description,
            "criteria": [criterion_dict(c) for c in version.criteria]}


# -- files ---------------------------------------------------------------------------------------


def export_json(rubric: Rubric, version: RubricVersion) -> str:
    """The version as a JSON file (UTF-8 text, keys in the documented order)."""
    return json.dumps(rubric_document(rubric, version), ensure_ascii=False, indent=2) + "\n"


def export_csv(version: RubricVersion) -> str:
    """The version as a CSV file: one row per level under the header :data:`CSV_COLUMNS`."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for c in version.criteria:
        for level in c.levels:
            writer.writerow([defuse_cell(c.code), defuse_cell(c.name),
                             defuse_cell(c.description), defuse_cell(c.skill),
                             str(level["score"]), defuse_cell(level["label"]),
                             defuse_cell(level["descriptor"])])
    return buffer.getvalue()


def read_json_document(data: Any) -> dict[str, Any]:
    """A decoded JSON document in the rubric form, its shape checked (not yet its content).

    Raises
    ------
    RubricInvalid
        Not an object, or unknown top-level fields.
    """
    problems: list[Problem] = []
    if not isinstance(data, dict):
        problems.append(Problem("the rubric must be a JSON object with name, description and "
                                "criteria", "body"))
    else:
        _unknown_keys(data, _DOCUMENT_KEYS, problems)
    _raise_json(problems)
    return data


def parse_json_file(data: bytes) -> dict[str, Any]:
    """Decode a JSON file (UTF-8) holding one rubric.

    Raises
    ------
    RubricInvalid
        Not UTF-8, not JSON (naming the line and column), or not a rubric object.
    """
    try:
        decoded = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        raise RubricInvalid([{"field": "file", "message": f"the file is not UTF-8 text "
                                                          f"(byte {error.start})"}]) from None
    except json.JSONDecodeError as error:
        raise RubricInvalid([{"field": "file", "message": f"line {error.lineno}, column "
                              f"{error.colno}: not valid JSON: {error.msg}"}]) from None
    return read_json_document(decoded)


def parse_csv(data: bytes | str) -> list[dict[str, Any]]:
    """Read the criteria of a rubric from CSV (see the module's docstring), and check them.

    Parameters
    ----------
    data
        The file: UTF-8 (a byte-order mark is accepted), header row first.

    Returns
    -------
    list of dict
        The criteria in the JSON form, in file order, not yet checked against the bank
        (:func:`import_rubric` does that, naming rows).

    Raises
    ------
    RubricInvalid
        The whole file is refused, every problem naming its row and column
        (``row 7, score: 'three' is not an integer``).
    """
    rows, problems = _csv_rows(data)
    if problems:
        raise RubricInvalid(problems)
    return rows[0]


def _csv_problem(problems: list[dict[str, str]], row: int, column: str | None,
                 message: str) -> None:
    where = f"row {row}, {column}" if column else f"row {row}"
    problems.append({"field": where, "message": f"{where}: {message}"})


def _csv_rows(data: bytes | str) -> tuple[tuple[list[dict[str, Any]], dict], list[dict]]:
    """The criteria of a CSV file and where each field was (criterion, level -> row)."""
    problems: list[dict[str, str]] = []
    rows_of: dict[tuple[int, int | None], int] = {}
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RubricInvalid([{"field": "file", "message": "the file is not UTF-8 text "
                                  f"(byte {error.start}); save it as CSV UTF-8"}]) from None
    text = data.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    criteria: list[dict[str, Any]] = []
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise RubricInvalid([{"field": "row 1", "message": "row 1: the header row is "
                                  f"missing; it must name the columns {', '.join(CSV_COLUMNS)}"
                                  }])
        names = [h.strip().lower() for h in header]
        for i, name in enumerate(names, 1):
            if name not in CSV_COLUMNS:
                _csv_problem(problems, 1, f"column {i}", f"unknown column {name!r} (the "
                             f"columns are {', '.join(CSV_COLUMNS)})")
            elif names.index(name) != i - 1:
                _csv_problem(problems, 1, name, "the column appears more than once")
        for name in CSV_COLUMNS:
            if name not in names and name != "criterion_description":
                _csv_problem(problems, 1, name, "the required column is missing")
        if problems:
            raise RubricInvalid(problems)
        by_code: dict[str, int] = {}
        end = reader.line_num
        for cells in reader:
            row, end = end + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) > len(names) and any(c.strip() for c in cells[len(names):]):
                _csv_problem(problems, row, None, f"the row has {len(cells)} cells but the "
                             f"header has {len(names)}")
                continue
            cell = dict(zip(names, (restore_cell(c) for c in cells), strict=False))
            code = cell.get("criterion", "").strip()
            if not code:
                _csv_problem(problems, row, "criterion", "must not be empty")
                continue
            fields = {"name": cell.get("criterion_name", ""),
                      "description": cell.get("criterion_description", ""),
                      "skill": cell.get("skill", "")}
            index = by_code.get(code)
            if index is None:
                by_code[code] = index = len(criteria)
                criteria.append({"code": code, **fields, "levels": []})
                rows_of[(index, None)] = row
            elif index != len(criteria) - 1:
                _csv_problem(problems, row, "criterion",
                             f"{code!r} appears again after other criteria (the rows of a "
                             f"criterion must be together; it starts on row "
                             f"{rows_of[(index, None)]})")
                continue
            else:
                first = rows_of[(index, None)]
                for key, value in fields.items():
                    if value.strip() != criteria[index][key].strip():
                        _csv_problem(problems, row, _COLUMN_OF[key],
                                     f"{value.strip()!r} differs from {criteria[index][key]!r} "
                                     f"on row {first} (the same criterion {code!r})")
            raw_score = cell.get("score", "").strip()
            score: Any = raw_score
            if not _INTEGER.fullmatch(raw_score) or len(raw_score) > 7:
                _csv_problem(problems, row, "score", f"{raw_score!r} is not an integer")
            else:
                score = int(raw_score)
            rows_of[(index, len(criteria[index]["levels"]))] = row
            criteria[index]["levels"].append({"score": score, "label": cell.get("label", ""),
                                              "descriptor": cell.get("descriptor", "")})
    except csv.Error as error:
        _csv_problem(problems, reader.line_num, None, f"malformed CSV: {error}")
    if not criteria and not problems:
        problems.append({"field": "row 2", "message": "row 2: the file has a header but no "
                                                      "rows; a rubric needs at least one "
                                                      "criterion"})
    return (criteria, rows_of), problems


def import_rubric(session: Session, user: User, *, name: Any, description: Any = "",
                  criteria: Any = None, csv_data: bytes | str | None = None,
                  note: Any = "") -> Rubric:
    """Create a rubric from an imported document: ``criteria`` in the JSON form, or
    ``csv_data`` (a CSV file's content), all or nothing.

    Raises
    ------
    RubricInvalid
        Every problem; for CSV each names the row and the column.
    Conflict, Forbidden
        As for :func:`create_rubric`.
    """
    require_staff(user)
    if csv_data is None:
        return create_rubric(session, user, name=name, description=description,
                             criteria=criteria, note=note)
    (parsed, rows_of), problems = _csv_rows(csv_data)
    if problems:
        raise RubricInvalid(problems)
    try:
        return create_rubric(session, user, name=name, description=description,
                             criteria=parsed, note=note)
    except RubricInvalid as error:
        raise RubricInvalid(_to_rows(error, rows_of)) from None


_PATH = re.compile(r"criteria\[(\d+)\](?:\.levels\[(\d+)\])?(?:\.(\w+))?")


def _to_rows(error: RubricInvalid, rows_of: dict[tuple[int, int | None], int]
             ) -> list[dict[str, str]]:
    """Problems found in a CSV's criteria, re-located by row and column."""
    out = []
    for entry in error.errors:
        m = _PATH.fullmatch(entry["field"])
        if m is None:
            out.append(entry)
            continue
        criterion, level, key = int(m.group(1)), m.group(2), m.group(3) or "levels"
        row = rows_of.get((criterion, int(level) if level is not None else None),
                          rows_of.get((criterion, None), 2))
        column = _COLUMN_OF.get(key, key)
        message = entry["message"].split(": ", 1)[-1]
        where = f"row {row}, {column}"
        out.append({"field": where, "message": f"{where}: {message}"})
    return out
