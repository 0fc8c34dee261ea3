"""The mastery report and the class pack as PDF (reportlab platypus), in English and Spanish.

Each section of the report is one function that turns report data into flowables (paragraphs,
tables, drawings); :func:`student_pdf` lays one student's out, :func:`class_pack_pdf` a class's
students one after another (each from a new page) followed by the class dashboard. Nothing is
computed here: every figure comes from :func:`reports.report.student_report` (see the data
contract of issue 15) and is only formatted.

Text is translated by the ``gettext`` the caller passes (a function ``str -> str``, such as
``babel.support.Translations.gettext`` for the chosen language). Strings are marked with
:func:`N_`, which ``make translations`` extracts (``babel.cfg`` covers ``reports/``); every
translated string is %-formatted, so a literal percent sign is written ``%%``. Numbers and dates
follow the language's conventions (babel). Names, reasons and messages are escaped and wrapped
(Paragraph), so long names and markup-like text cannot break the layout. The standard Helvetica
covers English and Spanish; characters outside Latin-1 show as boxes, without breaking anything.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import (
    BaseDocTemplate,
    CondPageBreak,
    Flowable,
    Frame,
    KeepTogether,
    PageBreak,
    PageTemplate,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from reports import pdf_charts

Gettext = Callable[[str], str]
Progress = Callable[[int, int], None]


def N_(message: str) -> str:
    """Mark ``message`` for extraction; it is translated where it is shown."""
    return message


#: Evidence rows the table shows per skill (the heaviest), the rest summed in one line.
EVIDENCE_ROWS = 12
PAGE = A4
MARGIN = 16 * mm
WIDTH = PAGE[0] - 2 * MARGIN

DECISIONS = {"mastered": N_("Mastered"), "not_mastered": N_("Not mastered"),
             "needs_evidence": N_("Needs more evidence")}
DECIDED_BY = {"model": N_("suggested by the model"), "teacher": N_("decided by a teacher")}
OUTCOMES = {"upheld": N_("upheld"), "revised": N_("revised")}
KINDS = {"item": N_("Answer"), "rubric": N_("Rubric score")}
#: The sentence of ``report["model"]["prior"]`` (reports.report), marked here so that it is
#: translated where it is shown; another wording stays in English until marked too.
MODEL_SENTENCES = (N_("Each skill's prior is the student's general ability as the other skills' "
                      "evidence shows it, spread by how much skills differ in the population "
                      "(empirical Bayes)."),)
#: Labels of item responses in the report's evidence (data, worded here).
LABELS = (N_("correct"), N_("incorrect"))
#: How each flag code of the report is worded; its fields fill the placeholders.
FLAGS = {
    "rapid_guess": N_("Rapid guessing: %(count)s answer(s) given too fast to have been read "
                      "(marked in the evidence table)."),
    "person_misfit": N_("Unusual pattern of answers (person misfit) in %(count)s attempt(s): "
                        "the estimate may describe the student less well."),
    "rater_disagreement": N_("Raters disagreed on %(criteria)s in %(count)s oral defense(s)."),
    "too_little_evidence": N_("Too little evidence: the standard error %(se)s is above the "
                              "limit of %(limit)s."),
    "not_on_scale": N_("%(count)s rubric score(s) not counted: their rubric has no published "
                       "calibration yet."),
    "no_cut_score": N_("No cut score: no test of the student sets one for this skill, so there "
                       "is no probability of mastery."),
}


class Words:
    """Translation and the language's number and date formats, for one rendering."""

    def __init__(self, gettext: Gettext, language: str) -> None:
        self.gettext, self.language = gettext, language

    def __call__(self, msgid: str, /, **values: Any) -> str:
        """``msgid`` translated and %-formatted with ``values`` (plain text, not escaped)."""
        return self.gettext(msgid) % values

    def num(self, value: float | None, digits: int = 2) -> str:
        if value is None:
            return "\u2014"
        return format_decimal(value, format="0." + "0" * digits, locale=self.language)

    def signed(self, value: float | None, digits: int = 2) -> str:
        if value is None:
            return "\u2014"
        return ("+" if value > 0 else "") + self.num(value, digits)

    def pct(self, value: float | None) -> str:
        if value is None:
            return "\u2014"
        return format_percent(value, locale=self.language)

    def interval(self, pair: Sequence[float] | None) -> str:
        if not pair:
            return "\u2014"
        return self(N_("%(low)s to %(high)s"), low=self.num(pair[0]), high=self.num(pair[1]))

    def date(self, iso: str | None) -> str:
        if not iso:
            return "\u2014"
        return format_date(datetime.fromisoformat(iso), format="medium", locale=self.language)

    def moment(self, iso: str | None) -> str:
        if not iso:
            return "\u2014"
        when = datetime.fromisoformat(iso)
        return format_datetime(when, format="medium", locale=self.language,
                               tzinfo=when.tzinfo) + " UTC" * (when.utcoffset() is not None
                                                                and not when.utcoffset())

    def decision(self, code: str | None) -> str:
        return self(DECISIONS[code]) if code in DECISIONS else (code or "\u2014")


# -- styles ----------------------------------------------------------------------------------

_BASE = ParagraphStyle("body", fontName="Helvetica", fontSize=9, leading=11.5, alignment=TA_LEFT,
                       textColor=pdf_charts.INK)
STYLES = {
    "body": _BASE,
    "small": ParagraphStyle("small", parent=_BASE, fontSize=7.5, leading=9.5),
    "note_small": ParagraphStyle("note_small", parent=_BASE, fontSize=7.5, leading=9.5,
                                 leftIndent=10, bulletIndent=2, spaceBefore=2),
    "cell": ParagraphStyle("cell", parent=_BASE, fontSize=7.5, leading=9),
    "head": ParagraphStyle("head", parent=_BASE, fontName="Helvetica-Bold", fontSize=7.5,
                           leading=9),
    "title": ParagraphStyle("title", parent=_BASE, fontName="Helvetica-Bold", fontSize=16,
                            leading=20, spaceAfter=4),
    "h2": ParagraphStyle("h2", parent=_BASE, fontName="Helvetica-Bold", fontSize=12, leading=15,
                         spaceBefore=10, spaceAfter=4, keepWithNext=1),
    "h3": ParagraphStyle("h3", parent=_BASE, fontName="Helvetica-Bold", fontSize=10, leading=13,
                         spaceBefore=6, spaceAfter=3, keepWithNext=1),
    "bullet": ParagraphStyle("bullet", parent=_BASE, leftIndent=10, bulletIndent=2),
    "note": ParagraphStyle("note", parent=_BASE, spaceBefore=4),
    "box": ParagraphStyle("box", parent=_BASE, fontSize=8, leading=10.5, backColor="#f0f4f8",
                          borderPadding=5, spaceBefore=4, spaceAfter=8),
}
GRID = TableStyle([
    ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#bcccdc")),
    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e4e7eb")),
    ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7.5, 9),
    ("FONT", (0, 1), (-1, -1), "Helvetica", 7.5, 9),
    ("TEXTCOLOR", (0, 0), (-1, -1), pdf_charts.INK),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
])


def para(text: str, style: str = "body") -> Paragraph:
    """A paragraph of plain ``text`` (escaped: names and reasons are never markup)."""
    return Paragraph(escape(text), STYLES[style])


#: Left plus right padding of a table cell, points.
CELL_PADDING = 6


def cell(text: str, width: float, style: str = "cell") -> str | Paragraph:
    """A table cell of plain ``text``: as it is when it fits on one line of ``width`` points (a
    plain string is drawn many times faster than a paragraph), else a wrapped paragraph."""
    font = STYLES[style]
    if "\n" not in text and stringWidth(text, font.fontName, font.fontSize) \
            <= width - CELL_PADDING:
        return text
    return para(text, style)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[float],
          ) -> Table:
    """A grid of plain-text cells, wrapped where needed, whose header repeats on every page.

    ``widths`` are the columns' shares of the page's width.
    """
    scale = WIDTH / sum(widths)
    points = [w * scale for w in widths]
    data = [[cell(h, p, "head") for h, p in zip(header, points, strict=True)]]
    data += [[cell(c, p) for c, p in zip(row, points, strict=True)] for row in rows]
    return Table(data, colWidths=points, repeatRows=1, style=GRID, hAlign="LEFT")


def quoted(text: str | None) -> str:
    return f"\u201c{text}\u201d" if text else "\u2014"


# -- the student's report, one function a section ---------------------------------------------


def header(report: Mapping[str, Any], w: Words) -> list[Flowable]:
    """Who, when, the overall estimate and how to read the report."""
    student = report.get("student") or {}
    name = student.get("name") or str(report.get("student_id"))
    out: list[Flowable] = [
        para(w(N_("Mastery report: %(name)s"), name=name), "title"),
        para(w(N_("Pseudonym %(pseudonym)s. Generated %(when)s."),
               pseudonym=student.get("pseudonym") or "\u2014",
               when=w.moment(report.get("generated_at"))), "small"),
    ]
    overall = report.get("overall")
    if overall:
        out.append(para(w(
            N_("Overall estimate: theta %(theta)s (standard error %(se)s), 95%% interval "
               "%(interval)s, from %(items)s answer(s) and %(ratings)s rubric score(s)."),
            theta=w.num(overall["theta"]), se=w.num(overall["se"]),
            interval=w.interval(overall.get("interval95")), items=overall.get("n_items", 0),
            ratings=overall.get("n_ratings", 0))))
    model = report.get("model") or {}
    how = [
        w(N_("How to read this report. Estimates are on the tests' scale (theta, in logits; 0 "
             "is an average student of the calibration). The 95%% interval is where the "
             "student's level lies with 95%% probability. The probability of mastery is the "
             "probability that the level is above the skill's cut score.")),
        w(N_("The model suggests Mastered at a probability of %(mastered)s or more, Not "
             "mastered at %(not_mastered)s or less, and Needs more evidence in between. A "
             "teacher's decision, when there is one, replaces the suggestion; both are shown."),
          mastered=w.pct(model.get("mastered_at")),
          not_mastered=w.pct(model.get("not_mastered_at"))),
        w(N_("Older evidence counts less: its weight halves every %(days)s days. A standard "
             "error above %(limit)s is flagged as too little evidence. Each piece of evidence "
             "has a weight (its share of the information; the prior's share is given too, so "
             "the shares add up to 100%%) and a shift (the estimate with it minus without it)."),
          days=w.num(model.get("half_life_days"), 0), limit=w.num(model.get("se_limit"))),
    ]
    if model.get("prior"):
        how.append(w.gettext(model["prior"]))
    out.append(Paragraph("<br/>".join(escape(t) for t in how), STYLES["box"]))
    return out


def skills_overview(report: Mapping[str, Any], w: Words) -> list[Flowable]:
    """Every skill's estimate and interval against its cut (a chart), with the figures."""
    skills = report.get("skills") or []
    if not skills:
        return []
    chart = pdf_charts.skill_intervals(
        skills, WIDTH, legend=(w(N_("estimate")), w(N_("95%% interval")), w(N_("cut score"))),
        number=lambda v: w.num(v, 0))
    rows = [[s["skill"], f"{w.num(s['theta'])} ({w.num(s['se'])})", w.interval(s["interval95"]),
             w.num(s.get("cut_score")), w.pct(s.get("mastery_probability")),
             w.decision(s.get("decision")), w(DECIDED_BY.get(s.get("decided_by"), "\u2014"))]
            for s in skills]
    return [
        para(w(N_("Skills")), "h2"),
        chart,
        Spacer(1, 4),
        table([w(N_("Skill")), w(N_("Theta (se)")), w(N_("95%% interval")), w(N_("Cut score")),
               w(N_("Probability of mastery")), w(N_("Decision")), w(N_("By"))],
              rows, [24, 14, 18, 10, 14, 18, 20]),
    ]


def trajectory(report: Mapping[str, Any], w: Words) -> list[Flowable]:
    """The overall theta after each attempt with its band, and the same figures as a table."""
    points = report.get("trajectory") or []
    if not points:
        return []
    chart = pdf_charts.trajectory(points, WIDTH, x_labels=[w.date(p["at"]) for p in points],
                                  y_title=w(N_("theta")), number=lambda v: w.num(v, 0))
    rows = [[w.date(p.get("at")), p.get("test_name") or "\u2014", w.num(p["theta"]),
             w.num(p["se"]), w.interval(p.get("interval95"))] for p in points]
    return [
        CondPageBreak(60 * mm),
        para(w(N_("Overall estimate over the attempts")), "h2"),
        para(w(N_("The line is the estimate after each finished attempt; the shaded band is its "
                  "95%% interval.")), "small"),
        chart,
        table([w(N_("Date")), w(N_("Test")), w(N_("Theta")), w(N_("Standard error")),
               w(N_("95%% interval"))], rows, [18, 30, 10, 12, 20]),
    ]


def _flag(flag: Mapping[str, Any], w: Words) -> str:
    code = flag.get("code", "")
    if code not in FLAGS:
        return code
    values = {"count": flag.get("count", ""), "se": w.num(flag.get("se")),
              "limit": w.num(flag.get("limit")), "criteria": ", ".join(flag.get("criteria") or [])}
    return w(FLAGS[code], **values)


def _evidence_rows(skill: Mapping[str, Any], w: Words) -> list[list[str]]:
    rows = []
    ordered = sorted(skill.get("evidence") or [], key=lambda e: -(e.get("weight") or 0.0))
    for row in ordered[:EVIDENCE_ROWS]:
        if row.get("kind") == "rubric":
            what = w(N_("%(criterion)s, rated by %(rater)s"),
                     criterion=row.get("criterion_name") or row.get("criterion_code") or "",
                     rater=row.get("rater_name") or "\u2014")
            response = f"{row.get('label') or ''} ({row.get('response')})"
        else:
            source = row.get("source_id")
            what = " ".join(p for p in (str(source) if source else "",
                                        f"({row['test_name']})" if row.get("test_name") else "")
                            if p) or "\u2014"
            response = w(row["label"]) if row.get("label") else "\u2014"
        notes = [w(N_("rapid guess"))] if row.get("rapid_guess") else []
        if row.get("score_kind") == "adjudication":
            notes.append(w(N_("adjudication")))
        rows.append([w.date(row.get("at")), w(KINDS.get(row.get("kind"), row.get("kind", ""))),
                     what, response, w.pct(row.get("weight")), w.signed(row.get("shift")),
                     ", ".join(notes)])
    return rows


def skill_section(skill: Mapping[str, Any], w: Words) -> list[Flowable]:
    """One skill: its figures, decisions, flags, evidence and next steps."""
    cut = w.num(skill.get("cut_score"))
    if skill.get("cut_source"):
        cut = w(N_("%(cut)s (set by %(test)s)"), cut=cut, test=skill["cut_source"]["test_name"])
    prmse = skill.get("prmse")
    adds = {True: w(N_("yes")), False: w(N_("no")), None: "\u2014"}[skill.get("adds_value")]
    if prmse:
        adds = w(N_("%(answer)s (PRMSE of the skill's score %(sub)s, of the overall %(total)s; "
                    "%(n)s students)"), answer=adds, sub=w.num(prmse["subscore"]),
                 total=w.num(prmse["total"]), n=prmse["n_students"])
    prior = skill.get("prior") or {}
    facts = [
        (w(N_("Theta (se)")), f"{w.num(skill['theta'])} ({w.num(skill['se'])})"),
        (w(N_("95%% interval")), w.interval(skill.get("interval95"))),
        (w(N_("Cut score")), cut),
        (w(N_("Probability of mastery")), w.pct(skill.get("mastery_probability"))),
        (w(N_("Suggested decision")), w.decision(skill.get("suggested_decision"))),
        (w(N_("Decision")), f"{w.decision(skill.get('decision'))} "
                            f"({w(DECIDED_BY.get(skill.get('decided_by'), ''))})"),
        (w(N_("The skill's own score adds to the overall")), adds),
        (w(N_("Prior (mean, sd) and its weight")),
         f"{w.num(prior.get('mean'))}, {w.num(prior.get('sd'))}; "
         f"{w.pct(skill.get('prior_weight'))}"),
        (w(N_("Evidence")), w(N_("%(items)s answer(s), %(ratings)s rubric score(s)"),
                              items=skill.get("n_items", 0), ratings=skill.get("n_ratings", 0))),
    ]
    widths = [WIDTH * 0.34, WIDTH * 0.66]
    facts_table = Table([[cell(k, widths[0], "head"), cell(v, widths[1])] for k, v in facts],
                        colWidths=widths, style=GRID, hAlign="LEFT")
    facts_table.setStyle(TableStyle([("BACKGROUND", (0, 0), (0, -1), colors.HexColor("#f0f4f8")),
                                     ("BACKGROUND", (1, 0), (1, 0), colors.white),
                                     ("FONT", (0, 0), (0, -1), "Helvetica-Bold", 7.5, 9),
                                     ("FONT", (1, 0), (1, -1), "Helvetica", 7.5, 9)]))
    out: list[Flowable] = [KeepTogether([para(w(N_("Skill: %(skill)s"), skill=skill["skill"]),
                                              "h2"), facts_table])]
    decided = skill.get("teacher_decision")
    if decided:
        out.append(para(w(
            N_("%(teacher)s decided %(decision)s on %(date)s: %(reason)s The model suggested "
               "%(suggested)s (probability of mastery %(p)s)."),
            teacher=decided.get("decided_by_name") or "\u2014",
            decision=w.decision(decided.get("decision")), date=w.date(decided.get("decided_at")),
            reason=quoted(decided.get("reason")), suggested=w.decision(
                decided.get("suggested_decision")), p=w.pct(decided.get("mastery_probability"))),
            "note"))
    appeal = skill.get("open_appeal")
    if appeal:
        out.append(para(w(N_("Open appeal of %(date)s: %(message)s"),
                          date=w.date(appeal.get("created_at")),
                          message=quoted(appeal.get("message"))), "note"))
    flags = skill.get("flags") or []
    if flags:
        out.append(para(w(N_("What to look at")), "h3"))
        out += [Paragraph(escape(_flag(f, w)), STYLES["bullet"], bulletText="\u2022")
                for f in flags]
    evidence = skill.get("evidence") or []
    if evidence:
        out.append(para(w(N_("Evidence, heaviest first")), "h3"))
        out.append(table([w(N_("Date")), w(N_("Kind")), w(N_("What")), w(N_("Response")),
                          w(N_("Weight")), w(N_("Shift")), w(N_("Note"))],
                         _evidence_rows(skill, w), [15, 13, 27, 14, 9, 13, 12]))
        rest = sorted((e.get("weight") or 0.0 for e in evidence), reverse=True)[EVIDENCE_ROWS:]
        if rest:
            out.append(para(w(N_("and %(n)s more piece(s) of evidence, weighing %(weight)s "
                                 "together."), n=len(rest), weight=w.pct(sum(rest))), "small"))
        out.append(para(w(N_("The prior weighs %(weight)s."),
                          weight=w.pct(skill.get("prior_weight"))), "small"))
    steps = skill.get("next_steps") or []
    if steps:
        out.append(para(w(N_("Next steps")), "h3"))
        for step in steps:
            text = " \u2014 ".join(t for t in (_step_title(step, skill, w), _step_why(step, w),
                                                 step.get("url")) if t)
            out.append(Paragraph(escape(text), STYLES["bullet"], bulletText="\u2022"))
    return out


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _step_title(step: Mapping[str, Any], skill: Mapping[str, Any], w: Words) -> str | None:
    """A next step's title in the reader's language (the page's wording)."""
    if step.get("kind") == "practice" and isinstance(step.get("position"), int):
        return w(N_("Practice question %(n)d in %(skill)s"), n=step["position"],
                 skill=skill.get("skill"))
    return step.get("title")


def _step_why(step: Mapping[str, Any], w: Words) -> str | None:
    """Why a next step was chosen, worded from its ``why`` code in the reader's language (the
    page's wording); the English ``why_text`` for a code this does not know."""
    why = step.get("why") if isinstance(step.get("why"), Mapping) else {}
    code = why.get("code")
    if code == "practice_level" and _number(why.get("expected_success")) \
            and isinstance(why.get("recent_days"), int):
        return w(N_("expected success %(success)s at your level; not seen in the last "
                    "%(days)d days"), success=w.pct(why["expected_success"]),
                 days=why["recent_days"])
    if code == "resource_level" and _number(why.get("theta")):
        low, high, theta = why.get("level_min"), why.get("level_max"), w.num(why["theta"])
        if low is None and high is None:
            return w(N_("made for any level; your level is %(theta)s"), theta=theta)
        if low is None:
            return w(N_("made for levels up to %(high)s; your level is %(theta)s"),
                     high=w.num(high), theta=theta)
        if high is None:
            return w(N_("made for levels from %(low)s; your level is %(theta)s"),
                     low=w.num(low), theta=theta)
        return w(N_("made for levels %(low)s to %(high)s; your level is %(theta)s"),
                 low=w.num(low), high=w.num(high), theta=theta)
    return step.get("why_text")


def history(report: Mapping[str, Any], w: Words) -> list[Flowable]:
    """Every decision and appeal of the student, newest first."""
    decisions, appeals = report.get("decisions") or [], report.get("appeals") or []
    if not decisions and not appeals:
        return []
    out: list[Flowable] = [CondPageBreak(40 * mm), para(w(N_("Decisions and appeals")), "h2")]
    if decisions:
        rows = [[w.date(d.get("decided_at")), d.get("skill") or "\u2014",
                 w.decision(d.get("decision")), d.get("decided_by_name") or "\u2014",
                 d.get("reason") or "\u2014", w.decision(d.get("suggested_decision"))]
                for d in decisions]
        out.append(table([w(N_("Date")), w(N_("Skill")), w(N_("Decision")), w(N_("Teacher")),
                          w(N_("Reason")), w(N_("Model's suggestion"))],
                         rows, [14, 16, 16, 14, 40, 16]))
    if appeals:
        rows = []
        for a in appeals:
            answer = a.get("answer")
            said = (w(N_("open")) if not answer else w(
                N_("%(outcome)s by %(teacher)s on %(date)s: %(reason)s"),
                outcome=w(OUTCOMES.get(answer.get("outcome"), answer.get("outcome") or "")),
                teacher=answer.get("answered_by_name") or "\u2014",
                date=w.date(answer.get("answered_at")), reason=quoted(answer.get("reason"))))
            rows.append([w.date(a.get("created_at")), a.get("skill") or "\u2014",
                         w.decision(a.get("appealed_decision")), a.get("message") or "\u2014",
                         said])
        out += [Spacer(1, 6),
                table([w(N_("Appealed on")), w(N_("Skill")), w(N_("Decision appealed")),
                       w(N_("Message")), w(N_("Answer"))], rows, [14, 16, 16, 34, 36])]
    return out


def student_story(report: Mapping[str, Any], w: Words) -> list[Flowable]:
    """Every section of one student's report, in order."""
    story = header(report, w)
    if report.get("status") == "no_evidence" or not report.get("skills"):
        story.append(para(w(N_("No evidence yet: this student has no finished test and no "
                               "rubric score, so there is nothing to report.")), "h3"))
    else:
        story += skills_overview(report, w)
        story += trajectory(report, w)
        for skill in report["skills"]:
            story += skill_section(skill, w)
    return story + history(report, w)


# -- the class dashboard (reports.dashboard.class_dashboard's dict) ---------------------------

#: Skills per table of the grid: a wider class is split over several tables.
GRID_SKILLS = 6
#: Answers named per rapid-guess flag in the list of flagged students; the rest are counted.
DRIVER_ROWS = 6
#: The tint behind a decision's cell in the grid: the mark (:class:`_Badge`) and the word carry
#: the decision, the tint only repeats it.
TINTS = {"mastered": "#e3f2e7", "not_mastered": "#fbe9e7", "needs_evidence": "#fdf6e3"}
#: The flags of the dashboard's list of flagged students (the page's words).
FLAG_NAMES = {"rapid_guess": N_("rapid guesses"), "person_misfit": N_("unexpected answer pattern"),
              "rater_disagreement": N_("raters disagreed"),
              "too_little_evidence": N_("too little evidence")}
#: Group variables of the fairness table and their groups, in words (the page's words).
VARIABLES = {"time_accommodation": N_("Time accommodation")}
GROUPS = {"time_accommodation": {"standard": N_("standard time"),
                                 "extended": N_("extended time"),
                                 "none": N_("no time limit")}}


class _Badge(Flowable):
    """One line: ``text`` in bold, the decision's mark drawn as lines (a check for mastered, a
    cross for not mastered, a question mark for needs more evidence: no font needed, so every
    viewer shows it), then ``after`` in plain text."""

    SIZE = 7.5

    def __init__(self, text: str, decision: str | None, after: str = "") -> None:
        super().__init__()
        self.text, self.decision, self.after = text, decision, after
        self.lead = stringWidth(text, "Helvetica-Bold", self.SIZE) + (3 if text else 0)
        self.width = self.lead + 9 + stringWidth(after, "Helvetica", self.SIZE)
        self.height = 9

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return min(self.width, available_width), self.height

    def draw(self) -> None:
        c, size, x = self.canv, self.SIZE, self.lead
        c.setFillColor(pdf_charts.INK)
        c.setStrokeColor(pdf_charts.INK)
        c.setFont("Helvetica-Bold", size)
        c.drawString(0, 2, self.text)
        c.setLineWidth(1.4)
        c.setLineCap(1)
        if self.decision == "mastered":
            c.lines([(x, 5, x + 2.3, 2.3), (x + 2.3, 2.3, x + 6.5, 8)])
        elif self.decision == "not_mastered":
            c.lines([(x + 0.5, 2.3, x + 6, 7.8), (x + 0.5, 7.8, x + 6, 2.3)])
        elif self.decision == "needs_evidence":
            c.setFont("Helvetica-Bold", size + 1.5)
            c.drawString(x + 0.5, 2, "?")
        c.setFont("Helvetica", size)
        c.drawString(x + 9, 2, self.after)


def _grid_cell(entry: Mapping[str, Any] | None, w: Words) -> list[Flowable] | str:
    """A grid cell: the probability (a dash without a cut score, said below) and the decision's
    mark ("teacher" when a teacher decided), then the decision in words and the count of flags."""
    if entry is None:
        return "\u2014"
    decision = entry.get("decision")
    probability = entry.get("probability")
    badge = _Badge(w.pct(probability), decision,
                   w(N_("teacher")) if entry.get("decided_by") == "teacher" else "")
    lines = [w.decision(decision)]
    if probability is None:
        lines.append(w(N_("no cut score")))
    if entry.get("flags"):
        lines.append(w(N_("%(n)s flag(s)"), n=len(entry["flags"])))
    return [badge, Paragraph("<br/>".join(escape(t) for t in lines), STYLES["cell"])]


def dashboard_grid(dashboard: Mapping[str, Any], w: Words) -> list[Flowable]:
    """Students by skills, at most :data:`GRID_SKILLS` skills a table, with a legend."""
    skills = list(dashboard.get("skills") or [])
    rows = list(dashboard.get("grid") or [])
    badges = [_Badge("", code, w(word)) for code, word in DECISIONS.items()]
    legend = Table([badges], colWidths=[b.width + 14 for b in badges], hAlign="LEFT",
                   style=[("LEFTPADDING", (0, 0), (-1, -1), 0),
                          ("RIGHTPADDING", (0, 0), (-1, -1), 12)])
    out: list[Flowable] = [
        para(w(N_("Mastery by skill")), "h2"),
        legend,
        para(w(N_("Each cell: the probability of mastery with the decision's mark, then the "
                  "decision in words; \u201cteacher\u201d marks a teacher's decision, otherwise "
                  "it is the model's suggestion; \u2014: no evidence of the skill. Estimates "
                  "and their intervals are in each student's report.")), "small"),
        Spacer(1, 4),
    ]
    names = WIDTH * 0.2
    column = (WIDTH - names) / GRID_SKILLS
    for start in range(0, len(skills), GRID_SKILLS):
        chunk = range(start, min(start + GRID_SKILLS, len(skills)))
        data: list[list[Any]] = [[cell(w(N_("Student")), names, "head"),
                                  *(cell(skills[i], column, "head") for i in chunk)]]
        style: list[tuple] = []
        for r, row in enumerate(rows, start=1):
            cells = row.get("cells") or []
            data.append([cell((row.get("student") or {}).get("name", ""), names),
                         *(_grid_cell(cells[i] if i < len(cells) else None, w) for i in chunk)])
            for c, i in enumerate(chunk, start=1):
                entry = cells[i] if i < len(cells) else None
                if entry and entry.get("decision") in TINTS:
                    style.append(("BACKGROUND", (c, r), (c, r),
                                  colors.HexColor(TINTS[entry["decision"]])))
        grid_table = Table(data, colWidths=[names] + [column] * len(chunk), repeatRows=1,
                           style=GRID, hAlign="LEFT")
        grid_table.setStyle(TableStyle(style))
        out += [grid_table, Spacer(1, 8)]
    return out


def _drivers(flag: Mapping[str, Any], w: Words) -> str:
    """What drives a flag, in words (see :func:`reports.dashboard._drivers`)."""
    code, drivers = flag.get("code"), list(flag.get("drivers") or [])
    if code == "rapid_guess":
        said = []
        for d in drivers[:DRIVER_ROWS]:
            where = ", ".join(t for t in (d.get("test_name"), w.date(d.get("at"))
                                          if d.get("at") else None) if t)
            said.append(f"{d.get('source_id') or w(N_('an answer'))}"
                        + (f" ({where})" if where else ""))
        if len(drivers) > DRIVER_ROWS:
            said.append(w(N_("and %(n)s more"), n=len(drivers) - DRIVER_ROWS))
        return ", ".join(said)
    if code == "person_misfit":
        return ", ".join(w(N_("the attempt at %(test)s"),
                           test=d.get("test_name") or f"#{d.get('attempt_id')}") for d in drivers)
    if code == "rater_disagreement":
        return "; ".join(w(N_("defense %(id)d, criteria: %(criteria)s"), id=d.get("defense_id"),
                           criteria=", ".join(d.get("criteria") or [])) for d in drivers)
    if code == "too_little_evidence":
        return "; ".join(w(N_("standard error %(se)s, above the limit of %(limit)s"),
                           se=w.num(d.get("se")), limit=w.num(d.get("limit")))
                         for d in drivers)
    return ""


def dashboard_flagged(dashboard: Mapping[str, Any], w: Words) -> list[Flowable]:
    """The flagged students, each flagged skill with its flags and what drives them."""
    out: list[Flowable] = [CondPageBreak(30 * mm), para(w(N_("Flagged students")), "h2")]
    entries = dashboard.get("flagged") or []
    if not entries:
        return [*out, para(w(N_("No student is flagged.")))]
    for entry in entries:
        lines: list[Flowable] = [para((entry.get("student") or {}).get("name", ""), "h3")]
        for skill in entry.get("skills") or []:
            for flag in skill.get("flags") or []:
                name = w(FLAG_NAMES.get(flag.get("code"), flag.get("code") or ""))
                if flag.get("count"):
                    name += f" ({flag['count']})"
                drivers = _drivers(flag, w)
                text = f"{skill.get('skill')} ({w.decision(skill.get('decision'))}): {name}" \
                       + (f": {drivers}" if drivers else "")
                lines.append(Paragraph(escape(text), STYLES["bullet"], bulletText="\u2022"))
        out += lines
    return out


def _with_n(text: str, n: int | None) -> str:
    return f"{text} (n = {n})" if n is not None else text


def dashboard_metrics(dashboard: Mapping[str, Any], w: Words) -> list[Flowable]:
    """Per skill: the mean gain, the days to mastery and the share mastered now."""
    rows = []
    for m in dashboard.get("metrics") or []:
        gain, days, share = m["gain"], m["time_to_mastery"], m["share_mastered"]
        points = ("\u2014" if gain.get("probability") is None else
                  f"{w.signed(gain['probability'] * 100, 0)} {w(N_('points'))}")
        rows.append([m["skill"], str(m.get("n_students", 0)),
                     _with_n(w.signed(gain.get("theta")), gain.get("n")),
                     _with_n(points, gain.get("n_probability")),
                     _with_n(w.num(days.get("median_days"), 1), days.get("n")),
                     f"{w.pct(share.get('share'))} ({share.get('mastered')}/{share.get('n')})"])
    if not rows:
        return []
    notes = (N_("Gain: the estimate now minus the estimate after the student\u2019s first test "
                "or oral defense with evidence of the skill, averaged over students. Students "
                "with a single test or defense on the skill have no later evidence and are left "
                "out."),
             N_("Days to mastery: for students mastered now, the days from their first evidence "
                "of the skill to the first time it was mastered: a teacher\u2019s decision, or "
                "the end of the first test or defense after which the model suggested "
                "mastery."),
             N_("Mastered now: the share of the students with evidence of the skill whose "
                "decision (the teacher\u2019s, else the model\u2019s suggestion) is "
                "\u201cmastered\u201d."))
    return [CondPageBreak(40 * mm), para(w(N_("Progress")), "h2"),
            table([w(N_("Skill")), w(N_("Students")), w(N_("Mean gain in theta")),
                   w(N_("Mean gain in probability of mastery")),
                   w(N_("Days to mastery (median)")), w(N_("Mastered now"))],
                  rows, [22, 10, 17, 19, 16, 16]),
            Spacer(1, 2),
            *(Paragraph(escape(w(n)), STYLES["note_small"], bulletText="\u2022") for n in notes)]


def dashboard_fairness(dashboard: Mapping[str, Any], w: Words) -> list[Flowable]:
    """Per group variable: per group and skill, n, decision rates and mean theta; groups too
    small are said to be so, with no figures."""
    least = dashboard.get("min_group")
    out: list[Flowable] = [
        CondPageBreak(40 * mm), para(w(N_("Fairness")), "h2"),
        para(" ".join((w(N_("Groups of fewer than %(num)d students are not compared: their "
                            "figures would say more about a few students than about the "
                            "group."), num=least or 0),
                       w(N_("The one group variable stored about students today is their time "
                            "accommodation; other variables come only with the students\u2019 "
                            "consent.")))), "small")]
    header = [w(N_("Group and skill")), w(N_("Students")), *(w(d) for d in DECISIONS.values()),
              w(N_("Mean theta (95%% interval)"))]
    widths = [26, 10, 12, 12, 14, 26]
    for variable in dashboard.get("fairness") or []:
        code = variable.get("variable")
        names = GROUPS.get(code, {})
        rows, spans = [], []
        for group in variable.get("groups") or []:
            label = w(names[group["group"]]) if group["group"] in names else group["group"]
            if group.get("too_few"):
                spans.append(len(rows) + 1)
                rows.append([label, w(N_("too few to compare (fewer than %(num)d students)"),
                                      num=least or 0), "", "", "", ""])
                continue
            overall = group.get("overall") or {}
            theta = overall.get("theta") or {}
            rows.append([f"{label} \u00b7 {w(N_('overall estimate'))}", str(overall.get("n")),
                         "\u2014", "\u2014", "\u2014",
                         f"{w.num(theta.get('mean'))} ({w.interval(theta.get('interval95'))})"
                         if theta else "\u2014"])
            for s in group.get("skills") or []:
                rates, t = s.get("rates"), s.get("theta") or {}
                rows.append([f"{label} \u00b7 {s['skill']}", str(s.get("n", 0)),
                             *((w.pct(rates.get(d)) for d in DECISIONS) if rates
                               else ("\u2014",) * 3),
                             f"{w.num(t.get('mean'))} ({w.interval(t.get('interval95'))})"
                             if t else "\u2014"])
        result = table(header, rows, widths)
        result.setStyle(TableStyle([("SPAN", (1, r), (-1, r)) for r in spans]
                                   + [("FONT", (1, r), (-1, r), "Helvetica-Oblique", 7.5, 9)
                                      for r in spans]))
        out += [para(w(VARIABLES[code]) if code in VARIABLES else code, "h3"), result]
    return out


def dashboard_dif(dashboard: Mapping[str, Any], w: Words) -> list[Flowable]:
    """Per skill: the items answered, how many have DIF stored, and those flagged (B or C)."""
    rows = []
    for d in dashboard.get("dif") or []:
        if d.get("flags"):
            said = "\n".join(w(N_("%(item)s: category %(category)s, %(focal)s against "
                                  "%(reference)s (run %(run)s)"), item=f.get("code"),
                               category=f.get("category"), focal=f.get("focal"),
                               reference=f.get("reference"), run=f.get("run_id"))
                             for f in d["flags"])
        elif d.get("n_checked"):
            said = w(N_("none"))
        else:
            said = w(N_("not checked: no DIF is stored for these items"))
        rows.append([d["skill"], str(d.get("n_items", 0)), str(d.get("n_checked", 0)), said])
    if not rows:
        return []
    return [CondPageBreak(30 * mm),
            para(w(N_("Differential item functioning of the items behind each skill")), "h3"),
            para(w(N_("From the calibration run that produced each item\u2019s parameters in "
                      "use; its groups are those of the calibration data. Categories B "
                      "(moderate) and C (large) are flagged.")), "small"),
            table([w(N_("Skill")), w(N_("Items answered")), w(N_("Checked for DIF")),
                   w(N_("Flagged items"))], rows, [22, 12, 12, 54])]


def dashboard_story(dashboard: Mapping[str, Any], w: Words) -> list[Flowable]:
    """The class dashboard (:func:`reports.dashboard.class_dashboard`): the grid, the flagged
    students, the progress metrics, the fairness table and the DIF summary."""
    name = (dashboard.get("class") or {}).get("name", "")
    n = dashboard.get("n_students") or 0
    out: list[Flowable] = [
        para(w(N_("Class dashboard: %(name)s"), name=name), "title"),
        para(w(N_("%(n)s student(s). Generated %(when)s."), n=n,
               when=w.moment(dashboard.get("generated_at"))), "small"),
        para(w(N_("Every figure comes from the students\u2019 mastery reports: estimates with "
                  "their uncertainty. You make the decisions.")), "small"),
    ]
    if not n:
        return [*out, para(w(N_("No students are enrolled in this class yet.")))]
    if not dashboard.get("skills"):
        return [*out, para(w(N_("No student of this class has evidence yet.")))]
    return [*out, *dashboard_grid(dashboard, w), *dashboard_flagged(dashboard, w),
            *dashboard_metrics(dashboard, w), *dashboard_fairness(dashboard, w),
            *dashboard_dif(dashboard, w)]


# -- documents --------------------------------------------------------------------------------


class _Section(Flowable):
    """An invisible mark: the footer names ``label`` from this point on (``None``: unchanged);
    ``done`` runs once it is laid out (the class pack's progress)."""

    def __init__(self, label: str | None, done: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.label, self.done = label, done
        self.width = self.height = 0

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return 0, 0

    def draw(self) -> None:
        pass


class _Later(Flowable):
    """Stands for the flowables ``produce()`` returns, made when the layout reaches it."""

    def __init__(self, produce: Callable[[], list[Flowable]]) -> None:
        super().__init__()
        self.produce = produce

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return 0, 0

    def draw(self) -> None:
        pass


class _Document(BaseDocTemplate):
    """A4 pages with a footer naming the section (the student) and the page number."""

    def __init__(self, buffer: io.BytesIO, w: Words, title: str) -> None:
        super().__init__(buffer, pagesize=PAGE, leftMargin=MARGIN, rightMargin=MARGIN,
                         topMargin=MARGIN, bottomMargin=MARGIN + 4 * mm, title=title,
                         author="cat-engine", lang=w.language)
        self.words, self.label = w, ""
        frame = Frame(MARGIN, MARGIN + 4 * mm, WIDTH, PAGE[1] - 2 * MARGIN - 4 * mm, id="body")
        self.addPageTemplates([PageTemplate("page", [frame], onPageEnd=self._footer)])

    def handle_flowable(self, flowables: list[Flowable]) -> None:
        if flowables and isinstance(flowables[0], _Later):
            flowables[0:1] = flowables[0].produce()
            return
        super().handle_flowable(flowables)

    def afterFlowable(self, flowable: Flowable) -> None:
        if isinstance(flowable, _Section):
            if flowable.label is not None:
                self.label = flowable.label
            if flowable.done is not None:
                flowable.done()
                flowable.done = None

    def _footer(self, canvas, doc) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.setFillColor(colors.HexColor("#52606d"))
        label = pdf_charts.fit_text(self.label, WIDTH - 60, 7)
        canvas.drawString(MARGIN, MARGIN, label)
        canvas.drawRightString(PAGE[0] - MARGIN, MARGIN,
                               self.words(N_("Page %(page)s"), page=doc.page))
        canvas.restoreState()


def _render(story: list[Flowable], w: Words, title: str) -> bytes:
    buffer = io.BytesIO()
    _Document(buffer, w, title).build(story)
    return buffer.getvalue()


def _label(report: Mapping[str, Any], w: Words) -> str:
    student = report.get("student") or {}
    return w(N_("Mastery report: %(name)s"),
             name=student.get("name") or str(report.get("student_id")))


def student_pdf(report: Mapping[str, Any], *, language: str, gettext: Gettext) -> bytes:
    """One student's mastery report as a PDF.

    Parameters
    ----------
    report
        :func:`reports.report.student_report`'s result (the viewer's view of it).
    language
        The language code (``en``, ``es``) for numbers and dates.
    gettext
        Translates a marked string into ``language``.
    """
    w = Words(gettext, language)
    story: list[Flowable] = [_Section(_label(report, w)), *student_story(report, w)]
    return _render(story, w, _label(report, w))


def class_pack_pdf(reports: Iterable[Mapping[str, Any]],
                   dashboard: Mapping[str, Any] | Callable[[], Mapping[str, Any]], *,
                   language: str, gettext: Gettext, progress: Progress | None = None,
                   total: int | None = None) -> bytes:
    """The class pack: each student's report from a new page, then the class dashboard.

    Students are taken from ``reports`` one at a time while the pages are laid out, so a lazy
    iterable (a generator that builds each report when asked) keeps one student's report in
    the making at a time, and ``progress`` measures the whole work.

    Parameters
    ----------
    reports
        Students' reports, in the order to print; when a lazy iterable, ``total`` says how many
        there are.
    dashboard
        The class dashboard (:func:`reports.dashboard.class_dashboard`'s dict), or a function
        that returns it, called after the last student.
    progress
        Called as ``progress(done, total)`` after each student's pages are laid out.
    """
    w = Words(gettext, language)
    if total is None:
        reports = list(reports)
        total = len(reports)
    pending = iter(reports)
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    def next_student() -> list[Flowable]:
        report = next(pending, None)
        if report is None:
            board = dashboard() if callable(dashboard) else dashboard
            name = (board.get("class") or {}).get("name", "")
            return [_Section(w(N_("Class dashboard: %(name)s"), name=name)),
                    *dashboard_story(board, w)]
        return [_Section(_label(report, w)), *student_story(report, w), _Section(None, tick),
                PageBreak(), _Later(next_student)]

    return _render([_Later(next_student)], w, w(N_("Class report pack")))
