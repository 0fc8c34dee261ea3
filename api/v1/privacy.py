"""The privacy note, consents and group variables over HTTP.

- ``GET /privacy-note`` (anyone, signed in or not), ``GET /privacy-note/versions``,
  ``GET /privacy-note/versions/{version}``; ``POST /privacy-note`` publishes a new version
  (district administrators).
- ``GET/POST /students/{student_id}/consents``: the history and current state; record one
  (administrators reaching the student; the student where the school allows it).
- ``GET/PUT /students/{student_id}/groups``: group variables, only with the demographics
  consent (409 otherwise).

The rules live in :mod:`rights.privacy_note` and :mod:`rights.consent`; one commit per request.
"""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

from api.db import get_session
from api.v1.auth import current_user, requires
from api.v1.common import UtcDateTime
from rights import consent as service
from rights import privacy_note as notes
from storage.errors import NotFound
from storage.rights import Purpose

blp = Blueprint("privacy", __name__, description="The privacy note, consents, group variables")


class NoteSchema(ma.Schema):
    version = ma.fields.Integer()
    title = ma.fields.String()
    body = ma.fields.String(metadata={"description": "Markdown"})
    retention = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer(), metadata={
        "description": "Days each kind of record is kept"})
    keep_anonymous_responses = ma.fields.Boolean()
    published_at = UtcDateTime()


class NoteCreateSchema(ma.Schema):
    title = ma.fields.String(required=True, validate=ma.validate.Length(1, notes.MAX_TITLE))
    body = ma.fields.String(required=True, validate=ma.validate.Length(1, notes.MAX_BODY))
    retention = ma.fields.Dict(keys=ma.fields.String(validate=ma.validate.Length(1, 40)),
                               values=ma.fields.Integer(strict=True),
                               load_default=dict)
    keep_anonymous_responses = ma.fields.Boolean(load_default=True)


class NoteListSchema(ma.Schema):
    versions = ma.fields.List(ma.fields.Nested(NoteSchema))


class ConsentCreateSchema(ma.Schema):
    purpose = ma.fields.String(required=True, metadata={"enum": [p.value for p in Purpose]})
    granted = ma.fields.Boolean(required=True)
    note = ma.fields.String(load_default="", validate=ma.validate.Length(max=service.MAX_NOTE),
                            metadata={"description": "How it was given (a signed form...)"})


class ConsentSchema(ma.Schema):
    id = ma.fields.Integer()
    purpose = ma.fields.String()
    granted = ma.fields.Boolean()
    at = UtcDateTime()
    actor_id = ma.fields.Integer(allow_none=True)
    actor = ma.fields.String(allow_none=True)
    note = ma.fields.String()


class ConsentStateSchema(ma.Schema):
    granted = ma.fields.Boolean()
    at = UtcDateTime(allow_none=True)


class ConsentsSchema(ma.Schema):
    student_id = ma.fields.Integer()
    current = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(ConsentStateSchema))
    history = ma.fields.List(ma.fields.Nested(ConsentSchema))
    students_may_consent = ma.fields.Boolean()


class GroupsSchema(ma.Schema):
    groups = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(allow_none=True),
                            required=True)


@blp.route("/privacy-note")
class CurrentNote(MethodView):
    @blp.response(200, NoteSchema)
    @blp.alt_response(404, description="No note published yet")
    def get(self):
        """The privacy note in force: what is collected, why, who sees it, how long."""
        note = notes.current_note(get_session())
        if note is None:
            raise NotFound("no privacy note has been published yet")
        return notes.note_record(note)

    @requires()
    @blp.arguments(NoteCreateSchema())
    @blp.response(201, NoteSchema)
    def post(self, data):
        """Publish a new version of the note (district administrators); it is in force at once."""
        session = get_session()
        note = notes.publish(session, current_user(), **data)
        session.commit()
        return notes.note_record(note)


@blp.route("/privacy-note/versions")
class NoteVersions(MethodView):
    @blp.response(200, NoteListSchema)
    def get(self):
        """Every version of the note, newest first."""
        return {"versions": [notes.note_record(n) for n in notes.versions(get_session())]}


@blp.route("/privacy-note/versions/<int:version>")
class NoteVersion(MethodView):
    @blp.response(200, NoteSchema)
    @blp.alt_response(404, description="No such version")
    def get(self, version):
        """One version of the note."""
        return notes.note_record(notes.note_version(get_session(), version))


@blp.route("/students/<int:student_id>/consents")
class StudentConsents(MethodView):
    @requires()
    @blp.response(200, ConsentsSchema)
    @blp.alt_response(404, description="No such student the caller may see")
    def get(self, student_id):
        """The student's consents: the current state per purpose and the history."""
        return service.consents(get_session(), current_user(), student_id)

    @requires()
    @blp.arguments(ConsentCreateSchema())
    @blp.response(201, ConsentSchema)
    @blp.alt_response(404, description="No such student the caller may see")
    def post(self, data, student_id):
        """Record a consent given or withdrawn (withdrawing demographics deletes the student's
        group variables)."""
        session = get_session()
        row = service.record_consent(session, current_user(), student_id, data["purpose"],
                                     data["granted"], data["note"])
        session.commit()
        return {"id": row.id, "purpose": row.purpose.value, "granted": row.granted,
                "at": row.at, "actor_id": row.actor_id, "actor": current_user().display_name,
                "note": row.note}


@blp.route("/students/<int:student_id>/groups")
class StudentGroups(MethodView):
    @requires()
    @blp.response(200, GroupsSchema)
    @blp.alt_response(404, description="No such student the caller may see")
    @blp.alt_response(409, description="No demographics consent")
    def get(self, student_id):
        """The student's group variables (only with the demographics consent)."""
        return {"groups": service.groups(get_session(), current_user(), student_id)}

    @requires()
    @blp.arguments(GroupsSchema())
    @blp.response(200, GroupsSchema)
    @blp.alt_response(404, description="No such student the caller may see")
    @blp.alt_response(409, description="No demographics consent")
    def put(self, data, student_id):
        """Replace the student's group variables (administrators; demographics consent)."""
        session = get_session()
        values = service.set_groups(session, current_user(), student_id, data["groups"])
        session.commit()
        return {"groups": values}
