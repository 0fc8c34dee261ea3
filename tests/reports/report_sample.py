"""Hand-written student reports in the shape of ``reports.report.student_report`` (see the data
contract of issue 15), for renderers' tests that must not depend on the model's figures.

``sample_report()`` is a teacher's view of a student with three skills: one with a teacher's
decision and an open appeal, one with many pieces of evidence (more than a renderer shows) and
every flag, one with no cut score. ``student_view(report)`` strips what a student may not see;
``no_evidence_report()`` is the report of a student with nothing yet; ``pdf_pages(data)`` the
text of each page of a PDF.
"""

from __future__ import annotations

import copy
import io
from typing import Any

_DECIDED = {"id": 4, "decision": "mastered", "reason": "Solid oral defense and recent quizzes.",
            "decided_by": 21, "decided_by_name": "Teacher1",
            "decided_at": "2026-12-02T10:00:00+00:00",
            "suggested_decision": "needs_evidence", "mastery_probability": 0.83}
_EARLIER = {"id": 2, "decision": "not_mastered", "reason": "Too many errors in November.",
            "decided_by": 21, "decided_by_name": "Teacher1",
            "decided_at": "2026-11-20T09:30:00+00:00",
            "suggested_decision": "not_mastered", "mastery_probability": 0.07}


def _item(n: int, *, at: str, response: int, weight: float, shift: float,
          rapid: bool = False) -> dict[str, Any]:
    return {"kind": "item", "source_id": f"GE-{n:02d}", "item_id": 100 + n, "attempt_id": 7,
            "test_name": "Maths", "response": response,
            "label": "correct" if response else "incorrect", "at": at, "age_days": 3.2,
            "decay": 0.99, "weight": weight, "shift": shift, "rapid_guess": rapid}


def _rubric(n: int, *, criterion: str, name: str, response: int, label: str,
            weight: float, shift: float) -> dict[str, Any]:
    return {"kind": "rubric", "source_id": 40 + n, "defense_id": 3, "criterion_code": criterion,
            "criterion_name": name, "rater_id": 5, "rater_name": "Teacher2",
            "score_kind": "rating", "response": response, "label": label, "severity": 0.2,
            "at": "2026-12-03T14:00:00+00:00", "age_days": 1.0, "decay": 1.0, "weight": weight,
            "shift": shift}


def _fractions() -> dict[str, Any]:
    evidence = [
        _rubric(1, criterion="explains", name="Explains the method", response=3, label="Secure",
                weight=0.21, shift=0.18),
        _item(1, at="2026-12-01T09:00:00+00:00", response=1, weight=0.17, shift=0.12),
        _item(2, at="2026-12-01T09:01:00+00:00", response=0, weight=0.15, shift=-0.09),
        _item(3, at="2026-11-20T09:00:00+00:00", response=1, weight=0.12, shift=0.06),
    ]
    return {
        "skill": "fractions", "theta": 0.55, "se": 0.31, "interval95": [-0.06, 1.16],
        "cut_score": 0.0, "cut_source": {"test_id": 1, "test_name": "Maths"},
        "mastery_probability": 0.8774, "suggested_decision": "needs_evidence",
        "decision": "mastered", "decided_by": "teacher", "teacher_decision": dict(_DECIDED),
        "open_appeal": {"id": 9, "message": "I think I still need practice on mixed numbers.",
                        "created_at": "2026-12-03T16:00:00+00:00"},
        "adds_value": True, "prmse": {"subscore": 0.62, "total": 0.55, "n_students": 240},
        "prior": {"mean": 0.38, "sd": 0.61}, "prior_weight": 0.35,
        "n_items": 3, "n_ratings": 1, "flags": [], "evidence": evidence,
        "not_on_scale": [], "next_steps": [],
    }


def _geometry() -> dict[str, Any]:
    # 15 items, two of them rapid guesses: more rows than a renderer's table shows (12).
    weights = [0.09, 0.08, 0.08, 0.07, 0.07, 0.06, 0.06, 0.05, 0.05, 0.04, 0.04, 0.03, 0.03,
               0.02, 0.02]
    evidence = [_item(10 + n, at=f"2026-12-0{1 + n % 3}T10:{n:02d}:00+00:00",
                      response=n % 2, weight=w, shift=(0.05 if n % 2 else -0.05) * w * 10,
                      rapid=n in (3, 8))
                for n, w in enumerate(weights)]
    evidence.append(_rubric(2, criterion="justifies", name="Justifies each step", response=1,
                            label="Emerging", weight=0.05, shift=-0.04))
    return {
        "skill": "geometry", "theta": -0.72, "se": 0.58, "interval95": [-1.86, 0.42],
        "cut_score": 0.25, "cut_source": {"test_id": 1, "test_name": "Maths"},
        "mastery_probability": 0.0473, "suggested_decision": "not_mastered",
        "decision": "not_mastered", "decided_by": "model", "teacher_decision": None,
        "open_appeal": None, "adds_value": False,
        "prmse": {"subscore": 0.41, "total": 0.52, "n_students": 240},
        "prior": {"mean": 0.1, "sd": 0.5}, "prior_weight": 0.07,
        "n_items": 15, "n_ratings": 1,
        "flags": [
            {"code": "rapid_guess", "count": 2, "evidence": [3, 8]},
            {"code": "person_misfit", "count": 1, "attempt_ids": [7]},
            {"code": "rater_disagreement", "count": 1, "defense_ids": [3],
             "criteria": ["justifies"]},
            {"code": "too_little_evidence", "se": 0.58, "limit": 0.5},
            {"code": "not_on_scale", "count": 2},
        ],
        "evidence": evidence,
        "not_on_scale": [{"source_id": 77, "criterion_code": "draws", "reason":
                          "no published calibration"}],
        "next_steps": [
            {"kind": "practice", "position": 1, "title": "Practice question 1 in geometry",
             "url": "/practice/geometry",
             "why": {"code": "practice_level", "expected_success": 0.71, "target": 0.7,
                     "recent_days": 30},
             "why_text": "expected success 71% at your level; not seen in the last 30 days"},
            {"kind": "resource", "title": "Khan-style video: areas",
             "url": "https://example.org/areas",
             "why": {"code": "resource_level", "theta": -0.72, "level_min": -1.5,
                     "level_max": 0.0},
             "why_text": "made for levels -1.50 to 0.00; your level is -0.72"},
        ],
    }


def _statistics() -> dict[str, Any]:
    return {
        "skill": "statistics", "theta": 0.12, "se": 0.44, "interval95": [-0.74, 0.98],
        "cut_score": None, "cut_source": None, "mastery_probability": None,
        "suggested_decision": "needs_evidence", "decision": "needs_evidence",
        "decided_by": "model", "teacher_decision": None, "open_appeal": None,
        "adds_value": None, "prmse": None, "prior": {"mean": 0.4, "sd": 0.6},
        "prior_weight": 0.6, "n_items": 2, "n_ratings": 0,
        "flags": [{"code": "no_cut_score"}],
        "evidence": [_item(40, at="2026-11-02T08:00:00+00:00", response=1, weight=0.25,
                           shift=0.15),
                     _item(41, at="2026-11-02T08:02:00+00:00", response=0, weight=0.15,
                           shift=-0.1)],
        "not_on_scale": [], "next_steps": [],
    }


_REPORT: dict[str, Any] = {
    "student_id": 12,
    "student": {"id": 12, "name": "Student1", "pseudonym": "p-3f9a01"},
    "generated_at": "2026-12-04T15:20:00+00:00",
    "status": "ok",
    "viewer_role": "teacher",
    "model": {"half_life_days": 180.0, "se_limit": 0.5, "mastered_at": 0.9,
              "not_mastered_at": 0.1,
              "prior": "Each skill's prior is centred on the student's overall estimate, with "
                       "the spread between skills estimated from the class's data."},
    "overall": {"theta": 0.41, "se": 0.22, "interval95": [-0.02, 0.84], "n_items": 20,
                "n_ratings": 2},
    "skills": [_fractions(), _geometry(), _statistics()],
    "trajectory": [
        {"attempt_id": 3, "test_name": "Maths", "at": "2026-10-01T09:00:00+00:00",
         "theta": -0.4, "se": 0.5, "interval95": [-1.38, 0.58]},
        {"attempt_id": 5, "test_name": "Maths", "at": "2026-11-02T09:00:00+00:00",
         "theta": 0.05, "se": 0.36, "interval95": [-0.66, 0.76]},
        {"attempt_id": 6, "test_name": "Maths review", "at": "2026-11-20T09:00:00+00:00",
         "theta": 0.2, "se": 0.3, "interval95": [-0.39, 0.79]},
        {"attempt_id": 7, "test_name": "Maths", "at": "2026-12-01T09:00:00+00:00",
         "theta": 0.41, "se": 0.22, "interval95": [-0.02, 0.84]},
    ],
    "decisions": [dict(_DECIDED, skill="fractions"), dict(_EARLIER, skill="fractions")],
    "appeals": [
        {"id": 9, "skill": "fractions", "decision_id": 4, "appealed_decision": "mastered",
         "message": "I think I still need practice on mixed numbers.",
         "created_at": "2026-12-03T16:00:00+00:00", "answer": None},
        {"id": 6, "skill": "fractions", "decision_id": 2, "appealed_decision": "not_mastered",
         "message": "I did the retake last week.", "created_at": "2026-11-25T12:00:00+00:00",
         "answer": {"id": 3, "outcome": "revised", "reason": "The retake shows it.",
                    "answered_by": 21, "answered_by_name": "Teacher1",
                    "answered_at": "2026-12-02T10:00:00+00:00", "decision_id": 4}},
    ],
}

#: Fields of item evidence a student does not see (they would reveal operational keys).
HIDDEN_FROM_STUDENTS = ("source_id", "item_id", "response", "label", "shift")
STAFF_FLAGS = ("rapid_guess", "person_misfit")


def sample_report() -> dict[str, Any]:
    """A teacher's view of a student's report (a fresh deep copy each call)."""
    return copy.deepcopy(_REPORT)


def student_view(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` as its student sees it: item rows without keys and shifts, no staff flags."""
    report = copy.deepcopy(report)
    report["viewer_role"] = "student"
    for skill in report["skills"]:
        skill["flags"] = [f for f in skill["flags"] if f["code"] not in STAFF_FLAGS]
        for row in skill["evidence"]:
            if row["kind"] == "item":
                for name in (*HIDDEN_FROM_STUDENTS, "rapid_guess"):
                    row.pop(name, None)
    return report


def no_evidence_report() -> dict[str, Any]:
    """The report of a student with no evidence yet."""
    report = copy.deepcopy(_REPORT)
    report.update(status="no_evidence", overall=None, skills=[], trajectory=[], decisions=[],
                  appeals=[])
    return report


def pdf_pages(data: bytes) -> list[str]:
    """The text of each page of a PDF (pypdf's extraction, in reading order)."""
    from pypdf import PdfReader

    return [page.extract_text() for page in PdfReader(io.BytesIO(data)).pages]
