"""Pages students take tests with: their tests, one item per page, and the result in plain words.

Every page works with plain forms (POST, then redirect to a GET). ``quiz.js`` submits the same
forms with ``fetch`` and the header ``X-Quiz-Fragment: 1``; the answer is then the page's main
content alone (``student/fragment.html``) with ``X-Quiz-Url`` naming the page it shows, or, when
the browser must go elsewhere (sign-in), an empty reply with ``X-Quiz-Location``.

The views call the services in :mod:`evidence.attempts` and :mod:`evidence.timing`
directly, commit once, and turn their errors into messages on the page, never a server error.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import secrets
import unicodedata
from collections.abc import Callable
from functools import wraps
from itertools import pairwise
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import BadRequest

from api import lti_grades
from api.db import get_session
from api.i18n import current_language, text_direction
from api.pages import current_user, safe_next
from api.site import public_url
from api.test_texts import skill_text, test_text
from evidence.attempts import (
    BAND_CODES,
    BAND_EDGES,
    Z95,
    attempt_reply,
    band_of,  # noqa: F401  (the teacher pages import it from here)
    class_test_language,
    fallback_module,
    finish_after_time_limit,
    offered_test_languages,
    open_assignments,
    start_attempt,
    student_result,
    submit_response,
    visible_attempt,
)
from evidence.drafts import open_task_cards
from evidence.models import Attempt, AttemptStatus
from evidence.timing import MAX_EXTENSIONS, TimeLimitConflict, extend_time, time_left
from item_bank.markup import render_html
from item_bank.services import BankError, current_snapshot_id, delivery_bank
from storage import as_utc, utcnow
from storage.accounts import Role, User
from storage.errors import Conflict, Forbidden, Invalid, NotFound

bp = Blueprint("student", __name__)
# A test's name, description and skill names in the reader's language, in every template.
bp.add_app_template_global(test_text, "test_text")
bp.add_app_template_global(skill_text, "skill_text")

FRAGMENT_HEADER = "X-Quiz-Fragment"
#: The flash category of notices that something did not happen as asked (shown as warnings).
WARNING = "warning"
HIDE_TIMER = "hide_timer"

#: The bands of :data:`evidence.attempts.BAND_CODES` in words.
BANDS = (
    _l("well below the middle"),
    _l("below the middle"),
    _l("around the middle"),
    _l("above the middle"),
    _l("well above the middle"),
)
#: How sure a level is (:func:`evidence.attempts.student_result`), as the headline says it.
SURENESS_TEXT = {
    "sure": _l("We are quite sure of this level."),
    "fairly_sure": _l("We are fairly sure of this level."),
    "rough": _l("This is a rough indication: a few more questions would make it surer."),
}
SKILL_SURENESS_TEXT = {
    "sure": _l("quite sure"),
    "fairly_sure": _l("fairly sure"),
    "rough": _l("rough"),
}
#: The theta range the result picture shows, and the step its positions are rounded to.
SCALE = (-3.0, 3.0)
PICTURE_STEP = 0.5

STOP_REASONS = (
    ("se", _l("Your result was precise enough.")),
    ("max_items", _l("You reached the largest number of questions in this test.")),
    ("classified", _l("Your answers were enough to make a recommendation.")),
    ("information_left", _l("More questions would not have made your result more precise.")),
    ("theta_change", _l("More questions would not have changed your result.")),
    ("bank_exhausted", _l("There were no more questions suited to you.")),
    ("time_limit", _l("The time ran out.")),
)


# -- plumbing ------------------------------------------------------------------------------------


def _is_fragment() -> bool:
    return request.headers.get(FRAGMENT_HEADER) == "1"


def _page(template: str, status: int = 200, **context: Any) -> Response:
    """Render a student page whole, or only its main content when ``quiz.js`` asks."""
    fragment = _is_fragment()
    layout = "student/fragment.html" if fragment else "base.html"
    response = make_response(render_template(template, layout=layout, **context), status)
    response.headers["Cache-Control"] = "no-store"
    response.vary.add(FRAGMENT_HEADER)
    if fragment:
        response.headers[FRAGMENT_HEADER] = "1"
    return response


def _go(endpoint: str, **values: Any) -> Response:
    """After a POST: redirect to a page (303), or, for ``quiz.js``, answer with that page."""
    url = url_for(endpoint, **values)
    if not _is_fragment():
        return redirect(url, 303)
    name = f"{bp.name}{endpoint}" if endpoint.startswith(".") else endpoint
    get_session().expire_all()  # the services may write with SQL that bypasses loaded objects
    response = make_response(current_app.view_functions[name](**values))
    response.headers.setdefault("X-Quiz-Url", url)
    return response


def _leave(url: str) -> Response:
    """Send the browser to a page outside the quiz (a full page load)."""
    if not _is_fragment():
        return redirect(url, 303 if request.method == "POST" else 302)
    response = make_response("", 200)
    response.headers["X-Quiz-Location"] = url
    return response


def _to_sign_in() -> Response:
    """To the sign-in page, coming back afterwards to the page asked for (or its attempt)."""
    if request.method == "GET":
        back = request.full_path.rstrip("?")
    elif request.view_args and "attempt_id" in request.view_args:
        back = url_for(".attempt", attempt_id=request.view_args["attempt_id"])
    else:
        back = url_for(".my_tests")
    flash(_("Please sign in to continue."))
    return _leave(url_for("pages.index", next=safe_next(back)))


def _message(title: str, text: str, status: int, user: User | None) -> Response:
    return _page("student/message.html", status, title=title, text=text, user=user)


def signed_in(students_only: bool = True) -> Callable:
    """Views for signed-in users, who are passed in: others go to sign-in (and come back), and
    staff get a message where only students may go."""

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        @wraps(view)
        def wrapper(**values: Any) -> Response:
            user = current_user()
            if user is None:
                return _to_sign_in()
            if students_only and user.role != Role.STUDENT:
                return _message(_("Only students take tests"),
                                _("Tests are taken with a student account. Staff can try a "
                                  "test design with a simulation instead."), 403, user)
            return view(user, **values)

        return wrapper

    return decorate


@bp.errorhandler(BadRequest)
def _bad_request(_error: BadRequest) -> Response:
    """A form that failed the CSRF check: usually a session that expired meanwhile."""
    if current_user() is None:
        return _to_sign_in()
    flash(_("The form had expired. Please try again."))
    attempt_id = (request.view_args or {}).get("attempt_id")
    if attempt_id is not None:
        return _go(".attempt", attempt_id=attempt_id)
    return _go(".my_tests")


@bp.errorhandler(SQLAlchemyError)
def _database_error(_error: SQLAlchemyError) -> Response:
    get_session().rollback()
    return _message(_("Please try again in a moment"),
                    _("The tests are not available just now. Nothing was lost: your answers "
                      "so far are saved. If this goes on, please tell your teacher."), 503,
                    None)


def _own_attempt(user: User, attempt_id: int) -> Attempt:
    attempt = visible_attempt(get_session(), user, attempt_id)
    if attempt.user_id != user.id:
        raise NotFound(f"no attempt {attempt_id} of yours")
    return attempt


def _not_found(user: User) -> Response:
    return _message(_("Not found"),
                    _("We could not find that test attempt among yours."), 404, user)


# -- working offline ---------------------------------------------------------------------------

#: The static files a test page needs, kept by the service worker (the offline page first).
SHELL_FILES = ("site.css", "quiz.js", "offline.js", "tz.js")


@functools.cache
def _service_worker(static: str, shell: tuple[str, ...]) -> str:
    """``sw.js`` with its shell's URLs and a version that changes when any of them does."""
    digest = hashlib.sha256()
    source = Path(static, "sw.js").read_text(encoding="utf-8")
    for name in shell:
        digest.update(Path(static, name).read_bytes())
    urls = [url_for(".offline")] + [url_for("static", filename=name) for name in shell]
    return (source.replace("{{version}}", digest.hexdigest()[:16])
            .replace("{{shell}}", json.dumps(urls)))


@bp.get("/sw.js")
def service_worker() -> Response:
    """The service worker (``delivery_ui/static/sw.js``), at the root: it serves every page."""
    response = make_response(_service_worker(current_app.static_folder, SHELL_FILES))
    response.mimetype = "text/javascript"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/offline")
def offline() -> Response:
    """The page the service worker shows for a test page opened without a connection."""
    response = _page("student/offline.html", user=None)
    response.headers["Cache-Control"] = "no-cache"
    return response


# -- my tests ------------------------------------------------------------------------------------


@bp.get("/my-tests")
@signed_in()
def my_tests(user: User) -> Response:
    """The tests open to the student now (Start or Resume), and their finished attempts."""
    db = get_session()
    attempts = list(db.scalars(select(Attempt).where(Attempt.user_id == user.id)
                               .order_by(Attempt.id.desc())))
    rows, seen = [], set()
    for assignment in open_assignments(db, user):
        if assignment.test_id in seen:
            continue
        seen.add(assignment.test_id)
        mine = [a for a in attempts if a.test_id == assignment.test_id]
        running = next((a for a in mine if a.status == AttemptStatus.IN_PROGRESS), None)
        used = sum(1 for a in mine if a.assignment_id == assignment.id)
        left = None if not assignment.max_attempts else max(0, assignment.max_attempts - used)
        languages, language = _test_languages(db, assignment) if running is None else ([], None)
        rows.append({"test": assignment.test, "assignment": assignment, "running": running,
                     "attempts_left": left, "languages": languages, "language": language,
                     "closes_at": as_utc(assignment.closes_at)})
    finished = [a for a in attempts if a.status == AttemptStatus.FINISHED]
    return _page("student/my_tests.html", user=user, rows=rows, finished=finished,
                 as_utc=as_utc, tasks=open_task_cards(db, user))


def _test_languages(db, assignment) -> tuple[list[str], str | None]:
    """The languages a test can be taken in, and the one preselected: the class's default test
    language, else the page's, else the one most items are written in."""
    try:
        delivery = delivery_bank(db, current_snapshot_id(db, assignment.test))
    except BankError:  # nothing to deliver: starting will say so
        return [], None
    offered = offered_test_languages(delivery)
    for wanted in (class_test_language(db, assignment), current_language()):
        if wanted in offered:
            return offered, wanted
    return offered, offered[0] if offered else None


@bp.post("/tests/<int:test_id>/start")
@signed_in()
def start(user: User, test_id: int) -> Response:
    """Start the test (or resume the attempt in progress) in the language chosen, and show its
    item."""
    db = get_session()
    language = request.form.get("language", "").strip() or None
    try:
        attempt, _reply, created = start_attempt(db, user, test_id, base_url=public_url(),
                                                 language=language,
                                                 page_language=current_language())
        db.commit()
    except Invalid:
        db.rollback()
        flash(_("That test is not offered in the language you chose; please choose another."))
        return _go(".my_tests")
    except NotFound:
        db.rollback()
        flash(_("That test is not open for you now."))
        return _go(".my_tests")
    except Forbidden:
        db.rollback()
        flash(_("You have used all your attempts at that test."))
        return _go(".my_tests")
    if not created:
        flash(_("Welcome back: you are where you left off."))
    return _go(".attempt", attempt_id=attempt.id)


# -- one item per page ---------------------------------------------------------------------------


def _options(item: dict[str, Any]) -> list[str]:
    return item["options"] or [str(k) for k in range(item.get("categories") or 0)]


def _fallback(attempt: Attempt, item: dict[str, Any]) -> dict[str, Any] | None:
    """What ``offline.js`` keeps for a dropped connection: the item shown and the fallback
    module after it (:func:`evidence.attempts.fallback_module`), ready to show, and the words
    it needs. Not for timed attempts: a clock needs the server to be fair."""
    if attempt.deadline is not None:
        return None
    db = get_session()
    try:
        module = fallback_module(db, attempt)
        db.commit()
    except SQLAlchemyError:  # a page without a fallback is still a page
        db.rollback()
        module = []
    shown = [{"id": i["id"], "position": i["position"], "stem": render_html(i["stem"]),
              "options": _options(i), "language": i.get("language"),
              "dir": text_direction(i.get("language"))} for i in [item, *module]]
    return {
        "attempt": attempt.id,
        "sync": url_for(".sync", attempt_id=attempt.id),
        "page": url_for(".attempt", attempt_id=attempt.id),
        "items": shown,
        "words": {
            "offline": _("You are offline. Your answers are kept on this device and will be "
                         "sent as soon as the connection returns."),
            "sending": _("The connection is back: sending your answers…"),
            "sent": _("Your answers have been sent."),
            "wait": _("You have answered every question this page could keep. Please "
                      "reconnect to go on: your answers are kept on this device."),
            "question": _("Question %(n)d", n=0),
            "submit": _("Submit answer"),
            "choose": _("Choose an answer, then submit it."),
            "refused": _("One answer could not be counted: %(reason)s", reason="%s"),
        },
    }


def _item_page(user: User, attempt: Attempt, error: str | None = None,
               status: int = 200) -> Response:
    db = get_session()
    reply = attempt_reply(db, attempt)
    item = reply["item"]
    timer = time_left(db, attempt)
    return _page(
        "student/item.html", status, user=user, attempt=attempt, test=attempt.test, item=item,
        options=_options(item), error=error, key=secrets.token_urlsafe(16), timer=timer,
        hide_timer=bool(session.get(HIDE_TIMER)), max_extensions=MAX_EXTENSIONS,
        fallback=_fallback(attempt, item),
    )


@bp.get("/attempts/<int:attempt_id>")
@signed_in()
def attempt(user: User, attempt_id: int) -> Response:
    """The item presented now; the result once the attempt is over."""
    try:
        attempt = _own_attempt(user, attempt_id)
    except NotFound:
        return _not_found(user)
    if attempt.status != AttemptStatus.IN_PROGRESS:
        return _go(".result", attempt_id=attempt_id)
    return _item_page(user, attempt)


def _form_int(name: str) -> int | None:
    value = request.form.get(name, "").strip()
    return int(value) if value.isascii() and value.isdecimal() and len(value) < 10 else None


@bp.post("/attempts/<int:attempt_id>/answer")
@signed_in()
def answer(user: User, attempt_id: int) -> Response:
    """Record the answer (once, however often the form is sent) and show what comes next."""
    db = get_session()
    try:
        attempt = _own_attempt(user, attempt_id)
    except NotFound:
        return _not_found(user)
    if attempt.status != AttemptStatus.IN_PROGRESS:
        return _go(".attempt", attempt_id=attempt_id)
    item_id = _form_int("item_id")
    key = request.form.get("idempotency_key", "").strip()[:255]
    if item_id is None or not key:
        flash(_("Your answer could not be read. Please answer this question again."))
        return _go(".attempt", attempt_id=attempt_id)
    response = _form_int("response")
    late = attempt.deadline is not None and utcnow() > as_utc(attempt.deadline)
    if response is None and not late:
        return _item_page(user, attempt, _("Choose an answer, then submit it."), 422)
    try:
        # After the deadline no answer is recorded (the service ends the attempt), so an
        # empty form is as good as any: it is how "See my result" gets there.
        reply, _replayed = submit_response(db, user, attempt_id, item_id,
                                           0 if response is None else response, key,
                                           base_url=public_url())
        db.commit()
        if reply.get("status") == AttemptStatus.FINISHED.value:
            lti_grades.after_attempt(attempt_id)  # an LTI launch's score goes to the platform
    except Invalid:
        db.rollback()
        return _item_page(user, _own_attempt(user, attempt_id),
                          _("Choose one of the answers shown."), 422)
    except Conflict as error:
        db.rollback()
        if error.field == "item_id":
            flash(_("That question was already answered. Here is your current question."))
        else:  # the key was used for another answer, or two sendings crossed
            flash(_("Your first answer to that question was already recorded."))
        return _go(".attempt", attempt_id=attempt_id)
    except NotFound:
        db.rollback()
        return _not_found(user)
    if reply.get("late"):
        flash(_("The time was up before that answer arrived, so it was not counted."), WARNING)
    return _go(".attempt", attempt_id=attempt_id)


#: The most answers one sync may carry (a page keeps the item shown and a module of six).
MAX_SYNC = 50


def _sync_answers() -> list[dict[str, Any]]:
    """The outbox sent by ``offline.js``: a JSON list in the form field ``answers``."""
    try:
        answers = json.loads(request.form.get("answers", ""))
    except ValueError:
        raise Invalid("answers must be a JSON list", field="answers") from None
    if not isinstance(answers, list) or not 0 < len(answers) <= MAX_SYNC:
        raise Invalid(f"answers must be a list of 1 to {MAX_SYNC} answers", field="answers")
    checked = []
    for n, entry in enumerate(answers, 1):
        fields = {}
        for name in ("item_id", "response", "position"):
            value = entry.get(name) if isinstance(entry, dict) else None
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
                raise Invalid(f"answer {n}: {name} must be a whole number", field=name)
            fields[name] = value
        key = entry.get("key")
        if not isinstance(key, str) or not 0 < len(key) <= 255:
            raise Invalid(f"answer {n}: key must be a text of 1 to 255 characters", field="key")
        elapsed = entry.get("ms")
        fields["ms"] = elapsed if isinstance(elapsed, int) and not isinstance(elapsed, bool) \
            and 0 <= elapsed < 2**31 else None
        checked.append({**fields, "key": key})
    return checked


@bp.post("/attempts/<int:attempt_id>/sync")
def sync(attempt_id: int) -> Response:
    """The answers a page kept while the connection was down, in the order given.

    Each is recorded as :func:`evidence.attempts.submit_response` records an online answer
    (``offline=True``), in its own transaction, so a sync cut short keeps what it recorded and
    a repeated one records nothing twice (each answer has its idempotency key). It stops at
    the first answer refused; the reply lists each answer's outcome (``recorded``,
    ``replayed``, ``refused`` with the reason, or ``not_sent``), as JSON.
    """
    user = current_user()
    if user is None or user.role != Role.STUDENT:
        return _json({"error": "sign in as the student whose attempt this is"}, 401)
    db = get_session()
    try:
        _own_attempt(user, attempt_id)
        answers = _sync_answers()
    except NotFound:
        return _json({"error": f"no attempt {attempt_id} of yours"}, 404)
    except Invalid as error:
        return _json({"error": str(error), "field": error.field}, 422)
    outcomes, stopped = [], False
    for answer in answers:
        if stopped:
            outcomes.append({"key": answer["key"], "outcome": "not_sent"})
            continue
        try:
            reply, replayed = submit_response(
                db, user, attempt_id, answer["item_id"], answer["response"], answer["key"],
                response_time_ms=answer["ms"], base_url=public_url(), offline=True,
                position=answer["position"])
            db.commit()
            outcomes.append({"key": answer["key"],
                             "outcome": "replayed" if replayed else "recorded",
                             "status": reply.get("status")})
        except (Invalid, Conflict) as error:
            db.rollback()
            stopped = True
            outcomes.append({"key": answer["key"], "outcome": "refused", "reason": str(error),
                             "field": error.field})
    return _json({"attempt": attempt_id, "answers": outcomes,
                  "page": url_for(".attempt", attempt_id=attempt_id)}, 200)


def _json(body: dict[str, Any], status: int) -> Response:
    response = make_response(json.dumps(body), status)
    response.mimetype = "application/json"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/attempts/<int:attempt_id>/finish")
@signed_in()
def finish(user: User, attempt_id: int) -> Response:
    """Once the time is up: end the attempt (recording no answer) and show the result."""
    db = get_session()
    try:
        finish_after_time_limit(db, user, attempt_id, base_url=public_url())
        db.commit()
        lti_grades.after_attempt(attempt_id)
    except NotFound:
        db.rollback()
        return _not_found(user)
    except Conflict:
        db.rollback()
        flash(_("There is still time: here is your question."), WARNING)
        return _go(".attempt", attempt_id=attempt_id)
    return _go(".result", attempt_id=attempt_id)


@bp.post("/attempts/<int:attempt_id>/more-time")
@signed_in()
def more_time(user: User, attempt_id: int) -> Response:
    """Extend the attempt's time limit by one step (WCAG 2.2.1)."""
    db = get_session()
    try:
        extended = extend_time(db, user, attempt_id, seen=_form_int("extensions_used"))
        db.commit()
    except NotFound:
        db.rollback()
        return _not_found(user)
    except TimeLimitConflict as error:
        db.rollback()
        flash({
            "no_extensions_left": _("You have used all %(n)d extensions of the time.",
                                    n=MAX_EXTENSIONS),
            "time_up": _("The time is already up, so it cannot be extended."),
            "no_limit": _("This test has no time limit to extend."),
        }.get(error.reason, _("This attempt is over.")), WARNING)
        return _go(".attempt", attempt_id=attempt_id)
    minutes = math.ceil(extended.step_seconds / 60)
    flash(ngettext("You have %(num)d more minute.", "You have %(num)d more minutes.", minutes))
    return _go(".attempt", attempt_id=attempt_id)


@bp.post("/attempts/<int:attempt_id>/timer")
@signed_in()
def timer(user: User, attempt_id: int) -> Response:
    """Hide or show the countdown (kept for the whole session)."""
    hide = request.form.get("show") != "1"
    session[HIDE_TIMER] = hide
    flash(_("The countdown is hidden.") if hide else _("The countdown is shown."))
    return _go(".attempt", attempt_id=attempt_id)


# -- the result ----------------------------------------------------------------------------------


def _scale_x(theta: float, width: float = 600.0) -> float:
    """Where ``theta`` (logits) sits on the picture, rounded to :data:`PICTURE_STEP` logits."""
    lo, hi = SCALE
    theta = round(theta / PICTURE_STEP) * PICTURE_STEP
    return round((min(hi, max(lo, theta)) - lo) / (hi - lo) * width, 1)


def _decision_text(decision: str) -> str:
    return {
        "mastered": _("We recommend: mastered. Your result is above the mastery level, even "
                      "allowing for its uncertainty."),
        "not_mastered": _("We recommend: not mastered yet. Your result is below the mastery "
                          "level, even allowing for its uncertainty."),
    }.get(decision, _("We cannot recommend either way yet: your result is too close to the "
                      "mastery level to tell. More practice or another test will help."))


def _sort_key(name: str) -> str:
    """Alphabetical in any Latin script: accents do not send "Álgebra" after "Z"."""
    return "".join(c for c in unicodedata.normalize("NFKD", name)
                   if not unicodedata.combining(c)).casefold()


def result_view(result: dict[str, Any], test: Any = None) -> dict[str, Any]:
    """The result (as :func:`evidence.attempts.summarise` stores it) in words and a picture,
    showing only what :func:`evidence.attempts.student_result` lets a student see.

    The picture places the estimate, its 95% range and the mastery level to the nearest
    :data:`PICTURE_STEP` logits, never finer: a picture is a figure too.
    """
    seen = student_result(result)
    view: dict[str, Any] = {
        "evidence": seen["evidence"], "n_given": seen.get("n_given"),
        "reason": next((text for prefix, text in STOP_REASONS
                        if str(seen.get("stop_reason") or "").startswith(prefix)), None),
        "time_out": str(seen.get("stop_reason") or "") == "time_limit",
    }
    if seen["evidence"] != "too_little":
        low, high = (BAND_CODES.index(code) for code in seen["range"])
        here = BAND_CODES.index(seen["level"])
        theta, se = result["theta"], result["se"]
        edges = [_scale_x(e) for e in (SCALE[0], *BAND_EDGES, SCALE[1])]
        cut = (result.get("mastery") or {}).get("cut_score")
        view |= {
            "band": BANDS[here], "band_index": here,
            "low_band": BANDS[low], "high_band": BANDS[high], "same_band": low == high,
            "sureness": SURENESS_TEXT[seen["evidence"]],
            "picture": {"x": _scale_x(theta), "low": _scale_x(theta - Z95 * se),
                        "high": _scale_x(theta + Z95 * se),
                        "cut": None if cut is None else _scale_x(cut),
                        "bands": list(pairwise(edges))},
        }
    mastery = seen.get("mastery")
    view["decision"] = mastery["decision"] if mastery else None
    view["decision_text"] = _decision_text(mastery["decision"]) if mastery else None
    skills = []
    for code, skill in seen["skills"].items():
        entry = {"name": skill_text(test, code), "n_items": skill["n_items"],
                 "evidence": skill["evidence"], "tested": True}
        if skill["evidence"] != "too_little":
            entry |= {"band": BANDS[BAND_CODES.index(skill["level"])],
                      "sureness": SKILL_SURENESS_TEXT[skill["evidence"]],
                      "decision": (skill.get("mastery") or {}).get("decision")}
        skills.append(entry)
    skills += [{"name": skill_text(test, code), "tested": False}
               for code in seen["skills_not_tested"]]
    view["skills"] = sorted(skills, key=lambda s: (not s["tested"], _sort_key(s["name"])))
    return view


@bp.get("/attempts/<int:attempt_id>/result")
@signed_in(students_only=False)
def result(user: User, attempt_id: int) -> Response:
    """A finished attempt's result, for its student (and the staff who may see it)."""
    try:
        attempt = visible_attempt(get_session(), user, attempt_id)
    except NotFound:
        return _not_found(user)
    if attempt.status == AttemptStatus.IN_PROGRESS:
        if attempt.user_id != user.id:
            return _not_found(user)
        return _go(".attempt", attempt_id=attempt_id)
    own = attempt.user_id == user.id
    view = result_view(attempt.result, attempt.test) if attempt.result else None
    figures = None
    if view is not None and not own:  # staff may see the figures behind the words
        theta, se = attempt.result["theta"], attempt.result["se"]
        figures = {"theta": theta, "se": se, "low": theta - Z95 * se, "high": theta + Z95 * se}
    return _page("student/result.html", user=user, attempt=attempt, test=attempt.test,
                 view=view, own=own, figures=figures)
