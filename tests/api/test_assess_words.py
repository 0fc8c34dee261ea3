"""The codes of the engine and the calibration in plain words (the code stays as a tooltip)."""

from __future__ import annotations

import pytest

from api.app import create_app
from api.assess_words import dif_words, fit_flags, flag_words, stop_reason_words


@pytest.fixture(scope="module")
def context(tmp_path_factory):
    app = create_app({"TESTING": True, "SECRET_KEY": "words",
                      "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('w') / 'w.db'}"})
    with app.test_request_context("/"):
        yield


@pytest.mark.parametrize(("code", "words"), [
    ("max_items=25", "reached the maximum of 25 questions"),
    ("bank_exhausted", "no more suitable questions were left"),
    ("se<=0.3", "the result was precise enough (standard error 0.3 or less)"),
    ("classified(ci, cut=0.5)", "the result was clearly above or below the cut score 0.5"),
    ("any(se<=0.3, classified(sprt, cut=-1), max_items=30)",
     "the result was precise enough (standard error 0.3 or less) or the result was clearly "
     "above or below the cut score \u22121 or reached the maximum of 30 questions"),
    ("all(theta_change<0.01, information_left<0.2)",
     "the estimate had stopped changing (by less than 0.01) and no question left would have "
     "made the result much more precise"),
    ("none", "not stopped"),
    ("something_new", "something_new"),
])
def test_stop_reasons_in_words(context, code: str, words: str) -> None:
    assert stop_reason_words(code) == words


def test_flags_in_words(context) -> None:
    assert flag_words("dif_C_girls") == "large DIF for group girls (category C)"
    assert fit_flags(["misfit", "s_x2"]) == [
        ("s_x2", "the observed proportions correct depart from the model's curve (S-X² test)")]
    assert fit_flags(["misfit", "dif_B_boys"])[0] == ("misfit", "does not fit the model")
    assert dif_words({"category": "C", "focal": "girls", "reference": "boys",
                      "favours": "reference"}) == "large for group girls (favours boys)"
