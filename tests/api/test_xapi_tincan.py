"""A real xAPI client library (``tincan``, Apache-2.0, from PyPI) against the LRS served on a
loopback port: it saves statements one by one and in a batch, retrieves one, queries with
filters, follows ``more`` and reads a voided statement, as a learning tool would."""

from __future__ import annotations

import uuid

import pytest
from tincan import (
    Activity,
    ActivityDefinition,
    Agent,
    AgentAccount,
    Context,
    LanguageMap,
    RemoteLRS,
    Result,
    Statement,
    StatementRef,
    Verb,
)

from api.app import create_app
from api.db import engine_of
from item_bank.services import DELIVERIES
from tests.api.conftest import ApiWorld, _fill_from_template
from tests.conftest import LiveServer

SITE = "https://school.example"


@pytest.fixture
def served(sqlite_url: str, _world_templates):
    ids = _fill_from_template(sqlite_url, _world_templates)
    DELIVERIES.clear()
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "SECRET_KEY": "test",
                      "PUBLIC_URL": SITE})
    world = ApiWorld(app=app, client=app.test_client(), users=ids["users"],
                     test_id=ids["test_id"], class_id=ids["class_id"],
                     other_class_id=ids["other_class_id"], items=ids["items"])
    with LiveServer(app) as server:
        yield world, server
    engine_of(app).dispose()


def _verb(name: str) -> Verb:
    return Verb(id=f"http://adlnet.gov/expapi/verbs/{name}", display=LanguageMap({"en-US": name}))


def test_tincan_saves_queries_pages_and_voids(served) -> None:
    world, server = served
    issued = world.call("post", "/api/v1/xapi/clients", "teacher1",
                        json={"name": "Fractions game", "class_id": world.class_id}).get_json()
    pseudonym = world.call("get", "/api/v1/me", "student1").get_json()["pseudonym"]
    lrs = RemoteLRS(endpoint=f"{server.url}/xapi/", username=issued["key"],
                    password=issued["secret"], version="1.0.3")

    about = lrs.about()
    assert about.success and "1.0.3" in about.content.version

    student = Agent(account=AgentAccount(home_page=SITE, name=pseudonym))
    registration = str(uuid.uuid4())
    game = Activity(id="https://game.example/fractions/level-1",
                    definition=ActivityDefinition(name=LanguageMap({"en-US": "Level 1"})))
    first = Statement(actor=student, verb=_verb("attempted"), object=game,
                      context=Context(registration=registration))
    saved = lrs.save_statement(first)
    assert saved.success, saved.data
    assert saved.content.id is not None

    batch = [Statement(actor=student, verb=_verb("answered"), object=Activity(
        id=f"https://game.example/fractions/q{k}"), result=Result(success=k % 2 == 0,
                                                                 response=str(k)),
        context=Context(registration=registration)) for k in range(5)]
    stored = lrs.save_statements(batch)
    assert stored.success, stored.data
    assert all(s.id is not None for s in stored.content)

    fetched = lrs.retrieve_statement(saved.content.id)
    assert fetched.success
    assert fetched.content.verb.id == "http://adlnet.gov/expapi/verbs/attempted"
    assert fetched.content.actor.account.name == pseudonym
    assert fetched.content.authority is not None and fetched.content.stored is not None

    query = lrs.query_statements({"registration": registration, "limit": 4,
                                  "verb": _verb("answered")})
    assert query.success, query.data
    seen = [str(s.id) for s in query.content.statements]
    assert len(seen) == 4 and query.content.more
    more = lrs.more_statements(query.content)
    assert more.success, more.data
    seen += [str(s.id) for s in more.content.statements]
    assert seen == [str(s.id) for s in reversed(stored.content)]

    by_agent = lrs.query_statements({"agent": student, "limit": 100})
    assert len(by_agent.content.statements) == 6

    void = Statement(actor=student, verb=_verb("voided"),
                     object=StatementRef(id=saved.content.id))
    assert lrs.save_statement(void).success
    assert not lrs.retrieve_statement(saved.content.id).success
    voided = lrs.retrieve_voided_statement(saved.content.id)
    assert voided.success and str(voided.content.id) == str(saved.content.id)

    # a statement about a student of another class is refused, and nothing is stored
    other = world.call("get", f"/api/v1/users/{world.users['student3']}", "admin1").get_json()
    outsider = Statement(actor=Agent(account=AgentAccount(home_page=SITE,
                                                          name=other["pseudonym"])),
                         verb=_verb("attempted"), object=game)
    refused = lrs.save_statement(outsider)
    assert not refused.success and refused.response.status == 403
