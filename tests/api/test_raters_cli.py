"""``cat-engine raters RATINGS.csv --json OUT.json``: rater measurement from a file."""

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

import api.raters_cli
from api.cli import cli
from calibration.raters import simulate_ratings

CAT_ENGINE = shutil.which("cat-engine", path=str(Path(sys.executable).parent))
SEVERITY = np.linspace(-0.9, 0.9, 8)
HEADER = "student_id,criterion,rater,score\n"


def _write_simulated(path: Path, n_students: int = 250, seed: int = 21) -> None:
    """Rubric levels 1..4 (so the lowest level, 1, is category 0)."""
    rng = np.random.default_rng(seed)
    data = simulate_ratings(rng.normal(0, 1, n_students), np.array([-0.4, 0.0, 0.3, 0.6]),
                            SEVERITY, np.array([-1.0, 0.0, 1.0]), seed=rng)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_id", "criterion", "rater", "score", "note"])
        for s, i, r, k in zip(data.student, data.criterion, data.rater, data.score, strict=True):
            writer.writerow([data.student_ids[s], data.criterion_ids[i], data.rater_ids[r],
                             int(k) + 1, "ok"])


def test_raters_writes_the_issue_json(tmp_path) -> None:
    path, out = tmp_path / "ratings.csv", tmp_path / "out.json"
    _write_simulated(path)
    result = CliRunner().invoke(cli, ["raters", str(path), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "rating-scale: converged" in result.stdout
    assert "Read 2000 ratings of 250 students on 4 criteria by 8 raters" in result.stderr
    report = json.loads(out.read_text())
    assert {"raters", "criteria", "thresholds", "students", "agreement", "log_likelihood",
            "seconds"} <= set(report)
    assert {"rater", "severity", "se", "infit", "outfit", "n"} <= set(report["raters"][0])
    assert {"criterion", "difficulty", "se", "infit", "outfit"} <= set(report["criteria"][0])
    assert {"student_id", "measure", "se", "fair_average"} <= set(report["students"][0])
    assert {"step", "tau", "se"} == set(report["thresholds"][0])
    assert {"exact", "adjacent", "krippendorff_alpha_ordinal", "krippendorff_alpha_interval",
            "icc2_1", "icc3_1", "pairs"} <= set(report["agreement"])
    assert {"raters", "n", "exact", "qwk"} <= set(report["agreement"]["pairs"][0])
    by_label = {r["rater"]: r["severity"] for r in report["raters"]}
    estimated = np.array([by_label[f"R{r + 1:02d}"] for r in range(8)])
    assert np.abs(estimated - SEVERITY).max() < 0.35
    assert abs(estimated.sum()) < 1e-9
    fair = [s["fair_average"] for s in report["students"]]
    assert min(fair) > 1 and max(fair) < 4  # in the rubric's own units (levels 1..4)
    assert report["seconds"] > 0 and report["log_likelihood"] < 0


def test_partial_credit_and_min_score(tmp_path) -> None:
    path, out = tmp_path / "ratings.csv", tmp_path / "out.json"
    _write_simulated(path, n_students=150)
    result = CliRunner().invoke(cli, ["raters", str(path), "--json", str(out), "--model",
                                      "partial-credit", "--min-score", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["model"] == "partial-credit"
    assert len(report["thresholds"]) == 4 * 3
    assert {"criterion", "step", "tau", "se"} == set(report["thresholds"][0])
    per_criterion = {}
    for row in report["thresholds"]:
        per_criterion.setdefault(row["criterion"], []).append(row["tau"])
    assert all(abs(sum(taus)) < 1e-9 for taus in per_criterion.values())


@pytest.mark.parametrize("model", ["rating-scale", "partial-credit"])
def test_a_min_score_below_every_rating_leaves_a_level_unused_and_is_refused(tmp_path, model):
    path, out = tmp_path / "ratings.csv", tmp_path / "out.json"
    _write_simulated(path, n_students=150)
    result = CliRunner().invoke(cli, ["raters", str(path), "--json", str(out), "--model", model,
                                      "--min-score", "0"])
    assert result.exit_code == 2
    last = result.stderr.strip().splitlines()[-1]
    assert ("level 0" if model == "partial-credit"
            else "levels never used on any criterion: score 0;") in last, last
    assert not out.exists()


def test_progress_bar_on_long_runs(tmp_path, monkeypatch) -> None:
    path, out = tmp_path / "ratings.csv", tmp_path / "out.json"
    _write_simulated(path, n_students=100)
    monkeypatch.setattr(api.raters_cli, "PROGRESS_FROM", 0)
    result = CliRunner().invoke(cli, ["raters", str(path), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "Fitting" in result.stderr and "Fitting" not in result.stdout


def _bad(tmp_path: Path, body: str, header: str = HEADER) -> tuple[int, str, Path]:
    path, out = tmp_path / "ratings.csv", tmp_path / "out.json"
    path.write_text(header + body, encoding="utf-8")
    result = CliRunner().invoke(cli, ["raters", str(path), "--json", str(out)])
    return result.exit_code, result.stderr, out


@pytest.mark.parametrize(("header", "body", "expected"), [
    ("student_id,rater,score\n", "a,R1,1\n", "missing column criterion (expected student_id,"
     "criterion,rater,score)"),
    (HEADER, "a,c,R1,1\na,c,R2,two\n", "row 3, score: 'two' is not an integer"),
    (HEADER, "a,c,R1,1\nb,c,R1,2\n", "one rater only ('R1')"),
    (HEADER, "a,c,R1,1\na,c,R2,2\nb,c,R1,2\na,c,R1,2\n",
     "row 5: a second score by rater 'R1' for student 'a' on criterion 'c' (first in row 2)"),
    (HEADER, "a,c,R1,1\na,c,R2,2\nb,c,R3,2\nb,c,R4,1\n",
     "raters form 2 groups that share no student: {R1, R2} and {R3, R4}; severities of "
     "different groups cannot be compared"),
    (HEADER, "", "no ratings (only a header)"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, header, body, expected):
    code, stderr, out = _bad(tmp_path, body, header)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("cat-engine: error: ") and expected in lines[-1], stderr
    assert all(line.startswith("Read ") for line in lines[:-1]), stderr
    assert "Traceback" not in stderr
    assert not out.exists()


def test_an_unwritable_output_is_one_line(tmp_path) -> None:
    path = tmp_path / "ratings.csv"
    _write_simulated(path, n_students=60)
    result = CliRunner().invoke(cli, ["raters", str(path), "--json",
                                      str(tmp_path / "missing" / "out.json")])
    assert result.exit_code == 2
    assert "cannot write" in result.stderr.strip().splitlines()[-1]


def test_the_console_script_end_to_end(tmp_path) -> None:
    """Through the installed ``cat-engine`` script, exactly as a person runs it."""
    assert CAT_ENGINE, "the cat-engine console script is not installed"
    path, out = tmp_path / "ratings.csv", tmp_path / "out.json"
    _write_simulated(path, n_students=80)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    done = subprocess.run([CAT_ENGINE, "raters", str(path), "--json", str(out)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(out.read_text())["students"]) == 80
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "a,c,R1,1\na,c,R2,2.5\n", encoding="utf-8")
    done = subprocess.run([CAT_ENGINE, "raters", str(bad), "--json", str(tmp_path / "x.json")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"cat-engine: error: {bad}: row 3, score: '2.5' is not an integer"]
    assert not (tmp_path / "x.json").exists()
