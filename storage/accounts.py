"""Accounts and deployment facts: the ``users`` and ``app_meta`` tables.

Users sit in ``storage`` because every package above refers to them: the item bank records who
changed an item, evidence records whose attempt it is, the API signs them in.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from storage.base import Base, enum_type, utcnow


class Role(enum.StrEnum):
    """What a user may do. Teachers see their classes, assessors the bank, admins everything."""

    STUDENT = "student"
    TEACHER = "teacher"
    ASSESSOR = "assessor"
    ADMIN = "admin"


class User(Base):
    """A person who signs in. The username and display name are personal data."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("length(username) > 0", name="username_not_empty"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[Role] = mapped_column(
        enum_type(Role, "user_role")
    )
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def set_password(self, password: str) -> None:
        """Store a salted hash of ``password`` (werkzeug's scrypt), never the password itself."""
        if not password:
            raise ValueError("password must not be empty")
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        """Return whether ``password`` matches the stored hash."""
        return bool(password) and check_password_hash(self.password_hash, password)

    def __repr__(self) -> str:
        return f"User(id={self.id!r}, username={self.username!r}, role={self.role.value!r})"


def authenticate(session: Session, username: str, password: str) -> User | None:
    """Return the active user with these credentials, or ``None``.

    A wrong username costs the same hash computation as a wrong password, so response time does not
    tell which usernames exist.
    """
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active:
        check_password_hash(_DUMMY_HASH, password or "x")
        return None
    return user if user.check_password(password) else None


_DUMMY_HASH = generate_password_hash("not-a-real-password")


class AppMeta(Base):
    """Facts about this database as a whole, as key/value text (e.g. ``database_kind = demo``)."""

    __tablename__ = "app_meta"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(String(2000))


DATABASE_KIND = "database_kind"
DEMO_KIND = "demo"
