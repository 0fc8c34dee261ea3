"""The xAPI 1.0.3 statement as pydantic models, for validation only (the stored body is what was
sent, with the server's properties added).

Why not ralph's models (``ralph-malph``): they are the same kind of pydantic models and strict
enough, but they import ``rfc3987`` (GPL-3.0-or-later) to check IRIs, which an Apache-2.0 runtime
may not depend on (see :mod:`api.licences`). So the models follow the specification here, with
the same engine (pydantic v2), and ralph's ``BaseXapiStatement`` checks them in the tests, where
GPL tools are allowed.

Every object forbids properties the specification does not define (``extra="forbid"``), values
keep their JSON types (strict: ``"true"`` is not a boolean), and the first error names its path
(``verb.id``, ``context.contextActivities.parent[0].id``).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

#: RFC 3987 absolute IRI, as far as a statement needs: a scheme, then no whitespace, control
#: characters or the delimiters IRIs exclude (``<>"{}|\\^`` and the backquote).
_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`\x00-\x1f\x7f]+$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                   r"[0-9a-fA-F]{12}$")
#: RFC 5646 language tag, well-formed (not checked against the registry).
_LANGUAGE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
#: ISO 8601 duration, as xAPI uses it (``PT1.5S``, ``P1DT2H``, ``P3W``).
_DURATION = re.compile(r"^P(?!$)(\d+(\.\d+)?Y)?(\d+(\.\d+)?M)?(\d+(\.\d+)?W)?(\d+(\.\d+)?D)?"
                       r"(T(?=\d)(\d+(\.\d+)?H)?(\d+(\.\d+)?M)?(\d+(\.\d+)?S)?)?$")
_SHA1 = re.compile(r"^[0-9a-fA-F]{40}$")
_VERSION = re.compile(r"^1\.0(\.\d+)?$")


#: The longest IRI stored (the columns that hold verb and activity ids).
MAX_IRI_LENGTH = 2048


def _iri(value: str) -> str:
    if len(value) > MAX_IRI_LENGTH:
        raise ValueError(f"an IRI of {len(value):,} characters; at most {MAX_IRI_LENGTH:,}")
    if not _IRI.match(value):
        raise ValueError("must be an absolute IRI (a scheme such as https:, then no spaces)")
    return value


def _uuid(value: str) -> str:
    if not _UUID.match(value):
        raise ValueError("must be a UUID (8-4-4-4-12 hexadecimal digits)")
    return value


def _language(value: str) -> str:
    if not _LANGUAGE.match(value):
        raise ValueError(f"{value!r} is not an RFC 5646 language tag (e.g. en-US)")
    return value


def _duration(value: str) -> str:
    if not _DURATION.match(value):
        raise ValueError("must be an ISO 8601 duration such as PT1.5S")
    return value


def _timestamp(value: str) -> str:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError("must be an ISO 8601 timestamp such as 2026-01-31T12:00:00Z") from None
    return value


def _mailto(value: str) -> str:
    if not value.startswith("mailto:") or "@" not in value[7:]:
        raise ValueError("must be a mailto: IRI of an e-mail address")
    return value


def _sha1(value: str) -> str:
    if not _SHA1.match(value):
        raise ValueError("must be 40 hexadecimal digits (a SHA-1)")
    return value


IRI = Annotated[str, AfterValidator(_iri)]
UUIDStr = Annotated[str, AfterValidator(_uuid)]
Timestamp = Annotated[str, AfterValidator(_timestamp)]
Duration = Annotated[str, AfterValidator(_duration)]
LanguageMap = dict[Annotated[str, AfterValidator(_language)], str]
Extensions = dict[IRI, Any]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Account(_Model):
    homePage: IRI
    name: str = Field(min_length=1)


class Agent(_Model):
    """An Agent, identified by exactly one of ``mbox``, ``mbox_sha1sum``, ``openid``,
    ``account``."""

    objectType: Literal["Agent"] = "Agent"
    name: str | None = None
    mbox: Annotated[str, AfterValidator(_mailto)] | None = None
    mbox_sha1sum: Annotated[str, AfterValidator(_sha1)] | None = None
    openid: IRI | None = None
    account: Account | None = None

    @model_validator(mode="after")
    def _one_identifier(self) -> Agent:
        given = [n for n in ("mbox", "mbox_sha1sum", "openid", "account")
                 if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("an Agent needs exactly one of mbox, mbox_sha1sum, openid, account"
                             f" (got {', '.join(given) or 'none'})")
        return self


class Group(_Model):
    """A Group: anonymous (with ``member``) or identified (one inverse functional identifier)."""

    objectType: Literal["Group"]
    name: str | None = None
    member: list[Agent] | None = None
    mbox: Annotated[str, AfterValidator(_mailto)] | None = None
    mbox_sha1sum: Annotated[str, AfterValidator(_sha1)] | None = None
    openid: IRI | None = None
    account: Account | None = None

    @model_validator(mode="after")
    def _identified_or_members(self) -> Group:
        given = [n for n in ("mbox", "mbox_sha1sum", "openid", "account")
                 if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError("a Group has at most one of mbox, mbox_sha1sum, openid, account")
        if not given and not self.member:
            raise ValueError("an anonymous Group needs a non-empty member list")
        return self


def _actor_kind(value: Any) -> str:
    return "Group" if isinstance(value, dict) and value.get("objectType") == "Group" else "Agent"


Actor = Annotated[Annotated[Agent, Tag("Agent")] | Annotated[Group, Tag("Group")],
                  Discriminator(_actor_kind)]


class Verb(_Model):
    id: IRI
    display: LanguageMap | None = None


class InteractionComponent(_Model):
    id: str = Field(min_length=1)
    description: LanguageMap | None = None


class ActivityDefinition(_Model):
    name: LanguageMap | None = None
    description: LanguageMap | None = None
    type: IRI | None = None
    moreInfo: IRI | None = None
    extensions: Extensions | None = None
    interactionType: Literal[
        "true-false", "choice", "fill-in", "long-fill-in", "matching", "performance",
        "sequencing", "likert", "numeric", "other"] | None = None
    correctResponsesPattern: list[str] | None = None
    choices: list[InteractionComponent] | None = None
    scale: list[InteractionComponent] | None = None
    source: list[InteractionComponent] | None = None
    target: list[InteractionComponent] | None = None
    steps: list[InteractionComponent] | None = None


class Activity(_Model):
    objectType: Literal["Activity"] = "Activity"
    id: IRI
    definition: ActivityDefinition | None = None


class StatementRef(_Model):
    objectType: Literal["StatementRef"]
    id: UUIDStr


class Score(_Model):
    scaled: float | None = Field(default=None, ge=-1, le=1)
    raw: float | None = None
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Score:
        if self.min is not None and self.max is not None and self.min >= self.max:
            raise ValueError("min must be less than max")
        if self.raw is not None and ((self.min is not None and self.raw < self.min)
                                     or (self.max is not None and self.raw > self.max)):
            raise ValueError("raw must lie between min and max")
        return self


class Result(_Model):
    score: Score | None = None
    success: bool | None = None
    completion: bool | None = None
    response: str | None = None
    duration: Duration | None = None
    extensions: Extensions | None = None


ActivityList = Annotated[
    Annotated[Activity, Tag("one")] | Annotated[list[Activity], Tag("many")],
    Discriminator(lambda value: "many" if isinstance(value, list) else "one")]


class ContextActivities(_Model):
    parent: ActivityList | None = None
    grouping: ActivityList | None = None
    category: ActivityList | None = None
    other: ActivityList | None = None


class Context(_Model):
    registration: UUIDStr | None = None
    instructor: Actor | None = None
    team: Group | None = None
    contextActivities: ContextActivities | None = None
    revision: str | None = None
    platform: str | None = None
    language: Annotated[str, AfterValidator(_language)] | None = None
    statement: StatementRef | None = None
    extensions: Extensions | None = None


class Attachment(_Model):
    usageType: IRI
    display: LanguageMap
    description: LanguageMap | None = None
    contentType: str = Field(min_length=1)
    length: int = Field(ge=0)
    sha2: str = Field(min_length=1)
    fileUrl: IRI  # required here: multipart attachments are not taken


def _object_kind(value: Any) -> str:
    kind = value.get("objectType", "Activity") if isinstance(value, dict) else "Activity"
    return kind if kind in {"Activity", "Agent", "Group", "StatementRef", "SubStatement"} \
        else "Activity"


class SubStatement(_Model):
    objectType: Literal["SubStatement"]
    actor: Actor
    verb: Verb
    object: Annotated[
        Annotated[Activity, Tag("Activity")] | Annotated[Agent, Tag("Agent")]
        | Annotated[Group, Tag("Group")] | Annotated[StatementRef, Tag("StatementRef")],
        Discriminator(_object_kind)]
    result: Result | None = None
    context: Context | None = None
    timestamp: Timestamp | None = None
    attachments: list[Attachment] | None = None


Object = Annotated[
    Annotated[Activity, Tag("Activity")] | Annotated[Agent, Tag("Agent")]
    | Annotated[Group, Tag("Group")] | Annotated[StatementRef, Tag("StatementRef")]
    | Annotated[SubStatement, Tag("SubStatement")],
    Discriminator(_object_kind)]


class Statement(_Model):
    """An xAPI 1.0.3 statement as a client sends it."""

    id: UUIDStr | None = None
    actor: Actor
    verb: Verb
    object: Object
    result: Result | None = None
    context: Context | None = None
    timestamp: Timestamp | None = None
    stored: Timestamp | None = None
    authority: Actor | None = None
    version: str | None = None
    attachments: list[Attachment] | None = None

    @model_validator(mode="after")
    def _rules(self) -> Statement:
        if self.version is not None and not _VERSION.match(self.version):
            raise ValueError("version must be 1.0.x")
        context = self.context
        if context is not None and (context.revision is not None
                                    or context.platform is not None) \
                and not isinstance(self.object, Activity):
            raise ValueError("context.revision and context.platform are allowed only when the "
                             "object is an Activity")
        return self


# Tags of the discriminated unions: pydantic puts them in an error's location; a path does not.
_TAGS = {"Activity", "Agent", "Group", "StatementRef", "SubStatement", "one", "many"}


def error_path(location: tuple[Any, ...]) -> str:
    """A pydantic error location as a field path: ``object.definition.name``, ``a[0].id``.

    A bad key of a map (a language tag) names the map; the message names the key.
    """
    parts: list[str] = []
    for part in location:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part == "[key]":
            parts.pop()
        elif part not in _TAGS:
            parts.append(f".{part}" if parts else str(part))
    return "".join(parts)


def statement_errors(document: Any) -> list[tuple[str, str]]:
    """Validate one statement; returns ``[(path, message), ...]`` (empty when valid)."""
    if not isinstance(document, dict):
        return [("", "a statement must be a JSON object")]
    try:
        Statement.model_validate(document)
    except ValidationError as error:
        out = []
        for entry in error.errors(include_url=False):
            message = entry["msg"].removeprefix("Value error, ")
            if entry["type"] == "extra_forbidden":
                message = "is not a property xAPI 1.0.3 defines here"
            out.append((error_path(entry["loc"]), message))
        return out
    return []


def canonical_uuid(value: str) -> str:
    """A UUID in its lowercase canonical form (UUIDs compare regardless of case)."""
    return str(uuid.UUID(value))
