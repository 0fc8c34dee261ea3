"""Content constraints: shadow tests, Kingsbury-Zara, enemy sets and their configuration.

The CAT loops here are written out by hand (information at an EAP estimate, restrict, argmax,
answer) so that only :mod:`cat_engine.constraints` is under test.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cat_engine.bank import ItemBank
from cat_engine.constraints import (
    ContentContext,
    ContentRule,
    EnemyExclusion,
    KingsburyZara,
    ShadowTest,
    make_constraints,
)
from cat_engine.errors import ConfigError
from cat_engine.models import information

TAGS = ("algebra", "geometry", "number", "data")
GRID = np.linspace(-4, 4, 41)


def make_bank(n_items: int = 120, seed: int = 0) -> ItemBank:
    """A 2PL bank with four tags in turn whose discrimination rises from tag to tag, so an
    unconstrained CAT prefers ``data`` items and neglects ``algebra`` ones. Items 3, 7, 11, ...
    (``data``) come in pairs of near twins, declared enemies in :data:`ENEMIES`."""
    rng = np.random.default_rng(seed)
    records = []
    for j in range(n_items):
        tag = TAGS[j % 4]
        a = [0.6, 1.0, 1.4, 2.2][j % 4] + rng.uniform(0, 0.3)
        b = rng.normal()
        if tag == "data" and (j // 4) % 2 == 1:  # twin of the previous data item
            b = records[-4]["b"] + 0.01
        records.append({"item_id": f"i{j}", "model": "2pl", "a": a, "b": b, "content": [tag]})
    return ItemBank.from_records(records)


def enemy_pairs(bank: ItemBank) -> list[list[str]]:
    data = [j for j in range(len(bank)) if bank.content[j] == ("data",)]
    return [[f"i{data[k]}", f"i{data[k + 1]}"] for k in range(0, len(data) - 1, 2)]


RULES = [
    ContentRule("algebra", min=4, max=5),
    ContentRule("geometry", min=3, max=4),
    ContentRule("number", min=2, max=4),
    ContentRule("data", min=1, max=3),
]


def run_cat(control, bank: ItemBank, theta: np.ndarray, max_items: int, seed: int = 1):
    """Fixed-length CAT for every theta at once; the items given, (N, max_items)."""
    rng = np.random.default_rng(seed)
    n, j = theta.size, len(bank)
    seen = np.zeros((n, j), dtype=bool)
    log_post = np.tile(-0.5 * GRID**2, (n, 1))
    given = np.zeros((n, max_items), dtype=np.intp)
    rows = np.arange(n)
    for step in range(max_items):
        post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
        estimate = (post * GRID).sum(axis=1) / post.sum(axis=1)
        scores = information(bank, np.arange(j)[None, :], estimate[:, None])
        scores = np.where(seen, -np.inf, scores)
        if control is not None:
            ctx = ContentContext(
                bank=bank,
                seen=seen.copy(),
                available=~seen,
                n_scored=seen.sum(axis=1),
                max_items=max_items,
            )
            restricted = control.restrict(scores, ctx)
            assert np.isfinite(restricted).any(axis=1).all()
            # Only the selector's finite scores, never raised.
            assert (np.isfinite(restricted) <= np.isfinite(scores)).all()
            scores = restricted
        item = scores.argmax(axis=1)
        assert not seen[rows, item].any()
        seen[rows, item] = True
        given[:, step] = item
        a, b = bank.a[item], bank.b[item]
        p_true = 1 / (1 + np.exp(-a * (theta - b)))
        u = rng.random(n) < p_true
        p_grid = 1 / (1 + np.exp(-a[:, None] * (GRID[None, :] - b[:, None])))
        log_post += np.log(np.where(u[:, None], p_grid, 1 - p_grid))
    return given


def tag_counts(bank: ItemBank, given: np.ndarray, tags=TAGS) -> np.ndarray:
    matrix = bank.content_matrix(tags)  # (T, J)
    return matrix[:, given].sum(axis=2).T  # (N, T)


def enemy_violations(given: np.ndarray, bank: ItemBank, enemies) -> int:
    count = 0
    for row in given:
        ids = {bank.item_ids[j] for j in row}
        count += sum(len(ids & set(group)) > 1 for group in enemies)
    return count


# -- shadow test -------------------------------------------------------------------------------


def test_shadow_test_cat_meets_the_blueprint_where_the_unconstrained_cat_does_not() -> None:
    bank = make_bank()
    enemies = enemy_pairs(bank)
    theta = np.random.default_rng(7).normal(size=50)
    max_items = 12

    free = run_cat(None, bank, theta, max_items)
    free_counts = tag_counts(bank, free)
    mins = np.array([r.min for r in RULES])
    maxs = np.array([r.max for r in RULES])
    free_ok = ((free_counts >= mins) & (free_counts <= maxs)).all(axis=1)
    assert free_ok.mean() < 0.1  # the blueprint matters: almost no unconstrained test meets it
    assert enemy_violations(free, bank, enemies) > 0

    control = ShadowTest(RULES, enemies, bank=bank, max_items=max_items)
    given = run_cat(control, bank, theta, max_items)
    counts = tag_counts(bank, given)
    assert (counts >= mins).all() and (counts <= maxs).all()
    assert counts.sum(axis=1).tolist() == [max_items] * theta.size
    assert enemy_violations(given, bank, enemies) == 0
    assert control.infeasible_steps == 0


def _brute_force(scores, seen, usable, tags, rules, enemies, max_items):
    """Best total score of a feasible full test containing ``seen``, or None."""
    fixed = list(np.flatnonzero(seen))
    pool = list(np.flatnonzero(usable & ~seen))
    best = None
    for extra in itertools.combinations(pool, max_items - len(fixed)):
        chosen = np.zeros(seen.size, dtype=bool)
        chosen[fixed + list(extra)] = True
        counts = tags[:, chosen].sum(axis=1)
        if any(
            c < r.min or (r.max is not None and c > r.max)
            for c, r in zip(counts, rules, strict=True)
        ):
            continue
        if any(chosen[list(group)].sum() > 1 for group in enemies):
            continue
        total = scores[list(extra)].sum()
        best = total if best is None else max(best, total)
    return best


def test_shadow_test_is_the_brute_force_optimum_on_a_tiny_bank() -> None:
    rng = np.random.default_rng(3)
    j, max_items = 12, 5
    content = [
        ("x",),
        ("x", "y"),
        ("y",),
        ("y", "z"),
        ("z",),
        (),
        ("x",),
        ("y",),
        ("z",),
        ("x", "z"),
        ("y",),
        ("x",),
    ]
    bank = ItemBank.from_records(
        {"item_id": f"t{k}", "model": "2pl", "a": 1.0, "b": 0.0, "content": list(content[k])}
        for k in range(j)
    )
    rules = [ContentRule("x", min=2, max=3), ContentRule("y", min=1, max=2), ContentRule("z", 1)]
    # The pairs t2-t7, t7-t8, t2-t8 form an odd cycle: the LP relaxation is often fractional
    # there, so the 0-1 program needs branch and bound.
    enemy_ids = [
        ["t0", "t1", "t9"],
        ["t3", "t4"],
        ["t6", "t11"],
        ["t2", "t7"],
        ["t7", "t8"],
        ["t2", "t8"],
    ]
    enemies = [[bank.index_of(i) for i in group] for group in enemy_ids]
    tags = bank.content_matrix(["x", "y", "z"])
    control = ShadowTest(rules, enemy_ids, bank=bank, max_items=max_items)

    n = 60
    scores = rng.gamma(2.0, size=(n, j))
    scores[::2, [2, 7, 8]] += 3.0  # make the odd cycle attractive
    seen = np.zeros((n, j), dtype=bool)
    available = rng.random((n, j)) > 0.15
    for i in range(n):
        seen[i, rng.choice(j, size=i % 3, replace=False)] = True  # 0, 1 or 2 items given
    available &= ~seen
    scores = np.where(available, scores, -np.inf)
    ctx = ContentContext(bank, seen, available, seen.sum(axis=1), max_items)
    out = control.restrict(scores, ctx)

    expected_infeasible = 0
    checked = 0
    for i in range(n):
        blocked = np.zeros(j, dtype=bool)
        for group in enemies:
            if seen[i, group].any():
                blocked[group] = True
        best = _brute_force(
            scores[i], seen[i], available[i] & ~blocked, tags, rules, enemies, max_items
        )
        offered = np.isfinite(out[i])
        assert offered.any()
        assert not (offered & (seen[i] | blocked)).any()
        if best is None:
            expected_infeasible += 1
            continue
        checked += 1
        assert offered.sum() == max_items - seen[i].sum()  # the rest of the shadow test
        assert out[i, offered].sum() == pytest.approx(best, rel=1e-9, abs=1e-9)
    assert checked > 40
    assert control.infeasible_steps == expected_infeasible


def test_shadow_test_turns_proportions_into_bounds() -> None:
    bank = make_bank(40)
    control = ShadowTest([ContentRule("algebra", proportion=0.5)], bank=bank)
    given = run_cat(control, bank, np.linspace(-2, 2, 6), max_items=10)
    assert (tag_counts(bank, given, ["algebra"]) == 5).all()


def test_infeasible_blueprint_falls_back_gracefully() -> None:
    bank = make_bank(40)
    control = ShadowTest(RULES, bank=bank, max_items=12)
    j = len(bank)
    algebra = np.flatnonzero(bank.content_matrix(["algebra"])[0])
    data = np.flatnonzero(bank.content_matrix(["data"])[0])
    seen = np.zeros((3, j), dtype=bool)
    seen[0, data[:5]] = True  # already over data's max of 3
    available = ~seen
    available[1, algebra] = False  # algebra's min of 4 can no longer be met
    seen[2, algebra[:2]] = True  # a feasible row
    available &= ~seen
    scores = np.where(available, information(bank, np.arange(j)[None, :], 0.0), -np.inf)
    out = control.restrict(scores, ContentContext(bank, seen, available, seen.sum(1), 12))
    assert np.isfinite(out).any(axis=1).all()
    assert control.infeasible_steps == 2
    assert control.unconstrained_steps == 0
    # The relaxed shadow tests keep the maximums: no more data items for row 0.
    assert not np.isfinite(out[0, data]).any()
    # Without algebra, the longest shadow test the maximums allow: 4 + 4 + 3 items.
    assert np.isfinite(out[1]).sum() == 11
    assert (
        bank.content_matrix(["geometry", "number", "data"])[:, np.isfinite(out[1])].sum(1)
        == [4, 4, 3]
    ).all()


def test_bank_too_small_for_the_test_still_serves_every_item() -> None:
    bank = make_bank(8)
    control = ShadowTest([ContentRule("algebra", min=1)], bank=bank)
    given = run_cat(control, bank, np.zeros(3), max_items=8)  # the whole bank: feasible
    assert sorted(given[0]) == list(range(8))
    scores = np.ones((1, 8))
    ctx = ContentContext(bank, np.zeros((1, 8), bool), np.ones((1, 8), bool), np.zeros(1), 10)
    out = control.restrict(scores, ctx)  # ten items from eight: infeasible
    assert np.isfinite(out).all()
    assert control.infeasible_steps == 1


def test_enemies_of_given_items_are_never_offered() -> None:
    bank = make_bank(12)
    enemies = [["i0", "i1", "i2"], ["i5", "i6"]]
    seen = np.zeros((2, 12), dtype=bool)
    seen[0, 1] = True
    seen[1, :] = True
    seen[1, [2, 3]] = False  # only i2 (enemy of the given i0 .. i1) and i3 left
    scores = np.where(seen, -np.inf, 1.0)
    for control in (
        EnemyExclusion(enemies, bank=bank),
        ShadowTest([], enemies, bank=bank),
        KingsburyZara([ContentRule("algebra", proportion=0.5)], enemies, bank=bank),
    ):
        ctx = ContentContext(bank, seen, ~seen, seen.sum(1), 12)
        out = control.restrict(scores, ctx)
        assert not np.isfinite(out[0, [0, 2]]).any() and np.isfinite(out[0]).any()
        assert np.isfinite(out[1, 3]) and not np.isfinite(out[1, 2])
        # Only enemies left: the row keeps them rather than lose every item (and counts it).
        only_enemy = seen.copy()
        only_enemy[1, 3] = True
        scores_2 = np.where(only_enemy, -np.inf, 1.0)
        ctx = ContentContext(bank, only_enemy, ~only_enemy, only_enemy.sum(1), 12)
        out = control.restrict(scores_2, ctx)
        assert np.isfinite(out[1, 2])
        assert control.infeasible_steps >= 1


# -- Kingsbury-Zara ----------------------------------------------------------------------------


def test_kingsbury_zara_keeps_every_test_within_one_item_of_its_targets() -> None:
    bank = make_bank()
    rules = [ContentRule(t, proportion=p) for t, p in zip(TAGS, (0.4, 0.3, 0.2, 0.1), strict=True)]
    theta = np.random.default_rng(11).normal(size=200)
    max_items = 20
    target = np.array([0.4, 0.3, 0.2, 0.1]) * max_items

    free = tag_counts(bank, run_cat(None, bank, theta, max_items))
    assert (np.abs(free - target) > 1).any(axis=1).mean() > 0.9

    control = KingsburyZara(rules, enemy_pairs(bank), bank=bank)
    given = run_cat(control, bank, theta, max_items)
    assert (np.abs(tag_counts(bank, given) - target) <= 1).all()
    assert enemy_violations(given, bank, enemy_pairs(bank)) == 0


def test_kingsbury_zara_vectorised_equals_row_by_row() -> None:
    bank = make_bank(40)
    rules = [
        ContentRule("algebra", min=2, max=4),
        ContentRule("geometry", proportion=0.3),
        ContentRule("number", max=2),
    ]
    control = KingsburyZara(rules, [["i0", "i4"], ["i3", "i7"]], bank=bank)
    rng = np.random.default_rng(5)
    n, j = 80, len(bank)
    seen = rng.random((n, j)) < rng.uniform(0, 0.4, size=(n, 1))
    available = ~seen & (rng.random((n, j)) > 0.2)
    available[0] = False  # nothing left at all
    available[1] = ~seen[1] & bank.content_matrix(["data"])[0]  # only untagged-by-rule items
    scores = np.where(available, rng.gamma(2.0, size=(n, j)), -np.inf)
    ctx = ContentContext(bank, seen, available, seen.sum(axis=1), 10)
    together = control.restrict(scores, ctx)
    for i in range(n):
        one = ContentContext(
            bank, seen[i : i + 1], available[i : i + 1], seen[i : i + 1].sum(1), 10
        )
        np.testing.assert_array_equal(together[i : i + 1], control.restrict(scores[i : i + 1], one))
    had = np.isfinite(scores).any(axis=1)
    assert (np.isfinite(together).any(axis=1) == had).all()
    restricted = np.isfinite(together).sum(axis=1) < np.isfinite(scores).sum(axis=1)
    assert restricted.mean() > 0.5  # the comparison is not vacuous


def test_kingsbury_zara_targets_from_bounds() -> None:
    bank = make_bank(40)
    control = KingsburyZara(
        [ContentRule("algebra", min=2, max=4), ContentRule("geometry"), ContentRule("data", max=1)],
        bank=bank,
    )
    # algebra 3/10, data 0.5/10, geometry the rest of 1 shared equally (one rule): 0.65;
    # "number" items form the "other" area with what is left (0).
    np.testing.assert_allclose(control.targets(10), [0.3, 0.65, 0.05, 0.0])


def test_kingsbury_zara_closes_areas_at_their_max_and_meets_mins() -> None:
    bank = make_bank()
    data, algebra = bank.content_matrix(["data", "algebra"])
    control = KingsburyZara(
        [ContentRule("data", max=1, proportion=0.5), ContentRule("algebra", proportion=0.5)],
        bank=bank,
    )
    seen = np.zeros((1, len(bank)), dtype=bool)
    seen[0, np.flatnonzero(data)[:1]] = True
    seen[0, np.flatnonzero(algebra)[:3]] = True  # data is furthest below its share, but full
    scores = np.where(seen, -np.inf, 1.0)
    out = control.restrict(scores, ContentContext(bank, seen, ~seen, seen.sum(1), 10))
    assert np.isfinite(out).any()
    assert not np.isfinite(out[0, data]).any()

    # A small share but a min of 4: the mins take over when they need every remaining place.
    rules = [ContentRule("algebra", min=4, proportion=0.1)] + [
        ContentRule(t, proportion=0.3) for t in TAGS[1:]
    ]
    given = run_cat(KingsburyZara(rules, bank=bank), bank, np.linspace(-2, 2, 20), 10)
    assert (tag_counts(bank, given, ["algebra"]) == 4).all()


# -- configuration -----------------------------------------------------------------------------


def test_make_constraints_builds_each_control() -> None:
    bank = make_bank(40)
    assert make_constraints(None, bank) is None
    assert make_constraints({}, bank) is None
    assert isinstance(make_constraints({"enemies": [["i1", "i2"]]}, bank), EnemyExclusion)
    spec = {
        "method": "shadow",
        "content": [{"tag": "algebra", "min": 2, "max": 5}, {"tag": "number", "proportion": 0.3}],
        "enemies": [["i1", "i2"], ["i7", "i9", "i12"]],
    }
    shadow = make_constraints(spec, bank, max_items=10)
    assert isinstance(shadow, ShadowTest)
    assert shadow.settings() == spec
    kz = make_constraints(spec | {"method": "kingsbury-zara"}, bank)
    assert isinstance(kz, KingsburyZara)
    assert kz.rules[1] == ContentRule("number", proportion=0.3)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"method": "shadow", "content": [{"tag": "algebra", "min": 3, "max": 1}]},
            r"constraints\.content\[0\]\.max must be >= min",
        ),
        (
            {"method": "shadow", "content": [{"tag": "algebra"}, {"tag": "nope", "min": 1}]},
            r"constraints\.content\[1\]\.tag: no item .* 'nope'",
        ),
        (
            {"method": "shadow", "content": [{"tag": "algebra", "min": 11}]},
            r"constraints\.content\[0\]\.min \(11\) is more than the 10 item",
        ),
        (
            {"method": "shadow", "content": [{"tag": "algebra", "min": 1.5}]},
            r"constraints\.content\[0\]\.min must be an integer",
        ),
        (
            {"method": "shadow", "content": [{"tag": "algebra", "mx": 1}]},
            r"constraints\.content\[0\]\.mx is not a setting",
        ),
        (
            {"method": "kingsbury-zara", "content": [{"tag": "algebra", "proportion": 1.5}]},
            r"constraints\.content\[0\]\.proportion must be in \[0, 1\]",
        ),
        (
            {
                "method": "kingsbury-zara",
                "content": [
                    {"tag": "algebra", "proportion": 0.7},
                    {"tag": "data", "proportion": 0.7},
                ],
            },
            r"constraints\.content: the proportions add up to 1\.4",
        ),
        (
            {"method": "shadow", "content": [{"tag": "algebra"}, {"tag": "algebra"}]},
            r"constraints\.content\[1\]\.tag: 'algebra' already has a rule",
        ),
        (
            {"enemies": [["i1", "i2"], ["i3", "i999"]]},
            r"constraints\.enemies\[1\]\[1\]: unknown item 'i999'",
        ),
        ({"enemies": [["i1"]]}, r"constraints\.enemies\[0\] must name at least two"),
        ({"content": [{"tag": "algebra"}]}, r"constraints\.method is required"),
        ({"method": "lottery"}, r"constraints\.method: 'lottery' is not one of"),
        ({"methd": "shadow"}, r"constraints\.methd is not a setting"),
    ],
)
def test_bad_settings_name_the_setting(spec, message) -> None:
    with pytest.raises(ConfigError, match=message):
        make_constraints(spec, make_bank(40))


def test_mins_longer_than_the_test_are_rejected() -> None:
    bank = make_bank(40)
    spec = {"method": "shadow", "content": [{"tag": t, "min": 4} for t in TAGS]}
    with pytest.raises(ConfigError, match=r"constraints\.content: the mins add up to 16"):
        make_constraints(spec, bank, max_items=12)
    control = make_constraints(spec, bank)  # test length not known yet: checked on first use
    ctx = ContentContext(bank, np.zeros((1, 40), bool), np.ones((1, 40), bool), np.zeros(1), 12)
    with pytest.raises(ConfigError, match="mins add up to 16"):
        control.restrict(np.ones((1, 40)), ctx)


def test_a_proportion_outside_min_max_is_rejected_for_a_shadow_test() -> None:
    spec = {"method": "shadow", "content": [{"tag": "algebra", "max": 2, "proportion": 0.5}]}
    with pytest.raises(ConfigError, match=r"constraints\.content\[0\]\.proportion 0\.5 of a test"):
        make_constraints(spec, make_bank(40), max_items=10)


def test_a_reloaded_bank_is_resolved_again() -> None:
    bank = make_bank(40)
    control = make_constraints(
        {"method": "shadow", "content": [{"tag": "algebra", "min": 5}]}, bank
    )
    copy = ItemBank.from_records(bank.to_records())
    seen = np.zeros((1, 40), dtype=bool)
    scores = np.where(copy.content_matrix(["algebra"])[0], 0.0, 1.0)[None, :]
    out = control.restrict(scores, ContentContext(copy, seen, ~seen, np.zeros(1), 5))
    assert (
        np.isfinite(out).sum() == 5
        and (copy.content_matrix(["algebra"])[0] >= np.isfinite(out)).all()
    )
    enemies = make_constraints({"enemies": [["i1", "i2"]]}, bank)
    assert make_constraints(enemies.settings(), bank).enemies == (("i1", "i2"),)


# -- overlapping tags ----------------------------------------------------------------------------


def _overlapping_bank(n_items: int = 120, seed: int = 3) -> ItemBank:
    """Four areas in turn, and every third item also tagged ``word-problem``."""
    base = make_bank(n_items, seed)
    records = []
    for j in range(n_items):
        tags = list(base.content[j]) + (["word-problem"] if j % 3 == 0 else [])
        records.append({"item_id": f"i{j}", "model": "2pl", "a": float(base.a[j]),
                        "b": float(base.b[j]), "content": tags})
    return ItemBank.from_records(records)


OVERLAPPING = {"content": [{"tag": "algebra", "min": 3}, {"tag": "geometry", "min": 2},
                           {"tag": "word-problem", "min": 4}]}


def test_kingsbury_zara_refuses_overlapping_tags_and_names_the_shadow_test() -> None:
    bank = _overlapping_bank()
    with pytest.raises(ConfigError) as error:
        make_constraints(OVERLAPPING | {"method": "kingsbury-zara"}, bank, max_items=10)
    message = str(error.value)
    assert "item 'i0' carries several rule tags ('algebra', 'word-problem'" in message
    assert '"method": "shadow"' in message
    # The shadow test meets the overlapping minimums in every test.
    shadow = make_constraints(OVERLAPPING | {"method": "shadow"}, bank, max_items=10)
    given = run_cat(shadow, bank, np.linspace(-2.5, 2.5, 40), 10)
    counts = tag_counts(bank, given, ["algebra", "geometry", "word-problem"])
    assert (counts >= np.array([3, 2, 4])).all()
