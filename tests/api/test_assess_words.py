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
    ("max_items=25", "reached the most items allowed (25)"),
    ("bank_exhausted", "no item left to give"),
    ("se<=0.3", "precise enough (standard error at most 0.3)"),
    ("classified(ci, cut=0.5)",
     "classified against the cut score 0.5 (confidence interval cleared it)"),
    ("any(se<=0.3, classified(sprt, cut=-1), max_items=30)",
     "precise enough (standard error at most 0.3) or classified against the cut score -1 "
     "(likelihood ratio test) or reached the most items allowed (30)"),
    ("all(theta_change<0.01, information_left<0.2)",
     "the estimate stopped moving (change below 0.01) and no item left could add much "
     "information (below 0.2)"),
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
