"""Tests of the item bank: validation errors that name the item and the field, CSV and records
input, the arrays the models read, look-ups, content tags and subsets."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from cat_engine.bank import ItemBank, ItemParameters
from cat_engine.errors import CATError, InvalidItemError, UnknownItemError

MIXED = (
    ItemParameters("r1", "rasch", b=-0.5, content=("algebra",)),
    ItemParameters("p2", "2pl", a=1.4, b=0.3, content=("algebra", "number")),
    ItemParameters("p3", "3pl", a=0.9, b=1.1, c=0.2),
    ItemParameters("p4", "4pl", a=1.2, b=-0.2, c=0.1, d=0.95, content=("geometry",)),
    ItemParameters("g1", "grm", a=1.1, thresholds=(-1.0, 0.0, 1.5), content=("number",)),
    ItemParameters("m1", "gpcm", a=0.8, thresholds=(0.5, -0.5)),
    ItemParameters("c1", "pcm", thresholds=(0.2,)),
)


@pytest.fixture
def bank() -> ItemBank:
    return ItemBank.from_items(MIXED)


def raises_invalid(item_id: str, field: str):
    """pytest.raises for an InvalidItemError that names ``item_id`` and ``field``."""
    return pytest.raises(InvalidItemError, match=rf"^item '{re.escape(item_id)}': {field}\b")


# ---------------------------------------------------------------------------------------------
# The arrays


def test_arrays_of_a_mixed_bank(bank: ItemBank) -> None:
    assert len(bank) == 7
    assert bank.item_ids == ("r1", "p2", "p3", "p4", "g1", "m1", "c1")
    assert bank.models.tolist() == ["rasch", "2pl", "3pl", "4pl", "grm", "gpcm", "pcm"]
    assert bank.family.tolist() == [0, 0, 0, 0, 1, 2, 2]
    np.testing.assert_array_equal(bank.a, [1.0, 1.4, 0.9, 1.2, 1.1, 0.8, 1.0])
    np.testing.assert_array_equal(bank.b[:4], [-0.5, 0.3, 1.1, -0.2])
    assert np.isnan(bank.b[4:]).all()
    np.testing.assert_array_equal(bank.c, [0, 0, 0.2, 0.1, 0, 0, 0])
    np.testing.assert_array_equal(bank.d, [1, 1, 1, 0.95, 1, 1, 1])
    assert bank.n_categories.tolist() == [2, 2, 2, 2, 4, 3, 2]
    nan = math.nan
    expected_thresholds = [
        [-0.5, nan, nan],
        [0.3, nan, nan],
        [1.1, nan, nan],
        [-0.2, nan, nan],
        [-1.0, 0.0, 1.5],
        [0.5, -0.5, nan],
        [0.2, nan, nan],
    ]
    np.testing.assert_array_equal(bank.thresholds, expected_thresholds)
    assert bank.max_categories == 4
    assert not bank.all_dichotomous
    assert bank.D == 1.0


def test_dichotomous_bank_has_one_threshold_column() -> None:
    bank = ItemBank.from_items(MIXED[:4], D=1.702)
    assert bank.all_dichotomous
    assert bank.thresholds.shape == (4, 1)
    np.testing.assert_array_equal(bank.thresholds[:, 0], bank.b)
    assert bank.max_categories == 2
    assert bank.D == 1.702


def test_arrays_are_read_only(bank: ItemBank) -> None:
    for array in (bank.a, bank.b, bank.c, bank.d, bank.thresholds, bank.n_categories, bank.family):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0


@pytest.mark.parametrize("D", [0.0, -1.0, math.nan, math.inf])
def test_scaling_constant_must_be_positive(D) -> None:
    with pytest.raises(CATError, match="D must be positive"):
        ItemBank.from_items(MIXED, D=D)


# ---------------------------------------------------------------------------------------------
# Validation: each error is an InvalidItemError (a ValueError) naming the item and the field

INVALID = [
    (ItemParameters("neg-a", "2pl", a=-0.5, b=0.0), "a"),
    (ItemParameters("zero-a", "3pl", a=0.0, b=0.0, c=0.1), "a"),
    (ItemParameters("zero-a-grm", "grm", a=0.0, thresholds=(0.0, 1.0)), "a"),
    (ItemParameters("nan-a", "2pl", a=math.nan, b=0.0), "a"),
    (ItemParameters("rasch-a", "rasch", a=1.3, b=0.0), "a"),
    (ItemParameters("pcm-a", "pcm", a=0.7, thresholds=(0.0,)), "a"),
    (ItemParameters("neg-c", "3pl", a=1.0, b=0.0, c=-0.1), "c"),
    (ItemParameters("one-c", "4pl", a=1.0, b=0.0, c=1.0, d=1.0), "c"),
    (ItemParameters("big-c", "3pl", a=1.0, b=0.0, c=1.5), "c"),
    (ItemParameters("c-on-2pl", "2pl", a=1.0, b=0.0, c=0.2), "c"),
    (ItemParameters("c-on-grm", "grm", a=1.0, c=0.2, thresholds=(0.0,)), "c"),
    (ItemParameters("d-below-c", "4pl", a=1.0, b=0.0, c=0.3, d=0.2), "d"),
    (ItemParameters("d-equals-c", "4pl", a=1.0, b=0.0, c=0.3, d=0.3), "d"),
    (ItemParameters("d-above-1", "4pl", a=1.0, b=0.0, c=0.1, d=1.2), "d"),
    (ItemParameters("d-on-3pl", "3pl", a=1.0, b=0.0, c=0.1, d=0.9), "d"),
    (ItemParameters("no-b", "2pl", a=1.0), "b"),
    (ItemParameters("inf-b", "rasch", b=math.inf), "b"),
    (ItemParameters("text-a", "2pl", a="1.2", b=0.0), "a"),  # type: ignore[arg-type]
    (ItemParameters("text-b", "2pl", a=1.0, b="hard"), "b"),  # type: ignore[arg-type]
    (ItemParameters("none-c", "3pl", a=1.0, b=0.0, c=None), "c"),  # type: ignore[arg-type]
    (ItemParameters("bad-model", "5pl", a=1.0, b=0.0), "model"),
    (ItemParameters("no-model", "", a=1.0, b=0.0), "model"),
    (ItemParameters("grm-order", "grm", a=1.0, thresholds=(-1.0, 0.5, 0.2)), "b3"),
    (ItemParameters("grm-tie", "grm", a=1.0, thresholds=(0.5, 0.5)), "b2"),
    (ItemParameters("grm-none", "grm", a=1.0), "b1"),
    (ItemParameters("gpcm-none", "gpcm", a=1.0), "b1"),
    (ItemParameters("pcm-none", "pcm"), "b1"),
    (ItemParameters("nan-step", "gpcm", a=1.0, thresholds=(0.0, math.nan)), "b2"),
    (ItemParameters("text-step", "pcm", thresholds=("x",)), "b1"),  # type: ignore[arg-type]
    (ItemParameters("   ", "2pl", a=1.0, b=0.0), "item_id"),
]


@pytest.mark.parametrize(("item", "field"), INVALID, ids=[i.item_id for i, _ in INVALID])
def test_invalid_item_names_item_and_field(item: ItemParameters, field: str) -> None:
    with raises_invalid(item.item_id, field) as caught:
        ItemBank.from_items([MIXED[0], item, MIXED[1]])
    assert isinstance(caught.value, ValueError)
    assert caught.value.item_id == item.item_id
    assert caught.value.field == field


def test_grm_order_message_says_thresholds_must_increase() -> None:
    with raises_invalid("g", "b2") as caught:
        ItemBank.from_items([ItemParameters("g", "grm", thresholds=(1.0, -1.0))])
    assert "greater than b1" in str(caught.value)


def test_step_difficulties_of_partial_credit_items_may_be_in_any_order() -> None:
    bank = ItemBank.from_items(
        [
            ItemParameters("m", "gpcm", a=1.2, thresholds=(1.0, -1.0, 0.0)),
            ItemParameters("p", "pcm", thresholds=(0.5, -0.5)),
        ]
    )
    np.testing.assert_array_equal(bank.thresholds[0], [1.0, -1.0, 0.0])


def test_duplicate_item_ids() -> None:
    with raises_invalid("p2", "item_id") as caught:
        ItemBank.from_items([*MIXED, ItemParameters("p2", "rasch", b=0.0)])
    assert "more than once" in str(caught.value)


def test_empty_bank() -> None:
    with pytest.raises(CATError, match="empty") as caught:
        ItemBank.from_items([])
    assert isinstance(caught.value, ValueError)
    with pytest.raises(CATError, match="empty"):
        ItemBank.from_records([])


def test_records_missing_item_id_names_the_row() -> None:
    records = [
        {"item_id": "ok", "model": "rasch", "b": 0},
        {"item_id": "ok2", "model": "rasch", "b": 1},
        {"model": "2pl", "a": 1, "b": 0},
    ]
    with raises_invalid("<row 3>", "item_id"):
        ItemBank.from_records(records)
    records[2]["item_id"] = "  "
    with raises_invalid("<row 3>", "item_id"):
        ItemBank.from_records(records)


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"model": "2pl", "a": "steep", "b": "0"}, "a"),
        ({"model": "2pl", "a": "1", "b": "hard"}, "b"),
        ({"model": "3pl", "a": "1", "b": "0", "c": "a fifth"}, "c"),
        ({"model": "4pl", "a": "1", "b": "0", "d": "?"}, "d"),
        ({"model": "grm", "b1": "-1", "b2": "two"}, "b2"),
        ({"model": "grm", "b1": "-1", "b2": "", "b3": "1"}, "b2"),  # a gap in the thresholds
        ({"model": "grm", "b1": "1", "b2": "0"}, "b2"),
        ({"model": "gpcm", "a": "0", "b1": "0"}, "a"),
        ({"model": "pcm", "a": "2", "b1": "0"}, "a"),
        ({"model": "nominal", "b1": "0"}, "model"),
        ({"model": "grm", "a": "1.2"}, "b1"),
        ({"model": "grm", "a": "1.2", "b1": "", "b2": ""}, "b1"),
    ],
)
def test_records_with_bad_values_name_item_and_field(record, field) -> None:
    with raises_invalid("bad", field):
        ItemBank.from_records(
            [{"item_id": "good", "model": "rasch", "b": 0}, record | {"item_id": "bad"}]
        )


def test_non_numeric_threshold_in_a_list_names_its_position() -> None:
    with raises_invalid("m", "b2"):
        ItemBank.from_records([{"item_id": "m", "model": "gpcm", "thresholds": [0.1, "abc"]}])


@pytest.mark.parametrize("value", [np.int64(1), np.float32(1.0)], ids=["int64", "float32"])
def test_numpy_scalars_are_numbers(value) -> None:
    bank = ItemBank.from_items([ItemParameters("r", "rasch", a=value, b=value)])
    assert bank.a[0] == 1.0


def test_upper_asymptote_on_a_2pl_names_d() -> None:
    with raises_invalid("x", "d"):
        ItemBank.from_items([ItemParameters("x", "2pl", a=1.0, b=0.0, d=0.9)])


# ---------------------------------------------------------------------------------------------
# CSV and records

CSV_TEXT = """\
item_id,model,a,b,c,d,b1,b2,b3,content
R1,rasch,,-0.5,,,,,,algebra
P2,2PL,1.4,0.3,,,,,,algebra; number
P3,3pl,0.9,1.1,0.2,,,,,
P4,4pl,1.2,-0.2,0.1,0.95,,,,geometry
B1,2pl,0.7,,,,0.8,,,
G1,grm,1.1,,,,-1.0,0.0,1.5,number
G2,grm,,,,,-0.4,0.6,,
M1,gpcm,0.8,,,,0.5,-0.5,,algebra;geometry;
C1,pcm,,,,,0.2,,,number|geometry
"""


def write(tmp_path: Path, text: str, name: str = "bank.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


def test_from_csv_mixed_bank_with_defaults(tmp_path: Path) -> None:
    bank = ItemBank.from_csv(write(tmp_path, CSV_TEXT))
    assert bank.item_ids == ("R1", "P2", "P3", "P4", "B1", "G1", "G2", "M1", "C1")
    models = ["rasch", "2pl", "3pl", "4pl", "2pl", "grm", "grm", "gpcm", "pcm"]
    assert bank.models.tolist() == models
    np.testing.assert_array_equal(bank.a, [1.0, 1.4, 0.9, 1.2, 0.7, 1.1, 1.0, 0.8, 1.0])
    np.testing.assert_array_equal(bank.b[:5], [-0.5, 0.3, 1.1, -0.2, 0.8])  # B1 from b1
    np.testing.assert_array_equal(bank.c, [0, 0, 0.2, 0.1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(bank.d, [1, 1, 1, 0.95, 1, 1, 1, 1, 1])
    assert bank.n_categories.tolist() == [2, 2, 2, 2, 2, 4, 3, 3, 2]
    np.testing.assert_array_equal(bank.thresholds[5], [-1.0, 0.0, 1.5])
    np.testing.assert_array_equal(bank.thresholds[6], [-0.4, 0.6, math.nan])
    np.testing.assert_array_equal(bank.thresholds[7], [0.5, -0.5, math.nan])
    assert bank.content == (
        ("algebra",),
        ("algebra", "number"),
        (),
        ("geometry",),
        (),
        ("number",),
        (),
        ("algebra", "geometry"),
        ("number", "geometry"),
    )
    assert bank.content_tags == ("algebra", "geometry", "number")


def test_from_csv_scaling_constant_and_byte_order_mark(tmp_path: Path) -> None:
    path = write(tmp_path, CSV_TEXT, encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    bank = ItemBank.from_csv(path, D=1.702)
    assert bank.D == 1.702
    assert bank.item_ids[0] == "R1"


def test_from_csv_bad_row_names_the_item(tmp_path: Path) -> None:
    text = CSV_TEXT + "BAD7,grm,1.0,,,,0.5,0.1,,\n"
    with raises_invalid("BAD7", "b2"):
        ItemBank.from_csv(write(tmp_path, text))
    text = CSV_TEXT + "BAD8,3pl,1.0,0.0,0.2x,,,,,\n"
    with raises_invalid("BAD8", "c"):
        ItemBank.from_csv(write(tmp_path, text, "b.csv"))
    text = CSV_TEXT + ",2pl,1.0,0.0,,,,,,\n"
    with raises_invalid("<row 10>", "item_id"):
        ItemBank.from_csv(write(tmp_path, text, "c.csv"))
    text = CSV_TEXT + "R1,2pl,1.0,0.0,,,,,,\n"
    with raises_invalid("R1", "item_id"):
        ItemBank.from_csv(write(tmp_path, text, "d.csv"))


def test_from_csv_missing_column(tmp_path: Path) -> None:
    with pytest.raises(CATError, match="model"):
        ItemBank.from_csv(write(tmp_path, "item_id,a,b\nx,1,0\n"))


def test_from_csv_header_only_is_an_empty_bank(tmp_path: Path) -> None:
    with pytest.raises(CATError, match="empty"):
        ItemBank.from_csv(write(tmp_path, "item_id,model,a,b\n"))


def test_from_records_thresholds_list_and_content_list() -> None:
    bank = ItemBank.from_records(
        [
            {"item_id": "g", "model": "GRM", "a": 1.5, "thresholds": [-1, 0, 1]},
            {"item_id": "x", "model": "2pl", "a": "1.1", "b": "0.4", "content": ["a", "b"]},
        ]
    )
    assert bank.models.tolist() == ["grm", "2pl"]
    np.testing.assert_array_equal(bank.thresholds[0], [-1.0, 0.0, 1.0])
    assert bank.content == ((), ("a", "b"))
    assert bank.b[1] == 0.4


def test_to_records_round_trips(tmp_path: Path) -> None:
    bank = ItemBank.from_csv(write(tmp_path, CSV_TEXT), D=1.702)
    records = bank.to_records()
    assert records[0] == {
        "item_id": "R1",
        "model": "rasch",
        "a": 1.0,
        "b": -0.5,
        "c": 0.0,
        "d": 1.0,
        "content": ["algebra"],
    }
    assert records[5] == {
        "item_id": "G1",
        "model": "grm",
        "a": 1.1,
        "thresholds": [-1.0, 0.0, 1.5],
        "content": ["number"],
    }
    assert "content" not in records[2]
    again = ItemBank.from_records(records, D=bank.D)
    assert_same_bank(again, bank)
    assert again.to_records() == records


def test_to_records_round_trips_items(bank: ItemBank) -> None:
    assert_same_bank(ItemBank.from_records(bank.to_records()), bank)


def assert_same_bank(left: ItemBank, right: ItemBank) -> None:
    assert left.item_ids == right.item_ids
    assert left.models.tolist() == right.models.tolist()
    assert left.content == right.content
    assert left.D == right.D
    for name in ("family", "a", "b", "c", "d", "thresholds", "n_categories"):
        np.testing.assert_array_equal(getattr(left, name), getattr(right, name), err_msg=name)


# ---------------------------------------------------------------------------------------------
# Look-ups, content, subsets


def test_index_of_and_indices_of(bank: ItemBank) -> None:
    for j, item in enumerate(MIXED):
        assert bank.index_of(item.item_id) == j
    indices = bank.indices_of(["c1", "r1", "g1"])
    assert indices.tolist() == [6, 0, 4]
    assert indices.dtype == np.intp
    assert bank.indices_of([]).tolist() == []


def test_unknown_item(bank: ItemBank) -> None:
    with pytest.raises(UnknownItemError, match="'nope'") as caught:
        bank.index_of("nope")
    assert caught.value.item_id == "nope"
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, KeyError)
    assert str(caught.value) == "unknown item 'nope': not in the item bank"
    with pytest.raises(UnknownItemError, match="'R1'"):  # ids are case-sensitive
        bank.indices_of(["r1", "R1"])


def test_content_matrix(bank: ItemBank) -> None:
    assert bank.content_tags == ("algebra", "geometry", "number")
    matrix = bank.content_matrix()
    assert matrix.dtype == bool
    expected = np.array(
        [
            [1, 1, 0, 0, 0, 0, 0],  # algebra
            [0, 0, 0, 1, 0, 0, 0],  # geometry
            [0, 1, 0, 0, 1, 0, 0],  # number
        ],
        dtype=bool,
    )
    np.testing.assert_array_equal(matrix, expected)
    chosen = bank.content_matrix(["number", "unused", "algebra"])
    np.testing.assert_array_equal(chosen, [expected[2], np.zeros(7, bool), expected[0]])
    assert bank.content_matrix([]).shape == (0, 7)


def test_subset_keeps_order_parameters_and_D() -> None:
    bank = ItemBank.from_items(MIXED, D=1.702)
    part = bank.subset([5, 0, 4])
    assert part.item_ids == ("m1", "r1", "g1")
    assert part.D == 1.702
    assert part.models.tolist() == ["gpcm", "rasch", "grm"]
    np.testing.assert_array_equal(part.a, [0.8, 1.0, 1.1])
    assert part.n_categories.tolist() == [3, 2, 4]
    np.testing.assert_array_equal(part.thresholds[0], [0.5, -0.5, math.nan])
    np.testing.assert_array_equal(part.thresholds[2], [-1.0, 0.0, 1.5])
    assert part.index_of("g1") == 2
    assert part.content == ((), ("algebra",), ("number",))
    dichotomous = bank.subset(np.array([3, 1]))
    assert dichotomous.all_dichotomous
    assert dichotomous.thresholds.shape == (2, 1)
    np.testing.assert_array_equal(dichotomous.c, [0.1, 0.0])
    np.testing.assert_array_equal(dichotomous.d, [0.95, 1.0])
