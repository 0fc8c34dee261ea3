"""Reading a OneRoster 1.2 CSV package: the files, their columns and each row's own checks.

No database here: :func:`read_package` turns the bytes of a zip (as student information systems
export it) or of loose CSV files into rows and the problems found in them, each named by file,
line, field and ``sourcedId``. What the rows mean for this deployment (which accounts exist,
which references resolve) is :mod:`evidence.roster`'s job.

The binding (1EdTech OneRoster 1.2 CSV): ``manifest.csv`` (``propertyName,value``) says per
file whether it is ``bulk`` (the complete set), ``delta`` (changes since the last exchange:
``status`` is ``active`` or ``tobedeleted`` and ``dateLastModified`` is given) or ``absent``.
Headers are case-sensitive; a BOM is tolerated; every file has ``sourcedId``, ``status`` and
``dateLastModified`` first. Columns this engine does not use (emails, phone numbers, grades,
passwords...) are never read beyond the header.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

#: Every file's columns (in the binding's order) and those that must hold a value.
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "orgs": (("sourcedId", "status", "dateLastModified", "name", "type", "identifier",
              "parentSourcedId"), ("sourcedId", "name", "type")),
    "users": (("sourcedId", "status", "dateLastModified", "enabledUser", "username", "userIds",
               "givenName", "familyName", "middleName", "identifier", "email", "sms", "phone",
               "agentSourcedIds", "grades", "password", "userMasterIdentifier",
               "resourceSourcedIds", "preferredGivenName", "preferredMiddleName",
               "preferredFamilyName", "primaryOrgSourcedId", "pronouns"),
              ("sourcedId", "enabledUser", "username", "givenName", "familyName")),
    "roles": (("sourcedId", "status", "dateLastModified", "userSourcedId", "roleType", "role",
               "beginDate", "endDate", "orgSourcedId", "userProfileSourcedId"),
              ("sourcedId", "userSourcedId", "roleType", "role", "orgSourcedId")),
    "classes": (("sourcedId", "status", "dateLastModified", "title", "grades", "courseSourcedId",
                 "classCode", "classType", "location", "schoolSourcedId", "termSourcedIds",
                 "subjects", "subjectCodes", "periods"),
                ("sourcedId", "title", "courseSourcedId", "classType", "schoolSourcedId",
                 "termSourcedIds")),
    "courses": (("sourcedId", "status", "dateLastModified", "schoolYearSourcedId", "title",
                 "courseCode", "grades", "orgSourcedId", "subjects", "subjectCodes"),
                ("sourcedId", "title", "orgSourcedId")),
    "academicSessions": (("sourcedId", "status", "dateLastModified", "title", "type",
                          "startDate", "endDate", "parentSourcedId", "schoolYear"),
                         ("sourcedId", "title", "type", "startDate", "endDate", "schoolYear")),
    "enrollments": (("sourcedId", "status", "dateLastModified", "classSourcedId",
                     "schoolSourcedId", "userSourcedId", "role", "primary", "beginDate",
                     "endDate"),
                    ("sourcedId", "classSourcedId", "schoolSourcedId", "userSourcedId", "role")),
}
#: The files an import needs (the others, when sent, are checked and their references used).
NEEDED = ("orgs", "users", "roles", "classes", "enrollments")
#: Files of the binding this engine does not read (listed in a manifest, they are ignored).
IGNORED = ("categories", "classResources", "courseResources", "demographics", "lineItems",
           "resources", "results", "userProfiles", "userResources", "scoreScales",
           "lineItemLearningObjectiveIds", "lineItemScoreScales", "resultLearningObjectiveIds",
           "resultScoreScales")
MODES = ("bulk", "delta", "absent")
#: Values of enumerated fields (1.2); ``ext:`` extensions are allowed where the binding says so.
ENUMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("orgs", "type"): ("department", "school", "district", "local", "state", "national"),
    ("users", "enabledUser"): ("true", "false"),
    ("roles", "roleType"): ("primary", "secondary"),
    ("roles", "role"): ("aide", "counselor", "districtAdministrator", "guardian", "parent",
                        "principal", "proctor", "relative", "siteAdministrator", "student",
                        "systemAdministrator", "teacher"),
    ("classes", "classType"): ("homeroom", "scheduled"),
    ("enrollments", "role"): ("administrator", "proctor", "student", "teacher"),
    ("enrollments", "primary"): ("true", "false"),
    ("academicSessions", "type"): ("gradingPeriod", "semester", "schoolYear", "term"),
}
_ENUMS_OF: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
for (_table, _column), _allowed in ENUMS.items():
    _ENUMS_OF.setdefault(_table, []).append((_column, _allowed))
DATE_FIELDS = {"roles": ("beginDate", "endDate"), "enrollments": ("beginDate", "endDate"),
               "academicSessions": ("startDate", "endDate")}
#: The most a package may hold once unzipped, and the most files in a zip.
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_MEMBERS = 64
MAX_ID = 255
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong (``error``: the import cannot be applied) or worth knowing (``warning``).

    ``line`` is the file's line (the header is line 1), ``field`` its column, ``id`` the
    row's ``sourcedId`` (or the id it refers to).
    """

    severity: str
    file: str
    line: int | None
    field: str | None
    id: str | None
    message: str

    def as_dict(self) -> dict[str, object]:
        """The problem as JSON."""
        return {"severity": self.severity, "file": self.file, "line": self.line,
                "field": self.field, "id": self.id, "message": self.message}


@dataclass(frozen=True)
class Row:
    """A data row: its line in the file and the values of the columns read."""

    line: int
    values: dict[str, str]

    @property
    def sourced_id(self) -> str:
        """The row's ``sourcedId``."""
        return self.values.get("sourcedId", "")

    def get(self, name: str) -> str:
        """A column's value ('' when the column is missing or empty)."""
        return self.values.get(name, "")


@dataclass
class Package:
    """A read package: each file's mode and rows, and the problems found so far."""

    modes: dict[str, str] = field(default_factory=dict)
    rows: dict[str, list[Row]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    version: str = "1.2"
    source: str = ""

    def error(self, file: str, line: int | None, field_: str | None, id_: str | None,
              message: str) -> None:
        """Record an error."""
        self.problems.append(Problem("error", file, line, field_, id_, message))

    def warn(self, file: str, line: int | None, field_: str | None, id_: str | None,
             message: str) -> None:
        """Record a warning."""
        self.problems.append(Problem("warning", file, line, field_, id_, message))

    @property
    def has_errors(self) -> bool:
        """Whether any problem is an error."""
        return any(p.severity == "error" for p in self.problems)

    def mode(self, name: str) -> str:
        """``bulk``, ``delta`` or ``absent`` for the file ``name``."""
        return self.modes.get(name, "absent")


class PackageError(ValueError):
    """The upload is not a OneRoster package at all (not a zip or CSV, too large, empty)."""


def unpack(uploads: Iterable[tuple[str, bytes]]) -> dict[str, bytes]:
    """The CSV files of the uploads by base name (``users.csv`` -> ``users``).

    An upload is a zip (its CSV files, at its root or in one folder) or a loose CSV file.

    Raises
    ------
    PackageError
        A zip that cannot be read, holds too much, or a file that is neither zip nor CSV.
    """
    files: dict[str, bytes] = {}
    total = 0
    for filename, data in uploads:
        if data[:4] == b"PK\x03\x04" or filename.lower().endswith(".zip"):
            try:
                archive = zipfile.ZipFile(io.BytesIO(data))
                members = [m for m in archive.infolist() if not m.is_dir()]
            except (zipfile.BadZipFile, OSError):
                raise PackageError(f"{filename or 'the upload'} is not a readable zip") from None
            if len(members) > MAX_MEMBERS:
                raise PackageError(f"{filename}: {len(members)} files; a OneRoster zip holds "
                                   f"at most {MAX_MEMBERS}")
            for member in members:
                name = member.filename.rsplit("/", 1)[-1]
                if not name.lower().endswith(".csv") or name.startswith("."):
                    continue
                total += member.file_size
                if total > MAX_UNPACKED_BYTES:
                    raise PackageError(f"{filename}: more than {MAX_UNPACKED_BYTES:,} bytes "
                                       "once unzipped")
                try:
                    files[name[:-4]] = archive.read(member)
                except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as error:
                    raise PackageError(f"{filename}: {name} cannot be unzipped ({error})") \
                        from None
        elif filename.lower().endswith(".csv"):
            total += len(data)
            files[filename.replace("\\", "/").rsplit("/", 1)[-1][:-4]] = data
        else:
            raise PackageError(f"{filename or 'the upload'}: send a OneRoster zip or its CSV "
                               "files (.csv)")
    if not files:
        raise PackageError("no CSV file was sent: send a OneRoster zip or its CSV files")
    return files


def _text(name: str, data: bytes, package: Package) -> str | None:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        package.error(f"{name}.csv", line, None, None,
                      f"not UTF-8 (byte {error.start}): save the file as UTF-8")
        return None


def _manifest(files: dict[str, bytes], package: Package) -> None:
    if "manifest" not in files:
        for name in files:
            if name in TABLES:
                package.modes[name] = "bulk"
        package.warn("manifest.csv", None, None, None,
                     "no manifest.csv: every file sent is read as bulk (the complete set)")
        return
    text = _text("manifest", files["manifest"], package)
    if text is None:
        return
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, [])
    if header[:2] != ["propertyName", "value"]:
        package.error("manifest.csv", 1, None, None,
                      "the header must be propertyName,value")
        return
    for line, row in enumerate(reader, start=2):
        if not row or not any(row):
            continue
        name, value = row[0], (row[1] if len(row) > 1 else "")
        if name == "oneroster.version":
            package.version = value
            if value not in ("1.2", "1.2.1"):
                package.error("manifest.csv", line, "value", None,
                              f"oneroster.version is {value!r}: this import reads OneRoster "
                              "1.2 (export the roster as 1.2)")
        elif name == "source.systemName":
            package.source = value[:200]
        elif name.startswith("file."):
            table = name[5:]
            if value not in MODES:
                package.error("manifest.csv", line, "value", None,
                              f"{name} is {value!r}; it must be one of {', '.join(MODES)}")
            elif table in TABLES:
                package.modes[table] = value
            elif table not in IGNORED:
                package.warn("manifest.csv", line, "propertyName", None,
                             f"{name} is not a file of OneRoster 1.2; ignored")
            elif value != "absent":
                package.warn("manifest.csv", line, "propertyName", None,
                             f"{table}.csv is not used by this import; ignored")


def read_package(files: dict[str, bytes]) -> Package:
    """Read the files of a package (see :func:`unpack`) and check each row on its own.

    Checked here: the manifest; that every file it lists is there (and no other); required
    columns in the header and required values in each row; duplicate ``sourcedId`` values in
    a file; enumerations; dates (``YYYY-MM-DD``) and ``dateLastModified``
    (``YYYY-MM-DDThh:mm:ss`` with ``Z`` or an offset); ``status`` (blank or ``active`` in a
    bulk file, ``active`` or ``tobedeleted`` in a delta file).
    """
    package = Package()
    _manifest(files, package)
    for name in TABLES:
        mode = package.mode(name)
        if mode != "absent" and name not in files:
            package.error(f"{name}.csv", None, None, None,
                          f"the manifest lists {name}.csv as {mode}, but it is not there")
        elif mode == "absent" and name in files and "manifest" in files:
            package.warn(f"{name}.csv", None, None, None,
                         f"the manifest says {name}.csv is absent; the file is ignored")
    for name in NEEDED:
        if package.mode(name) == "absent" and name not in files:
            package.error(f"{name}.csv", None, None, None,
                          f"{name}.csv is needed for a roster import and was not sent")
    for name in TABLES:
        if package.mode(name) != "absent" and name in files:
            package.rows[name] = _read_table(name, files[name], package)
    return package


def _read_table(name: str, data: bytes, package: Package) -> list[Row]:
    columns, required = TABLES[name]
    file = f"{name}.csv"
    text = _text(name, data, package)
    if text is None:
        return []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        package.error(file, 1, None, None, "the file is empty: it needs a header row")
        return []
    missing = [c for c in columns[:3] + required if c not in header]
    for column in dict.fromkeys(missing):
        package.error(file, 1, column, None, f"the required column {column} is missing")
    seen_names = set()
    for column in header:
        if column in seen_names:
            package.error(file, 1, column, None, f"the column {column} appears twice")
        seen_names.add(column)
    if missing or len(seen_names) != len(header):
        return []
    wanted = [(i, c) for i, c in enumerate(header) if c in columns]
    mode = package.mode(name)
    rows: list[Row] = []
    first: dict[str, int] = {}
    try:
        for record in reader:
            line_no = reader.line_num
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if len(record) != len(header):
                package.error(file, line_no, None, record[0] if record else None,
                              f"{len(record)} values for {len(header)} columns")
                continue
            values = {c: record[i].strip() for i, c in wanted}
            row = Row(line_no, values)
            if _check_row(name, row, mode, package):
                sid = row.sourced_id
                if sid in first:
                    package.error(file, row.line, "sourcedId", sid,
                                  f"sourcedId {sid!r} is already used on line {first[sid]}")
                    continue
                first[sid] = row.line
                rows.append(row)
    except csv.Error as error:
        package.error(file, reader.line_num, None, None, f"the CSV cannot be read: {error}")
    if not rows and not package.has_errors:
        package.warn(file, None, None, None, "the file has no data rows")
    return rows


def _check_row(name: str, row: Row, mode: str, package: Package) -> bool:
    """Check one row; record its problems and say whether it may be used."""
    file, sid, ok = f"{name}.csv", row.sourced_id, True
    _, required = TABLES[name]
    for column in required:
        if not row.get(column):
            package.error(file, row.line, column, sid or None, f"{column} is empty")
            ok = False
    if len(sid) > MAX_ID:
        package.error(file, row.line, "sourcedId", sid[:40] + "...",
                      f"sourcedId is longer than {MAX_ID} characters")
        ok = False
    status, modified = row.get("status"), row.get("dateLastModified")
    if mode == "delta":
        if status not in ("active", "tobedeleted"):
            package.error(file, row.line, "status", sid or None,
                          f"status is {status!r}; a delta file needs active or tobedeleted")
            ok = False
        if not _DATETIME.match(modified) or not _valid_datetime(modified):
            package.error(file, row.line, "dateLastModified", sid or None,
                          f"dateLastModified is {modified!r}; a delta file needs a date and "
                          "time such as 2026-09-01T08:00:00Z")
            ok = False
    else:
        if status not in ("", "active"):
            package.error(file, row.line, "status", sid or None,
                          f"status is {status!r}; in a bulk file it is blank (tobedeleted "
                          "is for delta files)")
            ok = False
        if modified and (not _DATETIME.match(modified) or not _valid_datetime(modified)):
            package.error(file, row.line, "dateLastModified", sid or None,
                          f"dateLastModified is {modified!r}, not a date and time such as "
                          "2026-09-01T08:00:00Z")
            ok = False
    for column, allowed in _ENUMS_OF.get(name, ()):
        value = row.get(column)
        if value and value not in allowed and not value.startswith("ext:"):
            package.error(file, row.line, column, sid or None,
                          f"{column} is {value!r}; it must be one of {', '.join(allowed)}")
            ok = False
    for column in DATE_FIELDS.get(name, ()):
        value = row.get(column)
        if value and not _valid_date(value):
            package.error(file, row.line, column, sid or None,
                          f"{column} is {value!r}, not a date (YYYY-MM-DD)")
            ok = False
    return ok


def _valid_date(text: str) -> bool:
    if not _DATE.match(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _valid_datetime(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
