"""The student pages through Flask's test client: every error path ends on a page that says what
happened (never a server error), and nothing is recorded twice or half."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from api.app import create_app
from api.pages import safe_next
from api.student_pages import BANDS, result_view
from evidence.attempts import band_of
from evidence.models import Attempt, AttemptStatus
from evidence.timing import MAX_EXTENSIONS, extend_time, time_left
from storage import as_utc, utcnow
from storage.accounts import Accommodation, TimeAccommodation, User
from tests.delivery_ui.conftest import StudentWorld, csrf_of

ITEM = re.compile(r'name="item_id" value="(\d+)"')
KEY = re.compile(r'name="idempotency_key" value="([^"]+)"')
QUESTION = re.compile(r"<h1[^>]*>Question (\d+)</h1>")


def _start(world: StudentWorld, client) -> tuple[int, str]:
    """Start the test from My tests; returns the attempt id and the item page."""
    token = csrf_of(client.get("/my-tests").get_data(as_text=True))
    response = client.post(f"/tests/{world.test_id}/start", data={"csrf_token": token})
    assert response.status_code == 303
    attempt_id = int(response.headers["Location"].rsplit("/", 1)[1])
    return attempt_id, client.get(response.headers["Location"]).get_data(as_text=True)


def _form(html: str, response: int | None = 1, **changes) -> dict[str, str]:
    data = {"csrf_token": csrf_of(html), "item_id": ITEM.search(html).group(1),
            "idempotency_key": KEY.search(html).group(1)}
    if response is not None:
        data["response"] = str(response)
    return data | changes


def _flash(html: str) -> str:
    found = re.search(r'<div role="status" class="flash">(.*?)</div>', html, re.S)
    return re.sub(r"<[^>]+>|\s+", " ", found.group(1)).strip() if found else ""


# -- signing in and coming back ------------------------------------------------------------------


@pytest.mark.parametrize("target, expected", [
    ("/attempts/3", "/attempts/3"),
    ("/attempts/3?x=1", "/attempts/3?x=1"),
    ("//evil.example/x", None),
    ("/\\evil.example", None),
    ("https://evil.example/", None),
    ("javascript:alert(1)", None),
    ("attempts/3", None),
    ("/a\r\nSet-Cookie: x=1", None),
    ("", None),
    (None, None),
])
def test_only_same_site_paths_are_followed(target, expected) -> None:
    assert safe_next(target) == expected


def test_signed_out_item_url_goes_to_sign_in_and_back(student_world: StudentWorld) -> None:
    client = student_world.client_for("student1")
    attempt_id, _html = _start(student_world, client)
    other = student_world.app.test_client()  # a browser without the session cookie
    response = other.get(f"/attempts/{attempt_id}")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/?next=/attempts/{attempt_id}"
    page = other.get(response.headers["Location"]).get_data(as_text=True)
    assert f'name="next" value="/attempts/{attempt_id}"' in page
    assert "Please sign in to continue." in page
    signed_in = other.post("/sign-in", data={
        "username": "student1", "password": student_world.password,
        "csrf_token": csrf_of(page), "next": f"/attempts/{attempt_id}"})
    assert signed_in.headers["Location"] == f"/attempts/{attempt_id}"
    assert "Question 1" in other.get(f"/attempts/{attempt_id}").get_data(as_text=True)


def test_sign_in_ignores_a_next_that_leaves_the_site(student_world: StudentWorld) -> None:
    client = student_world.app.test_client()
    token = csrf_of(client.get("/").get_data(as_text=True))
    response = client.post("/sign-in", data={"username": "student1",
                                             "password": student_world.password,
                                             "csrf_token": token, "next": "//evil.example/"})
    assert response.headers["Location"] == "/my-tests"


def test_an_answer_posted_after_the_session_expired_comes_back_after_sign_in(
        student_world: StudentWorld) -> None:
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    expired = student_world.app.test_client()
    response = expired.post(f"/attempts/{attempt_id}/answer", data=_form(html))
    assert response.status_code == 303
    assert response.headers["Location"] == f"/?next=/attempts/{attempt_id}"
    assert student_world.responses(attempt_id) == 0
    # quiz.js is told where to go instead of getting a page to swap in
    response = expired.post(f"/attempts/{attempt_id}/answer", data=_form(html),
                            headers={"X-Quiz-Fragment": "1"})
    assert response.headers["X-Quiz-Location"] == f"/?next=/attempts/{attempt_id}"


# -- my tests, starting --------------------------------------------------------------------------


def test_my_tests_offers_start_then_resume_then_the_result(student_world: StudentWorld) -> None:
    client = student_world.client_for("student1")
    page = client.get("/my-tests").get_data(as_text=True)
    assert "Maths" in page and ">Start</button>" in page and "No finished tests yet." in page
    attempt_id, html = _start(student_world, client)
    page = client.get("/my-tests").get_data(as_text=True)
    assert f'href="/attempts/{attempt_id}"' in page and ">Resume</a>" in page
    # Start again resumes the same attempt, with a word about it
    again = client.post(f"/tests/{student_world.test_id}/start",
                        data={"csrf_token": csrf_of(page)}, follow_redirects=True)
    assert "you are where you left off" in again.get_data(as_text=True)
    assert len(student_world.attempts()) == 1
    while ITEM.search(html):
        html = client.post(f"/attempts/{attempt_id}/answer", data=_form(html),
                           follow_redirects=True).get_data(as_text=True)
    assert "Your result" in html
    page = client.get("/my-tests").get_data(as_text=True)
    assert f'href="/attempts/{attempt_id}/result"' in page and ">Start</button>" in page


def test_a_test_not_assigned_is_refused_with_a_message(student_world: StudentWorld) -> None:
    client = student_world.client_for("student3")  # in class 7B, which has no assignment
    page = client.get("/my-tests").get_data(as_text=True)
    assert "No tests are open for you right now." in page
    response = client.post(f"/tests/{student_world.test_id}/start",
                           data={"csrf_token": csrf_of(page)}, follow_redirects=True)
    assert response.status_code == 200
    assert _flash(response.get_data(as_text=True)) == "That test is not open for you now."
    assert student_world.attempts("student3") == []


def test_used_up_attempts_are_said_not_offered(student_world: StudentWorld) -> None:
    student_world.set_time_limit(None, max_attempts=1)
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    while ITEM.search(html):
        html = client.post(f"/attempts/{attempt_id}/answer", data=_form(html),
                           follow_redirects=True).get_data(as_text=True)
    page = client.get("/my-tests").get_data(as_text=True)
    assert "You have used all your attempts at this test." in page
    assert ">Start</button>" not in page
    response = client.post(f"/tests/{student_world.test_id}/start",
                           data={"csrf_token": csrf_of(page)}, follow_redirects=True)
    assert _flash(response.get_data(as_text=True)) == \
        "You have used all your attempts at that test."


def test_staff_get_a_message_not_a_test(student_world: StudentWorld) -> None:
    client = student_world.client_for("teacher1")
    response = client.get("/my-tests")
    assert response.status_code == 403
    assert "Only students take tests" in response.get_data(as_text=True)
    response = client.post(f"/tests/{student_world.test_id}/start",
                           data={"csrf_token": csrf_of(client.get("/").get_data(as_text=True))})
    assert response.status_code == 403
    assert student_world.attempts("teacher1") == []


def test_someone_elses_attempt_is_not_found(student_world: StudentWorld) -> None:
    attempt_id, _html = _start(student_world, student_world.client_for("student1"))
    other = student_world.client_for("student2")
    for path in (f"/attempts/{attempt_id}", f"/attempts/{attempt_id}/result",
                 "/attempts/999999"):
        response = other.get(path)
        assert response.status_code == 404, path
        assert "We could not find that test attempt among yours." in \
            response.get_data(as_text=True)
    page = other.get("/my-tests").get_data(as_text=True)
    response = other.post(f"/attempts/{attempt_id}/answer",
                          data={"csrf_token": csrf_of(page), "item_id": "1",
                                "idempotency_key": "k", "response": "1"})
    assert response.status_code == 404
    assert student_world.responses(attempt_id) == 0


def test_the_teacher_of_the_class_may_read_a_result(student_world: StudentWorld) -> None:
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    while ITEM.search(html):
        html = client.post(f"/attempts/{attempt_id}/answer", data=_form(html, 0),
                           follow_redirects=True).get_data(as_text=True)
    teacher = student_world.client_for("teacher1")
    page = teacher.get(f"/attempts/{attempt_id}/result").get_data(as_text=True)
    assert "Result of Student1" in page and "a teacher makes the final decision" in page
    assert student_world.client_for("teacher2").get(
        f"/attempts/{attempt_id}/result").status_code == 404


# -- answering -----------------------------------------------------------------------------------


def test_missing_answer_is_named_next_to_the_question_and_nothing_is_recorded(
        student_world: StudentWorld) -> None:
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    response = client.post(f"/attempts/{attempt_id}/answer", data=_form(html, None))
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'aria-invalid="true" aria-describedby="response-error"' in page
    assert '<p class="error" id="response-error" data-announce>Choose an answer, then submit ' \
           "it.</p>" in page
    assert QUESTION.search(page).group(1) == "1"
    assert student_world.responses(attempt_id) == 0


def test_an_answer_that_is_not_an_option_is_refused(student_world: StudentWorld) -> None:
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    for bad in ("9", "-1", "one", "99999999999"):
        response = client.post(f"/attempts/{attempt_id}/answer",
                               data=_form(html, None) | {"response": bad})
        assert response.status_code == 422, bad
        assert "aria-invalid" in response.get_data(as_text=True)
    assert student_world.responses(attempt_id) == 0


def test_a_repeated_form_is_recorded_once(student_world: StudentWorld) -> None:
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    form = _form(html)
    first = client.post(f"/attempts/{attempt_id}/answer", data=form)
    second = client.post(f"/attempts/{attempt_id}/answer", data=form)
    assert first.status_code == second.status_code == 303
    assert second.headers["Location"] == f"/attempts/{attempt_id}"
    assert student_world.responses(attempt_id) == 1
    page = client.get(f"/attempts/{attempt_id}").get_data(as_text=True)
    assert QUESTION.search(page).group(1) == "2"


def test_the_same_key_with_another_answer_keeps_the_first(student_world: StudentWorld) -> None:
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    client.post(f"/attempts/{attempt_id}/answer", data=_form(html, 1))
    response = client.post(f"/attempts/{attempt_id}/answer", data=_form(html, 2),
                           follow_redirects=True)
    page = response.get_data(as_text=True)
    assert _flash(page) == "Your first answer to that question was already recorded."
    assert QUESTION.search(page).group(1) == "2"
    assert student_world.responses(attempt_id) == 1


def test_a_stale_item_goes_to_the_current_one(student_world: StudentWorld) -> None:
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    client.post(f"/attempts/{attempt_id}/answer", data=_form(html))
    stale = _form(html, idempotency_key="another-key")  # e.g. a second tab, still on item 1
    response = client.post(f"/attempts/{attempt_id}/answer", data=stale)
    assert response.status_code == 303
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert _flash(page) == "That question was already answered. Here is your current question."
    assert QUESTION.search(page).group(1) == "2"
    assert student_world.responses(attempt_id) == 1


def test_a_form_without_its_item_is_asked_again(student_world: StudentWorld) -> None:
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    response = client.post(f"/attempts/{attempt_id}/answer",
                           data=_form(html, item_id="x"), follow_redirects=True)
    assert "Your answer could not be read" in _flash(response.get_data(as_text=True))
    assert student_world.responses(attempt_id) == 0


def test_a_form_without_csrf_token_is_refused_with_a_message(student_world: StudentWorld) -> None:
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    data = _form(html)
    del data["csrf_token"]
    response = client.post(f"/attempts/{attempt_id}/answer", data=data, follow_redirects=True)
    assert response.status_code == 200
    assert _flash(response.get_data(as_text=True)) == "The form had expired. Please try again."
    assert student_world.responses(attempt_id) == 0


def test_quiz_js_gets_the_next_item_as_a_fragment(student_world: StudentWorld) -> None:
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    response = client.post(f"/attempts/{attempt_id}/answer", data=_form(html),
                           headers={"X-Quiz-Fragment": "1"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["X-Quiz-Fragment"] == "1"
    assert response.headers["X-Quiz-Url"] == f"/attempts/{attempt_id}"
    assert response.headers["Cache-Control"] == "no-store"
    assert "X-Quiz-Fragment" in response.headers["Vary"]
    assert page.lstrip().startswith('<div id="quiz-fragment" data-title="Question 2 · Maths">')
    assert "<html" not in page and "<footer" not in page
    missing = client.post(f"/attempts/{attempt_id}/answer", data=_form(page, None),
                          headers={"X-Quiz-Fragment": "1"})
    assert missing.status_code == 422 and "aria-invalid" in missing.get_data(as_text=True)


def test_the_last_answer_leads_to_the_result_in_plain_words(student_world: StudentWorld) -> None:
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    while ITEM.search(html):
        response = client.post(f"/attempts/{attempt_id}/answer", data=_form(html),
                               headers={"X-Quiz-Fragment": "1"})
        html = response.get_data(as_text=True)
    assert response.headers["X-Quiz-Url"] == f"/attempts/{attempt_id}/result"
    page = client.get(f"/attempts/{attempt_id}/result").get_data(as_text=True)
    (attempt,) = student_world.attempts()
    band = BANDS[band_of(attempt.theta)]
    assert f'<p class="band">{str(band).capitalize()}</p>' in page
    assert "We are 95% sure" in page
    assert "We recommend: mastered." in page  # every answer right: well above the cut score 0
    assert "This is a recommendation: a teacher makes the final decision." in page
    assert "By skill" in page and "Algebra" in page
    # the item page of a finished attempt is its result
    assert client.get(f"/attempts/{attempt_id}").headers["Location"] == \
        f"/attempts/{attempt_id}/result"


# -- time limits ---------------------------------------------------------------------------------


def test_the_time_left_is_shown_and_can_be_extended_ten_times(student_world: StudentWorld) -> None:
    student_world.set_time_limit(10)
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    # the page shows the seconds left when it was rendered: a slow machine may take a few
    clock = re.search(r'<strong id="clock" data-seconds="(\d+)">(\d+):(\d\d)</strong>', html)
    assert clock, html
    seconds = int(clock[1])
    assert 590 <= seconds <= 600 and (int(clock[2]), int(clock[3])) == divmod(seconds, 60)
    assert "More time (+5 min)" in html and "extend the time 10 times" in html
    (before,) = student_world.attempts()
    for n in range(1, MAX_EXTENSIONS + 1):
        page = client.post(f"/attempts/{attempt_id}/more-time",
                           data={"csrf_token": csrf_of(html)}, follow_redirects=True)
        assert _flash(page.get_data(as_text=True)) == "You have 5 more minutes.", n
    (after,) = student_world.attempts()
    assert as_utc(after.deadline) - as_utc(before.deadline) == timedelta(minutes=50)
    page = page.get_data(as_text=True)
    assert 'id="more-time"' not in page and "More time”" not in page  # all used
    refused = client.post(f"/attempts/{attempt_id}/more-time",
                          data={"csrf_token": csrf_of(html)}, follow_redirects=True)
    assert _warning(refused.get_data(as_text=True)) == \
        "You have used all 10 extensions of the time."
    (last,) = student_world.attempts()
    assert last.deadline == after.deadline


def test_the_countdown_can_be_hidden_for_the_session(student_world: StudentWorld) -> None:
    student_world.set_time_limit(10)
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    page = client.post(f"/attempts/{attempt_id}/timer",
                       data={"csrf_token": csrf_of(html), "show": "0"},
                       follow_redirects=True).get_data(as_text=True)
    assert '<p id="time-left" hidden>' in page and "Show the countdown" in page
    assert _flash(page) == "The countdown is hidden."
    page = client.get(f"/attempts/{attempt_id}").get_data(as_text=True)
    assert '<p id="time-left" hidden>' in page  # still hidden on the next item page
    page = client.post(f"/attempts/{attempt_id}/timer",
                       data={"csrf_token": csrf_of(html), "show": "1"},
                       follow_redirects=True).get_data(as_text=True)
    assert '<p id="time-left">' in page and "Hide the countdown" in page


def _warning(html: str) -> str:
    found = re.search(r'<div role="status" class="flash flash-warning">(.*?)</div>', html, re.S)
    return re.sub(r"<[^>]+>|\s+", " ", found.group(1)).strip() if found else ""


def test_after_the_deadline_nothing_is_recorded_and_the_result_follows(
        student_world: StudentWorld) -> None:
    student_world.set_time_limit(10)
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    student_world.move_deadline(attempt_id, -5)
    page = client.get(f"/attempts/{attempt_id}").get_data(as_text=True)
    # No question to answer, no time to ask for: a warning and a plain way to the result.
    assert "The time is up" in page and 'class="warning"' in page
    assert 'id="see-result"' in page and "See my result" in page
    assert "More time" not in page and 'name="response"' not in page
    assert "not counted" not in page and "Submit answer" not in page
    refused = client.post(f"/attempts/{attempt_id}/more-time",
                          data={"csrf_token": csrf_of(html)}, follow_redirects=True)
    refused = refused.get_data(as_text=True)
    assert _warning(refused) == "The time is already up, so it cannot be extended."
    assert _flash(refused) == ""  # not in the green banner of things done
    response = client.post(f"/attempts/{attempt_id}/finish",
                           data={"csrf_token": csrf_of(page)}, follow_redirects=True)
    result = response.get_data(as_text=True)
    assert "Your result" in result and _flash(result) == _warning(result) == ""
    (attempt,) = student_world.attempts()
    assert attempt.status == AttemptStatus.FINISHED and attempt.stop_reason == "time_limit"
    assert student_world.responses(attempt_id) == 0
    again = client.post(f"/attempts/{attempt_id}/finish", data={"csrf_token": csrf_of(page)})
    assert again.headers["Location"] == f"/attempts/{attempt_id}/result"  # sent twice: harmless


def test_an_answer_sent_after_the_deadline_is_not_counted_with_a_warning(
        student_world: StudentWorld) -> None:
    student_world.set_time_limit(10)
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    student_world.move_deadline(attempt_id, -5)  # the page was loaded in time; the answer is late
    response = client.post(f"/attempts/{attempt_id}/answer", data=_form(html),
                           follow_redirects=True)
    result = response.get_data(as_text=True)
    assert "Your result" in result and _flash(result) == ""
    assert _warning(result) == \
        "The time was up before that answer arrived, so it was not counted."
    assert student_world.responses(attempt_id) == 0


def test_see_my_result_before_the_deadline_keeps_the_question(
        student_world: StudentWorld) -> None:
    student_world.set_time_limit(10)
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    page = client.post(f"/attempts/{attempt_id}/finish", data={"csrf_token": csrf_of(html)},
                       follow_redirects=True).get_data(as_text=True)
    assert _warning(page) == "There is still time: here is your question."
    assert ITEM.search(page)
    (attempt,) = student_world.attempts()
    assert attempt.status == AttemptStatus.IN_PROGRESS


def test_no_time_limit_no_clock_and_nothing_to_extend(student_world: StudentWorld) -> None:
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    assert 'id="clock"' not in html and "More time" not in html
    response = client.post(f"/attempts/{attempt_id}/more-time",
                           data={"csrf_token": csrf_of(html)}, follow_redirects=True)
    assert _warning(response.get_data(as_text=True)) == "This test has no time limit to extend."


def test_extensions_follow_the_students_extended_time(student_world: StudentWorld) -> None:
    student_world.set_time_limit(20)
    with student_world.db() as session:
        session.add(Accommodation(user_id=student_world.ids["users"]["student1"],
                                  time=TimeAccommodation.EXTENDED, time_factor=1.5))
    attempt_id, _html = _start(student_world, student_world.client_for("student1"))
    with student_world.db() as session:
        attempt = session.get(Attempt, attempt_id)
        user = session.get(User, attempt.user_id)
        now = as_utc(attempt.started_at)
        before = time_left(session, attempt, now)
        assert before.seconds_left == 30 * 60 and before.step_seconds == 15 * 60
        assert (before.extensions_used, before.extensions_left) == (0, MAX_EXTENSIONS)
        after = extend_time(session, user, attempt_id, now)
        assert after.seconds_left == 45 * 60
        assert (after.extensions_used, after.extensions_left) == (1, MAX_EXTENSIONS - 1)
    with student_world.db() as session:  # recorded on the attempt
        assert as_utc(session.get(Attempt, attempt_id).deadline) == after.deadline


# -- languages -----------------------------------------------------------------------------------


def test_the_language_follows_the_browser_then_the_selector(student_world: StudentWorld) -> None:
    client = student_world.client_for(None)
    spanish = client.get("/", headers={"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"})
    assert '<html lang="es" dir="ltr">' in spanish.get_data(as_text=True)
    assert "Iniciar sesión" in spanish.get_data(as_text=True)
    assert '<html lang="en" dir="ltr">' in client.get(
        "/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    token = csrf_of(spanish.get_data(as_text=True))
    response = client.post("/language", data={"lang": "es", "next": "/?next=%2Fmy-tests",
                                              "csrf_token": token})
    assert response.headers["Location"] == "/?next=%2Fmy-tests"
    assert "lang=es" in response.headers["Set-Cookie"]
    page = client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="es" dir="ltr">' in page  # the choice beats the browser's preference
    assert "Las páginas están ahora en español." in page
    back = client.post("/language", data={"lang": "en", "next": "https://evil.example/",
                                          "csrf_token": token})
    assert back.headers["Location"] == "/"
    refused = client.post("/language", data={"lang": "xx", "csrf_token": token},
                          follow_redirects=True)
    assert "Choose one of the languages offered." in refused.get_data(as_text=True)


def test_a_whole_test_in_spanish(student_world: StudentWorld) -> None:
    client = student_world.client_for(None)
    client.set_cookie("lang", "es")
    client = student_world.client_for("student1")
    client.set_cookie("lang", "es")
    page = client.get("/my-tests").get_data(as_text=True)
    assert "<h1" in page and "Mis pruebas</h1>" in page and ">Empezar</button>" in page
    token = csrf_of(page)
    response = client.post(f"/tests/{student_world.test_id}/start", data={"csrf_token": token},
                           follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "Pregunta 1</h1>" in html and "Enviar respuesta" in html
    attempt_id = student_world.attempts()[0].id
    missing = client.post(f"/attempts/{attempt_id}/answer", data=_form(html, None))
    assert "Elige una respuesta y luego envíala." in missing.get_data(as_text=True)
    while ITEM.search(html):
        html = client.post(f"/attempts/{attempt_id}/answer", data=_form(html),
                           follow_redirects=True).get_data(as_text=True)
    assert "Tu resultado" in html and "Recomendamos: dominado." in html
    assert "la decisión final la toma un profesor o profesora" in html


# -- failures of the database --------------------------------------------------------------------


def test_an_unready_database_gives_a_page_not_a_server_error(empty_sqlite_url: str) -> None:
    app = create_app({"TESTING": True, "DATABASE_URL": empty_sqlite_url, "SECRET_KEY": "k"})
    client = app.test_client()
    with client.session_transaction() as session:
        session["sid"] = "a session id"  # looking it up needs the database
    response = client.get("/my-tests")
    assert response.status_code == 503
    assert "Please try again in a moment" in response.get_data(as_text=True)


# -- the result in words -------------------------------------------------------------------------


def test_bands_of_the_scale() -> None:
    assert [band_of(t) for t in (-2.0, -1.5, -0.6, 0.0, 0.49, 0.5, 1.6)] == [0, 1, 1, 2, 2, 3, 4]


@pytest.mark.parametrize("decision, words", [
    ("mastered", "We recommend: mastered."),
    ("not_mastered", "We recommend: not mastered yet."),
    ("undecided", "We cannot recommend either way yet"),
])
def test_the_recommendation_is_worded_by_decision(student_world: StudentWorld, decision,
                                                  words) -> None:
    result = {"theta": 0.1, "se": 0.3, "interval95": [-0.49, 0.69], "stop_reason": "se<=0.3",
              "n_scored": 10, "n_given": 12, "skills": {},
              "mastery": {"cut_score": 0.0, "decision": decision}}
    with student_world.app.test_request_context():
        view = result_view(result)
    assert view["decision_text"].startswith(words)
    assert view["reason"] == "Your result was precise enough."
    assert (str(view["low_band"]), str(view["high_band"])) == ("around the middle",
                                                               "above the middle")


def test_time_left_without_a_deadline_is_none(student_world: StudentWorld) -> None:
    attempt_id, _html = _start(student_world, student_world.client_for("student1"))
    with student_world.db() as session:
        attempt = session.scalar(select(Attempt).where(Attempt.id == attempt_id))
        assert attempt.deadline is None
        assert time_left(session, attempt, utcnow()) is None


def test_starts_sent_at_once_make_one_attempt(student_world: StudentWorld) -> None:
    """A double click on Start (here four at once): one attempt, one exposure, all resume it."""
    import threading

    from sqlalchemy import func

    from item_bank.models import ItemExposure

    student_world.set_time_limit(None, max_attempts=1)
    clients = [student_world.client_for("student1") for _ in range(4)]
    tokens = [csrf_of(c.get("/my-tests").get_data(as_text=True)) for c in clients]
    barrier = threading.Barrier(len(clients))
    places: list[str] = []

    def start(client, token) -> None:
        barrier.wait()
        response = client.post(f"/tests/{student_world.test_id}/start",
                               data={"csrf_token": token})
        places.append(response.headers.get("Location"))

    threads = [threading.Thread(target=start, args=pair)
               for pair in zip(clients, tokens, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    (attempt,) = student_world.attempts()
    assert places == [f"/attempts/{attempt.id}"] * 4
    with student_world.db() as session:
        assert session.scalar(select(func.sum(ItemExposure.administered))) == 1


def test_a_resent_more_time_form_extends_once(student_world: StudentWorld) -> None:
    student_world.set_time_limit(10)
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    used = re.search(r'name="extensions_used" value="(\d+)"', html).group(1)
    assert used == "0"
    form = {"csrf_token": csrf_of(html), "extensions_used": used}
    for _ in range(3):  # a double click, then a retry after a lost reply: the same page's form
        client.post(f"/attempts/{attempt_id}/more-time", data=form)
    (attempt,) = student_world.attempts()
    assert attempt.time_extensions == 1
    assert as_utc(attempt.deadline) - as_utc(attempt.started_at) == timedelta(minutes=15)
    page = client.get(f"/attempts/{attempt_id}").get_data(as_text=True)
    assert 'name="extensions_used" value="1"' in page  # the next press is a new extension


def test_changing_the_limit_mid_attempt_keeps_the_extensions_exact(
        student_world: StudentWorld) -> None:
    student_world.set_time_limit(10)
    client = student_world.client_for("student1")
    attempt_id, html = _start(student_world, client)
    client.post(f"/attempts/{attempt_id}/more-time", data={"csrf_token": csrf_of(html)})
    student_world.set_time_limit(60)  # the teacher changes the assignment meanwhile
    with student_world.db() as session:
        attempt = session.get(Attempt, attempt_id)
        left = time_left(session, attempt)
        assert (left.step_seconds, left.extensions_used) == (300, 1)  # half of the 10 granted
    page = client.get(f"/attempts/{attempt_id}").get_data(as_text=True)
    assert "More time (+5 min)" in page and "extend the time 9 times" in page
