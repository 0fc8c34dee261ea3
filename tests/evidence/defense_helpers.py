"""Rubrics for the defense tests, made directly with the ORM (the rubric services are another
helper's work): a rubric with one version and criteria scored 1 to 4."""

from __future__ import annotations

from sqlalchemy.orm import Session

from evidence.models import Rubric, RubricCriterion, RubricVersion
from storage.accounts import SchoolClass

LABELS = ("Beginning", "Developing", "Secure", "Excellent")


def levels(low: int = 1) -> list[dict]:
    """Four levels, ``low`` .. ``low + 3``, each with a label and a descriptor."""
    return [{"score": low + i, "label": label, "descriptor": f"{label}: level {low + i} of the "
             "criterion"} for i, label in enumerate(LABELS)]


def make_rubric(session: Session, name: str = "Oral defense",
                codes: tuple[str, ...] = ("reasoning", "clarity", "evidence"),
                version: int = 1, rubric: Rubric | None = None) -> RubricVersion:
    """A rubric (or a new version of ``rubric``) with one criterion per code, flushed."""
    rubric = rubric or Rubric(name=name)
    row = RubricVersion(rubric=rubric, version=version, description=f"{name} v{version}")
    for i, code in enumerate(codes):
        RubricCriterion(rubric_version=row, position=i, code=code, name=code.title(),
                        description=f"How well the student shows {code}",
                        skill=("algebra", "geometry", "statistics")[i % 3], levels=levels())
    session.add_all([rubric, row])
    session.flush()
    return row


def co_teach(session: Session, teacher_id: int, student_ids: list[int],
             name: str = "Maths club") -> SchoolClass:
    """A class of ``teacher_id`` with these students (so that teacher may co-rate them)."""
    from storage.accounts import User

    klass = SchoolClass(name=name, teacher_id=teacher_id,
                        students=[session.get(User, s) for s in student_ids])
    session.add(klass)
    session.flush()
    return klass
