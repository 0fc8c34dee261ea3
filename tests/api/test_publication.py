"""Publishing a calibration run safely, over HTTP on SQLite and PostgreSQL: items with category C
DIF or misfit are not published by default, and an unanchored re-calibration of operational items
is refused unless it is linked onto the bank's scale (or publishing it unlinked is confirmed).

The linking test draws its sample from N(0.8, 1.3^2) on the bank's scale: an unanchored run puts
that sample at N(0, 1), so ``theta_bank = 1.3 theta_run + 0.8`` is the transformation linking must
recover, and the linked estimates must land back on the bank's parameters.
"""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from item_bank.models import Item, ItemParameterSet
from tests.api.test_calibration_api import (
    BASE,
    _all_items,
    _bank_parameters,
    _session,
    _upload,
    _wait,
)

BANK = [f"IT-{j:03d}" for j in range(30)]


def responses_csv(truth: dict[str, dict], n_persons: int, seed: int, *, mean: float = 0.0,
                  sd: float = 1.0, focal_shift: dict[str, float] | None = None,
                  bumpy: tuple[str, ...] = (), groups: tuple[str, ...] = ("A", "B")) -> str:
    """Long CSV of 2PL responses (``groups`` in turn) at theta ~ N(mean, sd^2).

    ``focal_shift`` makes an item harder by that many logits for every group but the first (DIF);
    ``bumpy`` items follow no monotone curve (correct often at the low end too: misfit).
    """
    rng = np.random.default_rng(seed)
    codes = list(truth)
    theta = mean + sd * rng.normal(size=n_persons)
    group = np.array(groups)[np.arange(n_persons) % len(groups)]
    a = np.array([truth[c]["a"] for c in codes])
    b = np.array([truth[c]["b"] for c in codes])
    shift = np.array([(focal_shift or {}).get(c, 0.0) for c in codes])
    b_person = b[None, :] + np.where(group[:, None] != groups[0], shift[None, :], 0.0)
    p = 1.0 / (1.0 + np.exp(-a[None, :] * (theta[:, None] - b_person)))
    for j, code in enumerate(codes):
        if code in bumpy:
            p[:, j] = np.select([theta > 0.5, theta < -1.0], [0.95, 0.6], 0.15)
    x = (rng.random(p.shape) < p).astype(int)
    lines = ["person_id,item_id,response,group"]
    for i in range(n_persons):
        lines += [f"P{i},{code},{x[i, j]},{group[i]}" for j, code in enumerate(codes)]
    return "\n".join(lines) + "\n"


def _run(world, content: str, **body) -> dict:
    upload = _upload(world, content)
    assert upload.status_code == 201, upload.get_json()
    r = world.call("post", f"{BASE}/runs", "assessor1",
                   json={"upload_id": upload.get_json()["id"], "model": "2pl", **body})
    assert r.status_code == 202, r.get_json()
    run = _wait(world, r.headers["Location"])
    assert run["status"] == "succeeded", run
    return run


def _parameter_sets(world) -> int:
    with _session(world) as session:
        return session.scalar(select(func.count()).select_from(ItemParameterSet))


def _active(world, code: str) -> ItemParameterSet:
    with _session(world) as session:
        item = session.scalar(select(Item).where(Item.code == code)
                              .options(selectinload(Item.parameter_sets)))
        active = item.active_parameters
        session.expunge_all()
        return active


def test_an_unanchored_recalibration_is_linked_onto_the_bank_scale_before_publishing(
        world) -> None:
    world.app.config["HUEY_URL"] = "immediate"
    truth = {c: {"a": p["a"], "b": p["b"]} for c, p in _bank_parameters(world, BANK).items()}
    run = _run(world, responses_csv(truth, n_persons=1500, seed=3, mean=0.8, sd=1.3))
    items = {e["item_id"]: e for e in _all_items(world, run["id"])}
    before = _parameter_sets(world)
    url = f"{BASE}/runs/{run['id']}/publish"

    # Before publishing: the scale review says what linking would do, item by item.
    r = world.call("get", f"{BASE}/runs/{run['id']}/scale?method=mean-sigma", "assessor1")
    assert r.status_code == 200, r.get_json()
    review = r.get_json()
    assert review["needs_decision"] and not review["anchored"]
    assert sorted(review["common"]) == sorted(BANK) and review["left_out"] == {}
    moment = review["linking"]
    b_run = np.array([items[c]["parameters"]["b"] for c in review["common"]])
    b_bank = np.array([truth[c]["b"] for c in review["common"]])
    assert moment["A"] == pytest.approx(b_bank.std() / b_run.std(), rel=1e-9)  # mean/sigma
    assert moment["B"] == pytest.approx(b_bank.mean() - moment["A"] * b_run.mean(), rel=1e-9)
    first = review["items"][0]
    assert first["linked"]["b"] == pytest.approx(moment["A"] * first["estimated"]["b"]
                                                 + moment["B"])
    assert first["bank"]["b"] == pytest.approx(truth[first["item_id"]]["b"])

    # Refused by default, naming the decision to take; nothing is written.
    r = world.call("post", url, "assessor1", json={})
    assert r.status_code == 422
    problem = r.get_json()
    assert "not anchored" in problem["detail"] and "30 of the items" in problem["detail"]
    assert problem["errors"][0]["field"] == "linking"
    assert _parameter_sets(world) == before

    r = world.call("post", url, "assessor1", json={"linking": "stocking-lord",
                                                   "items": BANK})
    assert r.status_code == 200, r.get_json()
    outcome = r.get_json()
    link = outcome["linking"]
    assert link["method"] == "stocking-lord" and len(link["common_items"]) == 30
    # The sample was N(0.8, 1.3^2) on the bank's scale and N(0, 1) on the run's.
    assert link["A"] == pytest.approx(1.3, abs=0.12)
    assert link["B"] == pytest.approx(0.8, abs=0.12)
    raw_b = np.array([items[c]["parameters"]["b"] for c in BANK])
    raw_a = np.array([items[c]["parameters"]["a"] for c in BANK])
    true_b = np.array([truth[c]["b"] for c in BANK])
    published = [_active(world, c) for c in BANK]
    b = np.array([p.b for p in published])
    a = np.array([p.a for p in published])
    np.testing.assert_allclose(b, link["A"] * raw_b + link["B"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a, raw_a / link["A"], rtol=1e-9)
    assert np.abs(raw_b - true_b).mean() > 0.5  # the run's own scale is far from the bank's
    assert np.abs(b - true_b).mean() < 0.15  # linked, they are back on it
    provenance = published[0].provenance
    assert provenance["scale"] == "linked"
    assert provenance["linking"]["A"] == pytest.approx(link["A"])
    assert provenance["estimated"]["parameters"]["b"] == pytest.approx(raw_b[0])
    assert provenance["se"]["b"] == pytest.approx(items[BANK[0]]["se"]["b"] * link["A"])
    assert "linked onto the bank's scale by stocking-lord" in outcome["run"]["message"]


def test_linking_is_refused_for_anchored_runs_and_unlinked_publishing_is_confirmed(
        world) -> None:
    world.app.config["HUEY_URL"] = "immediate"
    truth = {c: {"a": p["a"], "b": p["b"]} for c, p in
             _bank_parameters(world, BANK[:10]).items()}
    content = responses_csv({**truth, "PRE-1": {"a": 1.2, "b": 0.2}}, n_persons=400, seed=5)
    anchored = _run(world, content, anchor=True)
    r = world.call("post", f"{BASE}/runs/{anchored['id']}/publish", "assessor1",
                   json={"linking": "mean-sigma"})
    assert r.status_code == 422 and "anchored on the bank" in r.get_json()["detail"]
    r = world.call("post", f"{BASE}/runs/{anchored['id']}/publish", "assessor1",
                   json={"linking": "equipercentile"})
    assert r.status_code == 422
    unanchored = _run(world, content)
    r = world.call("post", f"{BASE}/runs/{unanchored['id']}/publish", "assessor1",
                   json={"items": ["IT-000"], "confirm_unlinked": True})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["linking"] is None
    item = {e["item_id"]: e for e in _all_items(world, unanchored["id"])}["IT-000"]
    active = _active(world, "IT-000")
    assert active.b == pytest.approx(item["parameters"]["b"])
    assert active.provenance["scale"] == "unlinked"


def test_items_with_c_dif_or_misfit_are_not_published_unless_named(world) -> None:
    world.app.config["HUEY_URL"] = "immediate"
    truth = {c: {"a": p["a"], "b": p["b"]} for c, p in
             _bank_parameters(world, BANK[:20]).items()}
    pretest = {"PRE-1": {"a": 1.3, "b": 0.0}, "PRE-2": {"a": 1.0, "b": 0.3}}
    content = responses_csv({**truth, **pretest}, n_persons=1200, seed=8,
                            focal_shift={"PRE-1": 1.5}, bumpy=("PRE-2",))
    run = _run(world, content, anchor=True)
    items = {e["item_id"]: e for e in _all_items(world, run["id"])}
    assert [d["category"] for d in items["PRE-1"]["dif"]] == ["C"]
    assert items["PRE-2"]["fit"]["misfit"] is True
    r = world.call("post", f"{BASE}/runs/{run['id']}/publish", "assessor1", json={})
    assert r.status_code == 200, r.get_json()
    outcome = r.get_json()
    assert outcome["published"] == []
    skipped = {s["item_id"]: s["reason"] for s in outcome["skipped"]}
    assert skipped["PRE-1"].startswith("DIF category C")
    assert "flagged for misfit" in skipped["PRE-2"]
    assert _active(world, "PRE-1") is None and _active(world, "PRE-2") is None


def test_a_named_c_dif_item_is_published(world) -> None:
    world.app.config["HUEY_URL"] = "immediate"
    truth = {c: {"a": p["a"], "b": p["b"]} for c, p in
             _bank_parameters(world, BANK[:20]).items()}
    content = responses_csv({**truth, "PRE-1": {"a": 1.3, "b": 0.0}}, n_persons=1200, seed=8,
                            focal_shift={"PRE-1": 1.5})
    run = _run(world, content, anchor=True)
    r = world.call("post", f"{BASE}/runs/{run['id']}/publish", "assessor1",
                   json={"items": ["PRE-1"]})
    assert r.status_code == 200, r.get_json()
    assert [p["item_id"] for p in r.get_json()["published"]] == ["PRE-1"]


def test_dif_groups_must_be_groups_of_the_data(world) -> None:
    world.app.config["HUEY_URL"] = "immediate"
    truth = {c: {"a": p["a"], "b": p["b"]} for c, p in
             _bank_parameters(world, BANK[:10]).items()}
    content = responses_csv({**truth, "PRE-1": {"a": 1.2, "b": 0.0}}, n_persons=600, seed=2,
                            groups=("girls", "boys", "other"), focal_shift={"PRE-1": 1.5})
    upload = _upload(world, content).get_json()
    assert upload["groups"] == [{"group": "boys", "persons": 200},
                                {"group": "girls", "persons": 200},
                                {"group": "other", "persons": 200}]
    body = {"upload_id": upload["id"], "anchor": True}
    for settings, field, words in (
            ({"dif_reference": "Girls"}, "settings.dif_reference", "'Girls' is not a group"),
            ({"dif_focal": ["boys", "nobody"]}, "settings.dif_focal", "'nobody' not a group"),
            ({"dif_reference": "girls", "dif_focal": ["girls"]}, "settings.dif_focal",
             "must not hold the reference group 'girls'")):
        r = world.call("post", f"{BASE}/runs", "assessor1", json=body | {"settings": settings})
        assert r.status_code == 422, r.get_json()
        assert words in r.get_json()["detail"]
        assert "groups: 'boys', 'girls', 'other'" in r.get_json()["detail"] or "reference" in words
        assert r.get_json()["errors"][0]["field"] == field
    run = _run(world, content, anchor=True,
               settings={"dif_reference": "girls", "dif_focal": ["other"]})
    items = {e["item_id"]: e for e in _all_items(world, run["id"])}
    assert [(d["reference"], d["focal"], d["category"]) for d in items["PRE-1"]["dif"]] == [
        ("girls", "other", "C")]
