"""The class dashboard page: ``/teach/classes/<class_id>/dashboard``.

It lays out :func:`reports.dashboard.class_dashboard` and computes nothing: the grid of mastery
probabilities (the probability as text, the decision in words and a pattern per decision, so
colour is never the only cue), the flagged students with what drives each flag, the success
metrics per skill and the fairness table. The class's teacher and administrators only; another
teacher's class is *not found*, as everywhere.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from api.db import get_session
from api.staff import install_error_pages, not_found, page
from api.teacher_pages import teachers_only
from reports.dashboard import class_dashboard
from storage.accounts import User
from storage.errors import NotFound

bp = Blueprint("dashboard_pages", __name__, url_prefix="/teach")
#: A student's report page for teachers (issue 15's report pages): the grid's names link to it.
STUDENT_REPORT = "/teach/students/{id}/report"
install_error_pages(bp)

#: A decision in words (the same words for the model's suggestion and a teacher's decision).
DECISION_WORDS = {
    "mastered": _l("mastered"), "not_mastered": _l("not mastered yet"),
    "needs_evidence": _l("needs more evidence"),
}
#: The flags that concern a student's evidence, in words.
FLAG_WORDS = {
    "rapid_guess": _l("rapid guesses"), "person_misfit": _l("unexpected answer pattern"),
    "rater_disagreement": _l("raters disagreed"),
    "too_little_evidence": _l("too little evidence"),
}
#: Group variables and their groups, in words.
VARIABLE_WORDS = {"time_accommodation": _l("Time accommodation")}
GROUP_WORDS = {
    "time_accommodation": {"standard": _l("standard time"), "extended": _l("extended time"),
                           "none": _l("no time limit")},
}


@bp.get("/classes/<int:class_id>/dashboard")
@teachers_only
def class_dashboard_page(user: User, class_id: int) -> Response:
    """The class's mastery dashboard."""
    try:
        data = class_dashboard(get_session(), user, class_id)
    except NotFound:
        return not_found(user, _("There is no class %(id)d among yours.", id=class_id))
    for entry in data["flagged"]:  # moments for the reader's time zone, as on every page
        for flag in (f for s in entry["skills"] for f in s["flags"]):
            for driver in flag["drivers"]:
                if driver.get("at"):
                    driver["at_local"] = datetime.fromisoformat(driver["at"])
    return page("teacher/dashboard.html", user=user, data=data, decisions=DECISION_WORDS,
                flag_words=FLAG_WORDS, variables=VARIABLE_WORDS, group_words=GROUP_WORDS,
                report_path=_report_path())


def _report_path() -> str | None:
    """The address pattern of a student's report page for teachers, when the app has one."""
    rule = STUDENT_REPORT.replace("{id}", "<int:student_id>")
    return STUDENT_REPORT if any(r.rule == rule for r in current_app.url_map.iter_rules()) \
        else None
