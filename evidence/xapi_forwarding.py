"""xAPI out: statements forwarded to each school's external learning record store.

A school's administrator (or a district administrator) gives the school an LRS
(:func:`configure_lrs`): its endpoint, the xAPI version to speak, a basic-auth key and secret,
which statements go (the engine's own, those tools sent, or both) and after how many failed tries
a statement is given up. From then on, every statement stored about a student of that school gets
a row in the outbox (``xapi_forwards``) in the same transaction: a database trigger writes it
(migration 0019), whatever path stored the statement.

:func:`send_due` posts the outbox in order of storage, in batches (``POST <endpoint>/statements``
with ``X-Experience-API-Version``), keeping each statement's id so that a re-send is idempotent
at the LRS (an id it already has comes back 204 or 409: both count as sent). A failed post
counts a try on every row of the batch and puts them off (exponential backoff); a row out of
tries goes to the dead-letter list with the last error, where an administrator retries or
discards it (:func:`retry_dead`, :func:`discard_dead`, both audited). A statement the LRS
refuses as malformed (400, 413, 422) goes to the dead letters at once: sending the same bytes
again gets the same answer.

What leaves: the statement without ``stored``, ``authority`` and ``version`` (the LRS sets its
own), with no ``name`` on any agent or group, and every agent not already a pseudonymous account
(an ``mbox``, ``mbox_sha1sum`` or ``openid``, e.g. a tool's instructor) replaced by an account
under a keyed hash of its identifier (:meth:`SecretBox.pseudonym`). Students are already the
site's account under their pseudonym (:mod:`evidence.statements`).

The secret is encrypted at rest (Fernet: AES-128-CBC with HMAC-SHA256) with a key derived from
the deployment's key material (``XAPI_OUT_KEY``, else the app's ``SECRET_KEY``: see
:func:`api.xapi_out.secret_box`), so a copy of the database alone does not give it away.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Select, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from evidence.models import ForwardScope, ForwardStatus, Statement, XapiForward, XapiLrs
from evidence.statements import ACCEPTED_VERSIONS
from storage import as_utc, utcnow
from storage.accounts import Role, School, User, is_district_admin
from storage.errors import Forbidden, Invalid, NotFound, ServiceError
from storage.rights import audit

#: Settings an administrator may give, and their bounds.
MAX_ENDPOINT = 2048
MAX_KEY = 255
MAX_SECRET = 1024
MAX_TRIES = 50
DEFAULT_MAX_TRIES = 8
#: Defaults of the sender (seconds; statements per post).
DEFAULT_BATCH = 50
DEFAULT_BACKOFF = 30.0
DEFAULT_MAX_BACKOFF = 6 * 3600.0
DEFAULT_TIMEOUT = 10.0
#: How long a sender holds an LRS (seconds); another sender skips it meanwhile.
LEASE_SECONDS = 300
#: How many dead letters one page lists.
MAX_LIST = 500

ACTION_SETTINGS = "xapi_lrs"
ACTION_RETRY = "xapi_forward_retry"
ACTION_DISCARD = "xapi_forward_discard"


class SecretUnreadable(ServiceError):
    """The stored secret cannot be decrypted with this deployment's key."""

    status = 409
    title = "Conflict"


class SecretBox:
    """Encrypts LRS secrets at rest and pseudonymises identifiers, from one key material.

    Parameters
    ----------
    material
        The deployment's key material (``XAPI_OUT_KEY`` or ``SECRET_KEY``); two keys are
        derived from it with SHA-256 under distinct labels, one for Fernet, one for HMAC.
    """

    def __init__(self, material: str | bytes) -> None:
        raw = material.encode() if isinstance(material, str) else material
        if not raw:
            raise ValueError("the key material of xAPI out must not be empty")
        fernet_key = hashlib.sha256(b"cat-engine xapi-out secret\n" + raw).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(fernet_key))
        self._hmac_key = hashlib.sha256(b"cat-engine xapi-out pseudonym\n" + raw).digest()

    def encrypt(self, secret: str) -> str:
        """The secret as stored (a Fernet token)."""
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        """The secret back.

        Raises
        ------
        SecretUnreadable
            The key changed since it was stored.
        """
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable(
                "the LRS secret cannot be decrypted with this deployment's key (XAPI_OUT_KEY or "
                "SECRET_KEY changed since it was stored): enter the secret again",
                "secret") from None

    def pseudonym(self, identifier: str) -> str:
        """A stable pseudonym for an agent's identifier (HMAC-SHA256, 32 hex digits)."""
        return hmac.new(self._hmac_key, identifier.encode(), hashlib.sha256).hexdigest()[:32]


# -- settings ------------------------------------------------------------------------------------


def visible_school(session: Session, viewer: User, school_id: int) -> School:
    """The school if ``viewer`` administers it (a district administrator: every school).

    Raises
    ------
    Forbidden
        Not an administrator.
    NotFound
        No such school, or another school than a school administrator's own.
    """
    if viewer.role != Role.ADMIN:
        raise Forbidden("only administrators manage a school's learning record store")
    school = session.get(School, school_id)
    if school is None or not (is_district_admin(viewer) or viewer.school_id == school.id):
        raise NotFound(f"no school {school_id}")
    return school


def lrs_of(session: Session, school_id: int) -> XapiLrs | None:
    """The school's LRS settings, if it has any."""
    return session.scalar(select(XapiLrs).where(XapiLrs.school_id == school_id))


def _endpoint(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Invalid("endpoint must be the LRS's xAPI base URL, e.g. "
                      "https://lrs.example.org/xAPI/", "endpoint")
    value = value.strip()
    _printable(value, "endpoint")
    if len(value) > MAX_ENDPOINT:
        raise Invalid(f"endpoint is {len(value):,} characters; at most {MAX_ENDPOINT:,}",
                      "endpoint")
    try:
        parts = urlsplit(value)
    except ValueError as error:
        raise Invalid(f"endpoint is not a URL: {error}", "endpoint") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("endpoint must be an http:// or https:// URL with a host, e.g. "
                      "https://lrs.example.org/xAPI/", "endpoint")
    if parts.username or parts.password:
        raise Invalid("endpoint must not hold credentials: give them as key and secret",
                      "endpoint")
    if parts.query or parts.fragment:
        raise Invalid("endpoint must not have a query or fragment", "endpoint")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise Invalid("endpoint has a port that is not a number from 1 to 65535",
                      "endpoint") from None
    return value.rstrip("/") + "/"


def _printable(value: str, name: str) -> None:
    """Refuse NUL and lone surrogates (no database stores them)."""
    if "\x00" in value or any("\ud800" <= c <= "\udfff" for c in value):
        raise Invalid(f"{name} holds a character that is not text (NUL or a lone surrogate)",
                      name)


def _text(value: Any, name: str, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(f"{name} must be a non-empty text", name)
    _printable(value, name)
    if len(value) > limit:
        raise Invalid(f"{name} is {len(value):,} characters; at most {limit:,}", name)
    return value


def _checked(changes: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    unknown = sorted(set(changes) - {"endpoint", "xapi_version", "key", "secret", "enabled",
                                     "scope", "max_tries"})
    if unknown:
        raise Invalid(f"unknown setting {unknown[0]!r}", unknown[0])
    if "endpoint" in changes:
        out["endpoint"] = _endpoint(changes["endpoint"])
    if "xapi_version" in changes:
        if changes["xapi_version"] not in ACCEPTED_VERSIONS:
            raise Invalid(f"xapi_version must be one of {', '.join(sorted(ACCEPTED_VERSIONS))}",
                          "xapi_version")
        out["xapi_version"] = changes["xapi_version"]
    if "key" in changes:
        out["key"] = _text(changes["key"], "key", MAX_KEY)
        if ":" in out["key"]:
            raise Invalid("key must not contain ':' (HTTP Basic separates key and secret "
                          "with it)", "key")
    if "secret" in changes:
        out["secret"] = _text(changes["secret"], "secret", MAX_SECRET)
    if "enabled" in changes:
        if not isinstance(changes["enabled"], bool):
            raise Invalid("enabled must be true or false", "enabled")
        out["enabled"] = changes["enabled"]
    if "scope" in changes:
        try:
            out["scope"] = ForwardScope(changes["scope"])
        except ValueError:
            raise Invalid("scope must be own, received or both", "scope") from None
    if "max_tries" in changes:
        value = changes["max_tries"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TRIES:
            raise Invalid(f"max_tries must be a whole number from 1 to {MAX_TRIES}",
                          "max_tries")
        out["max_tries"] = value
    return out


def _public(lrs: XapiLrs) -> dict[str, Any]:
    return {"endpoint": lrs.endpoint, "xapi_version": lrs.xapi_version, "key": lrs.key,
            "enabled": bool(lrs.enabled), "scope": ForwardScope(lrs.scope).value,
            "max_tries": lrs.max_tries}


def configure_lrs(session: Session, viewer: User, school: School, changes: dict[str, Any],
                  box: SecretBox, now: datetime | None = None) -> XapiLrs:
    """Give ``school`` an LRS, or change its settings (audited, without the secret).

    Statements stored from then on are forwarded (those stored before are not). A first
    configuration needs ``endpoint``, ``key`` and ``secret``.

    Raises
    ------
    Invalid
        A setting is missing or wrong (the message names it).
    """
    now = now or utcnow()
    values = _checked(changes)
    lrs = lrs_of(session, school.id)
    before = _public(lrs) if lrs is not None else None
    if lrs is None:
        missing = [n for n in ("endpoint", "key", "secret") if n not in values]
        if missing:
            raise Invalid(f"a school's first LRS settings need {', '.join(missing)}",
                          missing[0])
        lrs = XapiLrs(school_id=school.id, xapi_version="1.0.3", enabled=True,
                      scope=ForwardScope.BOTH, max_tries=DEFAULT_MAX_TRIES, created_at=now)
        session.add(lrs)
    secret = values.pop("secret", None)
    for name, value in values.items():
        setattr(lrs, name, value)
    if secret is not None:
        lrs.secret_encrypted = box.encrypt(secret)
    lrs.updated_at, lrs.updated_by = now, viewer.id
    session.flush()
    audit(session, ACTION_SETTINGS, actor_id=viewer.id, object_type="school",
          object_id=school.id, detail={"before": before, "after": _public(lrs),
                                       "secret_changed": secret is not None}, at=now)
    return lrs


def counts(session: Session, lrs_id: int) -> dict[str, int]:
    """How many forwards of the LRS are in each status."""
    found = dict(session.execute(select(XapiForward.status, func.count())
                                 .where(XapiForward.lrs_id == lrs_id)
                                 .group_by(XapiForward.status)).all())
    return {status.value: int(found.get(status, found.get(status.value, 0)))
            for status in ForwardStatus}


def lrs_view(session: Session, school: School, lrs: XapiLrs | None) -> dict[str, Any]:
    """What the API and the page show of a school's LRS (never the secret)."""
    if lrs is None:
        return {"school_id": school.id, "school": school.name, "configured": False}
    return {"school_id": school.id, "school": school.name, "configured": True, **_public(lrs),
            "has_secret": bool(lrs.secret_encrypted), "updated_at": as_utc(lrs.updated_at),
            "counts": counts(session, lrs.id)}


# -- what leaves the school ----------------------------------------------------------------------

_IFIS = ("mbox", "mbox_sha1sum", "openid")


def _agent(agent: Any, home_page: str, box: SecretBox) -> Any:
    if not isinstance(agent, dict):
        return agent
    out = {k: v for k, v in agent.items() if k != "name"}
    for ifi in _IFIS:
        if ifi in out:
            value = out.pop(ifi)
            out["account"] = {"homePage": home_page,
                              "name": f"anon-{box.pseudonym(f'{ifi}:{value}')}"}
    if isinstance(out.get("member"), list):
        out["member"] = [_agent(m, home_page, box) for m in out["member"]]
    return out


def _object(obj: Any, home_page: str, box: SecretBox) -> Any:
    if not isinstance(obj, dict):
        return obj
    kind = obj.get("objectType")
    if kind in ("Agent", "Group"):
        return _agent(obj, home_page, box)
    if kind == "SubStatement":
        return _statement_parts(obj, home_page, box)
    return obj


def _statement_parts(statement: dict[str, Any], home_page: str, box: SecretBox
                     ) -> dict[str, Any]:
    out = {**statement, "actor": _agent(statement["actor"], home_page, box),
           "object": _object(statement.get("object"), home_page, box)}
    context = statement.get("context")
    if isinstance(context, dict):
        context = dict(context)
        for name in ("instructor", "team"):
            if name in context:
                context[name] = _agent(context[name], home_page, box)
        out["context"] = context
    return out


def outgoing(body: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    """The statement as it leaves the school: without ``stored``, ``authority`` and
    ``version``, and with no name or e-mail of anyone (see the module's notes)."""
    statement = {k: v for k, v in body.items() if k not in ("stored", "authority", "version")}
    home_page = ((body.get("actor") or {}).get("account") or {}).get("homePage") \
        or "urn:cat-engine"
    return _statement_parts(statement, home_page, box)


# -- the sender ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What the LRS answered a post: ``kind`` is ``sent``, ``rejected`` (the content: a dead
    letter at once), ``conflict`` (409) or ``failed`` (try again later), with a message."""

    kind: str
    message: str = ""


def post_statements(endpoint: str, version: str, key: str, secret: str,
                    statements: list[dict[str, Any]], timeout: float = DEFAULT_TIMEOUT
                    ) -> Answer:
    """POST statements to ``<endpoint>statements`` and classify the answer (never raises for
    what the LRS or the network does)."""
    url = endpoint.rstrip("/") + "/statements"
    token = base64.b64encode(f"{key}:{secret}".encode()).decode()
    request = urllib.request.Request(
        url, data=json.dumps(statements, ensure_ascii=False).encode(), method="POST",
        headers={"Content-Type": "application/json", "X-Experience-API-Version": version,
                 "Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            reply.read()
            return Answer("sent")
    except urllib.error.HTTPError as error:
        detail = _detail(error)
        status = error.code
        if status == 409:
            return Answer("conflict", f"the LRS already holds one of these ids (409){detail}")
        if status in (400, 413, 422):
            return Answer("rejected", f"the LRS refused the statement ({status}){detail}")
        if status in (401, 403):
            return Answer("failed", f"the LRS refused the key and secret ({status}): check "
                                    f"the school's LRS settings{detail}")
        if status == 404:
            return Answer("failed", f"no xAPI statements resource at {url} (404): check the "
                                    "endpoint")
        return Answer("failed", f"the LRS answered {status}{detail}")
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
        reason = getattr(error, "reason", error)
        return Answer("failed", f"the LRS at {url} did not answer: {reason}")


def _detail(error: urllib.error.HTTPError) -> str:
    try:
        text = error.read(2000).decode("utf-8", "replace").strip()
    except OSError:
        return ""
    try:
        parsed = json.loads(text)
        text = str(parsed.get("detail") or parsed.get("message") or parsed) \
            if isinstance(parsed, dict) else text
    except ValueError:
        pass
    return f": {text[:300]}" if text else ""


@dataclass
class SendReport:
    """What one run did for one LRS."""

    school_id: int
    lrs_id: int
    sent: int = 0
    dead: int = 0
    failed: int = 0
    waiting: int = 0
    next_try_at: datetime | None = None
    errors: list[str] = field(default_factory=list)
    skipped: str = ""


def _lease(factory: sessionmaker[Session], lrs_id: int, now: datetime) -> bool:
    with factory() as session:
        taken = session.execute(
            update(XapiLrs).where(XapiLrs.id == lrs_id, XapiLrs.enabled.is_(True),
                                  or_(XapiLrs.sending_until.is_(None),
                                      XapiLrs.sending_until < now))
            .values(sending_until=now + timedelta(seconds=LEASE_SECONDS))
            .execution_options(synchronize_session=False)).rowcount
        session.commit()
    return taken == 1


def _release(factory: sessionmaker[Session], lrs_id: int) -> None:
    with factory() as session:
        session.execute(update(XapiLrs).where(XapiLrs.id == lrs_id).values(sending_until=None)
                        .execution_options(synchronize_session=False))
        session.commit()


def _backoff(tries: int, base: float, cap: float) -> timedelta:
    return timedelta(seconds=min(cap, base * 2 ** max(0, tries - 1)))


def send_due(factory: sessionmaker[Session], box: SecretBox, *, now: datetime | None = None,
             school_id: int | None = None, batch_size: int = DEFAULT_BATCH,
             backoff: float = DEFAULT_BACKOFF, max_backoff: float = DEFAULT_MAX_BACKOFF,
             timeout: float = DEFAULT_TIMEOUT) -> list[SendReport]:
    """Post every due forward of every enabled LRS (or ``school_id``'s), in order, in batches.

    Each LRS is leased while it is sent to (another sender skips it); each batch's outcome is
    committed in its own short transaction, so a crash re-sends at most one batch, which the
    LRS recognises by the statements' ids. A failed batch stops that LRS for this run: the rows
    after it wait their turn, so the LRS receives statements in the order they were stored.

    Parameters
    ----------
    backoff, max_backoff
        Seconds before the first retry; it doubles with each failed try, up to ``max_backoff``.
    """
    with factory() as session:
        query = select(XapiLrs.id, XapiLrs.school_id).where(XapiLrs.enabled.is_(True))
        if school_id is not None:
            query = query.where(XapiLrs.school_id == school_id)
        targets = session.execute(query.order_by(XapiLrs.id)).all()
    reports = []
    for lrs_id, target_school in targets:
        report = SendReport(school_id=target_school, lrs_id=lrs_id)
        reports.append(report)
        start = now or utcnow()
        if not _lease(factory, lrs_id, start):
            report.skipped = "another sender is posting to this LRS"
            continue
        try:
            while _send_batch(factory, box, lrs_id, report, now=now, batch_size=batch_size,
                              backoff=backoff, max_backoff=max_backoff, timeout=timeout):
                pass
        finally:
            _release(factory, lrs_id)
    return reports


def _send_batch(factory: sessionmaker[Session], box: SecretBox, lrs_id: int,
                report: SendReport, *, now: datetime | None, batch_size: int, backoff: float,
                max_backoff: float, timeout: float) -> bool:
    """Post one batch; whether another may follow in this run."""
    with factory() as session:
        moment = now or utcnow()
        lrs = session.get(XapiLrs, lrs_id)
        rows = session.execute(
            select(XapiForward, Statement.body)
            .join(Statement, Statement.seq == XapiForward.statement_seq)
            .where(XapiForward.lrs_id == lrs_id, XapiForward.status == ForwardStatus.PENDING)
            .order_by(XapiForward.statement_seq).limit(max(1, batch_size))).all()
        due = []
        for forward, body in rows:
            if as_utc(forward.next_try_at) > moment:
                break
            due.append((forward, body))
        if not due:
            if rows:
                report.waiting = session.scalar(
                    select(func.count()).select_from(XapiForward).where(
                        XapiForward.lrs_id == lrs_id,
                        XapiForward.status == ForwardStatus.PENDING))
                report.next_try_at = as_utc(rows[0][0].next_try_at)
            return False
        try:
            secret = box.decrypt(lrs.secret_encrypted)
        except SecretUnreadable as problem:
            answer = Answer("failed", str(problem))
        else:
            bodies = [outgoing(body, box) for _forward, body in due]
            answer = post_statements(lrs.endpoint, lrs.xapi_version, lrs.key, secret, bodies,
                                     timeout)
            if answer.kind in ("conflict", "rejected") and len(due) > 1:
                # find which: one by one, in order (an id the LRS has counts as sent)
                for forward, body in due:
                    single = post_statements(lrs.endpoint, lrs.xapi_version, lrs.key, secret,
                                             [outgoing(body, box)], timeout)
                    if single.kind == "failed":
                        _failed(session, lrs, [(forward, body)], single, moment, report,
                                backoff, max_backoff)
                        session.commit()
                        return False
                    _settle(forward, single, moment, report)
                session.commit()
                return len(rows) == batch_size
        if answer.kind == "failed":
            _failed(session, lrs, due, answer, moment, report, backoff, max_backoff)
            session.commit()
            return False
        for forward, _body in due:
            _settle(forward, answer, moment, report)
        session.commit()
        return len(due) == len(rows) == batch_size


def _settle(forward: XapiForward, answer: Answer, moment: datetime,
            report: SendReport) -> None:
    """A row the LRS answered about: sent (also 409: it has the id), or refused for good."""
    forward.last_try_at = moment
    if answer.kind == "rejected":
        forward.tries += 1
        forward.status = ForwardStatus.DEAD
        forward.last_error = answer.message
        report.dead += 1
        report.errors.append(answer.message)
        return
    forward.status = ForwardStatus.SENT
    forward.sent_at = moment
    forward.last_error = answer.message or None
    report.sent += 1


def _failed(session: Session, lrs: XapiLrs, due: list, answer: Answer, moment: datetime,
            report: SendReport, backoff: float, max_backoff: float) -> None:
    report.errors.append(answer.message)
    for forward, _body in due:
        forward.tries += 1
        forward.last_try_at = moment
        forward.last_error = answer.message
        if forward.tries >= lrs.max_tries:
            forward.status = ForwardStatus.DEAD
            report.dead += 1
        else:
            forward.next_try_at = moment + _backoff(forward.tries, backoff, max_backoff)
            report.failed += 1
    session.flush()
    report.waiting = session.scalar(select(func.count()).select_from(XapiForward).where(
        XapiForward.lrs_id == lrs.id, XapiForward.status == ForwardStatus.PENDING))
    report.next_try_at = session.scalar(select(func.min(XapiForward.next_try_at)).where(
        XapiForward.lrs_id == lrs.id, XapiForward.status == ForwardStatus.PENDING))


def next_due(session: Session) -> datetime | None:
    """When the earliest pending forward of an enabled LRS may be tried (for scheduling)."""
    moment = session.scalar(
        select(func.min(XapiForward.next_try_at))
        .join(XapiLrs, XapiLrs.id == XapiForward.lrs_id)
        .where(XapiLrs.enabled.is_(True), XapiForward.status == ForwardStatus.PENDING))
    return as_utc(moment) if moment is not None else None


# -- dead letters --------------------------------------------------------------------------------


def forwards_query(lrs_id: int, status: ForwardStatus = ForwardStatus.DEAD) -> Select:
    """The forwards of an LRS in ``status``, in the order stored, with their statements' ids
    and verbs."""
    return (select(XapiForward.id, XapiForward.statement_seq, XapiForward.tries,
                   XapiForward.last_try_at, XapiForward.last_error, XapiForward.status,
                   Statement.id.label("statement_id"), Statement.verb_id,
                   Statement.client_id, Statement.stored_at)
            .join(Statement, Statement.seq == XapiForward.statement_seq)
            .where(XapiForward.lrs_id == lrs_id, XapiForward.status == status)
            .order_by(XapiForward.statement_seq))


def dead_letters(session: Session, lrs: XapiLrs, limit: int = MAX_LIST) -> list[dict[str, Any]]:
    """The dead letters of an LRS (oldest first, at most ``limit``)."""
    rows = session.execute(forwards_query(lrs.id).limit(limit)).all()
    return [{"id": r.id, "statement_id": r.statement_id, "verb": r.verb_id,
             "own": r.client_id is None, "stored_at": as_utc(r.stored_at), "tries": r.tries,
             "last_try_at": as_utc(r.last_try_at) if r.last_try_at else None,
             "last_error": r.last_error} for r in rows]


def _dead_ids(session: Session, lrs: XapiLrs, ids: list[int] | None) -> list[int]:
    query = select(XapiForward.id).where(XapiForward.lrs_id == lrs.id,
                                         XapiForward.status == ForwardStatus.DEAD)
    if ids is None:
        return list(session.scalars(query.order_by(XapiForward.id)))
    found = set(session.scalars(query.where(XapiForward.id.in_(set(ids)))))
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"forward {missing[0]} is not a dead letter of this school's LRS", "ids")
    return sorted(found)


def retry_dead(session: Session, viewer: User, lrs: XapiLrs, ids: list[int] | None = None,
               now: datetime | None = None) -> int:
    """Put dead letters (``ids``, or all of them) back in the outbox with fresh tries;
    audited. Returns how many."""
    now = now or utcnow()
    chosen = _dead_ids(session, lrs, ids)
    if chosen:
        session.execute(update(XapiForward).where(XapiForward.id.in_(chosen)).values(
            status=ForwardStatus.PENDING, tries=0, next_try_at=now)
            .execution_options(synchronize_session=False))
        audit(session, ACTION_RETRY, actor_id=viewer.id, object_type="school",
              object_id=lrs.school_id, detail={"forwards": chosen[:1000], "count": len(chosen)},
              at=now)
    return len(chosen)


def discard_dead(session: Session, viewer: User, lrs: XapiLrs, ids: list[int] | None = None,
                 now: datetime | None = None) -> int:
    """Give dead letters (``ids``, or all) up for good: they stay listed as discarded and are
    never sent; audited. Returns how many."""
    now = now or utcnow()
    chosen = _dead_ids(session, lrs, ids)
    if chosen:
        session.execute(update(XapiForward).where(XapiForward.id.in_(chosen)).values(
            status=ForwardStatus.DISCARDED).execution_options(synchronize_session=False))
        audit(session, ACTION_DISCARD, actor_id=viewer.id, object_type="school",
              object_id=lrs.school_id, detail={"forwards": chosen[:1000], "count": len(chosen)},
              at=now)
    return len(chosen)


def drop_forwards(session: Session, statement_seqs: Select) -> int:
    """Delete the forwards of these statements (an erasure: pending ones are never sent).

    Returns
    -------
    int
        How many were still pending (or dead letters), i.e. never reached the LRS.
    """
    unsent = session.scalar(select(func.count()).select_from(XapiForward).where(
        XapiForward.statement_seq.in_(statement_seqs),
        XapiForward.status.in_([ForwardStatus.PENDING, ForwardStatus.DEAD])))
    session.execute(delete(XapiForward).where(XapiForward.statement_seq.in_(statement_seqs))
                    .execution_options(synchronize_session=False))
    return int(unsent or 0)
