"""The file store: type judged by content against the allow-list, content-addressed storage,
the per-file limit and the per-student quota, and garbage collection of orphans."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import timedelta

import pytest

from evidence.drafts import submit_draft
from evidence.files import ALLOWED, FileStore, Upload, clean_filename, collect_garbage, sniff
from evidence.models import StoredFile
from evidence.tasks import create_task
from storage import utcnow
from storage.accounts import SchoolClass
from storage.errors import Invalid
from tests.evidence import samples


@pytest.mark.parametrize(("data", "media_type"), [
    (samples.pdf(), "application/pdf"),
    (samples.png(), "image/png"),
    (samples.JPEG, "image/jpeg"),
    (samples.GIF, "image/gif"),
    (samples.WEBP, "image/webp"),
    (samples.wav(), "audio/wav"),
    (samples.OGG_OPUS, "audio/ogg"),
    (samples.MP3_ID3, "audio/mpeg"),
    (samples.MP3_FRAME, "audio/mpeg"),
    (samples.M4A, "audio/mp4"),
    (samples.AAC_ADTS, "audio/aac"),
    (samples.HTML, None),
    (samples.SVG, None),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", None),
    (samples.MP4_VIDEO, None),
    (samples.ZIP, None),
    (samples.ELF, None),
    (samples.TEXT, None),
    (b"", None),
])
def test_sniff_judges_by_content(data: bytes, media_type: str | None) -> None:
    assert sniff(data) == media_type
    assert media_type is None or media_type in ALLOWED


def test_written_once_under_its_digest_in_two_level_directories(tmp_path) -> None:
    store = FileStore(tmp_path / "files")
    data = samples.pdf("one")
    digest = store.write(data)
    assert digest == hashlib.sha256(data).hexdigest()
    path = tmp_path / "files" / digest[:2] / digest[2:4] / digest
    assert path.read_bytes() == data
    before = path.stat().st_mtime_ns
    time.sleep(0.01)
    assert store.write(data) == digest  # the same content again: not rewritten
    assert path.stat().st_mtime_ns == before
    assert [p.name for p in path.parent.iterdir()] == [digest]  # no temporary file left
    with pytest.raises(ValueError):
        store.path_of("../../etc/passwd")


@pytest.mark.parametrize(("name", "kept"), [
    ("essay.pdf", "essay.pdf"),
    ("C:\\Users\\ana\\essay.pdf", "essay.pdf"),
    ("../../etc/passwd", "passwd"),
    ("bad\x00name\n.pdf", "badname.pdf"),
    ("   ", "file-3"),
    ("a" * 300 + ".pdf", "a" * 251 + ".pdf"),
])
def test_file_names_are_cleaned(name: str, kept: str) -> None:
    assert clean_filename(name, 2) == kept


def test_a_pdf_named_png_passes_as_a_pdf_and_html_named_pdf_is_refused(school) -> None:
    checked = school.store.check(school.session, school.ids["users"]["student1"],
                                 [Upload("photo.png", samples.pdf())])
    assert checked[0].media_type == "application/pdf"
    with pytest.raises(Invalid) as error:
        school.store.check(school.session, school.ids["users"]["student1"],
                           [Upload("essay.pdf", samples.pdf()), Upload("essay2.pdf",
                                                                       samples.HTML)])
    assert error.value.field == "files[1]"
    assert "'essay2.pdf' is not of a type allowed" in str(error.value)
    assert "judged by its content" in str(error.value)


def test_empty_and_oversized_files_are_refused_by_name(school) -> None:
    student = school.ids["users"]["student1"]
    with pytest.raises(Invalid, match=r"the file 'blank\.pdf' is empty") as error:
        school.store.check(school.session, student, [Upload("blank.pdf", b"")])
    assert error.value.field == "files[0]"
    big = samples.png().ljust(5120, b"\x00")  # 5 KB, over the school's 4096-byte limit
    with pytest.raises(Invalid, match=r"the file 'big\.png' is 5\.0 KB; each file may be at "
                                      r"most 4\.0 KB"):
        school.store.check(school.session, student, [Upload("big.png", big)])


def _task(school):
    klass = school.session.get(SchoolClass, school.ids["class_id"])
    task = create_task(school.session, school.user("teacher1"), klass,
                       base_url="https://school.example", title="Essay")
    school.session.commit()
    return task


def test_quota_counts_each_content_once_and_names_the_file_over_it(school) -> None:
    task = _task(school)
    student = school.user("student1")
    files = [Upload(f"page{i}.pdf", samples.pdf("x" * 3000 + str(i))) for i in range(3)]
    sizes = [len(f.data) for f in files]
    assert all(3000 < s <= 4096 for s in sizes) and sum(sizes[:2]) <= 10_000 < sum(sizes)
    submit_draft(school.session, student, task, body="v1", uploads=files[:2],
                 store=school.store)
    school.session.commit()
    # The same two files again cost nothing more.
    submit_draft(school.session, student, task, body="v2", uploads=files[:2],
                 store=school.store)
    school.session.commit()
    with pytest.raises(Invalid) as error:
        submit_draft(school.session, student, task, body="v3", uploads=files,
                     store=school.store)
    assert error.value.field == "files[2]"
    assert "'page2.pdf' would take your stored files to" in str(error.value)
    assert "over your limit of" in str(error.value)
    school.session.rollback()
    # Another student's quota is their own.
    submit_draft(school.session, school.user("student2"), task, body="w", uploads=[files[2]],
                 store=school.store)
    school.session.commit()


def test_garbage_collection_removes_old_orphans_only(school) -> None:
    task = _task(school)
    kept = samples.pdf("kept")
    submit_draft(school.session, school.user("student1"), task, body="v1",
                 uploads=[Upload("kept.pdf", kept)], store=school.store)
    school.session.commit()
    orphan = school.store.write(samples.pdf("orphan, its transaction failed"))
    young = school.store.write(samples.pdf("young orphan"))
    school.session.add(StoredFile(sha256="ab" * 32, size=3, media_type="application/pdf",
                                  created_at=utcnow() - timedelta(hours=2)))
    school.session.add(StoredFile(sha256="cd" * 32, size=3, media_type="application/pdf"))
    school.session.commit()
    old = time.time() - 7200
    os.utime(school.store.path_of(orphan), (old, old))
    os.utime(school.store.path_of(hashlib.sha256(kept).hexdigest()), (old, old))
    result = collect_garbage(school.session, school.store, grace_seconds=3600)
    school.session.commit()
    # The unreferenced row made 2 hours ago and the old orphan go; the young ones stay.
    assert result["rows"] == 1 and result["files"] == 1
    assert not school.store.path_of(orphan).exists()
    assert school.store.path_of(young).exists()  # inside the grace period
    assert school.store.path_of(hashlib.sha256(kept).hexdigest()).exists()
    assert school.session.get(StoredFile, "ab" * 32) is None
    assert school.session.get(StoredFile, "cd" * 32) is not None


def test_the_files_gc_command(school) -> None:
    from click.testing import CliRunner

    from api.cli import cli

    orphan = school.store.write(samples.pdf("left by a failed upload"))
    old = time.time() - 7200
    os.utime(school.store.path_of(orphan), (old, old))
    result = CliRunner().invoke(cli, ["--database-url", school.url, "files", "gc",
                                      "--files-dir", str(school.store.root)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("removed 1 file(s)")
    assert not school.store.path_of(orphan).exists()
