"""Request bodies refused before any view: malformed multipart parts and hostile JSON.

Python's parsers accept some input that later code cannot handle: a JSON document nested a
thousand levels deep exhausts the recursion limit, an integer of more than 4,300 digits cannot be
converted, a lone UTF-16 surrogate (``"\\ud800"``) decodes into a string that cannot be encoded
again (for the database or a reply), and a multipart part whose ``name`` is malformed arrives
with no name at all. Each would be a 500 somewhere deep inside; here each is a 400 naming what
is wrong, before authentication or any view runs. Under ``/api/`` the answer is an RFC 9457
problem document, elsewhere a line of text.

The JSON body is parsed once here and checked as a whole (and for NUL characters, which no text
may hold, a 422 as for form fields); views parse it again through webargs, which then cannot fail
in these ways.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask, Response, request

MAX_JSON_DEPTH = 64
MAX_INTEGER_DIGITS = 1000
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class _HugeInteger:
    """What a JSON integer with too many digits parses to, so its path can be named."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits


def _parse_int(text: str) -> int | _HugeInteger:
    digits = len(text.lstrip("-"))
    return _HugeInteger(digits) if digits > MAX_INTEGER_DIGITS else int(text)


class BodyRefused(Exception):
    """A request body refused before any view: ``status``, ``field`` and a ``message``."""

    def __init__(self, message: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message, self.field, self.status = message, field, status


def check_json_body(raw: bytes) -> None:
    """Refuse a JSON body that parses but would break the code that reads it.

    Parameters
    ----------
    raw
        The request body. Bodies that are not valid JSON are left to the views' parser, which
        answers 400 ``Invalid JSON body``.

    Raises
    ------
    BodyRefused
        Nested deeper than :data:`MAX_JSON_DEPTH`, an integer longer than
        :data:`MAX_INTEGER_DIGITS` digits, a lone surrogate (400), or a NUL character (422); the
        error names the place (``json.options[2]``).
    """
    try:
        text = raw.decode("utf-8-sig")
        document = json.loads(text, parse_int=_parse_int)
    except RecursionError:
        raise BodyRefused(f"the JSON body is nested too deeply (at most {MAX_JSON_DEPTH} "
                          "levels of arrays and objects)", "json") from None
    except ValueError:  # not JSON at all (or not UTF-8): the view's parser says so
        return
    surrogates = _SURROGATE_ESCAPE.search(raw) is not None
    # Raw control characters are invalid JSON, so a NUL can only come as the escape \u0000:
    # without it or a surrogate escape no text needs looking at, only nesting and numbers.
    texts = surrogates or b"\\u0000" in raw
    # Paths are built only for containers (and for a value found wrong), not for every value.
    stack: list[tuple[Any, str, int]] = [(document, "json", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            if texts:
                _check_text(value, path, surrogates)
            continue
        if isinstance(value, _HugeInteger):
            raise BodyRefused(f"{path}: a number of {value.digits:,} digits; numbers may have "
                              f"at most {MAX_INTEGER_DIGITS:,}", path)
        if not isinstance(value, (dict, list)):
            continue
        if depth >= MAX_JSON_DEPTH:
            raise BodyRefused(f"the JSON body is nested too deeply at {path} (at most "
                              f"{MAX_JSON_DEPTH} levels of arrays and objects)", path)
        entries = list(value.items()) if isinstance(value, dict) else list(enumerate(value))
        keyed = isinstance(value, dict)
        for key, item in reversed(entries):
            if keyed and texts:
                _check_text(key, f"{path}.{_printable(key)}", surrogates, key=True)
            if isinstance(item, (dict, list, _HugeInteger)) or (texts and isinstance(item, str)):
                here = f"{path}.{_printable(key)}" if keyed else f"{path}[{key}]"
                stack.append((item, here, depth + 1))


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")[:80]


def _check_text(value: str, path: str, surrogates: bool, key: bool = False) -> None:
    what = "a key" if key else "the text"
    if surrogates:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            code = ord(value[error.start])
            raise BodyRefused(f"{path}: {what} holds a lone UTF-16 surrogate (\\u{code:04x}), "
                              "which is not a character; send valid Unicode", path) from None
    if "\x00" in value:
        raise BodyRefused(f"{path}: {what} contains a NUL character (\\0), which no text may "
                          "hold", path, status=422)


def check_multipart() -> None:
    """Refuse a multipart body with a part that has no name (a malformed Content-Disposition).

    Raises
    ------
    BodyRefused
        Naming the problem (400).
    """
    if None in request.files or None in request.form:
        raise BodyRefused("a part of the multipart body has no name: its Content-Disposition "
                          "header is malformed (e.g. a name ending in an escaped quote)",
                          "multipart")


def _refused(error: BodyRefused) -> Response:
    if request.path.startswith("/xapi/"):  # the xAPI spec's errors: JSON, 400 for bad content
        from api.xapi import error as xapi_error

        return xapi_error(400, error.message,
                          [{"field": error.field, "message": error.message}] if error.field
                          else None)
    if request.path.startswith("/ims/cat/"):  # the CAT service's imsx_StatusInfo
        from api.cat_service import status_info

        return status_info(400, error.message, error.field)
    if request.path.startswith("/api/"):
        from api.v1 import problem

        title = "Bad Request" if error.status == 400 else "Unprocessable content"
        errors = [{"field": error.field, "message": error.message}] if error.field else None
        return problem(error.status, title, error.message, errors)
    return Response(error.message, error.status, mimetype="text/plain")


def _check_body() -> Response | None:
    try:
        if request.mimetype == "multipart/form-data":
            check_multipart()
        elif request.is_json:
            check_json_body(request.get_data(cache=True))
    except BodyRefused as error:
        return _refused(error)
    return None


def init_app(app: Flask) -> None:
    """Check every request's body before any other hook or view (register this first)."""
    app.before_request(_check_body)
