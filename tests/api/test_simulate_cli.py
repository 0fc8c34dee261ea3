"""``cat-engine simulate``: a run with its summary and JSON results, and its one-line errors."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from api.cli import cli

CAT_ENGINE = shutil.which("cat-engine", path=str(Path(sys.executable).parent))
FIELDS = ["item_id", "model", "a", "b", "c", "d"]
REQUIRED_KEYS = {
    "rmse", "bias", "mean_length", "max_exposure", "unused_fraction", "overlap_rate",
    "administered", "seconds",
}


def write_bank(path: Path, n_items: int = 200, seed: int = 0, change=None) -> Path:
    rng = np.random.default_rng(seed)
    rows = []
    for j in range(n_items):
        three = j % 4 == 0
        rows.append({
            "item_id": f"i{j}",
            "model": "3pl" if three else "2pl",
            "a": f"{rng.uniform(0.6, 2.0):.3f}",
            "b": f"{rng.normal(0, 1.1):.3f}",
            "c": "0.2" if three else "",
            "d": "",
        })
    if change:
        rows[7].update(change)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def bank_csv(tmp_path: Path) -> Path:
    return write_bank(tmp_path / "bank.csv")


def run_simulate(*args: str):
    return CliRunner().invoke(cli, ["simulate", *args])


def simulate_args(bank: Path, out: Path, seed: int = 3, **overrides: str) -> list[str]:
    options = {
        "--examinees": "200",
        "--seed": str(seed),
        "--selector": "mfi",
        "--exposure": "randomesque:5",
        "--stop": "se:0.3,max:30",
    }
    options.update(overrides)
    return ["--bank", str(bank), *(x for kv in options.items() for x in kv), "--json", str(out)]


def assert_one_line_error(result, *expected: str) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("cat-engine: error: ")
    for text in expected:
        assert text in lines[0]
    assert "Traceback" not in result.output
    assert result.stdout == ""
    return lines[0]


# -- a successful run -----------------------------------------------------------------------------


def test_simulate_prints_a_summary_and_writes_json(bank_csv, tmp_path) -> None:
    out = tmp_path / "OUT.json"
    result = run_simulate(*simulate_args(bank_csv, out))
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Simulated 200 test takers on 200 items" in text
    assert "precision : RMSE" in text and "length    : mean" in text
    assert "exposure  : max" in text and "stopped   :" in text
    assert "by true-theta decile" in text
    assert f"Results written to {out}" in text

    data = json.loads(out.read_text())
    assert set(data) >= REQUIRED_KEYS
    assert data["examinees"] == 200 and data["items_in_bank"] == 200
    assert 0.2 < data["rmse"] < 0.45
    assert data["max_length"] <= 30
    assert data["administered"] == pytest.approx(data["mean_length"] * 200)
    assert 0 < data["max_exposure"] <= 1 and 0 <= data["unused_fraction"] < 1
    assert data["settings"]["exposure"] == {"method": "randomesque", "n": 5}
    assert data["settings"]["stopping"] == {"se": 0.3, "max_items": 30}
    assert data["settings"]["selection"] == {"method": "mfi"}
    assert sum(data["stop_reasons"].values()) == 200
    assert f"RMSE {data['rmse']:.3f}" in text
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".OUT.json")]  # no temp left


def test_simulate_reports_the_steady_state_of_item_eligibility(bank_csv, tmp_path) -> None:
    out = tmp_path / "OUT.json"
    result = run_simulate(*simulate_args(bank_csv, out, **{"--exposure": "eligibility:0.2",
                                                           "--stop": "max:10"}))
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["cohorts"] == 20  # cohorts of 10 for 200 test takers
    assert f"steady    : max exposure {data['max_exposure_steady']:.3f} in the last half of 20 " \
        "cohorts" in result.stdout


def test_the_same_seed_gives_the_same_results(bank_csv, tmp_path) -> None:
    first, second, other = tmp_path / "1.json", tmp_path / "2.json", tmp_path / "3.json"
    for out, seed in ((first, 3), (second, 3), (other, 4)):
        result = run_simulate(*simulate_args(bank_csv, out, seed=seed))
        assert result.exit_code == 0, result.output
    one, two, three = (json.loads(p.read_text()) for p in (first, second, other))
    assert one["rmse"] == two["rmse"]
    assert one["exposure_rates"] == two["exposure_rates"]
    assert one["rmse"] != three["rmse"]


def test_options_override_a_config_file(bank_csv, tmp_path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "stopping": {"max_items": 6},
        "selection": {"method": "kl"},
    }))
    out = tmp_path / "out.json"
    result = run_simulate("--bank", str(bank_csv), "--examinees", "50", "--config", str(config),
                          "--selector", "astrat", "--json", str(out))
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["settings"]["selection"] == {"method": "astrat"}  # the option wins
    assert data["settings"]["stopping"] == {"max_items": 6}  # the file's section is kept
    assert data["max_length"] == 6


# -- errors: one line, exit status 2, nothing written ----------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"a": "0"}, ("item 'i7'", "a must be > 0")),
        ({"a": "-1.2"}, ("item 'i7'", "a must be > 0")),
        ({"model": "5pl"}, ("item 'i7'", "model", "'5pl' is not one of")),
        ({"b": "hard"}, ("item 'i7'", "b must be a number")),
        ({"c": "1.5", "model": "3pl"}, ("item 'i7'", "c must be in [0, 1)")),
    ],
)
def test_an_invalid_bank_is_one_line_naming_the_item_and_field(tmp_path, change, expected) -> None:
    bank = write_bank(tmp_path / "bad.csv", change=change)
    out = tmp_path / "out.json"
    result = run_simulate(*simulate_args(bank, out))
    assert_one_line_error(result, *expected)
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--exposure", "randomesque:x", ("--exposure", "'randomesque:x'")),
        ("--exposure", "lottery:3", ("--exposure", "'lottery:3'")),
        ("--exposure", "none:1", ("--exposure",)),
        ("--exposure", "randomesque:0", ("exposure.n must be at least 1",)),
        ("--exposure", "sympson-hetter:1.5", ("exposure.r_max",)),
        ("--stop", "se:abc", ("--stop", "'se:abc'", "NAME:NUMBER")),
        ("--stop", "se", ("--stop", "'se'")),
        ("--stop", "bogus:1", ("--stop", "unknown rule 'bogus'")),
        ("--stop", "se:-0.3", ("stopping.se must be positive",)),
        ("--stop", "se:0.3,max:10,min:20", ("stopping.min_items",)),
        ("--theta", "normal:0", ("--theta",)),
        ("--theta", "uniform:2,1", ("--theta",)),
    ],
)
def test_malformed_options_are_one_line(bank_csv, tmp_path, option, value, expected) -> None:
    out = tmp_path / "out.json"
    result = run_simulate(*simulate_args(bank_csv, out, **{option: value}))
    assert_one_line_error(result, *expected)
    assert not out.exists()


def test_a_failed_run_leaves_an_existing_json_file_alone(tmp_path) -> None:
    bank = write_bank(tmp_path / "bad.csv", change={"a": "0"})
    out = tmp_path / "out.json"
    out.write_text('{"kept": true}')
    assert_one_line_error(run_simulate(*simulate_args(bank, out)), "item 'i7'")
    assert json.loads(out.read_text()) == {"kept": True}


def test_a_config_file_that_is_not_an_object_is_one_line(bank_csv, tmp_path) -> None:
    config = tmp_path / "config.json"
    config.write_text("[1, 2]")
    result = run_simulate("--bank", str(bank_csv), "--config", str(config))
    assert_one_line_error(result, "--config")


@pytest.mark.parametrize(
    ("args", "config"),
    [
        (["--stop", "se:0.3,max:inf"], None),
        ([], {"stopping": {"se": None}}),
        ([], {"estimator": "eap"}),
    ],
    ids=["max-inf", "se-null", "estimator-string"],
)
def test_odd_values_are_one_line_errors_too(bank_csv, tmp_path, args, config) -> None:
    if config is not None:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        args = [*args, "--config", str(path)]
    result = run_simulate("--bank", str(bank_csv), "--examinees", "20", *args)
    assert_one_line_error(result)


def test_invalid_bank_through_the_console_script(tmp_path) -> None:
    """Through the installed console script, exactly as a person runs it."""
    assert CAT_ENGINE, "the cat-engine console script is not installed"
    bank = write_bank(tmp_path / "bad.csv", change={"a": "-1"})
    out = tmp_path / "out.json"
    result = subprocess.run(
        [CAT_ENGINE, "simulate", "--bank", str(bank), "--examinees", "20", "--json", str(out)],
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == "cat-engine: error: item 'i7': a must be > 0, got -1.0"
    assert "Traceback" not in result.stderr + result.stdout
    assert not out.exists()
