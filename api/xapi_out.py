"""xAPI out, the HTTP side: the deployment's key for LRS secrets, the sender's settings, and
waking the sender after a commit that stored statements.

The rules live in :mod:`evidence.xapi_forwarding`. Settings (the app's configuration, else the
environment):

``XAPI_OUT_KEY``
    Key material for the LRS secrets at rest (any long random text). Unset: the app's
    ``SECRET_KEY`` (``instance/secret_key`` when that is unset too). Changing it makes the
    stored secrets unreadable: each school's administrator enters theirs again.
``CAT_ENGINE_XAPI_OUT_BACKOFF``
    Seconds before the first retry of a failed post (default 30; it doubles per try, up to six
    hours).
``CAT_ENGINE_XAPI_OUT_TIMEOUT``
    Seconds a post may take (default 10).

After a commit that stored statements, while some school has an enabled LRS, the request puts
one ``forward_statements`` task on the job queue (:mod:`api.jobs`); the worker posts what is due
and schedules itself for the next retry. ``cat-engine xapi forward`` does the same from cron.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from evidence.models import XapiLrs
from evidence.statements import STORED_FLAG
from evidence.xapi_forwarding import DEFAULT_BACKOFF, DEFAULT_TIMEOUT, SecretBox

logger = logging.getLogger(__name__)

_KICK = "xapi_out_kick"
#: How long the answer "some school has an enabled LRS" is reused (seconds).
ENABLED_CACHE_SECONDS = 5.0
_enabled_cache: dict[str, tuple[float, bool]] = {}


def _instance_key(instance: Path) -> str:
    path = instance / "secret_key"
    return path.read_text().strip() if path.exists() else ""


def secret_box(config: Mapping[str, Any] | None = None) -> SecretBox:
    """The :class:`SecretBox` of this deployment: ``XAPI_OUT_KEY``, else ``SECRET_KEY`` (from
    ``config`` when given, else the environment, else ``instance/secret_key``)."""
    config = config or {}
    material = (config.get("XAPI_OUT_KEY") or os.environ.get("XAPI_OUT_KEY")
                or config.get("SECRET_KEY") or os.environ.get("SECRET_KEY"))
    if not material:
        instance = Path(os.environ.get("CAT_ENGINE_INSTANCE", "instance")).resolve()
        material = _instance_key(instance)
    if not material:
        raise RuntimeError("xAPI out needs key material: set XAPI_OUT_KEY (or SECRET_KEY)")
    return SecretBox(material)


def _float_env(name: str, default: float) -> float:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise RuntimeError(f"{name} must be a number of seconds, not {value!r}") from None
    if not number > 0:
        raise RuntimeError(f"{name} must be more than 0 seconds")
    return number


def sender_settings(config: Mapping[str, Any] | None = None) -> dict[str, float]:
    """``backoff`` and ``timeout`` of the sender (seconds), from ``config`` or the
    environment."""
    config = config or {}
    return {"backoff": float(config.get("XAPI_OUT_BACKOFF")
                             or _float_env("CAT_ENGINE_XAPI_OUT_BACKOFF", DEFAULT_BACKOFF)),
            "timeout": float(config.get("XAPI_OUT_TIMEOUT")
                             or _float_env("CAT_ENGINE_XAPI_OUT_TIMEOUT", DEFAULT_TIMEOUT))}


def _some_lrs_enabled(session: Session) -> bool:
    key = str(session.get_bind().url)
    now = time.monotonic()
    cached = _enabled_cache.get(key)
    if cached is not None and now - cached[0] < ENABLED_CACHE_SECONDS:
        return cached[1]
    enabled = session.scalar(select(XapiLrs.id).where(XapiLrs.enabled.is_(True)).limit(1))
    _enabled_cache[key] = (now, enabled is not None)
    return enabled is not None


def forget_enabled_cache() -> None:
    """Drop the cached answer (after an LRS is configured)."""
    _enabled_cache.clear()


@event.listens_for(Session, "before_commit")
def _note_kick(session: Session) -> None:
    if session.info.pop(STORED_FLAG, False) and has_app_context() \
            and _some_lrs_enabled(session):
        session.info[_KICK] = True


@event.listens_for(Session, "after_soft_rollback")
def _drop_kick(session: Session, _previous) -> None:
    session.info.pop(STORED_FLAG, None)
    session.info.pop(_KICK, None)


@event.listens_for(Session, "after_commit")
def _kick(session: Session) -> None:
    if not session.info.pop(_KICK, False) or not has_app_context():
        return
    try:
        enqueue_forward(current_app)
    except Exception:  # the statements are stored and their rows wait: cron sends them
        logger.exception("could not put the xAPI forwarding task on the job queue")


def enqueue_forward(app: Flask) -> None:
    """Put one ``forward_statements`` task on the app's job queue (immediate mode: run it)."""
    from api import jobs
    from api.db import engine_of

    url = jobs.queue_url(app.config.get("HUEY_URL"), app.instance_path)
    database_url = engine_of(app).url.render_as_string(hide_password=False)
    jobs.get_queue(url).forward(database_url)
