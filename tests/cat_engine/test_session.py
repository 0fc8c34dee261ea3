"""The live test session: its state machine, its persistence, and what it reports.

Responses come from a deterministic responder (a fixed uniform number per item compared with the
model probability at a true theta), so a session, its rebuilt copies and a session without pretest
items all receive the same answer to the same item.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import norm

from cat_engine import CATConfig, CATSession, ItemBank
from cat_engine.errors import CATError, InvalidResponseError, UnknownItemError
from cat_engine.exposure import ExposureStats
from cat_engine.models import information, log_likelihood, p_correct

TAGS = ("algebra", "geometry", "number")


def make_bank(n_items: int = 200, seed: int = 0) -> ItemBank:
    rng = np.random.default_rng(seed)
    records = []
    for j in range(n_items):
        three = j % 3 == 0
        records.append({
            "item_id": f"i{j}",
            "model": "3pl" if three else "2pl",
            "a": float(rng.uniform(0.6, 2.2)),
            "b": float(rng.normal(0, 1.1)),
            "c": 0.2 if three else 0.0,
            "content": [TAGS[j % 3]],
        })
    for k in range(1, 4):  # pretest items, calibrated provisionally
        records.append({"item_id": f"P{k}", "model": "2pl", "a": 1.0, "b": 0.5 * k - 1})
    return ItemBank.from_records(records)


BANK = make_bank()
SCORED_IDS = [i for i in BANK.item_ids if i.startswith("i")]
PRETEST = {"items": ["P1", "P2", "P3"], "positions": [2, 5, 9]}
_UNIFORM = dict(
    zip(BANK.item_ids, np.random.default_rng(99).random(len(BANK)).tolist(), strict=True)
)


def respond(item_id: str, true_theta: float = 0.4) -> int:
    """The same response to the same item, every time (for a given true theta)."""
    j = BANK.index_of(item_id)
    return int(_UNIFORM[item_id] < float(p_correct(BANK, j, true_theta)))


def run(session: CATSession, true_theta: float = 0.4) -> CATSession:
    while not session.finished:
        item = session.next_item()
        session.answer(item, respond(item, true_theta))
    return session


STOP = {"se": 0.3, "max_items": 16}
CONFIGS = {
    "mfi-none": {},
    "randomesque": {"exposure": {"method": "randomesque", "n": 5}},
    "progressive": {"exposure": {"method": "progressive"}},
    "kl": {"selection": {"method": "kl"}},
    "mpwi": {"selection": {"method": "mpwi"}},
    "mepv": {"selection": {"method": "mepv"}},
    "astrat": {"selection": {"method": "astrat", "strata": 4}},
    "sympson-hetter": {
        "exposure": {
            "method": "sympson-hetter",
            "r_max": 0.2,
            "k": np.random.default_rng(5).uniform(0.2, 1.0, len(BANK)).round(3).tolist(),
        }
    },
    "shadow": {
        "constraints": {
            "method": "shadow",
            "content": [{"tag": "algebra", "min": 5, "max": 6}, {"tag": "geometry", "min": 4}],
        }
    },
    "pretest": {"pretest": PRETEST, "exposure": {"method": "randomesque", "n": 3}},
    "random-start-eligibility": {
        "start": {"random": [-1, 1]},
        "exposure": {"method": "eligibility", "r_max": 0.3},
    },
}


def config(name: str) -> dict:
    return {**CONFIGS[name], "stopping": STOP}


def roundtrip(session: CATSession) -> CATSession:
    data = json.loads(json.dumps(session.to_json()))
    return CATSession.from_json(BANK, data)


def summary(session: CATSession) -> list[tuple]:
    return [(h.item_id, h.position, h.response, h.scored) for h in session.history]


# -- the state machine -------------------------------------------------------------------------


def test_a_session_runs_to_a_stop() -> None:
    session = run(CATSession(BANK, {"stopping": {"se": 0.3, "max_items": 30}}, seed=1))
    result = session.result()
    assert session.finished and result.finished
    assert session.stop_reason == result.stop_reason
    assert result.stop_reason in ("se<=0.3", "max_items=30")
    assert (result.se <= 0.3) == (result.stop_reason == "se<=0.3")
    assert result.n_scored == result.n_given == len(session.history) <= 30
    assert [h.position for h in session.history] == list(range(1, result.n_given + 1))
    assert len({h.item_id for h in session.history}) == result.n_given  # no item twice
    assert all(not i.startswith("P") for i, *_ in summary(session))
    assert session.next_item() is None
    assert session.history[-1].theta == result.theta and session.history[-1].se == result.se


def test_next_item_is_stable_until_answered() -> None:
    session = CATSession(BANK, config("randomesque"), seed=3)
    first = session.next_item()
    assert session.next_item() == first == session.next_item()
    session.answer(first, 1)
    second = session.next_item()
    assert second != first
    assert session.next_item() == second


def test_answering_another_item_raises_and_changes_nothing() -> None:
    session = CATSession(BANK, {}, seed=0)
    presented = session.next_item()
    other = next(i for i in SCORED_IDS if i != presented)
    before = session.to_json()
    with pytest.raises(CATError, match=f"item '{other}' was not presented.*'{presented}'"):
        session.answer(other, 1)
    assert session.to_json() == before
    session.answer(presented, 0)
    assert len(session.history) == 1


@pytest.mark.parametrize("response", [2, -1, "1", True, 0.5, None])
def test_a_response_outside_the_categories_names_the_item(response) -> None:
    session = CATSession(BANK, {}, seed=0)
    item = session.next_item()
    with pytest.raises(InvalidResponseError, match=f"item '{item}'") as error:
        session.answer(item, response)
    assert error.value.item_id == item
    assert session.history == () and session.next_item() == item


def test_answering_after_the_finish_raises() -> None:
    session = run(CATSession(BANK, {"stopping": {"max_items": 3}}))
    assert session.stop_reason == "max_items=3"
    with pytest.raises(CATError, match="finished"):
        session.answer(SCORED_IDS[0], 1)
    with pytest.raises(CATError, match="finished"):
        session.answer(session.history[-1].item_id, 1)


def test_unknown_start_item_and_bad_json_version_are_errors() -> None:
    with pytest.raises(UnknownItemError, match="nope"):
        CATSession(BANK, {"start": {"item": "nope"}})
    data = CATSession(BANK, {}).to_json()
    with pytest.raises(CATError, match="unsupported session version"):
        CATSession.from_json(BANK, {**data, "version": 99})


@pytest.mark.parametrize("start", [
    {"theta": 1e308}, {"theta": -11}, {"theta": float("nan")}, {"theta": float("inf")},
    {"random": [-20, 0]}, {"random": [0, 1e9]},
])
def test_a_start_far_off_the_scale_is_refused_by_name(start) -> None:
    with pytest.raises(CATError, match=r"start\.(theta|random) must lie within"):
        CATSession(BANK, {"start": start})
    assert CATSession(BANK, {"start": {"theta": -10}}).next_item() is not None  # the edge is fine


# -- determinism and statelessness --------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
def test_rebuilding_at_every_step_gives_the_same_test(name) -> None:
    reference = run(CATSession(BANK, config(name), seed=7))
    expected = reference.result()
    assert expected.n_given >= 5

    session = CATSession(BANK, config(name), seed=7)
    step = 0
    while True:
        session = roundtrip(session)  # stored before the item was chosen
        item = session.next_item()
        if session.finished:
            break
        assert item == reference.history[step].item_id, f"step {step + 1}"
        session = roundtrip(session)  # stored with the item pending
        assert session.next_item() == item
        session.answer(item, respond(item))
        step += 1
    session = roundtrip(session)
    result = session.result()
    assert summary(session) == summary(reference)
    assert (result.stop_reason, result.n_scored, result.n_given, result.finished) == (
        expected.stop_reason, expected.n_scored, expected.n_given, True,
    )
    assert result.theta == pytest.approx(expected.theta, abs=1e-12)
    assert result.se == pytest.approx(expected.se, abs=1e-12)
    for mine, theirs in zip(session.history, reference.history, strict=True):
        if theirs.scored:  # the estimates stored with each response
            assert mine.theta == pytest.approx(theirs.theta, abs=1e-12)
            assert mine.se == pytest.approx(theirs.se, abs=1e-12)
        else:
            assert mine.theta is None and theirs.theta is None


@pytest.mark.parametrize("name", list(CONFIGS))
def test_from_history_replays_to_the_same_result(name) -> None:
    reference = run(CATSession(BANK, config(name), seed=11))
    history = [(h.item_id, h.response) for h in reference.history]
    rebuilt = CATSession.from_history(BANK, config(name), history, seed=11)
    assert rebuilt.result() == reference.result()
    assert rebuilt.to_json() == reference.to_json()


def test_same_seed_same_test_other_seed_other_test() -> None:
    one = run(CATSession(BANK, config("randomesque"), seed=1))
    again = run(CATSession(BANK, config("randomesque"), seed=1))
    other = run(CATSession(BANK, config("randomesque"), seed=2))
    assert summary(one) == summary(again)
    assert summary(one) != summary(other)


def test_rebuilding_gives_a_bitwise_identical_estimate() -> None:
    reference = run(CATSession(BANK, config("mfi-none"), seed=7))
    session = CATSession(BANK, config("mfi-none"), seed=7)
    while not session.finished:
        session = roundtrip(session)
        item = session.next_item()
        session.answer(item, respond(item))
    assert session.result().theta == reference.result().theta


def _stats_with_an_overexposed_first_item() -> ExposureStats:
    first = CATSession(BANK, {}).next_item()
    counts = np.zeros(len(BANK))
    counts[BANK.index_of(first)] = 40.0  # given to 40% of 100 tests, r_max 0.2
    return ExposureStats(counts=counts, tests=100)


def test_sessions_sharing_a_built_config_are_identical() -> None:
    settings = {"exposure": {"method": "eligibility", "r_max": 0.2}, "stopping": STOP}
    stats = _stats_with_an_overexposed_first_item()
    built = CATConfig.from_dict(settings, BANK)
    shared = [CATSession(BANK, built, seed=s, exposure_stats=stats) for s in range(40)]
    fresh = [CATSession(BANK, settings, seed=s, exposure_stats=stats) for s in range(40)]
    assert [s.next_item() for s in shared] == [s.next_item() for s in fresh]


def test_sessions_from_settings_with_the_same_stats_are_identical() -> None:
    """The same check without sharing the built config passes: each session builds its own."""
    settings = {"exposure": {"method": "eligibility", "r_max": 0.2}, "stopping": STOP}
    stats = _stats_with_an_overexposed_first_item()
    firsts = set()
    for seed in range(40):
        one = CATSession(BANK, settings, seed=seed, exposure_stats=stats)
        two = CATSession(BANK, settings, seed=seed, exposure_stats=stats)
        assert one.to_json() == two.to_json()
        firsts.add(one.next_item())
    assert len(firsts) == 2  # the over-exposed item is withheld from about half the tests


# -- pretest items --------------------------------------------------------------------------------


def test_pretest_items_are_unscored_recorded_and_never_move_theta() -> None:
    base = {"stopping": {"se": 0.3, "max_items": 20}}
    with_pretest = run(CATSession(BANK, {**base, "pretest": PRETEST}, seed=4))
    without = run(CATSession(BANK, base, seed=4))

    pretest = [h for h in with_pretest.history if not h.scored]
    assert [h.position for h in pretest] == [2, 5, 9]
    assert sorted(h.item_id for h in pretest) == ["P1", "P2", "P3"]
    assert all(h.theta is None and h.se is None for h in pretest)
    assert all(h.response == respond(h.item_id) for h in pretest)  # recorded as answered

    scored = [h for h in with_pretest.history if h.scored]
    assert [(h.item_id, h.response, h.theta, h.se) for h in scored] == [
        (h.item_id, h.response, h.theta, h.se) for h in without.history
    ]
    a, b = with_pretest.result(), without.result()
    assert (a.theta, a.se, a.n_scored, a.stop_reason) == (b.theta, b.se, b.n_scored, b.stop_reason)
    assert a.n_given == b.n_given + 3
    data = a.to_dict()
    for row in data["items"]:
        if not row["scored"]:
            assert row["information"] is None and row["information_share"] is None


def test_pretest_items_are_never_chosen_as_scored_items() -> None:
    settings = {"pretest": {"items": ["P1", "P2", "P3"], "positions": [30]},
                "stopping": {"max_items": 25}}
    session = run(CATSession(BANK, settings, seed=0), true_theta=-0.2)
    assert all(h.item_id.startswith("i") for h in session.history)  # position 30 never came


def test_more_pretest_positions_than_items_fall_back_to_scored_items() -> None:
    settings = {"pretest": {"items": ["P1"], "positions": [1, 2]}, "stopping": {"max_items": 4}}
    session = run(CATSession(BANK, settings, seed=0))
    assert [h.scored for h in session.history] == [False, True, True, True, True]
    assert session.history[0].item_id == "P1"


# -- result --------------------------------------------------------------------------------------


def test_result_information_is_each_item_at_the_final_theta() -> None:
    session = run(CATSession(BANK, {"pretest": PRETEST, "stopping": STOP}, seed=2))
    result = session.result()
    scored = [i for i in result.items if i.scored]
    for item in scored:
        expected = float(information(BANK, BANK.index_of(item.item_id), result.theta))
        assert item.information == pytest.approx(expected, rel=1e-12)
    data = json.loads(json.dumps(result.to_dict()))
    total = sum(i.information for i in scored)
    assert data["test_information"] == pytest.approx(total)
    shares = [row["information_share"] for row in data["items"] if row["scored"]]
    assert sum(shares) == pytest.approx(1.0)
    assert data["stop_reason"] == result.stop_reason
    assert (data["n_scored"], data["n_given"]) == (result.n_scored, result.n_given)
    assert data["theta"] == result.theta and data["finished"] is True
    # the SE of EAP is close to 1 / sqrt(prior precision + test information)
    assert result.se == pytest.approx(1 / math.sqrt(1 + total), rel=0.15)


def test_result_before_any_answer() -> None:
    result = CATSession(BANK, {}).result()
    assert (result.n_scored, result.n_given, result.finished, result.stop_reason) == (
        0, 0, False, None,
    )
    assert result.theta == pytest.approx(0.0, abs=1e-9)
    json.dumps(result.to_dict())


@pytest.mark.parametrize(
    ("stopping", "reason"),
    [
        ({"se": 0.35, "max_items": 40}, "se<=0.35"),
        ({"max_items": 4}, "max_items=4"),
        ({"classification": {"cut": -2.5}, "max_items": 30}, "classified(ci, cut=-2.5)"),
        ({"classification": {"cut": -2.5, "method": "sprt"}, "max_items": 30},
         "classified(sprt, cut=-2.5)"),
        ({"theta_change": 0.5, "min_items": 3, "max_items": 30}, "theta_change<0.5"),
    ],
)
def test_stop_reasons(stopping, reason) -> None:
    session = run(CATSession(BANK, {"stopping": stopping}, seed=0), true_theta=0.8)
    assert session.stop_reason == reason == session.result().stop_reason


def test_an_exhausted_bank_stops_the_test() -> None:
    small = BANK.subset(range(5))
    session = CATSession(small, {"stopping": {"se": 0.01, "max_items": 10}})
    while not session.finished:
        session.answer(session.next_item(), 1)
    assert session.stop_reason == "bank_exhausted"
    assert session.result().n_scored == 5


# -- the estimate ---------------------------------------------------------------------------------


@pytest.mark.parametrize("true_theta", [-1.5, 0.4, 2.0])
def test_eap_equals_brute_force_integration(true_theta) -> None:
    session = run(CATSession(BANK, {"stopping": {"se": 0.35, "max_items": 12}}, seed=5),
                  true_theta=true_theta)
    idx = BANK.indices_of([h.item_id for h in session.history])
    responses = np.array([h.response for h in session.history])

    def density(t: float) -> float:
        return math.exp(float(log_likelihood(BANK, idx, responses, [t])[0])) * norm.pdf(t)

    mass = quad(density, -np.inf, np.inf)[0]
    mean = quad(lambda t: t * density(t), -np.inf, np.inf)[0] / mass
    var = quad(lambda t: (t - mean) ** 2 * density(t), -np.inf, np.inf)[0] / mass
    result = session.result()
    assert result.theta == pytest.approx(mean, abs=0.01)
    assert result.se == pytest.approx(math.sqrt(var), abs=0.01)


# -- start rules ----------------------------------------------------------------------------------


def test_a_fixed_first_item_is_presented_first_then_the_test_adapts() -> None:
    session = CATSession(BANK, {"start": {"item": "i17"}, "stopping": STOP})
    assert session.next_item() == "i17"
    session.answer("i17", 1)
    # the second item is chosen by information at the estimate, not fixed
    expected = information(BANK, np.arange(len(BANK)), session.result().theta)
    expected[BANK.index_of("i17")] = -np.inf
    assert session.next_item() == BANK.item_ids[int(expected.argmax())]


@pytest.mark.parametrize("theta", [-1.5, 0.0, 1.5])
def test_a_fixed_start_theta_chooses_the_most_informative_item_there(theta) -> None:
    session = CATSession(BANK, {"start": {"theta": theta}})
    info = information(BANK, np.arange(len(BANK)), theta)  # no pretest: every item counts
    assert session.next_item() == BANK.item_ids[int(info.argmax())]
    others = {CATSession(BANK, {"start": {"theta": t}}).next_item() for t in (-1.5, 0.0, 1.5)}
    assert len(others) == 3  # the start theta matters


def test_a_random_start_is_reproducible_and_within_its_range() -> None:
    settings = {"start": {"random": [-1, 1]}}
    firsts = {CATSession(BANK, settings, seed=s).next_item() for s in range(30)}
    assert CATSession(BANK, settings, seed=3).next_item() == CATSession(
        BANK, settings, seed=3
    ).next_item()
    grid = np.linspace(-1, 1, 401)
    best = information(BANK, np.arange(len(BANK))[None, :], grid[:, None]).argmax(axis=1)
    possible = {BANK.item_ids[j] for j in best}
    assert firsts <= possible
    assert len(firsts) > 1


def test_restoring_never_redraws_what_eligibility_withheld_at_the_start():
    """Item eligibility draws once per test; a restore with other statistics keeps the draw."""
    bank = ItemBank.from_records(
        {"item_id": f"i{j}", "model": "2pl", "a": 0.8 + 0.03 * j, "b": -2 + 0.1 * j}
        for j in range(40))
    config = CATConfig.from_dict({"exposure": {"method": "eligibility", "r_max": 0.2},
                                  "stopping": {"max_items": 10}}, bank)
    busy = ExposureStats(counts=np.full(40, 10.0), tests=10)  # every rate 1.0: p = 0.2
    session = CATSession(bank, config, seed=3, exposure_stats=busy)
    stored = session.to_json()
    assert 20 <= len(stored["withheld"]) < 40
    for stats in (None, ExposureStats(counts=np.zeros(40), tests=10),
                  ExposureStats(counts=np.full(40, 40.0), tests=10)):  # p = 0.05 today
        restored = CATSession.from_json(bank, stored, exposure_stats=stats)
        assert restored.to_json()["withheld"] == stored["withheld"]
        assert restored.next_item() == session.next_item()
