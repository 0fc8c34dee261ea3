"""A district roster: 50,000 users and 200,000 enrolments, checked and imported, then again.

``python -m bench.roster [--students 48000 --teachers 2000 --schools 20 --per-student 4]``
writes a OneRoster 1.2 zip, then times on a fresh SQLite database (and PostgreSQL when
``TEST_DATABASE_URL`` is set): reading the package, the dry run (plan only), the import
(plan + bulk writes + commit), and a second import of the same roster (everything unchanged).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import tempfile
import time
import uuid
import zipfile

from sqlalchemy import create_engine, text

from evidence import roster
from evidence.oneroster import TABLES, read_package, unpack
from storage import make_engine, session_factory, session_scope
from storage.migrate import upgrade


def _csv(name: str, rows) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    columns = TABLES[name][0]
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c, "") for c in columns])
    return out.getvalue().encode()


def district(students: int, teachers: int, schools: int, per_student: int) -> bytes:
    """The zip of a synthetic district: each teacher teaches five classes."""
    used = ("orgs", "users", "roles", "classes", "enrollments")
    manifest = "propertyName,value\r\nmanifest.version,1.0\r\noneroster.version,1.2\r\n"
    manifest += "".join(f"file.{n},{'bulk' if n in used else 'absent'}\r\n" for n in TABLES)
    orgs = [{"sourcedId": "d", "name": "District", "type": "district"}] + [
        {"sourcedId": f"s{i}", "name": f"School {i}", "type": "school", "parentSourcedId": "d"}
        for i in range(schools)]
    people = ([(f"t{i}", "teacher", f"s{i % schools}") for i in range(teachers)]
              + [(f"u{i}", "student", f"s{i % schools}") for i in range(students)])
    users = [{"sourcedId": sid, "enabledUser": "true", "username": sid, "givenName": "Given",
              "familyName": f"Family {sid}", "primaryOrgSourcedId": org}
             for sid, _role, org in people]
    roles = [{"sourcedId": f"r-{sid}", "userSourcedId": sid, "roleType": "primary",
              "role": role, "orgSourcedId": org} for sid, role, org in people]
    per_teacher = 5
    classes = [{"sourcedId": f"c{t}-{k}", "title": f"Class {k}", "courseSourcedId": "course",
                "classType": "scheduled", "schoolSourcedId": f"s{t % schools}",
                "termSourcedIds": "term"} for t in range(teachers) for k in range(per_teacher)]
    enrol = [{"sourcedId": f"e-t{t}-{k}", "classSourcedId": f"c{t}-{k}",
              "schoolSourcedId": f"s{t % schools}", "userSourcedId": f"t{t}", "role": "teacher",
              "primary": "true"} for t in range(teachers) for k in range(per_teacher)]
    teachers_of = [[t for t in range(teachers) if t % schools == s] for s in range(schools)]
    for i in range(students):
        school = i % schools
        for j in range(per_student):
            t = teachers_of[school][(i // schools + j) % len(teachers_of[school])]
            k = j % per_teacher
            enrol.append({"sourcedId": f"e-u{i}-{j}", "classSourcedId": f"c{t}-{k}",
                          "schoolSourcedId": f"s{school}", "userSourcedId": f"u{i}",
                          "role": "student"})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.csv", manifest)
        for name, rows in (("orgs", orgs), ("users", users), ("roles", roles),
                           ("classes", classes), ("enrollments", enrol)):
            archive.writestr(f"{name}.csv", _csv(name, rows))
    return buffer.getvalue()


def run(url: str, data: bytes) -> dict[str, float]:
    engine = make_engine(url)
    upgrade(engine)
    factory = session_factory(engine)
    timings = {}
    start = time.perf_counter()
    package = read_package(unpack([("district.zip", data)]))
    timings["read"] = time.perf_counter() - start
    assert not package.has_errors, package.problems[:3]
    start = time.perf_counter()
    with session_scope(factory) as session:
        outcome = roster.dry_run(session, None, [("district.zip", data)])
    timings["dry_run"] = time.perf_counter() - start
    for label in ("import", "reimport"):
        start = time.perf_counter()
        with session_scope(factory) as session:
            outcome, _plan = roster.import_now(session, None, [("district.zip", data)])
        timings[label] = time.perf_counter() - start
        assert outcome.applied, outcome.report["problems"][:3]
        timings[f"{label}_counts"] = outcome.report["counts"]
    engine.dispose()
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=48_000)
    parser.add_argument("--teachers", type=int, default=2_000)
    parser.add_argument("--schools", type=int, default=20)
    parser.add_argument("--per-student", type=int, default=4)
    args = parser.parse_args(argv)
    data = district(args.students, args.teachers, args.schools, args.per_student)
    n_enrol = args.students * args.per_student + args.teachers * 5
    print(f"roster: {args.students + args.teachers:,} users, {n_enrol:,} enrolments, "
          f"zip {len(data) / 1e6:.1f} MB")
    targets = []
    with tempfile.TemporaryDirectory() as folder:
        targets.append(("SQLite", f"sqlite:///{folder}/roster.sqlite3"))
        base = os.environ.get("TEST_DATABASE_URL")
        name = f"cat_roster_{uuid.uuid4().hex[:8]}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT") if base else None
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            targets.append(("PostgreSQL", base.rsplit("/", 1)[0] + "/" + name))
        try:
            print("| database | read s | dry run s | import s | second import s |")
            print("|---|---|---|---|---|")
            for label, url in targets:
                t = run(url, data)
                print(f"| {label} | {t['read']:.1f} | {t['dry_run']:.1f} | {t['import']:.1f} "
                      f"| {t['reimport']:.1f} |")
                print(f"<!-- {label} import: {t['import_counts']}; second: "
                      f"{t['reimport_counts']['users']} -->")
        finally:
            if admin is not None:
                with admin.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
