"""Items in several languages: translations over the API, attempts in a language (with the
source text where an item has no version in it), the class's default test language, CSV and
QTI with languages, parameters per language, and DIF by test language on simulated data."""

from __future__ import annotations

import io
import math
import zipfile

import numpy as np
import pytest
from sqlalchemy import select

from api.db import engine_of
from api.services.language_dif import language_dif
from evidence.models import Attempt, AttemptStatus, Response
from item_bank.models import AdaptiveTest, Item
from item_bank.services import (
    BankError,
    add_parameter_set,
    build_delivery,
    check_language,
    snapshot_content,
)
from item_bank.translations import set_translation
from storage import session_factory, session_scope, utcnow
from storage.accounts import Role, User
from storage.rights import Consent, Purpose
from tests.api.conftest import PASSWORD


def _db(world):
    return session_scope(session_factory(engine_of(world.app)))


def _arabic(j: int) -> dict:
    return {"stem": f"السؤال {j}: كم يساوي {j} + 1؟",
            "options": [f"{j} (ع)", f"{j + 1} (ع)", f"{j + 2} (ع)", f"{j + 3} (ع)"],
            "rationale": "أضف واحدًا."}


def _translate_bank(world, language: str = "ar", skip: tuple[str, ...] = ()) -> None:
    with _db(world) as session:
        for item in session.scalars(select(Item).where(Item.code.like("IT-%"))):
            if item.code not in skip:
                set_translation(session, item, language, **_arabic(int(item.code[3:])))


# -- language tags and the translations API ------------------------------------------------------


@pytest.mark.parametrize("tag, canonical", [("ar", "ar"), ("pt-br", "pt-BR"), ("ES", "es"),
                                            ("zh-hant-tw", "zh-Hant-TW"), ("es-419", "es-419")])
def test_language_tags_are_canonical(tag: str, canonical: str) -> None:
    assert check_language(tag) == canonical


@pytest.mark.parametrize("tag", ["", "a", "arabic", "ar_EG", "en-", "12", "ar-EG-x", None, 5])
def test_other_text_is_no_language_tag(tag) -> None:
    with pytest.raises(BankError, match="not a language tag") as caught:
        check_language(tag)
    assert caught.value.field == "language"


def test_translations_over_the_api(world) -> None:
    item_id = world.items["IT-001"]
    path = f"/api/v1/items/{item_id}/translations/ar"
    assert world.call("get", path, "assessor1").status_code == 404
    r = world.call("put", path, "assessor1", json=_arabic(1))
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["language"] == "ar" and body["source_language"] == "en"
    assert body["options"] == _arabic(1)["options"] and body["source_version"] == 1
    detail = world.call("get", f"/api/v1/items/{item_id}", "assessor1").get_json()
    assert detail["language"] == "en"
    assert detail["translations"]["ar"]["stem"] == _arabic(1)["stem"]
    # pt-br is kept as pt-BR
    r = world.call("put", f"/api/v1/items/{item_id}/translations/pt-br", "assessor1",
                   json={"stem": "Quanto é 1 + 1?", "options": ["1", "2", "3", "4"]})
    assert r.status_code == 200 and r.get_json()["language"] == "pt-BR"
    assert world.call("delete", path, "assessor1").status_code == 204
    assert world.call("get", path, "assessor1").status_code == 404
    assert world.call("delete", path, "assessor1").status_code == 404


@pytest.mark.parametrize("language, body, field", [
    ("ar", {"stem": "س", "options": ["1", "2"]}, "options"),  # the item has 4
    ("ar", {"stem": " ", "options": ["a", "b", "c", "d"]}, "stem"),
    ("ar", {"stem": "س", "options": ["a", "", "c", "d"]}, "options"),
    ("en", {"stem": "Again", "options": ["a", "b", "c", "d"]}, "language"),  # its own
    ("arabic", {"stem": "س", "options": ["a", "b", "c", "d"]}, "language"),
])
def test_a_translation_the_bank_refuses_names_the_field(world, language, body, field) -> None:
    r = world.call("put", f"/api/v1/items/{world.items['IT-001']}/translations/{language}",
                   "assessor1", json=body)
    assert r.status_code == 422, r.get_json()
    problem = r.get_json()
    assert field in str(problem), problem
    with _db(world) as session:
        assert not session.get(Item, world.items["IT-001"]).translations


def test_students_and_teachers_cannot_touch_translations(world) -> None:
    path = f"/api/v1/items/{world.items['IT-001']}/translations/ar"
    for user in ("student1", "teacher1"):
        assert world.call("put", path, user, json=_arabic(1)).status_code == 403


def test_an_items_option_count_cannot_drift_from_its_translations(world) -> None:
    item_id = world.items["IT-002"]
    world.call("put", f"/api/v1/items/{item_id}/translations/ar", "assessor1", json=_arabic(2))
    r = world.call("patch", f"/api/v1/items/{item_id}", "assessor1",
                   json={"options": ["1", "2", "3"], "key": 1})
    assert r.status_code == 422 and "translations (ar)" in r.get_json()["detail"]


# -- attempts in a language ----------------------------------------------------------------------


def test_an_attempt_in_arabic_shows_the_arabic_text_and_the_source_where_none(world) -> None:
    _translate_bank(world, skip=("IT-000", "IT-001", "IT-002", "IT-003", "IT-004", "IT-005"))
    r = world.call("post", "/api/v1/attempts", "student1",
                   json={"test_id": world.test_id, "language": "ar"})
    assert r.status_code == 201, r.get_json()
    attempt_id = r.get_json()["id"]
    shown = []
    reply = r.get_json()
    while reply["status"] == "in_progress":
        item = reply["item"]
        shown.append(item)
        reply = world.answer("student1", attempt_id, item["id"], 1).get_json()
    with _db(world) as session:
        assert session.get(Attempt, attempt_id).language == "ar"
        codes = {i.id: i.code for i in session.scalars(select(Item))}
    for item in shown:
        code = codes[item["id"]]
        if code.startswith("IT-") and int(code[3:]) > 5:
            assert item["language"] == "ar" and item["stem"] == _arabic(int(code[3:]))["stem"]
            assert item["options"] == _arabic(int(code[3:]))["options"]
        else:  # no Arabic version (pretest items, the first six): the source text
            assert item["language"] == "en" and "السؤال" not in item["stem"]
    view = world.call("get", f"/api/v1/attempts/{attempt_id}", "teacher1").get_json()
    assert view["language"] == "ar"


def test_a_language_the_test_is_not_offered_in_is_refused(world) -> None:
    _translate_bank(world, "ar")
    for language, text in (("fr", "not offered in 'fr'"), ("klingon", "not a language tag")):
        r = world.call("post", "/api/v1/attempts", "student1",
                       json={"test_id": world.test_id, "language": language})
        assert r.status_code == 422 and text in r.get_json()["detail"], r.get_json()
    with _db(world) as session:
        assert session.scalar(select(Attempt.id)) is None  # nothing half-started


def test_the_language_is_kept_for_the_whole_attempt(world) -> None:
    _translate_bank(world, "ar")
    _translate_bank(world, "es")
    first = world.call("post", "/api/v1/attempts", "student1",
                       json={"test_id": world.test_id, "language": "es"})
    again = world.call("post", "/api/v1/attempts", "student1",
                       json={"test_id": world.test_id, "language": "ar"})
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["item"]["language"] == first.get_json()["item"]["language"]


def test_the_class_default_test_language_applies(world) -> None:
    _translate_bank(world, "ar")
    r = world.call("patch", f"/api/v1/classes/{world.class_id}", "teacher1",
                   json={"test_language": "AR"})
    assert r.status_code == 200 and r.get_json()["test_language"] == "ar"
    bad = world.call("patch", f"/api/v1/classes/{world.class_id}", "teacher1",
                     json={"test_language": "ar_EG"})
    assert bad.status_code == 422 and "test_language" in str(bad.get_json())
    r = world.call("post", "/api/v1/attempts", "student2", json={"test_id": world.test_id})
    assert r.status_code == 201
    with _db(world) as session:
        assert session.get(Attempt, r.get_json()["id"]).language == "ar"
    cleared = world.call("patch", f"/api/v1/classes/{world.class_id}", "teacher1",
                         json={"test_language": None})
    assert cleared.get_json()["test_language"] is None


def test_a_new_translation_makes_a_new_snapshot(world) -> None:
    r = world.call("post", "/api/v1/attempts", "student1", json={"test_id": world.test_id})
    with _db(world) as session:
        before = session.get(Attempt, r.get_json()["id"]).snapshot_id
    _translate_bank(world, "ar")
    r2 = world.call("post", "/api/v1/attempts", "student2",
                    json={"test_id": world.test_id, "language": "ar"})
    with _db(world) as session:
        after = session.get(Attempt, r2.get_json()["id"]).snapshot_id
        assert after != before
        from item_bank.models import BankSnapshot
        content = session.get(BankSnapshot, after).content
        assert all("ar" in e["translations"] for e in content["items"])


def test_parameters_of_a_language_are_used_for_attempts_in_it(world) -> None:
    with _db(world) as session:
        item = session.scalar(select(Item).where(Item.code == "IT-010"))
        add_parameter_set(session, item, {"model": "2pl", "a": 1.0, "b": 2.5},
                          source="calibration", language="ar")
        general = item.active_parameters.as_dict()
        test = session.get(AdaptiveTest, world.test_id)
        content = snapshot_content(session, test)
        # the general set stays active beside the Arabic one
        assert len([p for p in item.parameter_sets if p.is_active]) == 2
    entry = next(e for e in content["items"] if e["code"] == "IT-010")
    assert entry["language_parameters"]["ar"]["b"] == 2.5
    arabic = build_delivery(content, language="ar")
    english = build_delivery(content, language="en")
    at = arabic.bank.index_of("IT-010")
    assert arabic.bank.b[at] == 2.5 and english.bank.b[at] == pytest.approx(general["b"])


# -- files ---------------------------------------------------------------------------------------


CSV = """item_id,language,stem,option_1,option_2,key,skill,status
L-1,en,Two plus two?,4,5,1,arith,draft
L-1,ar,اثنان زائد اثنان؟,4,5,,,
L-2,es,¿Tres?,3,5,1,arith,draft
"""


def _import(world, text: str, mode: str = "create"):
    return world.call("post", "/api/v1/items/import", "assessor1",
                      data={"file": (io.BytesIO(text.encode()), "items.csv"), "mode": mode},
                      content_type="multipart/form-data")


def test_a_csv_with_languages_imports_items_and_translations(world) -> None:
    r = _import(world, CSV + "IT-003,ar,السؤال 3,3,4,,,\n")
    assert r.status_code == 422  # IT-003 has 4 options: the row's line and field are named
    problem = r.get_json()
    assert problem["errors"][0]["line"] == 5 and problem["errors"][0]["field"] == "options"
    assert "IT-003" in problem["errors"][0]["message"], problem
    with _db(world) as session:
        assert session.scalar(select(Item).where(Item.code == "L-1")) is None  # all or nothing
    wrong_key = CSV.replace("L-1,ar,اثنان زائد اثنان؟,4,5,,,", "L-1,ar,اثنان زائد اثنان؟,4,5,2,,")
    problem = _import(world, wrong_key).get_json()
    assert "line 3, column 'key'" in problem["detail"], problem
    r = _import(world, CSV)
    assert r.status_code == 200, r.get_json()
    with _db(world) as session:
        one = session.scalar(select(Item).where(Item.code == "L-1"))
        two = session.scalar(select(Item).where(Item.code == "L-2"))
        assert one.language == "en" and one.translations[0].language == "ar"
        assert one.translations[0].options == ["4", "5"] and one.key == 0
        assert two.language == "es" and not two.translations
    exported = world.call("get", "/api/v1/items/export?format=csv", "assessor1")
    lines = exported.get_data(as_text=True).splitlines()
    assert lines[0].startswith("item_id,language,stem")
    assert "L-1,ar,اثنان زائد اثنان؟,4,5" in exported.get_data(as_text=True)
    assert "L-2,es,¿Tres?" in exported.get_data(as_text=True)
    package = world.call("get", "/api/v1/items/export?format=qti-zip", "assessor1").get_data()
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        assert "items/L-1.ar.xml" in archive.namelist()
        arabic = archive.read("items/L-1.ar.xml").decode()
        assert 'xml:lang="ar"' in arabic and "اثنان زائد اثنان؟" in arabic
        assert 'xml:lang="en"' in archive.read("items/L-1.xml").decode()


def test_a_row_in_another_language_translates_an_item_of_the_bank(world) -> None:
    text = "item_id,language,stem,option_1,option_2,option_3,option_4\n" \
           "IT-003,ar,السؤال 3,3,4,5,6\n"
    r = _import(world, text)  # mode create: a translation is no clash
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["items"][0]["outcome"] == "updated"
    with _db(world) as session:
        item = session.get(Item, world.items["IT-003"])
        assert [t.language for t in item.translations] == ["ar"]
        assert item.stem.startswith("Question 3") and item.version == 1  # the source is kept
    bad = "item_id,language,stem,option_1,option_2,option_3,option_4,key,model,a,b\n" \
          "IT-004,ar,السؤال 4,4,5,6,7,3,2pl,1,0\n"
    r = _import(world, bad, mode="upsert")
    assert r.status_code == 422 and "parameters" in str(r.get_json())


def test_a_qti_file_in_another_language_translates_an_item(world) -> None:
    from item_bank.interchange import ItemRecord, write_qti_item
    record = ItemRecord(item_id="IT-005", stem="السؤال 5", options=["5", "6", "7", "8"], key=1,
                        language="ar")
    r = world.call("post", "/api/v1/items/import", "assessor1",
                   data={"file": (io.BytesIO(write_qti_item(record)), "it5.xml"),
                         "mode": "upsert"}, content_type="multipart/form-data")
    assert r.status_code == 200, r.get_json()
    with _db(world) as session:
        item = session.get(Item, world.items["IT-005"])
        assert item.translations[0].stem == "السؤال 5" and item.version == 1


# -- DIF by test language ------------------------------------------------------------------------


def _simulate(world, *, harder: str, shift: float, n_per_language: int = 300,
              seed: int = 11, pretest: dict[str, float] | None = None) -> None:
    """Finished attempts of consenting students in English and Arabic, each answering 12 of
    the first 30 items by the 2PL with their bank parameters, ``harder`` made ``shift``
    logits harder in Arabic. ``pretest`` adds an unscored pretest item (code: b, a = 1.2)
    that everyone answers, ``shift`` logits harder in Arabic too."""
    rng = np.random.default_rng(seed)
    now = utcnow()
    with _db(world) as session:
        items = session.scalars(select(Item).where(Item.code.like("IT-0%"))
                                .order_by(Item.code)).all()[:30]
        a = np.array([i.active_parameters.a for i in items])
        b = np.array([i.active_parameters.b for i in items])
        harder_at = [i.code for i in items].index(harder) if harder else -1
        students = []
        for k in range(2 * n_per_language):
            user = User(username=f"sim{k}", display_name="", role=Role.STUDENT,
                        password_hash="x")
            session.add(user)
            students.append(user)
        session.flush()
        session.add_all(Consent(student_id=u.id, purpose=Purpose.RESEARCH, granted=True)
                        for u in students)
        attempts, answers = [], []
        for k, user in enumerate(students):
            language = "en" if k < n_per_language else "ar"
            theta = rng.normal()
            given = rng.choice(len(items), 12, replace=False)
            if harder_at >= 0 and harder_at not in given:  # all answer the item under study
                given[0] = harder_at
            shifted = b + (shift if language == "ar" else 0.0) * (np.arange(len(items))
                                                                  == harder_at)
            p = 1 / (1 + np.exp(-a[given] * (theta - shifted[given])))
            attempts.append(Attempt(test_id=world.test_id, user_id=user.id,
                                    status=AttemptStatus.FINISHED, language=language,
                                    theta=float(theta), se=0.3, finished_at=now))
            answers.append([(items[j].id, int(u < q), True)
                            for j, u, q in zip(given, rng.random(12), p, strict=True)])
            for code, b_new in (pretest or {}).items():
                b_new += shift if language == "ar" else 0.0
                correct = rng.random() < 1 / (1 + np.exp(-1.2 * (theta - b_new)))
                answers[-1].append((world.items[code], int(correct), False))
        session.add_all(attempts)
        session.flush()
        session.add_all(Response(attempt_id=attempt.id, item_id=item_id, position=n + 1,
                                 response=x, choice=x, scored=scored)
                        for attempt, given in zip(attempts, answers, strict=True)
                        for n, (item_id, x, scored) in enumerate(given))


def test_dif_by_language_flags_the_item_made_harder_in_arabic(world) -> None:
    _simulate(world, harder="IT-007", shift=1.5)
    with _db(world) as session:
        analysis = language_dif(session, world.test_id)
    assert analysis["reference"] == "en" and analysis["groups"] == {"ar": 300, "en": 300}
    report = analysis["reports"][0]
    assert report["focal"] == "ar"
    rows = {r["item_id"]: r for r in report["mantel_haenszel"]}
    assert rows["IT-007"]["category"] in ("B", "C") and rows["IT-007"]["delta_mh"] < -1
    assert rows["IT-007"]["favours"] == "reference"
    others = [r for code, r in rows.items() if code != "IT-007"]
    flagged = [r["item_id"] for r in others if r["category"] != "A"]
    assert len(flagged) <= 2, flagged  # the others mostly not (false positives at 5%)
    assert "IT-007" in analysis["flagged"]


def test_dif_by_language_needs_two_languages(world) -> None:
    from storage.errors import Invalid
    with _db(world) as session, pytest.raises(Invalid, match="no finished attempts"):
        language_dif(session, world.test_id)


def test_calibrating_languages_separately_gives_a_parameter_set_per_language(world) -> None:
    from tests.api.test_calibration_api import _all_items, _wait
    world.app.config["HUEY_URL"] = "immediate"
    _simulate(world, harder="", shift=1.0, n_per_language=400, pretest={"PRE-1": 0.0})
    body = {"kind": "online", "test_id": world.test_id, "model": "2pl", "items": ["PRE-1"],
            "settings": {"min_responses": 100, "languages_separately": True}}
    refused = world.call("post", "/api/v1/calibration/runs", "assessor1",
                         json={**body, "kind": "upload", "upload_id": 1})
    assert refused.status_code == 422 and "languages_separately" in str(refused.get_json())
    r = world.call("post", "/api/v1/calibration/runs", "assessor1", json=body)
    assert r.status_code == 202, r.get_json()
    run = _wait(world, r.headers["Location"])
    assert run["status"] == "succeeded", run
    items = {e["item_id"]: e for e in _all_items(world, run["id"]) if not e["fixed"]}
    assert set(items) == {"PRE-1", "PRE-1@ar"}  # English (the item's own) pooled; Arabic apart
    assert items["PRE-1"]["n"] == 400 and items["PRE-1@ar"]["n"] == 400
    gap = items["PRE-1@ar"]["parameters"]["b"] - items["PRE-1"]["parameters"]["b"]
    se = math.hypot(items["PRE-1"]["se"]["b"], items["PRE-1@ar"]["se"]["b"])
    # simulated: 1 logit harder in Arabic; within 3 standard errors, and clearly apart
    assert abs(gap - 1.0) < 3 * se and gap > 0.4, (gap, se)
    r = world.call("post", f"/api/v1/calibration/runs/{run['id']}/publish", "admin1",
                   json={"items": ["PRE-1", "PRE-1@ar"]})
    assert r.status_code == 200, r.get_json()
    with _db(world) as session:
        item = session.get(Item, world.items["PRE-1"])
        assert item.active_parameters.b == pytest.approx(items["PRE-1"]["parameters"]["b"])
        arabic = item.language_parameters["ar"]
        assert arabic.b == pytest.approx(items["PRE-1@ar"]["parameters"]["b"])
        assert arabic.calibration_run_id == run["id"]
    # pooled (the default): one set from every language's responses
    pooled = {**body, "settings": {"min_responses": 100}}
    run = _wait(world, world.call("post", "/api/v1/calibration/runs", "assessor1",
                                  json=pooled).headers["Location"])
    estimated = [e for e in _all_items(world, run["id"]) if not e["fixed"]]
    assert [(e["item_id"], e["n"]) for e in estimated] == [("PRE-1", 800)]


def _page_client(world, username: str):
    from tests.delivery_ui.conftest import csrf_of
    client = world.app.test_client()
    token = csrf_of(client.get("/").get_data(as_text=True))
    r = client.post("/sign-in", data={"username": username, "password": PASSWORD,
                                      "csrf_token": token})
    assert r.status_code == 302
    return client, csrf_of


def test_dif_by_language_is_one_click_on_the_run_page(world, browser) -> None:
    from axe_playwright_python.sync_playwright import Axe

    from tests.api.test_calibration_api import _wait
    from tests.conftest import ARTIFACTS, LiveServer, save_screenshot
    world.app.config["HUEY_URL"] = "immediate"
    _simulate(world, harder="IT-007", shift=1.5, pretest={"PRE-1": 0.0})
    with _db(world) as session:
        set_translation(session, session.get(Item, world.items["IT-007"]), "ar", **_arabic(7))
    r = world.call("post", "/api/v1/calibration/runs", "assessor1",
                   json={"kind": "online", "test_id": world.test_id, "model": "2pl",
                         "items": ["PRE-1"]})
    run = _wait(world, r.headers["Location"])
    assert run["status"] == "succeeded", run
    client, csrf_of = _page_client(world, "assessor1")
    page = client.get(f"/assess/calibration/runs/{run['id']}").get_data(as_text=True)
    assert "Compute DIF by language" in page and "language-dif-flagged" not in page
    r = client.post(f"/assess/calibration/runs/{run['id']}/language-dif",
                    data={"csrf_token": csrf_of(page)})
    assert r.status_code == 303 and r.headers["Location"].endswith("#language-dif")
    page = client.get(f"/assess/calibration/runs/{run['id']}").get_data(as_text=True)
    table = page[page.index('id="language-dif-flagged"'):page.index("</table>",
                                                                    page.index("language-dif"))]
    assert "IT-007" in table and "العربية" in table and "large for group ar" in table
    with _db(world) as session:
        from item_bank.models import CalibrationRun
        stored = session.get(CalibrationRun, run["id"]).result["language_dif"]
        assert "IT-007" in stored["flagged"] and stored["groups"] == {"ar": 300, "en": 300}
    # how it looks, and the item page's other languages
    with LiveServer(world.app) as live:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        try:
            tab.goto(live.url + "/")
            tab.fill("#username", "assessor1")
            tab.fill("#password", PASSWORD)
            with tab.expect_navigation():
                tab.locator("form button[type=submit]").first.click()
            tab.goto(f"{live.url}/assess/calibration/runs/{run['id']}#language-dif")
            assert tab.locator("#language-dif-flagged tbody tr").count() >= 1
            serious = [v for v in Axe().run(tab).response["violations"]
                       if v["impact"] in ("serious", "critical")]
            assert serious == [], serious
            save_screenshot(tab, "run-language-dif-page")
            tab.locator("section[aria-labelledby=language-dif]").screenshot(
                path=str(ARTIFACTS / "run-language-dif.png"))
            tab.goto(f"{live.url}/assess/items/{world.items['IT-007']}")
            arabic = tab.locator("#translations [lang=ar]")
            assert arabic.get_attribute("dir") == "rtl"
            assert "السؤال 7" in arabic.inner_text()
            serious = [v for v in Axe().run(tab).response["violations"]
                       if v["impact"] in ("serious", "critical")]
            assert serious == [], serious
            save_screenshot(tab, "item-translations")
        finally:
            context.close()
