"""A student's mastery report as data: per skill, how sure we are, why, what looks odd, what next.

:func:`student_report` gathers the student's evidence that the viewer may read (answers of every
attempt, through the parameters of the bank snapshot the attempt was given from; rubric scores
through their published calibration and rater severity), runs the mastery model
(:mod:`reports.mastery`) and lays out the result with every piece of evidence, its weight and its
shift, the flags of the evidence store, the teachers' decisions and the students' appeals, and the
next steps. The JSON API, the pages and the PDF render this dict; none of them computes.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.indicators import attempts_indicators
from evidence.models import Attempt, AttemptStatus, Defense, Response
from evidence.rubric_calibration import rubric_evidence
from evidence.scope import StudentScope, student_scope
from item_bank.models import AdaptiveTest
from item_bank.services import delivery_bank
from reports import decisions as decision_records
from reports import next_steps as suggestions
from reports.mastery import (
    Z95,
    Block,
    Pieces,
    SkillPosterior,
    decay_weights,
    pieces,
    student_posterior,
    suggest,
)
from reports.population import spreads
from storage import as_utc, utcnow
from storage.accounts import Role, User
from storage.errors import Forbidden, NotFound

#: Item-evidence fields a student does not see of their own report: which answer was right
#: tells them the keys of operational items (see docs/decisions.md).
HIDDEN_FROM_STUDENTS = ("source_id", "item_id", "response", "label", "shift", "rapid_guess")
#: Flags for staff only, as the evidence store's indicators are.
STAFF_FLAGS = ("rapid_guess", "person_misfit")


@dataclass(frozen=True)
class ReportSettings:
    """The stated settings of the mastery model (every report carries them).

    Attributes
    ----------
    half_life_days : float
        Evidence this many days old counts half (``0.5 ** (age / half_life)``).
    se_limit : float
        A skill whose se is above this is flagged ``too_little_evidence``.
    mastered_at, not_mastered_at : float
        P(mastery) at or above / at or below which the model suggests mastered / not mastered.
    mu0, sd0 : float
        The population prior of the general ability (the bank's scale).
    default_tau : float
        The between-skill spread used while fewer than ``min_students`` students' results exist.
    min_students : int
    """

    half_life_days: float = 180.0
    se_limit: float = 0.5
    mastered_at: float = 0.9
    not_mastered_at: float = 0.1
    mu0: float = 0.0
    sd0: float = 1.0
    default_tau: float = 0.5
    min_students: int = 30


#: Environment variables that override :class:`ReportSettings` (name -> field).
SETTINGS_ENV = {
    "REPORT_HALF_LIFE_DAYS": "half_life_days",
    "REPORT_SE_LIMIT": "se_limit",
    "REPORT_MASTERED_AT": "mastered_at",
    "REPORT_NOT_MASTERED_AT": "not_mastered_at",
}


def report_settings(environ: dict[str, str] | None = None) -> ReportSettings:
    """The report settings: the defaults, overridden by :data:`SETTINGS_ENV` variables.

    Raises
    ------
    ValueError
        A variable that is not a positive number (or a probability out of order), naming it.
    """
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, float] = {}
    for name, key in SETTINGS_ENV.items():
        if name not in environ:
            continue
        try:
            value = float(environ[name])
        except ValueError:
            raise ValueError(f"{name} must be a number, not {environ[name]!r}") from None
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive number, not {environ[name]!r}")
        values[key] = value
    settings = ReportSettings(**values)
    if not 0 < settings.not_mastered_at < settings.mastered_at < 1:
        raise ValueError("REPORT_NOT_MASTERED_AT must be below REPORT_MASTERED_AT, both "
                         "between 0 and 1")
    return settings


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else as_utc(moment).isoformat()


def _age_days(now: datetime, moments: Iterable[datetime]) -> np.ndarray:
    return np.array([(now - as_utc(m)).total_seconds() / 86400.0 for m in moments], dtype=float)


# -- gathering the evidence ----------------------------------------------------------------------


@dataclass
class _Skill:
    blocks: list[Block]
    rows: list[dict[str, Any]]


def _answers(session: Session, scope: StudentScope, now: datetime, settings: ReportSettings,
             skills: dict[str, _Skill]) -> tuple[list[Attempt], dict[int, bool]]:
    """Add the scored answers of the student's attempts (up to ``now``) to ``skills``."""
    attempts = list(session.scalars(
        select(Attempt).where(scope.attempts(), Attempt.snapshot_id.is_not(None),
                              Attempt.started_at <= now)
        .order_by(Attempt.started_at.desc(), Attempt.id.desc())))
    if not attempts:
        return [], {}
    indicators = attempts_indicators(session, attempts, scope, with_log=False)
    rapid = {(a["attempt_id"], r["position"]): r["rapid_guess"]
             for a in indicators for r in a["responses"]}
    misfit = {a["attempt_id"]: bool(a["indicators"]["person_fit"]["flag"]) for a in indicators}
    by_attempt: dict[int, list[Any]] = defaultdict(list)
    for row in session.execute(
            select(Response.attempt_id, Response.position, Response.item_id, Response.response,
                   Response.answered_at)
            .where(Response.attempt_id.in_([a.id for a in attempts]), Response.scored,
                   Response.answered_at <= now)
            .order_by(Response.attempt_id, Response.position.desc())):
        by_attempt[row.attempt_id].append(row)
    for attempt in attempts:
        rows = by_attempt.get(attempt.id)
        if not rows:
            continue
        delivery = delivery_bank(session, attempt.snapshot_id, attempt.language)
        bank = delivery.bank
        known = set(bank.item_ids)
        grouped: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            code = delivery.codes.get(row.item_id)
            if code in known:
                grouped[delivery.items[code]["skill"]].append((row, code))
        decay_all = decay_weights(_age_days(now, [r.answered_at for r in rows]),
                                  settings.half_life_days)
        decay_of = {r.position: d for r, d in zip(rows, decay_all, strict=True)}
        test_name = delivery.test.get("name")
        for skill, entries in grouped.items():
            idx = bank.indices_of([code for _, code in entries])
            responses = np.array([r.response for r, _ in entries], dtype=np.intp)
            decay = np.array([decay_of[r.position] for r, _ in entries])
            target = skills.setdefault(skill, _Skill([], []))
            target.blocks.append(Block(bank, idx, responses, decay))
            dichotomous = bank.n_categories[idx] <= 2
            for (row, code), d, two in zip(entries, decay, dichotomous, strict=True):
                target.rows.append({
                    "kind": "item", "source_id": code, "item_id": row.item_id,
                    "attempt_id": attempt.id, "test_id": attempt.test_id, "test_name": test_name,
                    "response": int(row.response),
                    "label": ("correct" if row.response else "incorrect") if two
                    else f"category {int(row.response)}",
                    "at": row.answered_at, "decay": float(d),
                    "rapid_guess": bool(rapid.get((attempt.id, row.position), False)),
                })
    return attempts, misfit


def _ratings(session: Session, scope: StudentScope, now: datetime, settings: ReportSettings,
             skills: dict[str, _Skill]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Add the student's rubric scores on the scale (up to ``now``) to ``skills``; return the
    scores not on the scale and every current rating (for the disagreement flag)."""
    evidence = rubric_evidence(session, scope.student.id)
    allowed = None
    if scope.class_ids is not None:
        allowed = set(session.scalars(select(Defense.id).where(
            Defense.student_id == scope.student.id, Defense.class_id.in_(scope.class_ids))))

    def kept(entry: dict[str, Any]) -> bool:
        return (allowed is None or entry["defense_id"] in allowed) and as_utc(entry["at"]) <= now

    on_scale = [r for r in evidence.ratings if kept(r)]
    off_scale = [r for r in evidence.not_on_scale if kept(r)]
    if on_scale:
        decay = decay_weights(_age_days(now, [r["at"] for r in on_scale]),
                              settings.half_life_days)
        by_skill: dict[str, list[int]] = defaultdict(list)
        for k, rating in enumerate(on_scale):
            by_skill[rating["skill"]].append(k)
        for skill, ks in by_skill.items():
            target = skills.setdefault(skill, _Skill([], []))
            idx = np.array([on_scale[k]["item"] for k in ks], dtype=np.intp)
            target.blocks.append(Block(evidence.bank, idx, evidence.responses[idx], decay[ks]))
            for k in ks:
                r = on_scale[k]
                target.rows.append({
                    "kind": "rubric", "source_id": r["score_id"], "defense_id": r["defense_id"],
                    "defense_title": r["defense_title"], "rubric_name": r["rubric_name"],
                    "rubric_version": r["rubric_version"], "criterion_code": r["criterion_code"],
                    "criterion_name": r["criterion_name"], "rater_id": r["rater_id"],
                    "rater_name": r["rater_name"], "score_kind": r["kind"],
                    "response": int(r["score"]), "label": r["level_label"],
                    "severity": r["severity"], "at": r["at"], "decay": float(decay[k])})
    return off_scale, [*on_scale, *off_scale]


def _disagreements(ratings: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per skill, the criteria of defenses whose raters' current ratings are more than one
    level apart."""
    scores: dict[tuple, list[int]] = defaultdict(list)
    for r in ratings:
        if r["kind"] == "rating":
            scores[(r["skill"], r["defense_id"], r["criterion_code"])].append(int(r["score"]))
    out: dict[str, dict[str, Any]] = {}
    for (skill, defense_id, code), values in sorted(scores.items()):
        if len(values) > 1 and max(values) - min(values) > 1:
            flag = out.setdefault(skill, {"code": "rater_disagreement", "count": 0,
                                          "defense_ids": [], "criteria": []})
            flag["count"] += 1
            if defense_id not in flag["defense_ids"]:
                flag["defense_ids"].append(defense_id)
            if code not in flag["criteria"]:
                flag["criteria"].append(code)
    return out


# -- cut scores ----------------------------------------------------------------------------------


def _cuts(session: Session, attempts: list[Attempt], skills: Iterable[str]
          ) -> dict[str, tuple[float, dict[str, Any]]]:
    """Each skill's cut score and where it comes from: the newest test the student took that
    sets one for the skill; else any active test that does; else the newest taken test's
    overall cut."""
    taken: list[int] = []
    for attempt in attempts:
        if attempt.test_id not in taken:
            taken.append(attempt.test_id)
    tests = {t.id: t for t in session.scalars(select(AdaptiveTest).where(
        AdaptiveTest.id.in_(taken) | AdaptiveTest.is_active))}
    ordered = [tests[i] for i in taken if i in tests] + sorted(
        (t for t in tests.values() if t.id not in taken), key=lambda t: t.id)
    out: dict[str, tuple[float, dict[str, Any]]] = {}
    for skill in skills:
        for test in ordered:
            if skill in (test.cut_scores or {}):
                out[skill] = (float(test.cut_scores[skill]),
                              {"test_id": test.id, "test_name": test.name, "key": skill})
                break
        else:
            for test in (tests[i] for i in taken if i in tests):
                if "overall" in (test.cut_scores or {}):
                    out[skill] = (float(test.cut_scores["overall"]),
                                  {"test_id": test.id, "test_name": test.name, "key": "overall"})
                    break
    return out


# -- the report ----------------------------------------------------------------------------------


def _scope(session: Session, viewer: User, student_id: int) -> StudentScope:
    try:
        return student_scope(session, viewer, student_id)
    except Forbidden:
        raise NotFound(f"no student {student_id} you may see") from None


def _skill_entry(skill: str, post: SkillPosterior, gathered: _Skill, cut: tuple | None,
                 spread, flags: list[dict[str, Any]], off_scale: list[dict[str, Any]],
                 now: datetime, settings: ReportSettings) -> dict[str, Any]:
    rows = []
    for row, weight, shift in zip(gathered.rows, post.weights, post.shifts, strict=True):
        age = (now - as_utc(row["at"])).total_seconds() / 86400.0
        rows.append({**row, "at": _iso(row["at"]), "age_days": _r(age, 2),
                     "decay": _r(row["decay"]), "weight": _r(weight), "shift": _r(shift)})
    rows.sort(key=lambda r: r["at"], reverse=True)
    rapid = [k for k, r in enumerate(rows) if r.get("rapid_guess")]
    if rapid:
        flags.insert(0, {"code": "rapid_guess", "count": len(rapid), "evidence": rapid})
    if post.se > settings.se_limit:
        flags.append({"code": "too_little_evidence", "se": _r(post.se),
                      "limit": settings.se_limit})
    if off_scale:
        flags.append({"code": "not_on_scale", "count": len(off_scale)})
    if cut is None:
        flags.append({"code": "no_cut_score"})
    suggested = suggest(post.mastery_probability, settings.mastered_at, settings.not_mastered_at)
    return {
        "skill": skill, "theta": _r(post.theta), "se": _r(post.se),
        "interval95": [_r(post.interval95[0]), _r(post.interval95[1])],
        "cut_score": None if cut is None else _r(cut[0]),
        "cut_source": None if cut is None else cut[1],
        "mastery_probability": _r(post.mastery_probability),
        "suggested_decision": suggested, "decision": suggested, "decided_by": "model",
        "teacher_decision": None, "open_appeal": None,
        "adds_value": spread.adds_value if spread is not None else None,
        "prmse": None if spread is None or spread.prmse_subscore is None else {
            "subscore": _r(spread.prmse_subscore), "total": _r(spread.prmse_total),
            "n_students": spread.n_students},
        "prior": {"mean": _r(post.prior_mean), "sd": _r(post.prior_sd),
                  "tau": None if spread is None else _r(spread.tau),
                  "tau_estimated": None if spread is None else spread.estimated},
        "prior_weight": _r(post.prior_weight),
        "n_items": sum(1 for r in rows if r["kind"] == "item"),
        "n_ratings": sum(1 for r in rows if r["kind"] == "rubric"),
        "flags": flags, "evidence": rows,
        "not_on_scale": [{k: (_iso(v) if isinstance(v, datetime) else v) for k, v in r.items()}
                         for r in off_scale],
        "next_steps": [],
    }


def _model(settings: ReportSettings) -> dict[str, Any]:
    return {
        "half_life_days": settings.half_life_days, "se_limit": settings.se_limit,
        "mastered_at": settings.mastered_at, "not_mastered_at": settings.not_mastered_at,
        "population": {"mean": settings.mu0, "sd": settings.sd0},
        "prior": ("Each skill's prior is the student's general ability as the other skills' "
                  "evidence shows it, spread by how much skills differ in the population "
                  "(empirical Bayes)."),
        "settings": asdict(settings),
    }


def student_report(session: Session, viewer: User, student_id: int, *,
                   now: datetime | None = None, settings: ReportSettings | None = None,
                   with_next_steps: bool = True) -> dict[str, Any]:
    """The mastery report of ``student_id`` as ``viewer`` may read it (see the module's doc and
    docs/decisions.md for the model).

    Parameters
    ----------
    now : datetime, optional
        The report as of this moment: evidence after it is ignored and ages count from it
        (default: now).
    settings : ReportSettings, optional
        Default: :func:`report_settings`.
    with_next_steps : bool
        False leaves every skill's ``next_steps`` empty, for callers that only read the
        estimates (a decision's suggestion, the dashboard's earlier reports).

    Raises
    ------
    NotFound
        No such student, or not one the viewer may read (the student themself, their teachers
        and administrators may).
    """
    settings = settings or report_settings()
    now = as_utc(now) if now is not None else utcnow()
    scope = _scope(session, viewer, student_id)
    student = scope.student
    gathered: dict[str, _Skill] = {}
    attempts, misfit = _answers(session, scope, now, settings, gathered)
    off_scale, all_ratings = _ratings(session, scope, now, settings, gathered)
    off_by_skill: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in off_scale:
        off_by_skill[r["skill"]].append(r)
    history = decision_records.history(session, student.id)
    report: dict[str, Any] = {
        "student_id": student.id,
        "student": {"id": student.id, "name": student.display_name or student.username,
                    "pseudonym": student.pseudonym},
        "generated_at": now.isoformat(), "status": "no_evidence",
        "viewer_role": viewer.role.value, "model": _model(settings),
        "overall": None, "skills": [], "trajectory": _trajectory(attempts, now),
        "decisions": history["decisions"], "appeals": history["appeals"],
        "not_on_scale": [{k: (_iso(v) if isinstance(v, datetime) else v) for k, v in r.items()}
                         for r in off_scale],
    }
    if gathered:
        _fill(session, report, gathered, attempts, misfit, all_ratings, off_by_skill, history,
              now, settings)
        report["status"] = "ok"
        if with_next_steps:
            steps = suggestions.next_steps(session, report, now=now)
            for entry in report["skills"]:
                entry["next_steps"] = steps.get(entry["skill"], [])
    if viewer.role == Role.STUDENT:
        report = for_student(report)
    return report


def _fill(session: Session, report: dict[str, Any], gathered: dict[str, _Skill],
          attempts: list[Attempt], misfit: dict[int, bool], all_ratings: list[dict[str, Any]],
          off_by_skill: dict[str, list], history: dict[str, Any], now: datetime,
          settings: ReportSettings) -> None:
    names = sorted(gathered)
    evidence: dict[str, Pieces] = {s: pieces(gathered[s].blocks) for s in names}
    cuts = _cuts(session, attempts, names)
    population = spreads(session, settings)
    tau = {s: (population.pooled[s].tau if s in population.pooled else settings.default_tau)
           for s in names}
    posterior = student_posterior(evidence, tau, {s: cuts[s][0] if s in cuts else None
                                                  for s in names},
                                  mu0=settings.mu0, sd0=settings.sd0)
    disagreement = _disagreements(all_ratings)
    skills = []
    for s in names:
        cut = cuts.get(s)
        spread = None
        if cut is not None:
            spread = population.per_test.get((cut[1]["test_id"], s))
        spread = spread or population.pooled.get(s)
        flags: list[dict[str, Any]] = []
        flagged = sorted({r["attempt_id"] for r in gathered[s].rows
                          if r["kind"] == "item" and misfit.get(r["attempt_id"])})
        if flagged:
            flags.append({"code": "person_misfit", "count": len(flagged),
                          "attempt_ids": flagged})
        if s in disagreement:
            flags.append(disagreement[s])
        entry = _skill_entry(s, posterior.skills[s], gathered[s], cut, spread, flags,
                             off_by_skill.get(s, []), now, settings)
        current = history["current"].get(s)
        if current is not None:
            entry |= {"decision": current["decision"], "decided_by": "teacher",
                      "teacher_decision": current}
        entry["open_appeal"] = history["open"].get(s)
        skills.append(entry)
    report["skills"] = skills
    report["overall"] = {
        "theta": _r(posterior.overall_theta), "se": _r(posterior.overall_se),
        "interval95": [_r(posterior.overall_interval95[0]), _r(posterior.overall_interval95[1])],
        "n_items": sum(e["n_items"] for e in skills),
        "n_ratings": sum(e["n_ratings"] for e in skills)}


def _trajectory(attempts: list[Attempt], now: datetime) -> list[dict[str, Any]]:
    """The test's own estimate after each finished attempt, oldest first."""
    out = []
    for attempt in sorted(attempts, key=lambda a: (as_utc(a.finished_at or now), a.id)):
        if attempt.status != AttemptStatus.FINISHED or attempt.theta is None \
                or attempt.finished_at is None or as_utc(attempt.finished_at) > now:
            continue
        theta, se = float(attempt.theta), float(attempt.se or 0.0)
        out.append({"attempt_id": attempt.id, "test_id": attempt.test_id,
                    "test_name": attempt.test.name if attempt.test is not None else None,
                    "at": _iso(attempt.finished_at), "theta": _r(theta), "se": _r(se),
                    "interval95": [_r(theta - Z95 * se), _r(theta + Z95 * se)]})
    return out


def for_student(report: dict[str, Any]) -> dict[str, Any]:
    """What a student sees of their own report: item evidence without which answer was right
    (:data:`HIDDEN_FROM_STUDENTS`) and without the staff-only flags (:data:`STAFF_FLAGS`)."""
    out = dict(report)
    skills = []
    for entry in report["skills"]:
        entry = dict(entry)
        entry["evidence"] = [
            {k: v for k, v in row.items() if k not in HIDDEN_FROM_STUDENTS}
            if row["kind"] == "item" else row for row in entry["evidence"]]
        entry["flags"] = [f for f in entry["flags"] if f["code"] not in STAFF_FLAGS]
        skills.append(entry)
    out["skills"] = skills
    return out
