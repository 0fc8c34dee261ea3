"""What a student is shown of a result, on the page and through the API: levels in words with how
sure they are, never the figures (theta, se, counts of right answers, cut scores) from which the
keys of operational items can be worked out; no level from too few answers; skills not tested
named; the mastery level marked on the picture."""

from __future__ import annotations

import re
import uuid
from typing import Any

import numpy as np
import pytest

from api.student_pages import BANDS, result_view
from cat_engine.session import AnsweredItem, SessionResult
from evidence.attempts import (
    BAND_CODES,
    MIN_EVIDENCE_ITEMS,
    band_of,
    student_result,
    summarise,
)
from evidence.models import Attempt, AttemptStatus
from item_bank.services import delivery_bank
from tests.delivery_ui.conftest import StudentWorld

#: Keys that carry figures a student must not get (see ``student_result``).
FIGURES = {"theta", "se", "interval95", "n_correct", "n_scored", "cut_score"}


def _token(world: StudentWorld, username: str) -> str:
    r = world.app.test_client().post("/api/v1/auth/token",
                                     json={"username": username, "password": world.password})
    return r.get_json()["access_token"]


def _api(world: StudentWorld, token: str):
    client = world.app.test_client()

    def call(method: str, path: str, **kwargs):
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)

    return call


def _answer(call, attempt_id: int, item_id: int, choice: int) -> dict:
    r = call("POST", f"/attempts/{attempt_id}/responses", json={"item_id": item_id,
                                                                "response": choice},
             headers={"Idempotency-Key": uuid.uuid4().hex})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def _walk(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every (path, leaf) of a JSON value."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _walk(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _walk(v, f"{path}[{i}]")]
    return [(path, value)]


def _assert_no_figures(result: dict) -> None:
    for path, leaf in _walk(result):
        assert path.rsplit(".", 1)[-1] not in FIGURES, path
        assert not isinstance(leaf, float), (path, leaf)  # words, and counts of questions only


def test_a_whole_attempt_shows_the_student_words_and_the_staff_figures(
        student_world: StudentWorld) -> None:
    call = _api(student_world, _token(student_world, "student1"))
    rng = np.random.default_rng(3)
    reply = call("POST", "/attempts", json={"test_id": student_world.test_id}).get_json()
    attempt_id = reply["id"]
    while reply["status"] == "in_progress":
        reply = _answer(call, attempt_id, reply["item"]["id"], int(rng.integers(0, 4)))
    result = reply["result"]
    _assert_no_figures(result)
    assert result["evidence"] in {"rough", "fairly_sure", "sure"}
    assert result["level"] in BAND_CODES and result["mastery"]["decision"]
    for skill in result["skills"].values():
        assert set(skill) <= {"n_items", "evidence", "level", "range", "mastery"}
        assert (skill["evidence"] == "too_little") == (skill["n_items"] < MIN_EVIDENCE_ITEMS)
    # the attempt read back, and the list of attempts, say no more
    view = call("GET", f"/attempts/{attempt_id}").get_json()
    assert view["result"] == result
    _assert_no_figures(view)
    listed = call("GET", "/attempts").get_json()["items"]
    assert listed and all("theta" not in a and "se" not in a for a in listed)
    # the page says as much as the API, in words
    page = student_world.client_for("student1").get(f"/attempts/{attempt_id}/result")
    html = page.get_data(as_text=True)
    assert str(BANDS[BAND_CODES.index(result["level"])]).capitalize() in html
    assert "theta" not in html.lower() and "logit" not in html
    assert not re.search(r"\b\d+ of \d+\b", html)  # no "3 of 4 right"
    assert not re.search(r">[^<]*\d\.\d", html)  # no decimal figure in any text
    # staff see the figures behind the words
    staff = _api(student_world, _token(student_world, "teacher1"))
    full = staff("GET", f"/attempts/{attempt_id}").get_json()
    assert full["result"]["mastery"]["cut_score"] == 0.0
    assert all("n_correct" in s and "theta" in s for s in full["result"]["skills"].values())
    teacher_page = student_world.client_for("teacher1").get(f"/attempts/{attempt_id}/result")
    assert "The numbers behind this" in teacher_page.get_data(as_text=True)


def test_right_or_wrong_early_in_a_timed_out_test_cannot_be_told_apart(
        student_world: StudentWorld) -> None:
    """The same first item answered right by one student and wrong by another, then the time
    runs out: both are told the same thing (and, before, a theta and a right count each)."""
    student_world.set_time_limit(10)
    seen = {}
    for username, choice in (("student1", 1), ("student2", 0)):  # the fixture's key is 1
        call = _api(student_world, _token(student_world, username))
        reply = call("POST", "/attempts", json={"test_id": student_world.test_id}).get_json()
        attempt_id, first = reply["id"], reply["item"]["id"]
        reply = _answer(call, attempt_id, first, choice)
        pretest = reply["item"]["id"]  # position 2 is a pretest item; answer it too
        reply = _answer(call, attempt_id, pretest, 0)
        student_world.move_deadline(attempt_id, -1)
        late = _answer(call, attempt_id, reply["item"]["id"], 1)
        assert late["late"] is True and late["status"] == "finished"
        html = student_world.client_for(username).get(
            f"/attempts/{attempt_id}/result").get_data(as_text=True)
        seen[username] = (first, late["result"], call("GET", f"/attempts/{attempt_id}")
                          .get_json()["result"], re.sub(r"\s+", " ", html))
    (first1, result1, view1, html1), (first2, result2, view2, html2) = seen.values()
    assert first1 == first2  # the same item, answered right by one and wrong by the other
    assert result1 == result2 == view1 == view2
    assert result1["evidence"] == "too_little" and "level" not in result1
    assert "mastery" not in result1
    assert result1["skills_not_tested"]  # two answers cannot reach all three skills
    assert "Too early to say" in html1
    assert "The time ran out after 2 answers: too few to say anything about the level yet." \
        in html1
    assert "Not tested" in html1
    strip = re.compile(r'name="csrf_token" value="[^"]+"|finished [^<]*|/attempts/\d+')
    assert strip.sub("", html1).replace("Student1", "") == \
        strip.sub("", html2).replace("Student2", "")


def _eap(bank, idx: np.ndarray, responses: np.ndarray) -> tuple[float, float]:
    """EAP and posterior sd with a N(0, 1) prior, on a fine grid (independent of the engine)."""
    grid = np.linspace(-6, 6, 2401)
    a, b, c, d = (getattr(bank, name)[idx][:, None] for name in "abcd")
    p = c + (d - c) / (1 + np.exp(-bank.D * a * (grid[None, :] - b)))
    like = np.where(responses[:, None] == 1, p, 1 - p).prod(axis=0) * np.exp(-grid ** 2 / 2)
    post = like / like.sum()
    mean = float((grid * post).sum())
    return mean, float(np.sqrt(((grid - mean) ** 2 * post).sum()))


class _Answered:
    """Stands in for a finished engine session: ``summarise`` reads only its ``result()``."""

    def __init__(self, answered: list[tuple[str, int]], theta: float, se: float) -> None:
        self._result = SessionResult(
            theta=theta, se=se, finished=True, stop_reason="se", n_scored=len(answered),
            n_given=len(answered), items=tuple(AnsweredItem(code, k + 1, r, True, None, None, None)
                                               for k, (code, r) in enumerate(answered)))

    def result(self) -> SessionResult:
        return self._result


def test_a_skill_reads_what_its_answers_say(student_world: StudentWorld) -> None:
    """0 of 1 says nothing; 4 of 5 gives the level its answers give (an EAP computed here,
    apart from the engine), with how sure it is; an untested skill is named as such; the
    overall mastery level is marked on the picture, never written as a number."""
    call = _api(student_world, _token(student_world, "student1"))
    attempt_id = call("POST", "/attempts", json={"test_id": student_world.test_id}
                      ).get_json()["id"]
    with student_world.db() as session:
        delivery = delivery_bank(session, session.get(Attempt, attempt_id).snapshot_id)
    bank = delivery.bank
    by_skill: dict[str, list[str]] = {}
    for code in bank.item_ids:
        if code not in delivery.pretest:
            by_skill.setdefault(delivery.items[code]["skill"], []).append(code)
    algebra = [(by_skill["algebra"][0], 0)]
    geometry = [(code, 0 if k == 2 else 1) for k, code in enumerate(by_skill["geometry"][:5])]
    answered = algebra + geometry
    idx = bank.indices_of([code for code, _r in answered])
    theta, se = _eap(bank, idx, np.array([r for _c, r in answered]))
    result = summarise(delivery, _Answered(answered, theta, se), "se")
    g_idx = bank.indices_of([code for code, _r in geometry])
    g_theta, g_se = _eap(bank, g_idx, np.array([r for _c, r in geometry]))
    assert result["skills"]["geometry"]["theta"] == pytest.approx(g_theta, abs=0.02)
    assert result["skills_not_tested"] == ["statistics"]

    seen = student_result(result)
    assert seen["skills"]["algebra"] == {"n_items": 1, "evidence": "too_little"}
    geo = seen["skills"]["geometry"]
    assert geo["level"] == BAND_CODES[band_of(g_theta)]
    assert geo["evidence"] == ("sure" if g_se <= 0.3 else "fairly_sure" if g_se <= 0.5
                               else "rough")
    with student_world.app.test_request_context():
        view = result_view(result)
        rows = {s["name"]: s for s in view["skills"]}
        assert rows["Algebra"]["evidence"] == "too_little"
        assert str(rows["Geometry"]["band"]) == str(BANDS[band_of(g_theta)])
        assert rows["Statistics"]["tested"] is False
        assert [s["name"] for s in view["skills"]] == ["Algebra", "Geometry", "Statistics"]
        assert view["picture"]["cut"] == 300.0  # the cut score 0 is the middle of 600 units
    # The page, as the student sees it.
    with student_world.db() as session:
        attempt = session.get(Attempt, attempt_id)
        attempt.result = result
        attempt.status = AttemptStatus.FINISHED
        attempt.current_item_id = None
    html = student_world.client_for("student1").get(
        f"/attempts/{attempt_id}/result").get_data(as_text=True)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert "Algebra Only 1 question: too few to say." in text
    assert f"Geometry {str(BANDS[band_of(g_theta)]).capitalize()}" in text
    assert "Statistics Not tested: no question of this skill came up." in text
    assert 'class="cut"' in html and "mastery level" in text
    assert "0.0" not in text and "cut" not in text.lower()
