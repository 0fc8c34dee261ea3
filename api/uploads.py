"""Files over HTTP: the store the app is configured with, uploads read from a request, and
downloads answered safely.

Configuration: ``FILES_DIR`` (where the content lives), ``FILES_MAX_BYTES`` (per file, 10 MB
by default) and ``FILES_QUOTA_BYTES`` (per student, 100 MB). A request body is also bound by
``MAX_CONTENT_LENGTH`` (16 MB): a version whose files together exceed it is refused with 413.

A download carries the media type judged when the file was stored, never one derived from its
name; ``X-Content-Type-Options: nosniff``; a Content-Security-Policy that lets the browser run
nothing (``default-src 'none'; sandbox``), so even a file that fooled the sniffing could not
script the site; and ``Content-Disposition: attachment`` for everything but images and audio,
which are shown inline.
"""

from __future__ import annotations

from flask import current_app, request, send_file
from flask.wrappers import Response

from evidence.files import INLINE, MAX_FILE_BYTES, STUDENT_QUOTA_BYTES, FileStore, Upload
from evidence.models import StoredFile
from storage.errors import NotFound

DOWNLOAD_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox"


def file_store() -> FileStore:
    """The app's file store, with its configured limits."""
    config = current_app.config
    return FileStore(config["FILES_DIR"],
                     max_file_bytes=int(config.get("FILES_MAX_BYTES", MAX_FILE_BYTES)),
                     quota_bytes=int(config.get("FILES_QUOTA_BYTES", STUDENT_QUOTA_BYTES)))


def request_uploads(field: str = "files") -> list[Upload]:
    """The files of a multipart request's ``field`` parts; an empty part (a file input left
    empty sends one with no name and no bytes) is skipped."""
    uploads = []
    for part in request.files.getlist(field):
        data = part.read()
        if not part.filename and not data:
            continue
        uploads.append(Upload(part.filename or "", data))
    return uploads


def file_response(stored: StoredFile, filename: str) -> Response:
    """A stored file as a download (see the module notes for the headers).

    Raises
    ------
    NotFound
        The row exists but the content is missing from ``FILES_DIR`` (a restore without the
        files): the file cannot be served.
    """
    store = file_store()
    path = store.path_of(stored.sha256)
    if not path.is_file():
        raise NotFound(f"the content of file {stored.sha256} is missing from the file store")
    inline = stored.media_type in INLINE
    response = send_file(path, mimetype=stored.media_type, as_attachment=not inline,
                         download_name=filename, conditional=True, etag=stored.sha256,
                         max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    response.headers["Cache-Control"] = "private, no-cache"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response
