"""The 1EdTech CAT Service REST binding, used as a delivery platform would: a district
administrator issues the platform a client credential; the platform gets a token, creates a
section from a test, a session for a candidate, submits QTI results and receives the next items
until the engine stops, and ends the session. Then every bad input and every auth failure.
Each on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import func, select

from api.app import create_app
from api.db import engine_of
from cat_engine.models import p_correct
from evidence.models import CatResult, CatSection, CatSession
from item_bank.services import delivery_bank
from storage import session_factory
from tests.api.conftest import ApiWorld, build_world

BASE = "/ims/cat/v1p0"


# -- a platform ----------------------------------------------------------------------------------


class Platform:
    """What a delivery platform does over HTTP, with its own client credential."""

    def __init__(self, world: ApiWorld, name: str = "TAO") -> None:
        self.world = world
        reply = world.call("post", "/api/v1/cat/clients", "admin1", json={"name": name})
        assert reply.status_code == 201, reply.get_json()
        body = reply.get_json()
        self.client_id, self.key, self.secret = body["id"], body["key"], body["secret"]
        self.token = self.get_token().get_json()["access_token"]

    def get_token(self, secret: str | None = None, **form):
        basic = base64.b64encode(f"{self.key}:{secret or self.secret}".encode()).decode()
        return self.world.client.post(
            f"{BASE}/token", data={"grant_type": "client_credentials", **form},
            headers={"Authorization": f"Basic {basic}"})

    def call(self, method: str, path: str, **kwargs):
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.world.client.open(f"{BASE}{path}", method=method.upper(), headers=headers,
                                      **kwargs)

    def create_section(self, configuration: dict) -> str:
        reply = self.call("post", "/sections", json=section_body(configuration))
        assert reply.status_code == 201, reply.get_json()
        return reply.get_json()["sectionIdentifier"]

    def create_session(self, section: str, **body):
        return self.call("post", f"/sections/{section}/sessions", json={
            "priorData": [{"key": "initialEstimatedAbility", "value": "0.0"}], **body})

    def submit(self, section: str, session: str, *item_results: dict, sourced_id=None):
        result: dict = {"itemResult": list(item_results)}
        if sourced_id is not None:
            result["context"] = {"sourcedId": sourced_id}
        return self.call("post", f"/sections/{section}/sessions/{session}/results",
                         json={"assessmentResult": result, "sessionState": "opaque"})


def section_body(configuration: dict) -> dict:
    encode = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    return {"sectionConfiguration": encode(json.dumps(configuration)),
            "qtiMetadata": encode("<manifest/>"), "qtiUsagedata": encode("<usageData/>")}


def qti_result(item: str, choice: str) -> dict:
    """An itemResult as QTI results reporting has it: the candidate's choice and the score."""
    return {"identifier": item, "datestamp": "2026-12-05T10:00:00Z", "sessionStatus": "final",
            "responseVariable": [
                {"identifier": "numAttempts", "cardinality": "single", "baseType": "integer",
                 "candidateResponse": {"value": ["1"]}},
                {"identifier": "RESPONSE", "cardinality": "single", "baseType": "identifier",
                 "candidateResponse": {"value": [choice]}}]}


def tao_score(item: str, score: float) -> dict:
    """An itemResult as TAO's CAT client sends it: the SCORE outcome only."""
    return {"identifier": item, "variables": [
        {"identifier": "SCORE", "variableType": "outcome",
         "values": [{"baseType": "float", "valueString": str(score)}]}]}


def outcome(reply: dict, name: str) -> str:
    variables = reply["assessmentResult"]["testResult"]["outcomeVariables"]
    return next(v["value"][0]["value"] for v in variables if v["identifier"] == name)


def db_session(world: ApiWorld):
    return session_factory(engine_of(world.app))()


def long_test(world: ApiWorld, name: str = "Long maths") -> int:
    reply = world.call("post", "/api/v1/tests", "admin1", json={
        "name": name, "description": "A long adaptive test",
        "config": {"start": {"theta": 0.0}, "estimator": {"method": "eap"},
                   "selection": {"method": "mfi"},
                   "stopping": {"max_items": 40, "min_items": 40}}})
    assert reply.status_code == 201, reply.get_json()
    return reply.get_json()["id"]


# -- the whole walk ------------------------------------------------------------------------------


@pytest.mark.parametrize("theta", [-1.0, 1.2])
def test_a_platform_walks_a_whole_session(world: ApiWorld, theta: float) -> None:
    platform = Platform(world)
    test_id = long_test(world)
    section = platform.create_section({"testId": test_id})

    # The section reads back as created, and lists what its sessions may present.
    got = platform.call("get", f"/sections/{section}")
    assert got.status_code == 200
    assert json.loads(base64.b64decode(got.get_json()["sectionConfiguration"])) == {
        "testId": test_id}
    items = platform.call("get", f"/sections/{section}/items").get_json()["itemIdentifiers"]
    assert len(items) == 60 and "IT-000" in items

    created = platform.create_session(section)
    assert created.status_code == 201, created.get_json()
    reply = created.get_json()
    session_id = reply["sessionIdentifier"]
    assert reply["nextItems"]["stageLength"] == 1
    assert json.loads(reply["sessionState"]) == {"status": "in_progress", "itemsCounted": 0}

    with db_session(world) as session:
        snapshot = session.scalar(select(CatSection.snapshot_id)
                                  .where(CatSection.identifier == section))
        delivery = delivery_bank(session, snapshot)
    rng = np.random.default_rng(11)
    offered = []
    while reply["nextItems"]["itemIdentifiers"]:
        (item,) = reply["nextItems"]["itemIdentifiers"]
        assert item in items and item not in offered
        offered.append(item)
        entry = delivery.items[item]
        correct = rng.random() < float(p_correct(delivery.bank, delivery.bank.index_of(item),
                                                 theta))
        if len(offered) % 2:  # the candidate's choice, mapped through the item's key
            wrong = next(i for i in range(len(entry["options"])) if i != entry["key"])
            choice = "ABCD"[entry["key"] if correct else wrong]
            result = qti_result(item, choice)
        else:  # TAO's client sends only the SCORE outcome
            result = tao_score(item, 1.0 if correct else 0.0)
        answered = platform.submit(section, session_id, result, sourced_id="cand-7f3a")
        assert answered.status_code == 200, answered.get_json()
        reply = answered.get_json()
        assert outcome(reply, "ITEMS_COUNTED") == str(len(offered))

    assert len(offered) == 40
    assert json.loads(reply["sessionState"]) == {"status": "finished", "itemsCounted": 40,
                                                 "stopReason": "max_items=40"}
    assert reply["nextItems"] == {"itemIdentifiers": [], "stageLength": 0}
    estimate, se = float(outcome(reply, "THETA")), float(outcome(reply, "SE"))
    assert se < 0.4
    assert abs(estimate - theta) < 3 * se, (estimate, se, theta)
    assert reply["assessmentResult"]["context"] == {"sourcedId": "cand-7f3a"}
    with db_session(world) as session:
        stored = session.scalar(select(CatSession).where(CatSession.identifier == session_id))
        assert stored.candidate == "cand-7f3a" and stored.finished
        codes = session.scalars(select(CatResult.item_code).where(
            CatResult.session_id == stored.id).order_by(CatResult.position)).all()
        assert codes == offered

    # A finished session takes no new result, but the last one sent again is counted once.
    again = platform.submit(section, session_id, tao_score(offered[-1], 1.0))
    assert again.status_code == 200 and outcome(again.get_json(), "ITEMS_COUNTED") == "40"
    late = platform.submit(section, session_id, tao_score(next(
        i for i in items if i not in offered), 1.0))
    assert late.status_code == 409
    assert "has finished" in late.get_json()["imsx_description"]

    # Ending it deletes it and its results: later calls about it are told it does not exist.
    assert platform.call("delete", f"/sections/{section}/sessions/{session_id}"
                         ).status_code == 204
    gone = platform.submit(section, session_id, tao_score(offered[0], 1.0))
    assert gone.status_code == 404
    assert gone.get_json()["imsx_CodeMinor"]["imsx_codeMinorField"][0][
        "imsx_codeMinorFieldValue"] == "unknownobject"
    assert platform.call("delete", f"/sections/{section}/sessions/{session_id}"
                         ).status_code == 404
    with db_session(world) as session:
        assert session.scalar(select(func.count()).select_from(CatResult)) == 0
    assert platform.call("delete", f"/sections/{section}").status_code == 204
    assert platform.call("get", f"/sections/{section}").status_code == 404


def test_the_engine_stops_on_the_tests_own_rule(world: ApiWorld) -> None:
    """The fixture's test stops at SE 0.4 or 12 items, with pretest items at positions 2 and 4:
    the platform is offered those too, and their results do not count toward the estimate."""
    platform = Platform(world)
    section = platform.create_section({"testName": "Maths"})
    reply = platform.create_session(section).get_json()
    session_id, offered = reply["sessionIdentifier"], []
    while reply["nextItems"]["itemIdentifiers"]:
        item = reply["nextItems"]["itemIdentifiers"][0]
        offered.append(item)
        reply = platform.submit(section, session_id, qti_result(item, "A")).get_json()
    assert offered[1] in ("PRE-1", "PRE-2") and offered[3] in ("PRE-1", "PRE-2")
    state = json.loads(reply["sessionState"])
    assert state["status"] == "finished" and state["itemsCounted"] == len(offered) <= 14
    assert state["stopReason"] in ("se=0.4", "max_items=12")
    assert float(outcome(reply, "THETA")) < -1  # every answer "A" is wrong (keys are "B")


# -- bad input -----------------------------------------------------------------------------------


def _started(world: ApiWorld) -> tuple[Platform, str, str, str]:
    platform = Platform(world)
    section = platform.create_section({"testId": world.test_id})
    reply = platform.create_session(section).get_json()
    return platform, section, reply["sessionIdentifier"], reply["nextItems"][
        "itemIdentifiers"][0]


def _error(reply, status: int) -> str:
    assert reply.status_code == status, (reply.status_code, reply.get_data(as_text=True))
    assert reply.mimetype == "application/json"
    body = reply.get_json()
    assert body["imsx_codeMajor"] == "failure" and body["imsx_severity"] == "error"
    return body["imsx_description"]


def test_a_result_for_an_item_not_offered_is_refused_naming_it(world: ApiWorld) -> None:
    platform, section, session_id, item = _started(world)
    other = next(code for code in world.items if code not in (item, "PRE-1", "PRE-2"))
    text = _error(platform.submit(section, session_id, qti_result(other, "B")), 422)
    assert repr(other) in text and "not among the items last offered" in text
    text = _error(platform.submit(section, session_id, qti_result("NO-SUCH", "B")), 422)
    assert "'NO-SUCH'" in text
    # Nothing was counted: the offered item is still the one to answer.
    reply = platform.submit(section, session_id, qti_result(item, "B"))
    assert reply.status_code == 200 and outcome(reply.get_json(), "ITEMS_COUNTED") == "1"


def test_a_result_sent_again_is_counted_once(world: ApiWorld) -> None:
    platform, section, session_id, item = _started(world)
    first = platform.submit(section, session_id, qti_result(item, "B")).get_json()
    again = platform.submit(section, session_id, qti_result(item, "B")).get_json()
    assert again["nextItems"] == first["nextItems"]
    assert outcome(again, "ITEMS_COUNTED") == "1"
    # The same item twice in one request, with the next one: counted once each.
    nxt = first["nextItems"]["itemIdentifiers"][0]
    both = platform.submit(section, session_id, qti_result(item, "A"),
                           tao_score(nxt, 1), tao_score(nxt, 0)).get_json()
    assert outcome(both, "ITEMS_COUNTED") == "2"
    with db_session(world) as session:
        rows = session.execute(select(CatResult.item_code, CatResult.response, CatResult.choice)
                               .order_by(CatResult.position)).all()
    assert [tuple(r) for r in rows] == [(item, 1, 1), (nxt, 1, None)]


@pytest.mark.parametrize(("result", "status", "named"), [
    ({"identifier": "{item}"}, 422, "neither the candidate's response nor a SCORE"),
    ("qti:E", 422, "not one of its choices (A, B, C, D)"),
    ("score:0.5", 422, "scored 0 or 1"),
    ({"identifier": 7}, 400, "assessmentResult.itemResult[0].identifier"),
    ({"identifier": "{item}", "outcomeVariable": [{"identifier": "SCORE", "value": ["x"]}]},
     400, "SCORE must be a number"),
    ({"identifier": "{item}", "responseVariable": "B"}, 400,
     "assessmentResult.itemResult[0].responseVariable must be a list"),
])
def test_results_that_do_not_fit_are_refused_naming_the_field(
        world: ApiWorld, result, status: int, named: str) -> None:
    platform, section, session_id, item = _started(world)
    if result == "qti:E":
        result = qti_result(item, "E")
    elif result == "score:0.5":
        result = tao_score(item, 0.5)
    else:
        result = json.loads(json.dumps(result).replace("{item}", item))
    assert named in _error(platform.submit(section, session_id, result), status)


def test_bodies_that_do_not_fit_are_400(world: ApiWorld) -> None:
    platform, section, session_id, item = _started(world)
    path = f"/sections/{section}/sessions/{session_id}/results"
    assert "assessmentResult" in _error(platform.call("post", path, json={}), 400)
    assert "itemResult" in _error(platform.call("post", path, json={"assessmentResult": {}}),
                                  400)
    _error(platform.call("post", path, data="{", content_type="application/json"), 400)
    text = _error(platform.call("post", "/sections", json={"sectionConfiguration": "%%"}), 400)
    assert "sectionConfiguration must be base64" in text
    text = _error(platform.call("post", "/sections", json=section_body({"testId": 999})), 422)
    assert "no test with id 999" in text
    text = _error(platform.call("post", "/sections", json=section_body({"test": 1})), 400)
    assert "unknown setting(s) 'test'" in text
    text = _error(platform.create_session(section, priorData=[{"key": "sourcedId",
                                                               "value": ""}]), 400)
    assert "priorData[0].value" in text
    _error(platform.call("get", "/sections/nope"), 404)
    _error(platform.call("post", f"/sections/{section}/sessions/nope/results",
                         json={"assessmentResult": {"itemResult": [tao_score(item, 1)]}}), 404)
    _error(platform.call("put", "/sections"), 405)


# -- authentication ------------------------------------------------------------------------------


def test_tokens_and_who_may_see_what(world: ApiWorld) -> None:
    platform, section, session_id, item = _started(world)
    token = platform.get_token()
    assert token.status_code == 200 and token.headers["Cache-Control"] == "no-store"
    assert token.get_json()["token_type"] == "bearer" and token.get_json()["expires_in"] == 3600
    # Client credentials in the form body work too (client_secret_post).
    posted = world.client.post(f"{BASE}/token", data={
        "grant_type": "client_credentials", "client_id": platform.key,
        "client_secret": platform.secret})
    assert posted.status_code == 200

    wrong = platform.get_token(secret="wrong")
    assert wrong.status_code == 401 and wrong.get_json()["error"] == "invalid_client"
    grant = platform.get_token(grant_type="password")
    assert grant.status_code == 400 and grant.get_json()["error"] == "unsupported_grant_type"

    no_token = world.client.get(f"{BASE}/sections/{section}")
    assert "Bearer" in _error(no_token, 401) and no_token.headers["WWW-Authenticate"]
    user_token = world.client.get(f"{BASE}/sections/{section}", headers={
        "Authorization": f"Bearer {world.token('admin1')}"})
    _error(user_token, 401)  # a person's API token is not a platform's

    # Another platform is told the first one's section and session do not exist.
    other = Platform(world, "Another platform")
    _error(other.call("get", f"/sections/{section}"), 404)
    _error(other.submit(section, session_id, qti_result(item, "B")), 404)
    _error(other.call("delete", f"/sections/{section}"), 404)

    # Revoking the credential ends its tokens at once, and no new one is issued.
    assert world.call("delete", f"/api/v1/cat/clients/{platform.client_id}",
                      "admin1").status_code == 204
    assert "not valid" in _error(platform.call("get", f"/sections/{section}"), 401)
    assert platform.get_token().status_code == 401


def test_an_expired_token_is_refused(world: ApiWorld) -> None:
    world.app.config["CAT_TOKEN_LIFETIME"] = -1
    platform = Platform(world)
    assert "expired" in _error(platform.call("post", "/sections",
                                             json=section_body({"testId": 1})), 401)


def test_clients_are_managed_by_district_administrators(world: ApiWorld) -> None:
    created = world.call("post", "/api/v1/cat/clients", "admin1", json={"name": "TAO"})
    assert "secret" in created.get_json()
    listed = world.call("get", "/api/v1/cat/clients", "admin1").get_json()
    assert listed["total"] == 1 and "secret" not in listed["items"][0]
    refused = world.call("get", "/api/v1/cat/clients", "admin3")  # a school's administrator
    assert refused.status_code == 403
    audit = world.call("get", "/api/v1/audit?action=cat_client", "admin1").get_json()
    assert [e["object_type"] for e in audit["entries"]] == ["cat_client"], audit


# -- the service's OpenAPI document, fuzzed ------------------------------------------------------


CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance,
          content_type_conformance]


def _fuzz(operation, authorised: bool, platform: Platform, section: str, session_id: str):
    """A hypothesis test of one operation: generated bodies, queries and ids (the real section
    and session mostly), with the platform's token or none."""

    @settings(max_examples=10, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case) -> None:
        parameters = case.path_parameters or {}
        if "sectionIdentifier" in parameters and hash(str(case.body)) % 3:
            parameters["sectionIdentifier"] = section
        if "sessionIdentifier" in parameters:
            parameters["sessionIdentifier"] = session_id
        if authorised and not operation.path.endswith("/token"):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {platform.token}"}
        case.call_and_validate(checks=CHECKS)

    return check


def test_every_cat_operation_answers_as_documented(sqlite_url: str) -> None:
    ids = build_world(sqlite_url, n_items=24)
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "SECRET_KEY": "test",
                      "MAX_CONTENT_LENGTH": 64 * 1024})
    world = ApiWorld(app=app, client=app.test_client(), users=ids["users"],
                     test_id=ids["test_id"], class_id=ids["class_id"], items=ids["items"])
    try:
        platform = Platform(world)
        section = platform.create_section({"testId": world.test_id})
        session_id = platform.create_session(section).get_json()["sessionIdentifier"]
        schema = schemathesis.openapi.from_wsgi(f"{BASE}/openapi.json", app)
        # Deleting last, so that the other operations mostly reach the real section.
        operations = sorted((r.ok() for r in schema.get_all_operations()),
                            key=lambda op: op.method.upper() == "DELETE")
        assert len(operations) == 8
        failures = {}
        for operation in operations:
            for authorised in (True, False):
                try:
                    _fuzz(operation, authorised, platform, section, session_id)()
                except Exception as failure:  # collected, so that every operation is reported
                    failures[f"{operation.label} {authorised}"] = str(failure)[:3000]
        assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    finally:
        engine_of(app).dispose()


def test_the_error_reply_names_the_item_within_reason(world: ApiWorld) -> None:
    """A very long item identifier is cut in the description, not echoed whole."""
    platform, section, session_id, _item = _started(world)
    text = _error(platform.submit(section, session_id, tao_score("X" * 5000, 1)), 422)
    assert len(text) < 400 and "XXXX" in text
