"""Accounts and deployment facts: users, API tokens, classes, accommodations, ``app_meta``.

Users sit in ``storage`` because every package above refers to them: the item bank records who
changed an item, evidence records whose attempt it is, the API signs them in.
"""

from __future__ import annotations

import enum
import functools
import secrets
import unicodedata
from datetime import datetime

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from storage.base import Base, enum_type, utcnow


class Role(enum.StrEnum):
    """What a user may do. Teachers see their classes, assessors the bank, admins everything."""

    STUDENT = "student"
    TEACHER = "teacher"
    ASSESSOR = "assessor"
    ADMIN = "admin"


def new_pseudonym() -> str:
    """Return a fresh pseudonym: 128 random bits as 32 lowercase hex digits."""
    return secrets.token_hex(16)


class ErasureConfirmation(enum.StrEnum):
    """How a school confirms an erasure: a second administrator, or a stated delay."""

    SECOND_ADMIN = "second_admin"
    DELAY = "delay"


class School(Base):
    """A school: its administrators see only its classes, teachers and students.

    An administrator with no school (``users.school_id`` NULL) administers the whole
    deployment (a district). The school's settings say how erasures are confirmed and whether
    students record their own consents.
    """

    __tablename__ = "schools"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    erasure_confirmation: Mapped[ErasureConfirmation] = mapped_column(
        enum_type(ErasureConfirmation, "erasure_confirmation"),
        default=ErasureConfirmation.SECOND_ADMIN)
    #: Days between an erasure's request and its execution, when confirmed by delay.
    erasure_delay_days: Mapped[int] = mapped_column(Integer, default=14)
    #: Whether a student records their own consents (otherwise only administrators do).
    students_may_consent: Mapped[bool] = mapped_column(default=False)
    #: The school's OneRoster ``sourcedId`` (an org of type school), when a roster created or
    #: matched it; a second import updates the school it names instead of making another.
    sourced_id: Mapped[str | None] = mapped_column(String(255), default=None)

    __table_args__ = (Index("uq_schools_sourced_id", "sourced_id", unique=True),)


class User(Base):
    """A person who signs in. The username and display name are personal data."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("length(username) > 0", name="username_not_empty"),
                      Index("uq_users_pseudonym", "pseudonym", unique=True),
                      Index("uq_users_sourced_id", "sourced_id", unique=True))

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[Role] = mapped_column(
        enum_type(Role, "user_role")
    )
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: A stable random id that stands for the person wherever data leaves the school (the xAPI
    #: agent's account name): never derived from the username or the name.
    pseudonym: Mapped[str] = mapped_column(String(32), default=new_pseudonym)
    #: The school the person belongs to; NULL for a district administrator (or a deployment
    #: without schools). A school's administrator reaches only users and classes of that school.
    #: A plain integer, not a foreign key: SQLite cannot add one to ``users`` without rebuilding
    #: the table, which other tables' rows forbid (migration 0013); the services check it.
    school_id: Mapped[int | None] = mapped_column(Integer, index=True, default=None)
    #: When the person's data was erased: the row stays as a tombstone without personal data
    #: (no name, no usable password, a new pseudonym) so that kept anonymous records still
    #: point somewhere; it can never sign in again.
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    #: The person's OneRoster ``sourcedId`` when a roster import created or matched the account
    #: (unique in the deployment: a district's rosters come from one student information system).
    sourced_id: Mapped[str | None] = mapped_column(String(255), default=None)

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


class UsernameError(ValueError):
    """A username that could be mistaken for another (mixed scripts); the message says why."""


# Scripts that one language writes together (Japanese mixes kana and kanji).
_SCRIPT_FAMILIES = {"HIRAGANA": "JAPANESE", "KATAKANA": "JAPANESE", "CJK": "JAPANESE"}


def normalize_username(username: str) -> str:
    """A username as stored and compared: NFKC-normalised, letters from one script only.

    NFKC folds look-alikes that are the same character in another form (full-width
    ``\uff53\uff54\uff55\uff44\uff45\uff4e\uff54\uff11`` is ``student1``, ligatures,
    superscripts). Letters from two scripts (a Cyrillic ``\u0430`` among Latin letters) are
    refused, since they make names that look identical but are not. Digits and ``. @ + - _``
    go with any script.

    Raises
    ------
    UsernameError
        Letters from more than one script, naming them.
    """
    text = unicodedata.normalize("NFKC", username)
    scripts: dict[str, str] = {}
    for ch in text:
        if ch.isalpha():
            script = unicodedata.name(ch, "UNKNOWN").split(" ")[0]
            scripts.setdefault(_SCRIPT_FAMILIES.get(script, script), ch)
    if len(scripts) > 1:
        named = ", ".join(f"{name.lower()} ({ch!r})" for name, ch in sorted(scripts.items()))
        raise UsernameError(f"a username's letters must come from one script, not several: "
                            f"{named}")
    return text


#: The password hash new and re-hashed passwords get: werkzeug's scrypt with today's default
#: parameters (n = 2**15, r = 8, p = 1).
DEFAULT_HASH_METHOD = "scrypt"


@functools.lru_cache(maxsize=8)
def _hash_parameters(method: str) -> str:
    """The full method string werkzeug writes for ``method`` (``"scrypt"`` ->
    ``"scrypt:32768:8:1"``), from one hash of a throwaway password (once per process)."""
    return generate_password_hash("x", method=method).split("$", 1)[0]


@functools.lru_cache(maxsize=8)
def _dummy_hash(method: str) -> str:
    """A hash of no one's password, checked for unknown accounts at the same cost as a real."""
    return generate_password_hash(secrets.token_hex(16), method=method)


def needs_rehash(password_hash: str, method: str = DEFAULT_HASH_METHOD) -> bool:
    """Whether ``password_hash`` was made with another method or other parameters than
    ``method`` (e.g. pbkdf2, or scrypt with another n, r or p), so it should be replaced.

    Parameters
    ----------
    password_hash
        A stored werkzeug hash, ``method$salt$hash``.
    method
        The current method, as werkzeug's ``generate_password_hash`` takes it.
    """
    return password_hash.split("$", 1)[0] != _hash_parameters(method)


def authenticate(session: Session, username: str, password: str, *,
                 hash_method: str = DEFAULT_HASH_METHOD) -> User | None:
    """Return the active user with these credentials, or ``None``.

    ``None`` alike for an unknown username, a wrong password, a deactivated account and an
    erased one, and each costs one hash computation, so neither the answer nor its time tells
    which usernames exist. On success a hash made with an older method or weaker parameters
    than ``hash_method`` is replaced by a new one of the same password (the caller commits).
    """
    user = session.scalar(select(User).where(User.username == username))
    normal = unicodedata.normalize("NFKC", username or "")
    if user is None and normal != username:  # typed in another form (full-width, ligatures)
        user = session.scalar(select(User).where(User.username == normal))
    if user is None or not user.is_active or user.erased_at is not None:
        check_password_hash(_dummy_hash(hash_method), password or "x")
        return None
    if not user.check_password(password):
        return None
    if needs_rehash(user.password_hash, hash_method):
        user.password_hash = generate_password_hash(password, method=hash_method)
    return user


class AppMeta(Base):
    """Facts about this database as a whole, as key/value text (e.g. ``database_kind = demo``)."""

    __tablename__ = "app_meta"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(String(2000))


DATABASE_KIND = "database_kind"
DEMO_KIND = "demo"


class ApiToken(Base):
    """A bearer token for the JSON API. Only its SHA-256 is stored; the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, info={"personal": True}
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship()


class_members = Table(
    "class_members",
    Base.metadata,
    Column("class_id", ForeignKey("classes.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True,
           info={"personal": True}),
)


class SchoolClass(Base):
    """A teacher's class and its enrolled students."""

    __tablename__ = "classes"
    __table_args__ = (UniqueConstraint("teacher_id", "name"),
                      Index("uq_classes_sourced_id", "sourced_id", unique=True))

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    teacher_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: The school the class belongs to (its teacher's when created); NULL without schools.
    #: A plain integer, as ``users.school_id``.
    school_id: Mapped[int | None] = mapped_column(Integer, index=True, default=None)
    #: The class's OneRoster ``sourcedId`` when a roster import created or matched it.
    sourced_id: Mapped[str | None] = mapped_column(String(255), default=None)
    #: The language its students' tests are delivered in unless a student chooses another
    #: (a BCP 47 tag such as ``es`` or ``ar``); NULL: the language of the student's pages.
    test_language: Mapped[str | None] = mapped_column(String(35), default=None)

    teacher: Mapped[User] = relationship()
    students: Mapped[list[User]] = relationship(secondary=class_members, order_by="User.username")


class TimeAccommodation(enum.StrEnum):
    """How a student's time limits apply: as set, extended by a factor, or not at all."""

    STANDARD = "standard"
    EXTENDED = "extended"
    NONE = "none"


class Accommodation(Base):
    """A student's accommodations (personal data): extended time or no time limit."""

    __tablename__ = "accommodations"
    __table_args__ = (CheckConstraint("time_factor >= 1", name="time_factor_at_least_one"),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, info={"personal": True}
    )
    time: Mapped[TimeAccommodation] = mapped_column(
        enum_type(TimeAccommodation, "time_accommodation"), default=TimeAccommodation.STANDARD,
        info={"personal": True},
    )
    time_factor: Mapped[float] = mapped_column(Float, default=1.5, info={"personal": True})
    note: Mapped[str] = mapped_column(Text, default="", info={"personal": True})
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class AccessAction(enum.StrEnum):
    """What an access audit entry records."""

    ENROL = "enrol"
    UNENROL = "unenrol"
    CLASS_TEACHER = "class_teacher"
    ACCOMMODATION = "accommodation"


class AccessAudit(Base):
    """One change to who may see a student's work, or to a student's accommodation.

    Append-only: the database refuses ``UPDATE`` and ``DELETE`` on this table (triggers on
    SQLite and PostgreSQL, migration 0008). The ids are plain integers, not foreign keys, so an
    entry outlives the class (and never blocks deleting it); ``before`` and ``after`` are what
    changed, as JSON (``{"enrolled": false}``, an accommodation, a class's ``teacher_id``).
    """

    __tablename__ = "access_audit"
    __table_args__ = (Index("ix_access_audit_student_id_at", "student_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[AccessAction] = mapped_column(enum_type(AccessAction, "access_action"))
    class_id: Mapped[int | None] = mapped_column(Integer, index=True)
    student_id: Mapped[int | None] = mapped_column(Integer, info={"personal": True})
    before: Mapped[dict | None] = mapped_column(JSON, info={"personal": True})
    after: Mapped[dict | None] = mapped_column(JSON, info={"personal": True})


class PageSession(Base):
    """A browser signed in to the pages. The cookie carries a random id; only its SHA-256 is
    stored, so a copy of this table signs no one in.

    Deleting the row ends the session for every copy of the cookie (sign-out); a new password
    or deactivation deletes all of a user's rows. ``last_seen_at`` moves at most once a minute
    and bounds the idle time; ``created_at`` bounds the whole session (see ``api.sessions``).
    """

    __tablename__ = "page_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, info={"personal": True}
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def is_district_admin(user: User) -> bool:
    """Whether ``user`` administers the whole deployment (an administrator of no school)."""
    return user.role == Role.ADMIN and user.school_id is None


def admin_reaches_user(admin: User, user: User) -> bool:
    """Whether the administrator ``admin`` may see and manage ``user``.

    A district administrator reaches everyone; a school's administrator reaches the users of
    that school only. Anyone who is not an administrator reaches no one through this rule.
    """
    if admin.role != Role.ADMIN:
        return False
    return admin.school_id is None or user.school_id == admin.school_id


def admin_reaches_class(admin: User, klass: SchoolClass) -> bool:
    """Whether the administrator ``admin`` may see and manage the class ``klass``."""
    if admin.role != Role.ADMIN:
        return False
    return admin.school_id is None or klass.school_id == admin.school_id


def school_condition(admin: User, column):
    """A SQL condition limiting ``column`` (a ``school_id`` column) to what ``admin`` reaches.

    ``true()`` for a district administrator; ``column == admin.school_id`` for a school's.
    """
    from sqlalchemy import true

    if admin.school_id is None:
        return true()
    return column == admin.school_id
