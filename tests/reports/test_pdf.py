"""The PDF renderings of the mastery report: what a reader finds in them, in English and Spanish,
for staff and for the student, and that hostile or long text cannot break the layout."""

from __future__ import annotations

import pytest

from api.i18n import translator
from reports.pdf import EVIDENCE_ROWS, class_pack_pdf, student_pdf
from tests.reports.report_sample import (
    no_evidence_report,
    pdf_pages,
    sample_report,
    student_view,
)


def _text(report, language: str = "en") -> str:
    data = student_pdf(report, language=language, gettext=translator(language))
    assert data.startswith(b"%PDF-")
    return " ".join(" ".join(pdf_pages(data)).split())  # lines wrap where the layout says


def test_english_report_holds_skills_figures_decisions_and_history() -> None:
    report = sample_report()
    text = _text(report)
    assert "Mastery report: Student1" in text
    for skill in ("fractions", "geometry", "statistics"):
        assert f"Skill: {skill}" in text
    # figures as given, formatted: theta (se), the interval, the probability of mastery
    assert "0.55 (0.31)" in text and "-0.06 to 1.16" in text and "88%" in text
    assert "-0.72 (0.58)" in text and "5%" in text
    # decisions: the teacher's with its reason and the model's suggestion beside it
    assert "Teacher1 decided Mastered on Dec 2, 2026" in text
    assert "Solid oral defense and recent quizzes." in text
    assert "Not mastered" in text and "Needs more evidence" in text
    assert "Too many errors in November." in text  # the history's older decision
    assert "I think I still need practice on mixed numbers." in text  # the open appeal
    assert "revised by Teacher1" in text and "The retake shows it." in text
    # flags worded
    assert "Rapid guessing: 2 answer(s)" in text
    assert "person misfit" in text and "Raters disagreed on justifies" in text
    assert "the standard error 0.58 is above the limit of 0.50" in text
    assert "No cut score" in text
    # the evidence table: the heaviest rows, then how many more and what they weigh together
    geometry = report["skills"][1]["evidence"]
    rest = sorted((e["weight"] for e in geometry), reverse=True)[EVIDENCE_ROWS:]
    assert f"and {len(rest)} more piece(s) of evidence, weighing {round(sum(rest) * 100)}%" \
        in text
    assert "GE-10 (Maths)" in text and "rapid guess" in text
    assert "Explains the method, rated by Teacher2" in text
    assert "Practice: angles in triangles" in text  # next steps


def test_spanish_report_is_translated_with_spanish_numbers() -> None:
    text = _text(sample_report(), "es")
    assert "Informe de dominio: Student1" in text and "Habilidad: geometry" in text
    assert "Dominada" in text and "No dominada" in text and "Necesita más evidencia" in text
    assert "0,55 (0,31)" in text and "-0,06 a 1,16" in text
    assert "Teacher1 decidió «Dominada» el 2 dic 2026" in text
    assert "Decisiones y apelaciones" in text and "Cómo leer este informe" in text
    assert "Mastered" not in text and "Skill:" not in text


def test_student_view_shows_no_item_keys_or_staff_flags() -> None:
    text = _text(student_view(sample_report()))
    assert "GE-" not in text and "incorrect" not in text
    assert "Rapid guessing" not in text and "person misfit" not in text
    assert "Explains the method, rated by Teacher2" in text  # rubric rows stay whole
    assert "Raters disagreed" in text


def test_no_evidence_report() -> None:
    text = _text(no_evidence_report())
    assert "No evidence yet" in text and "Skill:" not in text


def test_markup_long_and_non_latin_text_cannot_break_the_layout() -> None:
    report = sample_report()
    name = "Ana <b>&amp; 王小明 Иванова " + "Longname" * 30
    report["student"]["name"] = name
    report["skills"][0]["skill"] = "fractions_" + "and_decimals_" * 12
    report["skills"][0]["teacher_decision"]["reason"] = "</para><script>x</script> " * 40
    report["decisions"][0]["reason"] = "word " * 400  # a very long reason in a table cell
    pages = pdf_pages(student_pdf(report, language="en", gettext=translator("en")))
    text = "\n".join(pages)
    assert "Ana <b>&amp;" in text  # shown as written, not read as markup
    assert "</para><script>x</script>" in text
    assert all("Page" in page for page in pages)  # every page laid out with its footer


def test_class_pack_takes_students_one_at_a_time_and_reports_progress() -> None:
    events: list[tuple] = []

    def reports():
        for n in (1, 2, 3):
            events.append(("build", n))
            report = sample_report()
            report["student"]["name"] = f"Pupil{n}"
            yield report

    def dashboard():
        events.append(("dashboard",))
        return {"class": {"name": "7A"}, "skills": ["fractions", "geometry"],
                "students": [{"student": {"name": "Pupil1"}, "cells": {
                    "fractions": {"mastery_probability": 0.8774, "decision": "mastered",
                                  "decided_by": "teacher"}}}]}

    data = class_pack_pdf(reports(), dashboard, language="es", gettext=translator("es"),
                          progress=lambda done, total: events.append(("progress", done, total)),
                          total=3)
    assert events == [("build", 1), ("progress", 1, 3), ("build", 2), ("progress", 2, 3),
                      ("build", 3), ("progress", 3, 3), ("dashboard",)]
    pages = pdf_pages(data)
    firsts = [p for p in pages if "Informe de dominio: Pupil" in p.split("\n", 2)[0]]
    assert len(firsts) == 3  # every student starts a page
    assert "Panel de la clase: 7A" in pages[-1]
    assert "88 % Dominada *" in pages[-1].replace("\xa0", " ")


@pytest.mark.parametrize("language", ["en", "es"])
def test_class_pack_of_an_empty_class(language: str) -> None:
    data = class_pack_pdf([], {"class": {"name": "7C"}, "skills": [], "students": []},
                          language=language, gettext=translator(language))
    assert len(pdf_pages(data)) == 1
