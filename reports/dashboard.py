"""The class dashboard: a class's mastery reports side by side, as data.

Everything here is an aggregate of the students' reports (:func:`reports.report.student_report`)
and of stored records (teachers' decisions, accommodations, calibration runs): the dashboard
computes no estimate of its own. The pages, the JSON API and the class pack PDF lay the dict out.

Parts (see :func:`class_dashboard` for the shape):

- **grid**: students by skills; each cell the probability of mastery, the decision and who made
  it (the model or a teacher), the estimate and its 95% interval.
- **flagged**: per student, the flags of each skill that concern the student's evidence (rapid
  guesses, person misfit, rater disagreement, too little evidence) with what drives them.
- **metrics**, per skill:

  - *gain*: the mean over students of (the estimate now) minus (the estimate after the student's
    first test or defense with evidence of the skill), for theta and for P(mastery). "After the
    first test or defense" is the report as it stood at the last moment of evidence (any skill)
    of the attempt or defense that holds the skill's earliest piece of evidence. Students whose
    evidence of the skill comes from that one attempt or defense alone have no later evidence
    and are left out of the mean (counted in ``n_single_source``).
  - *time to mastery*, for students whose decision is "mastered" now: days from the skill's
    earliest piece of evidence to the first moment the skill was mastered, by a teacher's
    decision (its ``decided_at``) or by the model's suggestion (the end of the first attempt or
    defense after which the report suggested "mastered"; after the last one, the report now
    stands for it: no evidence came since). Median and mean over those students; students not
    mastered now are counted in ``n_not_yet``.
  - *share mastered*: the share of the students with evidence of the skill whose decision now is
    "mastered".

- **fairness**: for each group variable the data hold (the time accommodation, ``standard``
  when a student has none; and the group variables of students whose demographics consent is
  given, ``student_groups``; a student without a value is in no group of it), per group and
  skill: n,
  the rate of each decision and the mean theta with a 95% interval (Student's t over the
  students' estimates). Groups of fewer than :data:`MIN_GROUP` students are marked
  ``too_few`` and carry no figures at all (not even their n). And the DIF results stored with
  the calibration runs that produced the active parameters of the items behind each skill.

The pure part (:func:`aggregate` and its helpers) works on plain report dicts and is tested
alone; :func:`class_dashboard` gathers them from the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from scipy import stats
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from evidence.classes import roster_query, visible_class
from item_bank.models import CalibrationRun, Item
from reports import report as report_module
from reports.models import DECISIONS, MasteryDecision
from storage.accounts import Accommodation, SchoolClass, TimeAccommodation, User
from storage.rights import Purpose, StudentGroup, consenting_query

#: Groups with fewer students than this are shown as "too few to compare", with no figures.
MIN_GROUP = 5
#: The flags that concern a student's evidence (the others, such as ``no_cut_score``, concern
#: the test or rubric setup and are left out of "who is flagged").
STUDENT_FLAGS: tuple[str, ...] = ("rapid_guess", "person_misfit", "rater_disagreement",
                                  "too_little_evidence")
#: The group variables the data hold, in the order shown.
GROUP_VARIABLES: tuple[str, ...] = ("time_accommodation",)
#: DIF categories that flag an item (ETS: B moderate, C large).
DIF_FLAGGED = ("B", "C")

Report = Mapping[str, Any]
ReportAt = Callable[[datetime], Report]


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _at(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _natural(text: str) -> tuple:
    """A sort key that orders numbers inside names by value: Student2 before Student10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.casefold())
                 for part in re.split(r"(\d+)", text) if part)


def _person(report: Report) -> dict[str, Any]:
    student = report.get("student") or {}
    return {"id": report["student_id"], "name": student.get("name") or str(report["student_id"])}


def _skills(report: Report) -> dict[str, Mapping[str, Any]]:
    return {s["skill"]: s for s in report.get("skills") or ()}


# -- grid ----------------------------------------------------------------------------------------


def grid(reports: Sequence[Report]) -> tuple[list[str], list[dict[str, Any]]]:
    """The students-by-skills grid.

    Returns
    -------
    skills : list of str
        The union of the students' skills, sorted: the columns.
    rows : list of dict
        One per report, in the order given: ``student``, ``status`` and ``cells`` (one per
        column: ``None`` when the student has no evidence of the skill, else ``probability``,
        ``theta``, ``se``, ``interval95``, ``cut_score``, ``decision``, ``suggested_decision``,
        ``decided_by`` and ``flags``, the codes of the skill's student flags).
    """
    skills = sorted({s["skill"] for r in reports for s in r.get("skills") or ()})
    rows = []
    for report in reports:
        own = _skills(report)
        cells = []
        for skill in skills:
            entry = own.get(skill)
            cells.append(None if entry is None else {
                "skill": skill,
                "probability": entry.get("mastery_probability"),
                "theta": entry.get("theta"), "se": entry.get("se"),
                "interval95": entry.get("interval95"), "cut_score": entry.get("cut_score"),
                "decision": entry.get("decision"),
                "suggested_decision": entry.get("suggested_decision"),
                "decided_by": entry.get("decided_by"),
                "flags": [f["code"] for f in entry.get("flags") or ()
                          if f["code"] in STUDENT_FLAGS],
            })
        rows.append({"student": _person(report), "status": report.get("status"),
                     "cells": cells})
    return skills, rows


# -- flagged -------------------------------------------------------------------------------------


def _drivers(flag: Mapping[str, Any], entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What drives a flag, in words a renderer can lay out: the pieces or sittings behind it."""
    evidence = entry.get("evidence") or []
    code = flag["code"]
    if code == "rapid_guess":
        rows = [evidence[i] for i in flag.get("evidence") or () if 0 <= i < len(evidence)]
        return [{"kind": "answer", "test_name": e.get("test_name"),
                 "source_id": e.get("source_id"), "attempt_id": e.get("attempt_id"),
                 "at": e.get("at")} for e in rows]
    if code == "person_misfit":
        names = {e.get("attempt_id"): e.get("test_name") for e in evidence
                 if e.get("kind") == "item"}
        return [{"kind": "attempt", "attempt_id": a, "test_name": names.get(a)}
                for a in flag.get("attempt_ids") or ()]
    if code == "rater_disagreement":
        return [{"kind": "defense", "defense_id": d, "criteria": list(flag.get("criteria") or ())}
                for d in flag.get("defense_ids") or ()]
    if code == "too_little_evidence":
        return [{"kind": "precision", "se": flag.get("se"), "limit": flag.get("limit")}]
    return []


def flagged(reports: Sequence[Report]) -> list[dict[str, Any]]:
    """Who is flagged and why: per student with at least one student flag, the flagged skills,
    each flag as the report has it plus ``drivers`` (see :func:`_drivers`)."""
    out = []
    for report in reports:
        skills = []
        for entry in report.get("skills") or ():
            flags = [{**f, "drivers": _drivers(f, entry)} for f in entry.get("flags") or ()
                     if f["code"] in STUDENT_FLAGS]
            if flags:
                skills.append({"skill": entry["skill"], "decision": entry.get("decision"),
                               "flags": flags})
        if skills:
            out.append({"student": _person(report), "skills": skills})
    return out


def flag_counts(reports: Sequence[Report], skills: Sequence[str]) -> list[dict[str, Any]]:
    """Per skill, how many students carry each student flag."""
    counts = {s: dict.fromkeys(STUDENT_FLAGS, 0) for s in skills}
    for report in reports:
        for entry in report.get("skills") or ():
            for code in {f["code"] for f in entry.get("flags") or ()} & set(STUDENT_FLAGS):
                counts[entry["skill"]][code] += 1
    return [{"skill": s, "counts": counts[s]} for s in skills]


# -- the skill's history: first estimate and time to mastery -------------------------------------


def _source(piece: Mapping[str, Any]) -> tuple[str, Any]:
    if piece.get("kind") == "rubric":
        return ("defense", piece.get("defense_id"))
    return ("attempt", piece.get("attempt_id"))


def timeline(report: Report, report_at: ReportAt,
             teacher_mastered: Mapping[str, datetime] | None = None) -> dict[str, dict[str, Any]]:
    """Per skill of one student: the estimate after their first attempt or defense with evidence
    of it, and when the skill was first mastered (see the module's docstring for both).

    Parameters
    ----------
    report : dict
        The student's report now (staff view: evidence rows carry ``attempt_id``/``defense_id``).
    report_at : callable
        ``report_at(moment)`` is the student's report as of ``moment`` (evidence up to then);
        called once per distinct moment needed (cache it: several skills share moments).
    teacher_mastered : dict, optional
        Skill -> the first ``decided_at`` of a teacher's decision "mastered".

    Returns
    -------
    dict
        Skill -> ``first_at`` (the earliest piece of evidence), ``first`` (the skill entry of the
        report after the first attempt or defense; ``None`` when that is the only one),
        ``n_sources``, ``mastered_at`` (``None`` unless the decision now is "mastered") and
        ``days_to_mastery``.
    """
    teacher_mastered = teacher_mastered or {}
    pieces = [p for s in report.get("skills") or () for p in s.get("evidence") or ()]
    ends: dict[tuple[str, Any], datetime] = {}
    for piece in pieces:
        key, moment = _source(piece), _at(piece["at"])
        ends[key] = max(ends.get(key, moment), moment)
    out: dict[str, dict[str, Any]] = {}
    for entry in report.get("skills") or ():
        evidence = entry.get("evidence") or []
        if not evidence:
            continue
        skill = entry["skill"]
        first_at = min(_at(p["at"]) for p in evidence)
        checkpoints = sorted({ends[_source(p)] for p in evidence})
        first = _skills(report_at(checkpoints[0])).get(skill) if len(checkpoints) > 1 else None
        mastered_at = None
        if entry.get("decision") == "mastered":
            by_teacher = teacher_mastered.get(skill)
            for k, moment in enumerate(checkpoints):
                if by_teacher is not None and moment >= by_teacher:
                    break
                # after the last attempt or defense, the report now (no newer evidence)
                then = entry if k == len(checkpoints) - 1 else \
                    _skills(report_at(moment)).get(skill)
                if then is not None and then.get("suggested_decision") == "mastered":
                    mastered_at = moment
                    break
            if mastered_at is None:
                mastered_at = by_teacher
        out[skill] = {
            "first_at": first_at, "first": first, "n_sources": len(checkpoints),
            "mastered_at": mastered_at,
            "days_to_mastery": None if mastered_at is None else
            max((mastered_at - first_at).total_seconds(), 0.0) / 86400.0,
        }
    return out


# -- metrics -------------------------------------------------------------------------------------


def _mean(values: Sequence[float]) -> float | None:
    return _r(np.mean(values)) if len(values) else None


def metrics(reports: Sequence[Report], timelines: Mapping[int, Mapping[str, Mapping[str, Any]]],
            skills: Sequence[str]) -> list[dict[str, Any]]:
    """Success metrics per skill: gain, time to mastery and share mastered (module docstring).

    Parameters
    ----------
    reports : list of dict
        The reports now.
    timelines : dict
        Student id -> :func:`timeline` of their report.
    skills : list of str

    Returns
    -------
    list of dict
        Per skill: ``n_students`` (with evidence of it); ``gain`` {``n``, ``theta`` (mean change
        in logits), ``n_probability``, ``probability`` (mean change in P(mastery), over students
        with a probability both times), ``n_single_source``}; ``time_to_mastery`` {``n``,
        ``median_days``, ``mean_days``, ``n_not_yet``}; ``share_mastered`` {``n``,
        ``mastered``, ``share``}.
    """
    out = []
    for skill in skills:
        d_theta: list[float] = []
        d_prob: list[float] = []
        days: list[float] = []
        single = mastered = n = 0
        for report in reports:
            entry = _skills(report).get(skill)
            if entry is None or not entry.get("evidence"):
                continue
            n += 1
            mastered += entry.get("decision") == "mastered"
            line = timelines.get(report["student_id"], {}).get(skill)
            if line is None:
                continue
            first = line["first"]
            if first is None:
                single += 1
            else:
                d_theta.append(entry["theta"] - first["theta"])
                if None not in (entry.get("mastery_probability"),
                                first.get("mastery_probability")):
                    d_prob.append(entry["mastery_probability"] - first["mastery_probability"])
            if line["days_to_mastery"] is not None:
                days.append(line["days_to_mastery"])
        out.append({
            "skill": skill, "n_students": n,
            "gain": {"n": len(d_theta), "theta": _mean(d_theta), "n_probability": len(d_prob),
                     "probability": _mean(d_prob), "n_single_source": single},
            "time_to_mastery": {"n": len(days),
                                "median_days": _r(np.median(days), 1) if days else None,
                                "mean_days": _r(np.mean(days), 1) if days else None,
                                "n_not_yet": n - mastered},
            "share_mastered": {"n": n, "mastered": mastered,
                               "share": _r(mastered / n) if n else None},
        })
    return out


# -- fairness ------------------------------------------------------------------------------------


def _theta_summary(values: Sequence[float]) -> dict[str, Any]:
    """The mean of ``values`` with a 95% interval (Student's t, n - 1 degrees of freedom)."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if x.size < 2:
        return {"mean": _r(mean), "interval95": None}
    half = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return {"mean": _r(mean), "interval95": [_r(mean - half), _r(mean + half)]}


def _group_figures(members: Sequence[Report], skills: Sequence[str]) -> dict[str, Any]:
    overall = [r["overall"]["theta"] for r in members if r.get("overall")]
    rows = []
    for skill in skills:
        entries = [e for r in members if (e := _skills(r).get(skill)) is not None]
        if not entries:
            rows.append({"skill": skill, "n": 0, "rates": None, "theta": None})
            continue
        decided = [e.get("decision") for e in entries]
        rows.append({
            "skill": skill, "n": len(entries),
            "rates": {d: _r(decided.count(d) / len(entries)) for d in DECISIONS},
            "theta": _theta_summary([e["theta"] for e in entries]),
        })
    return {"overall": {"n": len(overall),
                        "theta": _theta_summary(overall) if overall else None},
            "skills": rows}


def fairness(reports: Sequence[Report], groups: Mapping[int, Mapping[str, str]],
             skills: Sequence[str], *, min_group: int = MIN_GROUP) -> list[dict[str, Any]]:
    """Per group variable and group: n, decision rates and mean theta per skill (and overall).

    Parameters
    ----------
    reports : list of dict
    groups : dict
        Student id -> {variable: group label}.
    skills : list of str
    min_group : int
        Groups with fewer students (with evidence) than this are ``too_few``: no figures, no n.

    Returns
    -------
    list of dict
        Per variable: ``variable`` and ``groups``, each ``{"group", "too_few", "n",
        "overall", "skills"}`` (``n``, ``overall`` and ``skills`` are ``None`` when too few).
    """
    present = {v for g in groups.values() for v in g}
    variables = ([v for v in GROUP_VARIABLES if v in present]
                 + sorted(present - set(GROUP_VARIABLES)))
    out = []
    for variable in variables:
        members: dict[str, list[Report]] = {}
        for report in reports:
            if report.get("status") != "ok":
                continue
            label = groups.get(report["student_id"], {}).get(variable)
            if label is not None:
                members.setdefault(label, []).append(report)
        rows = []
        for label in sorted(members, key=lambda g: (-len(members[g]), g)):
            few = len(members[label]) < min_group
            figures = None if few else _group_figures(members[label], skills)
            rows.append({"group": label, "too_few": few,
                         "n": None if few else len(members[label]),
                         "overall": None if few else figures["overall"],
                         "skills": None if few else figures["skills"]})
        out.append({"variable": variable, "groups": rows})
    return out


def dif_flags(items_by_skill: Mapping[str, Iterable[int]], items: Mapping[int, Mapping[str, Any]],
              skills: Sequence[str]) -> list[dict[str, Any]]:
    """The stored DIF results of the items behind each skill.

    Parameters
    ----------
    items_by_skill : dict
        Skill -> ids of the items answered in the reports' evidence.
    items : dict
        Item id -> ``{"code", "run_id", "dif"}``: ``run_id`` the calibration run that produced
        the item's active parameters (``None`` if none did: imported or generated parameters),
        ``dif`` the run's DIF rows of the item (``None`` when the run computed no DIF: its data
        had no groups).

    Returns
    -------
    list of dict
        Per skill: ``n_items``, ``n_checked`` (items with DIF computed), ``flags`` (each DIF row
        in category B or C, with the item's ``item_id``, ``code`` and ``run_id``).
    """
    out = []
    for skill in skills:
        ids = sorted(set(items_by_skill.get(skill, ())))
        checked = [i for i in ids if items.get(i, {}).get("dif") is not None]
        flags = [{"item_id": i, "code": items[i]["code"], "run_id": items[i]["run_id"], **row}
                 for i in checked for row in items[i]["dif"]
                 if row.get("category") in DIF_FLAGGED]
        out.append({"skill": skill, "n_items": len(ids), "n_checked": len(checked),
                    "flags": flags})
    return out


def aggregate(reports: Sequence[Report], *,
              timelines: Mapping[int, Mapping[str, Mapping[str, Any]]],
              groups: Mapping[int, Mapping[str, str]],
              items_dif: Mapping[int, Mapping[str, Any]],
              min_group: int = MIN_GROUP) -> dict[str, Any]:
    """The dashboard's figures from the reports and stored data (no database here).

    Returns
    -------
    dict
        ``skills``, ``grid``, ``flagged``, ``flag_counts``, ``metrics``, ``fairness`` and
        ``dif`` (see :func:`class_dashboard`).
    """
    skills, rows = grid(reports)
    answered: dict[str, set[int]] = {}
    for report in reports:
        for entry in report.get("skills") or ():
            answered.setdefault(entry["skill"], set()).update(
                p["item_id"] for p in entry.get("evidence") or ()
                if p.get("kind") == "item" and p.get("item_id") is not None)
    return {
        "skills": skills,
        "grid": rows,
        "flagged": flagged(reports),
        "flag_counts": flag_counts(reports, skills),
        "metrics": metrics(reports, timelines, skills),
        "fairness": fairness(reports, groups, skills, min_group=min_group),
        "dif": dif_flags(answered, items_dif, skills),
    }


# -- from the database ---------------------------------------------------------------------------


def _accommodation_groups(session: Session, student_ids: Sequence[int]) -> dict[int, dict]:
    """Student id -> {"time_accommodation": standard | extended | none, and the student's
    stored group variables (``student_groups``) when their demographics consent is given}."""
    stored = dict(session.execute(select(Accommodation.user_id, Accommodation.time).where(
        Accommodation.user_id.in_(student_ids))).all())
    groups = {sid: {"time_accommodation": TimeAccommodation(
        stored.get(sid, TimeAccommodation.STANDARD)).value} for sid in student_ids}
    consenting = consenting_query(Purpose.DEMOGRAPHICS)
    for sid, variable, value in session.execute(
            select(StudentGroup.student_id, StudentGroup.variable, StudentGroup.value).where(
                StudentGroup.student_id.in_(student_ids),
                StudentGroup.student_id.in_(consenting))):
        if variable != "time_accommodation":
            groups[sid][variable] = value
    return groups


def _teacher_mastered(session: Session, student_ids: Sequence[int]) -> dict[int, dict]:
    """Student id -> skill -> the first time a teacher decided "mastered"."""
    rows = session.execute(
        select(MasteryDecision.student_id, MasteryDecision.skill, MasteryDecision.decided_at)
        .where(MasteryDecision.student_id.in_(student_ids),
               MasteryDecision.decision == "mastered")
        .order_by(MasteryDecision.decided_at.desc()))
    out: dict[int, dict[str, datetime]] = {}
    for student_id, skill, decided_at in rows:  # newest first: the oldest is written last
        moment = decided_at if decided_at.tzinfo else decided_at.replace(tzinfo=UTC)
        out.setdefault(student_id, {})[skill] = moment
    return out


def _items_dif(session: Session, item_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Item id -> ``{"code", "run_id", "dif"}`` from the run behind its active parameters."""
    items = session.scalars(select(Item).options(selectinload(Item.parameter_sets))
                            .where(Item.id.in_(set(item_ids)))).all()
    run_of = {i.id: (i.active_parameters.calibration_run_id if i.active_parameters else None)
              for i in items}
    runs = {r.id: r for r in session.scalars(select(CalibrationRun).where(
        CalibrationRun.id.in_({r for r in run_of.values() if r is not None})))}
    out = {}
    for item in items:
        run = runs.get(run_of[item.id])
        result = (run.result or {}) if run is not None else {}
        dif = None
        if result.get("dif") is not None:
            entry = next((e for e in result.get("items") or () if e.get("item_id") == item.code),
                         None)
            dif = list(entry.get("dif") or ()) if entry is not None else None
        out[item.id] = {"code": item.code, "run_id": run.id if run is not None else None,
                        "dif": dif}
    return out


def roster_ids(session: Session, klass: SchoolClass) -> list[int]:
    """The ids of the students enrolled in ``klass``, in the dashboard's order: by name, numbers
    inside names by value (Student2 before Student10)."""
    students = session.scalars(roster_query(klass))
    return [s.id for s in sorted(students, key=lambda s: (_natural(s.display_name or s.username),
                                                          s.id))]


def class_dashboard(session: Session, viewer: User, class_id: int, *,
                    now: datetime | None = None,
                    reports: Mapping[int, Report] | None = None) -> dict[str, Any]:
    """The dashboard of class ``class_id`` for its teacher or an administrator.

    Each enrolled student's report comes from :func:`reports.report.student_report` as
    ``viewer`` reads it; for the metrics, the reports as of earlier moments too (after each
    student's first attempt or defense per skill, and, for skills mastered now, after each
    attempt or defense until the first suggestion "mastered"), at most one per distinct moment.

    Parameters
    ----------
    now : datetime, optional
        The dashboard as of this moment (default: now).
    reports : dict, optional
        Student id -> their report now, when the caller has made them already for the same
        ``viewer`` and ``now`` (the class pack renders them too): they are used, not remade.

    Returns
    -------
    dict
        ``class`` {id, name}, ``generated_at``, ``n_students``, ``model`` (the report settings
        stated, from the first report), ``min_group``, ``skills`` (the grid's columns), ``grid``
        (one row per student: ``student``, ``status``, ``cells``), ``flagged``, ``flag_counts``,
        ``metrics``, ``fairness`` (per group variable) and ``dif`` (per skill). See
        :func:`aggregate` and the functions it calls for each part.

    Raises
    ------
    NotFound
        No such class, or not the viewer's (another teacher's; students and assessors too).
    """
    student_report = report_module.student_report
    now = now or datetime.now(UTC)
    klass: SchoolClass = visible_class(session, viewer, class_id)
    ids = roster_ids(session, klass)
    given = reports or {}
    current = [given[sid] if sid in given else student_report(session, viewer, sid, now=now)
               for sid in ids]
    decided = _teacher_mastered(session, ids)
    timelines = {}
    for sid, report in zip(ids, current, strict=True):
        cache: dict[datetime, Report] = {}

        def report_at(moment: datetime, sid: int = sid, cache: dict = cache) -> Report:
            if moment not in cache:
                cache[moment] = student_report(session, viewer, sid, now=min(moment, now),
                                               with_next_steps=False)
            return cache[moment]

        timelines[sid] = timeline(report, report_at, decided.get(sid))
    answered = {p["item_id"] for r in current for s in r.get("skills") or ()
                for p in s.get("evidence") or () if p.get("kind") == "item" and p.get("item_id")}
    figures = aggregate(current, timelines=timelines,
                        groups=_accommodation_groups(session, ids),
                        items_dif=_items_dif(session, answered))
    return {
        "class": {"id": klass.id, "name": klass.name},
        "generated_at": now.isoformat(),
        "n_students": len(ids),
        "model": next((r.get("model") for r in current if r.get("model")), None),
        "min_group": MIN_GROUP,
        **figures,
    }
