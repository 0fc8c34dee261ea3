"""Pieces every API blueprint shares: pagination and the envelope of paginated lists."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from storage import as_utc

MAX_PER_PAGE = 200
MAX_ID = 2**31 - 1


def id_field(**kwargs) -> ma.fields.Integer:
    """An integer id in a query or body: 1 .. 2**31 - 1 (what an INTEGER column holds)."""
    return ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_ID), **kwargs)


class PageArgs(ma.Schema):
    """``?page=1&per_page=50``: which page of a list, 1-based."""

    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=1_000_000))
    per_page = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1,
                                                                             max=MAX_PER_PAGE))


class UtcDateTime(ma.fields.AwareDateTime):
    """An ISO 8601 datetime with a time zone: naive input is refused; output is always aware
    (SQLite returns stored UTC times without a zone). A value that is already text (an object
    dumped by one schema, then by the response schema) is passed through."""

    def _serialize(self, value, attr, obj, **kwargs):
        if isinstance(value, str):
            return value
        return super()._serialize(as_utc(value), attr, obj, **kwargs)


def page_of(schema: type[ma.Schema], name: str | None = None) -> type[ma.Schema]:
    """An envelope schema ``{"items": [...], "page", "per_page", "total", "pages"}``."""
    return ma.Schema.from_dict(
        {
            "items": ma.fields.List(ma.fields.Nested(schema), required=True),
            "page": ma.fields.Integer(required=True),
            "per_page": ma.fields.Integer(required=True),
            "total": ma.fields.Integer(required=True),
            "pages": ma.fields.Integer(required=True),
        },
        name=name or f"{schema.__name__.removesuffix('Schema')}Page",
    )


def paginate(session: Session, query: Select, args: dict[str, Any],
             transform=None) -> dict[str, Any]:
    """Run ``query`` for one page and count the whole, returning the envelope."""
    page, per_page = args.get("page", 1), args.get("per_page", 50)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = session.scalars(query.limit(per_page).offset((page - 1) * per_page)).unique().all()
    items = [transform(r) for r in rows] if transform else rows
    return {"items": items, "page": page, "per_page": per_page, "total": total,
            "pages": (total + per_page - 1) // per_page}
