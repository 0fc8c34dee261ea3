"""Rubrics in versions: creation and versioning with every problem named, immutability of stored
versions, and exact round trips through JSON and CSV."""

from __future__ import annotations

import copy
import json

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

from evidence import rubrics as service
from evidence.models import Rubric, RubricCriterion, RubricVersion
from storage.errors import Conflict, Forbidden, NotFound


def _levels(*labels: str) -> list[dict]:
    return [{"score": n + 1, "label": label, "descriptor": f"{label}: what it looks like"}
            for n, label in enumerate(labels)]


def criteria() -> list[dict]:
    return [
        {"code": "reasoning", "name": "Reasoning", "description": "Why each step holds",
         "skill": "algebra", "levels": _levels("Beginning", "Developing", "Secure")},
        {"code": "clarity", "name": "Clarity", "skill": "geometry",
         "levels": _levels("Unclear", "Clear")},
    ]


def test_create_and_version_keep_old_versions(school) -> None:
    session = school.session
    teacher = school.user("teacher1")
    rubric = service.create_rubric(session, teacher, name=" Oral defense ",
                                   description="For defenses", criteria=criteria())
    session.commit()
    assert rubric.name == "Oral defense"
    v1 = service.get_version(session, rubric)
    assert (v1.version, v1.description, v1.created_by) == (1, "For defenses", teacher.id)
    assert [c.code for c in v1.criteria] == ["reasoning", "clarity"]
    assert v1.criteria[1].description == ""

    changed = criteria()
    changed[0]["levels"].append({"score": 4, "label": "Excellent", "descriptor": "Proves it"})
    v2 = service.add_version(session, school.user("assessor1"), rubric, criteria=changed,
                             note="a fourth level")
    session.commit()
    assert (v2.version, v2.description, v2.note) == (2, "For defenses", "a fourth level")
    assert [len(c.levels) for c in service.get_version(session, rubric, 1).criteria] == [3, 2]
    assert [len(c.levels) for c in service.get_version(session, rubric).criteria] == [4, 2]
    with pytest.raises(NotFound, match="has no version 3 \\(it has 1 to 2\\)"):
        service.get_version(session, rubric, 3)

    service.set_archived(session, teacher, rubric, True)
    assert session.scalars(service.rubrics_query(archived=False)).all() == []
    with pytest.raises(Conflict, match="archived"):
        service.add_version(session, teacher, rubric, criteria=criteria())
    service.set_archived(session, teacher, rubric, False)
    assert session.scalars(service.rubrics_query(archived=False)).all() == [rubric]


def test_stored_versions_cannot_change(school) -> None:
    session = school.session
    rubric = service.create_rubric(session, school.user("teacher1"), name="R",
                                   criteria=criteria())
    session.commit()
    for statement in (update(RubricVersion).where(RubricVersion.rubric_id == rubric.id)
                      .values(description="rewritten"),
                      update(RubricCriterion).values(name="rewritten")):
        with pytest.raises(DBAPIError):
            session.execute(statement)
        session.rollback()
    assert {c.name for c in session.scalars(select(RubricCriterion))} == {"Reasoning",
                                                                          "Clarity"}


def test_students_may_not_and_names_are_unique(school) -> None:
    session = school.session
    with pytest.raises(Forbidden):
        service.create_rubric(session, school.user("student1"), name="R", criteria=criteria())
    service.create_rubric(session, school.user("teacher1"), name="Oral defense",
                          criteria=criteria())
    with pytest.raises(Conflict, match="'oral DEFENSE' exists") as caught:
        service.create_rubric(session, school.user("teacher2"), name="oral DEFENSE",
                              criteria=criteria())
    assert caught.value.field == "name"


def _problems(school, value) -> dict[str, str]:
    with pytest.raises(service.RubricInvalid) as caught:
        service.create_rubric(school.session, school.user("teacher1"), name="Bad",
                              criteria=value)
    return {e["field"]: e["message"] for e in caught.value.errors}


def test_every_problem_named_with_criterion_and_field(school) -> None:
    bad = criteria()
    bad[0]["levels"][2]["score"] = 4  # 1, 2, 4: a gap
    bad[0]["levels"][1]["label"] = "  "
    bad[1]["code"] = "REASONING"  # codes are unique whatever the case
    bad[1]["skill"] = "calculus"
    bad[1]["levels"] = bad[1]["levels"][:1]
    bad.append({"code": "has space", "name": "", "skill": "algebra",
                "levels": [{"score": "three", "label": "x", "descriptor": ""},
                           {"score": 4, "label": "y", "descriptor": "z", "extra": 1}]})
    got = _problems(school, bad)
    assert got == {
        "criteria[0].levels[2].score": "criteria[0].levels[2].score (criterion 'reasoning'): "
        "is 4 where 3 was expected: scores must be consecutive integers, lowest first (from "
        "1: 1, 2, 3...)",
        "criteria[0].levels[1].label": "criteria[0].levels[1].label (criterion 'reasoning'): "
        "must not be empty",
        "criteria[1].code": "criteria[1].code (criterion 'REASONING'): 'REASONING' is already "
        "the code of criteria[0]",
        "criteria[1].skill": "criteria[1].skill (criterion 'REASONING'): 'calculus' is not a "
        "skill of the item bank (its skills: algebra, geometry, statistics)",
        "criteria[1].levels": "criteria[1].levels (criterion 'REASONING'): has 1 level; a "
        "criterion needs 2 to 10",
        "criteria[2].code": "criteria[2].code (criterion 'has space'): 'has space' may hold "
        "only letters, digits, '-' and '_'",
        "criteria[2].name": "criteria[2].name (criterion 'has space'): must not be empty",
        "criteria[2].levels[0].score": "criteria[2].levels[0].score (criterion 'has space'): "
        "'three' is not an integer",
        "criteria[2].levels[0].descriptor": "criteria[2].levels[0].descriptor (criterion "
        "'has space'): must not be empty",
        "criteria[2].levels[1].extra": "criteria[2].levels[1].extra (criterion 'has space'): "
        "unknown field (expected score, label, descriptor)",
    }
    assert school.session.scalars(select(Rubric)).all() == []  # nothing half-stored
    assert list(_problems(school, [])) == ["criteria"]
    assert list(_problems(school, None)) == ["criteria"]
    too_long = criteria()
    too_long[0]["levels"][0]["descriptor"] = "x" * (service.MAX_DESCRIPTOR + 1)
    assert list(_problems(school, too_long)) == ["criteria[0].levels[0].descriptor"]
    booleans = criteria()
    booleans[1]["levels"][0]["score"] = True
    assert "True is not an integer" in _problems(school, booleans)["criteria[1].levels[0].score"]


def _round_trip(school, fmt: str) -> tuple[str, str]:
    session = school.session
    teacher = school.user("teacher1")
    tricky = criteria()
    tricky[0]["description"] = '=SUM(A1) "quoted", with commas\nand a line break'
    tricky[1]["levels"][0]["descriptor"] = "-starts like a formula; ünïcödé ½"
    tricky[1]["levels"][1]["label"] = "'quoted"
    original = service.create_rubric(session, teacher, name="Original", description="d",
                                     criteria=tricky)
    v1 = service.get_version(session, original)
    if fmt == "json":
        first = service.export_json(original, v1)
        document = service.parse_json_file(first.encode())
        document["name"] = "Copy"
        copy_ = service.import_rubric(session, teacher, **document)
        second = service.export_json(copy_, service.get_version(session, copy_))
        return first.replace('"Original"', '"Copy"'), second
    first = service.export_csv(v1)
    copy_ = service.import_rubric(session, teacher, name="Copy", csv_data=first.encode())
    second = service.export_csv(service.get_version(session, copy_))
    return first, second


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_import_export_is_identical(school, fmt) -> None:
    first, second = _round_trip(school, fmt)
    assert first == second
    if fmt == "csv":
        assert first.splitlines()[0] == ",".join(service.CSV_COLUMNS)
        assert "'=SUM(A1)" in first and "'-starts" in first and "''quoted" in first
    else:
        assert json.loads(first)["criteria"][0]["description"].startswith("=SUM(A1)")


def _csv(rows: list[str]) -> bytes:
    return ("\n".join([",".join(service.CSV_COLUMNS), *rows]) + "\n").encode()


GOOD_ROWS = [
    "reasoning,Reasoning,,algebra,1,Beginning,Guesses",
    "reasoning,Reasoning,,algebra,2,Secure,Explains each step",
    "clarity,Clarity,,geometry,1,Unclear,Hard to follow",
    "clarity,Clarity,,geometry,2,Clear,Easy to follow",
]


def _csv_problems(school, rows: list[str]) -> list[str]:
    with pytest.raises(service.RubricInvalid) as caught:
        service.import_rubric(school.session, school.user("teacher1"), name="Bad",
                              csv_data=_csv(rows))
    assert school.session.scalars(select(Rubric)).all() == []
    return [e["message"] for e in caught.value.errors]


def test_bad_csv_refused_whole_with_row_and_column(school) -> None:
    rows = copy.copy(GOOD_ROWS)
    rows[1] = "reasoning,Reasoning,,algebra,three,Secure,Explains each step"
    rows[3] = "clarity,Clarity!,,geometry,2,Clear,Easy to follow"
    assert _csv_problems(school, rows) == [
        "row 3, score: 'three' is not an integer",
        "row 5, criterion_name: 'Clarity!' differs from 'Clarity' on row 4 (the same "
        "criterion 'clarity')",
    ]
    rows = [*GOOD_ROWS, "reasoning,Reasoning,,algebra,3,Expert,Proves it"]
    assert _csv_problems(school, rows) == [
        "row 6, criterion: 'reasoning' appears again after other criteria (the rows of a "
        "criterion must be together; it starts on row 2)"]
    # Problems of content are found on the rows they come from.
    rows = copy.copy(GOOD_ROWS)
    rows[3] = "clarity,Clarity,,geometry,4,Clear,"
    assert _csv_problems(school, rows) == [
        "row 5, score: is 4 where 2 was expected: scores must be consecutive integers, "
        "lowest first (from 1: 1, 2, 3...)",
        "row 5, descriptor: must not be empty"]
    rows = [r.replace("geometry", "topology") for r in GOOD_ROWS]
    assert _csv_problems(school, rows)[0].startswith(
        "row 4, skill: 'topology' is not a skill of the item bank (its skills: algebra, ")
    with pytest.raises(service.RubricInvalid) as caught:
        service.parse_csv(b"criterion,name,skill,score,label,descriptor\n")
    assert [p["message"] for p in caught.value.errors] == [
        "row 1, column 2: unknown column 'name' (the columns are criterion, criterion_name, "
        "criterion_description, skill, score, label, descriptor)",
        "row 1, criterion_name: the required column is missing"]
    with pytest.raises(service.RubricInvalid, match="not UTF-8"):
        service.parse_csv("criterion\n".encode("utf-16"))


def test_csv_without_description_column_and_with_bom(school) -> None:
    text = "\ufeffCriterion,Criterion_Name,Skill,Score,Label,Descriptor\r\n" + "\r\n".join(
        r.replace(",,", ",") for r in GOOD_ROWS)
    rubric = service.import_rubric(school.session, school.user("assessor1"), name="BOM",
                                   csv_data=text.encode())
    version = service.get_version(school.session, rubric)
    assert [(c.code, [lv["score"] for lv in c.levels]) for c in version.criteria] == [
        ("reasoning", [1, 2]), ("clarity", [1, 2])]
