"""The item bank over HTTP, on SQLite and PostgreSQL: browse, author, version, publish
parameters, and move items in and out as CSV and QTI (all or nothing)."""

from __future__ import annotations

import io
import os
import threading
import uuid
import zipfile

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from api.app import create_app
from api.db import engine_of
from evidence.models import Attempt
from item_bank.importing import item_record
from item_bank.interchange import ItemRecord, read_items_csv, write_items_csv, write_qti_item
from item_bank.models import BankSnapshot, Item, ItemParameterSet, ItemVersion
from storage import make_engine, session_factory, session_scope
from tests.api.conftest import PASSWORD
from tests.conftest import migrated_with_user

API = "/api/v1/items"
NEW_ITEMS_CSV = (
    "item_id,stem,option_1,option_2,option_3,key,rationale,skill,tags,status,model,a,b\r\n"
    "NEW-1,What is 2 + 2?,3,4,5,2,Count.,algebra,arith;easy,operational,2pl,1.2,-0.5\r\n"
    "NEW-2,What is 3 x 3?,6,9,12,B,Multiply.,algebra,arith,pretest,,,\r\n"
)


def _db(world):
    return session_scope(session_factory(engine_of(world.app)))


def _upload(world, user, content: bytes | str, filename: str = "items.csv", **form):
    data = content.encode() if isinstance(content, str) else content
    return world.call("post", f"{API}/import", user, content_type="multipart/form-data",
                      data={"file": (io.BytesIO(data), filename), **form})


def _bank(url: str) -> dict[str, dict]:
    """Every item of a database as comparable plain data: content, metadata, parameters."""
    engine = make_engine(url)
    try:
        with session_scope(session_factory(engine)) as session:
            items = session.scalars(select(Item).order_by(Item.code)).all()
            out = {}
            for item in items:
                record = item_record(item)
                out[item.code] = {**vars(record), "parameters": (
                    vars(record.parameters) if record.parameters else None)}
            return out
    finally:
        engine.dispose()


def item_record_like(code: str):
    """A small valid record to write as QTI."""
    return ItemRecord(item_id=code, stem="Which is even?", options=["3", "4"], key=1,
                      skill="algebra")


@pytest.fixture
def fresh_url(any_db_url, tmp_path):
    """A second empty database of the same kind as ``any_db_url``, migrated, with an assessor."""
    if any_db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        migrated_with_user(url, "assessor9", PASSWORD, "assessor")
        yield url
        return
    admin = create_engine(os.environ["TEST_DATABASE_URL"], isolation_level="AUTOCOMMIT")
    name = f"cat_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(any_db_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrated_with_user(url, "assessor9", PASSWORD, "assessor")
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- access and browsing -------------------------------------------------------------------------


def _only_assessment_staff_may_use_the_bank(world) -> None:
    item = world.items["IT-000"]
    calls = [("get", API, {}), ("get", f"{API}/{item}", {}),
             ("post", API, {"json": {"code": "X", "stem": "s", "skill": "algebra"}}),
             ("patch", f"{API}/{item}", {"json": {"stem": "changed"}}),
             ("post", f"{API}/{item}/status", {"json": {"status": "retired"}}),
             ("post", f"{API}/{item}/parameter-sets", {"json": {"model": "2pl", "a": 1, "b": 0}}),
             ("get", f"{API}/{item}/versions/1", {}), ("get", f"{API}/export", {})]
    for method, path, kwargs in calls:
        for user in ("student1", "teacher1"):
            r = world.call(method, path, user, **kwargs)
            assert r.status_code == 403, (method, path, user)
            assert r.mimetype == "application/problem+json"
        assert world.call(method, path, None, **kwargs).status_code == 401
    r = _upload(world, "teacher1", NEW_ITEMS_CSV)
    assert r.status_code == 403
    for user in ("assessor1", "admin1"):
        assert world.call("get", API, user).status_code == 200
        assert world.call("get", f"{API}/{item}", user).status_code == 200
    with _db(world) as session:  # nothing the refused callers sent was written
        assert session.scalar(select(func.count(Item.id))) == 62
        assert session.get(Item, item).stem.startswith("Question 0")


def _list_filters_and_pages(world) -> None:
    r = world.call("get", API, "assessor1", query_string={"per_page": 25, "page": 3})
    page = r.get_json()
    assert (page["total"], page["pages"], len(page["items"])) == (62, 3, 12)
    entry = world.call("get", API, "assessor1", query_string={"q": "it-007"}).get_json()["items"]
    assert [e["code"] for e in entry] == ["IT-007"]
    assert entry[0] == {"id": world.items["IT-007"], "code": "IT-007", "skill": "geometry",
                        "status": "operational", "content_tags": ["topic2"], "version": 1,
                        "stem": "Question 7: what is 7 + 1?", "has_parameters": True,
                        "model": "2pl"}
    stems = world.call("get", API, "assessor1", query_string={"q": "NEW QUESTION"}).get_json()
    assert [e["code"] for e in stems["items"]] == ["PRE-1", "PRE-2"]
    assert stems["items"][0]["has_parameters"] is False and stems["items"][0]["model"] is None
    # LIKE wildcards in q are literal text
    assert world.call("get", API, "assessor1", query_string={"q": "%"}).get_json()["total"] == 0
    pretest = world.call("get", API, "assessor1", query_string={"status": "pretest"}).get_json()
    assert pretest["total"] == 2
    both = world.call("get", API, "assessor1",
                      query_string={"skill": "algebra", "tag": "topic1"}).get_json()
    codes = [e["code"] for e in both["items"]]
    assert codes == [f"IT-{j:03d}" for j in range(60) if j % 3 == 0 and j % 5 == 1]
    bad = world.call("get", API, "assessor1", query_string={"status": "lost"})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "query.status"


# -- authoring -----------------------------------------------------------------------------------


def _create_read_and_duplicate(world) -> None:
    body = {"code": "GEO-9", "stem": "How many sides has a hexagon?",
            "options": ["5", "6", "8"], "key": 1, "rationale": "Hex means six.",
            "skill": "geometry", "content_tags": ["shapes", "shapes", "grade-6"],
            "media": ["img/hexagon.png"]}
    r = world.call("post", API, "assessor1", json=body)
    assert r.status_code == 201, r.get_json()
    item = r.get_json()
    assert item["status"] == "draft" and item["version"] == 1
    assert item["content_tags"] == ["grade-6", "shapes"]
    assert item["parameters"] is None and item["parameter_sets"] == []
    assert item["status_history"][0]["from"] is None
    assert item["status_history"][0]["to"] == "draft"
    assert item["status_history"][0]["by"] == "assessor1"
    assert item["versions"] == [{"version": 1, "created_at": item["versions"][0]["created_at"],
                                 "created_by": "assessor1", "note": "created"}]
    again = world.call("get", f"{API}/{item['id']}", "admin1").get_json()
    assert again["key"] == 1 and again["media"] == ["img/hexagon.png"]
    assert again["created_at"].endswith("+00:00")
    dup = world.call("post", API, "admin1", json=body)
    assert dup.status_code == 409 and "GEO-9" in dup.get_json()["detail"]
    bad = world.call("post", API, "admin1", json={**body, "code": "GEO-10", "key": 3})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "key"
    missing = world.call("post", API, "admin1", json={"code": "GEO-11", "stem": "x"})
    assert missing.status_code == 422
    assert [e["field"] for e in missing.get_json()["errors"]] == ["json.skill"]
    assert world.call("get", f"{API}/999999", "admin1").status_code == 404


def _patch_adds_versions_and_guards_against_stale_edits(world) -> None:
    item_id = world.items["IT-001"]
    r = world.call("patch", f"{API}/{item_id}", "assessor1",
                   json={"stem": "Question 1, reworded", "note": "clearer", "expected_version": 1})
    assert r.status_code == 200, r.get_json()
    item = r.get_json()
    assert item["version"] == 2 and item["stem"] == "Question 1, reworded"
    assert [v["version"] for v in item["versions"]] == [1, 2]
    assert item["versions"][1]["note"] == "clearer"
    meta = world.call("patch", f"{API}/{item_id}", "assessor1",
                      json={"skill": "statistics", "content_tags": ["t9"]}).get_json()
    assert meta["version"] == 2 and meta["skill"] == "statistics"  # no content change
    assert meta["content_tags"] == ["t9"]
    stale = world.call("patch", f"{API}/{item_id}", "admin1",
                       json={"stem": "lost update", "expected_version": 1})
    assert stale.status_code == 409 and "version 2" in stale.get_json()["detail"]
    old = world.call("get", f"{API}/{item_id}/versions/1", "assessor1").get_json()
    assert old["stem"] == "Question 1: what is 1 + 1?" and old["options"] == ["1", "2", "3", "4"]
    new = world.call("get", f"{API}/{item_id}/versions/2", "assessor1").get_json()
    assert new["stem"] == "Question 1, reworded" and new["created_by"] == "assessor1"
    assert world.call("get", f"{API}/{item_id}/versions/3", "assessor1").status_code == 404
    bad = world.call("patch", f"{API}/{item_id}", "assessor1", json={"options": ["only"]})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "options"
    with _db(world) as session:
        assert session.scalar(select(func.count(ItemVersion.id))
                              .where(ItemVersion.item_id == item_id)) == 2
        assert session.get(Item, item_id).stem == "Question 1, reworded"


def _status_changes_are_recorded(world) -> None:
    item_id = world.items["IT-002"]
    r = world.call("post", f"{API}/{item_id}/status", "assessor1",
                   json={"status": "retired", "reason": "overexposed"})
    assert r.status_code == 200, r.get_json()
    event = r.get_json()
    assert (event["from"], event["to"], event["by"], event["reason"]) == (
        "operational", "retired", "assessor1", "overexposed")
    history = world.call("get", f"{API}/{item_id}", "admin1").get_json()["status_history"]
    assert [(e["from"], e["to"]) for e in history] == [
        (None, "draft"), ("draft", "operational"), ("operational", "retired")]
    same = world.call("post", f"{API}/{item_id}/status", "assessor1", json={"status": "retired"})
    assert same.status_code == 409
    pre = world.call("post", f"{API}/{world.items['PRE-1']}/status", "assessor1",
                     json={"status": "operational"})
    assert pre.status_code == 409 and "parameter" in pre.get_json()["detail"]
    bad = world.call("post", f"{API}/{item_id}/status", "assessor1", json={"status": "gone"})
    assert bad.status_code == 422


def _parameter_sets_keep_history_with_provenance(world) -> None:
    item_id = world.items["PRE-1"]
    r = world.call("post", f"{API}/{item_id}/parameter-sets", "assessor1",
                   json={"model": "3pl", "a": 1.1, "b": 0.3, "c": 0.2, "sample_size": 480,
                         "source": "field-trial"})
    assert r.status_code == 201, r.get_json()
    first = r.get_json()
    assert first["is_active"] and first["source"] == "field-trial"
    assert (first["a"], first["b"], first["c"], first["sample_size"]) == (1.1, 0.3, 0.2, 480)
    assert first["created_by"] == "assessor1" and first["calibration_run_id"] is None
    second = world.call("post", f"{API}/{item_id}/parameter-sets", "admin1",
                        json={"model": "2pl", "a": 0.9, "b": 0.1}).get_json()
    item = world.call("get", f"{API}/{item_id}", "assessor1").get_json()
    assert item["parameters"]["id"] == second["id"] and item["parameters"]["source"] == "manual"
    assert [(p["id"], p["is_active"]) for p in item["parameter_sets"]] == [
        (first["id"], False), (second["id"], True)]
    bad = world.call("post", f"{API}/{item_id}/parameter-sets", "assessor1",
                     json={"model": "2pl", "a": -1, "b": 0})
    assert bad.status_code == 422 and "a" in bad.get_json()["detail"]
    unknown = world.call("post", f"{API}/{item_id}/parameter-sets", "assessor1",
                         json={"model": "5pl", "b": 0})
    assert unknown.status_code == 422 and unknown.get_json()["errors"][0]["field"] == "model"
    with _db(world) as session:
        assert session.scalar(select(func.count(ItemParameterSet.id))
                              .where(ItemParameterSet.item_id == item_id)) == 2


def _new_attempts_get_the_published_bank_running_ones_keep_theirs(world) -> None:
    first = world.call("post", "/api/v1/attempts", "student1",
                       json={"test_id": world.test_id}).get_json()
    assert world.answer("student1", first["id"], first["item"]["id"], 1).status_code == 200
    r = world.call("post", f"{API}/{world.items['IT-000']}/parameter-sets", "assessor1",
                   json={"model": "2pl", "a": 1.7, "b": -0.25, "source": "calibration"})
    assert r.status_code == 201
    second = world.call("post", "/api/v1/attempts", "student2",
                        json={"test_id": world.test_id}).get_json()
    resumed = world.call("post", "/api/v1/attempts", "student1", json={"test_id": world.test_id})
    assert resumed.status_code == 200  # the attempt in progress goes on
    with _db(world) as session:
        old, new = (session.get(Attempt, first["id"]).snapshot_id,
                    session.get(Attempt, second["id"]).snapshot_id)
        assert old != new
        assert session.scalar(select(func.count(BankSnapshot.id))) == 2
        delivered = {e["code"]: e for e in session.get(BankSnapshot, new).content["items"]}
        assert delivered["IT-000"]["parameters"]["a"] == 1.7
        before = {e["code"]: e for e in session.get(BankSnapshot, old).content["items"]}
        assert before["IT-000"]["parameters"]["a"] != 1.7
    item = resumed.get_json()["item"]
    assert world.answer("student1", first["id"], item["id"], 1).status_code == 200
    with _db(world) as session:
        assert session.get(Attempt, first["id"]).snapshot_id == old


def test_access_and_browsing(world) -> None:
    _only_assessment_staff_may_use_the_bank(world)
    _list_filters_and_pages(world)


def test_authoring_versions_and_status(world) -> None:
    _create_read_and_duplicate(world)
    _patch_adds_versions_and_guards_against_stale_edits(world)
    _status_changes_are_recorded(world)


def test_parameter_sets_and_publishing(world) -> None:
    _new_attempts_get_the_published_bank_running_ones_keep_theirs(world)
    _parameter_sets_keep_history_with_provenance(world)


# -- export and import ---------------------------------------------------------------------------


def _export_formats(world) -> None:
    r = world.call("get", f"{API}/export", "assessor1")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.headers["Content-Disposition"] == 'attachment; filename="items.csv"'
    records = read_items_csv(r.get_data(as_text=True))
    assert len(records) == 62 and records[0].item_id == "IT-000"
    assert records[0].parameters.model == "2pl" and records[0].key == 1
    pretest = world.call("get", f"{API}/export", "assessor1",
                         query_string={"status": "pretest", "format": "parameters-csv"})
    assert pretest.headers["Content-Disposition"] == 'attachment; filename="item-parameters.csv"'
    lines = pretest.get_data(as_text=True).splitlines()
    assert lines[0].startswith("item_id,skill,status,tags,model")
    assert [line.split(",")[0] for line in lines[1:]] == ["PRE-1", "PRE-2"]
    qti = world.call("get", f"{API}/export", "assessor1",
                     query_string={"format": "qti-zip", "skill": "geometry"})
    assert qti.headers["Content-Type"] == "application/zip"
    assert qti.headers["Content-Disposition"] == 'attachment; filename="items-qti.zip"'
    names = zipfile.ZipFile(io.BytesIO(qti.data)).namelist()
    assert "imsmanifest.xml" in names and "usage-data.xml" in names
    assert len([n for n in names if n.startswith("items/")]) == 20
    bad = world.call("get", f"{API}/export", "assessor1", query_string={"format": "xlsx"})
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "query.format"


def test_round_trip_into_a_fresh_database(world, any_db_url, fresh_url) -> None:
    """QTI package into an empty bank gives the same bank; the CSV on top of it changes nothing."""
    _export_formats(world)
    world.call("post", f"{API}/{world.items['PRE-2']}/status", "assessor1",
               json={"status": "draft"})
    rated = world.call("patch", f"{API}/{world.items['IT-010']}", "assessor1",
                       json={"key": None})  # a rating item: its 4 options are its categories
    assert rated.status_code == 200, rated.get_json()
    r = world.call("post", f"{API}/{world.items['IT-010']}/parameter-sets", "assessor1",
                   json={"model": "grm", "a": 1.3, "thresholds": [-1.0, 0.2, 1.4]})
    assert r.status_code == 201, r.get_json()
    world.call("patch", f"{API}/{world.items['IT-011']}", "assessor1",
               json={"media": ["img/a.png"], "rationale": "Line one\nline two, with a comma",
                     "content_tags": ["topic1", "extra"]})
    exports = {fmt: world.call("get", f"{API}/export", "assessor1", query_string={"format": fmt})
               for fmt in ("qti-zip", "csv")}
    assert all(r.status_code == 200 for r in exports.values())
    app = create_app({"TESTING": True, "DATABASE_URL": fresh_url, "SECRET_KEY": "test"})
    try:
        client = app.test_client()
        token = client.post("/api/v1/auth/token", json={
            "username": "assessor9", "password": PASSWORD}).get_json()["access_token"]

        def upload(data: bytes, filename: str, mode: str) -> dict:
            r = client.post(f"{API}/import", content_type="multipart/form-data",
                            headers={"Authorization": f"Bearer {token}"},
                            data={"file": (io.BytesIO(data), filename), "mode": mode})
            assert r.status_code == 200, r.get_json()
            return r.get_json()

        summary = upload(exports["qti-zip"].data, "bank.zip", "create")
        assert (summary["created"], summary["updated"], summary["unchanged"]) == (62, 0, 0)
        assert summary["parameter_sets"] == 60 and summary["format"] == "qti"
        assert len(summary["item_ids"]) == 62
        source, copy = _bank(any_db_url), _bank(fresh_url)
        assert copy == source
        assert copy["IT-010"]["parameters"]["thresholds"] == [-1.0, 0.2, 1.4]
        assert copy["PRE-2"]["status"] == "draft" and copy["IT-000"]["status"] == "operational"
        assert copy["IT-011"]["rationale"] == "Line one\nline two, with a comma"
        assert copy["IT-011"]["content_tags"] == ["extra", "topic1"]
        summary = upload(exports["csv"].data, "bank.csv", "upsert")
        assert summary["format"] == "csv"
        assert (summary["created"], summary["updated"], summary["unchanged"],
                summary["parameter_sets"]) == (0, 0, 62, 0)
    finally:
        engine_of(app).dispose()
    assert _bank(fresh_url) == source


def _import_create_then_upsert(world) -> None:
    r = _upload(world, "assessor1", NEW_ITEMS_CSV)
    assert r.status_code == 200, r.get_json()
    summary = r.get_json()
    assert (summary["created"], summary["updated"], summary["unchanged"],
            summary["parameter_sets"]) == (2, 0, 0, 1)
    assert [i["code"] for i in summary["items"]] == ["NEW-1", "NEW-2"]
    new1 = world.call("get", f"{API}/{summary['item_ids'][0]}", "assessor1").get_json()
    assert (new1["status"], new1["key"], new1["content_tags"]) == (
        "operational", 1, ["arith", "easy"])
    assert new1["parameters"]["source"] == "import"
    assert new1["parameters"]["provenance"] == {"file": "items.csv", "format": "csv"}
    assert new1["status_history"] == [{**new1["status_history"][0], "from": None,
                                       "to": "operational", "by": "assessor1",
                                       "reason": "imported from items.csv"}]
    again = _upload(world, "assessor1", NEW_ITEMS_CSV)
    assert again.status_code == 409
    body = again.get_json()
    assert "NEW-1" in body["detail"] and "NEW-2" in body["detail"]
    assert [e["item_id"] for e in body["errors"]] == ["NEW-1", "NEW-2"]
    changed = NEW_ITEMS_CSV.replace("What is 2 + 2?", "What is two plus two?").replace(
        "pretest,,,", "pretest,rasch,,0.4")
    r = _upload(world, "assessor1", changed, mode="upsert")
    assert r.status_code == 200, r.get_json()
    summary = r.get_json()
    assert (summary["created"], summary["updated"], summary["unchanged"],
            summary["parameter_sets"]) == (0, 2, 0, 1)
    same = _upload(world, "assessor1", changed, mode="upsert").get_json()
    assert (same["updated"], same["unchanged"], same["parameter_sets"]) == (0, 2, 0)
    with _db(world) as session:
        item = session.scalar(select(Item).where(Item.code == "NEW-1"))
        assert item.version == 2 and item.stem == "What is two plus two?"
        assert [v.stem for v in item.versions] == ["What is 2 + 2?", "What is two plus two?"]
        item2 = session.scalar(select(Item).where(Item.code == "NEW-2"))
        assert item2.version == 1 and item2.active_parameters.model == "rasch"
        assert item2.active_parameters.source == "import"


def _upsert_keeps_what_the_file_does_not_state(world) -> None:
    partial = "item_id,stem,option_1,option_2,option_3,option_4,key,status\r\n" \
              "IT-005,Question 5: what is 5 + 1?,5,6,7,8,3,\r\n"
    r = _upload(world, "assessor1", partial, mode="upsert")
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["updated"] == 1
    with _db(world) as session:
        item = session.get(Item, world.items["IT-005"])
        assert item.key == 2 and item.version == 2  # the new key, as a new version
        assert item.rationale == "Add one." and item.skill == "statistics"  # not in the file
        assert item.status.value == "operational"  # empty status cell: kept
        assert item.content_tags == ["topic0"]


def _parameters_only_csv(world) -> None:
    params = ("item_id,model,a,b\r\n"
              "IT-003,2pl,1.5,0.25\r\n"
              "PRE-1,2pl,0.8,-0.4\r\n")
    r = _upload(world, "assessor1", params)
    assert r.status_code == 200, r.get_json()
    summary = r.get_json()
    assert summary["parameters_only"] is True
    assert (summary["updated"], summary["parameter_sets"], summary["created"]) == (2, 2, 0)
    with _db(world) as session:
        item = session.get(Item, world.items["IT-003"])
        assert (item.active_parameters.a, item.active_parameters.b) == (1.5, 0.25)
        assert len(item.parameter_sets) == 2 and item.version == 1
        assert session.get(Item, world.items["PRE-1"]).status.value == "pretest"
    unknown = ("item_id,model,a,b\r\n"
               "IT-004,2pl,1.9,0.5\r\n"
               "\r\n"
               "NOPE-1,2pl,1.0,0.0\r\n")
    r = _upload(world, "assessor1", unknown, mode="upsert")
    assert r.status_code == 422
    body = r.get_json()
    assert "line 4" in body["detail"] and "NOPE-1" in body["detail"]
    assert body["line"] == 4 and body["errors"][0]["line"] == 4
    with _db(world) as session:  # the valid row was not applied either
        assert len(session.get(Item, world.items["IT-004"]).parameter_sets) == 1


def _operational_without_parameters_is_refused(world) -> None:
    csv_text = ("item_id,stem,option_1,option_2,key,skill,status\r\n"
                "OK-1,Fine?,yes,no,1,algebra,draft\r\n"
                "BAD-1,Live without parameters?,yes,no,1,algebra,operational\r\n")
    r = _upload(world, "assessor1", csv_text)
    assert r.status_code == 422
    body = r.get_json()
    assert "line 3" in body["detail"] and "BAD-1" in body["detail"]
    assert body["errors"][0]["field"] == "status"
    with _db(world) as session:
        assert session.scalar(select(Item.id).where(Item.code == "OK-1")) is None


def _malformed_files_name_where(world) -> None:
    bad_csv = ("item_id,stem,option_1,option_2,key,skill,model,a,b\r\n"
               "A-1,Fine?,yes,no,1,algebra,2pl,1.0,0.0\r\n"
               "A-2,Broken?,yes,no,1,algebra,2pl,lots,0.0\r\n")
    r = _upload(world, "assessor1", bad_csv)
    assert r.status_code == 422 and r.mimetype == "application/problem+json"
    body = r.get_json()
    assert "line 3" in body["detail"] and "'a'" in body["detail"]
    assert body["line"] == 3 and body["errors"][0]["field"] == "file"
    qti = write_qti_item(item_record_like("Q-1")).replace(b"</qti-simple-choice>",
                                                          b"</qti-simple-choise>", 1)
    r = _upload(world, "assessor1", qti, filename="q1.xml")
    assert r.status_code == 422
    body = r.get_json()
    assert "q1.xml" in body["detail"] and "line" in body["detail"]
    assert isinstance(body["line"], int)
    not_utf8 = _upload(world, "assessor1", "item_id,stem\r\nX,caf\xe9\r\n".encode("latin-1"))
    assert not_utf8.status_code == 422 and "UTF-8" in not_utf8.get_json()["detail"]
    missing = world.call("post", f"{API}/import", "assessor1", content_type="multipart/form-data",
                         data={"mode": "create"})
    assert missing.status_code == 422
    assert missing.get_json()["errors"][0]["field"] == "files.file"
    bad_mode = _upload(world, "assessor1", NEW_ITEMS_CSV, mode="replace")
    assert bad_mode.status_code == 422
    with _db(world) as session:
        assert session.scalar(select(func.count(Item.id))) == 62


def _single_qti_item_needs_a_skill(world) -> None:
    data = write_qti_item(item_record_like("Q-7"), version="2.1")
    r = _upload(world, "assessor1", data, filename="q7.xml")
    assert r.status_code == 422 and "skill" in r.get_json()["detail"]
    r = _upload(world, "assessor1", data, filename="q7.xml", skill="algebra")
    assert r.status_code == 200, r.get_json()
    item = world.call("get", f"{API}/{r.get_json()['item_ids'][0]}", "assessor1").get_json()
    assert (item["code"], item["skill"], item["status"], item["key"]) == (
        "Q-7", "algebra", "draft", 1)


def _oversized_upload_is_a_413_problem(world, any_db_url) -> None:
    app = create_app({"TESTING": True, "DATABASE_URL": any_db_url, "SECRET_KEY": "test",
                      "MAX_CONTENT_LENGTH": 1000})
    try:
        body = write_items_csv([item_record_like(f"BIG-{j}") for j in range(40)])
        r = app.test_client().post(f"{API}/import", content_type="multipart/form-data",
                                   headers={"Authorization": f"Bearer {world.token('admin1')}"},
                                   data={"file": (io.BytesIO(body.encode()), "big.csv")})
        assert r.status_code == 413, r.get_json()
        assert r.mimetype == "application/problem+json"
        assert "1000 bytes" in r.get_json()["detail"]
    finally:
        engine_of(app).dispose()


def test_openapi_documents_the_multipart_upload(sqlite_url) -> None:
    app = create_app({"TESTING": True, "DATABASE_URL": sqlite_url, "SECRET_KEY": "test"})
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    engine_of(app).dispose()
    body = spec["paths"]["/api/v1/items/import"]["post"]["requestBody"]["content"]
    schema = body["multipart/form-data"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[1]
    fields = spec["components"]["schemas"][name]["properties"]
    assert fields["file"] == {**fields["file"], "type": "string", "format": "binary"}
    assert fields["mode"]["enum"] == ["create", "upsert"]


def test_import_creates_and_updates(world) -> None:
    _import_create_then_upsert(world)
    _upsert_keeps_what_the_file_does_not_state(world)


def test_import_refusals_name_the_line_and_write_nothing(world, any_db_url) -> None:
    _malformed_files_name_where(world)
    _operational_without_parameters_is_refused(world)
    _parameters_only_csv(world)
    _single_qti_item_needs_a_skill(world)
    _oversized_upload_is_a_413_problem(world, any_db_url)


def test_an_import_that_loses_a_race_for_a_code_is_a_409_and_writes_nothing(world) -> None:
    """Two imports create the same code at once: the second's check passed, its insert fails."""
    url = world.app.config["DATABASE_URL"]
    if not url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers: the second import would simply see the code")
    rival = create_engine(url)
    connection = rival.connect()
    transaction = connection.begin()
    # The rival holds NEW-2 in the unique index, uncommitted: the import's own check cannot see
    # it, and the import's insert waits for the rival to finish.
    connection.execute(text(
        "INSERT INTO items (code, stem, options, key, rationale, skill, status, media, version, "
        "created_at, updated_at) VALUES ('NEW-2', 'Rival', '[\"a\", \"b\"]', 0, '', 'arith', "
        "'draft', '[]', 1, now(), now())"))
    replies = []
    worker = threading.Thread(target=lambda: replies.append(
        _upload(world, "assessor1", NEW_ITEMS_CSV)))
    worker.start()
    worker.join(timeout=1.0)
    assert worker.is_alive()  # blocked on the rival's row
    transaction.commit()
    worker.join(timeout=10)
    connection.close()
    rival.dispose()
    r = replies[0]
    assert r.status_code == 409, r.get_json()
    assert r.headers["Content-Type"] == "application/problem+json"
    assert "retry" in r.get_json()["detail"]
    with _db(world) as session:  # NEW-1 came first in the file: rolled back with the rest
        codes = set(session.scalars(select(Item.code).where(Item.code.like("NEW-%"))))
    assert codes == {"NEW-2"}


@pytest.mark.parametrize("pretest", [
    {"items": ["PRE-1"], "positions": ["x"]}, {"items": ["PRE-1"], "positions": [None]},
    {"items": ["PRE-1"], "positions": 5}, "x", {"items": 5}, {"items": "PRE-1"},
])
def test_a_malformed_pretest_plan_is_a_422_naming_config(world, pretest) -> None:
    for method, path in (("post", "/api/v1/tests"), ("patch", f"/api/v1/tests/{world.test_id}")):
        body = {"config": {"pretest": pretest}}
        if method == "post":
            body["name"] = f"T-{uuid.uuid4().hex[:8]}"
        r = world.call(method, path, "admin1", json=body)
        assert r.status_code == 422, (method, pretest, r.get_json())
        assert "pretest" in r.get_json()["detail"]


def test_the_model_must_fit_how_the_item_is_scored(world) -> None:
    keyed = world.items["IT-012"]  # four options, a key: right or wrong
    r = world.call("post", f"{API}/{keyed}/parameter-sets", "assessor1",
                   json={"model": "grm", "a": 1.2, "thresholds": [-1, 0, 1]})
    assert r.status_code == 422 and "scored right or wrong" in r.get_json()["detail"]
    assert world.call("patch", f"{API}/{keyed}", "assessor1",
                      json={"key": None}).status_code == 200  # now a rating item, 4 categories
    r = world.call("post", f"{API}/{keyed}/parameter-sets", "assessor1",
                   json={"model": "gpcm", "a": 1.0, "thresholds": [-1, 1]})
    assert r.status_code == 422 and "rated in 4 categories" in r.get_json()["detail"]
    r = world.call("post", f"{API}/{keyed}/parameter-sets", "assessor1",
                   json={"model": "gpcm", "a": 1.0, "thresholds": [-1, 0, 1]})
    assert r.status_code == 201, r.get_json()
