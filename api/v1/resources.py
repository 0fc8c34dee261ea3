"""Learning resources: links per skill and range of levels, suggested as next steps in reports.

Teachers, assessors and administrators list, add, change and archive them (``DELETE`` archives:
the resource is kept, no longer suggested, and ``PATCH {"archived": false}`` brings it back).
Students get 403: they meet resources only as next steps of their own report. The checks live in
:mod:`reports.resources` (each error names its field); these views call it and commit once.
"""

from __future__ import annotations

import marshmallow as ma
from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.v1.auth import current_user, requires
from api.v1.classes import no_nul
from api.v1.common import PageArgs, UtcDateTime, page_of, paginate
from reports import resources as service

blp = Blueprint("resources", __name__,
                description="Learning resources per skill and range of levels (theta), "
                            "suggested as next steps in mastery reports")

WRITERS = service.WRITERS


# -- schemas -------------------------------------------------------------------------------------


def _level(description: str) -> ma.fields.Float:
    return ma.fields.Float(allow_none=True, allow_nan=False, metadata={
        "description": description + f" (theta, logits, -{service.LEVEL_LIMIT:g} to "
                                     f"{service.LEVEL_LIMIT:g}; null: open)"})


class ResourceSchema(ma.Schema):
    id = ma.fields.Integer()
    title = ma.fields.String()
    url = ma.fields.String()
    skill = ma.fields.String()
    level_min = ma.fields.Float(allow_none=True)
    level_max = ma.fields.Float(allow_none=True)
    description = ma.fields.String()
    archived = ma.fields.Function(lambda r: r.archived_at is not None)
    archived_at = UtcDateTime(allow_none=True)
    created_by = ma.fields.Integer(allow_none=True)
    created_at = UtcDateTime()


class ResourcePatchSchema(ma.Schema):
    title = ma.fields.String(validate=[ma.validate.Length(1, service.MAX_TITLE), no_nul])
    url = ma.fields.String(validate=[ma.validate.Length(1, service.MAX_URL), no_nul],
                           metadata={"description": "An http:// or https:// address"})
    skill = ma.fields.String(validate=[ma.validate.Length(1, service.MAX_SKILL), no_nul],
                             metadata={"description": "A skill of the bank or of a rubric "
                                                      "criterion"})
    level_min = _level("The lowest level it suits")
    level_max = _level("The highest level it suits")
    description = ma.fields.String(validate=[ma.validate.Length(0, service.MAX_DESCRIPTION),
                                             no_nul])
    archived = ma.fields.Boolean(metadata={"description": "Archive (true) or restore (false)"})


class ResourceCreateSchema(ResourcePatchSchema):
    title = ma.fields.String(required=True,
                             validate=[ma.validate.Length(1, service.MAX_TITLE), no_nul])
    url = ma.fields.String(required=True,
                           validate=[ma.validate.Length(1, service.MAX_URL), no_nul],
                           metadata={"description": "An http:// or https:// address"})
    skill = ma.fields.String(required=True,
                             validate=[ma.validate.Length(1, service.MAX_SKILL), no_nul],
                             metadata={"description": "A skill of the bank or of a rubric "
                                                      "criterion"})

    class Meta:
        exclude = ("archived",)


class ResourceListArgs(PageArgs):
    skill = ma.fields.String(validate=[ma.validate.Length(1, service.MAX_SKILL), no_nul],
                             metadata={"description": "Only this skill's"})
    archived = ma.fields.Boolean(metadata={
        "description": "true: archived only; false: active only (default); absent: active"})


# -- views ---------------------------------------------------------------------------------------


@blp.route("/resources")
class Resources(MethodView):
    @requires(*WRITERS)
    @blp.arguments(ResourceListArgs(), location="query")
    @blp.response(200, page_of(ResourceSchema, "ResourcePage"))
    def get(self, args):
        """Learning resources by skill, lowest level first (active ones unless asked)."""
        query = service.resources_query(skill=args.get("skill"),
                                        archived=args.get("archived", False))
        return paginate(get_session(), query, args)

    @requires(*WRITERS)
    @blp.arguments(ResourceCreateSchema())
    @blp.response(201, ResourceSchema)
    @blp.alt_response(422, description="A field is wrong (the problem names it)")
    def post(self, data):
        """Add a learning resource: title, http(s) url, skill, optional level range."""
        session = get_session()
        resource = service.create_resource(session, current_user(), data)
        session.commit()
        return resource, 201, {"Location": url_for("resources.ResourceById",
                                                   resource_id=resource.id)}


@blp.route("/resources/<int:resource_id>")
class ResourceById(MethodView):
    @requires(*WRITERS)
    @blp.response(200, ResourceSchema)
    @blp.alt_response(404, description="No such resource")
    def get(self, resource_id):
        """One learning resource, archived or not."""
        return service.get_resource(get_session(), resource_id)

    @requires(*WRITERS)
    @blp.arguments(ResourcePatchSchema())
    @blp.response(200, ResourceSchema)
    @blp.alt_response(404, description="No such resource")
    @blp.alt_response(422, description="A field is wrong (the problem names it)")
    def patch(self, data, resource_id):
        """Change a resource's fields, or archive / restore it (``archived``)."""
        session = get_session()
        resource = service.get_resource(session, resource_id)
        archived = data.pop("archived", None)
        service.update_resource(session, resource, data, archived=archived)
        session.commit()
        return resource

    @requires(*WRITERS)
    @blp.response(204)
    @blp.alt_response(404, description="No such resource")
    def delete(self, resource_id):
        """Archive a resource: kept and listed with ``?archived=true``, no longer suggested."""
        session = get_session()
        service.set_archived(service.get_resource(session, resource_id))
        session.commit()
