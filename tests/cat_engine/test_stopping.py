"""Stopping rules: each fires exactly when its condition holds, composes, and reports why.

The rules are evaluated on hand-made :class:`StopContext` arrays (several test takers at once),
and the SPRT log ratio is checked against log-likelihoods computed with
:func:`cat_engine.models.log_likelihood` one test taker at a time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from cat_engine.bank import ItemBank
from cat_engine.errors import ConfigError
from cat_engine.models import information, log_likelihood
from cat_engine.stopping import (
    SPRT,
    AllOf,
    AnyOf,
    ClassificationCI,
    InformationLeft,
    MaxItems,
    StandardError,
    StopContext,
    StoppingPolicy,
    ThetaChange,
    make_stopping,
)


def make_bank(n_items: int = 30, seed: int = 0) -> ItemBank:
    rng = np.random.default_rng(seed)
    return ItemBank.from_records(
        {
            "item_id": f"i{j}",
            "model": "3pl" if j % 3 == 0 else "2pl",
            "a": float(rng.uniform(0.6, 2.0)),
            "b": float(rng.normal()),
            "c": 0.2 if j % 3 == 0 else 0.0,
        }
        for j in range(n_items)
    )


BANK = make_bank()


def context(
    theta,
    se=None,
    n_scored=None,
    *,
    theta_previous=None,
    items=None,
    responses=None,
    available=None,
    bank: ItemBank = BANK,
) -> StopContext:
    theta = np.asarray(theta, dtype=float)
    n = theta.size
    se = np.full(n, 0.5) if se is None else np.asarray(se, dtype=float)
    n_scored = np.full(n, 10) if n_scored is None else np.asarray(n_scored)
    if items is None:
        items = np.full((n, 1), -1)
        responses = np.full((n, 1), -1)
    available = np.ones((n, len(bank)), dtype=bool) if available is None else available
    previous = np.full(n, np.nan) if theta_previous is None else np.asarray(theta_previous, float)
    return StopContext(
        bank=bank,
        theta=theta,
        se=se,
        theta_previous=previous,
        n_scored=n_scored,
        items=np.asarray(items),
        responses=np.asarray(responses),
        available=available,
        information=lambda: information(bank, np.arange(len(bank))[None, :], theta[:, None]),
    )


# -- single rules ------------------------------------------------------------------------------


def test_standard_error_fires_at_or_below_the_threshold() -> None:
    rule = StandardError(0.3)
    ctx = context(np.zeros(4), se=[0.2999, 0.3, 0.3001, 1.0])
    assert rule.fires(ctx).tolist() == [True, True, False, False]
    assert rule.name == "se<=0.3"


def test_max_items_fires_from_n_items_on() -> None:
    rule = MaxItems(5)
    ctx = context(np.zeros(3), n_scored=[4, 5, 6])
    assert rule.fires(ctx).tolist() == [False, True, True]
    assert rule.name == "max_items=5"


@pytest.mark.parametrize(("alpha", "z"), [(0.05, 1.959964), (0.10, 1.644854), (0.01, 2.575829)])
def test_classification_ci_uses_the_two_sided_z(alpha, z) -> None:
    rule = ClassificationCI(cut=0.5, alpha=alpha)
    assert rule.z == pytest.approx(z, abs=1e-6)
    se = np.array([0.3, 0.3, 0.3, 0.3, 0.2, 0.2])
    # just outside / just inside the interval, above and below the cut
    distance = np.array([1.001, 0.999, -1.001, -0.999, 1.01, -0.98]) * z * se
    ctx = context(0.5 + distance, se=se)
    assert rule.fires(ctx).tolist() == [True, False, True, False, True, False]
    assert rule.name == "classified(ci, cut=0.5)"


def test_classification_ci_with_alpha_005_is_z_196() -> None:
    rule = make_stopping({"classification": {"cut": 0.0}}).criterion
    assert isinstance(rule, ClassificationCI)
    assert round(rule.z, 2) == 1.96
    ctx = context([0.59, 0.57], se=[0.3, 0.3])  # 1.96 * 0.3 = 0.588
    assert rule.fires(ctx).tolist() == [True, False]


def _patterns(rng: np.random.Generator, n: int, length: int):
    items = np.full((n, length), -1)
    responses = np.full((n, length), -1)
    lengths = rng.integers(1, length + 1, size=n)
    for row, size in enumerate(lengths):
        items[row, :size] = rng.choice(len(BANK), size=size, replace=False)
        responses[row, :size] = rng.integers(0, 2, size=size)
    return items, responses, lengths


def test_sprt_log_ratio_equals_two_log_likelihoods() -> None:
    rng = np.random.default_rng(4)
    items, responses, lengths = _patterns(rng, 40, 15)
    rule = SPRT(cut=0.4, delta=0.25, alpha=0.05, beta=0.1)
    ctx = context(np.zeros(40), items=items, responses=responses)
    expected = np.array([
        log_likelihood(BANK, items[r, :size], responses[r, :size], [0.65])[0]
        - log_likelihood(BANK, items[r, :size], responses[r, :size], [0.15])[0]
        for r, size in enumerate(lengths)
    ])
    np.testing.assert_allclose(rule.log_ratio(ctx), expected, rtol=1e-12, atol=1e-12)
    upper, lower = math.log(0.9 / 0.05), math.log(0.1 / 0.95)
    assert rule.upper == pytest.approx(upper)
    assert rule.lower == pytest.approx(lower)
    assert rule.fires(ctx).tolist() == ((expected >= upper) | (expected <= lower)).tolist()
    assert rule.fires(ctx).any() and not rule.fires(ctx).all()  # both outcomes are exercised


def test_sprt_classifies_long_consistent_patterns_both_ways() -> None:
    items = np.tile(np.arange(20), (2, 1))
    responses = np.stack([np.ones(20), np.zeros(20)]).astype(int)
    rule = SPRT(cut=0.0, delta=0.3)
    ctx = context(np.zeros(2), items=items, responses=responses)
    ratio = rule.log_ratio(ctx)
    assert ratio[0] >= rule.upper and ratio[1] <= rule.lower
    assert rule.fires(ctx).tolist() == [True, True]
    assert rule.name == "classified(sprt, cut=0)"


def test_information_left_fires_when_no_available_item_is_informative() -> None:
    theta = np.array([0.0, 0.0])
    info = information(BANK, np.arange(len(BANK)), 0.0)
    best = int(info.argmax())
    second = float(np.sort(info)[-2])
    threshold = (second + float(info[best])) / 2
    available = np.ones((2, len(BANK)), dtype=bool)
    available[1, best] = False  # without the best item nothing reaches the threshold
    rule = InformationLeft(threshold)
    assert rule.fires(context(theta, available=available)).tolist() == [False, True]
    assert rule.name == f"information_left<{threshold:g}"


def test_theta_change_fires_on_small_moves_only() -> None:
    rule = ThetaChange(0.05)
    ctx = context([0.0, 0.0, 0.0, 1.0], theta_previous=[0.049, -0.051, np.nan, 1.0])
    assert rule.fires(ctx).tolist() == [True, False, False, True]


# -- composition and the policy -----------------------------------------------------------------


def test_any_of_fires_when_any_fires_and_reports_the_first() -> None:
    rule = AnyOf([StandardError(0.3), MaxItems(10)])
    ctx = context(np.zeros(4), se=[0.2, 0.2, 0.5, 0.5], n_scored=[12, 5, 12, 5])
    fired = rule.fires(ctx)
    assert fired.tolist() == [True, True, True, False]
    assert rule.reason(ctx, fired).tolist() == ["se<=0.3", "se<=0.3", "max_items=10", ""]


def test_all_of_needs_every_rule() -> None:
    rule = AllOf([StandardError(0.3), MaxItems(10)])
    ctx = context(np.zeros(4), se=[0.2, 0.2, 0.5, 0.5], n_scored=[12, 5, 12, 5])
    fired = rule.fires(ctx)
    assert fired.tolist() == [True, False, False, False]
    assert rule.reason(ctx, fired).tolist() == ["all(se<=0.3, max_items=10)", "", "", ""]


def test_nested_rules_report_the_inner_rule() -> None:
    inner = AllOf([ThetaChange(0.1), StandardError(0.5)])
    rule = AnyOf([StandardError(0.2), inner])
    ctx = context([0.0, 0.0, 0.0], se=[0.1, 0.4, 0.4], theta_previous=[1.0, 0.05, 1.0])
    fired = rule.fires(ctx)
    assert fired.tolist() == [True, True, False]
    assert rule.reason(ctx, fired).tolist() == ["se<=0.2", inner.name, ""]


def test_policy_min_items_vetoes_the_criterion() -> None:
    policy = StoppingPolicy(criterion=StandardError(0.3), max_items=20, min_items=5)
    ctx = context(np.zeros(3), se=[0.1, 0.1, 0.5], n_scored=[4, 5, 5])
    stop, reason = policy.evaluate(ctx)
    assert stop.tolist() == [False, True, False]
    assert reason.tolist() == ["", "se<=0.3", ""]


def test_policy_max_items_always_stops() -> None:
    policy = StoppingPolicy(criterion=StandardError(0.1), max_items=20, min_items=20)
    ctx = context(np.zeros(2), se=[0.5, 0.05], n_scored=[20, 19])
    stop, reason = policy.evaluate(ctx)
    assert stop.tolist() == [True, False]
    assert reason.tolist() == ["max_items=20", ""]


def test_policy_exhausted_bank_always_stops_even_below_min_items() -> None:
    policy = StoppingPolicy(criterion=StandardError(0.1), max_items=40, min_items=30)
    available = np.ones((3, len(BANK)), dtype=bool)
    available[0] = False
    available[2] = False
    ctx = context(np.zeros(3), se=[0.9, 0.9, 0.9], n_scored=[2, 2, 40], available=available)
    stop, reason = policy.evaluate(ctx)
    assert stop.tolist() == [True, False, True]
    assert reason.tolist() == ["bank_exhausted", "", "max_items=40"]  # max_items named first


def test_policy_without_a_criterion_stops_only_at_max_or_exhaustion() -> None:
    policy = make_stopping({"max_items": 3})
    assert policy.criterion is None
    stop, reason = policy.evaluate(context(np.zeros(2), se=[0.0, 0.0], n_scored=[2, 3]))
    assert stop.tolist() == [False, True]
    assert reason.tolist() == ["", "max_items=3"]


# -- make_stopping ---------------------------------------------------------------------------


def test_make_stopping_defaults() -> None:
    policy = make_stopping({})
    assert (policy.criterion, policy.max_items, policy.min_items) == (None, 40, 1)


def test_make_stopping_shorthand_single_rule() -> None:
    policy = make_stopping({"se": 0.3, "max_items": 25, "min_items": 5})
    assert isinstance(policy.criterion, StandardError)
    assert policy.criterion.threshold == 0.3
    assert (policy.max_items, policy.min_items) == (25, 5)


def test_make_stopping_shorthand_rules_combine_with_any_or_all() -> None:
    spec = {
        "se": 0.3,
        "classification": {"cut": 0.5, "method": "sprt", "delta": 0.2, "alpha": 0.1},
        "info_below": 0.05,
        "theta_change": 0.01,
    }
    policy = make_stopping(spec)
    assert isinstance(policy.criterion, AnyOf)
    kinds = [type(r) for r in policy.criterion.rules]
    assert kinds == [StandardError, SPRT, InformationLeft, ThetaChange]
    sprt = policy.criterion.rules[1]
    assert (sprt.cut, sprt.delta, sprt.alpha, sprt.beta) == (0.5, 0.2, 0.1, 0.05)
    both = make_stopping({"se": 0.3, "theta_change": 0.01, "combine": "ALL"})
    assert isinstance(both.criterion, AllOf)
    assert both.criterion.name == "all(se<=0.3, theta_change<0.01)"


def test_make_stopping_explicit_tree() -> None:
    policy = make_stopping({
        "rule": {"any": [{"se": 0.3}, {"all": [{"theta_change": 0.02}, {"info_below": 10}]}]},
        "max_items": 30,
    })
    rule = policy.criterion
    assert isinstance(rule, AnyOf) and policy.max_items == 30
    assert isinstance(rule.rules[0], StandardError)
    assert isinstance(rule.rules[1], AllOf)
    assert [type(r) for r in rule.rules[1].rules] == [ThetaChange, InformationLeft]
    assert rule.rules[1].rules[0].tolerance == 0.02
    # every item has information below 10: the inner rule fires where theta barely moved
    ctx = context(
        [0.0, 0.0, 0.0], se=[0.5, 0.5, 0.2], theta_previous=[0.01, 0.5, 0.5], n_scored=[8, 8, 8]
    )
    stop, reason = policy.evaluate(ctx)
    assert stop.tolist() == [True, False, True]
    assert reason.tolist() == [rule.rules[1].name, "", "se<=0.3"]


def test_make_stopping_ci_classification_from_shorthand() -> None:
    policy = make_stopping({"classification": {"cut": -0.5, "alpha": 0.1}})
    assert isinstance(policy.criterion, ClassificationCI)
    assert policy.criterion.cut == -0.5 and policy.criterion.z == pytest.approx(1.644854, 1e-6)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"se": 0}, "stopping.se must be positive"),
        ({"se": -0.2}, "stopping.se must be positive"),
        ({"max_items": 0}, "stopping.max_items must be at least 1"),
        ({"max_items": 10, "min_items": 11}, "stopping.min_items must be in [0, max_items]"),
        ({"min_items": -1}, "stopping.min_items"),
        ({"foo": 1, "bar": 2, "se": 0.3}, "stopping: unknown setting(s) bar, foo"),
        ({"se": 0.3, "combine": "xor"}, "stopping.combine: 'xor' is not one of any, all"),
        ({"classification": {"alpha": 0.05}}, "stopping.classification needs a 'cut' score"),
        ({"classification": 0.5}, "stopping.classification needs a 'cut' score"),
        ({"classification": {"cut": 0, "method": "bayes"}}, "stopping.classification.method"),
        ({"classification": {"cut": 0, "alpha": 1.5}}, "stopping.classification.alpha"),
        ({"classification": {"cut": 0, "method": "sprt", "delta": 0}},
         "stopping.classification.delta"),
        ({"classification": {"cut": 0, "method": "sprt", "beta": 0.6}},
         "stopping.classification.beta"),
        ({"classification": {"cut": 0, "method": "sprt", "alpha": 0}},
         "stopping.classification.alpha"),
        ({"rule": {"any": []}}, "stopping.any needs a non-empty list of rules"),
        ({"rule": {"all": {"se": 0.3}}}, "stopping.all needs a non-empty list of rules"),
        ({"rule": {"se": 0.3, "max_items": 4}}, "stopping.rule: each rule is an object with one"),
        ({"rule": {"any": [{"se": 0.3, "theta_change": 0.1}]}}, "stopping.any: each rule"),
        ({"rule": {"bogus": 1}}, "stopping: unknown rule 'bogus'"),
    ],
)
def test_make_stopping_errors_name_the_setting(spec, message) -> None:
    with pytest.raises(ConfigError) as error:
        make_stopping(spec)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"se": "abc"}, "stopping.se"),
        ({"se": None}, "stopping.se"),
        ({"max_items": None}, "stopping.max_items"),
        ({"classification": {"cut": None}}, "stopping.classification"),
    ],
)
def test_make_stopping_non_numbers_are_config_errors(spec, message) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        make_stopping(spec)
