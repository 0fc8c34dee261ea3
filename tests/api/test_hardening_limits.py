"""Every size a user can set has an upper bound, refused with a 422 naming the setting and the
bound. A probe started an attempt on a test with a 10,000,000-point estimator grid (842 MB)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from click.testing import CliRunner

from api.cli import cli
from cat_engine import ItemBank, simulate
from cat_engine.errors import ConfigError
from cat_engine.limits import (
    MAX_COHORTS,
    MAX_CONTENT_RULES,
    MAX_GRID_POINTS,
    MAX_PRETEST_ITEMS,
    MAX_RANDOMESQUE_N,
    MAX_SIMULEES,
    MAX_STRATA,
    MAX_TEST_LENGTH,
    MAX_THETA_CUTS,
)
from tests.api.conftest import TEST_CONFIG

# (what to change in the test's configuration, the setting named, its bound)
OVERSIZED = {
    "grid points": ({"estimator": {"method": "eap", "grid": {"points": 10_000_000}}},
                    "estimator.grid.points", MAX_GRID_POINTS),
    "test length": ({"stopping": {"se": 0.3, "max_items": 10**9}}, "stopping.max_items",
                    MAX_TEST_LENGTH),
    "randomesque n": ({"exposure": {"method": "randomesque", "n": 10**6}}, "exposure.n",
                      MAX_RANDOMESQUE_N),
    "strata": ({"selection": {"method": "astrat", "strata": 10**6}}, "selection.strata",
               MAX_STRATA),
    "theta cuts": ({"exposure": {"method": "sympson-hetter",
                                 "theta_cuts": list(np.linspace(-3, 3, 60))}},
                   "exposure.theta_cuts", MAX_THETA_CUTS),
    "pretest items": ({"pretest": {"items": [f"P{k}" for k in range(150)], "positions": [2]}},
                      "pretest.items", MAX_PRETEST_ITEMS),
    "content rules": ({"constraints": {"method": "shadow", "content": [
        {"tag": f"topic{k % 5}", "min": 0, "max": 12} for k in range(600)]}},
        "constraints.content", MAX_CONTENT_RULES),
    "enemy sets": ({"constraints": {"enemies": [["IT-000", "IT-001"]] * 600}},
                   "constraints.enemies", MAX_CONTENT_RULES),
}


@pytest.mark.parametrize("case", list(OVERSIZED))
def test_an_oversized_test_configuration_is_a_422_naming_setting_and_bound(world, case) -> None:
    change, setting, bound = OVERSIZED[case]
    config = {**copy.deepcopy(TEST_CONFIG), **change}
    if case != "pretest items":
        config.pop("pretest")
    r = world.call("post", "/api/v1/tests", "assessor1", json={"name": "Huge", "config": config})
    assert r.status_code == 422, r.get_json()
    assert r.mimetype == "application/problem+json"
    detail = r.get_json()["detail"]
    assert setting in detail and f"at most {bound:,}" in detail, detail
    r = world.call("patch", f"/api/v1/tests/{world.test_id}", "assessor1",
                   json={"config": config})
    assert r.status_code == 422 and setting in r.get_json()["detail"]


def test_the_bounds_themselves_are_accepted(world) -> None:
    config = {**copy.deepcopy(TEST_CONFIG),
              "estimator": {"method": "eap", "grid": {"points": MAX_GRID_POINTS}},
              "exposure": {"method": "randomesque", "n": MAX_RANDOMESQUE_N},
              "stopping": {"se": 0.3, "max_items": MAX_TEST_LENGTH}}
    r = world.call("post", "/api/v1/tests", "assessor1", json={"name": "Big", "config": config})
    assert r.status_code == 201, r.get_json()


def _bank() -> ItemBank:
    return ItemBank.from_records([{"item_id": f"I{j}", "model": "2pl", "a": 1.0, "b": b}
                                  for j, b in enumerate(np.linspace(-2, 2, 30))])


def test_a_simulation_is_bounded_in_simulees_and_cohorts() -> None:
    bank, settings = _bank(), {"stopping": {"max_items": 5}}
    with pytest.raises(ConfigError, match=f"examinees.*at most {MAX_SIMULEES:,}"):
        simulate(bank, np.zeros(MAX_SIMULEES + 1), settings)
    with pytest.raises(ConfigError, match=f"cohorts must be at most {MAX_COHORTS:,}"):
        simulate(bank, np.zeros(50), settings, cohorts=10**7)
    assert simulate(bank, np.zeros(50), settings, cohorts=MAX_COHORTS).length.max() == 5


def test_the_simulate_command_bounds_examinees(tmp_path) -> None:
    path = tmp_path / "bank.csv"
    path.write_text("item_id,model,a,b\n" + "".join(f"I{j},2pl,1.0,{j / 10 - 1}\n"
                                                    for j in range(20)))
    result = CliRunner().invoke(cli, ["simulate", "--bank", str(path), "--examinees",
                                      str(MAX_SIMULEES + 1)])
    assert result.exit_code == 2 and "--examinees" in result.output
    assert f"{MAX_SIMULEES}" in result.output


def test_calibration_bounds_its_quadrature_and_cycles() -> None:
    from calibration import calibrate
    from calibration.data import from_long
    from calibration.em import MAX_ITERATIONS, MAX_QUADRATURE, CalibrationError

    rng = np.random.default_rng(3)
    people, items = np.repeat(np.arange(60), 4), np.tile(np.arange(4), 60)
    data = from_long([f"p{p}" for p in people], [f"i{i}" for i in items],
                     rng.integers(0, 2, people.size).tolist())
    with pytest.raises(CalibrationError, match=f"quadrature must be an integer from 5 to "
                                               f"{MAX_QUADRATURE}"):
        calibrate(data, "rasch", quadrature=10**6)
    with pytest.raises(CalibrationError, match="max_iterations must be an integer from 1 to "
                                               f"{MAX_ITERATIONS:,}"):
        calibrate(data, "rasch", max_iterations=10**9)
