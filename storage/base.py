"""The declarative ``Base`` shared by every table, with a naming convention for constraints.

Named constraints make migrations portable: Alembic can drop or alter a constraint by name on
PostgreSQL, and rebuild SQLite tables in batch mode, only when every constraint has a stable name.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import Enum, MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base class of every mapped table in the project."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC (the only time zone stored)."""
    return datetime.now(UTC)


def as_utc(moment: datetime | None) -> datetime | None:
    """``moment`` with its time zone: SQLite returns stored times (all UTC) without one."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def enum_type(enum_cls: type[enum.StrEnum], name: str) -> Enum:
    """A portable enumeration column type: VARCHAR plus a named CHECK constraint of its values.

    Not a native PostgreSQL ENUM, so that migrations are the same on SQLite and PostgreSQL and a
    new value is a constraint change rather than an ``ALTER TYPE``.
    """
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(m.value) for m in enum_cls),
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )
