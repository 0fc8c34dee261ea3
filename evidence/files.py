"""Files students attach to drafts: judged by their bytes, stored once under their SHA-256.

The store is a directory (``FILES_DIR``) outside the database. A file's content lives at
``<root>/<h[0:2]>/<h[2:4]>/<h>`` where ``h`` is its SHA-256 in hex: two levels of fan-out keep
directories small, and the same content uploaded twice (a student re-sending a PDF with each
version) is stored once. A file is written to a temporary file in the same directory, flushed
to disk (``fsync``) and renamed into place, so a reader never sees half a file and a crash leaves
at most a temporary file behind.

The database keeps a :class:`~evidence.models.StoredFile` row per content (size and media type)
and a :class:`~evidence.models.DraftFile` row per attachment, written in the draft's own
transaction. The bytes are written before that transaction commits; if it then fails, the file
on disk is an orphan: harmless (nobody can reach it: downloads go through the rows) and removed
by :func:`collect_garbage` (``cat-engine files gc``), which deletes what no row names once it is
older than a grace period (so files of transactions still running are left alone).

The type is judged by the content (magic bytes), never by the name or the type the browser
claims: a PDF named ``.png`` is stored as a PDF, an HTML page named ``.pdf`` is refused. The
allow-list (:data:`ALLOWED`) is PDF, PNG, JPEG, GIF, WebP, and audio: MP3, Ogg (Opus, Vorbis),
WAV, M4A and AAC. SVG and HTML are never allowed: they can carry script.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from evidence.models import Draft, DraftFile, StoredFile
from storage import as_utc
from storage.errors import Invalid

#: Largest file accepted (bytes), unless the store is configured otherwise.
MAX_FILE_BYTES = 10 * 1024 * 1024
#: Most a student may store across all their drafts (bytes; each content counted once).
STUDENT_QUOTA_BYTES = 100 * 1024 * 1024
#: Most files on one version.
MAX_FILES_PER_DRAFT = 10
#: Orphans younger than this are left alone by the garbage collector (seconds).
GC_GRACE_SECONDS = 3600

#: Media types accepted, with the words the error message uses for them.
ALLOWED = {
    "application/pdf": "PDF",
    "image/png": "PNG image",
    "image/jpeg": "JPEG image",
    "image/gif": "GIF image",
    "image/webp": "WebP image",
    "audio/mpeg": "MP3 audio",
    "audio/ogg": "Ogg audio",
    "audio/wav": "WAV audio",
    "audio/mp4": "M4A audio",
    "audio/aac": "AAC audio",
}
#: Media types shown in the browser (inline); everything else is downloaded as an attachment.
INLINE = frozenset(t for t in ALLOWED if t.startswith(("image/", "audio/")))
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_M4A_BRANDS = (b"M4A ", b"M4B ", b"M4P ")


def sniff(data: bytes) -> str | None:
    """The media type of ``data`` judged by its first bytes, if it is one of :data:`ALLOWED`.

    Parameters
    ----------
    data
        The file's content (only the first 64 bytes are looked at).

    Returns
    -------
    str or None
        A key of :data:`ALLOWED`, or ``None`` for anything else (HTML, SVG, executables, text,
        video, unknown formats).
    """
    head = data[:64]
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if head[4:8] == b"ftyp" and head[8:12] in _M4A_BRANDS:
        return "audio/mp4"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        layer = (head[1] >> 1) & 0b11
        if layer == 0b00 and head[1] & 0xF0 == 0xF0:  # ADTS: 12 sync bits, layer 0
            return "audio/aac"
        if layer == 0b01:  # MPEG audio layer III
            return "audio/mpeg"
    return None


class FileRefused(Invalid):
    """A file refused, with why (``kind``: ``empty``, ``too_large``, ``type`` or ``quota``),
    its name and the sizes involved, so that pages can say it in the reader's language."""

    def __init__(self, message: str, *, field: str, kind: str, filename: str,
                 size: int = 0, limit: int = 0) -> None:
        super().__init__(message, field=field)
        self.kind, self.filename, self.size, self.limit = kind, filename, size, limit


@dataclass(frozen=True)
class Upload:
    """A file as it arrived: the name the student gave it and its bytes."""

    filename: str
    data: bytes


@dataclass(frozen=True)
class CheckedFile:
    """An upload that passed every check: its clean name, digest, size and media type."""

    filename: str
    sha256: str
    size: int
    media_type: str
    data: bytes


def clean_filename(name: str | None, position: int) -> str:
    """The name to keep for an upload: its last path part, NFC, without control characters,
    at most 255 characters; ``file-<n>`` when nothing is left."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip(" .")
    if len(name) > 255:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 254 - len(ext)] + dot + ext) if dot and len(ext) < 20 else name[:255]
    return name or f"file-{position + 1}"


def _megabytes(size: int) -> str:
    """A size in words: ``12.3 MB``, ``4.0 KB`` or ``512 bytes``."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size} bytes"


class FileStore:
    """Content-addressed files under ``root``, with the per-file and per-student limits.

    Parameters
    ----------
    root
        The directory (``FILES_DIR``); created when the first file is written.
    max_file_bytes
        The largest file accepted.
    quota_bytes
        The most one student may store across their drafts.
    """

    def __init__(self, root: str | os.PathLike[str], max_file_bytes: int = MAX_FILE_BYTES,
                 quota_bytes: int = STUDENT_QUOTA_BYTES) -> None:
        self.root = Path(root)
        self.max_file_bytes = int(max_file_bytes)
        self.quota_bytes = int(quota_bytes)

    def path_of(self, sha256: str) -> Path:
        """Where the content with this digest lives (whether or not it is there).

        Raises
        ------
        ValueError
            ``sha256`` is not 64 lowercase hex digits (so no name can leave the store).
        """
        if not _SHA256.match(sha256 or ""):
            raise ValueError(f"not a SHA-256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def write(self, data: bytes) -> str:
        """Store ``data`` (once: content already there is not written again); its digest.

        Written to a temporary file in the target directory, fsynced, then renamed into place
        (atomic on POSIX), and the directory fsynced so the rename survives a crash.
        """
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_of(digest)
        if target.exists() and target.stat().st_size == len(data):
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o640)
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return digest

    def check(self, session: Session, student_id: int, uploads: Sequence[Upload]
              ) -> list[CheckedFile]:
        """Check a version's uploads against the type allow-list and the limits.

        Each content counts once towards the quota, however many versions carry it.

        Raises
        ------
        Invalid
            Naming the file (``files[i]``): empty, larger than the per-file limit, of a type
            not allowed (judged by content), or over the student's quota; or too many files.
        """
        if len(uploads) > MAX_FILES_PER_DRAFT:
            raise Invalid(f"at most {MAX_FILES_PER_DRAFT} files may go with one version; "
                          f"{len(uploads)} were sent", field="files")
        checked: list[CheckedFile] = []
        for i, upload in enumerate(uploads):
            name = clean_filename(upload.filename, i)
            field = f"files[{i}]"
            size = len(upload.data)
            if size == 0:
                raise FileRefused(f"the file {name!r} is empty", field=field, kind="empty",
                                  filename=name)
            if size > self.max_file_bytes:
                raise FileRefused(f"the file {name!r} is {_megabytes(size)}; each file may be "
                                  f"at most {_megabytes(self.max_file_bytes)}", field=field,
                                  kind="too_large", filename=name, size=size,
                                  limit=self.max_file_bytes)
            media_type = sniff(upload.data)
            if media_type is None:
                kinds = ", ".join(sorted(set(ALLOWED.values())))
                raise FileRefused(f"the file {name!r} is not of a type allowed (judged by its "
                                  f"content, not its name); allowed: {kinds}", field=field,
                                  kind="type", filename=name, size=size)
            checked.append(CheckedFile(name, hashlib.sha256(upload.data).hexdigest(), size,
                                       media_type, upload.data))
        self._check_quota(session, student_id, checked)
        return checked

    def _check_quota(self, session: Session, student_id: int,
                     checked: list[CheckedFile]) -> None:
        if not checked:
            return
        held = (select(DraftFile.sha256).join(Draft, Draft.id == DraftFile.draft_id)
                .where(Draft.student_id == student_id).distinct().subquery())
        used = session.scalar(select(func.coalesce(func.sum(StoredFile.size), 0))
                              .join(held, held.c.sha256 == StoredFile.sha256)) or 0
        owned = set(session.scalars(select(held.c.sha256)
                                    .where(held.c.sha256.in_([c.sha256 for c in checked]))))
        total = used
        for i, item in enumerate(checked):
            if item.sha256 in owned:
                continue
            owned.add(item.sha256)
            total += item.size
            if total > self.quota_bytes:
                raise FileRefused(f"the file {item.filename!r} would take your stored files "
                                  f"to {_megabytes(total)}, over your limit of "
                                  f"{_megabytes(self.quota_bytes)}; you use "
                                  f"{_megabytes(used)}", field=f"files[{i}]", kind="quota",
                                  filename=item.filename, size=total,
                                  limit=self.quota_bytes)

    def store(self, session: Session, checked: Sequence[CheckedFile]) -> None:
        """Write checked files to disk and make sure each has its ``stored_files`` row.

        The rows are added to the caller's transaction; two requests storing the same new
        content at once both succeed (the loser of the insert finds the winner's row).
        """
        for item in checked:
            self.write(item.data)
            if session.get(StoredFile, item.sha256) is not None:
                continue
            try:
                with session.begin_nested():
                    session.add(StoredFile(sha256=item.sha256, size=item.size,
                                           media_type=item.media_type))
            except IntegrityError:  # stored by a concurrent request first: the same content
                pass

    def open(self, sha256: str):
        """The stored content, opened for reading (binary).

        Raises
        ------
        FileNotFoundError
            No such content on disk.
        """
        return self.path_of(sha256).open("rb")


def collect_garbage(session: Session, store: FileStore,
                    grace_seconds: float = GC_GRACE_SECONDS, now: float | None = None
                    ) -> dict[str, int]:
    """Remove what no draft refers to: ``stored_files`` rows without a ``draft_files`` row, and
    files on disk without a ``stored_files`` row, once older than ``grace_seconds``.

    The grace period keeps files written by transactions still running (their rows are not
    committed yet). The caller commits.

    Returns
    -------
    dict
        ``{"rows": n, "files": n, "bytes": n}`` removed.
    """
    now = time.time() if now is None else now
    cutoff = now - grace_seconds
    referenced = select(DraftFile.sha256)
    unreferenced = session.scalars(select(StoredFile).where(StoredFile.sha256.not_in(referenced))
                                   ).all()
    removed_rows = 0
    for row in unreferenced:
        if as_utc(row.created_at).timestamp() < cutoff:
            session.delete(row)
            removed_rows += 1
    session.flush()
    known = set(session.scalars(select(StoredFile.sha256)))
    removed_files = removed_bytes = 0
    if store.root.exists():
        for path in store.root.glob("*/*/*"):
            if not path.is_file():
                continue
            stat = path.stat()
            if stat.st_mtime >= cutoff:
                continue
            if path.name in known and not path.name.startswith("."):
                continue
            removed_bytes += stat.st_size
            path.unlink(missing_ok=True)
            removed_files += 1
    return {"rows": removed_rows, "files": removed_files, "bytes": removed_bytes}
