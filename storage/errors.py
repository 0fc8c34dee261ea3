"""Errors a service raises, each with the HTTP status it stands for and the field it names.

They live in the lowest shared package so that services in every package above (``item_bank``,
``evidence``, ``reports``, ``api``) raise the same errors, and ``api`` alone turns them into HTTP
problems.
"""

from __future__ import annotations


class ServiceError(ValueError):
    """A request that cannot be carried out, with the HTTP ``status`` it maps to."""

    status = 400
    title = "Bad request"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class Invalid(ServiceError):
    """The request is well formed but its content is wrong (422)."""

    status = 422
    title = "Unprocessable content"


class NotFound(ServiceError):
    """No such resource, or none the caller may see (404)."""

    status = 404
    title = "Not found"


class Forbidden(ServiceError):
    """The caller's role may not do this (403)."""

    status = 403
    title = "Forbidden"


class Conflict(ServiceError):
    """The request clashes with the current state (409)."""

    status = 409
    title = "Conflict"
