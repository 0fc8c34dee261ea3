"""The vectorised simulator: precision, agreement with live sessions, and its statistics.

To see what each simulee was given, some tests wrap ``cat_engine.simulation.simulate_responses``
(the one place the simulator draws responses): the wrapper is called once per step with the items
chosen for the simulees still being tested and their true thetas, so it can record, per simulee
(recognised by its distinct true theta), the items in the order they were given.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import cat_engine.simulation as simulation_module
from cat_engine import CATConfig, CATSession, ItemBank, calibrate_sympson_hetter, simulate
from cat_engine.errors import ConfigError
from cat_engine.exposure import ExposureStats
from cat_engine.models import p_correct


def make_bank(n_items: int = 300, seed: int = 0) -> ItemBank:
    rng = np.random.default_rng(seed)
    records = []
    for j in range(n_items):
        three = j % 3 == 0
        records.append({
            "item_id": f"i{j}",
            "model": "3pl" if three else "2pl",
            "a": float(rng.lognormal(0.1, 0.3)),
            "b": float(rng.normal(0, 1.2)),
            "c": 0.15 if three else 0.0,
        })
    return ItemBank.from_records(records)


BANK = make_bank()
SE_STOP = {"stopping": {"se": 0.3, "max_items": 40}}


def thetas(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=n)


@pytest.fixture(scope="module")
def precision_run():
    true = thetas(1000, seed=2)
    return simulate(BANK, true, SE_STOP, seed=3)


class Recorder:
    """Wraps simulate_responses: records the items given to each simulee, in order.

    With ``uniform`` (an (N, J) table) responses are deterministic: simulee n answers item j
    correctly when ``uniform[n, j] < P_j(theta_n)``, so a live session can be fed the same ones.
    """

    def __init__(self, true_theta: np.ndarray, uniform: np.ndarray | None = None) -> None:
        assert np.unique(true_theta).size == true_theta.size
        self.index = {float(t): n for n, t in enumerate(true_theta)}
        self.given: list[list[int]] = [[] for _ in true_theta]
        self.uniform = uniform
        self.real = simulation_module.simulate_responses

    def response(self, n: int, j: int, theta: float) -> int:
        return int(self.uniform[n, j] < float(p_correct(BANK, j, theta)))

    def __call__(self, bank, items, theta, rng):
        rows = [self.index[float(t)] for t in theta]
        for n, j in zip(rows, items, strict=True):
            self.given[n].append(int(j))
        if self.uniform is None:
            return self.real(bank, items, theta, rng)
        return np.array(
            [self.response(n, int(j), t) for n, j, t in zip(rows, items, theta, strict=True)],
            dtype=np.intp,
        )


# -- precision ---------------------------------------------------------------------------------


def test_simulation_recovers_theta_with_rmse_near_the_se_target(precision_run) -> None:
    """The issue: "simulation recovers theta with RMSE near 0.30 when stopping at SE 0.3"."""
    result = precision_run
    assert 0.26 <= result.rmse <= 0.36
    assert abs(result.bias) < 0.05
    assert 0.27 <= float(result.se.mean()) <= 0.31
    reasons = result.stop_reason.astype(str)
    assert set(reasons) <= {"se<=0.3", "max_items=40"}
    assert (result.se[reasons == "se<=0.3"] <= 0.3).all()
    assert (result.length[reasons == "max_items=40"] == 40).all()
    assert result.length.max() <= 40 and result.length.min() >= 1
    # the estimates track the true thetas
    assert np.corrcoef(result.theta, result.true_theta)[0, 1] > 0.95


def test_conditional_deciles_match_an_independent_computation(precision_run) -> None:
    result = precision_run
    order = np.argsort(result.true_theta)
    rows = result.conditional
    assert [row["decile"] for row in rows] == list(range(1, 11))
    edges = np.quantile(result.true_theta, np.linspace(0, 1, 11))
    for d, group in enumerate(np.array_split(order, 10)):  # 1000 distinct thetas: 100 each
        error = result.theta[group] - result.true_theta[group]
        row = rows[d]
        assert row["n"] == 100
        assert row["bias"] == pytest.approx(error.mean(), abs=1e-12)
        assert row["rmse"] == pytest.approx(np.sqrt(np.mean(error**2)), abs=1e-12)
        assert row["mean_length"] == pytest.approx(result.length[group].mean())
        assert row["theta_low"] == pytest.approx(edges[d])
        assert row["theta_high"] == pytest.approx(edges[d + 1])
    # adaptive tests are longest where the bank is thin: at the extremes
    assert rows[0]["mean_length"] > rows[5]["mean_length"]


# -- the simulator is the live engine -----------------------------------------------------------


@pytest.mark.parametrize(
    ("selection", "n"),
    [("mfi", 5), ("mfi", 40), ("kl", 40), ("mpwi", 40), ("astrat", 40)],
)
def test_simulated_tests_are_the_tests_live_sessions_give(monkeypatch, selection, n) -> None:
    """Deterministic selection with no exposure control: given the same responses, a simulee's
    test is exactly the one a live session gives. The responses are made the same by replacing
    the simulator's response draws with a fixed table of uniform numbers per (simulee, item),
    which the live sessions below use too. n = 5 uses direct information, n = 40 the tables."""
    true = thetas(n, seed=4)
    recorder = Recorder(true, np.random.default_rng(5).random((n, len(BANK))))
    monkeypatch.setattr(simulation_module, "simulate_responses", recorder)
    settings = {"selection": {"method": selection}, "stopping": {"se": 0.3, "max_items": 25}}
    result = simulate(BANK, true, settings, seed=6)
    for row in range(n):
        session = CATSession(BANK, settings, seed=0)
        while not session.finished:
            item = session.next_item()
            j = BANK.index_of(item)
            session.answer(item, recorder.response(row, j, true[row]))
        live = session.result()
        given = [BANK.index_of(h.item_id) for h in session.history]
        assert given == recorder.given[row], f"simulee {row}"
        assert live.theta == pytest.approx(result.theta[row], abs=1e-9)
        assert live.se == pytest.approx(result.se[row], abs=1e-9)
        assert live.n_scored == result.length[row]
        assert live.stop_reason == result.stop_reason[row]


# -- statistics ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded_run():
    true = thetas(30, seed=8)
    recorder = Recorder(true)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(simulation_module, "simulate_responses", recorder)
        settings = {"exposure": {"method": "randomesque", "n": 4},
                    "stopping": {"se": 0.35, "max_items": 20}}
        result = simulate(BANK, true, settings, seed=9)
    return result, recorder.given


def test_exposure_length_and_unused_items_from_the_given_items(recorded_run) -> None:
    result, given = recorded_run
    n, j = len(given), len(BANK)
    counts = np.zeros(j)
    for items in given:
        assert len(set(items)) == len(items)  # never the same item twice
        counts[items] += 1
    np.testing.assert_allclose(result.exposure, counts / n, rtol=0, atol=1e-15)
    assert result.length.tolist() == [len(items) for items in given]
    assert result.administered == sum(len(items) for items in given)
    assert result.mean_length == pytest.approx(np.mean([len(items) for items in given]))
    assert result.max_exposure == pytest.approx(counts.max() / n)
    assert result.unused_fraction == pytest.approx(np.mean(counts == 0))


def test_overlap_rate_is_the_mean_pairwise_overlap_over_the_mean_length(recorded_run) -> None:
    result, given = recorded_run
    sets = [set(items) for items in given]
    shared = [len(a & b) for a, b in itertools.combinations(sets, 2)]
    mean_length = np.mean([len(s) for s in sets])
    expected = np.mean(shared) / mean_length
    assert 0 < expected < 1
    assert result.overlap_rate == pytest.approx(expected, rel=1e-10)


def test_chi_square_exposure_by_its_formula(recorded_run) -> None:
    result, given = recorded_run
    n, j = len(given), len(BANK)
    rates = np.bincount(np.concatenate(given), minlength=j) / n
    expected_rate = np.mean([len(items) for items in given]) / j
    expected = sum((r - expected_rate) ** 2 / expected_rate for r in rates)
    assert result.chi_square_exposure == pytest.approx(expected, rel=1e-10)


def test_summary_is_json_and_consistent(recorded_run) -> None:
    result, _ = recorded_run
    data = json.loads(json.dumps(result.to_dict()))
    assert data["examinees"] == 30 and data["items_in_bank"] == len(BANK)
    for key in ("rmse", "bias", "mean_length", "max_length", "administered", "max_exposure",
                "unused_fraction", "overlap_rate", "chi_square_exposure"):
        assert data[key] == pytest.approx(getattr(result, key)), key
    assert data["mean_se"] == pytest.approx(result.se.mean())
    assert sum(data["stop_reasons"].values()) == 30
    assert data["exposure_rates"]["i0"] == result.exposure[0]
    assert data["settings"]["exposure"] == {"method": "randomesque", "n": 4}
    assert data["calibration"] is None


# -- exposure control in simulation ---------------------------------------------------------------


def test_max_information_without_control_overexposes_compared_to_randomesque() -> None:
    """Short fixed-length tests; with long tests (SE 0.3 needs about 20 of 300 items) the
    central items are used by most test takers whatever the control, and the gap is smaller."""
    true = thetas(400, seed=10)
    stop = {"stopping": {"max_items": 10}}
    plain = simulate(BANK, true, stop, seed=1)
    spread = simulate(BANK, true, {**stop, "exposure": {"method": "randomesque", "n": 10}}, seed=1)
    assert plain.max_exposure == 1.0  # the first item is the same for everyone
    assert spread.max_exposure < 0.7
    assert spread.overlap_rate < 0.7 * plain.overlap_rate
    assert spread.chi_square_exposure < 0.7 * plain.chi_square_exposure
    assert spread.unused_fraction < plain.unused_fraction
    assert spread.rmse < plain.rmse + 0.05  # at little cost in precision


@pytest.fixture(scope="module")
def calibration():
    return calibrate_sympson_hetter(
        BANK, thetas(500, seed=11), {"stopping": {"max_items": 20}}, r_max=0.25, seed=1
    )


def test_sympson_hetter_calibration_reaches_the_target(calibration) -> None:
    margin = 1.645 * np.sqrt(0.25 * 0.75 / 500)  # the documented sampling-error margin
    assert calibration.feasible, calibration.message
    assert calibration.max_exposure[0] == 1.0  # the first iteration runs with every k = 1
    assert min(calibration.max_exposure) <= 0.25 + margin
    assert calibration.iterations == len(calibration.max_exposure)
    assert calibration.k.shape == (1, len(BANK))
    assert ((calibration.k >= 0) & (calibration.k <= 1)).all() and (calibration.k < 1).any()
    assert "0.25" in calibration.message
    json.dumps(calibration.to_dict())


def test_calibrated_k_control_exposure_on_another_sample(calibration) -> None:
    settings = {"exposure": {"method": "sympson-hetter", "r_max": 0.25,
                             "k": calibration.k.tolist()}, "stopping": {"max_items": 20}}
    result = simulate(BANK, thetas(500, seed=12), settings, seed=13)
    assert result.calibration is None  # k was given: no calibration
    assert result.max_exposure <= 0.25 + 0.06  # a new sample: its own sampling error
    plain = simulate(BANK, thetas(500, seed=12), {"stopping": {"max_items": 20}}, seed=13)
    assert plain.max_exposure == 1.0


def test_simulate_calibrates_sympson_hetter_without_k() -> None:
    settings = {"exposure": {"method": "sympson-hetter", "r_max": 0.3},
                "stopping": {"max_items": 10}}
    result = simulate(BANK, thetas(300, seed=14), settings, seed=2)
    assert result.calibration is not None and result.calibration.feasible
    assert len(result.settings["exposure"]["k"]) == 1
    assert len(result.settings["exposure"]["k"][0]) == len(BANK)
    assert result.max_exposure <= 0.3 + 0.08
    assert result.to_dict()["calibration"]["r_max"] == 0.3


def test_sympson_hetter_infeasible_target_is_reported() -> None:
    small = BANK.subset(range(30))
    calibration = calibrate_sympson_hetter(
        small, thetas(200, seed=15), {"stopping": {"max_items": 20}}, r_max=0.2, seed=1
    )
    assert calibration.feasible is False
    message = calibration.message
    assert "20.0 items" in message  # the mean test length
    assert "bank of 30" in message
    assert "0.667" in message  # 20 / 30: the minimum achievable maximum rate
    assert "at least 0.67" in message
    assert "0.2" in message


# -- reproducibility, progress, pretest ------------------------------------------------------------


def _figures(result) -> dict:
    data = result.to_dict()
    data.pop("seconds")
    return data


def test_same_seed_same_result_other_seed_other_result() -> None:
    true = thetas(200, seed=16)
    settings = {"exposure": {"method": "randomesque", "n": 5}, "stopping": {"se": 0.3}}
    one, two = simulate(BANK, true, settings, seed=5), simulate(BANK, true, settings, seed=5)
    assert _figures(one) == _figures(two)
    np.testing.assert_array_equal(one.theta, two.theta)
    assert _figures(simulate(BANK, true, settings, seed=6)) != _figures(one)


def test_simulating_twice_with_a_built_config_is_reproducible() -> None:
    settings = {"exposure": {"method": "eligibility", "r_max": 0.2},
                "stopping": {"se": 0.3, "max_items": 20}}
    built = CATConfig.from_dict(settings, BANK)
    true = thetas(300, seed=17)
    assert _figures(simulate(BANK, true, built, seed=3)) == _figures(
        simulate(BANK, true, built, seed=3)
    )


def test_reacting_controls_run_in_cohorts_and_report_progress() -> None:
    calls = []
    settings = {"exposure": {"method": "eligibility", "r_max": 0.2},
                "stopping": {"max_items": 5}}
    result = simulate(BANK, thetas(100, seed=18), settings, seed=1,
                      progress=lambda done, total: calls.append((done, total)))
    assert len(calls) == 10  # at least ten cohorts for controls that react to exposure
    assert calls[-1] == (100, 100)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert result.length.tolist() == [5] * 100
    calls.clear()
    simulate(BANK, thetas(100, seed=18), {"stopping": {"max_items": 5}}, seed=1, cohorts=4,
             progress=lambda done, total: calls.append(done))
    assert calls == [25, 50, 75, 100]


def test_pretest_items_are_given_but_not_scored() -> None:
    bank = ItemBank.from_records([
        *BANK.subset(range(100)).to_records(),
        {"item_id": "P1", "model": "2pl", "a": 1.0, "b": 0.0},
        {"item_id": "P2", "model": "2pl", "a": 1.0, "b": 0.5},
    ])
    settings = {"pretest": {"items": ["P1", "P2"], "positions": [2, 4]},
                "stopping": {"max_items": 8}}
    result = simulate(bank, thetas(50, seed=19), settings, seed=1)
    assert result.pretest_administered == 100  # two per simulee
    assert result.length.tolist() == [8] * 50  # pretest items do not count toward the length
    assert result.exposure[bank.indices_of(["P1", "P2"])].tolist() == [0.0, 0.0]
    assert result.to_dict()["pretest_administered"] == 100


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([], "non-empty one-dimensional"),
        ([[0.0, 1.0]], "non-empty one-dimensional"),
        ([0.0, np.nan], "finite"),
        ([0.0, np.inf], "finite"),
        ([-np.inf], "finite"),
    ],
)
def test_bad_thetas_are_config_errors(values, message) -> None:
    with pytest.raises(ConfigError, match=message):
        simulate(BANK, np.array(values, dtype=float), SE_STOP)


def test_a_bad_configuration_is_a_config_error_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"selection\.method"):
        simulate(BANK, thetas(5), {"selection": {"method": "best"}})
    with pytest.raises(ConfigError, match=r"stopping\.se"):
        simulate(BANK, thetas(5), {"stopping": {"se": -1}})


def test_conditional_sympson_hetter_holds_every_theta_stratum() -> None:
    """Conditional on strata of true theta (Stocking and Lewis, 1998), the exposure of every
    item within every stratum is held near r_max, not only the marginal rate."""
    from cat_engine import ItemBank, simulate

    rng = np.random.default_rng(21)
    bank = ItemBank.from_records(
        [{"item_id": f"i{j}", "model": "2pl", "a": float(rng.uniform(0.8, 2.0)),
          "b": float(rng.normal())} for j in range(200)]
    )
    thetas = rng.normal(size=1200)
    cuts = [-0.5, 0.5]
    settings = {
        "exposure": {"method": "sympson-hetter", "r_max": 0.25, "theta_cuts": cuts},
        "stopping": {"max_items": 10},
    }
    controlled = simulate(bank, thetas, settings, seed=4)
    free = simulate(bank, thetas, {"stopping": {"max_items": 10}}, seed=4)
    assert controlled.calibration is not None and controlled.calibration.feasible
    assert controlled.calibration.k.shape == (3, 200)
    within = controlled.conditional_exposure(cuts)
    assert within.shape == (3, 200)
    assert free.conditional_exposure(cuts).max() > 0.9
    # about 400 simulees per stratum: sampling error of a rate near 0.25 is about 0.022
    assert within.max() <= 0.25 + 0.06
    # the marginal exposure is a mixture of the conditional ones
    sizes = np.bincount(np.searchsorted(cuts, thetas), minlength=3)
    np.testing.assert_allclose(sizes @ within / thetas.size, controlled.exposure, atol=1e-12)


# -- item eligibility over many cohorts -----------------------------------------------------------


def test_item_eligibility_settles_near_its_target_and_the_steady_state_is_reported() -> None:
    """By default enough cohorts to settle; the last half of them is reported apart."""
    settings = {"exposure": {"method": "eligibility", "r_max": 0.2},
                "stopping": {"max_items": 10}}
    result = simulate(BANK, thetas(2000, seed=21), settings, seed=4)
    summary = result.to_dict()
    assert summary["cohorts"] == 200
    assert summary["max_exposure_steady"] == result.steady_max_exposure
    # Sampling error of one rate over the last 1,000 simulees: 0.013.
    assert result.steady_max_exposure < 0.26, result.steady_max_exposure
    late = result.cohort_max_exposure[100:]
    assert late.size == 100 and np.median(late) <= 0.5  # cohorts of 10: 0.1 steps
    # The steady state is measured on the last half of the cohorts only.
    half = result.cohorts >= 100
    items = result.items[half]
    expected = np.bincount(items[items >= 0], minlength=len(BANK)) / half.sum()
    np.testing.assert_allclose(result.steady_exposure, expected)


def test_ineligible_items_are_released_when_no_eligible_item_is_left() -> None:
    """Every item over-exposed: the tests still run to their full length."""
    bank = make_bank(40, seed=5)
    n_items = len(bank)
    busy = ExposureStats(counts=np.full(n_items, 100.0), tests=100,
                         eligible=np.full(n_items, 100.0), feasible=100)  # p = r_max = 0.1
    config = CATConfig.from_dict({"exposure": {"method": "eligibility", "r_max": 0.1},
                                  "stopping": {"max_items": 20}}, bank)
    released = 0
    for seed in range(30):
        session = CATSession(bank, config, seed=seed, exposure_stats=busy)
        eligible = n_items - len(session.to_json()["withheld"])
        truth = 0.3 * (seed % 5 - 2)
        while not session.finished:
            item = session.next_item()
            stored = CATSession.from_json(bank, session.to_json())  # as a live service does
            assert stored.next_item() == item
            session.answer(item, int(p_correct(bank, [bank.index_of(item)], [truth])[0] > 0.5))
        assert session.stop_reason == "max_items=20" and len(session.history) == 20
        outcome = session.exposure_outcome()
        assert outcome["released"] == (eligible < 20)
        if outcome["released"]:
            assert outcome["withheld"] == []  # released items count as eligible
        released += outcome["released"]
    assert released == 30  # about 4 of the 40 items are eligible in each test
    # The simulator releases them alike.
    result = simulate(bank, thetas(200, seed=22), config, seed=5)
    assert (result.length == 20).all() and set(result.stop_reason) == {"max_items=20"}
