"""Build the demo database: generated items with model-based parameters, accounts and one test.

Every account made here exists only in a database marked ``database_kind = demo`` in ``app_meta``;
:func:`build_demo` refuses to touch a database that holds anything else.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from item_bank.demo_items import generate_demo_items
from item_bank.models import AdaptiveTest, Item, ItemParameterSet, ItemStatus, ItemTag
from storage import DatabaseError, mask_url
from storage.accounts import DATABASE_KIND, DEMO_KIND, AppMeta, Role, User
from storage.migrate import downgrade, upgrade

DEMO_PASSWORD = "demo-password"
DEMO_STUDENTS = 30
DEMO_TEST_NAME = "Mathematics check-up (adaptive)"
DEMO_TEST_CONFIG = {
    "start": {"theta": 0.0},
    "estimator": {"method": "eap", "prior": {"mean": 0.0, "sd": 1.0},
                  "grid": {"lo": -4.0, "hi": 4.0, "points": 61}},
    "selection": {"method": "mfi"},
    "exposure": {"method": "randomesque", "n": 5},
    "stopping": {"se": 0.35, "max_items": 25, "min_items": 8},
}


class NotADemoDatabase(DatabaseError):
    """The target database holds data that did not come from ``cat-engine demo``."""


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`build_demo` made."""

    items: int
    items_per_skill: dict[str, int]
    usernames: list[str]
    test_name: str
    rebuilt: bool


def is_demo_database(engine: Engine) -> bool | None:
    """``True`` for a demo database, ``False`` for any other non-empty one, ``None`` when empty."""
    tables = set(inspect(engine).get_table_names())
    if not tables:
        return None
    if "app_meta" not in tables:
        return False
    with engine.connect() as connection:
        kind = connection.scalar(select(AppMeta.value).where(AppMeta.key == DATABASE_KIND))
    return kind == DEMO_KIND


def build_demo(engine: Engine, n_items: int = 320, seed: int = 20261123) -> DemoSummary:
    """Create (or re-create) the demo database on ``engine``.

    An empty database is migrated and filled; an earlier demo database is emptied first. Anything
    else is refused with :class:`NotADemoDatabase`, before a single change is made.

    Parameters
    ----------
    engine
        Where to build.
    n_items
        How many items to generate (at least 1; the demo proper uses 300 or more).
    seed
        Seed of the item generator, so the same demo comes out every time.
    """
    if n_items < 1:
        raise ValueError(f"--items must be at least 1, got {n_items}")
    state = is_demo_database(engine)
    if state is False:
        tables = sorted(inspect(engine).get_table_names())
        shown = ", ".join(tables[:6]) + (", ..." if len(tables) > 6 else "")
        raise NotADemoDatabase(
            f"refusing to build the demo in {mask_url(engine.url)}: it already holds a database "
            f"that was not made by 'cat-engine demo' (tables: {shown}); point DATABASE_URL at an "
            "empty database or a new SQLite file"
        )
    items = generate_demo_items(n_items, seed=seed)
    usernames = (
        [f"student{i}" for i in range(1, DEMO_STUDENTS + 1)] + ["teacher1", "assessor1"]
    )
    try:
        # One transaction from teardown to the last row: on PostgreSQL a failure leaves the
        # database as it was. (SQLite commits DDL as it goes, so there the rebuild is best effort.)
        with engine.begin() as connection:
            if state is True:
                downgrade(connection, "base")
            upgrade(connection)
            session = Session(bind=connection)
            session.add(AppMeta(key=DATABASE_KIND, value=DEMO_KIND))
            _add_accounts(session, usernames)
            rows = [_item_row(item, seed) for item in items]
            session.add_all(rows)
            session.add(
                AdaptiveTest(
                    name=DEMO_TEST_NAME,
                    description="A short adaptive check-up across arithmetic, fractions, ratios, "
                    "percentages, equations and tables. Each question is chosen for you.",
                    config=DEMO_TEST_CONFIG,
                    items=rows,
                )
            )
            session.flush()
            session.close()
    except SQLAlchemyError as error:
        raise DatabaseError(f"could not write the demo data: {error.__class__.__name__}") from error
    return DemoSummary(
        items=len(items),
        items_per_skill=dict(sorted(Counter(i.skill for i in items).items())),
        usernames=usernames,
        test_name=DEMO_TEST_NAME,
        rebuilt=state is True,
    )


def _add_accounts(session, usernames: list[str]) -> None:
    # One hash for all demo accounts: they share a published password, so per-account salts would
    # protect nothing, and 32 scrypt computations would add seconds to every demo build.
    password_hash = generate_password_hash(DEMO_PASSWORD)
    for username in usernames:
        if username.startswith("student"):
            role, name = Role.STUDENT, f"Student {username.removeprefix('student')}"
        elif username.startswith("teacher"):
            role, name = Role.TEACHER, "Teacher One"
        else:
            role, name = Role.ASSESSOR, "Assessor One"
        session.add(
            User(username=username, display_name=name, role=role, password_hash=password_hash)
        )


def _item_row(item, seed: int) -> Item:
    row = Item(
        code=item.item_id,
        stem=item.stem,
        options=list(item.options),
        key=item.key,
        rationale=item.rationale,
        skill=item.skill,
        status=ItemStatus.OPERATIONAL,
    )
    row.tags = [ItemTag(tag=tag) for tag in sorted(set(item.content_tags))]
    row.parameter_sets = [
        ItemParameterSet(
            model=item.model,
            a=item.a,
            b=item.b,
            c=item.c,
            d=None,
            is_active=True,
            source="generative-model",
            provenance={
                "generator": "item_bank.demo_items",
                "seed": seed,
                "features": item.features,
            },
        )
    ]
    return row
