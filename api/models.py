"""Every mapped table of the project, imported in one place.

The API sits above every package, so it is where the whole schema is assembled: Alembic's
autogenerate and the schema test compare migrations against :data:`metadata`.
"""

from evidence.models import (
    Assignment,
    Attempt,
    AttemptStatus,
    Draft,
    DraftComment,
    DraftFile,
    Response,
    Statement,
    StatementActivity,
    StoredFile,
    Task,
    XapiClient,
)
from item_bank.models import (
    AdaptiveTest,
    BankSnapshot,
    CalibrationRun,
    ImportStatus,
    Item,
    ItemExposure,
    ItemImport,
    ItemParameterSet,
    ItemStatus,
    ItemStatusEvent,
    ItemTag,
    ItemVersion,
    ResponseUpload,
    RunStatus,
)
from reports.models import (
    Appeal,
    AppealAnswer,
    LearningResource,
    MasteryDecision,
    ReportJob,
)
from storage import Base
from storage.accounts import (
    Accommodation,
    ApiToken,
    AppMeta,
    Role,
    SchoolClass,
    TimeAccommodation,
    User,
)

metadata = Base.metadata

__all__ = [
    "Accommodation",
    "AdaptiveTest",
    "ApiToken",
    "AppMeta",
    "Appeal",
    "AppealAnswer",
    "Assignment",
    "Attempt",
    "AttemptStatus",
    "BankSnapshot",
    "CalibrationRun",
    "Draft",
    "DraftComment",
    "DraftFile",
    "ImportStatus",
    "Item",
    "ItemExposure",
    "ItemImport",
    "ItemParameterSet",
    "ItemStatus",
    "ItemStatusEvent",
    "ItemTag",
    "ItemVersion",
    "LearningResource",
    "MasteryDecision",
    "ReportJob",
    "Response",
    "ResponseUpload",
    "Role",
    "RunStatus",
    "SchoolClass",
    "Statement",
    "StatementActivity",
    "StoredFile",
    "Task",
    "TimeAccommodation",
    "User",
    "XapiClient",
    "metadata",
]
