"""Real, answerable multiple-choice maths items for the demo item bank, generated from templates.

Pure Python and numpy: no database, no Flask. :func:`generate_demo_items` returns ``n`` items that a
student can actually practise on; each has four options (one key and three distractors), a short
worked solution, a skill, content tags and 3PL parameters.

Templates
---------
Twenty templates in six skills (see ``_TEMPLATES`` at the bottom of the module):

- ``arithmetic``: column addition (with and without carrying), column subtraction (with and without
  borrowing), multiplication by a one- or two-digit number, exact division.
- ``fractions``: add and subtract fractions with like and unlike denominators, write a fraction in
  lowest terms, pick the largest or smallest of four fractions.
- ``ratios``: scale a recipe, unit rates (one step: price of one; two steps: price of m), share an
  amount in a ratio.
- ``percentages``: a percent of an amount, a price after a percent increase or decrease, the
  original price before an increase or discount (reverse percentages).
- ``equations``: linear equations in one step, two steps, and with the variable on both sides.
- ``tables``: a small Markdown table of daily counts (see :mod:`item_bank.markup`); ask for the
  total, a difference, or the day with the most (or fewest).

Distractors come from known misconceptions (adding numerators and denominators, forgetting to carry,
subtracting the smaller digit from the larger, a sign error when moving a term, percent of the wrong
base, additive instead of multiplicative scaling, ...). Near-miss numbers are used only when the
misconceptions do not give three distinct wrong options. Options are shuffled with the seeded RNG.

Item ``k`` of a bank goes to skill ``k % 6`` and, within its skill, round robin to the skill's
templates, so skills and templates are evenly represented and the first ``m`` items of a bank of
``n > m`` are the bank of ``m`` (ids and content are stable as a bank grows). Each item draws from
its own generator seeded by ``(seed, template, index)``; a draw whose stem repeats an earlier item's
is redrawn.

Difficulty model
----------------
Parameters are never typed per item. Each template reports the features that make its items harder
(``DemoItem.features``), and::

    raw = TEMPLATE_INTERCEPTS[template] + sum(FEATURE_WEIGHTS[f] * value) + N(0, B_RESIDUAL_SD)
    b   = clip((raw - B_CENTRE) / B_SCALE, -3, 3)

``B_CENTRE`` and ``B_SCALE`` are fixed constants (the mean and sd of ``raw`` over a large reference
bank), so a bank has b with mean near 0 and sd near 1 while an item's b does not depend on ``n``.
The discrimination is ``a = TEMPLATE_DISCRIMINATION[template] * exp(N(0, A_LOG_SD))`` clipped to
[0.6, 2.4], and the lower asymptote ``c = 0.2 + N(0, C_SD)`` clipped to [0.1, 0.3] (four options).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from item_bank.markup import Table, markdown_table

__all__ = ["SKILLS", "DemoItem", "demo_item_translations", "generate_demo_items"]

TIMES = "\u00d7"  # multiplication sign
DIVIDE = "\u00f7"  # division sign
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

SKILLS: tuple[str, ...] = (
    "arithmetic",
    "fractions",
    "ratios",
    "percentages",
    "equations",
    "tables",
)

# Baseline difficulty (raw logits) of each template's easiest form, before any feature adds to it.
# The order reflects usual curricula: column addition first, reverse percentages and equations with
# the variable on both sides last. The three equation templates share one intercept on purpose:
# their differences are carried by the `steps` and `variables_both_sides` features.
TEMPLATE_INTERCEPTS: dict[str, float] = {
    "arith-add": -2.9,
    "arith-sub": -2.5,
    "arith-mul": -2.2,
    "arith-div": -1.9,
    "frac-add": -1.2,
    "frac-sub": -1.2,
    "frac-simplify": -1.1,
    "frac-compare": -1.3,
    "ratio-recipe": -0.3,
    "ratio-rate": -1.5,
    "ratio-share": -0.2,
    "pct-of": -1.7,
    "pct-change": -0.5,
    "pct-reverse": 1.1,
    "eq-one-step": -2.2,
    "eq-two-step": -2.2,
    "eq-both-sides": -2.2,
    "table-total": -2.3,
    "table-diff": -2.0,
    "table-extreme": -2.4,
}

# What each feature adds to the raw difficulty, per unit of the feature (one name, one meaning,
# whichever template reports it). Counts (digits, carries, borrows, rows, parts, steps) add per
# unit; 0/1 flags add once. Sizes reflect the usual findings of error-analysis studies: an unlike
# denominator, a second step, a negative number or a variable on both sides costs about half a
# logit; each carry or borrow about a third; each extra table row a little.
FEATURE_WEIGHTS: dict[str, float] = {
    "digits": 0.35,  # digits in the largest number the student must work with
    "carries": 0.30,  # carries in column addition
    "borrows": 0.35,  # borrows (regroupings) in column subtraction
    "product_carries": 0.12,  # carries while multiplying digit by digit
    "multiplier_digits": 0.60,  # a two-digit multiplier needs shifted partial products
    "divisor_digits": 0.60,  # long division by a two-digit divisor
    "quotient_digits": 0.30,  # digits of the quotient (steps of long division)
    "zero_in_quotient": 0.40,  # a 0 in the quotient is often dropped
    "unlike_denominators": 0.60,  # a common denominator must be found first
    "log2_lcd": 0.25,  # size of the (least) common denominator, in doublings
    "needs_simplifying": 0.30,  # the result must be reduced to lowest terms
    "subtraction": 0.15,  # fraction subtraction is a little harder than addition
    "composite_factor": 0.40,  # common factor is composite: one division is often not enough
    "close_values": 0.40,  # the two candidates for the answer are close together
    "ask_smallest": 0.20,  # "smallest"/"fewest" questions are answered slightly worse
    "mixed_digits": 0.40,  # two- and three-digit values mixed (compared digit by digit in error)
    "non_integer_scale": 0.60,  # a scale factor that is not a whole number
    "scale_down": 0.20,  # scaling down rather than up
    "two_step": 0.60,  # unit rate first, then scale; or percent first, then add/subtract
    "total_parts": 0.08,  # total number of parts in a ratio
    "non_benchmark_percent": 0.40,  # percent other than 10, 25, 50
    "decrease": 0.20,  # decreases and discounts
    "negative_numbers": 0.50,  # a negative coefficient, constant or solution
    "multiplicative": 0.30,  # one-step equation solved by dividing or multiplying
    "steps": 0.80,  # algebraic steps to isolate x (1, 2 or 3)
    "variables_both_sides": 0.40,  # x on both sides: collect terms first
    "table_rows": 0.12,  # rows of the table to read
}

# Discrimination of each template: routine procedures discriminate sharply; items where reading or
# a trap matters more than skill (compare, tables, reverse percent) discriminate less.
TEMPLATE_DISCRIMINATION: dict[str, float] = {
    "arith-add": 1.3,
    "arith-sub": 1.4,
    "arith-mul": 1.4,
    "arith-div": 1.3,
    "frac-add": 1.6,
    "frac-sub": 1.6,
    "frac-simplify": 1.3,
    "frac-compare": 1.0,
    "ratio-recipe": 1.2,
    "ratio-rate": 1.3,
    "ratio-share": 1.2,
    "pct-of": 1.4,
    "pct-change": 1.3,
    "pct-reverse": 1.0,
    "eq-one-step": 1.5,
    "eq-two-step": 1.7,
    "eq-both-sides": 1.6,
    "table-total": 0.9,
    "table-diff": 1.0,
    "table-extreme": 0.9,
}

B_RESIDUAL_SD = 0.25  # item-specific difficulty the features do not explain (raw logits)
B_CENTRE = -0.142  # mean of raw b over a 6000-item reference bank (seed 20261123)
B_SCALE = 0.888  # sd of raw b over the same reference bank
A_LOG_SD = 0.15  # sd of log(a) around the template discrimination
C_MEAN = 0.2  # one in four options
C_SD = 0.02


@dataclass(frozen=True)
class DemoItem:
    """One generated multiple-choice item with its 3PL parameters.

    Attributes
    ----------
    item_id : str
        Stable identifier, ``"<template>-<index>"`` (e.g. ``"frac-add-0007"``), unique in a bank.
    stem : str
        The question as text in the Markdown subset of :mod:`item_bank.markup`; table items
        carry a small Markdown table.
    options : tuple of str
        Exactly four distinct options.
    key : int
        Index (0..3) of the correct option.
    rationale : str
        A short worked solution.
    skill : str
        One of :data:`SKILLS`.
    content_tags : tuple of str
        Finer tags, the skill first.
    features : dict of str to float
        The difficulty features the model used (see :data:`FEATURE_WEIGHTS`).
    model : str
        Always ``"3pl"``.
    a, b, c : float
        Discrimination (logistic metric, D = 1), difficulty (theta scale), lower asymptote.
    """

    item_id: str
    stem: str
    options: tuple[str, str, str, str]
    key: int
    rationale: str
    skill: str
    content_tags: tuple[str, ...]
    features: dict[str, float] = field(hash=False)
    model: str
    a: float
    b: float
    c: float


@dataclass
class _Draft:
    """What a template produces: content and features, before options are shuffled."""

    stem: str
    answer: str
    distractors: list[str]  # misconception answers, most plausible first
    fallback: list[str]  # near misses, used only if the above give fewer than three
    rationale: str
    tags: tuple[str, ...]
    features: dict[str, float]


# ---------------------------------------------------------------------------------------------
# Small helpers


def _ri(rng: np.random.Generator, low: int, high: int) -> int:
    """A uniform integer in [low, high]."""
    return int(rng.integers(low, high + 1))


def _pick(rng: np.random.Generator, seq: Sequence):
    return seq[int(rng.integers(len(seq)))]


def _frac(x: Fraction | int) -> str:
    """A fraction in lowest terms ("7/8", "-4/3") or an integer ("2")."""
    return str(Fraction(x))


def _num(x: Fraction | int) -> str:
    """An integer as is, anything else as a decimal with at most two places."""
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    return f"{float(x):.2f}".rstrip("0").rstrip(".")


def _money(x: Fraction | int) -> str:
    x = Fraction(x)
    return f"${x.numerator}" if x.denominator == 1 else f"${float(x):.2f}"


def _near(value: Fraction | int, fmt: Callable, steps: Sequence[int]) -> list[str]:
    return [fmt(value + s) for s in steps]


def _digit(n: int, i: int) -> int:
    return n // 10**i % 10


def _column_add(values: Sequence[int]) -> tuple[int, int]:
    """Carries in column addition, and the sum a student gets by never carrying.

    The never-carrying student writes each column's units digit, and the whole of the last column.
    """
    width = max(len(str(v)) for v in values)
    carries = carry = naive = 0
    for i in range(width):
        column = sum(_digit(v, i) for v in values)
        carry = (column + carry) // 10
        carries += carry > 0
        naive += (column if i == width - 1 else column % 10) * 10**i
    return carries, naive


def _column_sub(x: int, y: int) -> tuple[int, int, int]:
    """Borrows in x - y, the smaller-from-larger answer, and the borrow-without-decrement answer."""
    borrows = borrow = smaller_from_larger = no_decrement = 0
    for i in range(len(str(x))):
        dx, dy = _digit(x, i), _digit(y, i)
        borrow = 1 if dx - borrow < dy else 0
        borrows += borrow
        smaller_from_larger += abs(dx - dy) * 10**i
        no_decrement += (dx - dy if dx >= dy else dx + 10 - dy) * 10**i
    return borrows, smaller_from_larger, no_decrement


def _times_digit(x: int, m: int) -> tuple[int, int]:
    """Carries in x times a single digit m, and the product a student gets by never carrying."""
    width = len(str(x))
    carries = carry = naive = 0
    for i in range(width):
        product = _digit(x, i) * m
        carry = (product + carry) // 10
        carries += carry > 0 and i < width - 1
        naive += (product if i == width - 1 else product % 10) * 10**i
    return carries, naive


def _linear(coef: int, const: int) -> str:
    """Render coef*x + const as people write it: "3x - 5", "-x + 2", "7", "x"."""
    parts = []
    if coef:
        parts.append({1: "x", -1: "-x"}.get(coef, f"{coef}x"))
    if const or not parts:
        if parts:
            parts.append(f"+ {const}" if const > 0 else f"- {-const}")
        else:
            parts.append(str(const))
    return " ".join(parts)


def _plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


# ---------------------------------------------------------------------------------------------
# Arithmetic


def _arith_add(rng: np.random.Generator) -> _Draft:
    digits = _ri(rng, 2, 4)
    if rng.random() < 0.3:  # build a sum with no carrying, column by column
        x = y = 0
        for i in range(digits):
            lead = 1 if i == digits - 1 else 0
            dx = _ri(rng, lead, 8)
            x, y = x + dx * 10**i, y + _ri(rng, lead, 9 - dx) * 10**i
    else:
        x, y = (_ri(rng, 10 ** (digits - 1), 10**digits - 1) for _ in range(2))
    total = x + y
    carries, naive = _column_add([x, y])
    first_carry = next((i for i in range(digits) if _digit(x, i) + _digit(y, i) >= 10), None)
    dropped_one = total - 10 ** (first_carry + 1) if first_carry is not None else total
    note = (
        f" There {'is 1 carry' if carries == 1 else f'are {carries} carries'};"
        f" forgetting to carry gives {naive}."
        if carries
        else " No column reaches 10, so there is nothing to carry."
    )
    return _Draft(
        stem=f"What is {x} + {y}?",
        answer=str(total),
        distractors=[str(naive), str(dropped_one), str(total + 10), str(total - 10)],
        fallback=_near(total, str, (1, -1, 100, -100)),
        rationale=f"Add the columns from the right, carrying tens: {x} + {y} = {total}.{note}",
        tags=("arithmetic", "addition", "carrying" if carries else "no-carrying"),
        features={"digits": digits, "carries": carries},
    )


def _arith_sub(rng: np.random.Generator) -> _Draft:
    digits = _ri(rng, 2, 4)
    if rng.random() < 0.3:  # no borrowing: every top digit at least the bottom one
        x = y = 0
        for i in range(digits):
            dx = _ri(rng, 2, 9) if i == digits - 1 else _ri(rng, 0, 9)
            dy = _ri(rng, 1, dx - 1) if i == digits - 1 else _ri(rng, 0, dx)
            x, y = x + dx * 10**i, y + dy * 10**i
    else:
        x = _ri(rng, 10 ** (digits - 1) + 10, 10**digits - 1)
        y = _ri(rng, max(10, x // 10), x - 1)
    diff = x - y
    borrows, smaller_from_larger, no_decrement = _column_sub(x, y)
    note = (
        f" Borrowing happens {_plural(borrows, 'time', 'times')}; subtracting the smaller digit"
        f" from the larger in each column gives {smaller_from_larger} instead."
        if borrows
        else " Every top digit is at least the one below it, so there is no borrowing."
    )
    return _Draft(
        stem=f"What is {x} - {y}?",
        answer=str(diff),
        distractors=[str(smaller_from_larger), str(no_decrement), str(diff + 10), str(diff - 10)],
        fallback=_near(diff, str, (1, -1, 100, -100)),
        rationale=f"Subtract column by column from the right: {x} - {y} = {diff}.{note}",
        tags=("arithmetic", "subtraction", "borrowing" if borrows else "no-borrowing"),
        features={"digits": len(str(x)), "borrows": borrows},
    )


def _arith_mul(rng: np.random.Generator) -> _Draft:
    if rng.random() < 0.45:
        x, m = _ri(rng, 12, 99), _pick(rng, [k for k in range(12, 50) if k % 10])
        tens, ones = divmod(m, 10)
        c1, n1 = _times_digit(x, ones)
        c2, n2 = _times_digit(x, tens)
        carries, naive = c1 + c2, n1 + 10 * n2
        wrong = [x * tens + x * ones, naive]  # partial product not shifted; never carrying
        how = f"{x} {TIMES} {tens * 10} + {x} {TIMES} {ones} = {x * tens * 10} + {x * ones}"
    else:
        x, m = _ri(rng, 12, 999), _ri(rng, 3, 9)
        carries, naive = _times_digit(x, m)
        wrong = [naive]
        how = f"{x} {TIMES} {m}, digit by digit from the right, carrying tens"
    product = x * m
    return _Draft(
        stem=f"What is {x} {TIMES} {m}?",
        answer=str(product),
        distractors=[str(v) for v in (*wrong, product - x, product + x)],
        fallback=_near(product, str, (10, -10, 100, -100)),
        rationale=f"{how} = {product}. Check: {product} {DIVIDE} {m} = {x}.",
        tags=("arithmetic", "multiplication", f"{len(str(m))}-digit-multiplier"),
        features={
            "digits": len(str(x)),
            "multiplier_digits": len(str(m)),
            "product_carries": carries,
        },
    )


def _arith_div(rng: np.random.Generator) -> _Draft:
    divisor = _ri(rng, 11, 19) if rng.random() < 0.4 else _ri(rng, 2, 9)
    if rng.random() < 0.35:  # a zero inside or at the end of the quotient
        q = _pick(rng, [_ri(rng, 1, 9) * 100 + _ri(rng, 1, 9), _ri(rng, 1, 9) * 10])
    else:
        q = int("".join(str(_ri(rng, 1, 9)) for _ in range(_ri(rng, 2, 3))))
    dividend = divisor * q
    has_zero = "0" in str(q)
    dropped = int(str(q).replace("0", "")) if has_zero else q
    note = " Keep the 0 in the quotient when a step of the division gives 0." if has_zero else ""
    return _Draft(
        stem=f"What is {dividend} {DIVIDE} {divisor}?",
        answer=str(q),
        distractors=[str(v) for v in (dropped, q * 10, q + 1, q - 1)],
        fallback=_near(q, str, (10, -10, 2, -2)),
        rationale=f"{dividend} {DIVIDE} {divisor} = {q}, because {divisor} {TIMES} {q} ="
        f" {dividend}.{note}",
        tags=("arithmetic", "division"),
        features={
            "divisor_digits": len(str(divisor)),
            "quotient_digits": len(str(q)),
            "zero_in_quotient": float(has_zero),
        },
    )


# ---------------------------------------------------------------------------------------------
# Fractions


def _proper(rng: np.random.Generator, den: int) -> int:
    """A numerator in 1..den-1 that makes num/den a fraction in lowest terms."""
    return _pick(rng, [k for k in range(1, den) if math.gcd(k, den) == 1])


def _fraction_sum(rng: np.random.Generator, subtract: bool) -> _Draft:
    like = rng.random() < 0.4
    while True:
        if like:
            b = d = _ri(rng, 3, 12)
        else:
            b, d = (int(v) for v in rng.choice([2, 3, 4, 5, 6, 8, 9, 10, 12], 2, replace=False))
        a, c = _proper(rng, b), _proper(rng, d)
        if Fraction(a, b) != Fraction(c, d) and (not like or a != c):
            break
    if subtract and Fraction(a, b) < Fraction(c, d):
        a, b, c, d = c, d, a, b
    op, sign = ("-", -1) if subtract else ("+", 1)
    value = Fraction(a, b) + sign * Fraction(c, d)
    lcd = math.lcm(b, d)
    raw = a * (lcd // b) + sign * c * (lcd // d)
    # combine numerators and denominators alike (smaller from larger when subtracting)
    wrong = [Fraction(abs(a + sign * c), abs(b + sign * d))] if b + sign * d else []
    if not like:
        wrong.append(Fraction(a + sign * c, max(b, d)))  # combine numerators, keep one denominator
    wrong += [Fraction(a + sign * c, b * d), Fraction(a * c, b * d)]
    if subtract:
        wrong.append(Fraction(a, b) + Fraction(c, d))  # added instead
    steps = f"{a}/{b} {op} {c}/{d}"
    if not like:
        steps += f" = {a * (lcd // b)}/{lcd} {op} {c * (lcd // d)}/{lcd}"
    steps += f" = {raw}/{lcd}"
    if _frac(value) != f"{raw}/{lcd}":
        steps += f" = {_frac(value)}"
    tip = (
        f" Only the numerators are {'subtracted' if subtract else 'added'}; the denominator"
        f" stays {lcd}."
    )
    return _Draft(
        stem=f"What is {a}/{b} {op} {c}/{d}? Give the answer in lowest terms.",
        answer=_frac(value),
        distractors=[_frac(w) for w in wrong],
        fallback=_near(value, _frac, (Fraction(1, lcd), Fraction(-1, lcd), 1)),
        rationale=steps + "." + tip,
        tags=(
            "fractions",
            "subtraction" if subtract else "addition",
            "like-denominators" if like else "unlike-denominators",
        ),
        features={
            "unlike_denominators": float(not like),
            "log2_lcd": round(math.log2(lcd), 3),
            "needs_simplifying": float(math.gcd(raw, lcd) > 1),
            "subtraction": float(subtract),
        },
    )


def _frac_add(rng: np.random.Generator) -> _Draft:
    return _fraction_sum(rng, subtract=False)


def _frac_sub(rng: np.random.Generator) -> _Draft:
    return _fraction_sum(rng, subtract=True)


def _frac_simplify(rng: np.random.Generator) -> _Draft:
    q = _ri(rng, 2, 12)
    p = _proper(rng, q)
    g = _ri(rng, 2, 12)
    n, d = p * g, q * g
    composite = any(g % k == 0 for k in range(2, g))
    smallest = next(k for k in range(2, g + 1) if g % k == 0)
    wrong = [f"{n // smallest}/{d // smallest}"] if composite else []  # stopped too early
    wrong.append(f"{p}/{d}")  # divided the numerator only
    if p > 1:
        wrong.append(f"{q}/{p}")  # upside down
    note = (
        f" Dividing by {smallest} alone leaves {n // smallest}/{d // smallest}, which can still"
        " be simplified."
        if composite
        else ""
    )
    return _Draft(
        stem=f"Write {n}/{d} in lowest terms.",
        answer=f"{p}/{q}",
        distractors=wrong,
        fallback=[_frac(Fraction(p, q + 1)), _frac(Fraction(p + 1, q + 1)), f"{n}/{q}"],
        rationale=f"The greatest common factor of {n} and {d} is {g}: {n}/{d} ="
        f" ({n} {DIVIDE} {g})/({d} {DIVIDE} {g}) = {p}/{q}.{note}",
        tags=("fractions", "simplifying"),
        features={"digits": len(str(d)), "composite_factor": float(composite)},
    )


def _frac_compare(rng: np.random.Generator) -> _Draft:
    smallest = rng.random() < 0.35
    pool = sorted({Fraction(k, q) for q in range(2, 13) for k in range(1, q)})
    for _ in range(500):  # prefer sets where whole-number thinking picks a wrong fraction
        chosen = [pool[i] for i in rng.choice(len(pool), 4, replace=False)]
        key = min(chosen) if smallest else max(chosen)
        dens = [f.denominator for f in chosen]
        nums = [f.numerator for f in chosen]
        if smallest and key.denominator != min(dens) and key.numerator != min(nums):
            break
        if not smallest and key.denominator != max(dens) and key.numerator != max(nums):
            break
    ordered = sorted(chosen, reverse=not smallest)
    runner_up = ordered[1]
    common = math.lcm(*(f.denominator for f in chosen))
    if common <= 60:
        shown = ", ".join(f"{f} = {f.numerator * common // f.denominator}/{common}" for f in chosen)
        how = f"Over the common denominator {common}: {shown}"
    else:
        how = "As decimals: " + ", ".join(f"{f} = {float(f):.3f}" for f in chosen)
    word = "smallest" if smallest else "largest"
    listed = [str(f) for f in chosen]
    return _Draft(
        stem=f"Which fraction is the {word}: {', '.join(listed[:3])} or {listed[3]}?",
        answer=str(key),
        distractors=[str(f) for f in ordered[1:]],
        fallback=[],
        rationale=f"{how}. The {word} is {key}.",
        tags=("fractions", "comparing"),
        features={
            "ask_smallest": float(smallest),
            "close_values": float(abs(key - runner_up) < Fraction(1, 10)),
            "log2_lcd": round(math.log2(math.lcm(key.denominator, runner_up.denominator)), 3),
        },
    )


# ---------------------------------------------------------------------------------------------
# Ratios and proportion

_INGREDIENTS = (("flour", "g"), ("sugar", "g"), ("milk", "ml"), ("rice", "g"), ("butter", "g"))
_GOODS = (("pen", "pens"), ("notebook", "notebooks"), ("ticket", "tickets"), ("mango", "mangoes"))
_NAMES = (("Ana", "Ben"), ("Chloe", "Dev"), ("Eli", "Fatima"), ("Gus", "Hana"), ("Ivy", "Jon"))


def _ratio_recipe(rng: np.random.Generator) -> _Draft:
    ingredient, unit = _pick(rng, _INGREDIENTS)
    people = _pick(rng, [2, 3, 4, 5, 6, 8, 10])
    target = _pick(rng, [t for t in range(2, 21) if t != people])
    per_person = _pick(rng, [5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 80, 100])
    amount, answer = per_person * people, per_person * target

    def fmt(v: Fraction | int) -> str:
        return f"{_num(v)} {unit}"

    return _Draft(
        stem=f"A recipe for {people} people uses {amount} {unit} of {ingredient}. How much"
        f" {ingredient} is needed for {target} people?",
        answer=fmt(answer),
        distractors=[
            fmt(amount + target - people),  # added the change in people (additive thinking)
            fmt(amount * target),  # forgot to divide by the number of people
            fmt(Fraction(amount * people, target)),  # scaled the wrong way
            fmt(answer + per_person),  # one person too many
        ],
        fallback=_near(answer, fmt, (10, -10, 5, -5)),
        rationale=f"{amount} {unit} for {people} people is {amount} {DIVIDE} {people} ="
        f" {per_person} {unit} per person, so {target} people need {target} {TIMES}"
        f" {per_person} = {answer} {unit}.",
        tags=("ratios", "proportion", "scaling"),
        features={
            "non_integer_scale": float(target % people != 0),
            "scale_down": float(target < people),
        },
    )


def _ratio_rate(rng: np.random.Generator) -> _Draft:
    one, many = _pick(rng, _GOODS)
    count, unit_price = _ri(rng, 2, 12), _ri(rng, 2, 25)
    price = count * unit_price
    opening = f"{count} {many} cost ${price}."
    if rng.random() < 0.5:
        return _Draft(
            stem=f"{opening} What does one {one} cost?",
            answer=_money(unit_price),
            distractors=[_money(price - count), _money(price * count)],
            fallback=_near(unit_price, _money, (1, -1, 2, -2)),
            rationale=f"One {one} costs ${price} {DIVIDE} {count} = ${unit_price}.",
            tags=("ratios", "unit-rate"),
            features={"two_step": 0.0, "digits": len(str(price))},
        )
    wanted = _pick(rng, [k for k in range(2, 21) if k != count])
    answer = unit_price * wanted
    return _Draft(
        stem=f"{opening} At the same price each, how much do {wanted} {many} cost?",
        answer=_money(answer),
        distractors=[
            _money(unit_price),  # stopped after the unit price
            _money(price + wanted - count),  # additive thinking
            _money(price * wanted),  # forgot to divide
            _money(answer + unit_price),
        ],
        fallback=_near(answer, _money, (1, -1, 10, -10)),
        rationale=f"One {one} costs ${price} {DIVIDE} {count} = ${unit_price}, so {wanted} {many}"
        f" cost {wanted} {TIMES} ${unit_price} = ${answer}.",
        tags=("ratios", "unit-rate", "two-step"),
        features={"two_step": 1.0, "digits": len(str(price))},
    )


def _ratio_share(rng: np.random.Generator) -> _Draft:
    first, second = _pick(rng, _NAMES)
    while True:
        p, q = _ri(rng, 1, 9), _ri(rng, 1, 9)
        if p != q and math.gcd(p, q) == 1:
            break
    part = _ri(rng, 2, 30)
    total = part * (p + q)
    ask_first = rng.random() < 0.5
    who, mine, theirs = (first, p, q) if ask_first else (second, q, p)
    return _Draft(
        stem=f"Share ${total} between {first} and {second} in the ratio {p}:{q}. How much does"
        f" {who} get?",
        answer=_money(mine * part),
        distractors=[
            _money(theirs * part),  # the other share
            _money(part),  # the value of one part
            _money(Fraction(total, 2)),  # equal shares
            _money(Fraction(total * mine, theirs)),  # ratio read as a fraction of the whole
        ],
        fallback=_near(mine * part, _money, (part, -part, 1, -1)),
        rationale=f"There are {p} + {q} = {p + q} parts, so one part is ${total} {DIVIDE} {p + q}"
        f" = ${part}. {who} gets {mine} {TIMES} ${part} = ${mine * part}.",
        tags=("ratios", "sharing-in-a-ratio"),
        features={"total_parts": float(p + q)},
    )


# ---------------------------------------------------------------------------------------------
# Percentages

_PERCENTS = (5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 75, 80, 12, 8)
_BENCHMARKS = (10, 25, 50)
_THINGS = ("coat", "bike", "lamp", "game", "tent", "watch")


def _percent_and_base(rng: np.random.Generator, low: int, high: int) -> tuple[int, int]:
    """A percent p and a base N in [low, high] with p% of N a whole number."""
    p = _pick(rng, _PERCENTS)
    step = 100 // math.gcd(p, 100)
    return p, step * _ri(rng, -(-low // step), high // step)


def _pct_of(rng: np.random.Generator) -> _Draft:
    p, base = _percent_and_base(rng, 20, 900)
    part = p * base // 100
    return _Draft(
        stem=f"What is {p}% of {base}?",
        answer=_num(part),
        distractors=[
            _num(base - part),  # the rest, not the part
            _num(Fraction(p * base, 10)),  # divided by 10 instead of 100
            _num(Fraction(base, p)),  # divided by the percent
        ],
        fallback=_near(part, _num, (1, -1, 5, -5, 10)),
        rationale=f"{p}% of {base} = {p}/100 {TIMES} {base} = {p * base}/100 = {part}.",
        tags=("percentages", "percent-of-amount"),
        features={
            "non_benchmark_percent": float(p not in _BENCHMARKS),
            "digits": len(str(base)),
        },
    )


def _pct_change(rng: np.random.Generator) -> _Draft:
    p, price = _percent_and_base(rng, 20, 500)
    thing = _pick(rng, _THINGS)
    decrease = rng.random() < 0.5
    change = p * price // 100
    sign = -1 if decrease else 1
    new = price + sign * change
    verb = "reduced" if decrease else "increased"
    return _Draft(
        stem=f"A {thing} costs ${price}. Its price is {verb} by {p}%. What is the new price?",
        answer=_money(new),
        distractors=[
            _money(price - sign * change),  # changed the wrong way
            _money(change),  # stopped at the size of the change
            _money(price + sign * p),  # treated the percent as dollars
        ],
        fallback=_near(new, _money, (1, -1, 5, -5, 10)),
        rationale=f"{p}% of ${price} is ${change}, so the new price is ${price}"
        f" {'-' if decrease else '+'} ${change} = ${new}.",
        tags=("percentages", "percent-change", "decrease" if decrease else "increase"),
        features={
            "two_step": 1.0,
            "decrease": float(decrease),
            "non_benchmark_percent": float(p not in _BENCHMARKS),
        },
    )


def _pct_reverse(rng: np.random.Generator) -> _Draft:
    p, original = _percent_and_base(rng, 20, 400)
    thing = _pick(rng, _THINGS)
    decrease = rng.random() < 0.5
    sign = -1 if decrease else 1
    factor = Fraction(100 + sign * p, 100)
    new = int(original * factor)
    change = "discount" if decrease else "increase"
    return _Draft(
        stem=f"After a {p}% {change}, a {thing} costs ${new}. What was the price before the"
        f" {change}?",
        answer=_money(original),
        distractors=[
            _money(new - sign * Fraction(p * new, 100)),  # percent of the new price (wrong base)
            _money(new - sign * p),  # treated the percent as dollars
            _money(new * factor),  # applied the change again
        ],
        fallback=_near(original, _money, (1, -1, 5, -5, 10)),
        rationale=f"The new price is {100 + sign * p}% of the old one, so the old price is"
        f" ${new} {DIVIDE} {_num(factor)} = ${original}. Taking {p}% of ${new} uses the wrong"
        " base: the percent is of the original price.",
        tags=("percentages", "reverse-percent", "decrease" if decrease else "increase"),
        features={
            "decrease": float(decrease),
            "non_benchmark_percent": float(p not in _BENCHMARKS),
        },
    )


# ---------------------------------------------------------------------------------------------
# Linear equations


def _equation_features(steps: int, *numbers: int) -> dict[str, float]:
    return {
        "steps": float(steps),
        "variables_both_sides": float(steps == 3),
        "negative_numbers": float(any(v < 0 for v in numbers)),
    }


def _equation_options(wrong: Sequence[Fraction | int]) -> list[str]:
    """Misconception answers, whole numbers first: a fraction is an easy one to rule out."""
    return [_frac(w) for w in sorted(wrong, key=lambda w: Fraction(w).denominator != 1)]


def _eq_one_step(rng: np.random.Generator) -> _Draft:
    form = _pick(rng, ["add", "sub", "mul", "div"])
    x = _pick(rng, [v for v in range(-12, 16) if v not in (0, 1)])
    k = _ri(rng, 2, 12) if form in ("mul", "div") else _ri(rng, 1, 20)
    if form == "mul" and rng.random() < 0.25:
        k = -k
    if form == "add":
        c = x + k
        equation, wrong = f"x + {k} = {c}", [c + k, k - c, -(c + k)]
        how = f"subtract {k} from both sides: x = {c} - {k}"
    elif form == "sub":
        c = x - k
        equation, wrong = f"x - {k} = {c}", [c - k, k - c, -(c - k)]
        how = f"add {k} to both sides: x = {c} + {k}"
    elif form == "mul":
        c = k * x
        equation, wrong = f"{k}x = {c}", [c - k, c * k, Fraction(k, c), -x]
        how = f"divide both sides by {k}: x = {c} {DIVIDE} {k}"
    else:
        c, x = x, x * k
        equation, wrong = f"x/{k} = {c}", [Fraction(c, k), c + k, c - k, -x]
        how = f"multiply both sides by {k}: x = {c} {TIMES} {k}"
    features = _equation_features(1, x, k, c)
    features["multiplicative"] = float(form in ("mul", "div"))
    return _Draft(
        stem=f"Solve for x: {equation}",
        answer=_frac(x),
        distractors=_equation_options(wrong),
        fallback=_near(x, _frac, (1, -1, 2, -2)),
        rationale=f"To undo the operation on x, {how} = {x}. Check: substitute {x} back.",
        tags=("equations", "one-step", f"{form}-form"),
        features=features,
    )


def _eq_two_step(rng: np.random.Generator) -> _Draft:
    a = _ri(rng, 2, 9) * (-1 if rng.random() < 0.25 else 1)
    b = _pick(rng, [v for v in range(-20, 21) if v])
    x = _pick(rng, [v for v in range(-10, 13) if v not in (0, 1)])
    c = a * x + b
    left = _linear(a, b)
    return _Draft(
        stem=f"Solve for x: {left} = {c}",
        answer=_frac(x),
        distractors=_equation_options(
            [
                Fraction(c + b, a),  # sign error moving the constant
                c - b,  # forgot to divide
                Fraction(c, a) - b,  # divided only the right-hand side first
                -x,  # sign slip dividing
            ]
        ),
        fallback=_near(x, _frac, (1, -1, 2, -2)),
        rationale=f"{left} = {c}. Move the constant: {_linear(a, 0)} = {c} {'-' if b > 0 else '+'}"
        f" {abs(b)} = {c - b}. Divide by {a}: x = {x}.",
        tags=("equations", "two-step"),
        features=_equation_features(2, a, x, c),
    )


def _eq_both_sides(rng: np.random.Generator) -> _Draft:
    while True:
        a, c = _ri(rng, 2, 9), _ri(rng, 1, 8)
        if rng.random() < 0.3:
            c = -c
        if a != c:
            break
    x = _pick(rng, [v for v in range(-10, 13) if v not in (0, 1)])
    b = _pick(rng, [v for v in range(-15, 16) if v])
    d = a * x + b - c * x
    left, right = _linear(a, b), _linear(c, d)
    wrong = [Fraction(d + b, a - c), Fraction(b - d, a - c), Fraction(d - b, a)]
    if a + c:
        wrong.insert(0, Fraction(d - b, a + c))  # sign error moving the x-term
    return _Draft(
        stem=f"Solve for x: {left} = {right}",
        answer=_frac(x),
        distractors=_equation_options(wrong),
        fallback=_near(x, _frac, (1, -1, 2, -2)),
        rationale=f"{left} = {right}. Collect x on the left: {_linear(a - c, b)} = {d}. Move the"
        f" constant: {_linear(a - c, 0)} = {d - b}. Divide by {a - c}: x = {x}.",
        tags=("equations", "variables-both-sides"),
        features=_equation_features(3, a, c, x, b, d),
    )


# ---------------------------------------------------------------------------------------------
# Reading a table

_TABLES = (
    ("cups of lemonade", "sold"),
    ("library books", "borrowed"),
    ("cinema tickets", "sold"),
    ("loaves of bread", "baked"),
    ("bus tickets", "sold"),
)


def _table(rng: np.random.Generator, rows: int, values: Sequence[int]) -> tuple[str, str, str]:
    """A titled Markdown table of values per day, plus the noun and verb for the question.

    The table is real structure (a header row, one row per day, numbers right-aligned), which
    the pages render as an HTML table and QTI export writes as table markup.
    """
    noun, verb = _pick(rng, _TABLES)
    table = Table(header=("Day", "Number"), align=("left", "right"),
                  rows=tuple((day, str(value))
                             for day, value in zip(DAYS[:rows], values, strict=True)))
    return f"{noun.capitalize()} {verb} each day\n\n{markdown_table(table)}", noun, verb


def _table_values(rng: np.random.Generator, rows: int, digits: int) -> list[int]:
    low, high = (10, 99) if digits == 2 else (100, 999)
    return [int(v) for v in rng.choice(np.arange(low, high + 1), rows, replace=False)]


def _table_total(rng: np.random.Generator) -> _Draft:
    rows, digits = _ri(rng, 3, 7), 3 if rng.random() < 0.35 else 2
    values = _table_values(rng, rows, digits)
    table, noun, verb = _table(rng, rows, values)
    total = sum(values)
    return _Draft(
        stem=f"{table}\n\nHow many {noun} were {verb} altogether on these {rows} days?",
        answer=str(total),
        distractors=[
            str(total - values[-1]),  # missed the last row
            str(_column_add(values)[1]),  # forgot to carry
            str(total + values[0]),  # counted the first row twice
            str(total - values[0]),
        ],
        fallback=_near(total, str, (10, -10, 1, -1)),
        rationale="Add every row of the Number column: "
        + " + ".join(map(str, values))
        + f" = {total}.",
        tags=("tables", "reading-tables", "total"),
        features={"table_rows": float(rows), "digits": float(digits)},
    )


def _table_diff(rng: np.random.Generator) -> _Draft:
    rows, digits = _ri(rng, 4, 7), 3 if rng.random() < 0.35 else 2
    values = _table_values(rng, rows, digits)
    table, noun, verb = _table(rng, rows, values)
    i, j = (int(v) for v in rng.choice(rows, 2, replace=False))
    if values[i] < values[j]:
        i, j = j, i
    diff = values[i] - values[j]
    borrows, smaller_from_larger, _ = _column_sub(values[i], values[j])
    neighbour = j + 1 if j + 1 < rows and j + 1 != i else j - 1
    wrong = [values[i] + values[j], smaller_from_larger]
    if neighbour >= 0 and neighbour != i:
        wrong.append(abs(values[i] - values[neighbour]))  # read the wrong row
    wrong.append(values[i])
    return _Draft(
        stem=f"{table}\n\nHow many more {noun} were {verb} on {DAYS[i]} than on {DAYS[j]}?",
        answer=str(diff),
        distractors=[str(w) for w in wrong],
        fallback=_near(diff, str, (10, -10, 1, -1)),
        rationale=f"{DAYS[i]}: {values[i]}, {DAYS[j]}: {values[j]}. 'How many more' means"
        f" subtract: {values[i]} - {values[j]} = {diff}.",
        tags=("tables", "reading-tables", "difference"),
        features={"table_rows": float(rows), "digits": float(digits), "borrows": borrows},
    )


def _table_extreme(rng: np.random.Generator) -> _Draft:
    rows = _ri(rng, 4, 7)
    mixed = rng.random() < 0.35
    if mixed:  # values either side of 100, so comparing first digits misleads
        values = [int(v) for v in rng.choice(np.arange(60, 141), rows, replace=False)]
        mixed = min(values) < 100 <= max(values)
    else:
        values = _table_values(rng, rows, 3 if rng.random() < 0.35 else 2)
    table, noun, verb = _table(rng, rows, values)
    smallest = rng.random() < 0.35
    order = sorted(range(rows), key=lambda r: values[r], reverse=not smallest)
    by_text = sorted(range(rows), key=lambda r: str(values[r]), reverse=not smallest)
    key, runner_up = order[0], order[1]
    word = "fewest" if smallest else "most"
    distractor_rows = [by_text[0], runner_up, order[-1], *order[2:-1]]
    return _Draft(
        stem=f"{table}\n\nOn which day were the {word} {noun} {verb}?",
        answer=DAYS[key],
        distractors=[DAYS[r] for r in distractor_rows],
        fallback=[],
        rationale=f"Compare the whole numbers, not just their first digits: the {word} is"
        f" {values[key]} on {DAYS[key]} (next: {values[runner_up]} on {DAYS[runner_up]}).",
        tags=("tables", "reading-tables", "minimum" if smallest else "maximum"),
        features={
            "table_rows": float(rows),
            "ask_smallest": float(smallest),
            "close_values": float(abs(values[key] - values[runner_up]) <= 3),
            "mixed_digits": float(mixed),
        },
    )


# ---------------------------------------------------------------------------------------------
# Registry and assembly


@dataclass(frozen=True)
class _Template:
    prefix: str
    skill: str
    build: Callable[[np.random.Generator], _Draft]


_TEMPLATES: tuple[_Template, ...] = (
    _Template("arith-add", "arithmetic", _arith_add),
    _Template("arith-sub", "arithmetic", _arith_sub),
    _Template("arith-mul", "arithmetic", _arith_mul),
    _Template("arith-div", "arithmetic", _arith_div),
    _Template("frac-add", "fractions", _frac_add),
    _Template("frac-sub", "fractions", _frac_sub),
    _Template("frac-simplify", "fractions", _frac_simplify),
    _Template("frac-compare", "fractions", _frac_compare),
    _Template("ratio-recipe", "ratios", _ratio_recipe),
    _Template("ratio-rate", "ratios", _ratio_rate),
    _Template("ratio-share", "ratios", _ratio_share),
    _Template("pct-of", "percentages", _pct_of),
    _Template("pct-change", "percentages", _pct_change),
    _Template("pct-reverse", "percentages", _pct_reverse),
    _Template("eq-one-step", "equations", _eq_one_step),
    _Template("eq-two-step", "equations", _eq_two_step),
    _Template("eq-both-sides", "equations", _eq_both_sides),
    _Template("table-total", "tables", _table_total),
    _Template("table-diff", "tables", _table_diff),
    _Template("table-extreme", "tables", _table_extreme),
)

_MAX_REDRAWS = 200


def _raw_difficulty(prefix: str, features: dict[str, float], rng: np.random.Generator) -> float:
    predicted = TEMPLATE_INTERCEPTS[prefix] + sum(
        FEATURE_WEIGHTS[name] * value for name, value in features.items()
    )
    return predicted + float(rng.normal(0.0, B_RESIDUAL_SD))


def _options(rng: np.random.Generator, draft: _Draft) -> tuple[tuple[str, str, str, str], int]:
    """The answer and the first three distinct wrong options, shuffled; and the key's index."""
    wrong: list[str] = []
    for text in (*draft.distractors, *draft.fallback):
        if text != draft.answer and text not in wrong:
            wrong.append(text)
    if len(wrong) < 3:
        raise RuntimeError(f"template gave fewer than three distractors for {draft.stem!r}")
    options = [draft.answer, *wrong[:3]]
    order = [int(i) for i in rng.permutation(4)]
    shuffled = (options[order[0]], options[order[1]], options[order[2]], options[order[3]])
    return shuffled, order.index(0)


def _make_item(number: int, index: int, seed: int, seen: set[str]) -> DemoItem:
    template = _TEMPLATES[number]
    for attempt in range(_MAX_REDRAWS):
        rng = np.random.default_rng([seed, number, index, attempt])
        draft = template.build(rng)
        if draft.stem in seen:
            continue
        seen.add(draft.stem)
        options, key = _options(rng, draft)
        features = {name: float(value) for name, value in draft.features.items()}
        raw = _raw_difficulty(template.prefix, features, rng)
        b = float(np.clip((raw - B_CENTRE) / B_SCALE, -3.0, 3.0))
        a = TEMPLATE_DISCRIMINATION[template.prefix] * math.exp(rng.normal(0.0, A_LOG_SD))
        c = float(np.clip(C_MEAN + rng.normal(0.0, C_SD), 0.1, 0.3))
        return DemoItem(
            item_id=f"{template.prefix}-{index:04d}",
            stem=draft.stem,
            options=options,
            key=key,
            rationale=draft.rationale,
            skill=template.skill,
            content_tags=draft.tags,
            features=features,
            model="3pl",
            a=round(float(np.clip(a, 0.6, 2.4)), 4),
            b=round(b, 4),
            c=round(c, 4),
        )
    raise RuntimeError(f"template {template.prefix} ran out of distinct items at index {index}")


def generate_demo_items(n: int = 320, seed: int = 20261123) -> list[DemoItem]:
    """Generate a demo item bank of ``n`` distinct maths items with 3PL parameters.

    Parameters
    ----------
    n : int, default 320
        Number of items, at least 1. Items are spread evenly over :data:`SKILLS` and, within a
        skill, over its templates; a bank of ``m < n`` items is the first ``m`` of this one.
    seed : int, default 20261123
        Non-negative seed; the same ``(n, seed)`` always gives the same items.

    Returns
    -------
    list of DemoItem
        Items with unique ids and unique stems.

    Raises
    ------
    ValueError
        If ``n`` is less than 1.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got n={n}")
    groups = {skill: [i for i, t in enumerate(_TEMPLATES) if t.skill == skill] for skill in SKILLS}
    seen: set[str] = set()
    items = []
    for k in range(n):
        group = groups[SKILLS[k % len(SKILLS)]]
        j = k // len(SKILLS)
        items.append(_make_item(group[j % len(group)], j // len(group), seed, seen))
    return items


# -- the same items in Spanish and Arabic ---------------------------------------------------------

#: Stems of the templates whose options are numbers, fractions or equations (the same in every
#: language), and their Spanish and Arabic wording; ``{0}``, ``{1}``... are the stem's own parts.
_WORDING: tuple[tuple[re.Pattern[str], dict[str, tuple[str, str]]], ...] = (
    (re.compile(r"What is (\S+/\S+ [-+] \S+/\S+)\? Give the answer in lowest terms\."),
     {"es": ("¿Cuánto es {0}? Da la respuesta en su forma más simple.",
             "Usa un denominador común y simplifica el resultado."),
      "ar": ("ما ناتج {0}؟ اكتب الجواب في أبسط صورة.",
             "وحّد المقامات ثم بسّط الناتج.")}),
    (re.compile(r"What is (\d+)% of (\d+)\?"),
     {"es": ("¿Cuánto es el {0}% de {1}?", "Multiplica {1} por {0} y divide entre 100."),
      "ar": ("كم يساوي {0}% من {1}؟", "اضرب {1} في {0} ثم اقسم على 100.")}),
    (re.compile(r"What is (\d+ \S \d+)\?"),
     {"es": ("¿Cuánto es {0}?", "Calcula columna por columna y comprueba el resultado."),
      "ar": ("ما ناتج {0}؟", "احسب عمودًا عمودًا ثم تحقّق من الناتج.")}),
    (re.compile(r"Write (\d+/\d+) in lowest terms\."),
     {"es": ("Escribe {0} en su forma más simple.",
             "Divide numerador y denominador entre su máximo común divisor."),
      "ar": ("اكتب الكسر {0} في أبسط صورة.", "اقسم البسط والمقام على قاسمهما المشترك الأكبر.")}),
    (re.compile(r"Which fraction is the largest: (.+), (.+), (.+) or (.+)\?"),
     {"es": ("¿Qué fracción es la mayor: {0}, {1}, {2} o {3}?",
             "Pásalas a un denominador común y compara los numeradores."),
      "ar": ("أيّ الكسور هو الأكبر: {0}، {1}، {2} أم {3}؟",
             "وحّد المقامات ثم قارن البسوط.")}),
    (re.compile(r"Which fraction is the smallest: (.+), (.+), (.+) or (.+)\?"),
     {"es": ("¿Qué fracción es la menor: {0}, {1}, {2} o {3}?",
             "Pásalas a un denominador común y compara los numeradores."),
      "ar": ("أيّ الكسور هو الأصغر: {0}، {1}، {2} أم {3}؟",
             "وحّد المقامات ثم قارن البسوط.")}),
    (re.compile(r"Solve for x: (.+)"),
     {"es": ("Resuelve para x: {0}", "Haz lo mismo en los dos lados hasta dejar x sola."),
      "ar": ("حُلّ المعادلة لإيجاد x: {0}", "طبّق العملية نفسها على الطرفين حتى تبقى x وحدها.")}),
)


def demo_item_translations(item: DemoItem) -> dict[str, dict[str, Any]]:
    """The item's Spanish and Arabic versions (stem, options, rationale), for the templates
    whose options need no translating (numbers, fractions, equations); ``{}`` for the others.

    Digits stay Western in Arabic, as the interface writes them.
    """
    for pattern, wording in _WORDING:
        match = pattern.fullmatch(item.stem)
        if match is not None:
            parts = match.groups()
            return {language: {"stem": stem.format(*parts), "options": list(item.options),
                               "rationale": rationale.format(*parts)}
                    for language, (stem, rationale) in wording.items()}
    return {}
