"""schemathesis against the OpenAPI document: no generated request makes the server fail.

Every operation is exercised with generated bodies, queries, paths and headers, as an admin
(the widest access, so the deepest code paths) and as a student. The check is that no response
is a server error and that responses match their documented schemas.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from api.app import create_app
from api.db import engine_of
from tests.api.conftest import ApiWorld, build_world


@pytest.fixture
def fuzz_world(sqlite_url: str) -> ApiWorld:
    ids = build_world(sqlite_url, n_items=24)
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "SECRET_KEY": "test",
                      "MAX_CONTENT_LENGTH": 64 * 1024})
    world = ApiWorld(app=app, client=app.test_client(), users=ids["users"],
                     test_id=ids["test_id"], class_id=ids["class_id"], items=ids["items"])
    yield world
    engine_of(app).dispose()


FUZZ = settings(max_examples=12, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def _fuzz(world: ApiWorld, username: str) -> None:
    # schemathesis's own pytest loader does not run under pytest 9, so each operation's
    # strategy is driven with hypothesis directly.
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", world.app)
    headers = {"Authorization": f"Bearer {world.token(username)}"}
    # Signing out would revoke the token the rest of the run uses; it has its own tests.
    operations = [op for op in (r.ok() for r in schema.get_all_operations())
                  if op.label != "DELETE /api/v1/auth/token"]
    assert len(operations) >= 8
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def check(case) -> None:
            case.headers = {**(case.headers or {}), **headers}
            case.call_and_validate(checks=[not_a_server_error])

        check()


def test_no_server_error_as_admin(fuzz_world: ApiWorld) -> None:
    _fuzz(fuzz_world, "admin1")


def test_no_server_error_as_student(fuzz_world: ApiWorld) -> None:
    _fuzz(fuzz_world, "student1")
