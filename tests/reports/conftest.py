"""Fixtures of the report tests: the evidence tests' school (the API tests' world: students,
two classes, a bank with the skills algebra, geometry and statistics, a test "Maths")."""

from tests.api.conftest import _world_templates  # noqa: F401
from tests.evidence.conftest import School, school  # noqa: F401
