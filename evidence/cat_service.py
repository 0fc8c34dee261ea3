"""The 1EdTech Computer Adaptive Testing (CAT) Service: a delivery platform delegates item
selection to this engine.

A *section* is one of this engine's tests pinned to the bank snapshot it delivered when the
section was created; a *session* is one candidate's engine state in a section plus the item
results the platform submitted. Nothing lives in process memory: every request rebuilds the
engine session from its stored state (as :mod:`evidence.attempts` does) and writes the new state
in the caller's transaction. Sections and sessions belong to the client (platform) that made
them; another client is told they do not exist.

Item identifiers are the items' codes: the identifiers of the items in a QTI package exported
from this bank. A result names the item and carries the candidate's response (the choice
identifier, ``A``, ``B``, ... as exported) or only the item's ``SCORE`` outcome. The candidate
is pseudonymous: only the platform's identifier (the result context's ``sourcedId``) is kept.
The HTTP binding is :mod:`api.cat_service`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cat_engine import CATSession
from cat_engine.errors import BankExhaustedError, CATError, InvalidResponseError
from evidence.attempts import live_exposure_stats
from evidence.models import CatClient, CatClientToken, CatResult, CatSection, CatSession
from item_bank.models import AdaptiveTest
from item_bank.services import BankError, Delivery, current_snapshot_id, delivery_bank
from storage import as_utc, utcnow
from storage.accounts import User, is_district_admin
from storage.errors import Conflict, Forbidden, Invalid, NotFound, ServiceError
from storage.rights import AuditAction, audit

#: The one scope an access token carries (whatever scope the platform asked for).
SCOPE = "cat.all"
TOKEN_LIFETIME = timedelta(hours=1)
#: At most this many characters of each base64 document of a section are kept.
MAX_DOCUMENT = 2_000_000
#: QTI's built-in response variables: never the candidate's answer.
BUILT_IN_RESPONSES = frozenset({"numAttempts", "duration", "completionStatus"})
_DUMMY_HASH = hashlib.sha256(b"no such client").hexdigest()


class BadRequest(ServiceError):
    """The request's body does not have the form the binding defines (400)."""

    status = 400
    title = "Bad request"


class Unauthenticated(Exception):
    """No valid client credential or access token: ``str(error)`` says why (401)."""


# -- clients (issued by district administrators) ---------------------------------------------


def secret_hash(secret: str) -> str:
    """The stored form of a client secret or access token (SHA-256: they are 256 random bits)."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _check_manager(viewer: User) -> None:
    if not is_district_admin(viewer):
        raise Forbidden("CAT service clients are managed by district administrators (an "
                        "administrator of no school)")


def create_client(session: Session, viewer: User, *, name: str) -> tuple[CatClient, str]:
    """Issue a client credential for a delivery platform; returns it and its secret (shown once).

    Raises
    ------
    Forbidden
        ``viewer`` is not a district administrator.
    Invalid
        An empty name.
    """
    _check_manager(viewer)
    name = name.strip()
    if not name:
        raise Invalid("name must not be empty", "name")
    secret = secrets.token_urlsafe(32)
    client = CatClient(name=name, key=secrets.token_hex(16), secret_hash=secret_hash(secret),
                       created_by=viewer.id, created_at=utcnow())
    session.add(client)
    session.flush()
    audit(session, AuditAction.CAT_CLIENT, actor_id=viewer.id, object_type="cat_client",
          object_id=client.id, detail={"issued": client.key, "name": client.name})
    return client, secret


def client_query(viewer: User) -> Select:
    """The clients ``viewer`` may list, oldest first.

    Raises
    ------
    Forbidden
        ``viewer`` is not a district administrator.
    """
    _check_manager(viewer)
    return select(CatClient).order_by(CatClient.id)


def visible_client(session: Session, viewer: User, client_id: int) -> CatClient:
    """One client (404 when there is none)."""
    client = session.scalar(client_query(viewer).where(CatClient.id == client_id))
    if client is None:
        raise NotFound(f"no CAT service client {client_id}")
    return client


def revoke_client(session: Session, client: CatClient, viewer: User,
                  now: datetime | None = None) -> None:
    """End a credential and every token it holds (audited); repeating it changes nothing."""
    if client.revoked_at is None:
        client.revoked_at = now or utcnow()
        audit(session, AuditAction.CAT_CLIENT, actor_id=viewer.id, object_type="cat_client",
              object_id=client.id, detail={"revoked": client.key})
    session.execute(delete(CatClientToken).where(CatClientToken.client_id == client.id))
    session.flush()


def issue_token(session: Session, key: str, secret: str, *, lifetime: timedelta = TOKEN_LIFETIME,
                now: datetime | None = None) -> tuple[str, int]:
    """OAuth 2 client credentials grant: an access token for the client ``key``.

    Returns
    -------
    token, expires_in
        The bearer token (only its hash is stored) and its lifetime in seconds.

    Raises
    ------
    Unauthenticated
        Unknown key, wrong secret (both checked at the same cost) or a revoked client.
    """
    now = now or utcnow()
    client = session.scalar(select(CatClient).where(CatClient.key == key[:64]))
    expected = client.secret_hash if client is not None else _DUMMY_HASH
    matches = hmac.compare_digest(expected.encode(), secret_hash(secret).encode())
    if client is None or not matches:
        raise Unauthenticated("the client_id and client_secret do not match a CAT service "
                              "client")
    if client.revoked_at is not None:
        raise Unauthenticated("this CAT service client was revoked")
    session.execute(delete(CatClientToken).where(CatClientToken.client_id == client.id,
                                                 CatClientToken.expires_at < now))
    token = secrets.token_urlsafe(32)
    session.add(CatClientToken(client_id=client.id, token_hash=secret_hash(token),
                               created_at=now, expires_at=now + lifetime))
    return token, int(lifetime.total_seconds())


def client_of_token(session: Session, token: str, now: datetime | None = None) -> CatClient:
    """The client an access token was issued to.

    Raises
    ------
    Unauthenticated
        An unknown or expired token, or one of a revoked client.
    """
    row = session.execute(
        select(CatClient, CatClientToken.expires_at)
        .join(CatClientToken, CatClientToken.client_id == CatClient.id)
        .where(CatClientToken.token_hash == secret_hash(token))
    ).first()
    if row is None:
        raise Unauthenticated("the access token is not valid; get a new one from the token "
                              "endpoint")
    client, expires_at = row
    if as_utc(expires_at) <= (now or utcnow()):
        raise Unauthenticated("the access token has expired; get a new one from the token "
                              "endpoint")
    if client.revoked_at is not None:
        raise Unauthenticated("this CAT service client was revoked")
    return client


# -- sections ----------------------------------------------------------------------------------


def _base64_json(text: str, field: str) -> Any:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise BadRequest(f"{field} must be base64 (RFC 4648) text", field) from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest(f"{field} must be the base64 of a JSON object such as "
                         '{"testId": 3} or {"testName": "Maths"}', field) from None


def _document(text: str | None, field: str) -> str | None:
    if text is None:
        return None
    if len(text) > MAX_DOCUMENT:
        raise BadRequest(f"{field} is longer than {MAX_DOCUMENT:,} characters", field)
    try:
        base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise BadRequest(f"{field} must be base64 (RFC 4648) text", field) from None
    return text


def _test_of(session: Session, configuration: Any) -> AdaptiveTest:
    field = "sectionConfiguration"
    if not isinstance(configuration, dict):
        raise BadRequest(f"{field} must encode a JSON object", field)
    unknown = sorted(set(configuration) - {"testId", "testName"})
    if unknown:
        raise BadRequest(f"{field}: unknown setting(s) {', '.join(map(repr, unknown))}; it "
                         "takes testId or testName", field)
    test_id, name = configuration.get("testId"), configuration.get("testName")
    if (test_id is None) == (name is None):
        raise BadRequest(f"{field} must name the test by exactly one of testId and testName",
                         field)
    if test_id is not None:
        if isinstance(test_id, bool) or not isinstance(test_id, int) or not 0 < test_id < 2**31:
            raise BadRequest(f"{field}: testId must be a positive integer", f"{field}.testId")
        test = session.get(AdaptiveTest, test_id)
        what = f"id {test_id}"
    else:
        if not isinstance(name, str) or not name.strip():
            raise BadRequest(f"{field}: testName must be a non-empty string",
                             f"{field}.testName")
        test = session.scalar(select(AdaptiveTest).where(AdaptiveTest.name == name.strip()))
        what = f"name {name.strip()[:200]!r}"
    if test is None:
        raise Invalid(f"{field}: no test with {what}", field)
    if not test.is_active:
        raise Invalid(f"{field}: the test with {what} is not active", field)
    return test


def create_section(session: Session, client: CatClient, *, section_configuration: str,
                   qti_metadata: str | None = None, qti_usagedata: str | None = None,
                   now: datetime | None = None) -> CatSection:
    """A section delivering the test that ``section_configuration`` names, pinned to what the
    test delivers now (its bank snapshot).

    ``section_configuration`` is the base64 of a JSON object ``{"testId": 3}`` or
    ``{"testName": "Maths"}``. ``qti_metadata`` and ``qti_usagedata`` (base64) are kept as
    sent; the item parameters are the bank's own.

    Raises
    ------
    BadRequest
        A document that is not base64, or a configuration of the wrong form.
    Invalid
        No such active test, or a test the engine cannot deliver (no calibrated item).
    """
    configuration = _base64_json(section_configuration, "sectionConfiguration")
    test = _test_of(session, configuration)
    documents = (_document(qti_metadata, "qtiMetadata"),
                 _document(qti_usagedata, "qtiUsagedata"))
    try:
        snapshot_id = current_snapshot_id(session, test)
    except BankError as error:
        raise Invalid(f"sectionConfiguration: {error}", "sectionConfiguration") from None
    section = CatSection(identifier=str(uuid.uuid4()), client_id=client.id, test_id=test.id,
                         snapshot_id=snapshot_id, section_configuration=section_configuration,
                         qti_metadata=documents[0], qti_usagedata=documents[1],
                         created_at=now or utcnow())
    session.add(section)
    session.flush()
    return section


def section_of(session: Session, client: CatClient, identifier: str) -> CatSection:
    """The client's section ``identifier`` (404 for another client's)."""
    section = session.scalar(select(CatSection).where(CatSection.identifier == identifier[:36],
                                                      CatSection.client_id == client.id))
    if section is None:
        raise NotFound(f"no section {identifier[:80]!r}")
    return section


def section_items(session: Session, section: CatSection) -> list[str]:
    """The identifiers of every item a session of ``section`` may present (pretest items too),
    in the bank's order."""
    delivery = delivery_bank(session, section.snapshot_id)
    return [*delivery.bank.item_ids, *sorted(delivery.pretest)]


def end_section(session: Session, section: CatSection) -> None:
    """Delete the section with its sessions and their results."""
    sessions = select(CatSession.id).where(CatSession.section_id == section.id)
    session.execute(delete(CatResult).where(CatResult.session_id.in_(sessions)))
    session.execute(delete(CatSession).where(CatSession.section_id == section.id))
    session.delete(section)
    session.flush()


# -- sessions ----------------------------------------------------------------------------------


def _engine_session(session: Session, section: CatSection, delivery: Delivery,
                    state: dict[str, Any]) -> CATSession:
    """The engine session of a stored state, with the test's exposure so far (read only)."""
    data = {**state, "config": delivery.config.settings}
    return CATSession.from_json(delivery.bank, data, config=delivery.config,
                                exposure_stats=live_exposure_stats(session, delivery,
                                                                   section.test_id))


def _state_of(engine: CATSession) -> dict[str, Any]:
    state = engine.to_json()
    state.pop("config")  # the section's snapshot holds it
    return state


def _advance(engine: CATSession) -> str | None:
    """The item to present next, or ``None`` when a stopping rule fired or the bank ran out."""
    if engine.finished:
        return None
    try:
        return engine.next_item()
    except BankExhaustedError:
        return None


def _candidate_of(prior_data: Any) -> str | None:
    if prior_data is None:
        return None
    if not isinstance(prior_data, list):
        raise BadRequest("priorData must be a list of {key, value} pairs", "priorData")
    candidate = None
    for n, pair in enumerate(prior_data):
        if not isinstance(pair, dict) or not isinstance(pair.get("key"), str):
            raise BadRequest(f"priorData[{n}] must be an object with a key (string) and a "
                             "value", f"priorData[{n}]")
        if pair["key"] == "sourcedId":
            candidate = _sourced_id(pair.get("value"), f"priorData[{n}].value")
    return candidate


def _sourced_id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise BadRequest(f"{field}: the candidate's sourcedId must be a string of 1 to 255 "
                         "characters", field)
    return value.strip()


def create_session(session: Session, section: CatSection, *, prior_data: Any = None,
                   now: datetime | None = None) -> tuple[CatSession, dict[str, Any]]:
    """Start a candidate's session; returns it and the reply (its first items).

    ``prior_data`` is the binding's list of ``{key, value}`` pairs; the pair keyed
    ``sourcedId`` is kept as the candidate's identifier, the others are not used (the test's
    configuration says where the engine starts).
    """
    now = now or utcnow()
    candidate = _candidate_of(prior_data)
    delivery = delivery_bank(session, section.snapshot_id)
    seed = secrets.randbits(31)
    engine = CATSession(delivery.bank, delivery.config, seed,
                        live_exposure_stats(session, delivery, section.test_id))
    offered = _advance(engine)
    cat_session = CatSession(identifier=str(uuid.uuid4()), section_id=section.id,
                             candidate=candidate, seed=seed, state=_state_of(engine),
                             finished=offered is None, version=1, created_at=now, updated_at=now)
    session.add(cat_session)
    session.flush()
    return cat_session, reply(section, cat_session, engine, delivery, now)


def session_of(session: Session, section: CatSection, identifier: str) -> CatSession:
    """The section's session ``identifier`` (404 when there is none: never made, or ended)."""
    found = session.scalar(select(CatSession).where(CatSession.identifier == identifier[:36],
                                                    CatSession.section_id == section.id))
    if found is None:
        raise NotFound(f"no session {identifier[:80]!r} in section {section.identifier!r} "
                       "(never created, or ended)")
    return found


def end_session(session: Session, cat_session: CatSession) -> None:
    """End a session: it and its results are deleted."""
    session.execute(delete(CatResult).where(CatResult.session_id == cat_session.id))
    session.delete(cat_session)
    session.flush()


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemResult:
    """What a platform said of one item: the candidate's response and/or its ``SCORE``."""

    identifier: str
    where: str  # the JSON path of the itemResult, for error messages
    response: str | None
    score: float | None


def _list(value: Any, field: str) -> list:
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        raise BadRequest(f"{field} must be a list", field)
    return value


def _values(variable: dict, where: str, *names: str) -> list[Any]:
    """The plain values of a variable, in any of the forms QTI results take in JSON:
    ``"value": [...]``, ``"candidateResponse": {"value": [...]}`` or TAO's
    ``"values": [{"valueString": ...}]``; each value a scalar or ``{"value": ...}``."""
    found = None
    for name in names:
        if name in variable:
            found, field = variable[name], f"{where}.{name}"
            break
    if found is None:
        return []
    if isinstance(found, dict) and "value" in found and "identifier" not in found:
        found, field = found["value"], f"{field}.value"
    out = []
    for n, value in enumerate(found if isinstance(found, list) else [found]):
        if isinstance(value, dict):
            value = value.get("value", value.get("valueString"))
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise BadRequest(f"{field}[{n}] must be a string or a number", f"{field}[{n}]")
        out.append(value)
    return out


def _variables(result: dict, where: str) -> tuple[list[tuple[dict, str]], list[tuple[dict, str]]]:
    """The response and outcome variables of an itemResult, each with its JSON path."""
    responses, outcomes = [], []
    for name in ("responseVariable", "responseVariables"):
        for n, v in enumerate(_list(result.get(name), f"{where}.{name}")):
            responses.append((v, f"{where}.{name}[{n}]"))
    for name in ("outcomeVariable", "outcomeVariables"):
        for n, v in enumerate(_list(result.get(name), f"{where}.{name}")):
            outcomes.append((v, f"{where}.{name}[{n}]"))
    for n, v in enumerate(_list(result.get("variables"), f"{where}.variables")):
        kind = v.get("variableType") if isinstance(v, dict) else None
        (responses if kind == "response" else outcomes).append((v, f"{where}.variables[{n}]"))
    for variable, path in (*responses, *outcomes):
        if not isinstance(variable, dict) or not isinstance(variable.get("identifier"), str):
            raise BadRequest(f"{path} must be an object with an identifier", path)
    return responses, outcomes


def parse_results(assessment_result: Any) -> tuple[list[ItemResult], str | None]:
    """The item results of a QTI ``assessmentResult`` (JSON) and the candidate's ``sourcedId``.

    Takes ``itemResult`` (or ``itemResults``) as a list or a single object, each with an
    ``identifier`` (the item's code) and the candidate's response (the response variable
    ``RESPONSE``, or the one response variable that is not QTI's built-in ``numAttempts``,
    ``duration``), or the ``SCORE`` outcome variable.

    Raises
    ------
    BadRequest
        Naming the path of the first part that does not have this form.
    """
    if not isinstance(assessment_result, dict):
        raise BadRequest("assessmentResult must be a JSON object", "assessmentResult")
    candidate = None
    context = assessment_result.get("context")
    if isinstance(context, dict) and context.get("sourcedId") is not None:
        candidate = _sourced_id(context["sourcedId"], "assessmentResult.context.sourcedId")
    name = "itemResults" if "itemResults" in assessment_result else "itemResult"
    results = []
    for n, result in enumerate(_list(assessment_result.get(name), f"assessmentResult.{name}")):
        where = f"assessmentResult.{name}[{n}]"
        if not isinstance(result, dict):
            raise BadRequest(f"{where} must be an object", where)
        identifier = result.get("identifier")
        if not isinstance(identifier, str) or not identifier.strip():
            raise BadRequest(f"{where}.identifier must be the item's identifier (a string)",
                             f"{where}.identifier")
        responses, outcomes = _variables(result, where)
        named = [(v, p) for v, p in responses if v["identifier"] == "RESPONSE"] or [
            (v, p) for v, p in responses if v["identifier"] not in BUILT_IN_RESPONSES]
        response = None
        if named:
            variable, path = named[0]
            values = _values(variable, path, "candidateResponse", "value", "values")
            if len(values) > 1:
                raise BadRequest(f"{path}: one choice is taken per item, got {len(values)}",
                                 path)
            response = str(values[0]).strip() if values else None
        score = None
        for variable, path in outcomes:
            if variable["identifier"].upper() == "SCORE":
                values = _values(variable, path, "value", "values")
                if len(values) != 1:
                    raise BadRequest(f"{path}: SCORE must have one value", path)
                try:
                    score = float(values[0])
                except (TypeError, ValueError):
                    raise BadRequest(f"{path}: SCORE must be a number, got {values[0]!r}",
                                     path) from None
                if not math.isfinite(score):
                    raise BadRequest(f"{path}: SCORE must be a finite number", path)
        results.append(ItemResult(identifier.strip(), where, response, score))
    if not results:
        raise BadRequest("assessmentResult has no itemResult: send the result of each item "
                         "presented", f"assessmentResult.{name}")
    return results, candidate


def choice_identifier(index: int) -> str:
    """The identifier of option ``index`` (0-based) in this bank's QTI export: A, B, ..., Z,
    AA, ..."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def engine_response(delivery: Delivery, result: ItemResult) -> tuple[int | None, int]:
    """``(choice, response)``: the option chosen (``None`` when only a score came) and the
    engine's response (the score category) for one item result.

    Raises
    ------
    Invalid
        A choice that is not one of the item's, a score that is not one of its categories, or
        neither given; naming the item.
    """
    entry = delivery.items[result.identifier]
    options = list(entry["options"])
    key = entry["key"]
    item = result.identifier
    if result.response is not None:
        ids = [choice_identifier(i) for i in range(len(options))]
        if result.response not in ids:
            raise Invalid(f"item {item!r}: the response {result.response[:40]!r} is not one of "
                          f"its choices ({', '.join(ids)})", result.where)
        choice = ids.index(result.response)
        return choice, (int(choice == key) if key is not None else choice)
    if result.score is None:
        raise Invalid(f"item {item!r}: the result has neither the candidate's response nor a "
                      "SCORE outcome", result.where)
    if key is not None:
        if result.score not in (0.0, 1.0):
            raise Invalid(f"item {item!r} is scored 0 or 1; got SCORE {result.score:g}",
                          result.where)
        return None, int(result.score)
    code = result.identifier
    categories = (int(delivery.bank.n_categories[delivery.bank.index_of(code)])
                  if code in delivery.bank._index else max(2, len(options)))
    if result.score != int(result.score) or not 0 <= result.score < categories:
        raise Invalid(f"item {item!r} is scored in categories 0..{categories - 1}; got SCORE "
                      f"{result.score:g}", result.where)
    return None, int(result.score)


def submit_results(session: Session, section: CatSection, cat_session: CatSession,
                   assessment_result: Any, now: datetime | None = None) -> dict[str, Any]:
    """Count the results of the items last offered and choose the next ones.

    A result for an item counted before (a repeated request) is counted once: only results
    that are new change the session, and a request made only of repeats gets the current
    reply. Nothing is written unless every new result is acceptable.

    Raises
    ------
    BadRequest
        ``assessment_result`` does not have the form of QTI results (naming the path).
    Invalid
        A result for an item that is not among those last offered, or whose response or score
        does not fit the item (naming the item).
    Conflict
        New results for a session that has finished, or another request changed the session
        at the same moment.
    """
    now = now or utcnow()
    results, candidate = parse_results(assessment_result)
    delivery = delivery_bank(session, section.snapshot_id)
    engine = _engine_session(session, section, delivery, cat_session.state)
    counted = {h.item_id for h in engine.history}
    new = []
    for result in results:
        if result.identifier in counted:
            continue
        if engine.finished:
            raise Conflict(f"session {cat_session.identifier!r} has finished "
                           f"({engine.stop_reason}); it takes no more results: end it with "
                           "DELETE", result.where)
        offered = _advance(engine)
        if result.identifier != offered:
            raise Invalid(f"item {result.identifier[:120]!r} is not among the items last "
                          f"offered ({offered!r})", result.where)
        choice, response = engine_response(delivery, result)
        try:
            engine.answer(result.identifier, response)
        except InvalidResponseError as error:
            raise Invalid(f"item {result.identifier!r}: {error}", result.where) from None
        except CATError as error:  # the stored state disagrees with itself
            raise Conflict(str(error)) from None
        counted.add(result.identifier)
        new.append(CatResult(session_id=cat_session.id, position=len(engine.history),
                             item_code=result.identifier, response=response, choice=choice,
                             received_at=now))
    if not new:
        if candidate is not None and cat_session.candidate is None:
            cat_session.candidate = candidate
        return reply(section, cat_session, engine, delivery, now)
    _advance(engine)
    values = {"state": _state_of(engine), "finished": engine.finished,
              "version": cat_session.version + 1, "updated_at": now}
    if candidate is not None and cat_session.candidate is None:
        values["candidate"] = candidate
    changed = session.execute(
        update(CatSession).where(CatSession.id == cat_session.id,
                                 CatSession.version == cat_session.version).values(**values)
        .execution_options(synchronize_session=False))
    if changed.rowcount != 1:
        raise Conflict(f"another request changed session {cat_session.identifier!r} at the "
                       "same moment; nothing of this one was counted: send it again")
    try:
        with session.begin_nested():
            session.add_all(new)
    except IntegrityError:
        raise Conflict(f"another request counted a result of session "
                       f"{cat_session.identifier!r} at the same moment; send it again") from None
    session.expire(cat_session)
    return reply(section, cat_session, engine, delivery, now)


# -- replies -----------------------------------------------------------------------------------


def _variable(identifier: str, base_type: str, value: Any) -> dict[str, Any]:
    return {"identifier": identifier, "cardinality": "single", "baseType": base_type,
            "value": [{"baseType": base_type, "value": str(value)}]}


def reply(section: CatSection, cat_session: CatSession, engine: CATSession,
          delivery: Delivery, now: datetime) -> dict[str, Any]:
    """What the binding answers after creating a session or taking results.

    ``nextItems`` holds the item to present (this engine offers one item a stage), or none
    when the session has finished; ``assessmentResult`` the estimate so far as QTI outcome
    variables of the test (``THETA`` and ``SE`` on the bank's logit scale, ``ITEMS_COUNTED``,
    and ``STOP_REASON`` once finished); ``sessionState`` the same state in one string.
    """
    offered = _advance(engine)
    result = engine.result()
    outcomes = [_variable("THETA", "float", round(result.theta, 6)),
                _variable("SE", "float", round(result.se, 6)),
                _variable("ITEMS_COUNTED", "integer", result.n_given)]
    finished = offered is None
    if finished:
        outcomes.append(_variable("STOP_REASON", "identifier",
                                  result.stop_reason or "bank_exhausted"))
    assessment = {"testResult": {"identifier": section.identifier, "datestamp": now.isoformat(),
                                 "outcomeVariables": outcomes}}
    candidate = cat_session.candidate
    if candidate is not None:
        assessment = {"context": {"sourcedId": candidate}, **assessment}
    state = {"status": "finished" if finished else "in_progress", "itemsCounted": result.n_given}
    if finished:
        state["stopReason"] = result.stop_reason or "bank_exhausted"
    return {
        "sessionIdentifier": cat_session.identifier,
        "nextItems": {"itemIdentifiers": [] if finished else [offered],
                      "stageLength": 0 if finished else 1},
        "assessmentResult": assessment,
        "sessionState": json.dumps(state, separators=(",", ":")),
    }
