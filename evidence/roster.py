"""OneRoster 1.2 roster imports: schools, students, teachers, classes and enrolments, with no HTTP.

:func:`plan_roster` compares a read package (:mod:`evidence.oneroster`) with the database and
returns a :class:`Plan`: what would be created, updated, left alone or left out, and every
problem, each named by file, line, field and ``sourcedId``. It writes nothing; it reads the
accounts, classes and enrolments once each (a few queries, whatever the roster's size).
:func:`apply_plan` carries a plan out in the caller's transaction with bulk statements, and
records one audit entry with the counts; the caller commits once, so an import is all or
nothing.

Mapping (see docs/decisions.md): orgs of type ``school`` are schools; users whose roles are
``student`` or ``teacher`` are accounts of that role (no password: an administrator sets one,
or they sign in through a learning platform); administrators, guardians and other roles are
reported and left out; classes are classes of their school, taught by their primary teacher;
student enrolments are class memberships. Everything is matched by ``sourcedId``; an account or
school made before the first import is adopted by its username or name when no roster claimed
it yet. ``status=tobedeleted`` (delta files) removes enrolments and deactivates accounts;
nothing a learner did is ever deleted by a roster.

A school's administrator imports their own school only: an org, account or class of another
school is an error naming it. A district administrator (or the command line, ``actor`` None)
imports any school, and creates the schools a roster names.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import zipfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from evidence.classes import USERNAME_PATTERN
from evidence.models import RosterImport
from evidence.oneroster import Package, Problem, Row, read_package, unpack
from storage import as_utc, utcnow
from storage.accounts import (
    AccessAction,
    AccessAudit,
    ApiToken,
    PageSession,
    Role,
    School,
    SchoolClass,
    User,
    UsernameError,
    class_members,
    normalize_username,
)
from storage.errors import Forbidden, Invalid, NotFound
from storage.rights import AuditAction, audit

#: Roster accounts have no password until an administrator sets one (never a hash to guess).
NO_PASSWORD = "!roster"
#: How long a dry run's upload may be applied.
TOKEN_LIFETIME = timedelta(hours=24)
#: Roles of roles.csv that map to accounts here; the others are reported and left out.
ROLE_OF = {"student": Role.STUDENT, "teacher": Role.TEACHER}
ADMIN_ROLES = ("districtAdministrator", "siteAdministrator", "systemAdministrator", "principal")
#: How many problems and examples a report lists (the counts are always complete).
MAX_LISTED = 1000
MAX_EXAMPLES = 20


@dataclass
class Plan:
    """What an import would do. Keys of new records are their ``sourcedId``."""

    package: Package
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    examples: dict[str, dict[str, list]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    new_schools: list[dict[str, Any]] = field(default_factory=list)
    school_updates: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    new_users: list[dict[str, Any]] = field(default_factory=list)
    user_updates: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    new_classes: list[dict[str, Any]] = field(default_factory=list)
    class_updates: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    #: (class key, user key): a key is an id (existing) or a sourcedId (new).
    enrol: list[tuple[int | str, int | str]] = field(default_factory=list)
    unenrol: list[tuple[int, int]] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        """Whether the plan may not be applied."""
        return any(p.severity == "error" for p in self.problems)

    def error(self, file: str, line: int | None, field_: str | None, id_: str | None,
              message: str) -> None:
        self.problems.append(Problem("error", file, line, field_, id_, message))

    def warn(self, file: str, line: int | None, field_: str | None, id_: str | None,
             message: str) -> None:
        self.problems.append(Problem("warning", file, line, field_, id_, message))

    def note(self, kind: str, outcome: str, example: dict[str, Any] | None = None) -> None:
        """Count one outcome (created, updated...) of a kind of record, keeping a few examples."""
        self.counts[kind][outcome] += 1
        if example is not None and len(self.examples[kind][outcome]) < MAX_EXAMPLES:
            self.examples[kind][outcome].append(example)

    def report(self) -> dict[str, Any]:
        """The plan as JSON: modes, counts, examples and problems (errors first)."""
        ordered = sorted(self.problems, key=lambda p: (p.severity != "error", p.file,
                                                       p.line or 0))
        kinds = {"schools": ("created", "updated", "unchanged"),
                 "users": ("created", "updated", "unchanged", "deactivated", "left_out"),
                 "classes": ("created", "updated", "unchanged", "left_out"),
                 "enrolments": ("added", "removed", "unchanged", "left_out")}
        n_errors = sum(p.severity == "error" for p in self.problems)
        return {
            "version": self.package.version,
            "source": self.package.source,
            "modes": dict(sorted(self.package.modes.items())),
            "can_apply": n_errors == 0,
            "counts": {kind: {o: int(self.counts[kind][o]) for o in outcomes}
                       for kind, outcomes in kinds.items()},
            "examples": {kind: {o: list(v) for o, v in outcomes.items()}
                         for kind, outcomes in self.examples.items()},
            "n_errors": n_errors,
            "n_warnings": len(self.problems) - n_errors,
            "problems": [p.as_dict() for p in ordered[:MAX_LISTED]],
            "problems_listed": min(len(ordered), MAX_LISTED),
        }


# -- planning ------------------------------------------------------------------------------------


def _district(actor: User | None) -> bool:
    return actor is None or actor.school_id is None


def _require_admin(actor: User | None) -> None:
    if actor is not None and actor.role != Role.ADMIN:
        raise Forbidden(f"rosters are imported by administrators; you are {actor.role.value}")


class _Context:
    """What the database holds, read once, and the package's rows by ``sourcedId``."""

    def __init__(self, session: Session, package: Package) -> None:
        self.schools = session.scalars(select(School)).all()
        self.school_by_sid = {s.sourced_id: s for s in self.schools if s.sourced_id}
        self.school_by_name = {s.name.lower(): s for s in self.schools}
        self.users = session.execute(select(
            User.id, User.username, User.display_name, User.role, User.school_id,
            User.is_active, User.sourced_id, User.erased_at)).all()
        self.user_by_sid = {u.sourced_id: u for u in self.users if u.sourced_id}
        self.user_by_name = {u.username.lower(): u for u in self.users}
        self.user_by_id = {u.id: u for u in self.users}
        self.classes = session.execute(select(
            SchoolClass.id, SchoolClass.name, SchoolClass.teacher_id, SchoolClass.school_id,
            SchoolClass.sourced_id)).all()
        self.class_by_sid = {c.sourced_id: c for c in self.classes if c.sourced_id}
        self.members: set[tuple[int, int]] = set(map(tuple, session.execute(
            select(class_members.c.class_id, class_members.c.user_id)
            .join(SchoolClass, SchoolClass.id == class_members.c.class_id)
            .where(SchoolClass.sourced_id.is_not(None))).all()))
        self.members_of: dict[int, list[int]] = defaultdict(list)
        for class_id, user_id in sorted(self.members):
            self.members_of[class_id].append(user_id)
        self.rows = {name: {r.sourced_id: r for r in rows}
                     for name, rows in package.rows.items()}
        self.parent = {sid: r.get("parentSourcedId") for sid, r in self.rows.get("orgs",
                                                                                 {}).items()}


def plan_roster(session: Session, actor: User | None, package: Package) -> Plan:
    """Compare ``package`` with the database as ``actor`` (None: the command line) may change it.

    Raises
    ------
    Forbidden
        ``actor`` is not an administrator.
    """
    _require_admin(actor)
    plan = Plan(package, problems=list(package.problems))
    ctx = _Context(session, package)
    org_school = _plan_schools(plan, ctx, actor)
    roles = _plan_roles(plan, ctx, org_school)
    user_role = _plan_users(plan, ctx, actor, org_school, roles)
    teachers, students = _plan_enrollments(plan, ctx, org_school, user_role, roles)
    _plan_classes(plan, ctx, actor, org_school, teachers, students)
    return plan


def _school_of(ctx: _Context, org_school: dict[str, int | str | None], sid: str
               ) -> int | str | None:
    """The school (id, or the sourcedId of a new one) an org is, or None if it is none."""
    if sid in org_school:
        return org_school[sid]
    school = ctx.school_by_sid.get(sid)
    return school.id if school is not None else None


def _known_org(ctx: _Context, sid: str) -> bool:
    return sid in ctx.rows.get("orgs", {}) or sid in ctx.school_by_sid


def _plan_schools(plan: Plan, ctx: _Context, actor: User | None) -> dict[str, int | str | None]:
    org_school: dict[str, int | str | None] = {}
    for sid, row in ctx.rows.get("orgs", {}).items():
        parent = row.get("parentSourcedId")
        if parent and not _known_org(ctx, parent):
            plan.error("orgs.csv", row.line, "parentSourcedId", sid,
                       f"parentSourcedId {parent!r} is no org of the roster")
        if row.get("type") != "school":
            org_school[sid] = None
            continue
        name = row.get("name")[:200]
        school, linked = ctx.school_by_sid.get(sid), False
        if school is None:
            same = ctx.school_by_name.get(name.lower())
            if same is not None and same.sourced_id is None:
                school, linked = same, True
            elif same is not None:
                plan.error("orgs.csv", row.line, "name", sid,
                           f"the school {name!r} exists with another sourcedId "
                           f"({same.sourced_id!r})")
                continue
        if not _district(actor) and (school is None or school.id != actor.school_id):
            plan.error("orgs.csv", row.line, "sourcedId", sid,
                       f"the org {sid!r} ({name}) is not your school: a school's administrator "
                       "imports their own school's roster only")
            continue
        if row.get("status") == "tobedeleted":
            plan.warn("orgs.csv", row.line, "status", sid,
                      "a roster does not delete schools; the school is left as it is")
            org_school[sid] = school.id if school is not None else None
            continue
        example = {"sourcedId": sid, "name": name}
        if school is None:
            plan.new_schools.append({"sourced_id": sid, "name": name})
            org_school[sid] = sid
            plan.note("schools", "created", example)
            continue
        org_school[sid] = school.id
        changes: dict[str, Any] = {"sourced_id": sid} if linked else {}
        if school.name != name:
            other = ctx.school_by_name.get(name.lower())
            if other is not None and other.id != school.id:
                plan.error("orgs.csv", row.line, "name", sid,
                           f"another school is already named {name!r}")
                continue
            changes["name"] = name
        if changes:
            plan.school_updates.append((school.id, changes))
            plan.note("schools", "updated", example | {"changes": sorted(changes)})
        else:
            plan.note("schools", "unchanged")
    return org_school


def _plan_roles(plan: Plan, ctx: _Context, org_school) -> dict[str, list[Row]]:
    """Each user's active roles, after checking their references."""
    roles: dict[str, list[Row]] = defaultdict(list)
    users = ctx.rows.get("users", {})
    for sid, row in ctx.rows.get("roles", {}).items():
        user, org = row.get("userSourcedId"), row.get("orgSourcedId")
        ok = True
        if user not in users and user not in ctx.user_by_sid:
            plan.error("roles.csv", row.line, "userSourcedId", sid,
                       f"userSourcedId {user!r} is no user of the roster")
            ok = False
        if not _known_org(ctx, org):
            plan.error("roles.csv", row.line, "orgSourcedId", sid,
                       f"orgSourcedId {org!r} is no org of the roster")
            ok = False
        if ok and row.get("status") != "tobedeleted":
            roles[user].append(row)
    return roles


def _user_orgs(ctx: _Context, sid: str, roles: dict[str, list[Row]]) -> set[str]:
    orgs = {r.get("orgSourcedId") for r in roles.get(sid, ())}
    row = ctx.rows.get("users", {}).get(sid)
    if row is not None and row.get("primaryOrgSourcedId"):
        orgs.add(row.get("primaryOrgSourcedId"))
    return orgs


def _plan_users(plan: Plan, ctx: _Context, actor: User | None, org_school,
                roles: dict[str, list[Row]]) -> dict[str, Role | None]:
    """Plan accounts; returns each roster user's role here (None: left out)."""
    user_role: dict[str, Role | None] = {}
    left_out: dict[str, list[str]] = defaultdict(list)
    usernames: dict[str, int] = {}
    for sid, row in ctx.rows.get("users", {}).items():
        kinds = {r.get("role") for r in roles.get(sid, ())}
        existing = ctx.user_by_sid.get(sid)
        ours = {ROLE_OF[k] for k in kinds if k in ROLE_OF}
        if len(ours) > 1:
            plan.error("users.csv", row.line, "sourcedId", sid,
                       "the user has both the student and the teacher role in roles.csv; "
                       "an account here has one role")
            user_role[sid] = None
            continue
        if not ours:
            if kinds:
                group = ("administrators" if kinds & set(ADMIN_ROLES) else "others")
                left_out[group].append(sid)
                user_role[sid] = None
                plan.note("users", "left_out")
                continue
            if existing is None or package_mode(plan, "roles") == "bulk":
                plan.error("users.csv", row.line, "sourcedId", sid,
                           "the user has no role in roles.csv")
                user_role[sid] = None
                continue
            role = Role(existing.role)
        else:
            role = ours.pop()
        user_role[sid] = role
        school = _user_school(ctx, org_school, row, roles.get(sid, ()), role)
        if isinstance(school, str) and school.startswith("!"):
            plan.error("users.csv", row.line, "primaryOrgSourcedId", sid, school[1:])
            continue
        username = row.get("username")
        try:
            username = normalize_username(username)
        except UsernameError as error:
            plan.error("users.csv", row.line, "username", sid, str(error))
            continue
        if not USERNAME_PATTERN.match(username):
            plan.error("users.csv", row.line, "username", sid,
                       f"username {username!r} must be 1 to 80 letters, digits or . @ + - _")
            continue
        if username.lower() in usernames:
            plan.error("users.csv", row.line, "username", sid,
                       f"username {username!r} is also on line {usernames[username.lower()]}")
            continue
        usernames[username.lower()] = row.line
        given = row.get("preferredGivenName") or row.get("givenName")
        family = row.get("preferredFamilyName") or row.get("familyName")
        values = {"username": username, "display_name": f"{given} {family}".strip()[:200],
                  "is_active": row.get("enabledUser") == "true"
                  and row.get("status") != "tobedeleted",
                  "school_id": school}
        if not _district(actor) and school != actor.school_id:
            plan.error("users.csv", row.line, "primaryOrgSourcedId", sid,
                       f"user {sid!r} does not belong to your school")
            continue
        linked = False
        if existing is None:
            same = ctx.user_by_name.get(username.lower())
            if same is not None:
                if (same.sourced_id is None and same.role == role and same.erased_at is None
                        and (_district(actor) or same.school_id == actor.school_id)):
                    existing, linked = same, True
                else:
                    plan.error("users.csv", row.line, "username", sid,
                               f"username {username!r} is taken by another account")
                    continue
        example = {"sourcedId": sid, "username": username, "role": role.value}
        if existing is None:
            if row.get("status") == "tobedeleted":
                plan.note("users", "unchanged")
                continue
            plan.new_users.append({"sourced_id": sid, "role": role,
                                   "password_hash": NO_PASSWORD, **values})
            plan.note("users", "created", example)
            continue
        if existing.erased_at is not None:
            plan.warn("users.csv", row.line, "sourcedId", sid,
                      "this person's data was erased; the account is left as it is")
            user_role[sid] = None
            continue
        if Role(existing.role) != role:
            plan.error("users.csv", row.line, "sourcedId", sid,
                       f"the roster says {role.value}; the account {existing.username!r} is "
                       f"{Role(existing.role).value} (a roster never changes a role)")
            continue
        if not _district(actor) and existing.school_id != actor.school_id:
            plan.error("users.csv", row.line, "sourcedId", sid,
                       f"user {sid!r} is an account of another school")
            continue
        if username.lower() != existing.username.lower():
            other = ctx.user_by_name.get(username.lower())
            if other is not None and other.id != existing.id:
                plan.error("users.csv", row.line, "username", sid,
                           f"username {username!r} is taken by another account")
                continue
        changes = {k: v for k, v in values.items() if getattr(existing, k) != v}
        if linked:
            changes["sourced_id"] = sid
        if changes:
            plan.user_updates.append((existing.id, changes))
            outcome = ("deactivated" if changes.get("is_active") is False else "updated")
            plan.note("users", outcome, example | {"changes": sorted(changes)})
        else:
            plan.note("users", "unchanged")
    for group, sids in left_out.items():
        what = ("administrators are not created from a roster: an administrator creates them"
                if group == "administrators" else
                "only students and teachers have accounts here (guardians, aides and other "
                "roles are left out)")
        plan.warn("roles.csv", None, "role", ", ".join(sids[:5]) + (" ..." if len(sids) > 5
                                                                   else ""),
                  f"{len(sids)} user(s) left out: {what}")
    return user_role


def package_mode(plan: Plan, name: str) -> str:
    """The mode of one of the plan's files."""
    return plan.package.mode(name)


def _user_school(ctx: _Context, org_school, row: Row, roles: list[Row], role: Role):
    """A user's school: the org of their primary role (or ``primaryOrgSourcedId``) if it is a
    school; ``"!message"`` when the orgs say nothing usable."""
    candidates = [r.get("orgSourcedId") for r in roles
                  if r.get("roleType") == "primary" and ROLE_OF.get(r.get("role")) == role]
    if row.get("primaryOrgSourcedId"):
        org = row.get("primaryOrgSourcedId")
        if not _known_org(ctx, org):
            return f"!primaryOrgSourcedId {org!r} is no org of the roster"
        candidates.insert(0, org)
    candidates += [r.get("orgSourcedId") for r in roles]
    for org in candidates:
        school = _school_of(ctx, org_school, org)
        if school is not None:
            return school
    return None


def _ancestors(ctx: _Context, org: str) -> set[str]:
    seen = {org}
    while (org := ctx.parent.get(org) or "") and org not in seen:
        seen.add(org)
    return seen


def _plan_enrollments(plan: Plan, ctx: _Context, org_school, user_role, roles):
    """Check enrolments; return each class's teachers and its students' enrolment changes."""
    teachers: dict[str, list[tuple[bool, int, str]]] = defaultdict(list)
    students: dict[str, dict[str, str]] = defaultdict(dict)  # class -> user -> status
    seen: dict[tuple[str, str], int] = {}
    classes = ctx.rows.get("classes", {})
    users = ctx.rows.get("users", {})
    left_out = Counter()
    for sid, row in ctx.rows.get("enrollments", {}).items():
        file, line = "enrollments.csv", row.line
        klass, user = row.get("classSourcedId"), row.get("userSourcedId")
        ok = True
        if klass not in classes and klass not in ctx.class_by_sid:
            plan.error(file, line, "classSourcedId", sid,
                       f"classSourcedId {klass!r} is no class of the roster")
            ok = False
        if user not in users and user not in ctx.user_by_sid:
            plan.error(file, line, "userSourcedId", sid,
                       f"userSourcedId {user!r} is no user of the roster")
            ok = False
        if not ok:
            continue
        kind = row.get("role")
        if kind not in ROLE_OF:
            left_out[kind] += 1
            plan.note("enrolments", "left_out")
            continue
        if user in users:
            role = user_role.get(user)
            if role is None:  # left out, or refused with its own error
                plan.note("enrolments", "left_out")
                continue
        else:
            role = Role(ctx.user_by_sid[user].role)
        if role != ROLE_OF[kind]:
            plan.error(file, line, "role", sid,
                       f"role is {kind}, but user {user!r} is a {role.value}")
            continue
        class_school = (classes[klass].get("schoolSourcedId") if klass in classes else None)
        school_field = row.get("schoolSourcedId")
        if class_school is not None and school_field != class_school:
            plan.error(file, line, "schoolSourcedId", sid,
                       f"schoolSourcedId {school_field!r} is not the school of class "
                       f"{klass!r} ({class_school!r})")
            continue
        if user in users and class_school is not None:
            orgs = _user_orgs(ctx, user, roles)
            if not (_ancestors(ctx, class_school) & orgs):
                plan.error(file, line, "userSourcedId", sid,
                           f"user {user!r} is enrolled in class {klass!r} of org "
                           f"{class_school!r}, an org they do not belong to")
                continue
        elif klass in ctx.class_by_sid or class_school is not None:
            target = (_school_of(ctx, org_school, class_school) if class_school is not None
                      else ctx.class_by_sid[klass].school_id)
            account = ctx.user_by_sid.get(user)
            if account is not None and user not in users and account.school_id != target:
                plan.error(file, line, "userSourcedId", sid,
                           f"user {user!r} is enrolled in class {klass!r} of another school "
                           "than theirs")
                continue
        status = row.get("status") or "active"
        if (klass, user) in seen and status == "active":
            plan.warn(file, line, "sourcedId", sid,
                      f"user {user!r} is already enrolled in class {klass!r} on line "
                      f"{seen[(klass, user)]}; counted once")
            continue
        seen[(klass, user)] = line
        if kind == "teacher":
            if status == "active":
                teachers[klass].append((row.get("primary") == "true", line, user))
        else:
            students[klass][user] = status
    for kind, n in sorted(left_out.items()):
        plan.warn("enrollments.csv", None, "role", None,
                  f"{n} enrolment(s) with the role {kind} left out: only students' and "
                  "teachers' enrolments are imported")
    return teachers, students


def _key(ctx: _Context, sid: str, table: str) -> int | str:
    """An existing record's id, or the sourcedId of a new one."""
    found = (ctx.user_by_sid if table == "users" else ctx.class_by_sid).get(sid)
    return found.id if found is not None else sid


def _plan_classes(plan: Plan, ctx: _Context, actor: User | None, org_school, teachers,
                  students) -> None:
    courses = ctx.rows.get("courses") if plan.package.mode("courses") == "bulk" else None
    terms = (ctx.rows.get("academicSessions")
             if plan.package.mode("academicSessions") == "bulk" else None)
    names_taken: set[tuple[int | str, str]] = {(c.teacher_id, c.name) for c in ctx.classes}
    extra_teachers = 0
    planned_classes: set[str] = set()
    for sid, row in ctx.rows.get("classes", {}).items():
        file, line = "classes.csv", row.line
        school_sid = row.get("schoolSourcedId")
        if not _known_org(ctx, school_sid):
            plan.error(file, line, "schoolSourcedId", sid,
                       f"schoolSourcedId {school_sid!r} is no org of the roster")
            continue
        school = _school_of(ctx, org_school, school_sid)
        if school is None:
            plan.error(file, line, "schoolSourcedId", sid,
                       f"schoolSourcedId {school_sid!r} is not an org of type school")
            continue
        if courses is not None and row.get("courseSourcedId") not in courses:
            plan.error(file, line, "courseSourcedId", sid,
                       f"courseSourcedId {row.get('courseSourcedId')!r} is no course of "
                       "courses.csv")
        if terms is not None:
            for term in filter(None, (t.strip() for t in row.get("termSourcedIds").split(","))):
                if term not in terms:
                    plan.error(file, line, "termSourcedIds", sid,
                               f"term {term!r} is no session of academicSessions.csv")
        existing = ctx.class_by_sid.get(sid)
        if existing is not None and not _district(actor) \
                and existing.school_id != actor.school_id:
            plan.error(file, line, "sourcedId", sid, f"class {sid!r} is of another school")
            continue
        if row.get("status") == "tobedeleted":
            if existing is not None:  # its students leave it; the class and its work stay
                for user_id in ctx.members_of.get(existing.id, ()):
                    plan.unenrol.append((existing.id, user_id))
                    plan.note("enrolments", "removed")
            planned_classes.add(sid)
            plan.note("classes", "unchanged")
            continue
        chosen = sorted(teachers.get(sid, []), key=lambda t: (not t[0], t[1]))
        extra_teachers += max(0, len(chosen) - 1)
        teacher = _key(ctx, chosen[0][2], "users") if chosen else None
        if teacher is None and existing is None:
            plan.warn(file, line, "sourcedId", sid,
                      f"class {sid!r} has no teacher enrolment; a class here needs its "
                      "teacher, so it and its enrolments are left out")
            plan.note("classes", "left_out")
            for _user in students.get(sid, {}):
                plan.note("enrolments", "left_out")
            continue
        if teacher is None:
            teacher = existing.teacher_id
        title = row.get("title")[:200]
        name = title
        own = (existing.teacher_id, existing.name) if existing is not None else None
        for candidate in (title, f"{title} ({row.get('classCode') or sid})"[:200],
                          f"{title} ({sid})"[:200]):
            name = candidate
            if (teacher, candidate) not in names_taken or (teacher, candidate) == own:
                break
        if (teacher, name) in names_taken and (teacher, name) != own:
            plan.error(file, line, "title", sid,
                       f"the teacher already has a class named {title!r}")
            continue
        names_taken.add((teacher, name))
        values = {"name": name, "teacher_id": teacher, "school_id": school}
        example = {"sourcedId": sid, "name": name}
        planned_classes.add(sid)
        if existing is None:
            plan.new_classes.append({"sourced_id": sid, **values})
            plan.note("classes", "created", example)
        else:
            changes = {k: v for k, v in values.items() if getattr(existing, k) != v}
            if changes:
                plan.class_updates.append((existing.id, changes))
                plan.note("classes", "updated", example | {"changes": sorted(changes)})
            else:
                plan.note("classes", "unchanged")
    if extra_teachers:
        plan.warn("enrollments.csv", None, "role", None,
                  f"{extra_teachers} more teacher enrolment(s) left out: a class here has one "
                  "teacher (the primary one, else the first listed)")
    _plan_members(plan, ctx, students, planned_classes)


def _plan_members(plan: Plan, ctx: _Context, students, planned_classes: set[str]) -> None:
    bulk = plan.package.mode("enrollments") == "bulk"
    for klass, wanted in students.items():
        if klass not in planned_classes and klass not in ctx.class_by_sid:
            continue  # left out above (no teacher), or refused
        if klass in ctx.rows.get("classes", {}) and klass not in planned_classes:
            continue  # the class was refused with its own error
        class_key = _key(ctx, klass, "classes")
        for user, status in wanted.items():
            user_key = _key(ctx, user, "users")
            present = (isinstance(class_key, int) and isinstance(user_key, int)
                       and (class_key, user_key) in ctx.members)
            if status == "tobedeleted":
                if present:
                    plan.unenrol.append((class_key, user_key))
                    plan.note("enrolments", "removed")
                continue
            if present:
                plan.note("enrolments", "unchanged")
            else:
                plan.enrol.append((class_key, user_key))
                plan.note("enrolments", "added")
    if bulk:  # a bulk file is the complete set: its classes lose students it does not name
        wanted_ids = defaultdict(set)
        for klass, wanted in students.items():
            for user, status in wanted.items():
                account = ctx.user_by_sid.get(user)
                if account is not None and status == "active":
                    wanted_ids[klass].add(account.id)
        for klass in planned_classes:
            existing = ctx.class_by_sid.get(klass)
            if existing is None or ctx.rows["classes"][klass].get("status") == "tobedeleted":
                continue
            for user_id in ctx.members_of.get(existing.id, ()):
                if user_id not in wanted_ids[klass]:
                    plan.unenrol.append((existing.id, user_id))
                    plan.note("enrolments", "removed")


# -- applying ------------------------------------------------------------------------------------


def apply_plan(session: Session, actor: User | None, plan: Plan,
               import_id: int | None = None) -> dict[str, Any]:
    """Carry ``plan`` out in the session's transaction (the caller commits once).

    Writes with bulk statements: new schools, accounts and classes; changed ones; enrolments
    added and removed (each in ``access_audit``, as every enrolment change is); deactivated
    accounts lose their sign-in tokens and sessions. One audit entry records the counts.

    Raises
    ------
    Invalid
        The plan has errors.
    """
    if plan.has_errors:
        raise Invalid("the roster has errors; nothing was imported", field="file")
    actor_id = actor.id if actor is not None else None
    new_school_ids: dict[str, int] = {}
    for values in plan.new_schools:
        school = School(**values)
        session.add(school)
        session.flush()
        new_school_ids[values["sourced_id"]] = school.id

    def school_id(value):
        return new_school_ids.get(value, value) if isinstance(value, str) else value

    for school_id_, changes in plan.school_updates:
        session.execute(update(School).where(School.id == school_id_).values(**changes))
    if plan.new_users:
        session.execute(insert(User.__table__), [
            {**u, "school_id": school_id(u["school_id"])} for u in plan.new_users])
    if plan.user_updates:
        session.execute(update(User), [
            {"id": user_id, **{k: (school_id(v) if k == "school_id" else v)
                               for k, v in changes.items()}}
            for user_id, changes in plan.user_updates])
        gone = [i for i, changes in plan.user_updates if changes.get("is_active") is False]
        for start in range(0, len(gone), 5000):
            chunk = gone[start:start + 5000]
            session.execute(delete(ApiToken).where(ApiToken.user_id.in_(chunk)))
            session.execute(delete(PageSession).where(PageSession.user_id.in_(chunk)))
    user_ids = dict(session.execute(select(User.sourced_id, User.id)
                                    .where(User.sourced_id.is_not(None))).all())

    def ids(key, table: dict[str, int]) -> int:
        return table[key] if isinstance(key, str) else key

    now, access = utcnow(), []
    if plan.new_classes:
        session.execute(insert(SchoolClass.__table__), [
            {**c, "teacher_id": ids(c["teacher_id"], user_ids),
             "school_id": school_id(c["school_id"]), "created_at": now}
            for c in plan.new_classes])
    if plan.class_updates:
        old_teacher = dict(session.execute(select(SchoolClass.id, SchoolClass.teacher_id).where(
            SchoolClass.id.in_([i for i, _c in plan.class_updates]))).all())
        rows = []
        for class_id, changes in plan.class_updates:
            changes = dict(changes)
            if "teacher_id" in changes:
                changes["teacher_id"] = ids(changes["teacher_id"], user_ids)
                access.append({"at": now, "actor_id": actor_id,
                               "action": AccessAction.CLASS_TEACHER, "class_id": class_id,
                               "student_id": None,
                               "before": {"teacher_id": old_teacher.get(class_id)},
                               "after": {"teacher_id": changes["teacher_id"], "roster": True}})
            if "school_id" in changes:
                changes["school_id"] = school_id(changes["school_id"])
            rows.append({"id": class_id, **changes})
        session.execute(update(SchoolClass), rows)
    class_ids = dict(session.execute(select(SchoolClass.sourced_id, SchoolClass.id)
                                     .where(SchoolClass.sourced_id.is_not(None))).all())
    added = {(ids(c, class_ids), ids(u, user_ids)) for c, u in plan.enrol}
    for start in range(0, len(touched := sorted({c for c, _u in added})), 5000):
        added -= set(map(tuple, session.execute(
            select(class_members.c.class_id, class_members.c.user_id)
            .where(class_members.c.class_id.in_(touched[start:start + 5000]))).all()))
    added = sorted(added)
    removed = sorted(set(plan.unenrol))
    if added:
        session.execute(insert(class_members), [{"class_id": c, "user_id": u}
                                                for c, u in added])
    if removed:
        session.execute(delete(class_members).where(
            class_members.c.class_id == bindparam("c"), class_members.c.user_id == bindparam("u")),
            [{"c": c, "u": u} for c, u in removed])
    access += [{"at": now, "actor_id": actor_id, "action": AccessAction.ENROL, "class_id": c,
                "student_id": u, "before": {"enrolled": False},
                "after": {"enrolled": True, "roster": True}} for c, u in added]
    access += [{"at": now, "actor_id": actor_id, "action": AccessAction.UNENROL, "class_id": c,
                "student_id": u, "before": {"enrolled": True},
                "after": {"enrolled": False, "roster": True}} for c, u in removed]
    if access:
        session.execute(insert(AccessAudit.__table__), access)
    report = plan.report()
    counts = report["counts"]
    deactivated = [i for i, changes in plan.user_updates if changes.get("is_active") is False]
    audit(session, AuditAction.ROSTER_IMPORT, actor_id=actor_id, object_type="roster_import",
          object_id=import_id or "", detail={
              "counts": counts, "modes": report["modes"], "source": plan.package.source,
              "deactivated_user_ids": deactivated[:1000], "n_warnings": report["n_warnings"]})
    session.flush()
    return report


# -- uploads between the dry run and the application ---------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _as_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            archive.writestr(f"{name}.csv", data)
    return buffer.getvalue()


@dataclass(frozen=True)
class Outcome:
    """A dry run or an application: the plan's report and, for a dry run that may be applied,
    the token that applies it."""

    report: dict[str, Any]
    import_id: int
    token: str | None = None
    applied: bool = False


def dry_run(session: Session, actor: User | None, uploads: list[tuple[str, bytes]],
            filename: str = "") -> Outcome:
    """Read and plan an upload; keep it, under a token, when it may be applied.

    Raises
    ------
    Forbidden
        ``actor`` is not an administrator.
    evidence.oneroster.PackageError
        The upload is no zip or CSV, or holds too much.
    """
    _require_admin(actor)
    _expire(session)
    files = unpack(uploads)
    plan = plan_roster(session, actor, read_package(files))
    report = plan.report()
    token = secrets.token_urlsafe(24) if not plan.has_errors else None
    record = RosterImport(token_hash=_hash(token or secrets.token_hex(32)),
                          created_by=actor.id if actor is not None else None,
                          filename=filename[:255], summary={"dry_run": report["counts"]},
                          content=_as_zip(files) if token else None)
    session.add(record)
    session.flush()
    return Outcome(report | {"import_id": record.id}, record.id, token)


def import_now(session: Session, actor: User | None, uploads: list[tuple[str, bytes]],
               filename: str = "") -> tuple[Outcome, Plan]:
    """Read, plan and (when it has no errors) apply an upload in the session's transaction.

    Returns the outcome and the plan; ``outcome.applied`` is false when the plan has errors
    (nothing is written then but the record of the attempt).
    """
    _require_admin(actor)
    files = unpack(uploads)
    plan = plan_roster(session, actor, read_package(files))
    record = RosterImport(token_hash=_hash(secrets.token_hex(32)),
                          created_by=actor.id if actor is not None else None,
                          filename=filename[:255], summary={})
    session.add(record)
    session.flush()
    if plan.has_errors:
        return Outcome(plan.report() | {"import_id": record.id}, record.id), plan
    report = apply_plan(session, actor, plan, record.id)
    record.summary, record.applied_at = {"applied": report["counts"]}, utcnow()
    return Outcome(report | {"import_id": record.id}, record.id, applied=True), plan


def apply_token(session: Session, actor: User | None, token: str) -> tuple[Outcome, Plan]:
    """Apply the upload a dry run kept under ``token``, planned again against the database as
    it is now (it may have changed since the dry run).

    Raises
    ------
    NotFound
        No such token, one of another administrator, one already applied or expired.
    """
    _require_admin(actor)
    record = session.scalar(select(RosterImport).where(
        RosterImport.token_hash == _hash(token or "")).with_for_update())
    if (record is None or record.content is None or record.applied_at is not None
            or record.created_by != (actor.id if actor is not None else None)
            or as_utc(record.created_at) < utcnow() - TOKEN_LIFETIME):
        raise NotFound("no roster upload waits under this token (it was applied, it expired "
                       "after 24 hours, or another administrator uploaded it): upload the "
                       "roster again", field="token")
    with zipfile.ZipFile(io.BytesIO(record.content)) as archive:
        files = {m.filename[:-4]: archive.read(m) for m in archive.infolist()}
    plan = plan_roster(session, actor, read_package(files))
    if plan.has_errors:
        return Outcome(plan.report() | {"import_id": record.id}, record.id), plan
    report = apply_plan(session, actor, plan, record.id)
    record.summary = {**(record.summary or {}), "applied": report["counts"]}
    record.applied_at, record.content = utcnow(), None
    return Outcome(report | {"import_id": record.id}, record.id, applied=True), plan


def _expire(session: Session) -> None:
    """Delete the content of dry runs older than the token's lifetime."""
    session.execute(update(RosterImport).where(
        RosterImport.content.is_not(None),
        RosterImport.created_at < utcnow() - TOKEN_LIFETIME).values(content=None))


def recent_imports(session: Session, actor: User, limit: int = 20) -> list[RosterImport]:
    """The latest imports the administrator ``actor`` made (newest first)."""
    return list(session.scalars(select(RosterImport)
                                .where(RosterImport.created_by == actor.id)
                                .order_by(RosterImport.id.desc()).limit(limit)))


def count_rostered(session: Session) -> dict[str, int]:
    """How many schools, accounts and classes a roster made or matched."""
    return {name: session.scalar(select(func.count()).where(model.sourced_id.is_not(None))
                                 .select_from(model)) or 0
            for name, model in (("schools", School), ("users", User),
                                ("classes", SchoolClass))}
