"""``cat-engine dif`` and ``cat-engine link`` on files, through the command line."""

from __future__ import annotations

import csv
import json

import numpy as np
from click.testing import CliRunner

from api.cli import cli
from cat_engine import ItemBank
from cat_engine.models import simulate_responses

BANK = ItemBank.from_records(
    [{"item_id": f"q{j}", "model": "2pl", "a": 1.0 + 0.05 * j, "b": -1.5 + 0.15 * j}
     for j in range(20)]
)


def _responses_with_dif(path, shifted: str = "q7", shift: float = 1.0) -> None:
    rng = np.random.default_rng(8)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["person_id", "item_id", "response", "group"])
        for group, n in (("ref", 1500), ("foc", 1500)):
            theta = rng.normal(size=n)
            items = np.arange(len(BANK))
            probs_shift = np.where(np.array(BANK.item_ids) == shifted, shift, 0.0)
            responses = simulate_responses(
                BANK, items[None, :], theta[:, None] - (probs_shift if group == "foc" else 0), rng
            )
            for p in range(n):
                for j in items:
                    writer.writerow([f"{group}{p}", BANK.item_ids[j], int(responses[p, j]), group])


def test_dif_flags_the_shifted_item(tmp_path) -> None:
    path = tmp_path / "responses.csv"
    _responses_with_dif(path)
    out = tmp_path / "dif.json"
    result = CliRunner().invoke(
        cli, ["dif", str(path), "--reference", "ref", "--focal", "foc", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "q7: " in result.output and "favours reference" in result.output
    report = json.loads(out.read_text())
    flagged = {r["item_id"]: r["category"] for r in report["mantel_haenszel"]}
    assert flagged["q7"] in ("B", "C")
    assert sum(c == "A" for c in flagged.values()) >= 16


def test_dif_with_an_unknown_group_is_one_line_exit_2(tmp_path) -> None:
    path = tmp_path / "responses.csv"
    _responses_with_dif(path)
    out = tmp_path / "dif.json"
    result = CliRunner().invoke(
        cli, ["dif", str(path), "--reference", "ref", "--focal", "nope", "--json", str(out)]
    )
    assert result.exit_code == 2
    assert "nope" in result.output and "cat-engine: error:" in result.output
    assert not out.exists()


def _write_bank(path, bank: ItemBank) -> None:
    records = bank.to_records()
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["item_id", "model", "a", "b", "c", "d"])
        writer.writeheader()
        for r in records:
            writer.writerow({k: r[k] for k in writer.fieldnames})


def test_link_recovers_known_constants(tmp_path) -> None:
    a_true, b_true = 1.25, -0.3  # theta_ref = A theta_new + B
    new = ItemBank.from_records(
        [{"item_id": r["item_id"], "model": "2pl", "a": r["a"] * a_true,
          "b": (r["b"] - b_true) / a_true} for r in BANK.to_records()]
    )
    _write_bank(tmp_path / "new.csv", new)
    _write_bank(tmp_path / "ref.csv", BANK)
    out, summary = tmp_path / "linked.csv", tmp_path / "link.json"
    result = CliRunner().invoke(cli, ["link", str(tmp_path / "new.csv"), str(tmp_path / "ref.csv"),
                                      "--out", str(out), "--json", str(summary)])
    assert result.exit_code == 0, result.output
    constants = json.loads(summary.read_text())
    assert abs(constants["A"] - a_true) < 1e-5 and abs(constants["B"] - b_true) < 1e-5
    linked = ItemBank.from_csv(out)
    np.testing.assert_allclose(linked.b, BANK.b, atol=1e-5)
    np.testing.assert_allclose(linked.a, BANK.a, atol=1e-5)


def test_link_without_common_items_fails_cleanly(tmp_path) -> None:
    other = ItemBank.from_records([{"item_id": "x1", "model": "2pl", "a": 1, "b": 0},
                                   {"item_id": "x2", "model": "2pl", "a": 1, "b": 1}])
    _write_bank(tmp_path / "new.csv", other)
    _write_bank(tmp_path / "ref.csv", BANK)
    out = tmp_path / "linked.csv"
    result = CliRunner().invoke(cli, ["link", str(tmp_path / "new.csv"), str(tmp_path / "ref.csv"),
                                      "--out", str(out)])
    assert result.exit_code == 2
    assert "common" in result.output
    assert not out.exists()


def _wide_responses(path, bank: ItemBank, n: int = 2000, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    responses = simulate_responses(bank, np.arange(len(bank))[None, :],
                                   rng.normal(size=n)[:, None], rng)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["person_id", *bank.item_ids])
        for p in range(n):
            writer.writerow([f"p{p}", *responses[p]])


def test_calibrate_writes_parameters_that_recover_the_truth(tmp_path) -> None:
    path, out, summary = tmp_path / "r.csv", tmp_path / "params.csv", tmp_path / "s.json"
    _wide_responses(path, BANK)
    result = CliRunner().invoke(cli, ["calibrate", str(path), "--model", "2pl", "--out", str(out),
                                      "--json", str(summary)])
    assert result.exit_code == 0, result.output
    report = json.loads(summary.read_text())
    for key in ("log_likelihood", "aic", "bic", "iterations", "converged", "seconds"):
        assert key in report
    assert report["converged"] is True
    estimated = ItemBank.from_csv(out)  # the output is a bank the engine reads
    assert estimated.item_ids == BANK.item_ids
    assert np.sqrt(np.mean((estimated.b - BANK.b) ** 2)) < 0.12
    assert np.sqrt(np.mean((estimated.a - BANK.a) ** 2)) < 0.15
    with open(out) as handle:
        header = next(csv.reader(handle))
    assert {"item_id", "model", "a", "b", "se_a", "se_b", "s_x2", "s_x2_p", "infit",
            "outfit"} <= set(header)
    assert isinstance(report["misfitting_items"], list)
    assert len(report["misfitting_items"]) <= 3  # data simulated from the fitted model


def test_calibrate_names_an_item_without_variance_and_writes_nothing(tmp_path) -> None:
    path, out, summary = tmp_path / "r.csv", tmp_path / "params.csv", tmp_path / "s.json"
    _wide_responses(path, BANK, n=300)
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    column = rows[0].index("q4")
    for row in rows[1:]:
        row[column] = "1"  # everyone right: no variance
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    result = CliRunner().invoke(cli, ["calibrate", str(path), "--out", str(out),
                                      "--json", str(summary)])
    assert result.exit_code == 2, result.output
    assert "q4" in result.output and "cat-engine: error:" in result.output
    assert not out.exists() and not summary.exists()


def test_calibrate_reports_bad_rows(tmp_path) -> None:
    path, out = tmp_path / "r.csv", tmp_path / "params.csv"
    path.write_text("person_id,item_id,response\np1,q1,1\np1,q2,x\np2,q1,1\np2,q1,0\n")
    result = CliRunner().invoke(cli, ["calibrate", str(path), "--out", str(out)])
    assert result.exit_code == 2
    assert "row 3" in result.output
    assert not out.exists()


def test_calibrate_with_fixed_anchors_puts_new_items_on_the_bank_scale(tmp_path) -> None:
    """Anchors keep their parameters; new items are estimated on the anchors' scale even though
    the population's mean ability is 0.6, not the 0 a free calibration would assume."""
    rng = np.random.default_rng(12)
    new = ItemBank.from_records(
        [{"item_id": f"n{j}", "model": "2pl", "a": float(rng.uniform(0.8, 1.8)),
          "b": float(rng.normal())} for j in range(6)]
    )
    everything = ItemBank.from_records(BANK.to_records() + new.to_records())
    n = 4000
    responses = simulate_responses(everything, np.arange(len(everything))[None, :],
                                   rng.normal(0.6, 1.0, size=n)[:, None], rng)
    path = tmp_path / "r.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["person_id", *everything.item_ids])
        for p in range(n):
            writer.writerow([f"p{p}", *responses[p]])
    _write_bank(tmp_path / "anchors.csv", BANK)
    out, summary = tmp_path / "params.csv", tmp_path / "s.json"
    anchors_path = str(tmp_path / "anchors.csv")
    result = CliRunner().invoke(cli, ["calibrate", str(path), "--fixed", anchors_path,
                                      "--out", str(out), "--json", str(summary), "--no-fit"])
    assert result.exit_code == 0, result.output
    estimated = ItemBank.from_csv(out)
    anchors = estimated.indices_of(BANK.item_ids)
    np.testing.assert_allclose(estimated.b[anchors], BANK.b, atol=1e-9)  # kept exactly
    fresh = estimated.indices_of(new.item_ids)
    assert np.sqrt(np.mean((estimated.b[fresh] - new.b) ** 2)) < 0.15
    assert abs(json.loads(summary.read_text())["latent_mean"] - 0.6) < 0.1
