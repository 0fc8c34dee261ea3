"""LTI 1.3 without HTTP: registered platforms, the tool's key pair, what a verified launch does
to our records, used nonces, the scaled score and the outbox of scores for the platforms.

The API (:mod:`api.lti`) verifies a launch with pylti1p3 and hands the verified claims here;
:func:`apply_launch` matches or creates the user, the class and the enrolment, links the
resource link to a test and starts (or resumes) the attempt, all in the caller's transaction,
so a launch refused half-way leaves nothing behind. Functions here flush; the caller commits.

The score a platform gets (Assignment and Grade Services) is :func:`scaled_score` of the
attempt's theta: ``clip(50 + 12.5 * theta, 0, 100)`` rounded to one decimal, of
:data:`SCORE_MAXIMUM` = 100. Theta is in logits on the bank's scale (calibration sample mean 0,
sd 1), so 50 is the average of that sample, each logit is 12.5 points, and thetas beyond +-4
(rare: a student at the bank's floor or ceiling) are clipped to 0 and 100. The scale is linear,
so differences of scores mean the same everywhere inside it. The mastery decision goes in the
score's ``comment`` as words (``Mastery (recommendation): mastered``), never theta or se.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Select, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evidence import classes as class_service
from evidence.attempts import start_attempt
from evidence.lti_models import (
    GradeStatus,
    LtiContext,
    LtiGrade,
    LtiNonce,
    LtiPlatform,
    LtiResourceLink,
    LtiToolKey,
    LtiUserLink,
)
from evidence.models import Assignment, Attempt, AttemptStatus
from item_bank.models import AdaptiveTest
from storage import utcnow
from storage.accounts import (
    AccessAction,
    Role,
    School,
    SchoolClass,
    User,
    class_members,
    is_district_admin,
)
from storage.base import as_utc
from storage.errors import Conflict, Forbidden, Invalid, NotFound

SCORE_MAXIMUM = 100.0
SCORE_CENTRE = 50.0
SCORE_PER_LOGIT = 12.5
#: Tries of one score before it is marked failed, and the longest wait between two.
MAX_TRIES = 8
MAX_BACKOFF = timedelta(hours=6)
#: A claim older than this is taken to be a worker that died while sending.
STALE_CLAIM = timedelta(minutes=10)
AGS_SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
MAX_NAME = 200
MAX_URL = 2048


class LtiRefused(Forbidden):
    """A verified launch we will not carry out (an unsupported role, no test linked...)."""


# -- platforms -----------------------------------------------------------------------------------


def _url(value: Any, field: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or len(text) > MAX_URL:
        raise Invalid(f"{field} must be an http(s) URL of at most {MAX_URL} characters, "
                      f"not {value!r}", field=field)
    return text


def _text(value: Any, field: str, limit: int = 255) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > limit or "\x00" in text:
        raise Invalid(f"{field} must be 1 to {limit} characters", field=field)
    return text


def platform_query(viewer: User) -> Select:
    """The platforms ``viewer`` (an administrator) manages: all for a district administrator,
    those of their school for a school's."""
    query = select(LtiPlatform).order_by(LtiPlatform.id)
    if not is_district_admin(viewer):
        query = query.where(LtiPlatform.school_id == viewer.school_id)
    return query


def register_platform(session: Session, actor: User | None, *, name: str, issuer: str,
                      client_id: str, auth_login_url: str, auth_token_url: str,
                      key_set_url: str, deployment_ids: list[str],
                      school_id: int | None = None,
                      auth_audience: str | None = None) -> LtiPlatform:
    """Register a platform that may launch this tool.

    A district administrator (or the command line, ``actor`` None) registers it for any school
    or none; a school's administrator for their own school only.

    Raises
    ------
    Forbidden
        ``actor`` is not an administrator, or a school's administrator named another school.
    Invalid
        A URL that is not http(s), an empty issuer or client id, no deployment id, no such school.
    Conflict
        The issuer and client id are registered already.
    """
    if actor is not None:
        if actor.role != Role.ADMIN:
            raise Forbidden("platforms are registered by administrators")
        if not is_district_admin(actor):
            if school_id not in (None, actor.school_id):
                raise Forbidden("a school's administrator registers platforms for their own "
                                "school only", field="school_id")
            school_id = actor.school_id
    if school_id is not None and session.get(School, school_id) is None:
        raise Invalid(f"there is no school {school_id}", field="school_id")
    if (not isinstance(deployment_ids, list) or not deployment_ids
            or len({str(d) for d in deployment_ids}) != len(deployment_ids)):
        raise Invalid("deployment_ids must list one or more distinct deployment ids",
                      field="deployment_ids")
    deployments = [_text(d, "deployment_ids") for d in deployment_ids]
    platform = LtiPlatform(
        name=_text(name, "name", MAX_NAME), issuer=_text(issuer, "issuer"),
        client_id=_text(client_id, "client_id"),
        auth_login_url=_url(auth_login_url, "auth_login_url"),
        auth_token_url=_url(auth_token_url, "auth_token_url"),
        key_set_url=_url(key_set_url, "key_set_url"),
        auth_audience=_text(auth_audience, "auth_audience", MAX_URL) if auth_audience else None,
        deployment_ids=deployments, school_id=school_id,
        created_by=actor.id if actor is not None else None)
    if find_platform(session, platform.issuer, platform.client_id) is not None:
        raise Conflict(f"the platform {platform.issuer!r} with client id "
                       f"{platform.client_id!r} is registered already", field="client_id")
    session.add(platform)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict(f"the platform {platform.issuer!r} with client id "
                       f"{platform.client_id!r} is registered already",
                       field="client_id") from None
    return platform


def find_platform(session: Session, issuer: str, client_id: str | None) -> LtiPlatform | None:
    """The platform of ``issuer`` and ``client_id`` (the only one of the issuer when
    ``client_id`` is None and the issuer has exactly one)."""
    query = select(LtiPlatform).where(LtiPlatform.issuer == issuer)
    if client_id is not None:
        return session.scalar(query.where(LtiPlatform.client_id == client_id))
    found = session.scalars(query.limit(2)).all()
    return found[0] if len(found) == 1 else None


def platform_view(platform: LtiPlatform) -> dict[str, Any]:
    """A platform as the API shows it."""
    return {name: getattr(platform, name) for name in (
        "id", "name", "issuer", "client_id", "auth_login_url", "auth_token_url",
        "key_set_url", "auth_audience", "deployment_ids", "school_id", "created_at")}


# -- the tool's key pair -------------------------------------------------------------------------


def tool_keys(session: Session) -> list[LtiToolKey]:
    """Every key of the tool, newest first (the first signs)."""
    return list(session.scalars(select(LtiToolKey).order_by(LtiToolKey.id.desc())))


def tool_key(session: Session) -> LtiToolKey:
    """The tool's signing key, made (a 2048-bit RSA pair) and stored on first use."""
    keys = tool_keys(session)
    if keys:
        return keys[0]
    return new_tool_key(session)


def new_tool_key(session: Session) -> LtiToolKey:
    """Make and store a new RSA key pair; it signs from now on (older keys stay published)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    key = LtiToolKey(kid=_thumbprint(public_pem), private_key_pem=private_pem,
                     public_key_pem=public_pem)
    session.add(key)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # another process made one at the same moment: use theirs
        return tool_keys(session)[0]
    return key


def _thumbprint(public_pem: str) -> str:
    """The key's RFC 7638 thumbprint, its ``kid`` (what pylti1p3 names it by as well)."""
    from jwcrypto.jwk import JWK

    return JWK.from_pem(public_pem.encode()).thumbprint()


# -- nonces --------------------------------------------------------------------------------------


def use_nonce(session: Session, platform: LtiPlatform, nonce: str, expires: datetime) -> None:
    """Record that a launch with ``nonce`` was accepted; a second use is refused.

    Raises
    ------
    Conflict
        The platform sent this nonce before (a replayed launch).
    """
    if not isinstance(nonce, str) or not nonce or len(nonce) > 255:
        raise Invalid("the launch has no usable nonce", field="nonce")
    now = utcnow()
    seen = session.scalar(select(LtiNonce.id).where(LtiNonce.platform_id == platform.id,
                                                    LtiNonce.nonce == nonce))
    replay = Conflict("this launch was used already (its nonce was seen before): start it "
                      "again from the learning platform", field="nonce")
    if seen is not None:
        raise replay
    session.add(LtiNonce(platform_id=platform.id, nonce=nonce, used_at=now,
                         expires_at=max(expires, now) + timedelta(minutes=5)))
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:  # the same launch, sent twice at once: one wins
        raise replay from None
    session.execute(LtiNonce.__table__.delete().where(LtiNonce.expires_at < now))


# -- launches ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchClaims:
    """What :func:`apply_launch` needs of a verified launch (the API reads it from the token)."""

    sub: str
    role: Role
    name: str
    context_id: str | None
    context_title: str
    resource_link_id: str | None
    custom: dict[str, str]
    ags: dict[str, Any] | None
    deep_linking: bool = False


@dataclass(frozen=True)
class LaunchOutcome:
    """Where a launch leads: the user to sign in, their class, and the test or report."""

    user: User
    school_class: SchoolClass | None
    test_id: int | None
    attempt: Attempt | None
    target: str  # "attempt", "report", "teacher", "deep_linking"


def _username(platform: LtiPlatform, sub: str) -> str:
    digest = hashlib.sha256(f"{platform.id}\x00{sub}".encode()).hexdigest()[:20]
    return f"lti{platform.id}-{digest}"


def _match_user(session: Session, platform: LtiPlatform, claims: LaunchClaims) -> User:
    link = session.scalar(select(LtiUserLink).where(LtiUserLink.platform_id == platform.id,
                                                    LtiUserLink.sub == claims.sub))
    if link is not None:
        user = session.get(User, link.user_id)
        if user is None or not user.is_active or user.erased_at is not None:
            raise LtiRefused("this account is closed here; ask the school")
        if user.role != claims.role:
            raise LtiRefused(f"this person is a {user.role.value} here, but the platform "
                             f"launched them as a {claims.role.value}")
        return user
    user = User(username=_username(platform, claims.sub), display_name=claims.name[:MAX_NAME],
                role=claims.role, is_active=True, school_id=platform.school_id)
    user.set_password(secrets.token_urlsafe(32))  # no one knows it: they sign in by launch
    session.add(user)
    session.flush()
    session.add(LtiUserLink(platform_id=platform.id, sub=claims.sub, user_id=user.id))
    session.flush()
    return user


def _class_name(session: Session, teacher_id: int, title: str) -> str:
    base = (title or "Course").strip()[:180] or "Course"
    name, n = base, 1
    while session.scalar(select(SchoolClass.id).where(SchoolClass.teacher_id == teacher_id,
                                                      SchoolClass.name == name)) is not None:
        n += 1
        name = f"{base} ({n})"
    return name


def _match_class(session: Session, platform: LtiPlatform, claims: LaunchClaims,
                 user: User) -> SchoolClass | None:
    if claims.context_id is None:
        return None
    link = session.scalar(select(LtiContext).where(LtiContext.platform_id == platform.id,
                                                   LtiContext.context_id == claims.context_id))
    if link is not None:
        return session.get(SchoolClass, link.class_id)
    if user.role != Role.TEACHER:
        raise LtiRefused("this course has no class here yet: its teacher must open the "
                         "activity from the platform once first")
    klass = SchoolClass(name=_class_name(session, user.id, claims.context_title),
                        teacher_id=user.id, school_id=platform.school_id)
    session.add(klass)
    session.flush()
    session.add(LtiContext(platform_id=platform.id, context_id=claims.context_id,
                           class_id=klass.id))
    session.flush()
    return klass


def _enrol(session: Session, klass: SchoolClass, student: User) -> None:
    enrolled = session.scalar(select(class_members.c.user_id).where(
        class_members.c.class_id == klass.id, class_members.c.user_id == student.id))
    if enrolled is not None:
        return
    session.execute(class_members.insert().values(class_id=klass.id, user_id=student.id))
    class_service.audit(session, None, AccessAction.ENROL, class_id=klass.id,
                        student_id=student.id, before={"enrolled": False},
                        after={"enrolled": True})


def _linked_test(session: Session, platform: LtiPlatform, claims: LaunchClaims,
                 klass: SchoolClass | None) -> int:
    link = None
    if claims.resource_link_id is not None:
        link = session.scalar(select(LtiResourceLink).where(
            LtiResourceLink.platform_id == platform.id,
            LtiResourceLink.resource_link_id == claims.resource_link_id))
    if link is not None:
        test_id = link.test_id
    else:
        raw = (claims.custom.get("test_id") or "").strip()
        if not (raw.isascii() and raw.isdecimal() and len(raw) < 10):
            raise LtiRefused("this activity is not linked to a test: its teacher must choose "
                             "one (deep linking), or the link must carry the custom parameter "
                             "test_id")
        test_id = int(raw)
    test = session.get(AdaptiveTest, test_id)
    if test is None or not test.is_active:
        raise LtiRefused(f"the test {test_id} this activity launches is not open")
    if link is None and claims.resource_link_id is not None:
        session.add(LtiResourceLink(platform_id=platform.id,
                                    resource_link_id=claims.resource_link_id,
                                    test_id=test_id,
                                    class_id=klass.id if klass is not None else None))
        session.flush()
    return test_id


def _assign(session: Session, klass: SchoolClass, test_id: int) -> None:
    exists = session.scalar(select(Assignment.id).where(Assignment.class_id == klass.id,
                                                        Assignment.test_id == test_id).limit(1))
    if exists is None:
        session.add(Assignment(class_id=klass.id, test_id=test_id))
        session.flush()


def apply_launch(session: Session, platform: LtiPlatform, claims: LaunchClaims, *,
                 base_url: str) -> LaunchOutcome:
    """Carry out a verified launch: match or create the user (by the platform's ``sub``) and the
    class (by the context), enrol a student, link the resource link to its test, and start or
    resume a student's attempt, with its score queued in the outbox when the launch brought a
    line item. Nothing is committed.

    Raises
    ------
    LtiRefused
        The person's account is closed or has another role here, a student's course has no
        class yet, or no open test is linked.
    Forbidden, NotFound
        From :func:`evidence.attempts.start_attempt` (attempts used up).
    """
    user = _match_user(session, platform, claims)
    klass = _match_class(session, platform, claims, user)
    if claims.deep_linking:
        if user.role != Role.TEACHER:
            raise LtiRefused("only teachers choose tests for the platform")
        return LaunchOutcome(user, klass, None, None, "deep_linking")
    if user.role == Role.STUDENT and klass is not None:
        _enrol(session, klass, user)
    if claims.custom.get("target") == "report":
        return LaunchOutcome(user, klass, None, None, "report")
    test_id = _linked_test(session, platform, claims, klass)
    if user.role != Role.STUDENT:
        return LaunchOutcome(user, klass, test_id, None, "teacher")
    if klass is None:
        raise LtiRefused("a test is launched from a course: the launch names no context")
    _assign(session, klass, test_id)
    attempt, _reply, _created = start_attempt(session, user, test_id, base_url=base_url)
    session.flush()
    _queue_grade(session, platform, claims, attempt)
    return LaunchOutcome(user, klass, test_id, attempt, "attempt")


def _queue_grade(session: Session, platform: LtiPlatform, claims: LaunchClaims,
                 attempt: Attempt) -> None:
    ags = claims.ags or {}
    if not ags.get("lineitem") or AGS_SCORE_SCOPE not in (ags.get("scope") or []):
        return
    if session.scalar(select(LtiGrade.id).where(LtiGrade.attempt_id == attempt.id)) is not None:
        return
    status = (GradeStatus.PENDING if attempt.status == AttemptStatus.FINISHED
              else GradeStatus.WAITING)
    session.add(LtiGrade(attempt_id=attempt.id, platform_id=platform.id, sub=claims.sub,
                         endpoint={"lineitem": ags["lineitem"], "scope": list(ags["scope"])},
                         status=status))
    session.flush()


# -- scores for the platform ---------------------------------------------------------------------


def scaled_score(theta: float) -> float:
    """Theta (logits) on the 0-100 scale the platform gets: ``clip(50 + 12.5 theta, 0, 100)``,
    to one decimal (see the module notes)."""
    value = SCORE_CENTRE + SCORE_PER_LOGIT * float(theta)
    return round(min(max(value, 0.0), SCORE_MAXIMUM), 1)


def mastery_comment(result: dict[str, Any] | None) -> str:
    """The mastery decision in words for the score's ``comment`` (no theta, no se)."""
    decision = ((result or {}).get("mastery") or {}).get("decision")
    words = {"mastered": "mastered", "not_mastered": "not mastered",
             "undecided": "undecided (more evidence needed)"}
    if decision is None:
        return "Mastery: no decision (the test has no overall cut score)"
    return f"Mastery (recommendation): {words.get(decision, decision)}"


def score_of(attempt: Attempt, sub: str) -> dict[str, Any]:
    """The AGS score of a finished attempt, as the platform gets it."""
    return {
        "userId": sub,
        "scoreGiven": scaled_score(attempt.theta),
        "scoreMaximum": SCORE_MAXIMUM,
        "comment": mastery_comment(attempt.result),
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
        "timestamp": as_utc(attempt.finished_at).isoformat(),
    }


def due_grades(session: Session, now: datetime | None = None, limit: int = 200) -> list[int]:
    """Ids of the scores to send now: of finished attempts, not sent, whose wait is over (and
    those a worker claimed long ago without finishing)."""
    now = now or utcnow()
    query = (select(LtiGrade.id).join(Attempt, Attempt.id == LtiGrade.attempt_id)
             .where(Attempt.status == AttemptStatus.FINISHED,
                    or_(LtiGrade.status.in_([GradeStatus.WAITING, GradeStatus.PENDING]),
                        (LtiGrade.status == GradeStatus.SENDING)
                        & (LtiGrade.claimed_at < now - STALE_CLAIM)),
                    or_(LtiGrade.next_try_at.is_(None), LtiGrade.next_try_at <= now))
             .order_by(LtiGrade.id).limit(limit))
    return list(session.scalars(query))


def claim_grade(session: Session, grade_id: int, now: datetime | None = None
                ) -> LtiGrade | None:
    """Take the score ``grade_id`` for sending (one worker only), with its score computed and
    stored; ``None`` when it is not due or another worker has it. The caller commits."""
    now = now or utcnow()
    claimed = session.execute(
        update(LtiGrade).where(
            LtiGrade.id == grade_id,
            or_(LtiGrade.status.in_([GradeStatus.WAITING, GradeStatus.PENDING]),
                (LtiGrade.status == GradeStatus.SENDING)
                & (LtiGrade.claimed_at < now - STALE_CLAIM)))
        .values(status=GradeStatus.SENDING, claimed_at=now)
        .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        return None
    grade = session.get(LtiGrade, grade_id, populate_existing=True)
    attempt = session.get(Attempt, grade.attempt_id)
    if attempt.status != AttemptStatus.FINISHED:
        grade.status = GradeStatus.WAITING
        return None
    grade.score = score_of(attempt, grade.sub)
    session.flush()
    return grade


def grade_sent(session: Session, grade: LtiGrade, now: datetime | None = None) -> None:
    """The platform took the score."""
    grade.status = GradeStatus.SENT
    grade.tries += 1
    grade.sent_at = now or utcnow()
    grade.last_error = None
    grade.next_try_at = None


def grade_failed(session: Session, grade: LtiGrade, error: str,
                 now: datetime | None = None) -> datetime | None:
    """Sending failed: try again later (1, 2, 4... minutes, at most :data:`MAX_BACKOFF`), or
    give up after :data:`MAX_TRIES`. Returns when the next try is due (``None``: given up)."""
    now = now or utcnow()
    grade.tries += 1
    grade.last_error = error[:2000]
    if grade.tries >= MAX_TRIES:
        grade.status = GradeStatus.FAILED
        grade.next_try_at = None
        return None
    grade.status = GradeStatus.PENDING
    grade.next_try_at = now + min(timedelta(minutes=2 ** (grade.tries - 1)), MAX_BACKOFF)
    return grade.next_try_at


def grade_view(grade: LtiGrade) -> dict[str, Any]:
    """A score of the outbox as the command line reports it."""
    return {"id": grade.id, "attempt_id": grade.attempt_id, "status": grade.status.value,
            "tries": grade.tries, "last_error": grade.last_error,
            "score": json.loads(json.dumps(grade.score)) if grade.score else None}


def platform_of(session: Session, platform_id: int) -> LtiPlatform:
    """The platform ``platform_id``, or :class:`NotFound`."""
    platform = session.get(LtiPlatform, platform_id)
    if platform is None:
        raise NotFound(f"no platform {platform_id}")
    return platform
