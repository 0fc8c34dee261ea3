"""Response data for calibration: long (person, item, response) triples, sparse by nature.

A CAT gives each person a few dozen of thousands of items, so data are kept as parallel arrays of
observations (:class:`ResponseData`) and turned into ``scipy.sparse`` matrices where needed;
the dense person x item matrix is never required. Files come in two shapes:

- long CSV: ``person_id,item_id,response[,group]``, one row per response;
- wide CSV: one row per person, the first column the person id, an optional ``group`` column,
  every other column an item; an empty cell means the item was not presented.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

from calibration.errors import ResponseDataError

LONG_COLUMNS = ("person_id", "item_id", "response")
_SHOWN = 5


@dataclass(frozen=True, eq=False)
class ResponseData:
    """Observed responses as parallel arrays (one entry per observation).

    Attributes
    ----------
    person_ids, item_ids : tuple of str
        Labels; ``person[i]`` and ``item[i]`` index into them.
    person, item, response : ndarray of int, shape (n_obs,)
        Who answered what, and the category (0, 1, ... ; 0/1 for dichotomous items).
    group : ndarray of str, shape (P,), or None
        A group label per person (for DIF), when the data have one.
    """

    person_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    person: np.ndarray
    item: np.ndarray
    response: np.ndarray
    group: np.ndarray | None = None

    @property
    def n_persons(self) -> int:
        return len(self.person_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_obs(self) -> int:
        return int(self.response.size)

    @property
    def n_categories(self) -> np.ndarray:
        """(J,) highest observed category of each item plus one."""
        top = np.zeros(self.n_items, dtype=np.intp)
        np.maximum.at(top, self.item, self.response)
        return top + 1

    def counts_per_item(self) -> np.ndarray:
        """(J,) number of responses to each item."""
        return np.bincount(self.item, minlength=self.n_items)

    def matrix(self) -> sparse.csr_matrix:
        """Persons x items sparse matrix of ``response + 1`` (0 where not presented)."""
        return sparse.csr_matrix(
            (self.response + 1, (self.person, self.item)), shape=(self.n_persons, self.n_items)
        )

    def dense(self) -> np.ndarray:
        """Persons x items float matrix with NaN where not presented (small data only)."""
        out = np.full((self.n_persons, self.n_items), np.nan)
        out[self.person, self.item] = self.response
        return out

    def subset_items(self, item_ids: Sequence[str]) -> ResponseData:
        """The observations of the named items only (persons kept)."""
        index = {item: j for j, item in enumerate(self.item_ids)}
        repeated = sorted({i for i in item_ids if list(item_ids).count(i) > 1})
        if repeated:
            raise ResponseDataError(f"items named more than once: {_list(repeated)}")
        missing = [i for i in item_ids if i not in index]
        if missing:
            raise ResponseDataError(f"unknown item(s): {_list(missing)}")
        keep_old = np.array([index[i] for i in item_ids], dtype=np.intp)
        new = np.full(self.n_items, -1, dtype=np.intp)
        new[keep_old] = np.arange(keep_old.size)
        mask = new[self.item] >= 0
        return ResponseData(self.person_ids, tuple(item_ids), self.person[mask],
                            new[self.item[mask]], self.response[mask], self.group)


def from_long(
    person_ids: Sequence[str],
    item_ids: Sequence[str],
    responses: Sequence,
    groups: Sequence[str] | None = None,
    rows: Sequence[int] | None = None,
    item_order: Sequence[str] = (),
) -> ResponseData:
    """Build :class:`ResponseData` from parallel sequences, validating every value.

    ``rows`` numbers the observations in error messages (file line numbers); by default 1, 2...
    Items come in ``item_order`` first (e.g. the columns of a wide file), then in order of first
    appearance; persons in order of first appearance.

    Raises
    ------
    ResponseDataError
        Non-integer or negative responses, duplicate (person, item) pairs, a person with two
        groups, or no observations; the message names the rows.
    """
    n = len(responses)
    if n == 0:
        raise ResponseDataError("no responses: the data are empty")
    if not (len(person_ids) == len(item_ids) == n) or (groups is not None and len(groups) != n):
        raise ResponseDataError("person ids, item ids, responses and groups differ in length")
    rows = np.arange(1, n + 1) if rows is None else np.asarray(rows)
    values = _whole_numbers(responses, rows)
    people, person = _factorize(person_ids)
    items, item = _factorize(item_ids, item_order)
    if (people == "").any() or (items == "").any():
        blank = (np.asarray(person_ids, dtype=str) == "") | (np.asarray(item_ids, dtype=str) == "")
        shown = _list([f"row {r}" for r in rows[blank]])
        raise ResponseDataError(f"missing person_id or item_id: {shown}")
    key = person.astype(np.int64) * len(items) + item
    order = np.argsort(key, kind="stable")
    duplicate = np.flatnonzero(np.diff(key[order]) == 0)
    if duplicate.size:
        shown = [
            f"person {str(people[person[order[d]]])!r} item {str(items[item[order[d]]])!r} "
            f"(rows {rows[order[d]]} and {rows[order[d + 1]]})"
            for d in duplicate[:_SHOWN]
        ]
        more = f" and {duplicate.size - _SHOWN} more" if duplicate.size > _SHOWN else ""
        raise ResponseDataError(f"duplicate responses: {'; '.join(shown)}{more}")
    group = None
    if groups is not None:
        labels = np.asarray(groups, dtype=str)
        group = np.empty(len(people), dtype=labels.dtype)
        group[person] = labels
        conflict = labels != group[person]
        if conflict.any():
            first = int(np.flatnonzero(conflict)[0])
            raise ResponseDataError(
                f"person {str(people[person[first]])!r} has more than one group "
                f"(row {rows[first]})"
            )
    return ResponseData(
        person_ids=tuple(people.tolist()),
        item_ids=tuple(items.tolist()),
        person=person.astype(np.intp),
        item=item.astype(np.intp),
        response=values,
        group=group,
    )


def from_wide(
    matrix, person_ids: Sequence[str] | None = None, item_ids: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
) -> ResponseData:
    """Build :class:`ResponseData` from a persons x items array; NaN means not presented."""
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2:
        raise ResponseDataError("a wide response matrix must be two-dimensional")
    p, j = matrix.shape
    person_ids = [str(i) for i in (person_ids if person_ids is not None else range(1, p + 1))]
    item_ids = [str(i) for i in (item_ids if item_ids is not None else
                                 (f"item{k + 1}" for k in range(j)))]
    rows, cols = np.nonzero(~np.isnan(matrix))
    values = matrix[rows, cols]
    return from_long(
        [person_ids[r] for r in rows], [item_ids[c] for c in cols], values.tolist(),
        None if groups is None else [groups[r] for r in rows], rows=rows + 2,
        item_order=item_ids,
    )


def read_csv(path: Path, error: type[Exception]) -> tuple[list[str], list[list[str]]]:
    """The header (names stripped) and the rows of a UTF-8 CSV file (a BOM is allowed).

    Raises
    ------
    error
        An empty file, or one that is not UTF-8 text, naming the file.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise error(f"{path}: the file is empty")
            return [h.strip() for h in header], list(reader)
    except UnicodeDecodeError:
        raise error(f"{path}: not a UTF-8 text file") from None


def read_responses(path: str | Path) -> ResponseData:
    """Read a long or wide response CSV (long when it has ``person_id,item_id,response``).

    Raises
    ------
    ResponseDataError
        With the file name and the rows or columns at fault.
    """
    path = Path(path)
    header, records = read_csv(path, ResponseDataError)
    try:
        if set(LONG_COLUMNS) <= set(header):
            return _long(header, records)
        return _wide(header, records)
    except ResponseDataError as error:
        raise ResponseDataError(f"{path}: {error}") from None


def _long(header: list[str], records: list[list[str]]) -> ResponseData:
    col = {name: header.index(name) for name in (*LONG_COLUMNS, "group") if name in header}
    width = len(header)
    short = [n for n, r in enumerate(records, 2) if len(r) < width and any(c.strip() for c in r)]
    if short:
        raise ResponseDataError(f"rows with missing fields: {_list([f'row {n}' for n in short])}")
    kept = [(n, r) for n, r in enumerate(records, 2) if any(c.strip() for c in r)]
    return from_long(
        [r[col["person_id"]].strip() for _, r in kept],
        [r[col["item_id"]].strip() for _, r in kept],
        [r[col["response"]].strip() for _, r in kept],
        [r[col["group"]].strip() for _, r in kept] if "group" in col else None,
        rows=[n for n, _ in kept],
    )


def _wide(header: list[str], records: list[list[str]]) -> ResponseData:
    if len(header) < 2:
        raise ResponseDataError(
            "expected a long file (person_id,item_id,response[,group]) or a wide one "
            "(person id, then one column per item)"
        )
    group_col = header.index("group") if "group" in header[1:] else None
    item_cols = [k for k in range(1, len(header)) if k != group_col]
    duplicates = sorted({header[k] for k in item_cols if [header[i] for i in item_cols].count(
        header[k]) > 1})
    if duplicates:
        raise ResponseDataError(f"duplicate item columns: {_list(duplicates)}")
    people, items, values, groups, rows = [], [], [], [], []
    for n, record in enumerate(records, 2):
        if not any(c.strip() for c in record):
            continue
        record = record + [""] * (len(header) - len(record))
        for k in item_cols:
            cell = record[k].strip()
            if cell:
                people.append(record[0].strip())
                items.append(header[k])
                values.append(cell)
                groups.append(record[group_col].strip() if group_col is not None else "")
                rows.append(n)
    return from_long(people, items, values, groups if group_col is not None else None, rows=rows,
                     item_order=[header[k] for k in item_cols])


def _factorize(labels: Sequence, order: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Distinct labels, those in ``order`` first, then in order of first appearance, and each
    entry's code. (A dict is several times faster than sorting millions of strings.)"""
    if isinstance(labels, np.ndarray) and labels.dtype.kind in "iu" and not len(order):
        uniques, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
        by_appearance = np.argsort(first, kind="stable")
        rank = np.empty_like(by_appearance)
        rank[by_appearance] = np.arange(by_appearance.size)
        return uniques[by_appearance].astype(str), rank[inverse].astype(np.intp)
    seen: dict[str, int] = {str(v): k for k, v in enumerate(dict.fromkeys(order))}
    codes = np.fromiter((seen.setdefault(str(v), len(seen)) for v in labels), dtype=np.intp,
                        count=len(labels))
    return np.array(list(seen), dtype=str), codes


def _whole_numbers(responses: Sequence, rows: np.ndarray) -> np.ndarray:
    """Responses as non-negative integers, vectorised; names the rows that are not."""
    try:
        numbers = np.asarray(responses, dtype=float)
        ok = np.isfinite(numbers) & (numbers >= 0) & (numbers == np.round(numbers))
    except (TypeError, ValueError):
        numbers = None
    if numbers is None or not ok.all():
        bad = [
            f"row {rows[i]} ({value!r})"
            for i, value in enumerate(responses)
            if (number := _integer(value)) is None or number < 0
        ]
        raise ResponseDataError(f"responses must be whole numbers 0, 1, 2...: {_list(bad)}")
    return numbers.astype(np.intp)


def _integer(value) -> int | None:
    if isinstance(value, (bool, np.bool_)):  # True/False count as 1/0, as in the vector path
        return int(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else None


def _list(things: Sequence[str]) -> str:
    things = list(things)
    shown = ", ".join(str(t) for t in things[:_SHOWN])
    return shown + (f" and {len(things) - _SHOWN} more" if len(things) > _SHOWN else "")
