"""Response data: long and wide CSV files, from_long / from_wide, and the ResponseData views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

from calibration.data import ResponseData, from_long, from_wide, read_responses
from calibration.errors import CalibrationError, ResponseDataError


def _write(tmp_path: Path, text: str, name: str = "responses.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _triples(data: ResponseData) -> set[tuple[str, str, int]]:
    return {
        (data.person_ids[p], data.item_ids[j], int(r))
        for p, j, r in zip(data.person, data.item, data.response, strict=True)
    }


def _groups(data: ResponseData) -> dict[str, str]:
    assert data.group is not None
    return {pid: str(g) for pid, g in zip(data.person_ids, data.group, strict=True)}


def _error(call, *args, **kwargs) -> str:
    with pytest.raises(ResponseDataError) as info:
        call(*args, **kwargs)
    return str(info.value)


# --------------------------------------------------------------------------------------------
# long files


def test_long_csv_with_groups(tmp_path):
    path = _write(
        tmp_path, ("person_id,item_id,response,group\np1,i1,1,R\np1,i2,0,R\np2,i1,2,F\np3,i2,1,F\n")
    )
    data = read_responses(path)
    assert data.person_ids == ("p1", "p2", "p3")
    assert data.item_ids == ("i1", "i2")
    assert _triples(data) == {("p1", "i1", 1), ("p1", "i2", 0), ("p2", "i1", 2), ("p3", "i2", 1)}
    assert _groups(data) == {"p1": "R", "p2": "F", "p3": "F"}
    assert data.group.shape == (3,)
    assert (data.n_persons, data.n_items, data.n_obs) == (3, 2, 4)
    for array in (data.person, data.item, data.response):
        assert array.dtype.kind == "i"


def test_long_csv_columns_in_any_order_extra_columns_spaces_and_no_group(tmp_path):
    path = _write(
        tmp_path,
        (" response , timestamp,item_id,person_id\n1,2024-01-01, i1 , p1 \n0,2024-01-02,i2,p1\n"),
    )
    data = read_responses(path)
    assert _triples(data) == {("p1", "i1", 1), ("p1", "i2", 0)}
    assert data.group is None


def test_long_csv_blank_lines_bom_and_crlf(tmp_path):
    path = _write(
        tmp_path,
        ("person_id,item_id,response\r\n\r\np1,i1,1\r\n   \r\n,,\r\np2,i1,0\r\n\r\n"),
        encoding="utf-8-sig",
    )
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    data = read_responses(path)
    assert _triples(data) == {("p1", "i1", 1), ("p2", "i1", 0)}


def test_long_csv_quoted_ids(tmp_path):
    path = _write(tmp_path, 'person_id,item_id,response\n"Smith, J",item 1,1\n')
    data = read_responses(path)
    assert _triples(data) == {("Smith, J", "item 1", 1)}


def test_long_csv_error_rows_count_file_lines_with_blank_lines(tmp_path):
    path = _write(tmp_path, "person_id,item_id,response\n\np1,i1,1\n\np1,i2,x\n")
    message = _error(read_responses, path)
    assert str(path) in message
    assert "row 5 ('x')" in message
    assert "row 3" not in message


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("x", "'x'"),
        ("-1", "'-1'"),
        ("1.5", "'1.5'"),
        ("", "''"),
        ("nan", "'nan'"),
        ("inf", "'inf'"),
    ],
)
def test_long_csv_bad_response_names_row_and_value(tmp_path, value, shown):
    path = _write(tmp_path, f"person_id,item_id,response\np1,i1,1\np1,i2,{value}\np2,i1,0\n")
    message = _error(read_responses, path)
    assert "whole numbers" in message
    assert f"row 3 ({shown})" in message
    assert "row 2" not in message and "row 4" not in message


def test_long_csv_whole_number_spellings_are_accepted(tmp_path):
    path = _write(tmp_path, "person_id,item_id,response\np1,i1,1.0\np1,i2,2e0\np1,i3,+0\n")
    assert _triples(read_responses(path)) == {("p1", "i1", 1), ("p1", "i2", 2), ("p1", "i3", 0)}


def test_long_csv_many_bad_rows_are_summarised(tmp_path):
    rows = "".join(f"p{k},i1,-1\n" for k in range(8))
    message = _error(read_responses, _write(tmp_path, "person_id,item_id,response\n" + rows))
    assert "row 2 ('-1')" in message and "row 6 ('-1')" in message
    assert "row 7" not in message
    assert "and 3 more" in message


def test_long_csv_duplicate_names_person_item_and_both_rows(tmp_path):
    path = _write(tmp_path, ("person_id,item_id,response\np1,i1,1\np2,i1,0\np1,i2,1\np1,i1,0\n"))
    message = _error(read_responses, path)
    assert "duplicate responses" in message
    assert "person 'p1' item 'i1' (rows 2 and 5)" in message


def test_long_csv_missing_fields_named_by_row(tmp_path):
    path = _write(tmp_path, "person_id,item_id,response\np1,i1,1\np2,i1\np3\n")
    message = _error(read_responses, path)
    assert "missing fields" in message
    assert "row 3" in message and "row 4" in message
    assert "row 2" not in message


def test_long_csv_blank_person_or_item_named_by_row(tmp_path):
    path = _write(tmp_path, "person_id,item_id,response\np1,i1,1\n,i1,0\np2,,1\n")
    message = _error(read_responses, path)
    assert "missing person_id or item_id" in message
    assert "row 3" in message and "row 4" in message


def test_long_csv_person_with_two_groups(tmp_path):
    path = _write(tmp_path, ("person_id,item_id,response,group\np1,i1,1,R\np2,i1,0,F\np1,i2,1,F\n"))
    message = _error(read_responses, path)
    assert "person 'p1' has more than one group" in message
    assert "row 2" in message or "row 4" in message


def test_empty_file_and_header_only(tmp_path):
    message = _error(read_responses, _write(tmp_path, "", name="empty.csv"))
    assert "empty.csv" in message and "empty" in message
    message = _error(
        read_responses, _write(tmp_path, "person_id,item_id,response\n\n", name="header.csv")
    )
    assert "header.csv" in message and "no responses" in message


def test_not_utf8(tmp_path):
    path = _write(tmp_path, "person_id,item_id,response\nJos\xe9,i1,1\n", encoding="latin-1")
    message = _error(read_responses, path)
    assert "not a UTF-8 text file" in message


def test_response_data_error_is_a_calibration_error_and_value_error(tmp_path):
    with pytest.raises(CalibrationError):
        read_responses(_write(tmp_path, ""))
    with pytest.raises(ValueError):
        read_responses(_write(tmp_path, ""))


def test_read_responses_accepts_str_paths(tmp_path):
    path = _write(tmp_path, "person_id,item_id,response\np1,i1,1\n")
    assert read_responses(str(path)).n_obs == 1


# --------------------------------------------------------------------------------------------
# wide files


def test_wide_csv_with_group_empty_cells_and_blank_lines(tmp_path):
    path = _write(
        tmp_path,
        (
            "student,group,q1,q2,q3\n"
            "s1,R,1,,2\n"
            "\n"
            "s2,F, ,0,1\n"
            "s3,F,0,1\n"  # a short row: the missing q3 was not presented
        ),
        encoding="utf-8-sig",
    )
    data = read_responses(path)
    assert _triples(data) == {
        ("s1", "q1", 1),
        ("s1", "q3", 2),
        ("s2", "q2", 0),
        ("s2", "q3", 1),
        ("s3", "q1", 0),
        ("s3", "q2", 1),
    }
    assert _groups(data) == {"s1": "R", "s2": "F", "s3": "F"}
    assert set(data.item_ids) == {"q1", "q2", "q3"}
    assert "group" not in data.item_ids


def test_wide_csv_without_group(tmp_path):
    data = read_responses(_write(tmp_path, "id,a,b\np1,1,0\np2,0,1\n"))
    assert data.group is None
    assert _triples(data) == {("p1", "a", 1), ("p1", "b", 0), ("p2", "a", 0), ("p2", "b", 1)}


def test_wide_csv_error_names_row(tmp_path):
    path = _write(tmp_path, "id,a,b\np1,1,0\n\np2,0,1.5\n")
    message = _error(read_responses, path)
    assert "row 4 ('1.5')" in message


def test_wide_csv_duplicate_item_columns(tmp_path):
    path = _write(tmp_path, "id,a,b,a,c,b\np1,1,0,1,0,1\n")
    message = _error(read_responses, path)
    assert "duplicate item columns: a, b" in message


def test_wide_csv_duplicate_person_rows_name_both_rows(tmp_path):
    path = _write(tmp_path, "id,a,b\np1,1,0\np2,0,1\np1,1,\n")
    message = _error(read_responses, path)
    assert "person 'p1' item 'a' (rows 2 and 4)" in message


def test_wide_csv_person_with_two_groups_in_two_rows(tmp_path):
    path = _write(tmp_path, "id,group,a,b\np1,R,1,\np1,F,,0\n")
    message = _error(read_responses, path)
    assert "person 'p1' has more than one group" in message


def test_wide_csv_with_one_column_is_neither_shape(tmp_path):
    message = _error(read_responses, _write(tmp_path, "id\np1\n"))
    assert "expected a long file" in message


def test_long_and_wide_files_give_the_same_data(tmp_path):
    long = read_responses(
        _write(
            tmp_path,
            ("person_id,item_id,response,group\np1,a,1,R\np1,b,0,R\np2,b,2,F\n"),
            name="long.csv",
        )
    )
    wide = read_responses(_write(tmp_path, "id,group,a,b\np1,R,1,0\np2,F,,2\n", name="wide.csv"))
    assert _triples(long) == _triples(wide)
    assert _groups(long) == _groups(wide)


def test_wide_csv_items_follow_the_header(tmp_path):
    data = read_responses(_write(tmp_path, "id,q1,q2,q3\np1,,1,0\np2,1,0,1\n"))
    assert data.item_ids == ("q1", "q2", "q3")


# --------------------------------------------------------------------------------------------
# from_long and from_wide


def test_from_long_basic_and_order_of_first_appearance():
    data = from_long(["b", "a", "b"], ["y", "x", "x"], [1, 0, 2], ["F", "R", "F"])
    assert data.person_ids == ("b", "a")
    assert data.item_ids == ("y", "x")
    assert data.person.tolist() == [0, 1, 0]
    assert data.item.tolist() == [0, 1, 1]
    assert data.response.tolist() == [1, 0, 2]
    assert data.group.tolist() == ["F", "R"]


def test_from_long_errors():
    assert "empty" in _error(from_long, [], [], [])
    assert "differ in length" in _error(from_long, ["a"], ["x", "y"], [1, 0])
    assert "differ in length" in _error(from_long, ["a"], ["x"], [1], ["R", "F"])
    message = _error(from_long, ["a", "b", "c"], ["x", "x", "x"], [1, -2, 0.5])
    assert "row 2 (-2)" in message and "row 3 (0.5)" in message and "row 1" not in message
    message = _error(from_long, ["a", "a"], ["x", "x"], [1, 0], rows=[10, 20])
    assert "person 'a' item 'x' (rows 10 and 20)" in message


def test_from_long_many_duplicates_are_summarised():
    persons = [f"p{k}" for k in range(7)] * 2
    message = _error(from_long, persons, ["x"] * 14, [0] * 14)
    assert message.count("person '") == 5
    assert "and 2 more" in message


def test_from_long_accepts_numpy_responses_and_numeric_strings():
    a = from_long(["a", "b"], ["x", "x"], np.array([1, 0]))
    b = from_long(["a", "b"], ["x", "x"], ["1", "0"])
    c = from_long(["a", "b"], ["x", "x"], np.array([1.0, 0.0]))
    assert _triples(a) == _triples(b) == _triples(c) == {("a", "x", 1), ("b", "x", 0)}


def test_integer_id_fast_path_gives_the_same_data_as_string_ids():
    rng = np.random.default_rng(0)
    n_persons, n_items = 300, 40
    pairs = rng.choice(n_persons * n_items, size=3000, replace=False)
    persons = (pairs // n_items + 1000).astype(np.int64)
    items = (pairs % n_items + 7).astype(np.int32)
    responses = rng.integers(0, 3, pairs.size)
    groups = np.where(persons % 2 == 0, "even", "odd")
    fast = from_long(persons, items, responses, groups)
    slow = from_long(
        [str(p) for p in persons], [str(i) for i in items], responses.tolist(), groups.tolist()
    )
    assert _triples(fast) == _triples(slow)
    assert _groups(fast) == _groups(slow)
    assert set(fast.person_ids) == {str(p) for p in persons}
    assert all(isinstance(p, str) for p in fast.person_ids + fast.item_ids)
    assert np.array_equal(np.sort(fast.n_categories), np.sort(slow.n_categories))
    message = _error(from_long, np.array([5, 5]), np.array([9, 9]), [1, 0])
    assert "person '5' item '9'" in message


def test_integer_ids_keep_the_order_of_first_appearance():
    fast = from_long(np.array([3, 1, 3, 2]), np.array([20, 10, 10, 20]), [1, 0, 1, 1])
    slow = from_long(["3", "1", "3", "2"], ["20", "10", "10", "20"], [1, 0, 1, 1])
    assert fast.person_ids == slow.person_ids == ("3", "1", "2")
    assert fast.item_ids == slow.item_ids == ("20", "10")


def test_bad_response_error_names_only_the_bad_rows():
    assert from_long(["a", "b"], ["x", "x"], [True, False]).response.tolist() == [1, 0]
    message = _error(from_long, ["a", "b"], ["x", "x"], [True, 1.5])
    assert "row 2 (1.5)" in message
    assert "row 1" not in message


def test_from_wide_nan_means_not_presented():
    m = np.array([[1, np.nan, 0], [np.nan, 2, 1]])
    data = from_wide(m, person_ids=["p", "q"], item_ids=["a", "b", "c"], groups=["R", "F"])
    assert _triples(data) == {("p", "a", 1), ("p", "c", 0), ("q", "b", 2), ("q", "c", 1)}
    assert _groups(data) == {"p": "R", "q": "F"}
    assert data.n_obs == 4


def test_from_wide_default_ids_and_errors():
    data = from_wide([[1, 0], [0, 1]])
    assert data.person_ids == ("1", "2")
    assert data.item_ids == ("item1", "item2")
    assert "two-dimensional" in _error(from_wide, [1, 0, 1])
    # rows are numbered as lines of a file with a header: matrix row 1 is "row 3"
    message = _error(from_wide, [[1, 0], [0.5, 1]])
    assert "row 3 (0.5)" in message
    assert "whole numbers" in _error(from_wide, [[1, np.inf]])
    assert "whole numbers" in _error(from_wide, [[1, -1]])
    assert "empty" in _error(from_wide, [[np.nan, np.nan]])


def test_from_wide_round_trips_through_dense():
    m = np.array([[np.nan, 1, 0], [1, 0, np.nan], [0, np.nan, 1]])
    data = from_wide(m, item_ids=["a", "b", "c"])
    assert data.item_ids == ("a", "b", "c")
    np.testing.assert_array_equal(data.dense(), m)


def test_from_wide_dense_round_trip_without_leading_nan():
    m = np.array([[1, 1, 0], [1, 0, np.nan], [0, np.nan, 3]])
    data = from_wide(m, item_ids=["a", "b", "c"])
    np.testing.assert_array_equal(data.dense(), m)


# --------------------------------------------------------------------------------------------
# the views


@pytest.fixture
def data() -> ResponseData:
    #        a  b  c  d
    # p1     1  0  3  -
    # p2     0  -  2  0
    # p3     1  0  -  0
    return from_long(
        ["p1", "p1", "p1", "p2", "p2", "p2", "p3", "p3", "p3"],
        ["a", "b", "c", "a", "c", "d", "a", "b", "d"],
        [1, 0, 3, 0, 2, 0, 1, 0, 0],
        ["R", "R", "R", "F", "F", "F", "R", "R", "R"],
    )


def test_n_categories_and_counts(data):
    assert data.item_ids == ("a", "b", "c", "d")
    assert data.n_categories.tolist() == [2, 1, 4, 1]
    assert data.counts_per_item().tolist() == [3, 2, 2, 2]


def test_matrix_is_sparse_response_plus_one(data):
    m = data.matrix()
    assert sparse.issparse(m)
    assert m.shape == (3, 4)
    assert m.nnz == 9
    assert m.toarray().tolist() == [[2, 1, 4, 0], [1, 0, 3, 1], [2, 1, 0, 1]]


def test_dense_has_nan_where_not_presented(data):
    expected = np.array([[1, 0, 3, np.nan], [0, np.nan, 2, 0], [1, 0, np.nan, 0]])
    np.testing.assert_array_equal(data.dense(), expected)


def test_subset_items_keeps_persons_and_groups_and_follows_the_given_order(data):
    sub = data.subset_items(["d", "a"])
    assert sub.item_ids == ("d", "a")
    assert sub.person_ids == data.person_ids
    assert sub.group.tolist() == data.group.tolist()
    np.testing.assert_array_equal(sub.dense(), data.dense()[:, [3, 0]])
    assert sub.counts_per_item().tolist() == [2, 3]
    # the original is unchanged
    assert data.n_obs == 9


def test_subset_items_unknown_item(data):
    message = _error(data.subset_items, ["a", "zz", "yy"])
    assert "unknown item(s): zz, yy" in message


def test_subset_items_with_a_repeated_id(data):
    try:
        sub = data.subset_items(["a", "a"])
    except ResponseDataError:
        return
    assert sub.item_ids == ("a",)
    assert sub.counts_per_item().tolist() == [3]


def test_response_data_is_frozen(data):
    with pytest.raises(AttributeError):
        data.response = np.zeros(1)  # type: ignore[misc]
