"""Every mapped table of the project, imported in one place.

The API sits above every package, so it is where the whole schema is assembled: Alembic's
autogenerate and the schema test compare migrations against :data:`metadata`.
"""

from evidence.models import Attempt, AttemptStatus, Response
from item_bank.models import AdaptiveTest, Item, ItemParameterSet, ItemStatus, ItemTag
from storage import Base
from storage.accounts import AppMeta, Role, User

metadata = Base.metadata

__all__ = [
    "AdaptiveTest",
    "AppMeta",
    "Attempt",
    "AttemptStatus",
    "Item",
    "ItemParameterSet",
    "ItemStatus",
    "ItemTag",
    "Response",
    "Role",
    "User",
    "metadata",
]
