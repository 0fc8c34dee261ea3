"""The demo has a rubric for oral defenses about fractions: four criteria on the demo bank's
skills, four levels scored 1 to 4, each with a real descriptor."""

from __future__ import annotations

import pytest

from api.demo import DEMO_RUBRIC_NAME, build_demo
from evidence import rubrics as service
from evidence.models import Rubric
from storage import make_engine, session_factory
from storage.accounts import Role, User

pytestmark = pytest.mark.usefixtures("demo_without_history")


def test_the_demo_has_a_fractions_rubric(any_db_url: str) -> None:
    engine = make_engine(any_db_url)
    try:
        build_demo(engine, n_items=36)
        with session_factory(engine)() as session:
            (rubric,) = session.query(Rubric).all()
            assert rubric.name == DEMO_RUBRIC_NAME == "Oral defense: fractions"
            version = service.get_version(session, rubric)
            assert [(c.code, c.skill) for c in version.criteria] == [
                ("understanding", "fractions"), ("calculation", "arithmetic"),
                ("representation", "tables"), ("reasoning", "ratios")]
            for criterion in version.criteria:
                assert [lv["score"] for lv in criterion.levels] == [1, 2, 3, 4]
                assert [lv["label"] for lv in criterion.levels] == [
                    "Beginning", "Developing", "Secure", "Extending"]
                assert all(len(lv["descriptor"]) > 60 for lv in criterion.levels)
            # It passes every check of an import: its export imports as a new rubric.
            document = service.parse_json_file(service.export_json(rubric, version).encode())
            author = session.get(User, rubric.created_by)
            assert author.role == Role.TEACHER
            copy = service.import_rubric(session, author, **{**document, "name": "Copy"})
            assert service.export_csv(service.get_version(session, copy)) == \
                service.export_csv(version)
    finally:
        engine.dispose()
