"""Build the demo database: generated items with model-based parameters, accounts and one test.

Every account made here exists only in a database marked ``database_kind = demo`` in ``app_meta``;
:func:`build_demo` refuses to touch a database that holds anything else.
"""

from __future__ import annotations

import os
import stat
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, inspect, literal, select, update
from sqlalchemy import table as table_named
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from calibration import CalibrationResult, calibrate
from calibration.data import from_long
from cat_engine import ItemBank
from cat_engine.models import simulate_responses
from evidence import defenses
from evidence.attempts import start_attempt, submit_response
from evidence.models import (
    Assignment,
    Attempt,
    Draft,
    DraftComment,
    Rubric,
    RubricCalibration,
    RubricCalibrationStatus,
)
from evidence.rubrics import create_rubric
from evidence.statements import (
    ADL_VERBS,
    Writer,
    client_authority,
    store_statements,
    student_agent,
)
from evidence.tasks import bank_skills, create_task
from evidence.xapi_clients import create_client
from item_bank.demo_items import SKILLS, demo_item_translations, generate_demo_items
from item_bank.models import (
    AdaptiveTest,
    Item,
    ItemParameterSet,
    ItemStatus,
    ItemStatusEvent,
    ItemTag,
    ItemTranslation,
    ItemVersion,
)
from item_bank.services import delivery_bank
from storage import DatabaseError, make_engine, mask_url, utcnow
from storage.accounts import (
    DATABASE_KIND,
    DEMO_KIND,
    AppMeta,
    Role,
    School,
    SchoolClass,
    User,
)
from storage.migrate import upgrade
from storage.rights import PrivacyNote

DEMO_PASSWORD = "demo-password"
FIELD_TRIAL_RESPONSES_PER_ITEM = 1500
FIELD_TRIAL_LENGTH = 40
DEMO_STUDENTS = 30
#: Where ``make demo`` serves the demo unless told otherwise (``--port``, CAT_ENGINE_PUBLIC_URL).
DEMO_BASE_URL = "http://127.0.0.1:5000"
DEMO_TEST_NAME = "Mathematics check-up (adaptive)"
#: Every demo account and class is in this school, except ``admin1``, the district's
#: administrator; ``schooladmin1`` administers the school alone.
DEMO_SCHOOL = "Demo School"
DISTRICT_ADMIN = "admin1"
#: The exposure target: no item should be in more than this share of tests. The control withholds
#: items from ``DEMO_EXPOSURE_LIMIT`` on, as restricted progressive overshoots its limit by a few
#: points between updates of the counters (checked by simulation in tests/api/test_demo_engine.py).
DEMO_EXPOSURE_TARGET = 0.2
DEMO_EXPOSURE_LIMIT = 0.15
#: The blueprint: every test has this many items of each skill at least, and at most.
DEMO_MIN_PER_SKILL = 2
DEMO_MAX_PER_SKILL = 5


def demo_test_config(items_per_skill: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The demo test's engine configuration, for a bank with ``items_per_skill``.

    - **Content**: Kingsbury-Zara control over the six skills, each at least
      ``DEMO_MIN_PER_SKILL`` and at most ``DEMO_MAX_PER_SKILL`` items (fewer when a small bank,
      ``--items``, has fewer). With equal shares the skills come round in turn, so the first
      ``6 * DEMO_MIN_PER_SKILL`` items (``min_items``) hold every skill's minimum.
    - **Exposure**: restricted progressive (Revuelta and Ponsoda, 1998): early items nearly at
      random, later ones nearly the most informative; items given in ``DEMO_EXPOSURE_LIMIT`` of
      the tests so far are withheld while others remain.
    - **Start**: the first item is chosen at a random theta in [-1, 1].

    Parameters
    ----------
    items_per_skill
        How many items the bank has of each skill; ``None`` for the full demo bank.
    """
    counts = items_per_skill or dict.fromkeys(SKILLS, DEMO_MAX_PER_SKILL)
    rules = [{"tag": skill, "min": min(DEMO_MIN_PER_SKILL, counts[skill]),
              "max": DEMO_MAX_PER_SKILL} for skill in SKILLS if counts.get(skill)]
    return {
        "start": {"random": [-1.0, 1.0]},
        "estimator": {"method": "eap", "prior": {"mean": 0.0, "sd": 1.0},
                      "grid": {"lo": -4.0, "hi": 4.0, "points": 61}},
        "selection": {"method": "mfi"},
        "exposure": {"method": "progressive", "r_max": DEMO_EXPOSURE_LIMIT},
        "constraints": {"method": "kingsbury-zara", "content": rules},
        "stopping": {"se": 0.35, "max_items": 25,
                     "min_items": sum(rule["min"] for rule in rules)},
    }


DEMO_TEST_CONFIG = demo_test_config()
DEMO_CUT_SCORES = {"overall": 0.0}


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
    """``True`` for a demo database, ``False`` for any other non-empty one, ``None`` when empty.

    A database migrated by ``cat-engine db upgrade`` that holds no user, item or metadata yet
    counts as empty: there is nothing in it to lose.
    """
    tables = set(inspect(engine).get_table_names())
    if not tables:
        return None
    if not {"app_meta", "users", "items"} <= tables:
        return False
    with engine.connect() as connection:
        kind = connection.scalar(select(AppMeta.value).where(AppMeta.key == DATABASE_KIND))
        if kind is None and not any(
                connection.scalar(select(literal(1)).select_from(table_named(name)).limit(1))
                for name in ("app_meta", "users", "items")):
            return None
    return kind == DEMO_KIND


def build_demo(engine: Engine, n_items: int = 320, seed: int = 20261123,
               base_url: str = DEMO_BASE_URL) -> DemoSummary:
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
    base_url
        The address the demo will be served at (the xAPI agents' ``homePage`` and the task's
        activity id in the demo's step log).
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
    calibration = field_trial_calibration(items, seed)
    usernames = (
        [f"student{i}" for i in range(1, DEMO_STUDENTS + 1)]
        + ["teacher1", "teacher2", "teacher3", "assessor1", DISTRICT_ADMIN, "schooladmin1"]
    )

    def fill(connection: Connection) -> None:
        _fill(connection, items, calibration, usernames, seed, base_url)

    try:
        path = _sqlite_file(engine.url)
        if path is not None:
            _build_beside(engine, path, fill)
        else:
            # One transaction from teardown to the last row: PostgreSQL's DDL is transactional,
            # so a failure anywhere leaves the old demo exactly as it was.
            with engine.begin() as connection:
                _drop_all_tables(connection)
                fill(connection)
    except OSError as error:  # the new SQLite file could not be made or moved into place
        raise DatabaseError(
            f"could not write the demo database file for {mask_url(engine.url)} "
            f"({error.strerror or error}); the database was left as it was"
        ) from error
    except SQLAlchemyError as error:
        first = str(getattr(error, "orig", None) or error).strip().splitlines()
        reason = f"{error.__class__.__name__}: {first[0]}" if first else error.__class__.__name__
        raise DatabaseError(
            f"could not write the demo data to {mask_url(engine.url)} ({reason}); "
            "the database was left as it was"
        ) from error
    return DemoSummary(
        items=len(items),
        items_per_skill=dict(sorted(Counter(i.skill for i in items).items())),
        usernames=usernames,
        test_name=DEMO_TEST_NAME,
        rebuilt=state is True,
    )


def demo_translations() -> dict[str, dict]:
    """The demo test's texts in Spanish and Arabic: its name, description and six skill
    names."""
    return {"ar": {
        "name": "مراجعة الرياضيات (اختبار تكيّفي)",
        "description": "مراجعة قصيرة وتكيّفية للحساب والكسور والنسب والنسب المئوية والمعادلات "
                       "والجداول. يُختار كل سؤال من أجلك.",
        "skills": {"arithmetic": "الحساب", "fractions": "الكسور", "ratios": "النسب",
                   "percentages": "النسب المئوية", "equations": "المعادلات",
                   "tables": "قراءة جدول"},
    }, "es": {
        "name": "Repaso de matemáticas (adaptativo)",
        "description": "Un repaso breve y adaptativo de aritmética, fracciones, razones, "
                       "porcentajes, ecuaciones y tablas. Cada pregunta se elige para ti.",
        "skills": {"arithmetic": "Aritmética", "fractions": "Fracciones", "ratios": "Razones",
                   "percentages": "Porcentajes", "equations": "Ecuaciones",
                   "tables": "Leer una tabla"},
    }}


DEMO_PRIVACY_TITLE = "Your data at this school: what we keep and why"
#: The demo's privacy note: plain words for 12-year-olds and their parents.
DEMO_PRIVACY_NOTE = """\
This note says what the school's quiz and report system keeps about you, why it keeps it, who can \
see it, and for how long. If anything here is unclear, ask your teacher or the school office.

**What we keep**

- Your name and username, so you can sign in and your teachers know whose work it is.
- Your answers to quizzes, how long each took, and your results.
- The drafts you hand in for tasks, the comments on them, and the steps you took in learning apps.
- Your teachers' scores of your oral defenses, their decisions about your skills, and any appeal \
you make.
- Extra time you are allowed in tests, if you have it.

**Why we keep it**

- To choose quiz questions that fit you, and to show you and your teachers what you have \
mastered and what to practise next.
- To let your teachers decide about your skills. The computer only suggests; a teacher decides, \
and you can appeal.

**Who can see it**

- You can see your own results and download everything we keep about you.
- Your teachers see the work done in their classes. School administrators can see what they \
need to run the school.
- Nobody outside the school sees your name. If your answers are used for research (for example \
to check new quiz questions), this only happens if you and your parents agree, and your name is \
replaced by a random code.

**How long we keep it**

The list below says how long each kind of record is kept. You or your parents can ask the school \
to erase your data at any time. Every time someone reads your report or your work, it is written \
down, so you can see who looked.
"""
DEMO_RETENTION = {"attempts": 1095, "statements": 730, "drafts": 1095, "page_sessions": 30,
                  "report_jobs": 30}


def _fill(connection: Connection, items, calibration: CalibrationResult,
          usernames: list[str], seed: int, base_url: str) -> None:
    """Migrate an empty database on ``connection`` to head and write the demo into it."""
    upgrade(connection)
    session = Session(bind=connection)
    session.add(AppMeta(key=DATABASE_KIND, value=DEMO_KIND))
    accounts = _add_accounts(session, usernames)
    school = School(name=DEMO_SCHOOL)
    session.add(school)
    session.flush()
    for account in accounts:
        account.school_id = None if account.username == DISTRICT_ADMIN else school.id
    rows = [_item_row(item, seed, calibration) for item in items]
    session.add_all(rows)
    test = AdaptiveTest(
        name=DEMO_TEST_NAME,
        description="A short adaptive check-up across arithmetic, fractions, ratios, "
        "percentages, equations and tables. Each question is chosen for you.",
        config=demo_test_config(Counter(item.skill for item in items)),
        cut_scores=DEMO_CUT_SCORES,
        translations=demo_translations(),
        items=rows,
    )
    students = [u for u in accounts if u.role == Role.STUDENT]
    teacher, *co_teachers = [u for u in accounts if u.role == Role.TEACHER]
    # Two classes, so a teacher's view and a student's list are not the whole school.
    half = len(students) // 2
    classes = [
        SchoolClass(name="Year 8 Maths", teacher=teacher, students=students[:half],
                    school_id=school.id),
        SchoolClass(name="Year 9 Maths", teacher=teacher, students=students[half:],
                    school_id=school.id),
    ]
    session.add_all([test, *classes])
    session.flush()
    session.add_all([Assignment(class_id=c.id, test_id=test.id) for c in classes])
    session.flush()
    _add_evidence(session, teacher, classes[0], students[0], base_url)
    rubric = demo_rubric(session, teacher)
    _add_defenses(session, teacher, co_teachers, classes[0], students[:DEMO_CLUB_SIZE], rubric.id)
    _publish_demo_calibration(session, rubric, [teacher, *co_teachers])
    _add_attempts(session, students, test.id, base_url, seed)
    admin = next(u for u in accounts if u.username == "admin1")  # the district's
    session.add(PrivacyNote(version=1, title=DEMO_PRIVACY_TITLE, body=DEMO_PRIVACY_NOTE,
                            retention=dict(DEMO_RETENTION), keep_anonymous_responses=True,
                            published_by=admin.id))
    session.flush()
    session.execute(update(SchoolClass).where(SchoolClass.school_id.is_(None))
                    .values(school_id=school.id))  # the club and study group, made above
    session.close()


#: The demo's step log is about ``student1`` of "Year 8 Maths": a task with two versions and a
#: comment, and a practice app's statements (worked on the task, answered steps, asked for help,
#: tried a step again), so that a portfolio shows each section from the start.
DEMO_TASK = {
    "title": "Comparing fractions",
    "instructions": "Explain how you decide which of two fractions is larger.\n\n"
                    "- Give **two** examples, one with the same denominator.\n"
                    "- Say why your method always works.",
    "skills": ["fractions"],
}
DEMO_DRAFTS = [
    "To compare fractions I look at the bigger number on top.\n\nExample: 3/8 and 5/8: "
    "5/8 is bigger.",
    "To compare two fractions I write them with the same denominator, then compare the "
    "numerators.\n\n- 3/8 and 5/8: same denominator, so 5/8 is larger.\n- 2/3 and 3/4: "
    "8/12 and 9/12, so 3/4 is larger.\n\nIt always works because equal denominators mean "
    "equal-sized parts.",
]
DEMO_COMMENT = "Good start. Does your method work for 2/3 and 3/4? Try it."


def _add_evidence(session: Session, teacher: User, klass: SchoolClass, student: User,
                  base_url: str) -> None:
    """A task with two versions of ``student``'s work and a comment, and a practice app's
    statements about them (through the same services the API uses)."""
    now = utcnow()
    known = set(bank_skills(session))  # a small demo bank may lack a skill
    task = create_task(session, teacher, klass, base_url=base_url, due_at=now + timedelta(days=5),
                       **{**DEMO_TASK, "skills": [s for s in DEMO_TASK["skills"] if s in known]})
    drafts = [Draft(task_id=task.id, student_id=student.id, version=n + 1, body=body,
                    final=n == len(DEMO_DRAFTS) - 1, submitted_at=now - timedelta(days=2 - n))
              for n, body in enumerate(DEMO_DRAFTS)]
    session.add_all(drafts)
    session.flush()
    session.add(DraftComment(draft_id=drafts[0].id, author_id=teacher.id, body=DEMO_COMMENT,
                             created_at=now - timedelta(days=1, hours=12)))
    client, _secret = create_client(session, teacher, name="Fractions practice app",
                                    class_id=klass.id)
    steps = [("experienced", "task", None), ("answered", 1, True), ("answered", 2, False),
             ("asked", 2, None), ("answered", 2, True), ("answered", 3, True),
             ("experienced", "task", None), ("completed", "task", None)]
    registration = str(uuid.uuid4())
    statements = []
    for n, (verb, what, success) in enumerate(steps):
        if what == "task":
            activity = {"id": task.activity_id,
                        "definition": {"name": {"en-US": DEMO_TASK["title"]}}}
        else:
            activity = {"id": f"https://practice.example/fractions/step/{what}",
                        "definition": {"name": {"en-US": f"Fractions practice, step {what}",
                                                "es": f"Práctica de fracciones, paso {what}"}}}
        statement = {
            "actor": student_agent(base_url, student.pseudonym),
            "verb": {"id": ADL_VERBS + verb, "display": {"en-US": verb}},
            "object": activity,
            "context": {"registration": registration,
                        "contextActivities": {"grouping": [{"id": task.activity_id}]}},
            "timestamp": (now - timedelta(days=1, minutes=60 - 5 * n)).isoformat(),
        }
        if success is not None:
            statement["result"] = {"success": success}
        statements.append(statement)
    writer = Writer(client_id=client.id, class_id=klass.id,
                    authority=client_authority(base_url, client.key, client.name))
    store_statements(session, statements, base_url=base_url, writer=writer, now=now, batch=True)
    session.flush()


#: The demo's rubric for oral defenses about fractions: four criteria, each on a skill of the
#: demo bank, with four levels scored 1 to 4.
DEMO_RUBRIC_NAME = "Oral defense: fractions"
DEMO_RUBRIC_DESCRIPTION = (
    "For a short oral defense (about five minutes) in which a student explains their work on "
    "fractions and answers questions about it.")
DEMO_RUBRIC_LEVELS = ("Beginning", "Developing", "Secure", "Extending")
DEMO_RUBRIC_CRITERIA = [
    ("understanding", "Understanding of fractions", "fractions",
     "What a fraction means: parts of a whole, equal parts, the role of numerator and "
     "denominator.",
     ("Describes a fraction only as 'a number on top of another'; cannot say what the parts "
      "are or why they must be equal.",
      "Explains a fraction as parts of a whole with a familiar example, but loses the idea of "
      "equal parts or of the whole when the example changes.",
      "Explains numerator and denominator correctly in several examples, including fractions "
      "greater than one, and says why the parts must be equal.",
      "Moves freely between parts of a whole, points on a number line and division, and uses "
      "these meanings to explain equivalent fractions without prompting.")),
    ("calculation", "Accurate calculation", "arithmetic",
     "Carrying out the calculations of the work correctly and checking them.",
     ("Makes errors in most calculations (for example adds numerators and denominators) and "
      "does not notice them when asked.",
      "Calculates correctly with the same denominator but makes errors with different "
      "denominators; corrects some errors when they are pointed out.",
      "Calculates correctly with unlike denominators and simplifies results; checks an answer "
      "when asked whether it is reasonable.",
      "Calculates correctly and efficiently, chooses a sensible common denominator, and checks "
      "answers unprompted by estimating.")),
    ("representation", "Diagrams and tables", "tables",
     "Using diagrams, number lines and tables to show and explain fractions.",
     ("Draws a diagram that does not match the fraction (unequal parts, wrong whole) or uses "
      "none.",
      "Draws a correct diagram for a simple fraction but cannot use it to explain a comparison "
      "or a calculation.",
      "Uses a diagram, a number line or a table correctly to explain a comparison or a "
      "calculation, and labels it.",
      "Chooses the representation that makes the argument clearest, and explains how two "
      "representations of the same fraction correspond.")),
    ("reasoning", "Reasoning and justification", "ratios",
     "Justifying a method and answering 'why' and 'what if' questions about it.",
     ("Gives answers without reasons, or repeats the steps when asked why they work.",
      "Gives a reason for one step with help, but cannot say whether the method works for "
      "other fractions.",
      "Justifies the method in general terms and answers a 'what if' question (for example "
      "'what if the denominators differ?') correctly.",
      "Gives a convincing general argument, finds the limits of a method by example, and "
      "relates fractions to ratios and proportions on their own.")),
]


def demo_rubric(session: Session, user: User) -> Rubric:
    """Create the demo's rubric "Oral defense: fractions" (version 1), authored by ``user``.

    Four criteria with four levels scored 1 to 4, each linked to a skill of the demo bank. A
    small demo bank (``--items``) may lack a skill: such a criterion takes the first skill the
    bank has, so the rubric is always valid.
    """
    known = bank_skills(session)
    criteria = [
        {"code": code, "name": name, "description": description,
         "skill": skill if skill in known else known[0],
         "levels": [{"score": n + 1, "label": label, "descriptor": descriptor}
                    for n, (label, descriptor) in enumerate(zip(DEMO_RUBRIC_LEVELS, descriptors,
                                                                strict=True))]}
        for code, name, skill, description, descriptors in DEMO_RUBRIC_CRITERIA]
    rubric = create_rubric(session, user, name=DEMO_RUBRIC_NAME,
                           description=DEMO_RUBRIC_DESCRIPTION, criteria=criteria,
                           note="The demo's rubric")
    session.flush()
    return rubric
#: Oral defenses: "Teacher Two" runs a maths club with the first students of "Year 8 Maths", so
#: they co-rate those students' defenses with Teacher One; "Teacher Three" (a small study group)
#: adjudicates. Three defenses: final (the raters agree within a level), adjudicated (they were
#: three levels apart on one criterion), and one waiting for Teacher Two's sheet.
DEMO_CLUB_SIZE = 4


#: Days before the demo is built at which every student took the check-up (twice: once about
#: six weeks ago and once last week, a little stronger the second time), so that reports have
#: a history, a trajectory and evidence of different ages.
DEMO_ATTEMPT_DAYS = (40, 6)
DEMO_GAIN = 0.3


def take_test(session: Session, student: User, test_id: int, theta: float, when: datetime,
              rng: np.random.Generator, base_url: str = DEMO_BASE_URL,
              seconds_per_item: float = 25.0) -> Attempt:
    """``student`` takes the test at ``when`` through the same services as the API, answering
    each item as a student of ability ``theta`` would (drawn from the item's parameters).

    For the demo, tests and benchmarks: the attempt, its responses and statements are real.
    """
    attempt, reply, _ = start_attempt(session, student, test_id, now=when, base_url=base_url)
    delivery = delivery_bank(session, attempt.snapshot_id)
    moment = when
    position = 0
    while reply.get("item") is not None:
        item = reply["item"]
        code = delivery.codes[item["id"]]
        entry = delivery.items[code]
        if code in delivery.pretest:  # no parameters yet: a coin toss, or the lowest category
            right = bool(rng.random() < 0.5)
            response = (entry["key"] if right else (entry["key"] + 1) % len(entry["options"])) \
                if entry["key"] is not None and len(entry["options"]) > 1 else 0
        elif entry["key"] is None:
            index = delivery.bank.indices_of([code])
            response = int(simulate_responses(delivery.bank, index, np.array([theta]), rng)[0])
        else:
            index = delivery.bank.indices_of([code])
            right = bool(simulate_responses(delivery.bank, index, np.array([theta]), rng)[0])
            wrong = [k for k in range(len(entry["options"])) if k != entry["key"]]
            response = entry["key"] if right or not wrong else int(rng.choice(wrong))
        seconds = float(rng.gamma(4.0, seconds_per_item / 4.0))
        moment = moment + timedelta(seconds=seconds)
        position += 1
        reply, _ = submit_response(session, student, attempt.id, item["id"], response,
                                   f"demo-{attempt.id}-{position}",
                                   response_time_ms=int(seconds * 1000), now=moment,
                                   base_url=base_url)
    session.refresh(attempt)
    return attempt


#: The demo rubric's criteria on the bank's scale: set by hand for the demo (a real calibration
#: needs 100 students with both answers and ratings), and labelled so in its provenance.
DEMO_CRITERION_PARAMETERS = {"a": 1.0, "thresholds": [-1.4, -0.1, 1.3]}
DEMO_SEVERITIES = (0.25, -0.25, 0.0)


def _publish_demo_calibration(session: Session, rubric: Rubric, raters: list[User]) -> None:
    """A published calibration of the demo rubric, so that its scores count in reports on the
    same scale as answers. Its provenance says the figures are the demo's, not estimated."""
    version = rubric.versions[-1]
    session.add(RubricCalibration(
        rubric_version_id=version.id, model="gpcm",
        status=RubricCalibrationStatus.PUBLISHED,
        criteria={str(c.id): {"code": c.code, "model": "gpcm", "n": 0, "se": None,
                              **DEMO_CRITERION_PARAMETERS} for c in version.criteria},
        raters={str(r.id): {"severity": s, "se": None, "n": 0}
                for r, s in zip(raters, DEMO_SEVERITIES, strict=True)},
        provenance={"demo": True, "note": "Illustrative parameters set by hand for the demo "
                    "database; not estimated from data."},
        n_students=0, created_by=raters[0].id, published_by=raters[0].id,
        published_at=utcnow()))
    session.flush()


def _add_attempts(session: Session, students: list[User], test_id: int, base_url: str,
                  seed: int) -> None:
    """Every student takes the check-up twice (:data:`DEMO_ATTEMPT_DAYS`), so that the mastery
    reports, the dashboard and the trajectory have something to show."""
    rng = np.random.default_rng(seed + 15)
    now = utcnow()
    theta = rng.normal(0.0, 1.0, len(students))
    for n, days in enumerate(DEMO_ATTEMPT_DAYS):
        for student, ability in zip(students, theta, strict=True):
            take_test(session, student, test_id, float(ability + n * DEMO_GAIN),
                      now - timedelta(days=days, hours=int(rng.integers(0, 8))), rng, base_url)
    session.flush()


def _add_defenses(session: Session, teacher: User, co_teachers: list[User],
                  klass: SchoolClass, club: list[User], rubric_id: int) -> None:
    """Three defenses in ``klass`` scored by ``teacher`` and the second teacher (through the
    defense services, so the demo follows the same rules as the app)."""
    second, third = co_teachers
    session.add_all([SchoolClass(name="Maths Club", teacher=second, students=club),
                     SchoolClass(name="Study Skills", teacher=third, students=club[1:2])])
    session.flush()
    now = utcnow()

    def defense(student: User, days: int, adjudicator: User | None = None):
        return defenses.schedule(
            session, teacher, klass.id, student.id, rubric_id,
            title=f"Defense of “{DEMO_TASK['title']}”", scheduled_at=now + timedelta(days=days),
            raters=[teacher.id, second.id], adjudicator=adjudicator and adjudicator.id)

    def sheet(d, scores: tuple[int, ...], notes: tuple[str, ...]) -> dict:
        criteria = d.rubric_version.criteria
        return {c.id: {"score": s, "note": n} for c, s, n in zip(criteria, scores, notes,
                                                                 strict=True)}

    agreed = defense(club[0], -3)
    defenses.submit_sheet(session, teacher, agreed, sheet(agreed, (3, 3, 2, 3), (
        "Said why the parts must be equal.", "Compared 2/3 and 3/4 with a common denominator.",
        "The bar diagram was right but unlabelled.", "Needed a hint for the second question.")))
    defenses.submit_sheet(session, second, agreed, sheet(agreed, (3, 4, 2, 2), (
        "Clear meaning of numerator and denominator.", "Sound method, checked by estimating.",
        "Diagram drawn, not used in the argument.", "Hesitated on the new case.")))
    disputed = defense(club[1], -2, adjudicator=third)
    defenses.submit_sheet(session, teacher, disputed, sheet(disputed, (1, 2, 2, 2), (
        "Compared numerators only.", "Errors with unlike denominators.",
        "Hard to follow at first.", "Answered with help.")))
    defenses.submit_sheet(session, second, disputed, sheet(disputed, (4, 2, 2, 3), (
        "Corrected the method during the questions and justified it.", "Improved later.",
        "Diagram matched the fractions.", "Answered the follow-up alone.")))
    defenses.correct(session, teacher, disputed, disputed.rubric_version.criteria[3].id, 3,
                     "On the recording the answer to the last question came without help.")
    defenses.adjudicate(session, third, disputed, disputed.rubric_version.criteria[0].id, 3,
                        "The recording shows the wrong first method, then a corrected and "
                        "justified one: Secure, not Extending.")
    waiting = defense(club[2], -1)
    defenses.submit_sheet(session, teacher, waiting, sheet(waiting, (2, 3, 3, 3), (
        "Right idea, but the reason was unclear.", "Accurate throughout.", "Well ordered.",
        "Answered both questions.")))
    session.flush()


def _sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite database URL; ``None`` for other databases and in-memory SQLite."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).resolve()


def _build_beside(engine: Engine, path: Path, fill: Callable[[Connection], None]) -> None:
    """Build a SQLite demo in a new file next to ``path``, then rename it over ``path``.

    SQLite (through Python's driver) commits DDL as it goes, so tearing the old demo down in
    place cannot be undone when a later step fails. A new file is built whole or not at all; the
    rename is atomic, so ``path`` holds either the old demo or the new one, never a mixture, even
    when the process is killed. Connections of ``engine`` are closed first: they would keep the
    old file open (so would a server still running on it: stop it before rebuilding).
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".building", dir=path.parent)
    os.close(fd)
    building = Path(name)
    try:
        target = make_engine(engine.url.set(database=str(building))
                             .render_as_string(hide_password=False))
        try:
            with target.begin() as connection:
                fill(connection)
        finally:
            target.dispose()
        if path.exists():
            os.chmod(building, stat.S_IMODE(path.stat().st_mode))
        engine.dispose()
        os.replace(building, path)
    except BaseException:
        building.unlink(missing_ok=True)
        raise


def _drop_all_tables(connection: Connection) -> None:
    """Drop every table of the database's default schema, inside the caller's transaction.

    Dropping tables, rather than running every migration's downgrade over the demo's data, works
    from any state the demo can reach: rows that a downgrade would have to rewrite (attempts,
    responses, calibration runs) and even a half-migrated schema.
    """
    tables = inspect(connection).get_table_names()
    if not tables:
        return
    preparer = connection.dialect.identifier_preparer
    if connection.dialect.name == "postgresql":
        names = ", ".join(preparer.quote(t) for t in tables)
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {names} CASCADE")
        # Trigger functions (the append-only audit's) belong to the schema, not to a table.
        functions = connection.exec_driver_sql(
            "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n "
            "ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang "
            "WHERE n.nspname = current_schema() AND l.lanname = 'plpgsql'").scalars().all()
        for function in functions:
            connection.exec_driver_sql(f"DROP FUNCTION IF EXISTS {function} CASCADE")
        return
    # In-memory SQLite only (a file is rebuilt beside): foreign keys are checked at commit, when
    # every table is gone, rather than at each drop.
    connection.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
    for table in tables:
        connection.exec_driver_sql(f"DROP TABLE IF EXISTS {preparer.quote(table)}")


TEACHER_NAMES = {"teacher1": "Teacher One", "teacher2": "Teacher Two",
                 "teacher3": "Teacher Three"}


def _add_accounts(session, usernames: list[str]) -> list[User]:
    # One hash for all demo accounts: they share a published password, so per-account salts would
    # protect nothing, and 32 scrypt computations would add seconds to every demo build.
    password_hash = generate_password_hash(DEMO_PASSWORD)
    accounts = []
    for username in usernames:
        if username.startswith("student"):
            role, name = Role.STUDENT, f"Student {username.removeprefix('student')}"
        elif username.startswith("teacher"):
            role, name = Role.TEACHER, TEACHER_NAMES.get(username, username.title())
        elif username.startswith("admin"):
            role, name = Role.ADMIN, "Admin One"
        elif username.startswith("schooladmin"):
            role, name = Role.ADMIN, "School Admin One"
        else:
            role, name = Role.ASSESSOR, "Assessor One"
        accounts.append(
            User(username=username, display_name=name, role=role, password_hash=password_hash)
        )
    session.add_all(accounts)
    return accounts


def field_trial_calibration(items, seed: int) -> CalibrationResult:
    """Calibrate the generated items from a simulated field trial, as a real bank would be.

    The difficulty model's parameters generate the responses of simulated students, each
    answering ``FIELD_TRIAL_LENGTH`` items drawn at random (a sparse design with about
    ``FIELD_TRIAL_RESPONSES_PER_ITEM`` responses per item); the bank's parameters are the 3PL
    estimates from those responses, not the generating values.
    """
    bank = ItemBank.from_records(
        [{"item_id": i.item_id, "model": i.model, "a": i.a, "b": i.b, "c": i.c} for i in items]
    )
    rng = np.random.default_rng([seed, 1970])
    length = min(FIELD_TRIAL_LENGTH, len(items))
    persons = FIELD_TRIAL_RESPONSES_PER_ITEM * len(items) // length
    chosen = np.argsort(rng.random((persons, len(items))), axis=1)[:, :length]
    theta = rng.normal(size=persons)
    responses = simulate_responses(bank, chosen, theta[:, None], rng)
    data = from_long(np.repeat(np.arange(persons), length).astype(str),
                     np.asarray(bank.item_ids)[chosen.ravel()], responses.ravel())
    return calibrate(data, "3pl")


def _item_row(item, seed: int, calibration: CalibrationResult) -> Item:
    row = Item(
        code=item.item_id,
        stem=item.stem,
        options=list(item.options),
        key=item.key,
        rationale=item.rationale,
        skill=item.skill,
        status=ItemStatus.OPERATIONAL,
        version=1,
        media=[],
    )
    row.versions = [ItemVersion(version=1, stem=item.stem, options=list(item.options),
                                key=item.key, rationale=item.rationale, media=[],
                                note="generated for the demo")]
    row.status_events = [ItemStatusEvent(from_status=None, to_status=ItemStatus.OPERATIONAL,
                                         reason="demo item, calibrated in a simulated trial")]
    row.tags = [ItemTag(tag=tag) for tag in sorted(set(item.content_tags))]
    # About half the items in Spanish and Arabic too, so the demo test offers both languages.
    row.translations = [ItemTranslation(language=language, source_version=1, **text)
                        for language, text in sorted(demo_item_translations(item).items())]
    j = calibration.bank.index_of(item.item_id)
    estimated = calibration.bank
    row.parameter_sets = [
        ItemParameterSet(
            model="3pl",
            a=float(estimated.a[j]),
            b=float(estimated.b[j]),
            c=float(estimated.c[j]),
            d=None,
            is_active=True,
            source="calibration",
            sample_size=int(calibration.n_responses[j]),
            provenance={
                "calibration": "simulated field trial (cat-engine demo)",
                "generator": "item_bank.demo_items",
                "seed": seed,
                "generating_parameters": {"a": item.a, "b": item.b, "c": item.c},
                "features": item.features,
                "standard_errors": {k: _finite(calibration.se[k][j]) for k in ("a", "b", "c")},
                "run": calibration.summary(),
            },
        )
    ]
    return row


def _finite(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None
