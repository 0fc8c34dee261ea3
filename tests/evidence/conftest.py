"""A school for the evidence services: the API tests' world (students, two classes, a bank with
the skills algebra, geometry and statistics) copied from a template, and a file store."""

from __future__ import annotations

import pytest

from evidence.files import FileStore
from storage import make_engine, session_factory
from storage.accounts import User
from tests.api.conftest import (  # noqa: F401  (_world_templates: the API tests' fixture)
    _fill_from_template,
    _world_templates,
)


class School:
    """A session on the filled database, its ids, and a file store in a temporary directory."""

    def __init__(self, url: str, ids: dict, store: FileStore) -> None:
        self.engine = make_engine(url)
        self.session = session_factory(self.engine)()
        self.ids = ids
        self.store = store
        self.url = url

    def user(self, name: str) -> User:
        return self.session.get(User, self.ids["users"][name])


@pytest.fixture
def school(any_db_url: str, _world_templates, tmp_path) -> School:  # noqa: F811
    ids = _fill_from_template(any_db_url, _world_templates)
    world = School(any_db_url, ids, FileStore(tmp_path / "files", max_file_bytes=4096,
                                              quota_bytes=10_000))
    yield world
    world.session.close()
    world.engine.dispose()
