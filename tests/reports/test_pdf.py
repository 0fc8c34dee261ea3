"""The PDF renderings of the mastery report: what a reader finds in them, in English and Spanish,
for staff and for the student, and that hostile or long text cannot break the layout."""

from __future__ import annotations

import pytest

from api.i18n import translator
from reports import dashboard
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
    assert "Practice question 1 in geometry" in text  # next steps


def test_spanish_report_is_translated_with_spanish_numbers() -> None:
    text = _text(sample_report(), "es")
    assert "Informe de dominio: Student1" in text and "Habilidad: geometry" in text
    assert "Dominada" in text and "No dominada" in text and "Necesita más evidencia" in text
    assert "0,55 (0,31)" in text and "-0,06 a 1,16" in text
    assert "Teacher1 decidió «Dominada» el 2 dic 2026" in text
    assert "Decisiones y apelaciones" in text and "Cómo leer este informe" in text
    assert "Mastered" not in text and "Skill:" not in text
    # next steps are worded from their codes, not printed in English
    assert "not seen in the last" not in text and "your level is" not in text
    assert "71 %" in text and "30 días" in text and "-1,50" in text and "-0,72" in text


def test_next_steps_are_worded_from_their_codes() -> None:
    text = _text(sample_report())
    assert "Practice question 1 in geometry" in text
    assert "expected success 71% at your level; not seen in the last 30 days" in text
    assert "made for levels -1.50 to 0.00; your level is -0.72" in text


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


def _class(n: int = 7) -> tuple[list[dict], dict]:
    """``n`` students' reports (the sample, varied) and the real dashboard aggregated from them:
    the last two have extended time (a group too small to compare), geometry's first item
    carries a stored DIF flag, and every fractions estimate rose by 0.40 since the first test."""
    reports = []
    for k in range(1, n + 1):
        report = sample_report()
        report["student_id"] = report["student"]["id"] = 100 + k
        report["student"]["name"] = f"Pupil{k}"
        fractions = report["skills"][0]
        fractions["theta"] = round(0.05 * k, 2)
        fractions["mastery_probability"] = round(0.1 * k, 2)
        if k % 2:  # the model's suggestion stands
            fractions["decision"], fractions["decided_by"] = "not_mastered", "model"
        reports.append(report)
    timelines = {r["student_id"]: {"fractions": {
        "first": {"theta": r["skills"][0]["theta"] - 0.4, "mastery_probability": 0.05},
        "days_to_mastery": 2.5 if r["skills"][0]["decision"] == "mastered" else None}}
        for r in reports}
    groups = {r["student_id"]: {"time_accommodation": "extended" if k >= n - 1 else "standard"}
              for k, r in enumerate(reports, start=1)}
    items = {p["item_id"] for r in reports for s in r["skills"] for p in s["evidence"]
             if p.get("item_id")}
    dif = dict.fromkeys(items)
    items_dif = {i: {"code": f"GE-{i - 100:02d}", "run_id": 4, "dif": [
        {"category": "C" if i == 110 else "A", "focal": "girls", "reference": "boys"}]}
        for i in dif}
    board = {"class": {"id": 3, "name": "7A"}, "generated_at": "2026-12-04T15:20:00+00:00",
             "n_students": n, "min_group": dashboard.MIN_GROUP,
             **dashboard.aggregate(reports, timelines=timelines, groups=groups,
                                   items_dif=items_dif)}
    return reports, board


def test_class_pack_takes_students_one_at_a_time_and_reports_progress() -> None:
    events: list[tuple] = []
    sample, board = _class(3)

    def reports():
        for n, report in enumerate(sample, start=1):
            events.append(("build", n))
            yield report

    def made():
        events.append(("dashboard",))
        return board

    data = class_pack_pdf(reports(), made, language="es", gettext=translator("es"),
                          progress=lambda done, total: events.append(("progress", done, total)),
                          total=3)
    assert events == [("build", 1), ("progress", 1, 3), ("build", 2), ("progress", 2, 3),
                      ("build", 3), ("progress", 3, 3), ("dashboard",)]
    pages = pdf_pages(data)
    firsts = [p for p in pages if "Informe de dominio: Pupil" in p.split("\n", 2)[0]]
    assert len(firsts) == 3  # every student starts a page
    assert "Panel de la clase: 7A" in pages[-1] or "Panel de la clase: 7A" in pages[-2]


def _dashboard_text(board: dict, language: str) -> str:
    data = class_pack_pdf([], board, language=language, gettext=translator(language))
    return " ".join(" ".join(pdf_pages(data)).split())


def test_class_pack_lays_out_the_dashboard_sections_and_figures() -> None:
    _, board = _class()
    text = _dashboard_text(board, "en")
    assert "Class dashboard: 7A" in text and "7 student(s)." in text
    # the grid: every student with each skill's probability and decision in words
    assert "Pupil1 10% Not mastered" in text  # the model's suggestion: no "teacher"
    assert "Pupil2 20% teacher Mastered" in text
    assert "Pupil7 70% Not mastered" in text
    assert text.count("5% Not mastered 4 flag(s)") == 7  # geometry: four student flags
    assert text.count("\u2014 ? Needs more evidence no cut score") == 7  # statistics
    # the flagged students, with what drives each flag
    assert "Flagged students" in text
    assert "geometry (Not mastered): rapid guesses (2): GE-13 (Maths, Dec 1, 2026), GE-18 " \
        "(Maths, Dec 3, 2026)" in text
    assert "unexpected answer pattern (1): the attempt at Maths" in text
    assert "raters disagreed (1): defense 3, criteria: justifies" in text
    assert "too little evidence: standard error 0.58, above the limit of 0.50" in text
    # progress: gain +0.40 for every student; P(mastery) gain the mean of (k/10 - 0.05)
    gain = round(sum(0.1 * k - 0.05 for k in range(1, 8)) / 7 * 100)
    shares = {"fractions": (3, 7), "geometry": (0, 7), "statistics": (0, 7)}
    assert f"fractions 7 +0.40 (n = 7) +{gain} points (n = 7) 2.5 (n = 3) 43% (3/7)" in text
    for skill, (mastered, n) in shares.items():
        assert f"({mastered}/{n})" in text and skill in text
    # fairness: standard time has figures, extended time is too few to compare
    standard = [r["skills"][0]["theta"] for r in _class()[0][:5]]
    mean = sum(standard) / 5
    assert f"standard time \u00b7 fractions 5 40% 60% 0% {mean:.2f}" in text
    assert "extended time too few to compare (fewer than 5 students)" in text
    # DIF: geometry's flagged item, statistics' items checked and none flagged
    assert "GE-10: category C, girls against boys (run 4)" in text
    assert "statistics 2 2 none" in text


def test_class_pack_dashboard_in_spanish() -> None:
    _, board = _class()
    text = _dashboard_text(board, "es")
    assert "Panel de la clase: 7A" in text and "Estudiantes con alertas" in text
    assert "Pupil2 20 % docente Dominada" in text.replace("\xa0", " ")
    assert "+0,40 (n = 7)" in text and "Equidad" in text
    assert "tiempo ampliado demasiado pocos para comparar" in text
    assert "Mastered" not in text and "Flagged" not in text


@pytest.mark.parametrize("language", ["en", "es"])
def test_class_pack_of_an_empty_class(language: str) -> None:
    data = class_pack_pdf([], {"class": {"name": "7C"}, "n_students": 0, "skills": [],
                               "grid": []}, language=language, gettext=translator(language))
    assert len(pdf_pages(data)) == 1


def test_a_wide_class_is_split_into_tables_of_six_skills() -> None:
    reports, board = _class(2)
    for r in reports:
        r["skills"] = [dict(r["skills"][0], skill=f"skill{j:02d}") for j in range(14)]
    board.update(dashboard.aggregate(reports, timelines={}, groups={}, items_dif={}))
    data = class_pack_pdf([], board, language="en", gettext=translator("en"))
    text = " ".join(" ".join(pdf_pages(data)).split())
    assert text.count("Student skill") == 3  # 14 skills: tables of 6, 6 and 2
    assert "Student skill00 skill01 skill02 skill03 skill04 skill05 Pupil1" in text
    assert "Student skill12 skill13 Pupil1" in text
