"""The step log: xAPI 1.0.3 statements stored append-only, queried as an LRS answers.

Learning tools send statements with a credential (:mod:`evidence.xapi_clients`) that speaks for
one class; the engine writes its own (:func:`engine_answered`, :func:`engine_completed`). Every
statement is about one student of the site, the agent
``{"account": {"homePage": <base_url>, "name": <pseudonym>}}``: the stored ``actor_id`` is what
access checks and filters use. No Flask here: the caller passes the site's base URL.

Rules (xAPI 1.0.3, Data and Communication parts):

- a statement is validated against the specification (:mod:`evidence.xapi_model`); an error
  names the field path (``[3].verb.id`` in a batch). A batch is stored whole or not at all;
- the server sets ``id`` (a version 4 UUID when absent), ``stored``, ``authority`` and
  ``version`` ("1.0.3"), and ``timestamp`` (= ``stored``) when absent; a timestamp more than
  :data:`MAX_FUTURE` ahead of the server's clock is refused;
- an id already stored with the same content is a no-op; with other content, a 409. Content is
  compared in a canonical form: keys sorted, UUIDs lowercased, the timestamp as an instant, single
  context activities as lists, without ``stored``, ``authority`` and ``version``;
- a statement with the verb ``voided`` and a ``StatementRef`` object voids its target (nothing is
  updated: the target is voided while a voiding statement names it); a voiding statement cannot be
  voided. Voided statements are left out of queries and fetched only by ``voidedStatementId``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import ColumnElement, Integer, and_, column, exists, insert, select, text
from sqlalchemy.orm import Session, aliased

from evidence.models import Statement, StatementActivity
from evidence.xapi_model import canonical_uuid, statement_errors
from storage import as_utc, utcnow
from storage.accounts import Role, User, class_members
from storage.errors import Conflict, Forbidden, NotFound, ServiceError

XAPI_VERSION = "1.0.3"
#: The versions a client may say it speaks (X-Experience-API-Version).
ACCEPTED_VERSIONS = frozenset({"1.0.0", "1.0.1", "1.0.2", "1.0.3"})
#: How far ahead of the server's clock a statement's timestamp may be (clock skew).
MAX_FUTURE = timedelta(minutes=5)
#: At most this many statements in one query page, and in one POST.
MAX_LIMIT = 500
MAX_BATCH = 1000

#: The ADL verb vocabulary's prefix (http://adlnet.gov/expapi/verbs/<verb>).
ADL_VERBS = "http://adlnet.gov/expapi/verbs/"
VERB_ANSWERED = ADL_VERBS + "answered"
VERB_COMPLETED = ADL_VERBS + "completed"
VERB_VOIDED = ADL_VERBS + "voided"
#: ADL's verb for starting over; a tool that lets a student retry sends it.
VERB_ATTEMPTED = ADL_VERBS + "attempted"
#: ADL has no hint verb: a request for help is "asked".
VERB_ASKED = ADL_VERBS + "asked"
ACTIVITY_INTERACTION = "http://adlnet.gov/expapi/activities/cmi.interaction"
ACTIVITY_ASSESSMENT = "http://adlnet.gov/expapi/activities/assessment"


class BadStatement(ServiceError):
    """A statement or request that breaks the xAPI rules (400); ``errors`` lists
    ``{"field", "message"}`` entries."""

    status = 400
    title = "Bad request"

    def __init__(self, message: str, field: str | None = None,
                 errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message, field)
        self.errors = errors or ([{"field": field, "message": message}] if field else [])


@dataclass(frozen=True)
class Writer:
    """Who stores statements: a client's credential for one class, or the engine (``None``)."""

    client_id: int | None
    class_id: int | None
    authority: dict[str, Any]


def client_authority(base_url: str, key: str, name: str) -> dict[str, Any]:
    """The authority of statements a client sent: the client as an Agent with an account."""
    return {"objectType": "Agent", "name": name,
            "account": {"homePage": base_url, "name": f"xapi-client:{key}"}}


def engine_authority(base_url: str) -> dict[str, Any]:
    """The authority of the engine's own statements."""
    return {"objectType": "Agent", "name": "cat-engine",
            "account": {"homePage": base_url, "name": "cat-engine"}}


def student_agent(base_url: str, pseudonym: str) -> dict[str, Any]:
    """A student as an xAPI agent: the site's account under the pseudonym, never a name."""
    return {"objectType": "Agent", "account": {"homePage": base_url, "name": pseudonym}}


def check_version(header: str | None) -> str:
    """The ``X-Experience-API-Version`` a request sent, if it is one this LRS accepts.

    Raises
    ------
    BadStatement
        Missing, or not one of :data:`ACCEPTED_VERSIONS`.
    """
    if not header:
        raise BadStatement("the X-Experience-API-Version header is required (send 1.0.3)",
                           "X-Experience-API-Version")
    if header.strip() not in ACCEPTED_VERSIONS:
        raise BadStatement(f"X-Experience-API-Version {header[:20]!r} is not supported; this LRS "
                           f"speaks {', '.join(sorted(ACCEPTED_VERSIONS))}",
                           "X-Experience-API-Version")
    return header.strip()


# -- storing -------------------------------------------------------------------------------------


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return as_utc(moment).astimezone(UTC).isoformat(timespec="microseconds").replace(
        "+00:00", "Z")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _normalised(statement: dict[str, Any]) -> dict[str, Any]:
    """The statement with single context activities as lists (the form the LRS returns)."""
    context = statement.get("context")
    if isinstance(context, dict) and isinstance(context.get("contextActivities"), dict):
        activities = {k: _as_list(v) for k, v in context["contextActivities"].items()}
        statement = {**statement, "context": {**context, "contextActivities": activities}}
    return statement


def content_hash(statement: dict[str, Any]) -> str:
    """SHA-256 of the statement's canonical form (see the module's rules), for the 409 rule."""
    body = {k: v for k, v in statement.items() if k not in ("stored", "authority", "version")}
    body["id"] = canonical_uuid(body["id"])
    if "timestamp" in body:
        body["timestamp"] = _iso(_parse_time(body["timestamp"]))
    context = body.get("context")
    if isinstance(context, dict) and context.get("registration"):
        body["context"] = {**context, "registration": canonical_uuid(context["registration"])}
    obj = body.get("object")
    if isinstance(obj, dict) and obj.get("objectType") == "StatementRef":
        body["object"] = {**obj, "id": canonical_uuid(obj["id"])}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _activities(statement: dict[str, Any]) -> list[tuple[str, str]]:
    """``(activity id, relation)`` of the object and the context activities, without repeats."""
    out: list[tuple[str, str]] = []
    obj = statement["object"]
    if obj.get("objectType", "Activity") == "Activity":
        out.append((obj["id"], "object"))
    activities = (statement.get("context") or {}).get("contextActivities") or {}
    for relation in ("parent", "grouping", "category", "other"):
        for activity in activities.get(relation) or []:
            out.append((activity["id"], relation))
    return list(dict.fromkeys(out))


def _validated(documents: list[Any], now: datetime, batch: bool) -> list[dict[str, Any]]:
    """Validate each statement; raise one error naming every bad path (``[i].path`` in a
    batch)."""
    errors: list[dict[str, str]] = []
    latest = now + MAX_FUTURE
    for index, document in enumerate(documents):
        prefix = f"[{index}]" if batch else ""
        found = statement_errors(document)
        if not found and "timestamp" in document and _parse_time(document["timestamp"]) > latest:
            found = [("timestamp", f"is more than {int(MAX_FUTURE.total_seconds() // 60)} "
                                   "minutes ahead of the server's clock")]
        for path, message in found:
            joined = f"{prefix}.{path}" if prefix and path else prefix + path
            errors.append({"field": joined or "statement", "message": message})
    if errors:
        shown = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise BadStatement(f"invalid statement: {shown}{more}", errors[0]["field"], errors)
    return documents


def _resolve_actors(session: Session, statements: list[dict[str, Any]], base_url: str,
                    writer: Writer, batch: bool) -> list[int]:
    """The student each statement is about, in one query; refuses agents out of scope.

    Every actor must be the site's account of a student (400 otherwise: this store holds
    statements about the site's students only). A client may write only about the students of
    its class (403, the same for an unknown pseudonym, so no one can probe which exist).
    """
    names: list[str] = []
    for index, statement in enumerate(statements):
        actor = statement["actor"]
        account = actor.get("account")
        where = f"[{index}].actor" if batch else "actor"
        if actor.get("objectType") == "Group" or account is None \
                or account["homePage"].rstrip("/") != base_url:
            raise BadStatement(
                f"{where}: the actor must be a student of this site as an Agent with the "
                f"account {{\"homePage\": \"{base_url}\", \"name\": <pseudonym>}}", where)
        names.append(account["name"])
    query = select(User.pseudonym, User.id).where(User.pseudonym.in_(set(names)),
                                                  User.role == Role.STUDENT)
    if writer.class_id is not None:
        query = query.join(class_members, class_members.c.user_id == User.id).where(
            class_members.c.class_id == writer.class_id)
    known = dict(session.execute(query).all())
    for index, name in enumerate(names):
        if name not in known:
            where = f"[{index}].actor" if batch else "actor"
            raise Forbidden(f"{where}: {name[:40]!r} is not a student of this credential's "
                            "class", where)
    return [known[name] for name in names]


def store_statements(session: Session, documents: list[Any], *, base_url: str, writer: Writer,
                     now: datetime | None = None, statement_id: str | None = None,
                     batch: bool = False, attempt_id: int | None = None) -> list[str]:
    """Validate and store statements in the caller's transaction, all or nothing.

    Parameters
    ----------
    documents
        The statements as sent (one or a batch), JSON objects.
    base_url
        The site's base URL without a trailing slash (the agents' ``homePage``).
    writer
        The credential (its class bounds the actors) or the engine.
    statement_id
        For ``PUT ?statementId=``: the id the statement must have (or is given).
    batch
        The statements came as a JSON list: errors name the index (``[3].verb.id``).

    Returns
    -------
    list of str
        The statements' ids in the order sent (including those already stored).

    Raises
    ------
    BadStatement
        A statement breaks a rule (400, naming the path).
    Forbidden
        An actor is not a student of the credential's class, or a voided target is not (403).
    Conflict
        An id is stored with other content (409).
    """
    now = now or utcnow()
    if not documents:
        raise BadStatement("send a statement or a non-empty list of statements", "statement")
    if len(documents) > MAX_BATCH:
        raise BadStatement(f"at most {MAX_BATCH} statements in one request", "statement")
    statements = [_normalised(s) for s in _validated(documents, now, batch)]
    if statement_id is not None:
        given = statements[0].get("id")
        if given is not None and canonical_uuid(given) != canonical_uuid(statement_id):
            raise BadStatement("the statement's id differs from the statementId parameter", "id")
        statements[0] = {**statements[0], "id": statement_id}
    statements = [{**s, "id": canonical_uuid(s["id"]) if s.get("id") else str(uuid.uuid4())}
                  for s in statements]
    ids = [s["id"] for s in statements]
    if len(set(ids)) != len(ids):
        raise BadStatement("the batch holds the same statement id more than once", "id")
    actors = _resolve_actors(session, statements, base_url, writer, batch)
    hashes = [content_hash(s) for s in statements]
    stored = dict(session.execute(select(Statement.id, Statement.content_hash)
                                  .where(Statement.id.in_(ids))).all())
    for statement_id_, digest in zip(ids, hashes, strict=True):
        if statement_id_ in stored and stored[statement_id_] != digest:
            raise Conflict(f"statement {statement_id_} is already stored with other content",
                           "id")
    fresh = [i for i, sid in enumerate(ids) if sid not in stored]
    if not fresh:
        return ids
    voids = _check_voiding(session, [statements[i] for i in fresh], writer)
    stored_at = _iso(now)
    rows, activity_rows = [], []
    for position, i in enumerate(fresh):
        statement = statements[i]
        body = {**statement, "timestamp": statement.get("timestamp", stored_at),
                "stored": stored_at, "authority": writer.authority, "version": XAPI_VERSION}
        registration = (statement.get("context") or {}).get("registration")
        obj = statement["object"]
        rows.append({
            "id": ids[i], "stored_at": now, "timestamp": _parse_time(body["timestamp"]),
            "actor_id": actors[i], "verb_id": statement["verb"]["id"],
            "object_id": obj.get("id") if obj.get("objectType", "Activity") in
            ("Activity", "StatementRef") else None,
            "registration": canonical_uuid(registration) if registration else None,
            "voids": voids[position], "client_id": writer.client_id, "attempt_id": attempt_id,
            "content_hash": hashes[i], "body": body,
        })
        activity_rows.append(_activities(statement))
    insert_rows(session, rows, activity_rows)
    return ids


def insert_rows(session: Session, rows: list[dict[str, Any]],
                activity_rows: list[list[tuple[str, str]]]) -> None:
    """Insert statement rows (executemany, RETURNING their ``seq``) and their activities."""
    mark_stored(session)
    connection = session.connection()
    seqs = connection.execute(
        insert(Statement).returning(Statement.seq, sort_by_parameter_order=True), rows
    ).scalars().all()
    links = [{"statement_seq": seq, "activity_id": activity, "relation": relation}
             for seq, activities in zip(seqs, activity_rows, strict=True)
             for activity, relation in activities]
    if links:
        connection.execute(insert(StatementActivity), links)


def _check_voiding(session: Session, statements: list[dict[str, Any]],
                   writer: Writer) -> list[str | None]:
    """The id each statement voids (or ``None``); refuses voiding a voiding statement."""
    targets: list[str | None] = []
    for statement in statements:
        if statement["verb"]["id"] != VERB_VOIDED:
            targets.append(None)
            continue
        obj = statement["object"]
        if obj.get("objectType") != "StatementRef":
            raise BadStatement("a voiding statement's object must be a StatementRef to the "
                               "statement it voids", "object.objectType")
        targets.append(canonical_uuid(obj["id"]))
    wanted = [t for t in targets if t]
    if not wanted:
        return targets
    batch_voiding = {s["id"] for s, t in zip(statements, targets, strict=True) if t}
    rows = session.execute(select(Statement.id, Statement.verb_id, Statement.actor_id,
                                  Statement.client_id)
                           .where(Statement.id.in_(wanted))).all()
    in_scope = _students_of(session, writer.class_id, {r.actor_id for r in rows})
    for row in rows:
        if row.verb_id == VERB_VOIDED:
            raise BadStatement(f"statement {row.id} is itself a voiding statement; it cannot be "
                               "voided", "object.id")
        if in_scope is not None and row.actor_id not in in_scope:
            raise Forbidden(f"statement {row.id} is not about a student of this credential's "
                            "class", "object.id")
    if batch_voiding & set(wanted):
        raise BadStatement("a voiding statement cannot be voided", "object.id")
    return targets


def _students_of(session: Session, class_id: int | None, ids: Iterable[int]) -> set[int] | None:
    if class_id is None:
        return None
    return set(session.scalars(select(class_members.c.user_id).where(
        class_members.c.class_id == class_id, class_members.c.user_id.in_(set(ids)))))


# -- reading -------------------------------------------------------------------------------------

_VOIDING = aliased(Statement)
#: A condition on :class:`Statement` rows: no voiding statement names this one.
NOT_VOIDED = ~exists().where(and_(_VOIDING.voids == Statement.id,
                                   _VOIDING.verb_id == VERB_VOIDED))


def _scoped(query, class_id: int | None):
    if class_id is None:
        return query
    return query.where(Statement.actor_id.in_(
        select(class_members.c.user_id).where(class_members.c.class_id == class_id)))


def get_statement(session: Session, statement_id: str, *, class_id: int | None,
                  voided: bool = False) -> dict[str, Any]:
    """One statement by id (``voided``: only if it is voided, as ``voidedStatementId`` asks).

    Raises
    ------
    NotFound
        No such statement the caller may read, or voided (not voided) when ``voided`` is false
        (true).
    """
    try:
        key = canonical_uuid(statement_id)
    except ValueError:
        raise BadStatement("the statement id must be a UUID", "statementId") from None
    query = _scoped(select(Statement.body).where(Statement.id == key), class_id)
    query = query.where(~NOT_VOIDED if voided else NOT_VOIDED)
    body = session.scalar(query)
    if body is None:
        what = "voided statement" if voided else "statement"
        raise NotFound(f"no {what} {key} that this credential may read")
    return body


def _agent_pseudonym(agent: str, base_url: str) -> str | None:
    try:
        value = json.loads(agent)
    except ValueError:
        raise BadStatement("agent must be a JSON Agent object", "agent") from None
    errors = statement_errors({"actor": value, "verb": {"id": VERB_VOIDED},
                               "object": {"id": "urn:x"}}) if isinstance(value, dict) else [
        ("", "must be a JSON object")]
    if errors:
        raise BadStatement(f"agent: {errors[0][1]}", "agent")
    account = value.get("account")
    if account is None or account["homePage"].rstrip("/") != base_url:
        return None  # an agent that is no student here: nothing matches
    return account["name"]


def _flag(params: dict[str, str], name: str) -> bool:
    value = params.get(name, "false").lower()
    if value not in ("true", "false"):
        raise BadStatement(f"{name} must be true or false", name)
    return value == "true"


def _moment(params: dict[str, str], name: str) -> datetime | None:
    if name not in params:
        return None
    try:
        return _parse_time(params[name])
    except ValueError:
        raise BadStatement(f"{name} must be an ISO 8601 timestamp", name) from None


QUERY_PARAMETERS = frozenset({
    "statementId", "voidedStatementId", "agent", "verb", "activity", "registration",
    "related_activities", "related_agents", "since", "until", "limit", "format", "attachments",
    "ascending", "cursor",
})


def query_statements(session: Session, params: dict[str, str], *, base_url: str,
                     class_id: int | None, path: str = "/xapi/statements") -> dict[str, Any]:
    """The statements that match the filters, one page, as a StatementResult.

    Parameters
    ----------
    params
        The query parameters of ``GET /xapi/statements`` (see :data:`QUERY_PARAMETERS`);
        ``cursor`` is the ``seq`` the next page starts after (put in ``more`` by this function).
    class_id
        Only statements about this class's students (``None``: all).

    Returns
    -------
    dict
        ``{"statements": [...], "more": "<relative URL of the next page>" or ""}``. Pages follow
        ``seq`` (the order statements were stored), so statements stored while a client pages
        through do not shift the pages.
    """
    unknown = sorted(set(params) - QUERY_PARAMETERS)
    if unknown:
        raise BadStatement(f"unknown query parameter(s): {', '.join(unknown)}", unknown[0])
    if "statementId" in params or "voidedStatementId" in params:
        name = "statementId" if "statementId" in params else "voidedStatementId"
        extra = set(params) - {name, "format", "attachments"}
        if extra:
            raise BadStatement(f"{name} takes no other filter (got {', '.join(sorted(extra))})",
                               name)
        body = get_statement(session, params[name], class_id=class_id,
                             voided=name == "voidedStatementId")
        return _formatted(body, params.get("format", "exact"))
    fmt = params.get("format", "exact")
    if fmt not in ("exact", "ids", "canonical"):
        raise BadStatement("format must be exact, ids or canonical", "format")
    try:
        limit = int(params.get("limit", "0"))
    except ValueError:
        raise BadStatement("limit must be a whole number", "limit") from None
    if limit < 0:
        raise BadStatement("limit must not be negative", "limit")
    limit = MAX_LIMIT if limit == 0 else min(limit, MAX_LIMIT)
    ascending = _flag(params, "ascending")
    related = _flag(params, "related_activities")
    _flag(params, "related_agents")
    _flag(params, "attachments")
    query = _scoped(select(Statement.seq, Statement.body).where(NOT_VOIDED), class_id)
    if "agent" in params:
        pseudonym = _agent_pseudonym(params["agent"], base_url)
        query = query.where(Statement.actor_id == select(User.id).where(
            User.pseudonym == (pseudonym or "")).scalar_subquery())
    if "verb" in params:
        query = query.where(Statement.verb_id == params["verb"])
    if "activity" in params:
        link = select(StatementActivity.statement_seq).where(
            StatementActivity.activity_id == params["activity"])
        if not related:
            link = link.where(StatementActivity.relation == "object")
        query = query.where(Statement.seq.in_(link))
    if "registration" in params:
        try:
            query = query.where(Statement.registration == canonical_uuid(params["registration"]))
        except ValueError:
            raise BadStatement("registration must be a UUID", "registration") from None
    since, until = _moment(params, "since"), _moment(params, "until")
    if since is not None:
        query = query.where(Statement.stored_at > since)
    if until is not None:
        query = query.where(Statement.stored_at <= until)
    if "cursor" in params:
        try:
            cursor = int(params["cursor"])
            if not 0 <= cursor < 2**63:
                raise ValueError(cursor)
        except ValueError:
            raise BadStatement("cursor must come from a 'more' link", "cursor") from None
        query = query.where(Statement.seq > cursor if ascending else Statement.seq < cursor)
    query = query.order_by(Statement.seq.asc() if ascending else Statement.seq.desc())
    rows = session.execute(query.limit(limit + 1)).all()
    more = ""
    if len(rows) > limit:
        rows = rows[:limit]
        following = {k: v for k, v in params.items() if k != "cursor"}
        following["cursor"] = str(rows[-1].seq)
        more = f"{path}?{urlencode(sorted(following.items()))}"
    return {"statements": [_formatted(r.body, fmt) for r in rows], "more": more}


def _ids_only(value: Any) -> Any:
    """An Agent, Group or Activity reduced to its identifier (``format=ids``)."""
    if not isinstance(value, dict):
        return value
    kind = value.get("objectType")
    keep = {"objectType", "mbox", "mbox_sha1sum", "openid", "account"}
    if kind in (None, "Agent") and any(k in value for k in keep - {"objectType"}):
        return {k: v for k, v in value.items() if k in keep}
    if kind == "Group":
        out = {k: v for k, v in value.items() if k in keep}
        if "member" in value:
            out["member"] = [_ids_only(m) for m in value["member"]]
        return out
    if kind in (None, "Activity"):
        return {k: v for k, v in value.items() if k in ("objectType", "id")}
    return value


def _formatted(body: dict[str, Any], fmt: str) -> dict[str, Any]:
    if fmt != "ids":
        return body
    out = {**body, "actor": _ids_only(body["actor"]), "verb": {"id": body["verb"]["id"]},
           "object": _ids_only(body["object"]), "authority": _ids_only(body["authority"])}
    context = body.get("context")
    if context and context.get("contextActivities"):
        out["context"] = {**context, "contextActivities": {
            k: [_ids_only(a) for a in v] for k, v in context["contextActivities"].items()}}
    return out


# -- the engine's own statements -----------------------------------------------------------------


def iso_duration(milliseconds: int | float) -> str:
    """Milliseconds as an ISO 8601 duration in seconds (``PT12.345S``)."""
    seconds = max(0.0, float(milliseconds)) / 1000.0
    return f"PT{seconds:.3f}".rstrip("0").rstrip(".") + "S"


def test_activity(base_url: str, test_id: int) -> dict[str, Any]:
    """A test as an xAPI activity (the parent of its items' statements)."""
    return {"objectType": "Activity", "id": f"{base_url}/xapi/activities/tests/{test_id}",
            "definition": {"type": ACTIVITY_ASSESSMENT}}


def engine_answered(base_url: str, *, pseudonym: str, registration: str, test_id: int,
                    item_code: str, position: int, response: int | None,
                    success: bool | None, response_time_ms: int | None,
                    answered_at: datetime) -> dict[str, Any]:
    """The ``answered`` statement of one item of an attempt.

    The item is the activity ``<base_url>/xapi/activities/items/<code>`` (an interaction); the
    result holds the response (the option's index or the category), ``success`` (scored right,
    for items with a key) and the ``duration`` from the response time.
    """
    result: dict[str, Any] = {}
    if success is not None:
        result["success"] = success
    if response is not None:
        result["response"] = str(response)
    if response_time_ms is not None:
        result["duration"] = iso_duration(response_time_ms)
    statement: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "actor": student_agent(base_url, pseudonym),
        "verb": {"id": VERB_ANSWERED, "display": {"en-US": "answered"}},
        "object": {"objectType": "Activity",
                   "id": f"{base_url}/xapi/activities/items/{item_code}",
                   "definition": {"type": ACTIVITY_INTERACTION, "interactionType": "choice"}},
        "context": {"registration": registration,
                    "contextActivities": {"parent": [test_activity(base_url, test_id)]},
                    "extensions": {f"{base_url}/xapi/extensions/position": position}},
        "timestamp": _iso(answered_at),
    }
    if result:
        statement["result"] = result
    return statement


def engine_completed(base_url: str, *, pseudonym: str, registration: str, test_id: int,
                     theta: float, se: float, stop_reason: str, mastery: str | None,
                     started_at: datetime, finished_at: datetime) -> dict[str, Any]:
    """The ``completed`` statement of a finished attempt.

    theta is not a score (it has no minimum, maximum or scale the spec's ``score`` means), so
    theta, se (logits) and the stop reason go in result extensions under
    ``<base_url>/xapi/extensions/``; ``success`` is the mastery decision against the test's
    overall cut score when there is one and it is decided.
    """
    result: dict[str, Any] = {
        "completion": True,
        "duration": iso_duration((as_utc(finished_at) - as_utc(started_at)).total_seconds()
                                 * 1000),
        "extensions": {f"{base_url}/xapi/extensions/theta": theta,
                       f"{base_url}/xapi/extensions/se": se,
                       f"{base_url}/xapi/extensions/stop-reason": stop_reason},
    }
    if mastery in ("mastered", "not_mastered"):
        result["success"] = mastery == "mastered"
    return {
        "id": str(uuid.uuid4()),
        "actor": student_agent(base_url, pseudonym),
        "verb": {"id": VERB_COMPLETED, "display": {"en-US": "completed"}},
        "object": test_activity(base_url, test_id),
        "result": result,
        "context": {"registration": registration},
        "timestamp": _iso(finished_at),
    }


def store_engine_statements(session: Session, statements: list[dict[str, Any]], *,
                            base_url: str, actor_id: int, attempt_id: int,
                            now: datetime) -> None:
    """Insert the engine's statements (built by this module, so valid) in the caller's
    transaction, without the checks a client's statements need.

    A retried answer is replayed before anything is stored (the response is unique per attempt
    and position), so it stores no second statement. The ids are random: ids derived from the
    registration could be taken first by a client that reads it, and block the student's next
    answer. The answer path on PostgreSQL puts the same inserts in its one statement instead
    (:func:`engine_ctes`).
    """
    rows, activity_rows = engine_rows(statements, base_url=base_url, actor_id=actor_id,
                                      attempt_id=attempt_id, now=now)
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        insert_rows(session, rows, activity_rows)
        return
    mark_stored(session)
    connection.execute(_engine_insert(len(rows)), engine_parameters(rows, activity_rows))


#: The session's ``info`` key set when statements were stored in its transaction (the API then
#: wakes the xAPI-out sender after the commit: :mod:`api.xapi_out`).
STORED_FLAG = "xapi_statements_stored"


def mark_stored(session: Session) -> None:
    """Note in ``session.info`` that its transaction stores statements."""
    session.info[STORED_FLAG] = True


def engine_rows(statements: list[dict[str, Any]], *, base_url: str, actor_id: int,
                attempt_id: int, now: datetime
                ) -> tuple[list[dict[str, Any]], list[list[tuple[str, str]]]]:
    """The ``statements`` rows of the engine's statements, and each one's activities."""
    stored_at = _iso(now)
    authority = engine_authority(base_url)
    rows, activity_rows = [], []
    for statement in statements:
        body = {**statement, "stored": stored_at, "authority": authority,
                "version": XAPI_VERSION}
        rows.append({
            "id": statement["id"], "stored_at": now,
            "timestamp": _parse_time(statement["timestamp"]), "actor_id": actor_id,
            "verb_id": statement["verb"]["id"], "object_id": statement["object"]["id"],
            "registration": statement["context"]["registration"], "voids": None,
            "client_id": None, "attempt_id": attempt_id,
            "content_hash": content_hash(statement), "body": body,
        })
        activity_rows.append(_activities(statement))
    return rows, activity_rows


_ENGINE_COLUMNS = ("id", "stored_at", "timestamp", "actor_id", "verb_id", "object_id",
                   "registration", "voids", "client_id", "attempt_id", "content_hash")


def engine_parameters(rows: list[dict[str, Any]], activity_rows: list[list[tuple[str, str]]]
                      ) -> dict[str, Any]:
    """The bound parameters of :func:`engine_ctes` (PostgreSQL) for these rows."""
    parameters: dict[str, Any] = {}
    for i, (row, activities) in enumerate(zip(rows, activity_rows, strict=True)):
        parameters |= {f"xapi_{name}_{i}": row[name] for name in _ENGINE_COLUMNS}
        parameters[f"xapi_body_{i}"] = json.dumps(row["body"], ensure_ascii=False)
        parameters[f"xapi_acts_{i}"] = [activity for activity, _relation in activities]
        parameters[f"xapi_rels_{i}"] = [relation for _activity, relation in activities]
    return parameters


def _statement_sql(i: int) -> str:
    names = ", ".join((*_ENGINE_COLUMNS, "body"))
    return (f"INSERT INTO statements ({names}) VALUES ("
            + ", ".join(f":xapi_{c}_{i}" for c in _ENGINE_COLUMNS)
            + f", CAST(:xapi_body_{i} AS JSON)) RETURNING seq")


def _links_sql(n: int) -> str:
    links = " UNION ALL ".join(
        f"SELECT xapi_s{i}.seq, a.activity_id, a.relation FROM xapi_s{i}, "
        f"unnest(CAST(:xapi_acts_{i} AS VARCHAR[]), CAST(:xapi_rels_{i} AS VARCHAR[])) "
        "AS a(activity_id, relation)" for i in range(n))
    return f"INSERT INTO statement_activities (statement_seq, activity_id, relation) {links}"


@functools.cache
def engine_ctes(n: int) -> tuple[Any, ...]:
    """PostgreSQL: data-modifying CTEs inserting ``n`` engine statements and their activities,
    to add to another statement (``add_cte``) so that they cost no round trip of their own."""
    statements = [text(_statement_sql(i)).columns(column("seq", Integer)).cte(f"xapi_s{i}")
                  for i in range(n)]
    links = text(_links_sql(n) + " RETURNING statement_seq").columns(
        column("statement_seq", Integer)).cte("xapi_links")
    return (*statements, links)


@functools.cache
def _engine_insert(n: int):
    """PostgreSQL text inserting ``n`` statements and their activities in one statement."""
    ctes = ", ".join(f"xapi_s{i} AS ({_statement_sql(i)})" for i in range(n))
    return text(f"WITH {ctes} {_links_sql(n)}")


# -- the portfolio's step log --------------------------------------------------------------------


def _display(language_map: dict[str, str] | None) -> str | None:
    if not language_map:
        return None
    return language_map.get("en-US") or language_map.get("en") or next(iter(language_map.values()))


def _position(body: dict[str, Any], attempt_id: int | None) -> int | None:
    """The question's place in its attempt, for the engine's own ``answered`` statements."""
    if attempt_id is None:
        return None
    extensions = (body.get("context") or {}).get("extensions") or {}
    value = next((v for k, v in extensions.items() if k.endswith("/xapi/extensions/position")),
                 None)
    return value if isinstance(value, int) else None


def student_log(session: Session, student_id: int, *, verb: str | None = None,
                activity: str | None = None, before_seq: int | None = None,
                limit: int = 200, where: ColumnElement[bool] | None = None
                ) -> list[dict[str, Any]]:
    """A student's step log, newest first, one query (voided statements left out).

    Parameters
    ----------
    verb, activity
        Only statements with this verb id; only those concerning this activity (as object or
        context activity).
    before_seq
        Only statements stored before this one (the next page: the last entry's ``seq``).
    where
        A further condition on :class:`Statement` rows (e.g. a reader's scope,
        :meth:`evidence.scope.StudentScope.statements`).

    Returns
    -------
    list of dict
        ``seq``, ``id``, ``timestamp`` (aware datetime), ``verb`` (id), ``verb_display``,
        ``object_id``, ``object_name``, ``result`` (``success``, ``completion``, ``response``,
        ``duration``, ``score`` when present; ``success`` of an ``answered`` statement tells
        whether an item was right: staff only), ``registration``, ``client_id``
        (``None`` for the engine's own statements), ``attempt_id`` and ``position`` (the
        question's place in the attempt; the engine's statements only).
    """
    query = (select(Statement.seq, Statement.id, Statement.timestamp, Statement.verb_id,
                    Statement.object_id, Statement.registration, Statement.client_id,
                    Statement.attempt_id, Statement.body)
             .where(Statement.actor_id == student_id, NOT_VOIDED))
    if where is not None:
        query = query.where(where)
    if verb is not None:
        query = query.where(Statement.verb_id == verb)
    if activity is not None:
        query = query.where(Statement.seq.in_(select(StatementActivity.statement_seq).where(
            StatementActivity.activity_id == activity)))
    if before_seq is not None:
        query = query.where(Statement.seq < before_seq)
    rows = session.execute(query.order_by(Statement.seq.desc()).limit(max(1, min(limit, 1000))))
    out = []
    for row in rows:
        body = row.body
        definition = (body.get("object") or {}).get("definition") or {}
        result = body.get("result") or {}
        out.append({
            "seq": row.seq, "id": row.id, "timestamp": as_utc(row.timestamp),
            "verb": row.verb_id, "verb_display": _display(body["verb"].get("display")),
            "object_id": row.object_id, "object_name": _display(definition.get("name")),
            "result": {k: result[k] for k in ("success", "completion", "response", "duration",
                                              "score") if k in result},
            "registration": row.registration, "client_id": row.client_id,
            "attempt_id": row.attempt_id, "position": _position(body, row.attempt_id),
        })
    return out
