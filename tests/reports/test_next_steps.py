"""Next steps per skill gap, on the API tests' school (60 operational 2PL items over algebra,
geometry and statistics) with hand-written report dicts of the contract's shape.

The expected practice items are worked out here with the 2PL formula in plain Python (math
module), not with the engine's functions the code under test uses.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from evidence.models import Attempt, AttemptStatus, Response
from item_bank.models import Item, ItemStatus
from reports import resources
from reports.next_steps import RECENT_DAYS, TARGET_SUCCESS, next_steps, practice_url
from tests.evidence.conftest import _world_templates, school  # noqa: F401

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _report(student_id: int, *skills: tuple[str, float, str], role: str = "teacher") -> dict:
    return {"student_id": student_id, "viewer_role": role, "status": "ok",
            "skills": [{"skill": s, "theta": theta, "se": 0.3, "decision": decision,
                        "next_steps": []} for s, theta, decision in skills]}


def _by_hand(session, skill: str, theta: float, exclude: set[str] = frozenset()) -> list:
    """(code, P) of the skill's operational items by |P - 0.70|, then code: the 2PL by hand."""
    rows = []
    for item in session.scalars(select(Item).where(Item.skill == skill,
                                                   Item.status == ItemStatus.OPERATIONAL)):
        p = item.active_parameters
        if item.code in exclude:
            continue
        success = 1.0 / (1.0 + math.exp(-p.a * (theta - p.b)))
        rows.append((abs(success - TARGET_SUCCESS), item.code, success))
    return [(code, success) for _, code, success in sorted(rows)]


def _answered(session, student_id: int, test_id: int, codes: list[str], at: datetime) -> None:
    attempt = Attempt(test_id=test_id, user_id=student_id, status=AttemptStatus.FINISHED,
                      started_at=at, finished_at=at)
    session.add(attempt)
    session.flush()
    for position, code in enumerate(codes, start=1):
        item_id = session.scalar(select(Item.id).where(Item.code == code))
        session.add(Response(attempt_id=attempt.id, item_id=item_id, position=position,
                             response=1, choice=1, answered_at=at))
    session.flush()


def test_practice_is_closest_to_70_percent_and_mastered_skills_get_none(school) -> None:  # noqa: F811
    session, student = school.session, school.ids["users"]["student1"]
    report = _report(student, ("algebra", 0.4, "needs_evidence"),
                     ("geometry", -0.8, "not_mastered"), ("statistics", 1.2, "mastered"))
    steps = next_steps(session, report, now=NOW)
    assert set(steps) == {"algebra", "geometry"}  # mastered: nothing
    for skill, theta in (("algebra", 0.4), ("geometry", -0.8)):
        practice = [s for s in steps[skill] if s["kind"] == "practice"]
        expected = _by_hand(session, skill, theta)[:3]
        assert [s["source_id"] for s in practice] == [code for code, _ in expected]
        for suggestion, (_, success) in zip(practice, expected, strict=True):
            assert math.isclose(suggestion["expected_success"], success, abs_tol=1e-4)
            assert suggestion["why"] == {"code": "practice_level",
                                         "expected_success": suggestion["expected_success"],
                                         "target": 0.7, "recent_days": 30}
            assert suggestion["why_text"] == (
                f"expected success {round(success * 100)}% at your level; not seen in the "
                "last 30 days")
            assert suggestion["url"] == practice_url(skill) == f"/practice/{skill}"
    # the nearest is nearer to 70% than any item left out
    algebra = _by_hand(session, "algebra", 0.4)
    worst_kept = abs(algebra[2][1] - 0.7)
    assert all(abs(p - 0.7) >= worst_kept for _, p in algebra[3:])
    assert next_steps(session, _report(student, ("algebra", 0.4, "mastered")), now=NOW) == {}


def test_items_seen_in_the_last_30_days_are_left_out(school) -> None:  # noqa: F811
    session, student = school.session, school.ids["users"]["student1"]
    report = _report(student, ("algebra", 0.0, "needs_evidence"))
    first, second, third, fourth = (c for c, _ in _by_hand(session, "algebra", 0.0)[:4])
    _answered(session, student, school.ids["test_id"], [first],
              NOW - timedelta(days=RECENT_DAYS - 1))
    _answered(session, student, school.ids["test_id"], [second],
              NOW - timedelta(days=RECENT_DAYS + 1))
    # another student's answers do not count
    _answered(session, school.ids["users"]["student2"], school.ids["test_id"], [third],
              NOW - timedelta(days=1))
    codes = [s["source_id"] for s in next_steps(session, report, now=NOW)["algebra"]]
    assert codes == [second, third, fourth]
    # an item on screen in an attempt in progress is seen too
    on_screen = session.scalar(select(Item.id).where(Item.code == second))
    session.add(Attempt(test_id=school.ids["test_id"], user_id=student, started_at=NOW,
                        status=AttemptStatus.IN_PROGRESS, current_item_id=on_screen))
    session.flush()
    codes = [s["source_id"] for s in next_steps(session, report, now=NOW)["algebra"]]
    assert codes == [c for c, _ in _by_hand(session, "algebra", 0.0, {first, second})[:3]]


def test_students_see_no_item_code_and_nobody_sees_a_key_or_stem(school) -> None:  # noqa: F811
    session, student = school.session, school.ids["users"]["student1"]
    mine = next_steps(session, _report(student, ("geometry", 0.2, "not_mastered"),
                                       role="student"), now=NOW)["geometry"]
    staff = next_steps(session, _report(student, ("geometry", 0.2, "not_mastered")),
                       now=NOW)["geometry"]
    assert len(mine) == len(staff) == 3
    assert all("source_id" not in s and "item_id" not in s for s in mine)
    assert all({"source_id", "item_id"} <= set(s) for s in staff)
    text = json.dumps(staff)
    for item in session.scalars(select(Item).where(Item.skill == "geometry")):
        assert item.stem not in text
    assert '"key"' not in text and '"options"' not in text
    assert [s["title"] for s in mine] == [f"Practice question {k} in geometry"
                                          for k in (1, 2, 3)]


def test_resources_whose_range_holds_theta_closest_range_first(school) -> None:  # noqa: F811
    session, student = school.session, school.ids["users"]["student1"]
    made = {}
    for title, low, high, skill in (("Wide", -1.0, 1.0, "algebra"),
                                    ("Narrow", 0.0, 0.5, "algebra"),
                                    ("Too hard", 0.5, None, "algebra"),
                                    ("Up to here", None, 0.4, "algebra"),
                                    ("Anyone", None, None, "algebra"),
                                    ("Too easy", -3.0, 0.2, "algebra"),
                                    ("Shapes", -1.0, 1.0, "geometry"),
                                    ("Gone", 0.0, 1.0, "algebra")):
        made[title] = resources.create_resource(session, None, {
            "title": title, "url": f"https://example.org/{title.replace(' ', '-')}",
            "skill": skill, "level_min": low, "level_max": high})
    resources.set_archived(made["Gone"])
    session.flush()
    steps = next_steps(session, _report(student, ("algebra", 0.4, "needs_evidence")),
                       now=NOW)["algebra"]
    assert [s["kind"] for s in steps] == ["practice"] * 3 + ["resource"] * 3
    listed = [s for s in steps if s["kind"] == "resource"]
    # |0.4 - 0.25| = 0.15 < |0.4 - 0| = 0.4; then half-open; at most three
    assert [s["title"] for s in listed] == ["Narrow", "Wide", "Up to here"]
    assert listed[0]["why"] == {"code": "resource_level", "theta": 0.4, "level_min": 0.0,
                                "level_max": 0.5}
    assert listed[0]["why_text"] == "made for levels 0 to 0.5; your level is 0.40"
    assert listed[2]["why_text"] == "made for levels up to 0.4; your level is 0.40"
    assert listed[0]["url"] == "https://example.org/Narrow"
    # with a theta outside every bounded range, the open ones remain
    low = next_steps(session, _report(student, ("algebra", -5.0, "not_mastered")),
                     now=NOW)["algebra"]
    assert [s["title"] for s in low if s["kind"] == "resource"] == ["Up to here", "Anyone"]


def test_the_bank_built_from_columns_is_the_validated_bank() -> None:
    from collections import namedtuple

    import numpy as np

    from cat_engine.bank import ItemBank
    from cat_engine.models import p_correct
    from reports.next_steps import _dichotomous_bank

    row = namedtuple("row", "code model a b c d")
    rng = np.random.default_rng(5)
    rows = [row(f"I{j}", m, None if m == "rasch" else float(rng.uniform(0.5, 2)),
                float(rng.normal()), float(rng.uniform(0, 0.3)) if m in ("3pl", "4pl") else None,
                0.95 if m == "4pl" else None)
            for j, m in enumerate(["rasch", "1pl", "2pl", "3pl", "4pl"] * 8)]
    fast = _dichotomous_bank(rows)
    validated = ItemBank.from_records(
        [{k: v for k, v in r._asdict().items() if v is not None} | {"item_id": r.code}
         for r in rows])
    theta = rng.normal(size=len(rows))
    every = np.arange(len(rows))
    np.testing.assert_allclose(p_correct(fast, every, theta), p_correct(validated, every, theta),
                               rtol=0, atol=1e-15)
