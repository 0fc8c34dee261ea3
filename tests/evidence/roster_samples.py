"""The sample district roster (tests/evidence/oneroster/district, OneRoster 1.2 CSV) and ways
to change it: rows edited, added or removed, columns dropped, the package zipped."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

SAMPLE = Path(__file__).parent / "oneroster" / "district"


def sample() -> dict[str, str]:
    """The sample's files by name (``users.csv`` -> its text)."""
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(SAMPLE.glob("*.csv"))}


def rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """A CSV's header and rows."""
    reader = csv.DictReader(io.StringIO(text))
    return list(reader.fieldnames or []), list(reader)


def table(header: list[str], records: list[dict[str, str]]) -> str:
    """A CSV from a header and rows (missing values blank)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\r\n", extrasaction="ignore")
    writer.writeheader()
    for record in records:
        writer.writerow({k: record.get(k, "") for k in header})
    return out.getvalue()


def edit(files: dict[str, str], name: str, change) -> dict[str, str]:
    """``files`` with ``name``'s rows passed through ``change(rows) -> rows``."""
    header, records = rows(files[name])
    return {**files, name: table(header, change([dict(r) for r in records]))}


def drop_column(files: dict[str, str], name: str, column: str) -> dict[str, str]:
    """``files`` with a column removed from ``name``."""
    header, records = rows(files[name])
    return {**files, name: table([c for c in header if c != column], records)}


def set_modes(files: dict[str, str], mode: str, names: tuple[str, ...]) -> dict[str, str]:
    """``files`` whose manifest gives ``names`` (without .csv) the mode ``mode``."""
    header, records = rows(files["manifest.csv"])
    for record in records:
        if record["propertyName"].removeprefix("file.") in names:
            record["value"] = mode
    return {**files, "manifest.csv": table(header, records)}


def zipped(files: dict[str, str], folder: str = "") -> bytes:
    """The files as a zip (in ``folder`` inside it, when given)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(folder + name, text.encode("utf-8"))
    return buffer.getvalue()
