"""Applying imported item files to the bank and exporting it, on SQLite and PostgreSQL: what a
file creates or changes, what it leaves alone, and refusals that name the line and write nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from item_bank.importing import (
    ExistingItems,
    ImportRejected,
    apply_import,
    detect_format,
    export_records,
    item_record,
    read_upload,
)
from item_bank.interchange import (
    InterchangeError,
    ItemRecord,
    ParameterRecord,
    write_items_csv,
    write_parameters_csv,
    write_qti_item,
    write_qti_package,
)
from item_bank.models import Item, ItemParameterSet, ItemStatus
from item_bank.services import BankError, add_parameter_set, create_item
from storage import make_engine, session_factory
from storage.accounts import User  # noqa: F401  (registers the users table items refer to)
from storage.migrate import upgrade

MODELS = [
    ParameterRecord("rasch", b=-0.25),
    ParameterRecord("1pl", a=1.7, b=0.3),
    ParameterRecord("2pl", a=1.25, b=-1.0 / 3.0),
    ParameterRecord("3pl", a=1.1, b=0.2, c=0.2),
    ParameterRecord("4pl", a=1.3, b=-0.4, c=0.15, d=0.95),
    ParameterRecord("grm", a=1.4, thresholds=[-1.5, -0.1, 0.7, 2.0]),
    ParameterRecord("gpcm", thresholds=[0.4, -0.3]),
    ParameterRecord("pcm", thresholds=[-0.5, 1.2, 0.3]),
]


def records() -> list[ItemRecord]:
    """Items of every model, a multi-line rationale, tags, media, and two without parameters."""
    def options(p: ParameterRecord) -> list[str]:  # a rating item: one option per category
        return [f"level {n}" for n in range(len(p.thresholds) + 1)] if p.thresholds else \
            ["a", "b", "c"]

    out = [ItemRecord(item_id=f"M-{k}", stem=f"Item {k}, with a comma", options=options(p),
                      key=None if p.thresholds else k % 3,
                      rationale="First line\nsecond line", skill="algebra",
                      content_tags=["t1", f"g{k % 2}"], status="operational",
                      media=[f"img/{k}.png"] if k % 2 else [], parameters=p)
           for k, p in enumerate(MODELS)]
    out.append(ItemRecord(item_id="D-1", stem="A draft", options=["x", "y"], skill="geometry"))
    out.append(ItemRecord(item_id="P-1", stem="A pretest item", options=["x", "y"], key=0,
                          skill="geometry", status="pretest", content_tags=["new"]))
    return out


@pytest.fixture
def session(any_db_url):
    engine = make_engine(any_db_url)
    upgrade(engine)
    session = session_factory(engine)()
    yield session
    session.rollback()
    session.close()
    engine.dispose()


def _count(session, model) -> int:
    return session.scalar(select(func.count(model.id)))


# -- reading an upload (no database) -------------------------------------------------------------


def test_detect_format() -> None:
    assert detect_format(b"PK\x03\x04rest") == "qti"
    assert detect_format(b"\xef\xbb\xbf  <?xml version='1.0'?><a/>") == "qti"
    assert detect_format(b"item_id,stem\n") == "csv"
    assert detect_format(b"<b>,stem\n", "odd.csv") == "csv"  # the name wins
    assert detect_format(b"item_id\n", "items.xml") == "qti"


def test_read_upload_knows_lines_and_stated_fields() -> None:
    text = ('item_id,stem,option_1,option_2,key,skill,status\r\n'
            'A,"two\r\nlines",x,y,1,algebra,pretest\r\n'
            '\r\n'
            'B,plain,x,y,,,\r\n')
    upload = read_upload(text.encode(), "a.csv")
    assert (upload.format, upload.parameters_only) == ("csv", False)
    assert upload.lines == {"A": 2, "B": 5}
    assert upload.given["A"] == {"stem", "options", "key", "skill", "status"}
    assert upload.given["B"] == {"stem", "options", "key"}  # empty skill and status cells
    assert upload.where("B") == "line 5 (item 'B')"
    params = read_upload(b"item_id,model,a,b\nA,2pl,1,0\nB,,,\n")
    assert params.parameters_only and params.given == {"A": {"parameters"}, "B": set()}


def test_read_upload_qti_metadata_only_from_packages() -> None:
    package = read_upload(write_qti_package(records()), "bank.zip")
    assert package.format == "qti" and len(package.records) == 10
    assert {"skill", "status", "content_tags", "parameters"} <= package.given["M-0"]
    assert "parameters" not in package.given["D-1"]
    single = read_upload(write_qti_item(records()[0]), "one.xml")
    assert single.given["M-0"] == {"stem", "options", "key", "rationale", "media"}
    assert single.where("M-0") == "item 'M-0'"


def test_read_upload_refusals() -> None:
    with pytest.raises(BankError, match="not UTF-8") as info:
        read_upload("item_id,stem\nA,caf\xe9\n".encode("latin-1"), "x.csv")
    assert info.value.field == "file"
    with pytest.raises(BankError, match="holds no item"):
        read_upload(b"item_id,stem,option_1,option_2\r\n", "empty.csv")
    with pytest.raises(InterchangeError) as info:
        read_upload(b"item_id,model,a,b\nA,2pl,x,0\n", "p.csv")
    assert info.value.line == 2 and info.value.field == "a"


# -- applying an upload --------------------------------------------------------------------------


def test_create_then_export_is_lossless(session) -> None:
    upload = read_upload(write_items_csv(records()).encode(), "bank.csv")
    summary = apply_import(session, upload, user_id=None)
    assert (summary.count("created"), summary.parameter_sets) == (10, 8)
    item = session.scalar(select(Item).where(Item.code == "M-3"))
    assert item.status == ItemStatus.OPERATIONAL and item.version == 1
    assert item.active_parameters.source == "import"
    assert item.active_parameters.provenance == {"file": "bank.csv", "format": "csv"}
    assert [(e.from_status, e.to_status) for e in item.status_events] == [
        (None, ItemStatus.OPERATIONAL)]
    exported = {r.item_id: r for r in export_records(session)}
    for record in records():
        got = exported[record.item_id]
        assert (got.stem, got.options, got.key, got.rationale, got.skill, got.status,
                got.media) == (record.stem, record.options, record.key, record.rationale,
                               record.skill, record.status, record.media)
        assert got.content_tags == sorted(record.content_tags)
        assert (got.parameters is None) == (record.parameters is None)
    # The bank's own export, imported again, changes nothing (parameters as the bank keeps them)
    for data, name in ((write_items_csv(exported.values()).encode(), "again.csv"),
                       (write_qti_package(exported.values()), "again.zip")):
        again = apply_import(session, read_upload(data, name), mode="upsert")
        assert (again.count("unchanged"), again.parameter_sets) == (10, 0), name
    assert _count(session, ItemParameterSet) == 8


def test_create_mode_lists_existing_codes(session) -> None:
    apply_import(session, read_upload(write_items_csv(records()[:2]).encode()))
    with pytest.raises(ExistingItems) as info:
        apply_import(session, read_upload(write_items_csv(records()).encode()))
    assert info.value.codes == ["M-0", "M-1"]
    assert "mode=upsert" in str(info.value)
    with pytest.raises(BankError, match="mode must be"):
        apply_import(session, read_upload(write_items_csv(records()).encode()), mode="merge")


def test_upsert_versions_content_and_adds_parameter_sets(session) -> None:
    apply_import(session, read_upload(write_items_csv(records()).encode()))
    changed = records()
    changed[0].stem = "Item 0, reworded"
    changed[1].parameters = ParameterRecord("1pl", a=1.7, b=0.9)
    changed[8].status = "retired"
    changed[9].skill = "statistics"
    changed.append(ItemRecord(item_id="N-1", stem="New", options=["p", "q"], skill="algebra"))
    summary = apply_import(session, read_upload(write_items_csv(changed).encode(), "v2.csv"),
                           mode="upsert", user_id=None)
    outcomes = {item.code: outcome for item, outcome in summary.outcomes}
    assert outcomes == {"M-0": "updated", "M-1": "updated", "M-2": "unchanged",
                        "M-3": "unchanged", "M-4": "unchanged", "M-5": "unchanged",
                        "M-6": "unchanged", "M-7": "unchanged", "D-1": "updated",
                        "P-1": "updated", "N-1": "created"}
    assert summary.parameter_sets == 1
    m0 = session.scalar(select(Item).where(Item.code == "M-0"))
    assert m0.version == 2 and [v.stem for v in m0.versions] == ["Item 0, with a comma",
                                                                 "Item 0, reworded"]
    assert m0.versions[1].note == "imported from v2.csv"
    m1 = session.scalar(select(Item).where(Item.code == "M-1"))
    assert [(p.b, p.is_active) for p in m1.parameter_sets] == [(0.3, False), (0.9, True)]
    assert m1.version == 1
    d1 = session.scalar(select(Item).where(Item.code == "D-1"))
    assert d1.status == ItemStatus.RETIRED and d1.status_events[-1].reason == "imported from v2.csv"
    assert session.scalar(select(Item.skill).where(Item.code == "P-1")) == "statistics"


def test_parameters_only_updates_existing_items(session) -> None:
    apply_import(session, read_upload(write_items_csv(records()).encode()))
    updated = records()
    updated[2].parameters = ParameterRecord("2pl", a=2.0, b=0.0)
    updated[9].parameters = ParameterRecord("rasch", b=1.0)
    updated[9].status = "operational"  # allowed: the same file gives it parameters
    text = write_parameters_csv(updated)
    summary = apply_import(session, read_upload(text.encode(), "params.csv"))
    assert summary.parameters_only and summary.parameter_sets == 2
    assert summary.count("created") == 0 and summary.count("updated") == 2
    p1 = session.scalar(select(Item).where(Item.code == "P-1"))
    assert p1.status == ItemStatus.OPERATIONAL and p1.active_parameters.model == "rasch"
    assert p1.stem == "A pretest item" and p1.version == 1  # content untouched


def test_refusals_name_lines_and_collect_every_problem(session) -> None:
    apply_import(session, read_upload(write_items_csv(records()).encode()))
    text = ("item_id,model,a,b,status\r\n"
            "M-2,2pl,1.5,0.1,\r\n"
            "GONE-1,2pl,1,0,\r\n"
            "\r\n"
            "GONE-2,2pl,1,0,\r\n"
            "D-1,,,,operational\r\n")
    with pytest.raises(ImportRejected) as info:
        apply_import(session, read_upload(text.encode(), "p.csv"))
    problems = info.value.problems
    assert [(p["line"], p["item_id"], p["field"]) for p in problems] == [
        (3, "GONE-1", "item_id"), (5, "GONE-2", "item_id"), (6, "D-1", "status")]
    assert problems[0]["message"].startswith("line 3: no item with code 'GONE-1'")
    assert "line 6" in problems[2]["message"] and "no parameters" in problems[2]["message"]
    assert info.value.line == 3 and "line 3" in str(info.value)


def test_new_items_need_a_skill_and_operational_needs_parameters(session) -> None:
    qti = write_qti_item(ItemRecord(item_id="Q-1", stem="Even?", options=["3", "4"], key=1))
    with pytest.raises(ImportRejected, match="has no skill"):
        apply_import(session, read_upload(qti, "q.xml"))
    summary = apply_import(session, read_upload(qti, "q.xml"), default_skill="number")
    item = summary.outcomes[0][0]
    assert (item.skill, item.status, item.key) == ("number", ItemStatus.DRAFT, 1)
    bad = [ItemRecord(item_id="L-1", stem="Live?", options=["a", "b"], skill="algebra",
                      status="operational")]
    with pytest.raises(ImportRejected) as info:
        apply_import(session, read_upload(write_items_csv(bad).encode()))
    assert info.value.problems[0]["line"] == 2 and info.value.field == "status"
    empty_stem = "item_id,stem,skill\r\nE-1,,algebra\r\n"
    with pytest.raises(ImportRejected, match=r"line 2 \(item 'E-1'\): stem must not be empty"):
        apply_import(session, read_upload(empty_stem.encode()))


def test_export_filters_and_records(session) -> None:
    item = create_item(session, code="X-1", stem="S", options=["a", "b"], key=0,
                       skill="geometry", content_tags=["b", "a"])
    session.flush()
    add_parameter_set(session, item, {"model": "3pl", "a": 1.0, "b": 0.5, "c": 0.25},
                      source="calibration")
    create_item(session, code="X-2", stem="T", skill="algebra", status="pretest")
    session.flush()
    record = item_record(item)
    assert record.parameters == ParameterRecord("3pl", 1.0, 0.5, 0.25, None, None)
    assert record.content_tags == ["a", "b"] and record.status == "draft"
    assert [r.item_id for r in export_records(session)] == ["X-1", "X-2"]
    assert [r.item_id for r in export_records(session, status="pretest")] == ["X-2"]
    assert [r.item_id for r in export_records(session, skill="geometry")] == ["X-1"]
    assert [r.item_id for r in export_records(session, tag="a")] == ["X-1"]
