"""schemathesis against the OpenAPI document, as every role: no server error, and every response
as documented.

Every operation is exercised with generated bodies, queries, paths and headers, once per role:
anonymous (no token), student, teacher, assessor and admin (the widest access, so the deepest
code paths). The checks: no response is a server error (5xx), each response's body matches the
schema documented for its status, its status is one documented, and its content type the one
documented. One test per role, so that pytest-xdist spreads them; ``FUZZ_EXAMPLES`` bounds the
examples per operation (the whole file takes about a minute on two cores; set the environment
variable ``FUZZ_EXAMPLES`` higher for a deeper run).

Findings are fixed at their cause and each is pinned by a regular test (the ``test_*`` functions
after the fuzzing).
"""

from __future__ import annotations

import io
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.db import engine_of
from tests.api.conftest import ApiWorld, build_world

ROLES = ("anonymous", "student1", "teacher1", "assessor1", "admin1")
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance,
          content_type_conformance]
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))
#: Signing out would revoke the token the rest of the run uses; it has its own tests.
SKIPPED = {"DELETE /api/v1/auth/token"}


@pytest.fixture
def fuzz_world(sqlite_url: str) -> ApiWorld:
    ids = build_world(sqlite_url, n_items=24)
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "SECRET_KEY": "test",
                      "MAX_CONTENT_LENGTH": 64 * 1024})
    world = ApiWorld(app=app, client=app.test_client(), users=ids["users"],
                     test_id=ids["test_id"], class_id=ids["class_id"], items=ids["items"])
    yield world
    engine_of(app).dispose()


FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def _operations(world: ApiWorld) -> list:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", world.app)
    return [op for op in (r.ok() for r in schema.get_all_operations())
            if op.label not in SKIPPED]


@pytest.mark.parametrize("role", ROLES)
def test_every_operation_as_every_role(fuzz_world: ApiWorld, role: str) -> None:
    # schemathesis's own pytest loader does not run under pytest 9, so each operation's
    # strategy is driven with hypothesis directly.
    # The in-process WSGI transport asks for gzip (requests' default headers) but does not
    # decompress what it gets, as an HTTP client would: ask for the plain body.
    headers = {"Accept-Encoding": "identity"} if role == "anonymous" else {
        "Authorization": f"Bearer {fuzz_world.token(role)}", "Accept-Encoding": "identity"}
    operations = _operations(fuzz_world)
    assert len(operations) >= 100
    failures: dict[str, str] = {}
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def check(case) -> None:
            case.headers = {**(case.headers or {}), **headers}
            case.call_and_validate(checks=CHECKS)

        try:
            check()
        except Exception as failure:  # collected, so that every operation is reported
            failures[operation.label] = str(failure)[:3000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())


# -- the findings, pinned ------------------------------------------------------------------------


def _operation(world: ApiWorld, method: str, path: str):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", world.app)
    return schema[path][method]


def test_an_unreadable_import_file_is_answered_as_documented(fuzz_world: ApiWorld) -> None:
    """The problem document names the file's line and column (extension members ``line``,
    ``location``): the document's Problem schema lists them, so the reply conforms."""
    reply = fuzz_world.call("post", "/api/v1/items/import", "admin1",
                            data={"file": (io.BytesIO(b"{\n"), "file")})
    assert reply.status_code == 422
    body = reply.get_json()
    assert body["line"] == 1 and body["location"] == "{"
    _operation(fuzz_world, "POST", "/api/v1/items/import").validate_response(reply)


def test_a_failed_sign_in_is_answered_as_documented(fuzz_world: ApiWorld) -> None:
    fuzz_world.app.config["SIGN_IN_RATE_LIMIT"] = "1 per minute"
    operation = _operation(fuzz_world, "POST", "/api/v1/auth/token")
    for status in (401, 429):
        reply = fuzz_world.client.post("/api/v1/auth/token",
                                       json={"username": "nobody", "password": "x"})
        assert reply.status_code == status
        assert reply.mimetype == "application/problem+json"
        operation.validate_response(reply)
