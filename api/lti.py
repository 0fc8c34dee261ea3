"""LTI 1.3 endpoints: OIDC login initiation, the launch, the tool's JWKS and deep linking.

The protocol is pylti1p3's (the maintained fork ``pylti1p3next``): :class:`DbToolConf` finds
registrations and deployments in ``lti_platforms``, :class:`DbLaunchDataStorage` keeps the
nonce issued at login and each launch's claims in ``lti_launch_data`` (the database every
process shares, so any server can take the launch that another's login began). A verified launch
is handed to :func:`evidence.lti.apply_launch` and signs the person in with the pages' session.

On top of pylti1p3's checks (state, nonce issued here, signature from the platform's JWKS,
registration, deployment, message) the launch is checked here for what the library leaves out:
the token's ``aud`` must hold the registered client id (and ``azp`` name it when there are
several), ``exp`` and ``iat`` must be present, and a nonce is accepted once only
(:func:`evidence.lti.use_nonce`), in the transaction that records the launch. Every refusal is
a 4xx page that names what is wrong; nothing of a refused launch is kept.

Cookies: pylti1p3 marks its state and storage cookies ``SameSite=None; Secure; Partitioned``
on HTTPS, which is what lets the platform's cross-site form post bring them back (see
docs/decisions.md). The pages' own session cookie stays ``SameSite=Lax``: a test or report is
opened by a launch in a new window (the platform's "open in a new window" setting), not in the
platform's iframe. The deep-linking page works inside the platform's iframe too: it is reached
by the launch id (a random capability, an hour long), not by the session cookie.
"""

from __future__ import annotations

import time
import typing as t
from urllib.parse import urlsplit

import jwt
import requests
from flask import Blueprint, Response, jsonify, redirect, request, url_for
from flask_babel import gettext as _
from pylti1p3.contrib.flask import FlaskMessageLaunch, FlaskOIDCLogin, FlaskRequest
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.deployment import Deployment
from pylti1p3.exception import LtiException, OIDCException
from pylti1p3.launch_data_storage.base import LaunchDataStorage
from pylti1p3.registration import Registration
from pylti1p3.roles import StudentRole, TeacherRole
from pylti1p3.tool_config.abstract import ToolConfAbstract
from sqlalchemy import delete, select

from api import page_sessions
from api.db import get_session
from api.site import public_url
from api.staff import page
from evidence import lti as service
from evidence.lti_models import LtiLaunchData, LtiPlatform
from item_bank.models import AdaptiveTest
from storage.accounts import Role, User
from storage.errors import Forbidden, NotFound, ServiceError

bp = Blueprint("lti", __name__, url_prefix="/lti")

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
DEPLOYMENT_CLAIM = CLAIM + "deployment_id"
MESSAGE_TYPE_CLAIM = CLAIM + "message_type"
AGS_CLAIM = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
#: Seconds to wait for a platform (its JWKS, its token and score endpoints).
HTTP_TIMEOUT = 10.0
#: How long a launch's claims are kept for the pages after it (deep linking).
LAUNCH_LIFETIME = 3600


class TimeoutSession(requests.Session):
    """A requests session whose calls give up after :data:`HTTP_TIMEOUT` seconds."""

    def request(self, *args: t.Any, **kwargs: t.Any) -> requests.Response:
        kwargs.setdefault("timeout", HTTP_TIMEOUT)
        return super().request(*args, **kwargs)


# -- pylti1p3's plug-ins: the registrations and the launch storage, in the database ---------------


def registration_of(platform: LtiPlatform, key) -> Registration:
    """pylti1p3's registration of ``platform``, signing with the tool's key ``key``."""
    registration = (Registration().set_issuer(platform.issuer)
                    .set_client_id(platform.client_id)
                    .set_auth_login_url(platform.auth_login_url)
                    .set_auth_token_url(platform.auth_token_url)
                    .set_key_set_url(platform.key_set_url)
                    .set_tool_private_key(key.private_key_pem)
                    .set_tool_public_key(key.public_key_pem))
    if platform.auth_audience:
        registration.set_auth_audience(platform.auth_audience)
    return registration


class DbToolConf(ToolConfAbstract):
    """pylti1p3's tool configuration read from ``lti_platforms`` (an issuer may have several
    client ids)."""

    def __init__(self, session) -> None:
        super().__init__()
        self.session = session

    def check_iss_has_one_client(self, iss: str) -> bool:
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def _platform(self, iss: str, client_id: str | None) -> LtiPlatform | None:
        return service.find_platform(self.session, iss, client_id or None)

    def find_registration_by_issuer(self, iss: str, *args, **kwargs) -> Registration | None:
        return self.find_registration_by_params(iss, None)

    def find_registration_by_params(self, iss: str, client_id: str | None, *args,
                                    **kwargs) -> Registration | None:
        platform = self._platform(iss, client_id)
        if platform is None:
            return None
        return registration_of(platform, service.tool_key(self.session))

    def find_deployment(self, iss: str, deployment_id: str) -> Deployment | None:
        return self.find_deployment_by_params(iss, deployment_id, None)

    def find_deployment_by_params(self, iss: str, deployment_id: str, client_id: str | None,
                                  *args, **kwargs) -> Deployment | None:
        platform = self._platform(iss, client_id)
        if platform is None or deployment_id not in (platform.deployment_ids or []):
            return None
        return Deployment().set_deployment_id(deployment_id)


class DbLaunchDataStorage(LaunchDataStorage):
    """pylti1p3's launch data storage in ``lti_launch_data``, in the request's transaction.

    As pylti1p3's cache storage, keys are bound to the browser by its ``lti1p3-session-id``
    cookie only over HTTPS (on plain HTTP browsers drop a cross-site cookie without
    ``SameSite=None; Secure``, so binding would break every launch).
    """

    def __init__(self, session) -> None:
        super().__init__()
        self.session = session

    def get_session_cookie_name(self) -> str | None:
        if self._request is None or not self._request.is_secure():
            return None
        return super().get_session_cookie_name()

    def can_set_keys_expiration(self) -> bool:
        return True

    def get_value(self, key: str):
        row = self.session.get(LtiLaunchData, self._prepare_key(key))
        if row is None or row.expires_at < time.time():
            return None
        return row.value

    def set_value(self, key: str, value, exp: int | None = None) -> None:
        now = time.time()
        self.session.execute(delete(LtiLaunchData).where(LtiLaunchData.expires_at < now))
        self.session.merge(LtiLaunchData(key=self._prepare_key(key)[:255], value=value,
                                         expires_at=now + (exp or LAUNCH_LIFETIME)))
        self.session.flush()

    def check_value(self, key: str) -> bool:
        return self.get_value(key) is not None


def _launch_tools(db):
    return DbToolConf(db), DbLaunchDataStorage(db)


# -- refusals ------------------------------------------------------------------------------------


class LaunchRefused(Exception):
    """A login or launch refused, with the HTTP status and the words to show."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


@bp.errorhandler(LaunchRefused)
def _refused(error: LaunchRefused) -> Response:
    get_session().rollback()
    return page("student/message.html", error.status, layout="base.html",
                title=_("This launch cannot be used"), text=error.text, user=None)


def _library_refusal(error: Exception) -> LaunchRefused:
    """pylti1p3's complaint in the words of this site (the library's kept after a colon)."""
    detail = str(error) or error.__class__.__name__
    lowered = detail.lower()
    if "state" in lowered:
        text = _("The launch did not come back to the browser that started it (its state is "
                 "unknown or expired). Start it again from the learning platform.")
    elif "nonce" in lowered:
        text = _("The launch's nonce was not issued here or has expired. Start it again from "
                 "the learning platform.")
    elif "expired" in lowered:
        text = _("The launch has expired. Start it again from the learning platform.")
    elif "missing" in lowered and "claim" in lowered:
        text = _("The launch's token lacks a claim every launch must carry.")
    elif "signature" in lowered or "decode id_token" in lowered:
        text = _("The launch's signature does not match the platform's keys.")
    elif "public key" in lowered or "kid" in lowered:
        text = _("The launch is not signed with any of the platform's published keys.")
    else:
        text = _("The launch is not valid.")
    return LaunchRefused(400, f"{text} ({detail})")


# -- the endpoints -------------------------------------------------------------------------------


@bp.get("/jwks.json")
def jwks() -> Response:
    """The tool's public keys (JWKS), with which platforms check what the tool signs."""
    db = get_session()
    service.tool_key(db)
    db.commit()
    keys = [Registration.get_jwk(key.public_key_pem) for key in service.tool_keys(db)]
    return jsonify({"keys": keys})


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    """OIDC login initiation: check the platform, issue state and nonce, and send the browser
    to the platform's authorisation endpoint."""
    db = get_session()
    tool_conf, storage = _launch_tools(db)
    issuer = request.values.get("iss", "")
    if not issuer or not request.values.get("login_hint"):
        raise LaunchRefused(400, _("The login request lacks %(fields)s.",
                                   fields="iss, login_hint"))
    client_id = request.values.get("client_id") or None
    if service.find_platform(db, issuer, client_id) is None:
        raise LaunchRefused(403, _("No platform %(issuer)s with client id %(client)s is "
                                   "registered here.", issuer=repr(issuer),
                                   client=repr(client_id or "")))
    oidc = FlaskOIDCLogin(FlaskRequest(), tool_conf, launch_data_storage=storage)
    try:
        response = oidc.redirect(url_for("lti.launch", _external=True)
                                 if not _configured_base() else _configured_base()
                                 + url_for("lti.launch"))
    except (OIDCException, LtiException) as error:
        raise _library_refusal(error) from None
    db.commit()
    return response


def _configured_base() -> str | None:
    from flask import current_app

    configured = current_app.config.get("PUBLIC_URL")
    return configured.rstrip("/") if configured else None


def _unverified(id_token: str) -> dict[str, t.Any]:
    try:
        jwt.get_unverified_header(id_token)
        body = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError as error:
        raise LaunchRefused(400, _("The launch's id_token is not a JSON Web Token (%(why)s).",
                                   why=str(error))) from None
    if not isinstance(body, dict):
        raise LaunchRefused(400, _("The launch's id_token is not a JSON Web Token."))
    return body


def _platform_of(db, body: dict[str, t.Any]) -> LtiPlatform:
    """The registered platform the unverified token names, or a refusal naming what is
    unknown: the issuer, the audience (client id) or the deployment."""
    issuer = body.get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise LaunchRefused(400, _("The launch names no issuer (iss)."))
    known = list(db.scalars(select(LtiPlatform).where(LtiPlatform.issuer == issuer)))
    if not known:
        raise LaunchRefused(403, _("No platform with the issuer %(issuer)s is registered "
                                   "here.", issuer=repr(issuer)))
    aud = body.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    audiences = [a for a in audiences if isinstance(a, str)]
    if len(audiences) > 1:
        azp = body.get("azp")
        audiences = [azp] if isinstance(azp, str) and azp in audiences else []
    platform = next((p for p in known if p.client_id in audiences), None)
    if platform is None:
        raise LaunchRefused(403, _("The launch is meant for another tool: its audience %(aud)s "
                                   "is not the client id registered for %(issuer)s.",
                                   aud=repr(aud), issuer=repr(issuer)))
    deployment = body.get(DEPLOYMENT_CLAIM)
    if deployment not in (platform.deployment_ids or []):
        raise LaunchRefused(403, _("The deployment %(deployment)s of %(issuer)s is not "
                                   "registered here.", deployment=repr(deployment),
                                   issuer=repr(issuer)))
    return platform


def _role_of(body: dict[str, t.Any]) -> Role:
    if TeacherRole(body).check():
        return Role.TEACHER
    if StudentRole(body).check():
        return Role.STUDENT
    raise LaunchRefused(403, _("Only learners and instructors can use this tool; the launch "
                               "gives the roles %(roles)s.",
                               roles=", ".join(body.get(CLAIM + "roles") or []) or "-"))


def _claims(body: dict[str, t.Any], role: Role) -> service.LaunchClaims:
    sub = body.get("sub")
    if not isinstance(sub, str) or not sub or len(sub) > 255:
        raise LaunchRefused(400, _("The launch names no user (sub)."))
    context = body.get(CLAIM + "context") or {}
    link = body.get(CLAIM + "resource_link") or {}
    custom = body.get(CLAIM + "custom") or {}
    name = body.get("name") or body.get("given_name") or ""
    return service.LaunchClaims(
        sub=sub, role=role, name=name if isinstance(name, str) else "",
        context_id=str(context["id"])[:255] if isinstance(context, dict) and context.get("id")
        else None,
        context_title=str(context.get("title") or context.get("label") or "")
        if isinstance(context, dict) else "",
        resource_link_id=str(link["id"])[:255] if isinstance(link, dict) and link.get("id")
        else None,
        custom={str(k): str(v) for k, v in custom.items()} if isinstance(custom, dict) else {},
        ags=body.get(AGS_CLAIM) if isinstance(body.get(AGS_CLAIM), dict) else None,
        deep_linking=body.get(MESSAGE_TYPE_CLAIM) == "LtiDeepLinkingRequest")


@bp.post("/launch")
def launch() -> Response:
    """The launch: verify the platform's id_token, record what it says, sign the person in and
    send them on (their attempt, their report, or the deep-linking page)."""
    db = get_session()
    id_token = request.form.get("id_token", "")
    if not id_token:
        raise LaunchRefused(400, _("The launch carries no id_token."))
    platform = _platform_of(db, _unverified(id_token))
    tool_conf, storage = _launch_tools(db)
    message = FlaskMessageLaunch(FlaskRequest(), tool_conf, launch_data_storage=storage,
                                 requests_session=TimeoutSession())
    message.set_jwt_verify_options({"verify_aud": False, "require": ["exp", "iat"]})
    try:
        body = dict(message.get_launch_data())
    except LtiException as error:
        raise _library_refusal(error) from None
    role = _role_of(body)
    claims = _claims(body, role)
    try:
        service.use_nonce(db, platform, body["nonce"],
                          _moment(body["exp"]))
        outcome = service.apply_launch(db, platform, claims, base_url=public_url())
    except ServiceError as error:
        raise LaunchRefused(error.status if error.status < 500 else 400, str(error)) from None
    db.commit()
    page_sessions.start(db, outcome.user)
    if outcome.target == "deep_linking":
        return redirect(url_for("lti.deep_link", launch_id=message.get_launch_id()), 303)
    if outcome.target == "report":
        if outcome.user.role == Role.STUDENT:
            return redirect(url_for("report_pages.my_report"), 303)
        if outcome.school_class is not None:
            return redirect(url_for("dashboard_pages.class_dashboard_page",
                                    class_id=outcome.school_class.id), 303)
    if outcome.target == "attempt":
        return redirect(url_for("student.attempt", attempt_id=outcome.attempt.id), 303)
    if outcome.school_class is not None:
        return redirect(url_for("teacher.class_page", class_id=outcome.school_class.id), 303)
    return redirect(url_for("teacher.classes"), 303)


def _moment(exp: t.Any):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(float(exp), UTC)


# -- deep linking --------------------------------------------------------------------------------


def _deep_launch(launch_id: str):
    """The deep-linking launch ``launch_id`` (restored from storage) and its teacher."""
    db = get_session()
    if not launch_id.startswith("lti1p3-launch-") or len(launch_id) > 100:
        raise LaunchRefused(404, _("This choice of a test has expired or never existed. "
                                   "Start it again from the learning platform."))
    tool_conf, storage = _launch_tools(db)
    try:
        message = FlaskMessageLaunch.from_cache(launch_id, FlaskRequest(), tool_conf,
                                                launch_data_storage=storage,
                                                requests_session=TimeoutSession())
    except LtiException:
        raise LaunchRefused(404, _("This choice of a test has expired or never existed. "
                                   "Start it again from the learning platform.")) from None
    body = message.get_launch_data()
    if body.get(MESSAGE_TYPE_CLAIM) != "LtiDeepLinkingRequest":
        raise LaunchRefused(400, _("This launch is not a request to choose a test."))
    platform = service.find_platform(db, body["iss"], message.get_client_id())
    teacher = _linked_user(db, platform, body.get("sub"))
    if teacher is None or teacher.role != Role.TEACHER:
        raise LaunchRefused(403, _("Only teachers choose tests for the platform."))
    return message, body, teacher


def _linked_user(db, platform: LtiPlatform | None, sub: t.Any) -> User | None:
    from evidence.lti_models import LtiUserLink

    if platform is None or not isinstance(sub, str):
        return None
    link = db.scalar(select(LtiUserLink).where(LtiUserLink.platform_id == platform.id,
                                               LtiUserLink.sub == sub))
    return db.get(User, link.user_id) if link is not None else None


def _framed_by(body: dict[str, t.Any], response: Response, form_target: str | None = None
               ) -> Response:
    """Let the platform show this page in its iframe (deep linking happens there) and, for the
    response form, post to the platform."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(body.get("iss") or ""))
    settings = body.get("https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings")
    targets = {origin}
    if form_target:
        targets.add("{0.scheme}://{0.netloc}".format(urlsplit(form_target)))
    return_url = (settings or {}).get("deep_link_return_url") or ""
    targets.add("{0.scheme}://{0.netloc}".format(urlsplit(return_url)))
    sources = " ".join(sorted(x for x in targets if x != "://"))
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        f"frame-ancestors 'self' {sources}; form-action 'self' {sources}; base-uri 'none'")
    response.headers["X-Frame-Options"] = "SAMEORIGIN" if not sources else ""
    if not response.headers["X-Frame-Options"]:
        del response.headers["X-Frame-Options"]
    return response


@bp.get("/deep-link/<launch_id>")
def deep_link(launch_id: str) -> Response:
    """The teacher picks one of the active tests to add to the platform's course."""
    _message, body, teacher = _deep_launch(launch_id)
    db = get_session()
    tests = list(db.scalars(select(AdaptiveTest).where(AdaptiveTest.is_active.is_(True))
                            .order_by(AdaptiveTest.name)))
    settings = body.get("https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings")
    response = page("lti/pick.html", user=teacher, tests=tests, launch_id=launch_id,
                    platform_title=(settings or {}).get("title") or "", error=None)
    return _framed_by(body, response)


@bp.post("/deep-link/<launch_id>")
def deep_link_choose(launch_id: str) -> Response:
    """Send the chosen test back to the platform: a signed LtiDeepLinkingResponse holding an
    LTI resource link with the custom parameter ``test_id``."""
    message, body, teacher = _deep_launch(launch_id)
    db = get_session()
    raw = request.form.get("test_id", "")
    test = (db.get(AdaptiveTest, int(raw)) if raw.isascii() and raw.isdecimal()
            and len(raw) < 10 else None)
    if test is None or not test.is_active:
        tests = list(db.scalars(select(AdaptiveTest).where(AdaptiveTest.is_active.is_(True))
                                .order_by(AdaptiveTest.name)))
        response = page("lti/pick.html", 422, user=teacher, tests=tests, launch_id=launch_id,
                        platform_title="", error=_("Choose one of the tests shown."))
        return _framed_by(body, response)
    resource = (DeepLinkResource().set_url(_launch_url()).set_title(test.name)
                .set_custom_params({"test_id": str(test.id)}))
    try:
        deep_link_message = message.get_deep_link()
        token = deep_link_message.get_response_jwt([resource])
    except LtiException as error:
        raise _library_refusal(error) from None
    settings = body.get("https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings")
    return_url = settings["deep_link_return_url"]
    response = page("lti/return.html", user=teacher, return_url=return_url, token=token,
                    test=test)
    db.commit()
    return _framed_by(body, response, return_url)


def _launch_url() -> str:
    return (_configured_base() or request.url_root.rstrip("/")) + url_for("lti.launch")


# -- errors that are not the launch's fault ------------------------------------------------------


@bp.errorhandler(NotFound)
@bp.errorhandler(Forbidden)
def _service_refusal(error: ServiceError) -> Response:
    return _refused(LaunchRefused(error.status, str(error)))


def init_app(app) -> None:
    """Register the LTI endpoints (no CSRF token: the platform's signed token or the launch id
    is what proves each request)."""
    app.register_blueprint(bp)

