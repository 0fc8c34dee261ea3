"""Learning resources: what a student may read, watch or do next for a skill, at a range of levels.

Teachers, assessors and administrators add, change and archive them (:data:`WRITERS`); every
signed-in staff member reads them; students never list them, they meet them only as the next
steps of their own report (:mod:`reports.next_steps`). A resource names a skill the bank or a
rubric criterion knows, a title and an http(s) address, and optionally the range of levels
(theta, logits, the bank's scale) it suits: ``level_min <= theta <= level_max``, either side open.
Archived resources are kept (and listed on request) but never suggested.

Every check names the field at fault (:class:`storage.errors.Invalid` with ``field``); nothing is
committed here: the caller commits once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from evidence.models import RubricCriterion
from item_bank.models import Item
from reports.models import LearningResource
from storage import utcnow
from storage.accounts import Role, User
from storage.errors import Invalid, NotFound

#: Who adds, changes and archives resources (and reads them).
WRITERS = (Role.TEACHER, Role.ASSESSOR, Role.ADMIN)
MAX_TITLE = 200
MAX_URL = 2048
MAX_DESCRIPTION = 5000
MAX_SKILL = 80
#: Levels are thetas on the bank's scale; beyond this they mean nothing.
LEVEL_LIMIT = 6.0
FIELDS = ("title", "url", "skill", "level_min", "level_max", "description")


def known_skills(session: Session) -> list[str]:
    """Every skill an item of the bank or a rubric criterion names, sorted."""
    items = set(session.scalars(select(Item.skill).distinct()))
    criteria = set(session.scalars(select(RubricCriterion.skill).distinct()))
    return sorted(items | criteria)


def _text(data: Mapping[str, Any], name: str, limit: int, *, required: bool) -> str:
    value = data.get(name)
    if value is None:
        if required:
            raise Invalid(f"{name} is required", field=name)
        return ""
    if not isinstance(value, str):
        raise Invalid(f"{name} must be text, not {type(value).__name__}", field=name)
    value = value.strip()
    if required and not value:
        raise Invalid(f"{name} must not be empty", field=name)
    if len(value) > limit:
        raise Invalid(f"{name} must be at most {limit:,} characters, got {len(value):,}",
                      field=name)
    if "\x00" in value:
        raise Invalid(f"{name} must not contain NUL characters", field=name)
    return value


def _url(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        raise Invalid(f"url {value!r} is not a web address", field="url") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc \
            or any(c.isspace() for c in value):
        raise Invalid("url must be an http:// or https:// address with a host, e.g. "
                      "https://example.org/fractions", field="url")
    return value


def _level(data: Mapping[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise Invalid(f"{name} must be a number (theta, logits), not {value!r}",
                          field=name) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"{name} must be a number (theta, logits), not {value!r}", field=name)
    value = float(value)
    if not math.isfinite(value) or not -LEVEL_LIMIT <= value <= LEVEL_LIMIT:
        raise Invalid(f"{name} must be a finite theta between {-LEVEL_LIMIT:g} and "
                      f"{LEVEL_LIMIT:g}, got {value!r}", field=name)
    return value


def check_resource(session: Session, data: Mapping[str, Any],
                   current: LearningResource | None = None) -> dict[str, Any]:
    """The cleaned fields of ``data`` (all of them when ``current`` is None, else those given).

    Raises
    ------
    Invalid
        Naming the field: a missing or empty title or url, a url that is not http(s), a skill
        neither the bank nor a rubric knows, a level that is not a finite theta in [-6, 6],
        ``level_min`` above ``level_max`` (also against the stored other bound), unknown fields.
    """
    if not isinstance(data, Mapping):
        raise Invalid("the body must be a JSON object", field="body")
    unknown = sorted(set(map(str, data)) - set(FIELDS))
    if unknown:
        raise Invalid(f"unknown field(s) {', '.join(unknown)}; expected {', '.join(FIELDS)}",
                      field=unknown[0])
    creating = current is None
    out: dict[str, Any] = {}
    if creating or "title" in data:
        out["title"] = _text(data, "title", MAX_TITLE, required=True)
    if creating or "url" in data:
        out["url"] = _url(_text(data, "url", MAX_URL, required=True))
    if creating or "skill" in data:
        skill = _text(data, "skill", MAX_SKILL, required=True)
        if skill not in known_skills(session):
            raise Invalid(f"skill {skill!r} is not a skill of the item bank or of a rubric "
                          "criterion", field="skill")
        out["skill"] = skill
    if creating or "description" in data:
        out["description"] = _text(data, "description", MAX_DESCRIPTION, required=False)
    for name in ("level_min", "level_max"):
        if creating or name in data:
            out[name] = _level(data, name)
    stored = {} if current is None else {"level_min": current.level_min,
                                         "level_max": current.level_max}
    low, high = ({**stored, **out}.get(name) for name in ("level_min", "level_max"))
    if low is not None and high is not None and low > high:
        raise Invalid(f"level_min ({low:g}) must not be above level_max ({high:g})",
                      field="level_min" if "level_min" in out else "level_max")
    return out


def create_resource(session: Session, user: User | None, data: Mapping[str, Any]
                    ) -> LearningResource:
    """Add a resource (fields :data:`FIELDS`; title, url, skill required)."""
    values = check_resource(session, data)
    resource = LearningResource(**values, created_by=user.id if user is not None else None)
    session.add(resource)
    session.flush()
    return resource


def update_resource(session: Session, resource: LearningResource, data: Mapping[str, Any],
                    *, archived: bool | None = None) -> LearningResource:
    """Change the fields given in ``data``; ``archived`` archives (True) or restores (False)."""
    for name, value in check_resource(session, data, resource).items():
        setattr(resource, name, value)
    if archived is not None:
        set_archived(resource, archived)
    session.flush()
    return resource


def set_archived(resource: LearningResource, archived: bool = True) -> LearningResource:
    """Archive a resource (no longer suggested; kept) or put it back."""
    if archived and resource.archived_at is None:
        resource.archived_at = utcnow()
    elif not archived:
        resource.archived_at = None
    return resource


def get_resource(session: Session, resource_id: int) -> LearningResource:
    """One resource, archived or not.

    Raises
    ------
    NotFound
    """
    resource = session.get(LearningResource, resource_id)
    if resource is None:
        raise NotFound(f"no learning resource {resource_id}")
    return resource


def resources_query(*, skill: str | None = None, archived: bool | None = False) -> Select:
    """Resources by skill, then lowest level first (open lower bound first), then title.

    ``archived``: False, active only (the default); True, archived only; None, all.
    """
    query = select(LearningResource)
    if skill is not None:
        query = query.where(LearningResource.skill == skill)
    if archived is True:
        query = query.where(LearningResource.archived_at.is_not(None))
    elif archived is False:
        query = query.where(LearningResource.archived_at.is_(None))
    return query.order_by(LearningResource.skill, LearningResource.level_min.is_not(None),
                          LearningResource.level_min, LearningResource.title,
                          LearningResource.id)


def resources_by_skill(session: Session, skills: list[str]) -> dict[str, list[LearningResource]]:
    """The active resources of each of ``skills`` (one query)."""
    out: dict[str, list[LearningResource]] = {s: [] for s in skills}
    if not skills:
        return out
    for resource in session.scalars(resources_query(archived=False)
                                    .where(LearningResource.skill.in_(skills))):
        out[resource.skill].append(resource)
    return out
