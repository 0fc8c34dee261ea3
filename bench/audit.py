"""The audit log's cost: a commit with an entry against one without, and the chain check.

    python -m bench.audit [--entries 100000] [--commits 300]

On SQLite and on PostgreSQL (``TEST_DATABASE_URL``, a scratch database dropped at the end):
the median time of a small commit (a page session's ``last_seen_at`` moved) with and without
one audit entry (the entry adds the chain's row lock, a read of its end and an insert), as a
ratio; then ``--entries`` entries written in batches and :func:`storage.rights.verify_chain`
timed over them (entries per second).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench.databases import postgres_base, scratch_database


def run(url: str, entries: int, commits: int) -> dict[str, float]:
    from sqlalchemy import update

    from storage import make_engine, session_factory, utcnow
    from storage.accounts import PageSession, Role, User
    from storage.migrate import upgrade
    from storage.rights import AuditAction, audit, verify_chain

    engine = make_engine(url)
    upgrade(engine)
    factory = session_factory(engine)
    with factory() as session:
        user = User(username="u", role=Role.STUDENT, password_hash="!")
        session.add(user)
        session.flush()
        session.add(PageSession(token_hash="x" * 64, user_id=user.id))
        session.commit()
        uid = user.id

    def commit(with_entry: bool) -> float:
        start = time.perf_counter()
        with factory() as session:
            session.execute(update(PageSession).values(last_seen_at=utcnow()))
            if with_entry:
                audit(session, AuditAction.REPORT_READ, actor_id=uid, subject_id=uid,
                      object_type="report", detail={"format": "page"})
            session.commit()
        return time.perf_counter() - start

    plain, audited = [], []
    for _ in range(commits):
        plain.append(commit(False))
        audited.append(commit(True))
    batch = 5000
    with factory() as session:
        for start in range(commits, entries, batch):
            for _ in range(min(batch, entries - start)):
                audit(session, AuditAction.SIGN_IN, actor_id=uid, subject_id=uid,
                      detail={"channel": "api"})
            session.commit()
    with factory() as session:
        start = time.perf_counter()
        count, problems = verify_chain(session)
        seconds = time.perf_counter() - start
    assert not problems, problems
    engine.dispose()
    return {"commit_ms": statistics.median(plain) * 1e3,
            "audited_commit_ms": statistics.median(audited) * 1e3,
            "ratio": statistics.median(audited) / statistics.median(plain),
            "entries": count, "verify_s": seconds, "entries_per_s": count / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--commits", type=int, default=300)
    args = parser.parse_args(argv)
    results = {}
    for kind in ("sqlite", "postgresql"):
        if kind == "postgresql" and postgres_base() is None:
            continue
        with scratch_database(kind) as url:
            results[kind] = run(url, args.entries, args.commits)
    print(f"{'database':<11} {'commit ms':>10} {'+ entry ms':>11} {'ratio':>6} "
          f"{'entries':>8} {'verify s':>9} {'entries/s':>10}")
    for name, r in results.items():
        print(f"{name:<11} {r['commit_ms']:>10.2f} {r['audited_commit_ms']:>11.2f} "
              f"{r['ratio']:>6.2f} {r['entries']:>8} {r['verify_s']:>9.2f} "
              f"{r['entries_per_s']:>10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
