"""What people put in: item sizes, spreadsheet formulas in CSV exports, look-alike usernames."""

from __future__ import annotations

import io

import pytest

from item_bank.interchange import read_items_csv
from item_bank.services import MAX_OPTIONS, MAX_STEM_LENGTH
from tests.api.conftest import PASSWORD

# -- sizes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, field", [
    ({"stem": "x" * (10 * 2**20)}, "stem"),  # 10 MB
    ({"options": [f"o{k}" for k in range(100_000)]}, "options"),
    ({"options": ["a", "b" * 20_000]}, "options"),
    ({"rationale": "r" * 100_000}, "rationale"),
    ({"media": [f"/m/{k}.png" for k in range(1000)]}, "media"),
])
def test_item_content_is_capped_on_the_json_api(world, change, field) -> None:
    world.app.config["MAX_CONTENT_LENGTH"] = 64 * 2**20  # the cap, not the body limit, refuses
    body = {"code": "HUGE-1", "stem": "s", "options": ["a", "b"], "key": 0, "skill": "algebra",
            **change}
    r = world.call("post", "/api/v1/items", "assessor1", json=body)
    assert r.status_code == 422, r.get_json()
    assert any(field in e["field"] for e in r.get_json()["errors"]), r.get_json()
    item_id = world.items["IT-002"]
    r = world.call("patch", f"/api/v1/items/{item_id}", "assessor1", json=change)
    assert r.status_code == 422 and field in r.get_json()["detail"]


def test_the_services_cap_what_files_bring_too(world) -> None:
    """A CSV import meets the same caps, naming line, item and field."""
    options = ",".join(f"o{k}" for k in range(MAX_OPTIONS + 1))
    header = ",".join(f"option_{k}" for k in range(1, MAX_OPTIONS + 2))
    text = (f"item_id,stem,{header},key,skill\r\nWIDE-1,s,{options},1,algebra\r\n"
            f"LONG-1,{'x' * (MAX_STEM_LENGTH + 1)},a,b{',' * (MAX_OPTIONS - 1)},1,algebra\r\n")
    r = world.call("post", "/api/v1/items/import", "assessor1", content_type="multipart/form-data",
                   data={"file": (io.BytesIO(text.encode()), "items.csv")})
    assert r.status_code == 422, r.get_json()
    messages = " ".join(e["message"] for e in r.get_json()["errors"])
    assert f"at most {MAX_OPTIONS} options" in messages and "line 2" in messages
    assert "stem must be at most" in messages and "line 3" in messages


# -- CSV injection -------------------------------------------------------------------------------

FORMULAS = ["=1+2", "+SUM(A1)", "-2+3", "@cmd", "\tTAB", "\rCR", "'quoted", "'=already"]


def test_csv_exports_defuse_formulas_and_imports_restore_them(world) -> None:
    for k, text in enumerate(FORMULAS):
        r = world.call("post", "/api/v1/items", "assessor1", json={
            "code": f"F-{k}", "stem": text, "options": [text, "plain"], "key": 0,
            "rationale": text, "skill": "formulas", "content_tags": ["=tag"]})
        assert r.status_code == 201, (text, r.get_json())
    r = world.call("get", "/api/v1/items/export?format=csv&skill=formulas", "assessor1")
    exported = r.get_data(as_text=True)
    records = {rec.item_id: rec for rec in read_items_csv(exported)}
    import csv

    cells = [c for row in csv.reader(io.StringIO(exported, newline="")) for c in row]
    for text in FORMULAS:  # no cell starts with a trigger: each is text to a spreadsheet
        assert text not in cells, text
        assert "'" + text in cells, text
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")]
    for k, text in enumerate(FORMULAS):  # and reading the file back gives the same text
        record = records[f"F-{k}"]
        assert (record.stem, record.options[0], record.rationale) == (text, text, text)
        assert record.content_tags == ["=tag"]
    # Exported, deleted from view, imported again: the bank gets the text as it was.
    body = exported.replace("F-", "G-")
    r = world.call("post", "/api/v1/items/import", "assessor1", content_type="multipart/form-data",
                   data={"file": (io.BytesIO(body.encode()), "again.csv"), "mode": "create"})
    assert r.status_code == 200, r.get_json()
    gid = next(i["id"] for i in r.get_json()["items"] if i["code"] == "G-0")
    assert world.call("get", f"/api/v1/items/{gid}", "assessor1").get_json()["stem"] == "=1+2"


def test_numbers_are_not_quoted(world) -> None:
    exported = world.call("get", "/api/v1/items/export?format=parameters-csv",
                          "assessor1").get_data(as_text=True)
    assert ",-" in exported  # negative difficulties stay numbers
    assert ",'-" not in exported


# -- usernames -----------------------------------------------------------------------------------


def _create(world, username: str):
    return world.call("post", "/api/v1/users", "admin1", json={
        "username": username, "role": "student", "password": PASSWORD})


def test_look_alike_usernames_are_folded_or_refused(world) -> None:
    # Full-width letters are the same letters: folded (NFKC), so this is student1 again.
    r = _create(world, "\uff53\uff54\uff55\uff44\uff45\uff4e\uff54\uff11")
    assert r.status_code == 409 and "student1" in r.get_json()["detail"], r.get_json()
    r = _create(world, "\uff4e\uff45\uff57\uff11")  # full-width "new1"
    assert r.status_code == 201 and r.get_json()["username"] == "new1"
    # A Cyrillic letter among Latin ones looks like "admin1" but is not: refused, named.
    r = _create(world, "\u0430dmin1")
    assert r.status_code == 422 and r.get_json()["errors"][0]["field"].endswith("username")
    assert "cyrillic" in r.get_json()["detail"] and "latin" in r.get_json()["detail"]
    # One script is fine, whichever it is.
    assert _create(world, "\u0438\u0432\u0430\u043d").status_code == 201  # ivan in Cyrillic
    assert _create(world, "\u3055\u304f\u3089\u685c").status_code == 201  # kana and kanji
    # Signing in with the full-width form of a username finds the account.
    r = world.client.post("/api/v1/auth/token", json={
        "username": "\uff4e\uff45\uff57\uff11", "password": PASSWORD})
    assert r.status_code == 200, r.get_json()
