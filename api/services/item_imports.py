"""Large item imports, carried out by a background worker, all or nothing.

A request that uploads more than ``ITEM_IMPORT_SYNC_LIMIT`` records (default
:data:`SYNC_LIMIT`) gets a ``202`` and an :class:`~item_bank.models.ItemImport` to poll; smaller
files are imported in the request, as before. The worker (:func:`run_item_import`):

1. claims the import (``queued`` -> ``running``) in one short transaction;
2. stages it without writing: parses the file, reads the bank's existing items in chunks, and
   checks every record with the bank's own checks, building the rows to insert;
3. publishes it in one transaction: new items go in with one executemany INSERT per table
   (:func:`item_bank.importing.insert_new_items`), so the write lock is held a few seconds for
   30,000 items instead of the whole import; the import is marked ``succeeded`` in the same
   transaction. Updates of existing items (``mode=upsert``) still go through the ORM, item by
   item, inside that transaction.

Any refused record fails the import with every problem listed (line, item, field) and nothing
of the file in the bank: the publishing transaction is never begun, or is rolled back.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from item_bank.importing import ExistingItems, ImportRejected, apply_import, read_upload
from item_bank.interchange import InterchangeError
from item_bank.models import ImportStatus, ItemImport
from item_bank.services import BankError
from storage import as_utc, make_engine, session_factory, utcnow

SYNC_LIMIT = 1000
#: A running import not finished after this long lost its worker (30,000 items take seconds).
STALLED_AFTER = timedelta(minutes=30)
logger = logging.getLogger(__name__)


def create_import(session: Session, *, data: bytes, filename: str, mode: str,
                  skill: str | None, n_records: int, user_id: int | None) -> ItemImport:
    """Record an import for the worker (the caller commits, then enqueues it)."""
    job = ItemImport(filename=(filename or "")[:255], mode=mode, skill=skill, content=data,
                     n_records=n_records, status=ImportStatus.QUEUED,
                     message="waiting for a worker", created_by=user_id)
    session.add(job)
    session.flush()
    return job


def reap_stalled(session: Session, job: ItemImport, now: datetime | None = None) -> bool:
    """Mark ``job`` failed when it has been running longer than :data:`STALLED_AFTER`: its
    worker died (killed, machine lost) before committing, so nothing of it is in the bank.

    Returns whether it was marked (the caller commits).
    """
    now = now or utcnow()
    started = as_utc(job.started_at)
    if job.status != ImportStatus.RUNNING or started is None or now - started < STALLED_AFTER:
        return False
    job.status, job.content, job.finished_at = ImportStatus.FAILED, None, now
    job.error = (f"the worker ({job.worker or 'unknown'}) stopped before finishing; nothing "
                 "was imported: upload the file again")
    job.message = "nothing was imported"
    return True


def _problems(error: Exception) -> list[dict[str, Any]]:
    if isinstance(error, (ExistingItems, ImportRejected)):
        return [dict(p) for p in error.problems]
    if isinstance(error, InterchangeError):
        return [{"field": "file", "message": text, "line": error.line if n == 0 else None}
                for n, text in enumerate(error.problems)]
    return [{"field": getattr(error, "field", None) or "file", "message": str(error)}]


def run_item_import(import_id: int, database_url: str | None = None) -> str:
    """Carry out import ``import_id`` on the database at ``database_url`` (see the module notes).

    Returns
    -------
    str
        The import's final status (``succeeded``, ``failed``), or ``skipped`` when it was not
        ``queued`` (run already, or taken by another worker), ``missing`` when there is none.
    """
    from api.jobs import worker_name

    engine = make_engine(database_url)
    factory = session_factory(engine)
    try:
        with factory() as session:
            claimed = session.execute(
                update(ItemImport)
                .where(ItemImport.id == import_id, ItemImport.status == ImportStatus.QUEUED)
                .values(status=ImportStatus.RUNNING, started_at=utcnow(), worker=worker_name(),
                        message="checking the records"))
            session.commit()
            if claimed.rowcount != 1:
                found = session.get(ItemImport, import_id)
                return "missing" if found is None else "skipped"
        with factory() as session:
            job = session.get(ItemImport, import_id)
            try:
                upload = read_upload(job.content or b"", job.filename)
                summary = apply_import(session, upload, mode=job.mode, user_id=job.created_by,
                                       default_skill=job.skill)
            except (InterchangeError, BankError) as error:
                session.rollback()
                job = session.get(ItemImport, import_id)
                label = job.filename or "the file"
                job.status, job.problems = ImportStatus.FAILED, _problems(error)
                job.error = f"{label}: {error}"
                job.message = "nothing was imported"
            except Exception as error:  # a bug or the database: the worker's log has the trace
                logger.exception("item import %s failed", import_id)
                session.rollback()
                job = session.get(ItemImport, import_id)
                job.status = ImportStatus.FAILED
                job.error = f"the import stopped: {type(error).__name__}: {error}"[:2000]
                job.message = "nothing was imported"
            else:
                result = summary.as_dict()
                job.status, job.result = ImportStatus.SUCCEEDED, result
                job.message = (f"{result['created']} created, {result['updated']} updated, "
                               f"{result['unchanged']} unchanged")
            job.content = None  # the bank has what it needed of the file
            job.finished_at = utcnow()
            session.commit()  # the items and the verdict together
            return job.status.value
    finally:
        engine.dispose()
