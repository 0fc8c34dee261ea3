"""Calibration runs for assessment teams: uploads, runs, their results, and publication.

Functions on a SQLAlchemy session (no HTTP, no commits), called by the API (one transaction per
request) and by the background job (:mod:`api.jobs`):

- :func:`create_upload` checks a response file with the ``calibration`` package and keeps it as
  sent; :func:`upload_view` adds the item codes the bank does not know.
- :func:`create_run` validates a run (model, settings, enough responses per item) and stores it as
  queued. The data are gathered again when the run starts (:func:`load_input`), from the upload or
  from a test's attempts (online calibration of pretest items).
- :func:`calibrate_input` does the work of a run and returns its result as plain JSON: per-item
  parameters, standard errors, sample sizes, item fit with flags, DIF when the data have groups,
  and a summary.
- :func:`publish_run` turns a reviewed run into new active parameter sets, in one transaction.

Two ways of putting new items on the bank's scale, both by fixed-parameter calibration (Kim's
MWU-MEM, see :mod:`calibration.em`): an upload run with ``anchor`` holds the bank's operational
(and retired) items at their active parameters; an online run holds the operational items a test
delivered at theirs and estimates the pretest items its students answered unscored.
"""

from __future__ import annotations

import csv
import io
import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from calibration import calibrate
from calibration.data import LONG_COLUMNS, ResponseData, from_long, read_responses
from calibration.em import ESTIMABLE_MODELS, MIN_RESPONSES
from calibration.errors import CalibrationError, ResponseDataError
from calibration.linking import METHODS as LINKING_METHODS
from calibration.linking import LinkingResult, link
from cat_engine import ItemBank
from evidence.models import Attempt, AttemptStatus, Response
from item_bank.models import (
    SOURCE_LANGUAGE,
    AdaptiveTest,
    CalibrationRun,
    Item,
    ItemStatus,
    ResponseUpload,
    RunStatus,
)
from item_bank.services import (
    ANCHOR_STATUSES,
    BankError,
    add_parameter_set,
    anchor_bank,
    change_status,
    check_language,
)
from storage import as_utc, utcnow
from storage.errors import Conflict, Invalid, NotFound
from storage.rights import Purpose, consenting_query

MODELS = ESTIMABLE_MODELS
KINDS = ("upload", "online")
DEFAULT_SETTINGS: dict[str, Any] = {
    "max_iterations": 500,
    "tolerance": 1e-4,
    "min_responses": MIN_RESPONSES,
}
_SHOWN = 10
_IN_CHUNK = 500
#: Between an item's code and a language in a run's column (languages calibrated separately).
LANGUAGE_MARK = "@"

Report = Callable[[float, str], None]


# -- uploads -------------------------------------------------------------------------------------


def parse_responses(content: bytes | str, filename: str = "") -> tuple[ResponseData, str]:
    """Read a long or wide response CSV with :func:`calibration.data.read_responses`.

    Returns
    -------
    data, layout
        The responses and ``"long"`` (``person_id,item_id,response[,group]``) or ``"wide"``.

    Raises
    ------
    Invalid
        The file is not UTF-8 text, or its rows or columns are wrong (the message names them).
    """
    label = f"file {filename!r}" if filename else "the file"
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise Invalid(f"{label} is not a UTF-8 text file", "file") from None
    content = content.removeprefix("\ufeff")
    _refuse_nul(content, label)
    layout = layout_of(content)
    fd, path = tempfile.mkstemp(suffix=".csv", prefix="responses-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(content)
        data = read_responses(path)
    except ResponseDataError as error:
        message = str(error).removeprefix(f"{path}: ")
        raise Invalid(f"{label}: {message}", "file") from None
    finally:
        os.unlink(path)
    return data, layout


def _refuse_nul(content: str, label: str) -> None:
    """A NUL character in a response file is refused, naming its row and column: no text may
    hold one (PostgreSQL cannot store it, and no id or response contains it)."""
    if "\x00" not in content:
        return
    reader = csv.reader(io.StringIO(content, newline=""))
    header: list[str] = []
    for row_number, row in enumerate(reader, 1):
        header = header or row
        for k, cell in enumerate(row):
            if "\x00" in cell:
                column = header[k].replace("\x00", "\\0").strip() if k < len(header) else ""
                named = f"column {k + 1} ({column!r})" if column else f"column {k + 1}"
                raise Invalid(f"{label}: row {row_number}, {named} contains a NUL character "
                              "(\\0), which no text may hold", "file")
    raise Invalid(f"{label} contains a NUL character (\\0), which no text may hold", "file")


def layout_of(content: str) -> str:
    """``"long"`` when the header has ``person_id,item_id,response``, else ``"wide"``."""
    header = next(csv.reader(io.StringIO(content)), None) or []
    return "long" if set(LONG_COLUMNS) <= {h.strip() for h in header} else "wide"


def create_upload(session: Session, *, filename: str, content: bytes | str,
                  user_id: int | None = None) -> ResponseUpload:
    """Check a response file and keep it, as sent, for calibration runs."""
    data, layout = parse_responses(content, filename)
    text = content.decode("utf-8-sig") if isinstance(content, bytes) else content
    upload = ResponseUpload(filename=(filename or "")[:255], layout=layout, content=text,
                            n_persons=data.n_persons, n_items=data.n_items,
                            n_responses=data.n_obs, uploaded_by=user_id)
    session.add(upload)
    session.flush()
    return upload


def get_upload(session: Session, upload_id: int) -> ResponseUpload:
    """The upload ``upload_id``, or :class:`NotFound`."""
    upload = session.get(ResponseUpload, upload_id)
    if upload is None:
        raise NotFound(f"no response upload {upload_id}", "upload_id")
    return upload


def upload_codes(upload: ResponseUpload) -> list[str]:
    """The item codes of an upload, in file order (read from the CSV, without validation)."""
    reader = csv.reader(io.StringIO(upload.content))
    header = [h.strip() for h in next(reader, [])]
    if upload.layout == "wide":
        return [h for k, h in enumerate(header) if k > 0 and h != "group" and h]
    column = header.index("item_id")
    return list(dict.fromkeys(row[column].strip() for row in reader
                              if len(row) > column and row[column].strip()))


def upload_view(session: Session, upload: ResponseUpload) -> dict[str, Any]:
    """An upload as the API shows it, with the item codes the bank does not know (new items)."""
    codes = upload_codes(upload)
    known = _known_codes(session, codes)
    groups = []
    header = {h.strip() for h in next(csv.reader(io.StringIO(upload.content)), [])}
    if "group" in header:
        data, _layout = parse_responses(upload.content, upload.filename)
        groups = [{"group": g, "persons": n} for g, n in group_sizes(data)]
    unknown = [c for c in codes if c not in known]
    header = next(csv.reader(io.StringIO(upload.content)), [])
    return {
        "id": upload.id, "filename": upload.filename, "layout": upload.layout,
        "n_persons": upload.n_persons, "n_items": upload.n_items,
        "n_responses": upload.n_responses,
        "has_groups": "group" in {h.strip() for h in header},
        "unknown_items": unknown, "n_unknown_items": len(unknown),
        "groups": groups,
        "uploaded_by": upload.uploaded_by, "created_at": as_utc(upload.created_at),
    }


def _known_codes(session: Session, codes: Sequence[str]) -> set[str]:
    known: set[str] = set()
    for start in range(0, len(codes), _IN_CHUNK):
        chunk = list(codes[start:start + _IN_CHUNK])
        known.update(session.scalars(select(Item.code).where(Item.code.in_(chunk))))
    return known


def _items_by_code(session: Session, codes: Sequence[str]) -> dict[str, Item]:
    found: dict[str, Item] = {}
    for start in range(0, len(codes), _IN_CHUNK):
        chunk = list(codes[start:start + _IN_CHUNK])
        query = (select(Item).where(Item.code.in_(chunk))
                 .options(selectinload(Item.parameter_sets)))
        found.update((i.code, i) for i in session.scalars(query))
    return found


# -- runs: creation and input --------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RunInput:
    """What a run calibrates: the responses, the anchors held fixed, the items estimated."""

    data: ResponseData
    fixed: ItemBank | None
    estimated: tuple[str, ...]
    description: dict[str, Any] = field(default_factory=dict)


def create_run(
    session: Session,
    *,
    kind: str = "upload",
    model: str = "2pl",
    upload_id: int | None = None,
    test_id: int | None = None,
    anchor: bool = False,
    settings: Mapping[str, Any] | None = None,
    items: Sequence[str] | None = None,
    user_id: int | None = None,
) -> CalibrationRun:
    """Validate a calibration run and store it as queued (the caller commits, then enqueues it).

    Parameters
    ----------
    kind : ``"upload"`` or ``"online"``
        Calibrate an uploaded file (``upload_id``), or the pretest items of a test (``test_id``)
        from its attempts' unscored responses, with its operational items held fixed.
    model : str
        IRT model of every estimated item (anchors keep their own).
    anchor : bool
        Upload runs: hold the bank's operational and retired items with active parameters fixed
        at them, so the other items land on the bank's scale.
    settings : mapping
        ``max_iterations``, ``tolerance``, ``min_responses``, ``dif_reference`` (a group label).
    items : sequence of str, optional
        Upload runs: calibrate these items only; online runs: these pretest items only.

    Raises
    ------
    Invalid
        A setting is wrong, or an estimated item has fewer responses than the minimum (the message
        gives each such item's count and the minimum).
    NotFound
        No such upload or test.
    """
    if kind not in KINDS:
        raise Invalid(f"kind must be one of {', '.join(KINDS)}, not {kind!r}", "kind")
    model = str(model).strip().lower()
    if model not in MODELS:
        raise Invalid(f"unknown model {model!r}: use one of {', '.join(MODELS)}", "model")
    values = _settings(settings)
    values["anchor"] = bool(anchor) if kind == "upload" else True
    if items is not None:
        values["items"] = list(dict.fromkeys(str(i).strip() for i in items))
        if not values["items"]:
            raise Invalid("items must name at least one item when given", "items")
    if kind == "upload" and values.get("languages_separately"):
        raise Invalid("settings.languages_separately needs an online run: its attempts say "
                      "which language each response was given in", "settings.languages_separately")
    if kind == "upload":
        if upload_id is None:
            raise Invalid("an upload run needs upload_id", "upload_id")
        get_upload(session, upload_id)
        test_id = None
    else:
        if test_id is None:
            raise Invalid("an online run needs test_id", "test_id")
        if session.get(AdaptiveTest, test_id) is None:
            raise NotFound(f"no test {test_id}", "test_id")
        upload_id = None
    run = CalibrationRun(kind=kind, upload_id=upload_id, test_id=test_id, model=model,
                         settings=values, status=RunStatus.QUEUED, progress=0.0,
                         message="queued", created_by=user_id)
    run_input = load_input(session, run)  # fails now, with a 422, on data it cannot calibrate
    _check_dif_groups(values, run_input.data)
    session.add(run)
    session.flush()
    return run


def group_sizes(data: ResponseData) -> list[tuple[str, int]]:
    """The data's groups (for DIF) with their numbers of persons, largest first (then by name)."""
    if data.group is None:
        return []
    labels, persons = np.unique(data.group[data.group != ""], return_counts=True)
    return sorted(zip(labels.tolist(), persons.tolist(), strict=True),
                  key=lambda lp: (-lp[1], lp[0]))


def _check_dif_groups(values: Mapping[str, Any], data: ResponseData) -> None:
    """The DIF reference and focal groups must be groups of the data, and differ."""
    reference, focal = values.get("dif_reference"), values.get("dif_focal")
    if reference is None and focal is None:
        return
    groups = [g for g, _n in group_sizes(data)]
    known = _names(repr(g) for g in groups) if groups else "none: the data have no group column"
    if reference is not None and reference not in groups:
        raise Invalid(f"settings.dif_reference {reference!r} is not a group of the data "
                      f"(groups: {known})", "settings.dif_reference")
    if focal is not None:
        missing = [g for g in focal if g not in groups]
        if missing:
            raise Invalid(f"settings.dif_focal: {_names(repr(g) for g in missing)} not a group of "
                          f"the data (groups: {known})", "settings.dif_focal")
        if (reference or (groups[0] if groups else None)) in focal:
            raise Invalid("settings.dif_focal must not hold the reference group "
                          f"{reference or groups[0]!r}", "settings.dif_focal")


def _settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    values = dict(DEFAULT_SETTINGS)
    given = dict(settings or {})
    unknown = set(given) - {*DEFAULT_SETTINGS, "dif_reference", "dif_focal",
                            "languages_separately"}
    if unknown:
        name = sorted(unknown)[0]
        raise Invalid(f"unknown setting {name!r}; use max_iterations, tolerance, min_responses, "
                      "dif_reference, dif_focal, languages_separately", f"settings.{name}")
    for name, value in given.items():
        if value is not None:
            values[name] = value
    checks = (
        ("max_iterations", lambda v: isinstance(v, int) and not isinstance(v, bool)
         and 1 <= v <= 10_000, "an integer from 1 to 10000"),
        ("tolerance", lambda v: isinstance(v, int | float) and not isinstance(v, bool)
         and 0 < v <= 1, "a number above 0 and at most 1"),
        ("min_responses", lambda v: isinstance(v, int) and not isinstance(v, bool)
         and 2 <= v <= 1_000_000, "an integer of at least 2"),
    )
    for name, ok, expected in checks:
        if not ok(values[name]):
            raise Invalid(f"settings.{name} must be {expected}, got {values[name]!r}",
                          f"settings.{name}")
    if "dif_reference" in values and not isinstance(values["dif_reference"], str):
        raise Invalid("settings.dif_reference must be a group label", "settings.dif_reference")
    if "dif_focal" in values:
        focal = values["dif_focal"]
        if (not isinstance(focal, list | tuple) or not focal
                or not all(isinstance(g, str) and g for g in focal)):
            raise Invalid("settings.dif_focal must be a non-empty list of group labels",
                          "settings.dif_focal")
        values["dif_focal"] = list(dict.fromkeys(focal))
    if not isinstance(values.get("languages_separately", False), bool):
        raise Invalid("settings.languages_separately must be true or false",
                      "settings.languages_separately")
    if not values.get("languages_separately"):
        values.pop("languages_separately", None)
    values["tolerance"] = float(values["tolerance"])
    return values


def load_input(session: Session, run: CalibrationRun) -> RunInput:
    """Gather what ``run`` calibrates, as it stands now, and check there is enough of it.

    Raises
    ------
    Invalid
        Unreadable data, unknown ``items``, no anchors when asked for, nothing to estimate, or an
        estimated item with fewer responses than ``settings.min_responses``.
    """
    settings = run.settings or {}
    minimum = int(settings.get("min_responses", MIN_RESPONSES))
    if run.kind == "online":
        run_input = _online_input(session, run.test_id, settings.get("items"), minimum,
                                  separately=bool(settings.get("languages_separately")))
    else:
        run_input = _upload_input(session, run.upload_id, bool(settings.get("anchor")),
                                  settings.get("items"), minimum)
    return run_input


def _upload_input(session: Session, upload_id: int | None, anchor: bool,
                  items: Sequence[str] | None, minimum: int) -> RunInput:
    if upload_id is None:
        raise Invalid("the run's upload was deleted", "upload_id")
    upload = get_upload(session, upload_id)
    data, _layout = parse_responses(upload.content, upload.filename)
    if items:
        try:
            data = data.subset_items(list(items))
        except ResponseDataError as error:
            raise Invalid(f"items: {error} (not in upload {upload_id})", "items") from None
    bank_items = _items_by_code(session, data.item_ids)
    unknown = [c for c in data.item_ids if c not in bank_items]
    fixed = None
    if anchor:
        anchors = [bank_items[c] for c in data.item_ids if c in bank_items
                   and bank_items[c].status in ANCHOR_STATUSES
                   and bank_items[c].active_parameters is not None]
        if not anchors:
            raise Invalid(f"anchor: none of the {data.n_items} items of upload {upload_id} is an "
                          "operational item with active parameters in the bank", "anchor")
        fixed = anchor_bank(anchors)
        if len(anchors) == data.n_items:
            raise Invalid(f"anchor: every item of upload {upload_id} has active parameters in the "
                          "bank, so nothing is left to estimate", "anchor")
    anchored = set(fixed.item_ids) if fixed is not None else set()
    estimated = tuple(c for c in data.item_ids if c not in anchored)
    counts = dict(zip(data.item_ids, data.counts_per_item().tolist(), strict=True))
    _check_counts({c: counts[c] for c in estimated}, minimum, "upload_id")
    return RunInput(data=data, fixed=fixed, estimated=estimated, description={
        "kind": "upload", "upload_id": upload_id, "filename": upload.filename,
        "unknown_items": unknown, "anchors": sorted(anchored),
    })


def language_column(code: str, language: str) -> str:
    """The column of an item's responses in one language, when languages are calibrated
    separately: ``CODE@ar``."""
    return f"{code}{LANGUAGE_MARK}{language}"


def split_column(column: str) -> tuple[str, str | None]:
    """``(item code, language)`` of a run's column; ``language`` is None for an item's
    pooled column (every language, or those with too few responses of their own)."""
    code, mark, language = column.rpartition(LANGUAGE_MARK)
    if mark and code:
        try:
            return code, check_language(language)
        except BankError:
            pass
    return column, None


def _separate_languages(session: Session, rows: Sequence[tuple[int, str, int, str | None]],
                        estimated: Sequence[str], minimum: int
                        ) -> tuple[list[tuple[int, str, int]], list[str], dict[str, int]]:
    """Give each estimated item a column per attempt language with at least ``minimum``
    responses (other than the item's own language); the item's own language and languages
    with fewer responses stay in its pooled column. Anchors are not split."""
    source = dict(session.execute(select(Item.code, Item.language)
                                  .where(Item.code.in_(list(estimated)))).all())
    wanted = set(estimated)
    counts = Counter((code, language) for _, code, _, language in rows if code in wanted)
    own = {(code, language) for (code, language), n in counts.items()
           if language and language != source.get(code, SOURCE_LANGUAGE) and n >= minimum}
    kept, columns = [], []
    for attempt, code, response, language in rows:
        column = language_column(code, language) if (code, language) in own else code
        kept.append((attempt, column, response))
    for code in estimated:
        columns.append(code)
        columns.extend(language_column(code, lang) for c, lang in sorted(own) if c == code)
    totals = Counter(column for _, column, _ in kept)
    return kept, columns, {c: totals.get(c, 0) for c in columns}


def _online_input(session: Session, test_id: int | None, items: Sequence[str] | None,
                  minimum: int, separately: bool = False) -> RunInput:
    if test_id is None:
        raise Invalid("the run's test was deleted", "test_id")
    test = session.get(AdaptiveTest, test_id)
    if test is None:
        raise NotFound(f"no test {test_id}", "test_id")
    live = (Attempt.test_id == test_id) & Attempt.status.in_(
        [AttemptStatus.FINISHED, AttemptStatus.IN_PROGRESS])
    # Pooled calibration uses responses beyond the school's own teaching: only of students
    # whose research consent is given (issue 16); the others are counted, not used.
    counted = live & Attempt.user_id.in_(consenting_query(Purpose.RESEARCH))
    left_out = session.scalar(select(func.count(Attempt.id)).where(live, ~Attempt.user_id.in_(
        consenting_query(Purpose.RESEARCH)))) or 0
    unscored = (select(Item.code, func.count(Response.id))
                .join(Attempt, Attempt.id == Response.attempt_id)
                .join(Item, Item.id == Response.item_id)
                .where(counted, Response.scored.is_(False)).group_by(Item.code))
    counts: dict[str, int] = dict(session.execute(unscored).all())
    configured = [str(c) for c in ((test.config or {}).get("pretest") or {}).get("items", [])]
    if items:
        missing = [c for c in items if c not in counts and c not in configured]
        if missing:
            raise Invalid(f"items: {_names(repr(c) for c in missing)} not pretest item(s) of "
                          f"test {test.name!r}", "items")
        wanted = list(items)
    else:
        wanted = list(dict.fromkeys([*configured, *sorted(counts)]))
    if not wanted:
        raise NoPretestItems(f"test {test.name!r} has no pretest items to calibrate",
                             "test_id", test=test.name)
    _check_counts({c: counts.get(c, 0) for c in wanted}, minimum, "test_id",
                  where=f" from finished or in-progress attempts at test {test.name!r} of "
                        f"students who gave the research consent ({left_out} attempt(s) "
                        "left out without it)",
                  test=test.name)
    estimated = wanted
    persons = (select(Response.attempt_id).distinct()
               .join(Attempt, Attempt.id == Response.attempt_id)
               .join(Item, Item.id == Response.item_id)
               .where(counted, Response.scored.is_(False), Item.code.in_(estimated)))
    rows = session.execute(
        select(Response.attempt_id, Item.code, Response.response, Attempt.language)
        .join(Item, Item.id == Response.item_id)
        .join(Attempt, Attempt.id == Response.attempt_id)
        .where(Response.attempt_id.in_(persons))
        .order_by(Response.attempt_id, Response.position)
    ).all()
    others = sorted({code for _, code, _, _ in rows} - set(estimated))
    bank_items = _items_by_code(session, others)
    anchors = [bank_items[c] for c in others
               if c in bank_items and bank_items[c].active_parameters is not None]
    usable = set(estimated) | {i.code for i in anchors}
    kept = [r for r in rows if r[1] in usable]
    if separately:
        kept, estimated, split = _separate_languages(session, kept, estimated, minimum)
        _check_counts(split, minimum, "test_id", test=test.name)
    else:
        kept = [(a, c, r) for a, c, r, _ in kept]
    data = from_long([f"attempt-{a}" for a, _, _ in kept], [c for _, c, _ in kept],
                     [int(r) for _, _, r in kept], item_order=estimated)
    fixed = anchor_bank(anchors) if anchors else None
    return RunInput(data=data, fixed=fixed, estimated=tuple(estimated), description={
        "kind": "online", "test_id": test_id, "test": test.name,
        "languages_separately": separately,
        "n_attempts": data.n_persons, "anchors": sorted(i.code for i in anchors),
        "dropped_items": sorted(set(others) - usable),
        "attempts_without_research_consent": left_out,
    })


class TooFewResponses(Invalid):
    """Estimated items with fewer responses than the minimum; ``few`` maps each to its count."""

    def __init__(self, message: str, field: str, *, few: Mapping[str, int], minimum: int,
                 test: str | None = None) -> None:
        super().__init__(message, field)
        self.few, self.minimum, self.test = dict(few), minimum, test


class NoPretestItems(Invalid):
    """An online run for a test that has no pretest items (seeded or answered)."""

    def __init__(self, message: str, field: str, *, test: str) -> None:
        super().__init__(message, field)
        self.test = test


def _check_counts(counts: Mapping[str, int], minimum: int, field_name: str,
                  where: str = "", test: str | None = None) -> None:
    few = {c: n for c, n in counts.items() if n < minimum}
    if not few:
        return
    shown = [f"{code!r} has {n}" for code, n in list(few.items())[:_SHOWN]]
    more = f" and {len(few) - _SHOWN} more items" if len(few) > _SHOWN else ""
    raise TooFewResponses(
        f"too few responses to calibrate{where}: {', '.join(shown)}{more}; each estimated item "
        f"needs at least {minimum} (settings.min_responses)", field_name, few=few,
        minimum=minimum, test=test)


# -- runs: the calibration itself ----------------------------------------------------------------


def calibrate_input(run_input: RunInput, model: str, settings: Mapping[str, Any],
                    report: Report | None = None) -> dict[str, Any]:
    """Calibrate, compute item fit and DIF, and return the run's result as plain JSON.

    ``report(fraction, message)`` is called as the work advances (``fraction`` in 0..1; the EM
    cycles fill 0.05 to 0.8, item fit and DIF the rest).

    Returns
    -------
    dict
        ``summary`` (fit of the model, convergence, sizes, misfitting and DIF-flagged items),
        ``settings`` (every setting the calibration used), ``input`` (where the data came from),
        ``items`` (one entry per item: ``parameters``, ``se``, ``n``, ``fixed``, ``fit``,
        ``dif``, ``flags``) and ``dif`` (the full DIF reports, or None without groups).

    Raises
    ------
    CalibrationError
        The data cannot be calibrated with ``model`` (the message names the items).
    """
    from calibration.fit import item_fit, n_item_parameters

    report = report or (lambda fraction, message: None)
    data = run_input.data
    max_iterations = int(settings.get("max_iterations", DEFAULT_SETTINGS["max_iterations"]))

    def on_cycle(iteration: int, log_likelihood: float) -> None:
        report(0.05 + 0.75 * min(iteration / max_iterations, 1.0),
               f"EM cycle {iteration} (at most {max_iterations}), "
               f"log-likelihood {log_likelihood:.2f}")

    report(0.05, f"estimating {len(run_input.estimated)} items from {data.n_obs} responses")
    result = calibrate(
        data, model, fixed=run_input.fixed, max_iterations=max_iterations,
        tolerance=float(settings.get("tolerance", DEFAULT_SETTINGS["tolerance"])),
        min_responses=int(settings.get("min_responses", MIN_RESPONSES)), progress=on_cycle,
    )
    report(0.8, "item fit")
    n_parameters = n_item_parameters(result.bank, np.arange(len(result.bank)))
    n_parameters[result.fixed] = 0  # anchors' parameters were not estimated from these data
    fit = item_fit(data, result.bank, latent=(result.latent_mean, result.latent_sd),
                   n_parameters=n_parameters,
                   estimated_latent=result.settings.get("estimate_latent", "none"))
    dif = None
    if data.group is not None:
        report(0.9, "differential item functioning")
        dif = _dif_reports(data, result, settings.get("dif_reference"),
                           settings.get("dif_focal"))
    items = _item_entries(result, fit, dif)
    summary = {
        **result.summary(),
        "n_responses": data.n_obs,
        "n_estimated": int(np.count_nonzero(~result.fixed)),
        "misfitting_items": [e["item_id"] for e in items if e["fit"]["misfit"]],
        "dif_flagged": [e["item_id"] for e in items
                        if any(d["category"] in ("B", "C") for d in e["dif"])],
        "unknown_items": list(run_input.description.get("unknown_items", [])),
    }
    return plain({
        "summary": summary,
        "settings": {**result.settings, "fit": True, "anchor": run_input.fixed is not None},
        "input": {**run_input.description, "n_persons": data.n_persons,
                  "n_items": data.n_items, "n_responses": data.n_obs},
        "items": items,
        "dif": dif,
    })


def _dif_reports(data: ResponseData, result, reference: str | None,
                 focal_groups: Sequence[str] | None = None) -> dict[str, Any]:
    """One DIF report per focal group (by default every other group) against the reference
    group (by default the largest)."""
    from calibration.dif import dif_report
    from calibration.fit import eap_scores

    labels, persons = np.unique(data.group[data.group != ""], return_counts=True)
    if labels.size < 2:
        return {"reference": None, "reports": [],
                "note": "DIF needs at least two groups; the data have "
                        f"{labels.size}"}
    order = sorted(zip(labels.tolist(), persons.tolist(), strict=True),
                   key=lambda lp: (-lp[1], lp[0]))
    reference = reference or order[0][0]
    if reference not in labels:
        return {"reference": reference, "reports": [],
                "note": f"settings.dif_reference {reference!r} is not a group of the data "
                        f"({_names(repr(str(g)) for g in labels)})"}
    complete = data.n_obs == data.n_persons * data.n_items
    ability = None
    if not complete:
        ability = eap_scores(data, result.bank, latent=(result.latent_mean,
                                                        result.latent_sd))[0]
    reports = []
    for focal, _n in order:
        if focal == reference or (focal_groups is not None and focal not in focal_groups):
            continue
        try:
            report = dif_report(data, reference, focal, matching="total" if complete else "theta",
                                ability=ability)
        except CalibrationError as error:
            report = {"reference": reference, "focal": focal, "error": str(error)}
        reports.append(report)
    return {"reference": reference, "reports": reports,
            "matching": "total" if complete else "theta"}


def _item_entries(result, fit: Sequence[dict], dif: Mapping[str, Any] | None) -> list[dict]:
    per_item: dict[str, list[dict]] = {}
    for report in (dif or {}).get("reports", []):
        for row in report.get("mantel_haenszel", []):
            per_item.setdefault(row["item_id"], []).append({
                "reference": report["reference"], "focal": report["focal"],
                "category": row["category"], "statistic": "delta_mh", "value": row["delta_mh"],
                "p_value": row["p_value"], "favours": row["favours"]})
        for row in report.get("standardized_mean_difference", []):
            per_item.setdefault(row["item_id"], []).append({
                "reference": report["reference"], "focal": report["focal"],
                "category": row["category"], "statistic": "smd", "value": row["smd"],
                "p_value": row["p_value"], "favours": row["favours"]})
    entries = []
    for record, row in zip(result.to_records(), fit, strict=True):
        code = record["item_id"]
        thresholds = [record[k] for k in sorted(
            (k for k in record if k[:1] == "b" and k[1:].isdigit()), key=lambda k: int(k[1:]))
            if record[k] is not None]
        se_thresholds = [record[f"se_b{k + 1}"] for k in range(len(thresholds))]
        polytomous = record["b"] is None
        dif_rows = per_item.get(code, [])
        flags = list(row["flags"]) + [f"dif_{d['category']}_{d['focal']}" for d in dif_rows
                                      if d["category"] in ("B", "C")]
        entries.append({
            "item_id": code,
            "model": record["model"],
            "fixed": record["fixed"],
            "n": record["n_responses"],
            "parameters": {
                "model": record["model"], "a": record["a"], "b": record["b"],
                "c": record["c"], "d": record["d"],
                "thresholds": thresholds if polytomous else None,
            },
            "se": {"a": record["se_a"], "b": record["se_b"], "c": record["se_c"],
                   "thresholds": se_thresholds if polytomous else None},
            "fit": {k: row.get(k) for k in ("s_x2", "df", "p_value", "infit", "outfit",
                                            "flags", "misfit", "note")},
            "dif": dif_rows,
            "flags": flags,
        })
    return entries


def plain(value: Any) -> Any:
    """``value`` as strict JSON: numpy scalars as Python numbers, NaN and infinities as None."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [plain(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


def failure_message(error: BaseException) -> str:
    """One line saying what went wrong, for the run's ``error`` (never a traceback)."""
    text = " ".join(str(error).split()) or error.__class__.__name__
    if not isinstance(error, ValueError):  # not a domain error: say what kind of failure it was
        text = f"internal error ({error.__class__.__name__}: {text}); see the worker's log"
    return text[:1000]


# -- runs: reading -------------------------------------------------------------------------------

#: A running run whose worker has not stamped ``heartbeat_at`` for this long is taken as dead.
#: Workers stamp every :data:`api.jobs.HEARTBEAT_SECONDS` (30 s), whatever the calibration does.
STALL_AFTER = timedelta(minutes=5)


def reap_stalled_runs(session: Session, now: datetime | None = None,
                      stall_after: timedelta = STALL_AFTER) -> int:
    """Mark ``failed`` every running run whose worker stopped giving signs of life.

    A worker killed mid-run (or its machine lost) would otherwise leave the run ``running`` for
    ever. Called when a worker starts and whenever runs are read; returns the number of runs
    marked. Nothing else of those runs changes: start a new run to try again.
    """
    now = now or utcnow()
    last_sign = func.coalesce(CalibrationRun.heartbeat_at, CalibrationRun.started_at)
    minutes = stall_after.total_seconds() / 60
    result = session.execute(
        update(CalibrationRun)
        .where(CalibrationRun.status == RunStatus.RUNNING, last_sign < now - stall_after)
        .values(status=RunStatus.FAILED, finished_at=now, message="failed",
                error=f"the worker running this run stopped (no sign of life for {minutes:g} "
                      "minutes: killed, or its machine lost); start a new run")
        .execution_options(synchronize_session=False))
    return int(result.rowcount or 0)



def get_run(session: Session, run_id: int, lock: bool = False) -> CalibrationRun:
    """The run ``run_id`` (locked for update when ``lock``), or :class:`NotFound`."""
    run = session.get(CalibrationRun, run_id, with_for_update=lock or None)
    if run is None:
        raise NotFound(f"no calibration run {run_id}")
    return run


def run_items(session: Session, run: CalibrationRun, *, flagged: bool | None = None,
              offset: int = 0, limit: int | None = None) -> tuple[int, list[dict[str, Any]]]:
    """The run's per-item results (a page of them), each with the item's place in the bank now.

    ``bank`` is ``{"item_id", "status", "parameters", "parameter_set_id"}`` (the active set now,
    to compare with the estimate), or None for an item the bank does not have. ``flagged`` keeps
    only items with (or without) fit or DIF flags.

    Returns
    -------
    total, entries
        How many items match, and those from ``offset`` (at most ``limit``).

    Raises
    ------
    Conflict
        The run has no result yet (queued, running or failed).
    """
    if not run.result:
        raise Conflict(f"calibration run {run.id} is {run.status.value}: it has no item results"
                       + (f" ({run.error})" if run.error else ""))
    entries = list(run.result.get("items", []))
    if flagged is not None:
        entries = [e for e in entries if bool(e["flags"]) == flagged]
    total = len(entries)
    entries = entries[offset:None if limit is None else offset + limit]
    bank = _items_by_code(session, [split_column(e["item_id"])[0] for e in entries])
    out = []
    for entry in entries:
        code, language = split_column(entry["item_id"])
        item = bank.get(code)
        active = item.active_parameters if item is not None else None
        if item is not None and language is not None:
            active = item.language_parameters.get(language, active)
        out.append({**entry, "language": language, "bank": None if item is None else {
            "item_id": item.id, "status": item.status.value,
            "parameters": active.as_dict() if active is not None else None,
            "parameter_set_id": active.id if active is not None else None}})
    return total, out


# -- runs: one item's evidence (fit and DIF plots) -----------------------------------------------

#: Ability groups of the observed-versus-expected plots (quantiles of the respondents' theta).
EVIDENCE_GROUPS = 10


def item_evidence(session: Session, run: CalibrationRun, code: str,
                  n_groups: int = EVIDENCE_GROUPS) -> dict[str, Any]:
    """Observed versus model-expected scores of one item by ability, overall and per group.

    The run's responses are gathered again (:func:`load_input`: an upload as sent, or a test's
    attempts as they stand now). Every person gets an EAP theta under the run's estimates and
    latent distribution (:func:`calibration.fit.eap_scores`); the item's respondents are split
    into ``n_groups`` groups of about equal size by theta, and in each the mean observed score
    is set beside the mean expected score ``sum_k k P_k(theta)`` (the proportion correct for
    dichotomous items). Per DIF group (when the data have groups) the observed means use the
    same ability groups, so curves that part show DIF.

    Returns
    -------
    dict
        ``item_id``, ``max_score``, ``n`` (respondents), ``bins`` (``theta``, ``n``,
        ``observed``, ``expected`` per ability group), ``groups`` (per DIF group: ``group``,
        ``bins`` in the same ability groups, None values where the group has nobody),
        ``curve`` (``theta``, ``expected`` on a grid from -4 to 4), ``entry`` (the run's result
        for the item).

    Raises
    ------
    NotFound
        The run did not calibrate ``code``.
    Conflict
        The run has no result.
    """
    from calibration.fit import eap_scores
    from cat_engine.models import category_probabilities

    if not run.result:
        raise Conflict(f"calibration run {run.id} is {run.status.value}: it has no item results")
    entries = {e["item_id"]: e for e in run.result.get("items", [])}
    if code not in entries:
        raise NotFound(f"calibration run {run.id} did not calibrate item {code!r}", "item_id")
    data = load_input(session, run).data
    kept = [c for c in data.item_ids if c in entries]
    if code not in kept:
        raise NotFound(f"item {code!r} has no responses in the data of run {run.id} now",
                       "item_id")
    if len(kept) != data.n_items:
        data = data.subset_items(kept)
    bank = ItemBank.from_records([_record(entries[c]) for c in data.item_ids])
    summary = run.result.get("summary") or {}
    latent = (float(summary.get("latent_mean", 0.0)), float(summary.get("latent_sd", 1.0)))
    theta, _se = eap_scores(data, bank, latent=latent)
    j = data.item_ids.index(code)
    answered = data.item == j
    persons = data.person[answered]
    score = data.response[answered].astype(float)
    t = theta[persons]
    scores = np.arange(int(bank.n_categories[j]), dtype=float)
    expected = category_probabilities(bank, np.full(t.size, j, dtype=np.intp), t) @ scores
    n_groups = max(1, min(n_groups, t.size))
    order = np.argsort(t, kind="stable")
    which = np.empty(t.size, dtype=np.intp)
    which[order] = np.arange(t.size) * n_groups // t.size  # equal-sized groups by theta

    def means(mask: np.ndarray) -> list[dict[str, Any]]:
        n = np.bincount(which[mask], minlength=n_groups)
        with np.errstate(invalid="ignore", divide="ignore"):
            return [{"theta": float(th), "n": int(k), "observed": float(o), "expected": float(e)}
                    for th, k, o, e in zip(
                        np.bincount(which[mask], t[mask], n_groups) / n, n,
                        np.bincount(which[mask], score[mask], n_groups) / n,
                        np.bincount(which[mask], expected[mask], n_groups) / n, strict=True)]

    groups = []
    if data.group is not None:
        labels = data.group[persons]
        for label, _n in group_sizes(data):
            mask = labels == label
            if mask.any():
                groups.append({"group": label, "bins": means(mask)})
    grid = np.linspace(-4.0, 4.0, 81)
    curve = category_probabilities(bank, np.full(grid.size, j, dtype=np.intp), grid) @ scores
    return plain({"item_id": code, "max_score": float(scores[-1]), "n": int(t.size),
                  "bins": means(np.ones(t.size, dtype=bool)), "groups": groups,
                  "curve": {"theta": grid, "expected": curve}, "entry": entries[code]})


# -- publication: what is ticked, and on which scale -----------------------------------------------


def held_back(entry: Mapping[str, Any]) -> list[str]:
    """Why an estimated item is not published unless asked for by name.

    Returns
    -------
    list of str
        ``"dif_C"`` when the item shows ETS category C DIF against any focal group, ``"misfit"``
        when an item-fit statistic flags it; empty when nothing holds it back.
    """
    reasons = []
    if any(d.get("category") == "C" for d in entry.get("dif") or []):
        reasons.append("dif_C")
    if (entry.get("fit") or {}).get("misfit"):
        reasons.append("misfit")
    return reasons


def default_selection(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """The items ticked for publishing by default: estimated, and not :func:`held_back`."""
    return [e["item_id"] for e in entries if not e["fixed"] and not held_back(e)]


def is_anchored(run: CalibrationRun) -> bool:
    """Whether the run held bank items fixed, so that its estimates are on the bank's scale.

    Online runs always hold the operational items a test delivered fixed; upload runs do when
    started with ``anchor``.
    """
    return run.kind == "online" or bool((run.settings or {}).get("anchor"))


@dataclass(frozen=True)
class ScaleReview:
    """Where a run's estimates stand against the bank's scale, before publishing.

    Attributes
    ----------
    anchored : bool
        The run held bank items fixed (:func:`is_anchored`): its estimates are on the bank's scale.
    operational : tuple of str
        Items the run *estimated* that are operational in the bank now, with active parameters.
        An unanchored run over such items estimated them on the scale of its own sample
        (theta ~ N(0, 1) in that sample), not the bank's.
    common : tuple of str
        Those of ``operational`` that linking can use: the same model and number of categories
        in the run and in the bank.
    left_out : dict
        Operational items linking cannot use, with the reason.
    links : dict
        Per linking method asked for, the :class:`calibration.linking.LinkingResult` putting the
        run's scale onto the bank's through ``common`` (bank parameters as the reference), or
        the message saying why it cannot be computed.
    """

    anchored: bool
    operational: tuple[str, ...]
    common: tuple[str, ...]
    left_out: dict[str, str]
    links: dict[str, LinkingResult | str]

    @property
    def needs_decision(self) -> bool:
        """Publishing needs linking, or an explicit confirmation to publish on the run's scale."""
        return not self.anchored and bool(self.operational)


def scale_review(session: Session, run: CalibrationRun,
                 methods: Sequence[str] = ("stocking-lord",)) -> ScaleReview:
    """Compare a succeeded run's scale with the bank's, and link it through the common items.

    The common items are the estimated items that are operational in the bank with active
    parameters of the same model; the bank's active parameters are the reference, so a linked
    estimate is ``a / A``, ``A b + B`` (thresholds likewise) with ``theta_bank = A theta_run + B``.
    Nothing is linked for an anchored run (it is on the bank's scale already).
    """
    entries = [e for e in (run.result or {}).get("items", []) if not e["fixed"]]
    bank = _items_by_code(session, [e["item_id"] for e in entries])
    operational, common, left_out = [], [], {}
    for entry in entries:
        item = bank.get(entry["item_id"])
        if item is None or item.status != ItemStatus.OPERATIONAL:
            continue
        active = item.active_parameters
        if active is None:
            continue
        code = entry["item_id"]
        operational.append(code)
        ours, theirs = entry["parameters"], active.as_dict()
        if ours["model"] != theirs["model"]:
            left_out[code] = (f"{ours['model']} in this run but {theirs['model']} in the bank")
        elif len(ours.get("thresholds") or []) != len(theirs.get("thresholds") or []):
            left_out[code] = "a different number of categories in this run and in the bank"
        else:
            common.append(code)
    links: dict[str, LinkingResult | str] = {}
    anchored = is_anchored(run)
    if not anchored and operational:
        by_code = {e["item_id"]: e for e in entries}
        new = ItemBank.from_records([_record(by_code[c]) for c in common]) if common else None
        reference = anchor_bank([bank[c] for c in common]) if common else None
        for method in methods:
            if method not in LINKING_METHODS:
                raise Invalid(f"linking must be one of {', '.join(LINKING_METHODS)}, not "
                              f"{method!r}", "linking")
            if len(common) < 2:
                links[method] = (f"linking needs at least 2 common items (operational items "
                                 f"estimated with the bank's model), this run has {len(common)}")
                continue
            try:
                links[method] = link(new, reference, method, common=common)
            except CalibrationError as error:
                links[method] = str(error)
    return ScaleReview(anchored=anchored, operational=tuple(operational), common=tuple(common),
                       left_out=left_out, links=links)


def _record(entry: Mapping[str, Any]) -> dict[str, Any]:
    values = {k: v for k, v in entry["parameters"].items() if v is not None}
    return {"item_id": entry["item_id"], **values}


def linked_entries(entries: Sequence[Mapping[str, Any]],
                   result: LinkingResult) -> list[dict[str, Any]]:
    """Estimated items' ``parameters`` and ``se`` moved onto the bank's scale by ``result``.

    ``a / A``, ``A b + B``, thresholds ``A t + B``, ``c`` and ``d`` unchanged, for all the
    items at once (:meth:`calibration.linking.LinkingResult.transform`, which also turns Rasch
    and PCM items into 1PL and GPCM when ``A != 1``); standard errors ``se_a / A``,
    ``A se_b``, ``A se_t`` (the linking constants taken as known).
    """
    if not entries:
        return []
    records = result.transform(ItemBank.from_records([_record(e) for e in entries])).to_records()
    A = result.A
    out = []
    for entry, record in zip(entries, records, strict=True):
        polytomous = "thresholds" in record
        parameters = {"model": record["model"], "a": record["a"],
                      "b": None if polytomous else record["b"],
                      "c": None if polytomous else record["c"],
                      "d": None if polytomous else record["d"],
                      "thresholds": record["thresholds"] if polytomous else None}
        se = dict(entry["se"])
        if se.get("a") is not None:
            se["a"] = se["a"] / A
        if se.get("b") is not None:
            se["b"] = se["b"] * A
        if se.get("thresholds"):
            se["thresholds"] = [None if v is None else v * A for v in se["thresholds"]]
        out.append({"parameters": plain(parameters), "se": se})
    return out


def linked_entry(entry: Mapping[str, Any], result: LinkingResult) -> dict[str, Any]:
    """One item's :func:`linked_entries`."""
    return linked_entries([entry], result)[0]


def link_summary(result: LinkingResult) -> dict[str, Any]:
    """A linking result as plain JSON (for provenance and the API)."""
    return plain({"method": result.method, "A": result.A, "B": result.B,
                  "common_items": list(result.common_items), "criterion": result.criterion})


def _unlinked_refusal(run: CalibrationRun, review: ScaleReview) -> Invalid:
    n = len(review.operational)
    return Invalid(
        f"calibration run {run.id} was not anchored, so its estimates are on the scale of its own "
        f"sample, not the bank's; {n} of the items it estimated "
        f"({_names(review.operational)}) are operational. Publishing them as they are would "
        "shift the bank's scale under every test using them. Put the estimates on the bank's "
        f"scale first (linking: one of {', '.join(LINKING_METHODS)}, through the common "
        "operational items), or set confirm_unlinked to publish them on the run's own scale",
        "linking")


# -- publication ---------------------------------------------------------------------------------


def publish_run(
    session: Session,
    run_id: int,
    *,
    items: Sequence[str] | None = None,
    promote: bool = False,
    user_id: int | None = None,
    linking: str | None = None,
    confirm_unlinked: bool = False,
) -> dict[str, Any]:
    """Make a succeeded run's estimates the bank's active parameters; the old sets are kept.

    Every (selected) estimated item the bank has gets a new active parameter set with source
    ``calibration``, the run's id, its sample size and provenance (model, run, settings, dates,
    standard errors). Items not in the bank, and anchors (whose parameters were held fixed), are
    skipped and listed. ``promote`` moves pretest items to operational, recording the run as the
    reason. The run becomes ``published``.

    Without ``items``, the :func:`default_selection` is published: items with category C DIF or
    flagged for misfit are skipped (and listed, with the reason) unless named in ``items``.

    An unanchored run that estimated operational items (:attr:`ScaleReview.needs_decision`) is
    on its own sample's scale: it is published only with ``linking`` (a method of
    :mod:`calibration.linking`: the estimates are put on the bank's scale through the common
    operational items first, and the constants are kept in each set's provenance) or with
    ``confirm_unlinked`` (published on the run's own scale, as asked).

    Raises
    ------
    Conflict
        The run is not ``succeeded`` (queued, running, failed or published already).
    Invalid
        ``items`` names codes the run did not calibrate; an unanchored run over operational items
        without ``linking`` or ``confirm_unlinked``; ``linking`` for an anchored run, or linking
        that cannot be computed (the message says why).
    """
    run = get_run(session, run_id, lock=True)
    if run.status != RunStatus.SUCCEEDED:
        raise Conflict(f"calibration run {run.id} is {run.status.value}; only a succeeded run "
                       "can be published", "status")
    entries = {e["item_id"]: e for e in run.result.get("items", [])}
    if items is not None:
        chosen = list(dict.fromkeys(items))
        missing = [c for c in chosen if c not in entries]
        if missing:
            raise Invalid(f"items: {_names(repr(c) for c in missing)} not calibrated by run "
                          f"{run.id}", "items")
    else:
        chosen = list(entries)
    review = scale_review(session, run, methods=(linking,) if linking is not None else ())
    linked = None
    if linking is not None:
        if review.anchored:
            raise Invalid(f"linking: calibration run {run.id} was anchored on the bank, so its "
                          "estimates are on the bank's scale already", "linking")
        if not review.operational:
            raise Invalid(f"linking: calibration run {run.id} estimated no operational item of "
                          "the bank, so there are no common items to link through", "linking")
        linked = review.links[linking]
        if isinstance(linked, str):
            raise Invalid(f"linking ({linking}): {linked}", "linking")
    elif review.needs_decision and not confirm_unlinked:
        raise _unlinked_refusal(run, review)
    bank = _items_by_code(session, [split_column(c)[0] for c in chosen])
    now = utcnow()
    published, skipped, promoted = [], [], []
    default = set(default_selection(entries.values())) if items is None else None
    scale = ("anchored" if review.anchored else "linked" if linked is not None
             else "unlinked")
    moved = {}
    if linked is not None:
        movable = [entries[c] for c in chosen if not entries[c]["fixed"]]
        moved = {e["item_id"]: m for e, m in zip(movable, linked_entries(movable, linked),
                                                  strict=True)}
    for code in chosen:
        entry = entries[code]
        if default is not None and not entry["fixed"] and code not in default:
            why = {"dif_C": "DIF category C", "misfit": "flagged for misfit"}
            skipped.append({"item_id": code, "reason": " and ".join(
                why[r] for r in held_back(entry)) + ": not published unless named in items"})
            continue
        item_code, language = split_column(code)
        item = bank.get(item_code)
        if item is None:
            skipped.append({"item_id": code, "reason": "not in the bank"})
            continue
        if entry["fixed"]:
            skipped.append({"item_id": code, "reason": "held fixed (anchor): its parameters "
                                                       "were not estimated"})
            continue
        provenance = {
            "calibration_run_id": run.id, "kind": run.kind, "model": entry["model"],
            "upload_id": run.upload_id, "test_id": run.test_id,
            "settings": {**(run.settings or {}), **run.result.get("settings", {})},
            "se": entry["se"], "fit_flags": entry["flags"],
            "estimated_at": _iso(run.finished_at), "published_at": _iso(now),
            "published_by": user_id, "scale": scale,
        }
        parameters = entry["parameters"]
        if linked is not None:
            parameters = moved[code]["parameters"]
            provenance |= {"se": moved[code]["se"], "linking": link_summary(linked),
                           "estimated": {"parameters": entry["parameters"], "se": entry["se"]}}
        parameter_set = add_parameter_set(
            session, item, parameters, source="calibration", provenance=provenance,
            sample_size=entry["n"], calibration_run_id=run.id, user_id=user_id,
            language=language)
        published.append({"item_id": code, "parameter_set_id": parameter_set.id})
        if promote and item.status == ItemStatus.PRETEST and language is None:
            change_status(session, item, ItemStatus.OPERATIONAL, user_id=user_id,
                          reason=f"promoted on publishing calibration run {run.id}")
            promoted.append(code)
    run.status = RunStatus.PUBLISHED
    run.published_by = user_id
    run.published_at = now
    run.message = (f"published: {len(published)} parameter set(s), {len(skipped)} item(s) "
                   f"skipped, {len(promoted)} promoted")
    if linked is not None:
        run.message += (f"; linked onto the bank's scale by {linked.method} through "
                        f"{len(linked.common_items)} common items (A = {linked.A:.4f}, "
                        f"B = {linked.B:.4f})")
    elif scale == "unlinked" and review.needs_decision:
        run.message += "; on the run's own scale (not linked), as confirmed"
    session.flush()
    return {"run": run, "published": published, "skipped": skipped, "promoted": promoted,
            "linking": link_summary(linked) if linked is not None else None}


# -- helpers -------------------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    moment = as_utc(moment)
    return moment.isoformat() if moment is not None else None


def _names(things: Iterable[str]) -> str:
    things = list(things)
    shown = ", ".join(things[:_SHOWN])
    return shown + (f" and {len(things) - _SHOWN} more" if len(things) > _SHOWN else "")
