"""Tables of the item bank: items, their tags, their parameter sets, and named tests.

An item's content (stem, options, key) is what a student sees and answers; its IRT parameters
live apart in :class:`ItemParameterSet` rows, because each calibration produces a new set and the
old ones are kept for provenance. Exactly one set per item is active (a partial unique index
enforces it).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from storage import Base, enum_type, utcnow

IRT_MODELS = ("rasch", "1pl", "2pl", "3pl", "4pl", "grm", "gpcm", "pcm")
#: The longest language tag kept (BCP 47 tags in use are far shorter: ``ar``, ``pt-BR``).
LANGUAGE_LENGTH = 35
#: The language of an item's own fields unless it says otherwise.
SOURCE_LANGUAGE = "en"


class ItemStatus(enum.StrEnum):
    """An item's place in its lifecycle: draft -> pretest -> operational -> retired."""

    DRAFT = "draft"
    PRETEST = "pretest"
    OPERATIONAL = "operational"
    RETIRED = "retired"


class Item(Base):
    """One question: its content, skill, content tags and lifecycle status.

    ``code`` is the identifier the assessment team uses (``item_id`` in CSV and QTI files).
    """

    __tablename__ = "items"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    stem: Mapped[str] = mapped_column(Text)
    options: Mapped[list[str]] = mapped_column(JSON, default=list)
    key: Mapped[int | None] = mapped_column(Integer)
    rationale: Mapped[str] = mapped_column(Text, default="")
    skill: Mapped[str] = mapped_column(String(80), index=True)
    status: Mapped[ItemStatus] = mapped_column(
        enum_type(ItemStatus, "item_status"),
        default=ItemStatus.DRAFT,
        index=True,
    )
    media: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: The language of the item's own fields (its source text); translations are in
    #: :class:`ItemTranslation`.
    language: Mapped[str] = mapped_column(String(LANGUAGE_LENGTH), default=SOURCE_LANGUAGE,
                                          server_default=SOURCE_LANGUAGE)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    tags: Mapped[list[ItemTag]] = relationship(
        back_populates="item", cascade="all, delete-orphan", order_by="ItemTag.tag"
    )
    parameter_sets: Mapped[list[ItemParameterSet]] = relationship(
        back_populates="item", cascade="all, delete-orphan", order_by="ItemParameterSet.id"
    )
    versions: Mapped[list[ItemVersion]] = relationship(
        back_populates="item", cascade="all, delete-orphan", order_by="ItemVersion.version"
    )
    status_events: Mapped[list[ItemStatusEvent]] = relationship(
        back_populates="item", cascade="all, delete-orphan", order_by="ItemStatusEvent.id"
    )
    translations: Mapped[list[ItemTranslation]] = relationship(
        back_populates="item", cascade="all, delete-orphan", order_by="ItemTranslation.language"
    )

    @property
    def content_tags(self) -> list[str]:
        """The item's content tags, sorted."""
        return [t.tag for t in self.tags]

    @property
    def active_parameters(self) -> ItemParameterSet | None:
        """The parameter set in use for every language, or ``None`` when the item is not
        calibrated yet."""
        return next((p for p in self.parameter_sets if p.is_active and p.language is None), None)

    @property
    def language_parameters(self) -> dict[str, ItemParameterSet]:
        """The active language-specific parameter sets (languages calibrated separately)."""
        return {p.language: p for p in self.parameter_sets
                if p.is_active and p.language is not None}

    def __repr__(self) -> str:
        return f"Item(code={self.code!r}, skill={self.skill!r}, status={self.status.value!r})"


class ItemTag(Base):
    """A content tag on an item (blueprint category, topic), used by content constraints."""

    __tablename__ = "item_tags"

    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(80), primary_key=True, index=True)
    item: Mapped[Item] = relationship(back_populates="tags")


class ItemParameterSet(Base):
    """IRT parameters of one item from one source, on the bank's theta scale (logistic, D = 1).

    ``a`` discrimination, ``b`` difficulty, ``c`` lower and ``d`` upper asymptote for dichotomous
    models; ``thresholds`` for polytomous ones (GRM, GPCM, PCM). ``source`` says where they came
    from (``generative-model``, ``calibration``, ``import``) and ``provenance`` the details
    (calibration run, settings, seed).
    """

    __tablename__ = "item_parameter_sets"
    __table_args__ = (
        CheckConstraint(
            "model IN (" + ", ".join(f"'{m}'" for m in IRT_MODELS) + ")", name="model_known"
        ),
        Index(
            "uq_item_parameter_sets_one_active",
            "item_id",
            unique=True,
            sqlite_where=text("is_active AND language IS NULL"),
            postgresql_where=text("is_active AND language IS NULL"),
        ),
        Index(
            "uq_item_parameter_sets_one_active_language",
            "item_id",
            "language",
            unique=True,
            sqlite_where=text("is_active AND language IS NOT NULL"),
            postgresql_where=text("is_active AND language IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(16))
    a: Mapped[float | None] = mapped_column(Float)
    b: Mapped[float | None] = mapped_column(Float)
    c: Mapped[float | None] = mapped_column(Float)
    d: Mapped[float | None] = mapped_column(Float)
    thresholds: Mapped[list[float] | None] = mapped_column(JSON)
    is_active: Mapped[bool] = mapped_column(default=True)
    #: ``None``: the set for every language (the default, responses of all languages pooled);
    #: a language tag: the set for attempts in that language, from a calibration that treated
    #: languages separately.
    language: Mapped[str | None] = mapped_column(String(LANGUAGE_LENGTH))
    source: Mapped[str] = mapped_column(String(40))
    provenance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sample_size: Mapped[int | None] = mapped_column(Integer)
    calibration_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("calibration_runs.id", ondelete="SET NULL"), index=True
    )
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    item: Mapped[Item] = relationship(back_populates="parameter_sets")

    def as_dict(self) -> dict[str, Any]:
        """The parameters in the form :meth:`cat_engine.ItemBank.from_records` reads."""
        return {"model": self.model, "a": self.a, "b": self.b, "c": self.c, "d": self.d,
                "thresholds": self.thresholds}


class ItemVersion(Base):
    """One saved version of an item's content; a content change adds a version, never edits one."""

    __tablename__ = "item_versions"
    __table_args__ = (UniqueConstraint("item_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    stem: Mapped[str] = mapped_column(Text)
    options: Mapped[list[str]] = mapped_column(JSON, default=list)
    key: Mapped[int | None] = mapped_column(Integer)
    rationale: Mapped[str] = mapped_column(Text, default="")
    media: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    note: Mapped[str] = mapped_column(Text, default="")

    item: Mapped[Item] = relationship(back_populates="versions")


class ItemTranslation(Base):
    """An item's text in another language than its source: stem, options and rationale.

    The key, the media and the parameters stay the item's: a translation has as many options as
    the item, in the same order. ``version`` is the item's content version it was made from (a
    reviewer can tell a translation older than the source).
    """

    __tablename__ = "item_translations"

    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )
    language: Mapped[str] = mapped_column(String(LANGUAGE_LENGTH), primary_key=True)
    stem: Mapped[str] = mapped_column(Text)
    options: Mapped[list[str]] = mapped_column(JSON, default=list)
    rationale: Mapped[str] = mapped_column(Text, default="")
    source_version: Mapped[int] = mapped_column(Integer, default=1)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 onupdate=utcnow)

    item: Mapped[Item] = relationship(back_populates="translations")

    def as_dict(self) -> dict[str, Any]:
        """The translated text: ``stem``, ``options``, ``rationale``."""
        return {"stem": self.stem, "options": list(self.options), "rationale": self.rationale}


class ItemStatusEvent(Base):
    """A status change of an item: from what, to what, by whom, when and why."""

    __tablename__ = "item_status_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[ItemStatus | None] = mapped_column(
        enum_type(ItemStatus, "item_status_from")
    )
    to_status: Mapped[ItemStatus] = mapped_column(enum_type(ItemStatus, "item_status_to"))
    changed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reason: Mapped[str] = mapped_column(Text, default="")

    item: Mapped[Item] = relationship(back_populates="status_events")


test_items = Table(
    "test_items",
    Base.metadata,
    Column("test_id", ForeignKey("tests.id", ondelete="CASCADE"), primary_key=True),
    Column("item_id", ForeignKey("items.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class AdaptiveTest(Base):
    """A named test: which items it draws from and the engine configuration that delivers it.

    ``config`` is plain JSON (item selection, exposure control, content constraints, stopping
    rules), so the same configuration rebuilds the same engine.
    """

    __tablename__ = "tests"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    bank_filter: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    cut_scores: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    #: Texts in other languages: ``{language: {"name", "description", "skills": {skill: name}}}``
    #: (every part optional; readers of a language missing here see the English fields).
    translations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict,
                                                         server_default="{}")
    version: Mapped[int] = mapped_column(Integer, default=1)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    items: Mapped[list[Item]] = relationship(secondary=test_items, order_by="Item.id")

    def __repr__(self) -> str:
        return f"AdaptiveTest(name={self.name!r})"


class BankSnapshot(Base):
    """Exactly what one version of a test delivers: its items' content, keys and parameters.

    Built when a test is started and its bank differs from every earlier snapshot (``fingerprint``
    is the SHA-256 of ``content``). Attempts point at the snapshot they started with, so an attempt
    resumes on the bank it began on, and each process caches the numpy arrays per snapshot.
    """

    __tablename__ = "bank_snapshots"
    __table_args__ = (UniqueConstraint("test_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    test_id: Mapped[int] = mapped_column(ForeignKey("tests.id", ondelete="CASCADE"))
    test_version: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ItemExposure(Base):
    """How often an item was presented in a test (the exposure counter)."""

    __tablename__ = "item_exposures"

    test_id: Mapped[int] = mapped_column(
        ForeignKey("tests.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    administered: Mapped[int] = mapped_column(Integer, default=0)


class EligibilityTotal(Base):
    """Item eligibility's record for a test: finished attempts, and how many were feasible.

    An attempt is feasible when it never had to release the items it withheld as ineligible.
    With :class:`EligibilityCount` these are the counts the item-eligibility method of van der
    Linden and Veldkamp computes each item's probability of eligibility from
    (:class:`cat_engine.exposure.ItemEligibility`); they grow as attempts finish.
    """

    __tablename__ = "eligibility_totals"

    test_id: Mapped[int] = mapped_column(
        ForeignKey("tests.id", ondelete="CASCADE"), primary_key=True
    )
    tests: Mapped[int] = mapped_column(Integer, default=0)
    feasible: Mapped[int] = mapped_column(Integer, default=0)


class EligibilityCount(Base):
    """Item eligibility's record for one item in a test, over finished attempts.

    ``administered``: attempts that gave the item (scored); ``ineligible``: feasible attempts
    that withheld it. An item was eligible (or released) in ``tests - ineligible`` attempts.
    """

    __tablename__ = "eligibility_counts"

    test_id: Mapped[int] = mapped_column(
        ForeignKey("tests.id", ondelete="CASCADE"), primary_key=True
    )
    item_id: Mapped[int] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    administered: Mapped[int] = mapped_column(Integer, default=0)
    ineligible: Mapped[int] = mapped_column(Integer, default=0)


class RunStatus(enum.StrEnum):
    """Where a calibration run stands."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    PUBLISHED = "published"


class ResponseUpload(Base):
    """A response-data file uploaded for calibration (long or wide CSV), kept as sent."""

    __tablename__ = "response_uploads"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(255), default="")
    layout: Mapped[str] = mapped_column(String(10))
    content: Mapped[str] = mapped_column(Text)
    n_persons: Mapped[int] = mapped_column(Integer)
    n_items: Mapped[int] = mapped_column(Integer)
    n_responses: Mapped[int] = mapped_column(Integer)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CalibrationRun(Base):
    """A calibration: its input, settings, progress, result (parameters, fit, DIF), publication."""

    __tablename__ = "calibration_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # "upload" or "online"
    upload_id: Mapped[int | None] = mapped_column(
        ForeignKey("response_uploads.id", ondelete="SET NULL")
    )
    test_id: Mapped[int | None] = mapped_column(ForeignKey("tests.id", ondelete="SET NULL"))
    model: Mapped[str] = mapped_column(String(16))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[RunStatus] = mapped_column(
        enum_type(RunStatus, "run_status"), default=RunStatus.QUEUED, index=True
    )
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The worker running it (host:pid) and when it last said it was alive.
    worker: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    published_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ImportStatus(enum.StrEnum):
    """Where a background item import stands."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ItemImport(Base):
    """A large item file imported by a background worker, all or nothing.

    The file is kept (``content``) only until the worker has finished with it. ``result`` is
    the import summary once it succeeded; ``problems`` the records refused when it failed (each
    naming line, item and field), in which case nothing of the file is in the bank.
    """

    __tablename__ = "item_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    filename: Mapped[str] = mapped_column(String(255), default="")
    mode: Mapped[str] = mapped_column(String(10))
    skill: Mapped[str | None] = mapped_column(String(80))
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    n_records: Mapped[int] = mapped_column(Integer)
    status: Mapped[ImportStatus] = mapped_column(
        enum_type(ImportStatus, "item_import_status"), default=ImportStatus.QUEUED, index=True
    )
    message: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    problems: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    worker: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
