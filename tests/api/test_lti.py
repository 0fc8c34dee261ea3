"""LTI 1.3 against a platform simulated with real keys, signed tokens and a real HTTP server:
launch, deep linking, scores back (AGS), and every kind of bad launch refused with nothing
written, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from click.testing import CliRunner
from jwt.algorithms import RSAAlgorithm
from pylti1p3.contrib.flask import FlaskServiceConnector
from sqlalchemy import func, select

from api.cli import cli
from api.db import engine_of
from api.lti_grades import send_due
from evidence.lti import scaled_score
from evidence.lti_models import (
    GradeStatus,
    LtiContext,
    LtiGrade,
    LtiNonce,
    LtiResourceLink,
    LtiUserLink,
)
from evidence.models import Attempt, AttemptStatus
from storage import session_factory, utcnow
from storage.accounts import Role, SchoolClass, User, class_members
from tests.api.lti_platform import INSTRUCTOR, Platform, rsa_key

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"


@pytest.fixture
def platform(world):
    """The simulated platform, registered by the district administrator (school A)."""
    FlaskServiceConnector.access_tokens.clear()
    world.app.config["HUEY_URL"] = "immediate"
    lms = Platform()
    reply = world.call("post", "/api/v1/lti/platforms", "admin1",
                       json=lms.registration(school_id=world.schools["A"]))
    assert reply.status_code == 201, reply.get_json()
    lms.tool_jwks = world.client.get("/lti/jwks.json").get_json()
    yield lms
    lms.close()


def _session(world):
    return session_factory(engine_of(world.app))()


def _login(client, lms: Platform) -> tuple[str, str]:
    """OIDC login initiation; returns the state and nonce the tool sent to the platform."""
    reply = client.post("/lti/login", data={
        "iss": lms.issuer, "login_hint": "hint-1", "client_id": lms.client_id,
        "target_link_uri": "http://localhost/lti/launch", "lti_message_hint": "m-1",
        "lti_deployment_id": lms.deployment_id})
    assert reply.status_code == 302, reply.get_data(as_text=True)
    location = urlsplit(reply.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{lms.base}/auth"
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["client_id"] == lms.client_id and query["response_mode"] == "form_post"
    assert query["redirect_uri"].endswith("/lti/launch") and query["lti_message_hint"] == "m-1"
    return query["state"], query["nonce"]


def _launch(world, lms: Platform, *, client=None, body=None, token=None, state=None, **claims):
    client = client or world.client
    state_sent, nonce = _login(client, lms)
    token = token or lms.sign(body or lms.claims(nonce, **claims))
    return client.post("/lti/launch", data={"id_token": token, "state": state or state_sent})


def _counts(world) -> dict[str, int]:
    with _session(world) as session:
        return {model.__name__ if hasattr(model, "__name__") else model.name:
                session.scalar(select(func.count()).select_from(model))
                for model in (User, SchoolClass, class_members, Attempt, LtiUserLink,
                              LtiContext, LtiResourceLink, LtiGrade, LtiNonce)}


def _teacher_sets_up(world, lms: Platform):
    """The instructor's launch: makes the course's class (and links the resource link)."""
    reply = _launch(world, lms, client=world.app.test_client(), sub="lms-teacher",
                    roles=[INSTRUCTOR], **{CLAIM + "custom": {"test_id": str(world.test_id)}})
    assert reply.status_code == 303, reply.get_data(as_text=True)
    return reply


def _answer_until_finished(client, location: str) -> str:
    """Answer every item through the pages until the result; returns the result's path."""
    for _ in range(40):
        page = client.get(location)
        if page.status_code in (302, 303):
            return page.headers["Location"]
        html = page.get_data(as_text=True)
        fields = dict(re.findall(r'name="(csrf_token|item_id|idempotency_key)" value="([^"]+)"',
                                 html))
        reply = client.post(location + "/answer", data=fields | {"response": "1"})
        assert reply.status_code in (302, 303), reply.get_data(as_text=True)
    raise AssertionError("the attempt never finished")


# -- launches ------------------------------------------------------------------------------------


def test_a_launch_creates_the_student_class_and_enrolment_and_starts_the_attempt(
        world, platform) -> None:
    _teacher_sets_up(world, platform)
    reply = _launch(world, platform)
    assert reply.status_code == 303
    match = re.fullmatch(r"/attempts/(\d+)", urlsplit(reply.headers["Location"]).path)
    assert match, reply.headers["Location"]
    attempt_id = int(match.group(1))
    page = world.client.get(f"/attempts/{attempt_id}")  # signed in by the launch
    assert page.status_code == 200 and 'name="item_id"' in page.get_data(as_text=True)
    with _session(world) as session:
        link = session.scalar(select(LtiUserLink).where(LtiUserLink.sub == "lms-user-1"))
        student = session.get(User, link.user_id)
        assert student.role == Role.STUDENT and student.display_name == "Ada L."
        assert student.school_id == world.schools["A"]
        assert "lms-user-1" not in student.username  # the platform's id is not the username
        context = session.scalar(select(LtiContext).where(LtiContext.context_id == "course-42"))
        klass = session.get(SchoolClass, context.class_id)
        assert klass.name == "Algebra 1" and klass.school_id == world.schools["A"]
        assert [s.id for s in klass.students] == [student.id]
        attempt = session.get(Attempt, attempt_id)
        assert attempt.user_id == student.id and attempt.test_id == world.test_id
        grade = session.scalar(select(LtiGrade).where(LtiGrade.attempt_id == attempt_id))
        assert grade.status == GradeStatus.WAITING and grade.endpoint["lineitem"] == \
            platform.lineitem

    # a second launch (another browser) matches the same student and resumes the attempt
    again = _launch(world, platform, client=world.app.test_client())
    assert again.status_code == 303 and again.headers["Location"].endswith(f"/{attempt_id}")
    with _session(world) as session:
        assert session.scalar(select(func.count()).select_from(LtiUserLink)
                              .where(LtiUserLink.sub == "lms-user-1")) == 1
        assert session.scalar(select(func.count()).select_from(SchoolClass)
                              .where(SchoolClass.name == "Algebra 1")) == 1
        assert session.scalar(select(func.count()).select_from(LtiGrade)) == 1


def test_a_report_launch_opens_the_students_report(world, platform) -> None:
    _teacher_sets_up(world, platform)
    reply = _launch(world, platform, **{CLAIM + "custom": {"target": "report"}})
    assert reply.status_code == 303 and urlsplit(reply.headers["Location"]).path == "/my-report"
    assert world.client.get("/my-report").status_code == 200


def test_a_students_launch_into_a_course_without_a_class_is_refused(world, platform) -> None:
    before = _counts(world)
    reply = _launch(world, platform)
    assert reply.status_code == 403
    assert "its teacher must open the activity" in reply.get_data(as_text=True)
    assert _counts(world) == before


# -- deep linking --------------------------------------------------------------------------------


def test_deep_linking_returns_a_signed_resource_link_the_platform_can_verify(
        world, platform) -> None:
    teacher = world.app.test_client()
    reply = _launch(world, platform, client=teacher, sub="lms-teacher", roles=[INSTRUCTOR],
                    message_type="LtiDeepLinkingRequest")
    assert reply.status_code == 303, reply.get_data(as_text=True)
    pick = teacher.get(reply.headers["Location"])
    html = pick.get_data(as_text=True)
    assert pick.status_code == 200 and "Maths" in html
    assert platform.base in pick.headers["Content-Security-Policy"]  # may sit in its iframe
    wrong = teacher.post(reply.headers["Location"], data={"test_id": "999999"})
    assert wrong.status_code == 422 and "Choose one of the tests shown" in \
        wrong.get_data(as_text=True)
    chosen = teacher.post(reply.headers["Location"], data={"test_id": str(world.test_id)})
    html = chosen.get_data(as_text=True)
    assert chosen.status_code == 200
    assert f'action="{platform.base}/deep-link-return"' in html
    token = re.search(r'name="JWT" value="([^"]+)"', html).group(1)
    # the platform checks the response with the tool's published keys
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in world.client.get("/lti/jwks.json").get_json()["keys"]
               if k["kid"] == kid)
    message = jwt.decode(token, RSAAlgorithm.from_jwk(json.dumps(key)), algorithms=["RS256"],
                         audience=platform.issuer)
    assert message["iss"] == platform.client_id
    assert message[CLAIM + "message_type"] == "LtiDeepLinkingResponse"
    assert message[CLAIM + "deployment_id"] == platform.deployment_id
    assert message["https://purl.imsglobal.org/spec/lti-dl/claim/data"] == "opaque-123"
    [item] = message["https://purl.imsglobal.org/spec/lti-dl/claim/content_items"]
    assert item["type"] == "ltiResourceLink" and item["title"] == "Maths"
    assert item["custom"] == {"test_id": str(world.test_id)}
    assert item["url"].endswith("/lti/launch")

    # the platform makes the link; a student's launch of it starts that test
    reply = _launch(world, platform, **{CLAIM + "custom": item["custom"],
                                        CLAIM + "resource_link": {"id": "new-link"}})
    assert reply.status_code == 303 and "/attempts/" in reply.headers["Location"]


def test_a_student_cannot_choose_tests(world, platform) -> None:
    _teacher_sets_up(world, platform)
    before = _counts(world)
    reply = _launch(world, platform, message_type="LtiDeepLinkingRequest")
    assert reply.status_code == 403 and "only teachers choose" in reply.get_data(as_text=True)
    assert _counts(world) == before


# -- scores back to the platform -----------------------------------------------------------------


def test_finishing_the_attempt_sends_exactly_one_score(world, platform) -> None:
    _teacher_sets_up(world, platform)
    reply = _launch(world, platform)
    result = _answer_until_finished(world.client, urlsplit(reply.headers["Location"]).path)
    assert "/result" in result
    assert len(platform.scores) == 1
    [score] = platform.scores
    with _session(world) as session:
        grade = session.scalar(select(LtiGrade))
        attempt = session.get(Attempt, grade.attempt_id)
        assert attempt.status == AttemptStatus.FINISHED
        assert grade.status == GradeStatus.SENT and grade.tries == 1
        decision = attempt.result["mastery"]["decision"]
        theta = attempt.theta
    assert score["userId"] == "lms-user-1"
    assert score["scoreGiven"] == scaled_score(theta) and score["scoreMaximum"] == 100
    assert score["activityProgress"] == "Completed"
    assert score["gradingProgress"] == "FullyGraded"
    assert decision.replace("_", " ") in score["comment"] and "Mastery" in score["comment"]
    assert platform.token_requests[0]["claims"]["iss"] == platform.client_id
    # running the sender again (cron) sends nothing more
    assert send_due(session_factory(engine_of(world.app))).sent == []
    assert len(platform.scores) == 1


def test_a_platform_that_is_down_gets_the_score_later_once(world, platform) -> None:
    _teacher_sets_up(world, platform)
    reply = _launch(world, platform)
    platform.down = True
    _answer_until_finished(world.client, urlsplit(reply.headers["Location"]).path)
    assert platform.scores == []
    factory = session_factory(engine_of(world.app))
    with factory() as session:
        grade = session.scalar(select(LtiGrade))
        assert grade.status == GradeStatus.PENDING and grade.tries == 1
        assert "503" in grade.last_error
        retry_at = grade.next_try_at
    assert send_due(factory).sent == []  # not yet due: nothing is sent, nothing counted
    platform.down = False
    later = utcnow() + timedelta(minutes=5)
    assert retry_at is not None
    report = send_due(factory, later)
    assert len(report.sent) == 1 and len(platform.scores) == 1
    assert send_due(factory, later + timedelta(hours=1)).sent == []
    result = CliRunner().invoke(cli, ["--database-url", str(engine_of(world.app).url
                                                            .render_as_string(
                                                                hide_password=False)),
                                      "lti", "send-grades"])
    assert result.exit_code == 0, result.output
    assert "0 score(s) sent" in result.output and len(platform.scores) == 1
    with factory() as session:
        grade = session.scalar(select(LtiGrade))
        assert grade.status == GradeStatus.SENT and grade.tries == 2


def test_the_scaled_score() -> None:
    assert scaled_score(0.0) == 50.0
    assert scaled_score(1.0) == 62.5 and scaled_score(-2.0) == 25.0
    assert scaled_score(9.0) == 100.0 and scaled_score(-9.0) == 0.0


# -- bad launches --------------------------------------------------------------------------------


def _forged(lms: Platform, nonce: str) -> str:
    other, _jwk = rsa_key()  # another key, claiming the platform's kid
    return lms.sign(lms.claims(nonce), key=other)


def _unsigned(lms: Platform, nonce: str) -> str:
    return jwt.encode(lms.claims(nonce), None, algorithm="none", headers={"kid": lms.kid})


BAD = {
    "forged signature": (lambda lms, n: _forged(lms, n), 400, "signature"),
    "expired token": (lambda lms, n: lms.sign(lms.claims(
        n, exp=int(time.time()) - 60, iat=int(time.time()) - 400)), 400, "expired"),
    "wrong audience": (lambda lms, n: lms.sign(lms.claims(n, aud="some-other-tool")), 403,
                       "meant for another tool"),
    "unknown issuer": (lambda lms, n: lms.sign(lms.claims(n, iss="https://evil.example")), 403,
                       "No platform with the issuer"),
    "unknown deployment": (lambda lms, n: lms.sign(lms.claims(
        n, **{CLAIM + "deployment_id": "deployment-9"})), 403, "deployment"),
    "malformed token": (lambda lms, n: "not-a.jwt", 400, "not a JSON Web Token"),
    "unsigned token": (_unsigned, 400, "not signed with any of the platform"),
    "nonce never issued": (lambda lms, n: lms.sign(lms.claims("made-up-nonce")), 400, "nonce"),
    "no exp": (lambda lms, n: lms.sign({k: v for k, v in lms.claims(n).items()
                                        if k != "exp"}), 400, "lacks a claim"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_launch_is_refused_with_nothing_written(world, platform, case: str) -> None:
    _teacher_sets_up(world, platform)
    make, status, words = BAD[case]
    before = _counts(world)
    state, nonce = _login(world.client, platform)
    reply = world.client.post("/lti/launch", data={"id_token": make(platform, nonce),
                                                   "state": state})
    text = reply.get_data(as_text=True)
    assert reply.status_code == status, text
    assert words in text, text
    assert _counts(world) == before
    assert world.client.get("/my-tests").status_code == 302  # nobody signed in


def test_a_bad_state_is_refused(world, platform) -> None:
    _teacher_sets_up(world, platform)
    before = _counts(world)
    reply = _launch(world, platform, state="state-forged")
    assert reply.status_code == 400 and "state" in reply.get_data(as_text=True)
    assert _counts(world) == before


def test_a_replayed_launch_is_refused(world, platform) -> None:
    _teacher_sets_up(world, platform)
    state, nonce = _login(world.client, platform)
    token = platform.sign(platform.claims(nonce))
    first = world.client.post("/lti/launch", data={"id_token": token, "state": state})
    assert first.status_code == 303
    before = _counts(world)
    # the same token again, from the same browser and from another one (another process
    # would see the same database)
    again = world.client.post("/lti/launch", data={"id_token": token, "state": state})
    assert again.status_code == 409 and "used already" in again.get_data(as_text=True)
    other = world.app.test_client()
    other_state, _other_nonce = _login(other, platform)
    elsewhere = other.post("/lti/launch", data={"id_token": token, "state": other_state})
    assert elsewhere.status_code in (400, 409)
    assert _counts(world) == before


def test_missing_parts_are_named(world, platform) -> None:
    assert world.client.post("/lti/launch", data={}).status_code == 400
    refused = world.client.get("/lti/login", query_string={"iss": "https://nobody.example",
                                                           "login_hint": "x"})
    assert refused.status_code == 403 and "No platform" in refused.get_data(as_text=True)
    assert world.client.get("/lti/login", query_string={"iss": platform.issuer}
                            ).status_code == 400


# -- registering platforms -----------------------------------------------------------------------


def test_registering_platforms(world, platform) -> None:
    lms = platform.registration(client_id="second")
    assert world.call("post", "/api/v1/lti/platforms", "teacher1", json=lms).status_code == 403
    other = world.call("post", "/api/v1/lti/platforms", "admin2",
                       json=lms | {"school_id": world.schools["A"]})
    assert other.status_code == 403
    own = world.call("post", "/api/v1/lti/platforms", "admin2", json=lms)
    assert own.status_code == 201 and own.get_json()["school_id"] == world.schools["B"]
    again = world.call("post", "/api/v1/lti/platforms", "admin1", json=lms)
    assert again.status_code == 409
    bad = world.call("post", "/api/v1/lti/platforms", "admin1",
                     json=lms | {"client_id": "third", "key_set_url": "ftp://x"})
    assert bad.status_code == 422 and "key_set_url" in bad.get_json()["detail"]
    listed = world.call("get", "/api/v1/lti/platforms", "admin2").get_json()
    assert [p["client_id"] for p in listed["items"]] == ["second"]
    assert len(world.call("get", "/api/v1/lti/platforms", "admin1").get_json()["items"]) == 2


def test_the_command_line_registers_a_platform(world) -> None:
    url = engine_of(world.app).url.render_as_string(hide_password=False)
    result = CliRunner().invoke(cli, [
        "--database-url", url, "lti", "platforms", "add", "--name", "Canvas",
        "--issuer", "https://canvas.example", "--client-id", "10000",
        "--auth-login-url", "https://canvas.example/auth",
        "--auth-token-url", "https://canvas.example/token",
        "--key-set-url", "https://canvas.example/jwks", "--deployment-id", "1:abc"])
    assert result.exit_code == 0, result.output
    listed = CliRunner().invoke(cli, ["--database-url", url, "lti", "platforms", "list"])
    assert json.loads(listed.output.splitlines()[0])["issuer"] == "https://canvas.example"
    bad = CliRunner().invoke(cli, [
        "--database-url", url, "lti", "platforms", "add", "--name", "X", "--issuer", "i",
        "--client-id", "c", "--auth-login-url", "nope", "--auth-token-url", "https://x/t",
        "--key-set-url", "https://x/k", "--deployment-id", "1"])
    assert bad.exit_code != 0 and "auth_login_url" in bad.output


def test_erasing_an_lti_student_removes_the_platforms_id_and_their_waiting_score(
        world, platform) -> None:
    from rights.erasure import confirm_erasure, request_erasure

    _teacher_sets_up(world, platform)
    assert _launch(world, platform).status_code == 303
    with _session(world) as session:
        student_id = session.scalar(select(LtiUserLink.user_id)
                                    .where(LtiUserLink.sub == "lms-user-1"))
        erasure = request_erasure(session, session.get(User, world.users["admin1"]), student_id,
                                  "asked by the family")
        session.flush()
        confirm_erasure(session, session.get(User, world.users["admin3"]), erasure.id)
        session.commit()
        assert session.scalar(select(func.count()).select_from(LtiUserLink)
                              .where(LtiUserLink.sub == "lms-user-1")) == 0
        assert session.scalar(select(func.count()).select_from(LtiGrade)) == 0
